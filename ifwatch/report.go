package ifwatch

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strconv"
	"text/tabwriter"
	"time"
)

// Format is how a report is written.
type Format string

// Report formats.
const (
	FormatTable Format = "table"
	FormatJSON  Format = "json"
	FormatCSV   Format = "csv"
)

// ParseFormat checks a format name ("" is table).
func ParseFormat(s string) (Format, error) {
	switch f := Format(s); f {
	case "":
		return FormatTable, nil
	case FormatTable, FormatJSON, FormatCSV:
		return f, nil
	}
	return "", fmt.Errorf("ifwatch: format %q: want table, json or csv", s)
}

// ReportKind is what a report answers.
type ReportKind string

// Report kinds.
const (
	// ReportRecent: what went down and what came back up in the last N
	// minutes.
	ReportRecent ReportKind = "recent"
	// ReportDowntime: downtime and availability per key and in total over
	// a period.
	ReportDowntime ReportKind = "downtime"
)

// DefaultRecent is the window of the recent report, as the seed asks.
const DefaultRecent = 10 * time.Minute

// Report is an answer built from a ledger. Build it with RecentReport or
// DowntimeReport, and write it with Write.
type Report struct {
	Kind ReportKind
	// Generated is the report's now; times are written in its location.
	Generated time.Time

	// Since starts the window of a recent report: [Since, Generated].
	Since time.Time
	// WentDown are the outages that began or were confirmed in the
	// window, by Start; some may have ended since. CameUp are those that
	// ended or were confirmed ended in the window, by End.
	WentDown, CameUp []Outage

	// Period, Keys and Total are a downtime report's.
	Period Period
	Keys   []KeyDowntime
	Total  Totals
}

// RecentReport answers what went down and what came back up in the
// window before now (DefaultRecent when window is 0). An outage is
// listed as down when its Start or OpenedAt is in the window, and as up
// when its End or ClosedAt is: Start and End are set back to the
// observations, and the confirmation comes down_after (and hold) later,
// so looking at both means a report run every N minutes lists every
// outage once it is confirmed.
func RecentReport(ctx context.Context, l Ledger, now time.Time, window time.Duration) (*Report, error) {
	if window <= 0 {
		window = DefaultRecent
	}
	since := now.Add(-window)
	os, err := l.Overlapping(ctx, since, now.Add(1)) // the window includes now
	if err != nil {
		return nil, fmt.Errorf("ifwatch: recent report: %w", err)
	}
	in := func(t time.Time) bool { return !t.IsZero() && !t.Before(since) && !t.After(now) }
	r := &Report{Kind: ReportRecent, Generated: now, Since: since}
	for _, o := range os {
		if in(o.Start) || in(o.OpenedAt) {
			r.WentDown = append(r.WentDown, o)
		}
		if !o.IsOpen() && (in(o.End) || in(o.ClosedAt)) {
			r.CameUp = append(r.CameUp, o)
		}
	}
	slices.SortStableFunc(r.CameUp, func(a, b Outage) int { return a.End.Compare(b.End) })
	return r, nil
}

// DowntimeReport answers the downtime per key and in total over p (see
// Downtime for the rules), from the ledger's keys and outages. Times are
// written in the location of p.From.
func DowntimeReport(ctx context.Context, l Ledger, p Period, now time.Time) (*Report, error) {
	keys, err := l.Keys(ctx)
	if err != nil {
		return nil, fmt.Errorf("ifwatch: downtime report: keys: %w", err)
	}
	os, err := l.Overlapping(ctx, p.From, p.To)
	if err != nil {
		return nil, fmt.Errorf("ifwatch: downtime report: outages: %w", err)
	}
	r := &Report{Kind: ReportDowntime, Generated: now.In(p.From.Location()), Period: p}
	r.Keys, r.Total = Downtime(p, now, keys, os)
	return r, nil
}

// Write writes the report as a table for people, as JSON (one object),
// or as CSV (one header line, one row per outage or key; a downtime
// report ends with a "total" row). Durations are seconds in JSON and
// CSV, and availability a ratio from 0 to 1; the table shows a
// percentage.
func (r *Report) Write(w io.Writer, f Format) error {
	var err error
	switch f {
	case FormatTable, "":
		err = r.writeTable(w)
	case FormatJSON:
		err = r.writeJSON(w)
	case FormatCSV:
		err = r.writeCSV(w)
	default:
		_, err = ParseFormat(string(f))
	}
	if err != nil {
		return fmt.Errorf("ifwatch: write report: %w", err)
	}
	return nil
}

func (r *Report) loc() *time.Location { return r.Generated.Location() }

// ts formats an instant for JSON and CSV: RFC 3339 in the report's
// location, with the fraction only when there is one; "" for none.
func (r *Report) ts(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.In(r.loc()).Format(time.RFC3339Nano)
}

