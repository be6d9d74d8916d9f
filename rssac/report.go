package rssac

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"math/big"
	"strconv"
	"strings"
)

// Metric units.
const (
	UnitRatio   = "ratio" // a fraction in [0, 1]
	UnitMS      = "ms"
	UnitMinutes = "min"
)

// Report is one period's RSSAC047 v2 metrics. Its JSON field names are
// stable: the API serves it as is.
type Report struct {
	Period  Period         `json:"period"`
	Name    string         `json:"name"`
	Config  ReportConfig   `json:"config"`
	Counts  Counts         `json:"counts"`
	Servers []ServerResult `json:"servers"`
	System  SystemResult   `json:"system"`
}

// ReportConfig is the configuration the report was computed with (the
// thresholds are in each Metric).
type ReportConfig struct {
	K               int      `json:"k"`
	ExpectedServers []string `json:"expected_servers,omitempty"`
	HistoryMinutes  int      `json:"history_minutes"`
	// FirstSeenSerials is how many first appearances were passed in.
	FirstSeenSerials int  `json:"first_seen_serials"`
	StrictSerials    bool `json:"strict_serials"`
	// LatencyPrecisionMS is the response-time resolution kept (RSSAC047
	// v2 §4.1 asks that it be reported).
	LatencyPrecisionMS float64 `json:"latency_precision_ms"`
}

// Counts says what went into the report.
type Counts struct {
	// Observations in the period that were used, of which SOA and
	// correctness.
	Observations int64 `json:"observations"`
	SOA          int64 `json:"soa"`
	Correctness  int64 `json:"correctness"`
	// History: SOA answers before the period used for publication latency.
	History int64 `json:"history"`
	// Outside: observations outside the period, but for the history
	// window's SOA answers with a serial (History).
	Outside int64 `json:"outside"`
	// Invalid: observations with an unknown transport, family, kind,
	// outcome or verdict, no vantage point or server, a negative response
	// time, or a slot not on a 5-minute boundary.
	Invalid int64 `json:"invalid"`
	// UnknownServer: observations of a server not in the expected set.
	UnknownServer int64 `json:"unknown_server"`
	// UnknownSerials: answers whose serial is not a known one
	// (Config.StrictSerials).
	UnknownSerials int64 `json:"unknown_serials"`
	// Serials: serials whose publication latency was measured.
	// UndatedSerials: serials already served when the data starts (and
	// not in Config.FirstSeen), whose first appearance is unknown.
	Serials        int `json:"serials"`
	UndatedSerials int `json:"undated_serials"`
	VantagePoints  int `json:"vantage_points"`
	Servers        int `json:"servers"`
	// Slots is the number of 5-minute intervals in the period.
	Slots int `json:"slots"`
}

// Metric is one metric's value, the number of measurements behind it, and
// its verdict.
type Metric struct {
	// Value is in Unit: a fraction for availability and correctness,
	// milliseconds for response latency, minutes for publication latency.
	// Null when there was no measurement (which fails).
	Value     *float64 `json:"value"`
	Unit      string   `json:"unit"`
	Count     int64    `json:"count"`
	Threshold float64  `json:"threshold"`
	Pass      bool     `json:"pass"`
}

// TransportResult is one server's availability and response latency over
// one transport and address family.
type TransportResult struct {
	Transport    string `json:"transport"`
	Family       int    `json:"family"`
	Availability Metric `json:"availability"`
	Latency      Metric `json:"latency"`
	// Sent = Answered (RCODE 0) + RCodeErrors + Timeouts (connection
	// errors included).
	Sent        int64 `json:"sent"`
	Answered    int64 `json:"answered"`
	RCodeErrors int64 `json:"rcode_errors"`
	Timeouts    int64 `json:"timeouts"`
}

// CorrectnessCounts classify the correctness queries. Only Correct and
// Incorrect are measurements.
type CorrectnessCounts struct {
	Correct   int64 `json:"correct"`
	Incorrect int64 `json:"incorrect"`
	// Unchecked: answered, but no zone in the archive could decide.
	Unchecked int64 `json:"unchecked"`
	// NoResponse: timed out or failed to connect.
	NoResponse int64 `json:"no_response"`
	// Superseded: truncated UDP answers replaced by their TCP retry (not
	// in the other counts).
	Superseded int64 `json:"superseded"`
}

