package decode

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"

	"github.com/netpulse/netpulse/flow"
)

var sample = filepath.Join("..", "testdata", "captures", "softflowd-ipfix.pcap")

func TestRunTSV(t *testing.T) {
	var out, errs bytes.Buffer
	if err := Run([]string{sample}, Options{Format: "tsv"}, &out, &errs); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	if lines[0] != flow.TSVHeader {
		t.Errorf("first line %q is not the header", lines[0])
	}
	if len(lines) != 1+559 {
		t.Errorf("%d records, want 559", len(lines)-1)
	}
	if !strings.HasPrefix(flow.TSVHeader, "exporter\tdomain\tversion\tsrc_addr\tdst_addr\tsrc_port\tdst_port\tproto\tpackets\tbytes\tin_if\tout_if\tsampling_rate\tstart\tend") {
		t.Error("the promised columns are not first")
	}
	if errs.Len() != 0 {
		t.Errorf("stderr: %s", errs.String())
	}
}

// rewrite copies the Ethernet capture src to a new file, passing each
// frame's UDP payload through fn: fn returns the payload to write, or nil
// to leave the frame out.
func rewrite(t *testing.T, src string, fn func(n int, payload []byte) []byte) string {
	t.Helper()
	f, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, err := pcapgo.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "rewritten.pcap")
	o, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close()
	w := pcapgo.NewWriter(o)
	w.WriteFileHeader(65535, layers.LinkTypeEthernet)
	for n := 1; ; n++ {
		data, ci, err := r.ReadPacketData()
		if err != nil {
			break
		}
		p := gopacket.NewPacket(data, layers.LinkTypeEthernet, gopacket.Default)
		udp := p.Layer(layers.LayerTypeUDP).(*layers.UDP)
		payload := fn(n, udp.Payload)
		if payload == nil {
			continue
		}
		ip := p.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
		udp.SetNetworkLayerForChecksum(ip)
		buf := gopacket.NewSerializeBuffer()
		eth := p.Layer(layers.LayerTypeEthernet).(*layers.Ethernet)
		if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true},
			eth, ip, udp, gopacket.Payload(payload)); err != nil {
			t.Fatal(err)
		}
		data = buf.Bytes()
		ci.CaptureLength, ci.Length = len(data), len(data)
		w.WritePacket(ci, data)
	}
	return path
}

// corrupt cuts frame n's payload to its first 6 bytes: the IPFIX length
// then exceeds the datagram.
func corrupt(t *testing.T, src string, n int) string {
	return rewrite(t, src, func(i int, b []byte) []byte {
		if i == n {
			return b[:6]
		}
		return b
	})
}

// TestRunBadDatagram: a bad datagram is reported with its packet number
// and reason, and decoding goes on; only an unreadable file fails the run.
func TestRunBadDatagram(t *testing.T) {
	bad := corrupt(t, sample, 5)
	var out, errs bytes.Buffer
	if err := Run([]string{bad}, Options{Format: "json"}, &out, &errs); err != nil {
		t.Fatalf("a bad datagram failed the run: %v", err)
	}
	if !strings.Contains(errs.String(), "packet 5:") || !strings.Contains(errs.String(), "not NetFlow") && !strings.Contains(errs.String(), "ipfix") {
		t.Errorf("stderr %q does not name packet 5 and the reason", errs.String())
	}
	if n := strings.Count(out.String(), "\n"); n < 500 || n >= 559 {
		t.Errorf("%d records: decoding must go on past the bad datagram, without it", n)
	}

	out.Reset()
	errs.Reset()
	err := Run([]string{filepath.Join(t.TempDir(), "missing.pcap"), sample}, Options{Format: "json"}, &out, &errs)
	if err == nil {
		t.Error("a missing file must fail the run")
	}
	if n := strings.Count(out.String(), "\n"); n != 559 {
		t.Errorf("%d records from the readable file, want 559", n)
	}
}

// withoutTemplates leaves out every datagram of an IPFIX capture that
// carries a template or options template set.
func withoutTemplates(t *testing.T, src string) string {
	return rewrite(t, src, func(_ int, b []byte) []byte {
		for off := 16; off+4 <= len(b); {
			id, l := int(b[off])<<8|int(b[off+1]), int(b[off+2])<<8|int(b[off+3])
			if id == 2 || id == 3 {
				return nil
			}
			if l < 4 {
				break
			}
			off += l
		}
		return b
	})
}

// TestTemplatesFile: templates saved from one capture decode a later
// capture of the same exporter that carries none.
func TestTemplatesFile(t *testing.T) {
	bare := withoutTemplates(t, sample)
	var out, errs bytes.Buffer
	if err := Run([]string{bare}, Options{}, &out, &errs); err != nil {
		t.Fatal(err)
	}
	if out.Len() != 0 || !strings.Contains(errs.String(), "never got their template") {
		t.Fatalf("without templates: %d bytes out, stderr %q", out.Len(), errs.String())
	}
	tmpl := filepath.Join(t.TempDir(), "templates.jsonl")
	if err := Run([]string{sample}, Options{Templates: tmpl}, &out, &errs); err != nil {
		t.Fatal(err)
	}
	out.Reset()
	errs.Reset()
	if err := Run([]string{bare}, Options{Templates: tmpl}, &out, &errs); err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(out.String(), "\n"); n == 0 || errs.Len() != 0 {
		t.Errorf("with saved templates: %d records, stderr %q", n, errs.String())
	}
	if err := Run([]string{sample}, Options{Format: "bogus"}, &out, &errs); err == nil {
		t.Error("bad format accepted")
	}
}
