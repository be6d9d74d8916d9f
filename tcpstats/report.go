package tcpstats

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"text/tabwriter"
	"time"
)

// ConnSummary is what `netpulse tcpstats --read` reports for one
// connection. It is a copy, safe to keep after the Analyzer moves on.
type ConnSummary struct {
	File          string            `json:"file"`
	ID            int               `json:"id"` // tshark's tcp.stream
	Client        string            `json:"client"`
	Server        string            `json:"server"`
	First         time.Time         `json:"first"`
	DurationS     float64           `json:"duration_seconds"`
	HandshakeRTTS float64           `json:"handshake_rtt_seconds,omitempty"`
	SYNToSYNACKS  float64           `json:"syn_to_synack_seconds,omitempty"`
	SYNACKToACKS  float64           `json:"synack_to_ack_seconds,omitempty"`
	ToServer      Half              `json:"to_server"`
	ToClient      Half              `json:"to_client"`
	Flags         map[string]uint64 `json:"flags"`
	Closed        string            `json:"closed"` // fin, rst or open
	End           string            `json:"end"`
	flagCounts    Counts
}

func summarize(file string, c *Conn) ConnSummary {
	s := ConnSummary{
		File: file, ID: c.ID, Client: c.Client.String(), Server: c.Server.String(),
		First: c.First, DurationS: c.Duration().Seconds(),
		HandshakeRTTS: c.HandshakeRTT().Seconds(),
		ToServer:      c.Dir[ToServer], ToClient: c.Dir[ToClient],
		Flags: map[string]uint64{}, End: c.End.String(), flagCounts: c.Flags,
	}
	if !c.SYN.IsZero() && !c.SYNACK.IsZero() {
		s.SYNToSYNACKS = c.SYNACK.Sub(c.SYN).Seconds()
	}
	if !c.SYNACK.IsZero() && !c.ACK.IsZero() {
		s.SYNACKToACKS = c.ACK.Sub(c.SYNACK).Seconds()
	}
	for f := Flag(0); f < NumFlags; f++ {
		if c.Flags[f] != 0 {
			s.Flags[f.String()] = c.Flags[f]
		}
	}
	switch {
	case c.RST:
		s.Closed = "rst"
	case c.FINs[0] && c.FINs[1]:
		s.Closed = "fin"
	case c.FINs[0] || c.FINs[1]:
		s.Closed = "half"
	default:
		s.Closed = "open"
	}
	return s
}

// Report is the result of reading captures offline.
type Report struct {
	Connections []ConnSummary     `json:"connections"`
	Totals      map[string]uint64 `json:"totals"`
	Packets     uint64            `json:"packets"`
	ParseErrors ParseErrors       `json:"parse_errors"`
	Evictions   uint64            `json:"evictions"`
	// PacketSizes and PayloadSizes count packets by size, keyed by the
	// bucket's upper bound ("+Inf" for the last).
	PacketSizes  map[string]uint64 `json:"packet_sizes_bytes"`
	PayloadSizes map[string]uint64 `json:"payload_sizes_bytes"`
}

// ReadFiles analyzes each capture file with its own Analyzer, so
// connection IDs match tshark's tcp.stream for that file.
func ReadFiles(files []string, cfg Config) (*Report, error) {
	r := &Report{Totals: map[string]uint64{}, PacketSizes: map[string]uint64{}, PayloadSizes: map[string]uint64{}}
	var total Counts
	var pkt, pay [len(SizeBuckets) + 1]uint64
	for _, file := range files {
		fh, err := os.Open(file)
		if err != nil {
			return nil, fmt.Errorf("tcpstats: %w", err)
		}
		var conns []ConnSummary
		a := New(cfg, func(c *Conn) { conns = append(conns, summarize(file, c)) })
		perr, err := ReadCapture(fh, a, nil)
		fh.Close()
		if err != nil {
			return nil, fmt.Errorf("tcpstats: %s: %w", file, err)
		}
		a.Flush()
		sort.Slice(conns, func(i, j int) bool { return conns[i].ID < conns[j].ID })
		r.Connections = append(r.Connections, conns...)
		t := a.Totals()
		total.Sum(&t.Flags)
		r.Packets += t.Packets
		r.Evictions += t.Ends[EndEvicted]
		r.ParseErrors.NotTCP += perr.NotTCP
		r.ParseErrors.Fragments += perr.Fragments
		r.ParseErrors.Malformed += perr.Malformed
		for i := range pkt {
			pkt[i] += t.PacketSize[i]
			pay[i] += t.PayloadSize[i]
		}
	}
	for f := Flag(0); f < NumFlags; f++ {
		r.Totals[f.String()] = total[f]
	}
	for i := range pkt {
		le := "+Inf"
		if i < len(SizeBuckets) {
			le = fmt.Sprint(SizeBuckets[i])
		}
		r.PacketSizes[le], r.PayloadSizes[le] = pkt[i], pay[i]
	}
	return r, nil
}

// WriteJSON writes r as one indented JSON document.
func (r *Report) WriteJSON(w io.Writer) error {
	e := json.NewEncoder(w)
	e.SetIndent("", "  ")
	return e.Encode(r)
}

// shortFlags are the table's column heads, in Flag order.
var shortFlags = [NumFlags]string{
	"retr", "fast", "spur", "ooo", "lost", "unseen", "dupack",
	"zwin", "zwp", "zwpack", "wfull", "wupd", "ka", "kaack", "rst",
}

// WriteTable writes one line per connection and a line of totals.
func (r *Report) WriteTable(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 1, ' ', tabwriter.AlignRight)
	head := []string{"id", "client", "server", "dur_s", "rtt_ms", "pkts>", "pkts<", "bytes>", "bytes<", "ws>", "ws<", "end"}
	head = append(head, shortFlags[:]...)
	fmt.Fprintln(tw, strings.Join(head, "\t")+"\t")
	multi := len(r.Connections) > 0 && r.Connections[0].File != r.Connections[len(r.Connections)-1].File
	for _, c := range r.Connections {
		id := fmt.Sprint(c.ID)
		if multi {
			id = c.File + ":" + id
		}
		row := []string{id, c.Client, c.Server,
			fmt.Sprintf("%.3f", c.DurationS), fmt.Sprintf("%.3f", c.HandshakeRTTS*1e3),
			fmt.Sprint(c.ToServer.Packets), fmt.Sprint(c.ToClient.Packets),
			fmt.Sprint(c.ToServer.PayloadBytes), fmt.Sprint(c.ToClient.PayloadBytes),
			wsString(c.ToServer.WScale), wsString(c.ToClient.WScale), c.Closed}
		for f := Flag(0); f < NumFlags; f++ {
			row = append(row, fmt.Sprint(c.flagCounts[f]))
		}
		fmt.Fprintln(tw, strings.Join(row, "\t")+"\t")
	}
	tw.Flush()
	fmt.Fprintf(w, "\n%d packets, %d connections, %d evicted, %d not TCP, %d fragments, %d malformed\n",
		r.Packets, len(r.Connections), r.Evictions, r.ParseErrors.NotTCP, r.ParseErrors.Fragments, r.ParseErrors.Malformed)
	for f := Flag(0); f < NumFlags; f++ {
		fmt.Fprintf(w, "%-24s %d\n", f.String(), r.Totals[f.String()])
	}
	return nil
}

func wsString(ws int8) string {
	switch ws {
	case -1:
		return "?"
	case -2:
		return "none"
	}
	return fmt.Sprint(ws)
}