func (r *Report) tsTable(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.In(r.loc()).Format(time.RFC3339)
}

func seconds(d time.Duration) float64 { return d.Seconds() }

func formatFloat(v float64) string { return strconv.FormatFloat(v, 'f', -1, 64) }

func percent(v float64) string { return strconv.FormatFloat(v*100, 'f', 4, 64) + "%" }

// outageDowntime is an outage's duration up to the report's time.
func (r *Report) outageDowntime(o Outage) time.Duration { return o.Duration(r.Generated) }

func (r *Report) writeTable(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	switch r.Kind {
	case ReportRecent:
		for i, sec := range []struct {
			title string
			os    []Outage
		}{{"Went down", r.WentDown}, {"Came back up", r.CameUp}} {
			if i > 0 {
				fmt.Fprintln(tw)
			}
			fmt.Fprintf(tw, "%s between %s and %s (last %s): %d\n", sec.title,
				r.tsTable(r.Since), r.tsTable(r.Generated), r.Generated.Sub(r.Since), len(sec.os))
			if len(sec.os) == 0 {
				continue
			}
			fmt.Fprintln(tw, "EXPORTER\tIFINDEX\tDOWN SINCE\tUP AGAIN\tDOWNTIME\tCAUSE\tSOURCE\tID")
			for _, o := range sec.os {
				dur := r.outageDowntime(o).String()
				if o.IsOpen() {
					dur += " (still down)"
				}
				fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%s\t%s\t%d\n", o.Key.Exporter, o.Key.IfIndex,
					r.tsTable(o.Start), r.tsTable(o.End), dur, o.Cause, o.Source, o.ID)
			}
		}
	case ReportDowntime:
		fmt.Fprintf(tw, "Downtime %s: %s to %s", r.Period.Name, r.tsTable(r.Period.From), r.tsTable(r.Period.To))
		if r.Generated.Before(r.Period.To) {
			fmt.Fprintf(tw, ", counted up to %s", r.tsTable(r.Generated))
		}
		fmt.Fprintf(tw, "\n")
		fmt.Fprintln(tw, "EXPORTER\tIFINDEX\tCOUNTED FROM\tDOWNTIME\tOUTAGES\tOPEN\tAVAILABILITY")
		for _, k := range r.Keys {
			open := "no"
			if k.Open {
				open = "yes"
			}
			fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%d\t%s\t%s\n", k.Key.Exporter, k.Key.IfIndex,
				r.tsTable(k.From), k.Downtime, k.Outages, open, percent(k.Availability()))
		}
		t := r.Total
		fmt.Fprintf(tw, "TOTAL\t%d keys\t%d with downtime\t%s\t%d\t%d\t%s\n", t.Keys, t.KeysDown,
			t.Downtime, t.Outages, t.Open, percent(t.Availability()))
	default:
		return fmt.Errorf("unknown report kind %q", r.Kind)
	}
	return tw.Flush()
}

type jsonOutage struct {
	ID              OutageID `json:"id"`
	Exporter        string   `json:"exporter"`
	IfIndex         uint32   `json:"if_index"`
	Start           string   `json:"start"`
	End             string   `json:"end,omitempty"`
	Open            bool     `json:"open"`
	DowntimeSeconds float64  `json:"downtime_seconds"`
	Cause           Cause    `json:"cause"`
	SourceKind      string   `json:"source_kind"`
	Source          string   `json:"source"`
	OpenedAt        string   `json:"opened_at"`
	ClosedAt        string   `json:"closed_at,omitempty"`
}

type jsonKey struct {
	Exporter        string  `json:"exporter"`
	IfIndex         uint32  `json:"if_index"`
	From            string  `json:"from"`
	To              string  `json:"to"`
	CountedSeconds  float64 `json:"counted_seconds"`
	DowntimeSeconds float64 `json:"downtime_seconds"`
	Outages         int     `json:"outages"`
	OpenOutages     int     `json:"open_outages"`
	Availability    float64 `json:"availability"`
}

type jsonTotal struct {
	Keys            int     `json:"keys"`
	KeysDown        int     `json:"keys_with_downtime"`
	CountedSeconds  float64 `json:"counted_seconds"`
	DowntimeSeconds float64 `json:"downtime_seconds"`
	Outages         int     `json:"outages"`
	OpenOutages     int     `json:"open_outages"`
	Availability    float64 `json:"availability"`
}

type jsonPeriod struct {
	Name string `json:"name"`
	From string `json:"from"`
	To   string `json:"to"`
}