func (c *CorrectnessCounts) add(o CorrectnessCounts) {
	c.Correct += o.Correct
	c.Incorrect += o.Incorrect
	c.Unchecked += o.Unchecked
	c.NoResponse += o.NoResponse
	c.Superseded += o.Superseded
}

// PublicationCounts classify the (vantage point, serial) pairs.
type PublicationCounts struct {
	// Exact: the pair caught up in the period; the delay is known.
	Exact int64 `json:"exact"`
	// Censored: still behind at the end, by more than the per-server
	// threshold already; counted at that lower bound.
	Censored int64 `json:"censored"`
	// Pending: still behind at the end, by less; left for the next period.
	Pending int64 `json:"pending"`
	// Unmeasurable: first seen in the period already caught up, with no
	// earlier data to say when that happened; not counted.
	Unmeasurable int64 `json:"unmeasurable"`
}

func (c *PublicationCounts) add(o PublicationCounts) {
	c.Exact += o.Exact
	c.Censored += o.Censored
	c.Pending += o.Pending
	c.Unmeasurable += o.Unmeasurable
}

// ServerResult is one server's (root server identifier's) metrics.
type ServerResult struct {
	Server string `json:"server"`
	// Transports: udp4, udp6, tcp4, tcp6, in that order.
	Transports         []TransportResult `json:"transports"`
	Correctness        Metric            `json:"correctness"`
	CorrectnessCounts  CorrectnessCounts `json:"correctness_counts"`
	PublicationLatency Metric            `json:"publication_latency"`
	PublicationCounts  PublicationCounts `json:"publication_counts"`
	// Pass: every metric passed.
	Pass bool `json:"pass"`
}

// SystemTransport is the root server system's availability and response
// latency over one transport and address family.
type SystemTransport struct {
	Transport string `json:"transport"`
	Family    int    `json:"family"`
	// Availability = AvailableSum ÷ RequiredSum; its Count is Intervals.
	Availability Metric `json:"availability"`
	// AvailableSum = Σ min(k, r) and RequiredSum = Σ k over the
	// (interval, vantage point) pairs in which the vantage point queried.
	AvailableSum    int64 `json:"available_sum"`
	RequiredSum     int64 `json:"required_sum"`
	Intervals       int64 `json:"intervals"`
	IntervalsBelowK int64 `json:"intervals_below_k"`
	// Latency is the median of the pooled k lowest response times per
	// (interval, vantage point); its Count is the number pooled.
	Latency Metric `json:"latency"`
}

// SystemResult is the root server system's metrics.
type SystemResult struct {
	K                  int               `json:"k"`
	Transports         []SystemTransport `json:"transports"`
	Correctness        Metric            `json:"correctness"`
	CorrectnessCounts  CorrectnessCounts `json:"correctness_counts"`
	PublicationLatency Metric            `json:"publication_latency"`
	PublicationCounts  PublicationCounts `json:"publication_counts"`
	Pass               bool              `json:"pass"`
}

// WriteJSON writes the report as indented JSON.
func (r *Report) WriteJSON(w io.Writer) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return fmt.Errorf("rssac: report: %w", err)
	}
	b = append(b, '\n')
	_, err = w.Write(b)
	return err
}

