package demo

import (
	"bytes"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/netpulse/netpulse/flow"
	"github.com/netpulse/netpulse/internal/integration"
)

// tsharkFields runs tshark on a capture with dissector forced on port,
// keeps the frames that match filter, and returns their fields, one row
// per frame; a field that occurs several times is |-separated.
func tsharkFields(t *testing.T, bin, path, dissector string, port uint16, filter string, fields ...string) [][]string {
	t.Helper()
	args := []string{"-r", path, "-d", "udp.port==" + strconv.Itoa(int(port)) + "," + dissector, "-Y", filter,
		"-T", "fields", "-E", "occurrence=a", "-E", "aggregator=|", "-E", "separator=/t"}
	for _, f := range fields {
		args = append(args, "-e", f)
	}
	cmd := exec.Command(bin, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("tshark %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	var rows [][]string
	for _, line := range strings.Split(strings.TrimRight(string(out), "\n"), "\n") {
		if line != "" {
			rows = append(rows, strings.Split(line, "\t"))
		}
	}
	return rows
}

// values splits a |-joined field into numbers.
func values(t *testing.T, s string) []uint64 {
	t.Helper()
	if s == "" {
		return nil
	}
	var out []uint64
	for _, v := range strings.Split(s, "|") {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			t.Fatalf("tshark value %q: %v", v, err)
		}
		out = append(out, n)
	}
	return out
}

func one(t *testing.T, s string) uint64 {
	t.Helper()
	v := values(t, s)
	if len(v) == 0 {
		return 0
	}
	return v[0]
}

// TestTsharkCrossCheck writes a capture of two simulated minutes and has
// tshark, Wireshark's independent decoder, read it: per protocol the
// record counts, byte and packet totals, and the totals scaled by the
// sampling rates tshark finds (v5 header, v9 sampler options, v9 sampling
// interval field, IPFIX selector options, sFlow sample rate) must be the
// simulator's Totals; sFlow counter samples must be all there; and tshark
// must find nothing malformed and raise no warning.
func TestTsharkCrossCheck(t *testing.T) {
	bin := integration.Tool(t, "tshark")
	s := newSim(t, testConfig())
	path := filepath.Join(t.TempDir(), "demo.pcap")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	target := netip.MustParseAddrPort("127.0.0.1:2055")
	if err := s.WritePcap(f, t0, 2*time.Minute, target); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	tot := s.Totals()

	want := map[flow.Type]*Count{}
	var counterSamples uint64
	var sflowSrcs []string
	for _, d := range s.Devices() {
		dt := tot.Device(d.ID)
		c := want[dt.Type]
		if c == nil {
			c = &Count{}
			want[dt.Type] = c
		}
		c.Flows += dt.Flows.Flows
		c.Bytes += dt.Flows.Bytes
		c.Packets += dt.Flows.Packets
		c.ScaledBytes += dt.Flows.ScaledBytes
		c.ScaledPackets += dt.Flows.ScaledPackets
		if dt.Type == flow.TypeSFlowV5 {
			sflowSrcs = append(sflowSrcs, d.IPs[0].String())
			counterSamples += dt.CounterSamples
		}
	}
	isSFlow := "ip.src in {" + strings.Join(sflowSrcs, " ") + "}"

	got := map[flow.Type]*Count{}
	for _, typ := range []flow.Type{flow.TypeNetFlowV5, flow.TypeNetFlowV9, flow.TypeIPFIX, flow.TypeSFlowV5} {
		got[typ] = &Count{}
	}
	// Sampling rates from options data, per exporter.
	rates := map[string]uint64{}
	rows := tsharkFields(t, bin, path, "cflow", target.Port(), "cflow && !("+isSFlow+")",
		"ip.src", "cflow.version", "cflow.octets", "cflow.packets", "cflow.samplerate", "cflow.sampling_interval",
		"cflow.sampler_random_interval", "cflow.sampling_packet_interval", "cflow.sampling_packet_space")
	for _, row := range rows {
		src, version := row[0], one(t, row[1])
		octets, packets := values(t, row[2]), values(t, row[3])
		if len(octets) != len(packets) {
			t.Fatalf("frame from %s: %d octet and %d packet fields", src, len(octets), len(packets))
		}
		if iv := one(t, row[6]); iv > 0 {
			rates[src] = iv
		}
		if iv := one(t, row[7]); iv > 0 {
			rates[src] = (iv + one(t, row[8])) / iv
		}
		perRecord := values(t, row[5])
		var c *Count
		switch version {
		case 5:
			c = got[flow.TypeNetFlowV5]
		case 9:
			c = got[flow.TypeNetFlowV9]
		case 10:
			c = got[flow.TypeIPFIX]
		default:
			t.Fatalf("frame from %s: version %d", src, version)
		}
		for i := range octets {
			rate := rates[src]
			switch {
			case version == 5:
				rate = one(t, row[4])
			case len(perRecord) == len(octets):
				rate = perRecord[i]
			}
			if rate == 0 {
				t.Fatalf("frame from %s: no sampling rate for record %d", src, i)
			}
			c.Flows++
			c.Bytes += octets[i]
			c.Packets += packets[i]
			c.ScaledBytes += octets[i] * rate
			c.ScaledPackets += packets[i] * rate
		}
	}

	var gotCounters uint64
	rows = tsharkFields(t, bin, path, "sflow", target.Port(), "sflow && "+isSFlow,
		"sflow_245.header.frame_length", "sflow.flow_sample.sampling_rate", "sflow_245.ifindex")
	for _, row := range rows {
		lengths, rates := values(t, row[0]), values(t, row[1])
		if len(lengths) != len(rates) {
			t.Fatalf("sFlow frame: %d frame lengths, %d sampling rates", len(lengths), len(rates))
		}
		c := got[flow.TypeSFlowV5]
		for i, l := range lengths {
			c.Flows++
			c.Packets++
			c.Bytes += l
			c.ScaledPackets += rates[i]
			c.ScaledBytes += l * rates[i]
		}
		gotCounters += uint64(len(values(t, row[2])))
	}

	for typ, w := range want {
		if g := got[typ]; *g != *w {
			t.Errorf("%v:\n tshark %+v\n Totals %+v", typ, *g, *w)
		} else {
			t.Logf("%v: %d records, %d bytes (%d scaled) agree with tshark", typ, g.Flows, g.Bytes, g.ScaledBytes)
		}
	}
	if gotCounters != counterSamples {
		t.Errorf("sFlow counter samples: tshark %d, Totals %d", gotCounters, counterSamples)
	}

	// Expert information of severity warning (0x00600000) and above. A
	// sampled TCP reset is one, as it is in real sFlow.
	for _, run := range []struct{ dissector, filter string }{{"cflow", "!(" + isSFlow + ")"}, {"sflow", isSFlow}} {
		rows := tsharkFields(t, bin, path, run.dissector, target.Port(), "("+run.filter+") && (_ws.malformed || _ws.expert.severity >= 0x00600000)",
			"frame.number", "_ws.expert.message", "_ws.expert.severity")
		bad := 0
		for _, row := range rows {
			msgs, sev := strings.Split(row[1], "|"), values(t, row[2])
			for i, m := range msgs {
				if i < len(sev) && sev[i] < 0x00600000 || m == "Connection reset (RST)" {
					continue
				}
				if bad++; bad <= 5 {
					t.Errorf("tshark (%s): frame %s: %s", run.dissector, row[0], m)
				}
			}
		}
	}
}
