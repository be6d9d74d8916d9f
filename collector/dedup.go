package collector

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"sync"
	"time"

	"github.com/cespare/xxhash/v2"

	"github.com/netpulse/netpulse/flow"
)

// Dedup drops the copies of a record that reach the collector through more
// than one proxy: a router configured with two export destinations, or two
// proxies behind an anycast address, sends the same datagram to both, and
// each proxy decodes and forwards the same records.
//
// The rule (docs/collector.md, "De-duplication"): a record's key is a hash
// of what the exporter put in it — exporter address, observation domain,
// export protocol, the datagram's sequence number, and the record's content
// (addresses, ports, protocol, flags, interfaces, bytes, packets, flow
// times except for sFlow, whose times are the receive time, counter
// values). What a proxy adds (receive time, device id,
// resample factor, enrichment) is left out. The first proxy to deliver a
// key owns it for Window; the same key from another proxy within the
// window is a duplicate and dropped. The same key again from the owner is
// kept: two identical records in one datagram (two sFlow samples of the
// same packet size on the same 5-tuple) are real and both count.
//
// The window is two generations of Window/2 each, so a key is remembered
// between Window/2 and Window. Memory is bounded by MaxKeys: when the
// current generation is full it rotates early, and Stats counts it.
type Dedup struct {
	mu         sync.Mutex
	window     time.Duration
	maxKeys    int
	cur, prev  map[uint64]uint16
	rotated    time.Time
	proxies    map[string]uint16
	names      []string
	duplicates uint64
	early      uint64
}

// DedupStats are the de-duplication counters.
type DedupStats struct {
	Duplicates     uint64 // records dropped as copies
	Keys           int    // keys remembered now
	EarlyRotations uint64 // generations cut short by MaxKeys
}

// NewDedup remembers keys for window, at most maxKeys of them.
func NewDedup(window time.Duration, maxKeys int, now time.Time) *Dedup {
	return &Dedup{
		window: window, maxKeys: max(maxKeys, 2),
		cur: make(map[uint64]uint16), prev: make(map[uint64]uint16),
		rotated: now, proxies: make(map[string]uint16),
	}
}