// WriteMarkdown writes the report as Markdown: a pass/fail summary per
// server and for the system, then the numbers and measurement counts.
func (r *Report) WriteMarkdown(w io.Writer) error {
	bw := bufio.NewWriter(w)
	p := func(format string, a ...any) { fmt.Fprintf(bw, format, a...) }
	c := r.Counts
	p("# RSSAC047 report %s\n\n", r.Name)
	p("- Period: %s to %s (%s, %d five-minute intervals)\n",
		r.Period.From.UTC().Format("2006-01-02 15:04"), r.Period.To.UTC().Format("2006-01-02 15:04 UTC"), r.Period.Kind, c.Slots)
	p("- %d servers, %d vantage points, k = %d\n", c.Servers, c.VantagePoints, r.Config.K)
	p("- Observations: %d in the period (%d SOA, %d correctness); %d SOA answers from the %d minutes before; "+
		"%d outside, %d invalid, %d of unknown servers, %d with unknown serials ignored\n\n",
		c.Observations, c.SOA, c.Correctness, c.History, r.Config.HistoryMinutes, c.Outside, c.Invalid, c.UnknownServer, c.UnknownSerials)

	p("## Summary\n\n")
	p("| | avail. udp4 | avail. udp6 | avail. tcp4 | avail. tcp6 | latency udp4 | latency udp6 | latency tcp4 | latency tcp6 | correctness | publication | all |\n")
	p("|---|---|---|---|---|---|---|---|---|---|---|---|\n")
	for _, s := range r.Servers {
		p("| %s |", mdEscape(s.Server))
		for _, t := range s.Transports {
			p(" %s |", verdict(t.Availability.Pass))
		}
		for _, t := range s.Transports {
			p(" %s |", verdict(t.Latency.Pass))
		}
		p(" %s | %s | %s |\n", verdict(s.Correctness.Pass), verdict(s.PublicationLatency.Pass), verdict(s.Pass))
	}
	p("| **system** |")
	for _, t := range r.System.Transports {
		p(" %s |", verdict(t.Availability.Pass))
	}
	for _, t := range r.System.Transports {
		p(" %s |", verdict(t.Latency.Pass))
	}
	p(" %s | %s | %s |\n\n", verdict(r.System.Correctness.Pass), verdict(r.System.PublicationLatency.Pass), verdict(r.System.Pass))

	var th Metric
	if len(r.Servers) > 0 {
		th = r.Servers[0].Transports[0].Availability
	}
	p("## Availability\n\nAnswers with RCODE 0 ÷ queries sent (timeouts and connection errors included); threshold %s.\n\n", pct(th.Threshold))
	p("| server | udp4 | udp6 | tcp4 | tcp6 |\n|---|---:|---:|---:|---:|\n")
	for _, s := range r.Servers {
		p("| %s |", mdEscape(s.Server))
		for _, t := range s.Transports {
			p(" %s |", ratioCell(t.Answered, t.Sent, 3, t.Availability))
		}
		p("\n")
	}
	p("\n| server | transport | sent | RCODE 0 | other RCODE | timeouts |\n|---|---|---:|---:|---:|---:|\n")
	for _, s := range r.Servers {
		for _, t := range s.Transports {
			p("| %s | %s%d | %d | %d | %d | %d |\n", mdEscape(s.Server), t.Transport, t.Family, t.Sent, t.Answered, t.RCodeErrors, t.Timeouts)
		}
	}

	var lu, lt float64
	if len(r.Servers) > 0 {
		lu, lt = r.Servers[0].Transports[0].Latency.Threshold, r.Servers[0].Transports[2].Latency.Threshold
	}
	p("\n## Response latency\n\nMedian response time of the answers with RCODE 0; thresholds %s ms UDP, %s ms TCP.\n\n", num(lu), num(lt))
	p("| server | udp4 | udp6 | tcp4 | tcp6 |\n|---|---:|---:|---:|---:|\n")
	for _, s := range r.Servers {
		p("| %s |", mdEscape(s.Server))
		for _, t := range s.Transports {
			p(" %s |", valueCell(t.Latency, 3, " ms"))
		}
		p("\n")
	}

	th = Metric{}
	if len(r.Servers) > 0 {
		th = r.Servers[0].Correctness
	}
	p("\n## Correctness\n\nCorrect ÷ (correct + incorrect); threshold %s.\n\n", pct(th.Threshold))
	p("| server | correct | incorrect | unchecked | no response | superseded by TCP | correctness | result |\n|---|---:|---:|---:|---:|---:|---:|---|\n")
	for _, s := range r.Servers {
		cc := s.CorrectnessCounts
		p("| %s | %d | %d | %d | %d | %d | %s | %s |\n", mdEscape(s.Server), cc.Correct, cc.Incorrect, cc.Unchecked, cc.NoResponse, cc.Superseded,
			ratioText(cc.Correct, cc.Correct+cc.Incorrect, 3), verdict(s.Correctness.Pass))
	}

	th = Metric{}
	if len(r.Servers) > 0 {
		th = r.Servers[0].PublicationLatency
	}
	p("\n## Publication latency\n\nMedian over (vantage point, serial) of the delay from a serial's first appearance to the first interval in which the server answered the vantage point with it (or newer) over every transport and family; threshold %s min.\n\n", num(th.Threshold))
	p("| server | median | samples | of which censored | pending | unmeasurable | result |\n|---|---:|---:|---:|---:|---:|---|\n")
	for _, s := range r.Servers {
		pc := s.PublicationCounts
		p("| %s | %s | %d | %d | %d | %d | %s |\n", mdEscape(s.Server), valueText(s.PublicationLatency, 1, " min"),
			s.PublicationLatency.Count, pc.Censored, pc.Pending, pc.Unmeasurable, verdict(s.PublicationLatency.Pass))
	}

	sys := &r.System
	p("\n## Root server system\n\n### Availability\n\nΣ min(k, r) ÷ Σ k over (interval, vantage point), r the servers that answered with RCODE 0, k = %d.\n\n", sys.K)
	p("| transport | Σ min(k, r) | Σ k | intervals | below k | availability | threshold | result |\n|---|---:|---:|---:|---:|---:|---:|---|\n")
	for _, t := range sys.Transports {
		p("| %s%d | %d | %d | %d | %d | %s | %s | %s |\n", t.Transport, t.Family, t.AvailableSum, t.RequiredSum, t.Intervals, t.IntervalsBelowK,
			ratioText(t.AvailableSum, t.RequiredSum, 5), pct(t.Availability.Threshold), verdict(t.Availability.Pass))
	}
	p("\n### Response latency\n\nMedian of the k lowest response times of each (interval, vantage point), pooled (all of them where fewer than k answered).\n\n")
	p("| transport | values | median | threshold | result |\n|---|---:|---:|---:|---|\n")
	for _, t := range sys.Transports {
		p("| %s%d | %d | %s | %s ms | %s |\n", t.Transport, t.Family, t.Latency.Count, valueText(t.Latency, 3, " ms"), num(t.Latency.Threshold), verdict(t.Latency.Pass))
	}
	cc := sys.CorrectnessCounts
	p("\n### Correctness\n\n| correct | incorrect | unchecked | no response | superseded by TCP | correctness | threshold | result |\n|---:|---:|---:|---:|---:|---:|---:|---|\n")
	p("| %d | %d | %d | %d | %d | %s | %s | %s |\n", cc.Correct, cc.Incorrect, cc.Unchecked, cc.NoResponse, cc.Superseded,
		ratioText(cc.Correct, cc.Correct+cc.Incorrect, 5), pct(sys.Correctness.Threshold), verdict(sys.Correctness.Pass))
	pc := sys.PublicationCounts
	p("\n### Publication latency\n\nMedian of every server's samples.\n\n| median | samples | of which censored | pending | threshold | result |\n|---:|---:|---:|---:|---:|---|\n")
	p("| %s | %d | %d | %d | %s min | %s |\n", valueText(sys.PublicationLatency, 1, " min"), sys.PublicationLatency.Count, pc.Censored, pc.Pending,
		num(sys.PublicationLatency.Threshold), verdict(sys.PublicationLatency.Pass))
	return bw.Flush()
}