type jsonReport struct {
	Kind      ReportKind    `json:"kind"`
	Generated string        `json:"generated"`
	Since     string        `json:"since,omitempty"`
	WentDown  *[]jsonOutage `json:"went_down,omitempty"`
	CameUp    *[]jsonOutage `json:"came_up,omitempty"`
	Period    *jsonPeriod   `json:"period,omitempty"`
	Keys      *[]jsonKey    `json:"keys,omitempty"`
	Total     *jsonTotal    `json:"total,omitempty"`
}

func (r *Report) jsonOutages(os []Outage) *[]jsonOutage {
	out := make([]jsonOutage, 0, len(os))
	for _, o := range os {
		out = append(out, jsonOutage{ID: o.ID, Exporter: o.Key.Exporter.String(), IfIndex: o.Key.IfIndex,
			Start: r.ts(o.Start), End: r.ts(o.End), Open: o.IsOpen(), DowntimeSeconds: seconds(r.outageDowntime(o)),
			Cause: o.Cause, SourceKind: string(o.Source.Kind), Source: o.Source.Name,
			OpenedAt: r.ts(o.OpenedAt), ClosedAt: r.ts(o.ClosedAt)})
	}
	return &out
}

func (r *Report) writeJSON(w io.Writer) error {
	j := jsonReport{Kind: r.Kind, Generated: r.ts(r.Generated)}
	switch r.Kind {
	case ReportRecent:
		j.Since = r.ts(r.Since)
		j.WentDown, j.CameUp = r.jsonOutages(r.WentDown), r.jsonOutages(r.CameUp)
	case ReportDowntime:
		j.Period = &jsonPeriod{Name: r.Period.Name, From: r.ts(r.Period.From), To: r.ts(r.Period.To)}
		keys := make([]jsonKey, 0, len(r.Keys))
		for _, k := range r.Keys {
			keys = append(keys, jsonKey{Exporter: k.Key.Exporter.String(), IfIndex: k.Key.IfIndex,
				From: r.ts(k.From), To: r.ts(k.To), CountedSeconds: seconds(k.Counted()),
				DowntimeSeconds: seconds(k.Downtime), Outages: k.Outages, OpenOutages: b2i(k.Open),
				Availability: k.Availability()})
		}
		j.Keys = &keys
		t := r.Total
		j.Total = &jsonTotal{Keys: t.Keys, KeysDown: t.KeysDown, CountedSeconds: seconds(t.Counted),
			DowntimeSeconds: seconds(t.Downtime), Outages: t.Outages, OpenOutages: t.Open, Availability: t.Availability()}
	default:
		return fmt.Errorf("unknown report kind %q", r.Kind)
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(j)
}

func (r *Report) writeCSV(w io.Writer) error {
	cw := csv.NewWriter(w)
	switch r.Kind {
	case ReportRecent:
		_ = cw.Write([]string{"event", "exporter", "if_index", "start", "end", "downtime_seconds", "cause",
			"source_kind", "source", "id", "opened_at", "closed_at"})
		for _, sec := range []struct {
			event string
			os    []Outage
		}{{"down", r.WentDown}, {"up", r.CameUp}} {
			for _, o := range sec.os {
				_ = cw.Write([]string{sec.event, o.Key.Exporter.String(), strconv.FormatUint(uint64(o.Key.IfIndex), 10),
					r.ts(o.Start), r.ts(o.End), formatFloat(seconds(r.outageDowntime(o))), string(o.Cause),
					string(o.Source.Kind), o.Source.Name, strconv.FormatUint(uint64(o.ID), 10),
					r.ts(o.OpenedAt), r.ts(o.ClosedAt)})
			}
		}
	case ReportDowntime:
		_ = cw.Write([]string{"scope", "exporter", "if_index", "from", "to", "counted_seconds", "downtime_seconds",
			"outages", "open_outages", "availability"})
		for _, k := range r.Keys {
			_ = cw.Write([]string{"key", k.Key.Exporter.String(), strconv.FormatUint(uint64(k.Key.IfIndex), 10),
				r.ts(k.From), r.ts(k.To), formatFloat(seconds(k.Counted())), formatFloat(seconds(k.Downtime)),
				strconv.Itoa(k.Outages), strconv.Itoa(b2i(k.Open)), formatFloat(k.Availability())})
		}
		t := r.Total
		to := r.Period.To
		if r.Generated.Before(to) {
			to = r.Generated
		}
		_ = cw.Write([]string{"total", "", "", r.ts(r.Period.From), r.ts(to), formatFloat(seconds(t.Counted)),
			formatFloat(seconds(t.Downtime)), strconv.Itoa(t.Outages), strconv.Itoa(t.Open), formatFloat(t.Availability())})
	default:
		return fmt.Errorf("unknown report kind %q", r.Kind)
	}
	cw.Flush()
	return cw.Error()
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}