// Filter removes from recs the records another proxy already delivered and
// returns what is left (recs' backing array, reordered in place) and how
// many were dropped.
func (d *Dedup) Filter(proxy string, recs []flow.Record, now time.Time) ([]flow.Record, int) {
	keys := make([]uint64, len(recs))
	for i := range recs {
		keys[i] = Key(&recs[i])
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.rotate(now)
	owner := d.proxyID(proxy)
	kept := recs[:0]
	for i := range recs {
		k := keys[i]
		o, ok := d.cur[k]
		if !ok {
			o, ok = d.prev[k]
		}
		if ok && o != owner {
			continue
		}
		if !ok {
			if len(d.cur) >= d.maxKeys/2 {
				d.early++
				d.prev, d.cur = d.cur, make(map[uint64]uint16, len(d.cur))
				d.rotated = now
			}
			d.cur[k] = owner
		}
		kept = append(kept, recs[i])
	}
	dropped := len(recs) - len(kept)
	d.duplicates += uint64(dropped)
	return kept, dropped
}

func (d *Dedup) rotate(now time.Time) {
	half := d.window / 2
	switch since := now.Sub(d.rotated); {
	case since >= d.window:
		d.prev, d.cur = make(map[uint64]uint16), make(map[uint64]uint16)
		d.rotated = now
	case since >= half:
		d.prev, d.cur = d.cur, make(map[uint64]uint16, len(d.cur))
		d.rotated = d.rotated.Add(half)
	}
}

func (d *Dedup) proxyID(name string) uint16 {
	if id, ok := d.proxies[name]; ok {
		return id
	}
	id := uint16(len(d.names))
	d.proxies[name] = id
	d.names = append(d.names, name)
	return id
}

// Stats returns the counters.
func (d *Dedup) Stats() DedupStats {
	d.mu.Lock()
	defer d.mu.Unlock()
	return DedupStats{Duplicates: d.duplicates, Keys: len(d.cur) + len(d.prev), EarlyRotations: d.early}
}

// Key is the de-duplication key of r: what the exporter wrote, nothing a
// proxy added.
func Key(r *flow.Record) uint64 {
	var b [256]byte
	p := b[:0]
	p = append(p, byte(r.Kind), byte(r.Type), r.Proto, r.TCPFlags, r.ToS, byte(r.Direction))
	if r.Reverse {
		p = append(p, 1)
	} else {
		p = append(p, 0)
	}
	p = appendAddr(p, r.Exporter)
	p = appendAddr(p, r.Agent)
	p = binary.LittleEndian.AppendUint32(p, r.ObservationDomain)
	p = binary.LittleEndian.AppendUint32(p, r.Sequence)
	p = binary.LittleEndian.AppendUint32(p, r.SamplerID)
	p = appendAddr(p, r.SrcAddr)
	p = appendAddr(p, r.DstAddr)
	p = appendAddr(p, r.NextHop)
	p = binary.LittleEndian.AppendUint16(p, r.SrcPort)
	p = binary.LittleEndian.AppendUint16(p, r.DstPort)
	p = binary.LittleEndian.AppendUint32(p, r.InIf)
	p = binary.LittleEndian.AppendUint32(p, r.OutIf)
	p = binary.LittleEndian.AppendUint64(p, r.Bytes)
	p = binary.LittleEndian.AppendUint64(p, r.Packets)
	if r.Type != flow.TypeSFlowV5 {
		// sFlow carries no flow times: the decoder sets them to the
		// time of receipt, which differs between proxies.
		p = binary.LittleEndian.AppendUint64(p, uint64(r.FlowStart.UnixNano()))
		p = binary.LittleEndian.AppendUint64(p, uint64(r.FlowEnd.UnixNano()))
	}
	p = binary.LittleEndian.AppendUint64(p, r.SrcMAC.Uint64()^r.DstMAC.Uint64()<<1)
	p = binary.LittleEndian.AppendUint32(p, r.SrcAS)
	p = binary.LittleEndian.AppendUint32(p, r.DstAS)
	if r.Kind == flow.KindCounters {
		c := &r.Counters
		p = binary.LittleEndian.AppendUint32(p, c.IfIndex)
		p = binary.LittleEndian.AppendUint64(p, c.InOctets)
		p = binary.LittleEndian.AppendUint64(p, c.OutOctets)
		p = binary.LittleEndian.AppendUint64(p, c.InUcastPkts)
		p = binary.LittleEndian.AppendUint64(p, c.OutUcastPkts)
	}
	return xxhash.Sum64(p)
}

func appendAddr(p []byte, a netip.Addr) []byte {
	b := a.As16()
	if !a.IsValid() {
		return append(p, 0)
	}
	return append(append(p, 1), b[:]...)
}

// The state file keeps the window across a graceful restart, so that a
// copy arriving just after the collector comes back is still recognised.
const dedupMagic = "npdedup1"

// Save writes the window to path (temporary file, then rename).
func (d *Dedup) Save(path string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	tmp := path + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return err
	}
	w := bufio.NewWriter(f)
	w.WriteString(dedupMagic)
	var hdr [8]byte
	binary.LittleEndian.PutUint64(hdr[:], uint64(d.rotated.UnixNano()))
	w.Write(hdr[:])
	binary.LittleEndian.PutUint32(hdr[:4], uint32(len(d.names)))
	w.Write(hdr[:4])
	for _, n := range d.names {
		binary.LittleEndian.PutUint16(hdr[:2], uint16(len(n)))
		w.Write(hdr[:2])
		w.WriteString(n)
	}
	for _, gen := range []map[uint64]uint16{d.prev, d.cur} {
		binary.LittleEndian.PutUint32(hdr[:4], uint32(len(gen)))
		w.Write(hdr[:4])
		var e [10]byte
		for k, o := range gen {
			binary.LittleEndian.PutUint64(e[:8], k)
			binary.LittleEndian.PutUint16(e[8:], o)
			w.Write(e[:])
		}
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// Load reads a window written by Save. A missing file is no error; a
// window older than Window is ignored.
func (d *Dedup) Load(path string, now time.Time) error {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	defer f.Close()
	r := bufio.NewReader(f)
	bad := func(what string, err error) error {
		return fmt.Errorf("dedup state %s: %s: %v", path, what, err)
	}
	magic := make([]byte, len(dedupMagic))
	if _, err := io.ReadFull(r, magic); err != nil || string(magic) != dedupMagic {
		return bad("header", errors.New("not a dedup state file"))
	}
	var hdr [8]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return bad("header", err)
	}
	rotated := time.Unix(0, int64(binary.LittleEndian.Uint64(hdr[:])))
	if now.Sub(rotated) >= d.window {
		return nil
	}
	if _, err := io.ReadFull(r, hdr[:4]); err != nil {
		return bad("proxies", err)
	}
	n := binary.LittleEndian.Uint32(hdr[:4])
	if n > 1<<16 {
		return bad("proxies", fmt.Errorf("%d proxies", n))
	}
	names := make([]string, n)
	for i := range names {
		if _, err := io.ReadFull(r, hdr[:2]); err != nil {
			return bad("proxies", err)
		}
		s := make([]byte, binary.LittleEndian.Uint16(hdr[:2]))
		if _, err := io.ReadFull(r, s); err != nil {
			return bad("proxies", err)
		}
		names[i] = string(s)
	}
	var gens [2]map[uint64]uint16
	for g := range gens {
		if _, err := io.ReadFull(r, hdr[:4]); err != nil {
			return bad("keys", err)
		}
		n := binary.LittleEndian.Uint32(hdr[:4])
		if int(n) > d.maxKeys {
			return bad("keys", fmt.Errorf("%d keys over the bound %d", n, d.maxKeys))
		}
		gens[g] = make(map[uint64]uint16, n)
		var e [10]byte
		for range n {
			if _, err := io.ReadFull(r, e[:]); err != nil {
				return bad("keys", err)
			}
			o := binary.LittleEndian.Uint16(e[8:])
			if int(o) >= len(names) {
				return bad("keys", fmt.Errorf("owner %d of %d proxies", o, len(names)))
			}
			gens[g][binary.LittleEndian.Uint64(e[:8])] = o
		}
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.names = names
	d.proxies = make(map[string]uint16, len(names))
	for i, n := range names {
		d.proxies[n] = uint16(i)
	}
	d.prev, d.cur, d.rotated = gens[0], gens[1], rotated
	return nil
}
