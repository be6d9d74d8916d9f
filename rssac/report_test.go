package rssac

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/netpulse/netpulse/probe/result"
)

var update = flag.Bool("update", false, "rewrite the golden reports in testdata/")

// goldenRuns are probe result documents for one hour (23:00–00:00 on 31
// October) and the half hour before, from two vantage points to three
// servers:
//   - a answers everything (10 ms + 1 ms per slot over UDP, twice that
//     over TCP), except REFUSED over udp4 for v1 at 23:50; it serves
//     S2 from 22:40, in the history, and S3 from 23:45.
//   - b: 50 ms UDP, 100 ms TCP; v2 cannot connect to it over udp6 at
//     23:15; it serves S2 from 23:10 (30 min), S3 from 23:50 (5 min).
//   - c: slow (200 ms UDP, 400 ms TCP), tcp4 times out at 23:40, and it
//     never serves S2 (still behind at the end, at least 80 min: counted
//     at 80) nor S3 (15 min behind at the end: pending).
func goldenRuns() []*result.Run {
	const s1, s2, s3 = 2026103101, 2026103102, 2026103103
	start := time.Date(2026, 10, 31, 22, 30, 0, 0, time.UTC)
	var runs []*result.Run
	for slot := start; !slot.After(time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)); slot = slot.Add(result.Interval) {
		n := int(slot.Sub(start) / result.Interval)
		for _, vp := range []string{"v1", "v2"} {
			run := &result.Run{Version: result.Version, VP: vp, Slot: slot, Start: slot.Add(17 * time.Second), End: slot.Add(40 * time.Second),
				Clock: result.Clock{Synced: true, Source: "adjtimex"}, Software: "netpulse test"}
			for si, target := range []string{"a.root-servers.net", "b.root-servers.net", "c.root-servers.net"} {
				serial := uint32(s1)
				switch {
				case si == 0 && !slot.Before(start.Add(75*time.Minute)),
					si == 1 && !slot.Before(start.Add(80*time.Minute)):
					serial = s3
				case si == 0 && !slot.Before(start.Add(10*time.Minute)),
					si == 1 && !slot.Before(start.Add(40*time.Minute)):
					serial = s2
				}
				for _, tf := range []struct {
					t string
					f int
				}{{"udp", 4}, {"udp", 6}, {"tcp", 4}, {"tcp", 6}} {
					ms := []float64{10 + float64(n), 50, 200}[si]
					if tf.t == "tcp" {
						ms *= 2
					}
					q := result.Query{Target: target, Address: "192.0.2.1", Port: 53, Family: tf.f, Transport: tf.t, Purpose: result.PurposeSOA,
						QName: ".", QType: "SOA", Sent: run.Start, RTTMS: ms,
						Response: &result.Response{RCode: 0, RCodeName: "NOERROR", Flags: []string{"qr", "aa"}, SOASerial: serial, HasSerial: true}}
					hm := slot.Format("15:04")
					switch {
					case si == 0 && tf.t == "udp" && tf.f == 4 && vp == "v1" && hm == "23:50":
						q.Response = &result.Response{RCode: 5, RCodeName: "REFUSED", Flags: []string{"qr"}}
					case si == 1 && tf.t == "udp" && tf.f == 6 && vp == "v2" && hm == "23:15":
						q.RTTMS, q.Error, q.Response = 0, "connect: network is unreachable", nil
					case si == 2 && tf.t == "tcp" && tf.f == 4 && hm == "23:40":
						q.RTTMS, q.Timeout, q.Response = 0, true, nil
					}
					run.Queries = append(run.Queries, q)
				}
				cq := result.Query{Target: target, Address: "192.0.2.1", Port: 53, Family: 4 + 2*(n%2), Transport: []string{"udp", "tcp"}[n/2%2],
					Purpose: result.PurposeCorrectness, QName: ".", QType: "DNSKEY", DO: true, Sent: run.Start, RTTMS: 30,
					Response: &result.Response{RCode: 0, RCodeName: "NOERROR"}}
				run.Queries = append(run.Queries, cq)
				if cq.Transport == "udp" && si == 0 && vp == "v2" {
					// Truncated: retried over TCP.
					cq.Transport, cq.Retry = "tcp", true
					run.Queries = append(run.Queries, cq)
				}
			}
			runs = append(runs, run)
		}
	}
	return runs
}

// goldenVerdict stands in for package rssac/correct: a's truncated UDP
// answers are incorrect (their TCP retries correct), c's answer to v1 at
// 23:25 is wrong, b's at 23:35 could not be checked.
func goldenVerdict(o *Observation) Verdict {
	hm := o.Slot.Format("15:04")
	switch {
	case o.Server == "a.root-servers.net" && o.VP == "v2" && o.Transport == "udp":
		return Incorrect
	case o.Server == "c.root-servers.net" && o.VP == "v1" && hm == "23:25":
		return Incorrect
	case o.Server == "b.root-servers.net" && hm == "23:35":
		return Unchecked
	}
	return Correct
}