func verdict(pass bool) string {
	if pass {
		return "pass"
	}
	return "**FAIL**"
}

// ratioText is good ÷ total as a percentage with the given decimals,
// rounded down in integer arithmetic, so that a failing ratio never reads
// as its threshold (99.99899 % is not shown as 99.999 %).
func ratioText(good, total int64, decimals int) string {
	if total <= 0 {
		return "no data"
	}
	scale := new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(decimals)), nil)
	v := new(big.Int).Mul(big.NewInt(good), big.NewInt(100))
	v.Mul(v, scale).Quo(v, big.NewInt(total))
	q, r := new(big.Int).QuoRem(v, scale, new(big.Int))
	s := q.String()
	if decimals > 0 {
		s += "." + fmt.Sprintf("%0*d", decimals, r.Int64())
	}
	return s + " %"
}

func ratioCell(good, total int64, decimals int, m Metric) string {
	s := ratioText(good, total, decimals) + fmt.Sprintf(" (n=%d)", m.Count)
	if !m.Pass {
		s += " **FAIL**"
	}
	return s
}

func valueText(m Metric, decimals int, unit string) string {
	if m.Value == nil {
		return "no data"
	}
	return strconv.FormatFloat(*m.Value, 'f', decimals, 64) + unit
}

func valueCell(m Metric, decimals int, unit string) string {
	s := valueText(m, decimals, unit) + fmt.Sprintf(" (n=%d)", m.Count)
	if !m.Pass {
		s += " **FAIL**"
	}
	return s
}

// pct shows a threshold fraction as a percentage, without float noise.
func pct(f float64) string { return num(f*100) + " %" }

func num(f float64) string { return strconv.FormatFloat(math.Round(f*1e6)/1e6, 'f', -1, 64) }

// mdEscape keeps a server name (outside input) inside its table cell.
func mdEscape(s string) string {
	return strings.NewReplacer("|", `\|`, "\n", " ", "\r", " ", "`", "\\`", "*", `\*`, "_", `\_`).Replace(s)
}
