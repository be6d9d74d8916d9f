// Package decode is `netpulse decode`: it reads packet captures, decodes
// every UDP datagram that is NetFlow, IPFIX or sFlow, and prints one line
// per record in capture order. It answers the operator's question "what is
// my router actually sending?", with the live path's template semantics:
// templates learnt earlier apply later, and data held for a template is
// printed when the template shows up.
package decode

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/netpulse/netpulse/capture"
	"github.com/netpulse/netpulse/decoder"
	"github.com/netpulse/netpulse/flow"
)

// Options configure a run.
type Options struct {
	// Format is "json" (JSON lines, the default) or "tsv".
	Format string
	// Templates names a template cache file loaded before decoding, when
	// it exists, and written after.
	Templates string
	// Stats prints the decoder's counters to stderr at the end.
	Stats   bool
	Decoder decoder.Config
}

// Run decodes files in order, as one stream, writing records to out and
// problems to errs. It returns an error only when a file cannot be read
// at all; a bad datagram is reported with its packet number and skipped.
func Run(files []string, o Options, out, errs io.Writer) error {
	if o.Format == "" {
		o.Format = "json"
	}
	if o.Format != "json" && o.Format != "tsv" {
		return fmt.Errorf("decode: --format %q: want json or tsv", o.Format)
	}
	d := decoder.New(o.Decoder)
	if o.Templates != "" {
		if err := loadTemplates(d, o.Templates); err != nil {
			return err
		}
	}
	w := bufio.NewWriterSize(out, 1<<16)
	var line []byte
	var records int
	emit := func(r *flow.Record) {
		records++
		if o.Format == "tsv" {
			line = flow.AppendTSV(line[:0], r)
		} else {
			line = flow.AppendJSON(line[:0], r)
		}
		w.Write(line)
	}
	if o.Format == "tsv" {
		fmt.Fprintln(w, flow.TSVHeader)
	}
	var last time.Time
	var failed []error
	for _, file := range files {
		name := file
		err := capture.ReadUDP(file, func(dg capture.Datagram) error {
			last = dg.Time
			if err := d.Decode(dg.Src.Addr(), dg.Time, dg.Payload, emit); err != nil {
				if errors.Is(err, decoder.ErrUnknown) {
					fmt.Fprintf(errs, "%s: packet %d: %v (UDP %v -> %v, %d bytes)\n", name, dg.Number, err, dg.Src, dg.Dst, len(dg.Payload))
				} else {
					fmt.Fprintf(errs, "%s: packet %d: %v\n", name, dg.Number, err)
				}
			}
			return nil
		}, func(n int, err error) {
			fmt.Fprintf(errs, "%s: packet %d: %v\n", name, n, err)
		})
		if err != nil {
			fmt.Fprintf(errs, "%v\n", err)
			failed = append(failed, err)
		}
	}
	if err := w.Flush(); err != nil {
		return fmt.Errorf("decode: write: %w", err)
	}
	// What still waits for a template at the end will never be decoded.
	nf := d.NetFlow()
	if held := nf.Stats().HeldNow; held > 0 {
		fmt.Fprintf(errs, "decode: %d data sets never got their template\n", held)
	}
	if o.Stats {
		printStats(errs, d, records, last)
	}
	if o.Templates != "" {
		if err := saveTemplates(d, o.Templates); err != nil {
			return err
		}
	}
	return errors.Join(failed...)
}

func printStats(w io.Writer, d *decoder.Decoder, records int, last time.Time) {
	s := d.NetFlow().Stats()
	fmt.Fprintf(w, "records %d; netflow/ipfix: datagrams %d flows %d options %d errors %d templates %d (changed %d, withdrawn %d) held %d (decoded %d, expired %d, dropped %d) lost flows %d lost datagrams %d\n",
		records, s.Datagrams, s.Flows, s.OptionsRecords, s.Errors, d.NetFlow().Templates().Len(),
		s.TemplatesChanged, s.TemplatesWithdrawn, s.HeldSets, s.HeldDecoded, s.HeldExpired, s.HeldDropped, s.LostFlows, s.LostDatagrams)
	sf := d.SFlow().Stats()
	fmt.Fprintf(w, "sflow: datagrams %d samples %d flows %d counters %d errors %d skipped samples %d skipped records %d lost datagrams %d\n",
		sf.Datagrams, sf.Samples, sf.Flows, sf.Counters, sf.Errors, sf.SkippedSamples, sf.SkippedRecords, sf.LostDatagrams)
	fmt.Fprintf(w, "unknown datagrams: %d\n", d.Unknown())
	for k, st := range d.Sequences().Snapshot() {
		fmt.Fprintf(w, "stream %v domain %d proto %d: datagrams %d lost %d out-of-order %d resets %d\n",
			k.Exporter, k.Domain, k.Proto, st.Datagrams, st.Lost, st.OutOfOrder, st.Resets)
	}
}

func loadTemplates(d *decoder.Decoder, path string) error {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("decode: templates: %w", err)
	}
	defer f.Close()
	if _, err := d.NetFlow().Templates().ReadFrom(f); err != nil {
		return fmt.Errorf("decode: templates %s: %w", path, err)
	}
	return nil
}

// saveTemplates writes the cache to a temporary file and renames it, so a
// crash never leaves half a file.
func saveTemplates(d *decoder.Decoder, path string) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".templates-*")
	if err != nil {
		return fmt.Errorf("decode: templates: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := d.NetFlow().Templates().WriteTo(tmp); err != nil {
		tmp.Close()
		return fmt.Errorf("decode: templates: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("decode: templates: %w", err)
	}
	return os.Rename(tmp.Name(), path)
}