func goldenReport(t *testing.T) *Report {
	t.Helper()
	var obs []Observation
	for _, run := range goldenRuns() {
		// Through the file format, as the collector gets them.
		b, err := result.Marshal(run)
		if err != nil {
			t.Fatal(err)
		}
		run, err := result.Decode(b)
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range FromRun(run) {
			if o.Kind == KindCorrectness && o.Outcome != Timeout {
				o.Verdict = goldenVerdict(&o)
			}
			obs = append(obs, o)
		}
	}
	p := Period{From: time.Date(2026, 10, 31, 23, 0, 0, 0, time.UTC), To: time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC), Kind: PeriodCustom}
	r, err := Compute(p, Config{K: 2, History: 30 * time.Minute}, func(yield func(Observation) bool) {
		for _, o := range obs {
			if !yield(o) {
				return
			}
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestGoldenReport(t *testing.T) {
	r := goldenReport(t)
	// A few of the numbers, worked by hand, so that a golden file
	// regenerated with a mistake does not pass unread.
	c := r.Servers[2] // c
	if c.Transports[2].Timeouts != 2 || c.PublicationCounts != (PublicationCounts{Censored: 2, Pending: 2}) || *c.PublicationLatency.Value != 80 {
		t.Errorf("c: %+v", c)
	}
	// b: 30, 30, 5, 5 → (5 + 30)/2.
	if b := r.Servers[1]; *b.PublicationLatency.Value != 17.5 || b.PublicationCounts.Exact != 4 || b.Transports[1].Timeouts != 1 {
		t.Errorf("b: %+v", b)
	}
	// a: 3 of the 6 correctness queries per VP are over UDP (slots n
	// with n/2 even); v2's 6 are truncated and retried.
	if a := r.Servers[0]; a.CorrectnessCounts.Superseded != 6 || a.Transports[0].RCodeErrors != 1 || *a.PublicationLatency.Value != 0 {
		t.Errorf("a: %+v", a)
	}

	for _, g := range []struct {
		file  string
		write func(*bytes.Buffer) error
	}{
		{"report.golden.md", func(b *bytes.Buffer) error { return r.WriteMarkdown(b) }},
		{"report.golden.json", func(b *bytes.Buffer) error { return r.WriteJSON(b) }},
	} {
		var got bytes.Buffer
		if err := g.write(&got); err != nil {
			t.Fatal(err)
		}
		path := filepath.Join("testdata", g.file)
		if *update {
			if err := os.WriteFile(path, got.Bytes(), 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		want, err := os.ReadFile(path)
		if err != nil {
			t.Fatalf("%v (run with -update to create it)", err)
		}
		if !bytes.Equal(got.Bytes(), want) {
			t.Errorf("%s differs (run with -update and review the diff):\n%s", path, lineDiff(string(want), got.String()))
		}
	}

	// The JSON reads back into the same report.
	var b bytes.Buffer
	if err := r.WriteJSON(&b); err != nil {
		t.Fatal(err)
	}
	var back Report
	dec := json.NewDecoder(&b)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&back); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(&back, r) {
		t.Error("JSON does not read back to the same report")
	}
}

// lineDiff shows the first differing lines.
func lineDiff(want, got string) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	var out []string
	for i := 0; i < max(len(w), len(g)) && len(out) < 20; i++ {
		var a, b string
		if i < len(w) {
			a = w[i]
		}
		if i < len(g) {
			b = g[i]
		}
		if a != b {
			out = append(out, "- "+a, "+ "+b)
		}
	}
	return strings.Join(out, "\n")
}

func TestMarkdownText(t *testing.T) {
	for _, tc := range []struct {
		good, total int64
		dec         int
		want        string
	}{
		{1428466, 1428480, 5, "99.99901 %"},
		{1428465, 1428480, 5, "99.99894 %"},
		{99998999, 100000000, 3, "99.998 %"}, // rounded down: a fail never reads as 99.999 %
		{96, 100, 3, "96.000 %"},
		{0, 5, 1, "0.0 %"},
		{5, 5, 0, "100 %"},
		{0, 0, 3, "no data"},
	} {
		if got := ratioText(tc.good, tc.total, tc.dec); got != tc.want {
			t.Errorf("ratioText(%d, %d, %d) = %q, want %q", tc.good, tc.total, tc.dec, got, tc.want)
		}
	}
	if got := mdEscape("a|b\n*c*_`"); got != `a\|b \*c\*\_`+"\\`" {
		t.Errorf("mdEscape: %q", got)
	}
	if pct(0.99999) != "99.999 %" || pct(0.96) != "96 %" || num(0.1+0.2) != "0.3" {
		t.Errorf("pct: %s %s", pct(0.99999), pct(0.96))
	}
}

// TestEmpty: no observations is a report of no data, which fails.
func TestEmpty(t *testing.T) {
	r, err := Compute(WeekPeriod(2026, 44), Config{}, func(func(Observation) bool) {})
	if err != nil {
		t.Fatal(err)
	}
	if r.System.Pass || r.System.Transports[0].Availability.Value != nil || r.System.PublicationLatency.Value != nil {
		t.Errorf("system: %+v", r.System)
	}
	var md, js bytes.Buffer
	if err := r.WriteMarkdown(&md); err != nil {
		t.Fatal(err)
	}
	if err := r.WriteJSON(&js); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(js.String(), `"servers": []`) || !strings.Contains(md.String(), "| **system** | **FAIL** |") {
		t.Errorf("empty report:\n%s\n%s", md.String(), js.String())
	}
}
