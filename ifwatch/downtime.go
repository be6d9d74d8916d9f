package ifwatch

import (
	"cmp"
	"slices"
	"strconv"
	"time"
)

// Period is the span a downtime report counts over, [From, To).
type Period struct {
	// Name labels the period in reports: "2026-11" or "last 30d".
	Name     string
	From, To time.Time
}

// Month is the calendar month in loc (nil is UTC): from midnight of its
// first day to midnight of the next month's, so a month in a zone with
// daylight saving time lasts its real length (743 or 745 hours).
func Month(year int, month time.Month, loc *time.Location) Period {
	if loc == nil {
		loc = time.UTC
	}
	from := time.Date(year, month, 1, 0, 0, 0, 0, loc)
	return Period{Name: from.Format("2006-01"), From: from, To: from.AddDate(0, 1, 0)}
}

// MonthOf is the calendar month in loc that holds t.
func MonthOf(t time.Time, loc *time.Location) Period {
	if loc == nil {
		loc = time.UTC
	}
	t = t.In(loc)
	return Month(t.Year(), t.Month(), loc)
}

// Rolling is the d before now: [now-d, now).
func Rolling(now time.Time, d time.Duration) Period {
	return Period{Name: "last " + formatDays(d), From: now.Add(-d), To: now}
}

// Last30Days is Rolling(now, 30 days), the "last month" that does not
// depend on the calendar.
func Last30Days(now time.Time) Period { return Rolling(now, 30*24*time.Hour) }

func formatDays(d time.Duration) string {
	if d > 0 && d%(24*time.Hour) == 0 {
		return strconv.FormatInt(int64(d/(24*time.Hour)), 10) + "d"
	}
	return d.String()
}

// KeyDowntime is one key's downtime over a period.
type KeyDowntime struct {
	Key Key
	// From and To bound what is counted: From is the later of the
	// period's start and the key's first-seen time (availability is not
	// charged for the time before a key existed for us), To the earlier
	// of the period's end and now.
	From, To time.Time
	// Downtime is the time within [From, To) covered by the key's
	// outages; an open outage counts up to now. Outages that overlap
	// are counted once.
	Downtime time.Duration
	// Outages counts the outages that overlap [From, To); Open says one
	// of them is still open.
	Outages int
	Open    bool
}

// Counted is To - From, the time availability is counted over.
func (d KeyDowntime) Counted() time.Duration { return d.To.Sub(d.From) }

// Availability is 1 - Downtime/Counted, a ratio from 0 to 1.
func (d KeyDowntime) Availability() float64 { return availability(d.Downtime, d.Counted()) }

// Totals sums the keys of a period.
type Totals struct {
	// Keys counts the keys counted; KeysDown those with downtime, Open
	// those with an outage still open.
	Keys, KeysDown, Open int
	// Outages sums the keys' outages.
	Outages int
	// Downtime and Counted sum the keys' downtime and counted time.
	Downtime, Counted time.Duration
}

// Availability is 1 - Downtime/Counted over all keys: each key weighs by
// the time it was counted.
func (t Totals) Availability() float64 { return availability(t.Downtime, t.Counted) }

func availability(down, counted time.Duration) float64 {
	if counted <= 0 {
		return 1
	}
	return 1 - float64(down)/float64(counted)
}

// Downtime computes each key's downtime over p as of now, and the
// totals. keys are the keys known with their first-seen time (a key
// with outages but not in keys counts from its first outage); outages
// are those that may overlap p, in any order. Outages are clipped to the
// period, an open outage counts up to now, and the period ends at now if
// that is earlier: a month still under way is counted up to now, a month
// to come counts nothing. Keys first seen after the counted part of the
// period are left out. The result is ordered by key.
func Downtime(p Period, now time.Time, keys []KnownKey, outages []Outage) ([]KeyDowntime, Totals) {
	to := p.To
	if now.Before(to) {
		to = now
	}
	if !p.From.Before(to) {
		return nil, Totals{}
	}
	// One row per key, then the outages grouped by row with a stable
	// counting sort, so that each group keeps the input's order.
	rows := make([]KeyDowntime, len(keys), len(keys)+1)
	idx := make(map[mapKey]int32, len(keys))
	sorted := true
	for i, k := range keys {
		rows[i] = KeyDowntime{Key: k.Key, From: k.FirstSeen}
		idx[mk(k.Key)] = int32(i)
		if i > 0 && keys[i-1].Key.Compare(k.Key) >= 0 {
			sorted = false
		}
	}
	of := make([]int32, len(outages))
	for i, o := range outages {
		r, ok := idx[mk(o.Key)]
		if !ok {
			r = int32(len(rows))
			idx[mk(o.Key)] = r
			rows = append(rows, KeyDowntime{Key: o.Key, From: o.Start})
			sorted = false
		} else if o.Start.Before(rows[r].From) {
			rows[r].From = o.Start
		}
		of[i] = r
	}
	start := make([]int32, len(rows)+1)
	for _, r := range of {
		start[r+1]++
	}
	for i := 1; i < len(start); i++ {
		start[i] += start[i-1]
	}
	// Each outage as a span of offsets from p.From, clipped to the
	// period (an open one ends now), placed in its row's group: the
	// union below then reads small spans in order rather than outages
	// scattered in memory.
	limit := to.Sub(p.From)
	spans := make([]span, len(outages))
	next := slices.Clone(start[:len(rows)])
	for i := range outages {
		o := &outages[i]
		end := now
		if !o.IsOpen() {
			end = o.End
		}
		r := of[i]
		spans[next[r]] = span{s: max(o.Start.Sub(p.From), 0), e: min(end.Sub(p.From), limit), open: o.IsOpen()}
		next[r]++
	}

	var tot Totals
	out := rows[:0]
	for r := range rows {
		d := rows[r]
		if d.From.Before(p.From) {
			d.From = p.From
		}
		d.To = to
		if !d.From.Before(d.To) {
			continue
		}
		from := d.From.Sub(p.From)
		group := spans[start[r]:start[r+1]]
		if !slices.IsSortedFunc(group, bySpanStart) {
			slices.SortStableFunc(group, bySpanStart)
		}
		var curS, curE time.Duration
		have := false // a union is being built: [curS, curE)
		for _, sp := range group {
			s, e := max(sp.s, from), sp.e
			if s >= e {
				continue
			}
			d.Outages++
			d.Open = d.Open || sp.open
			switch {
			case !have:
				curS, curE, have = s, e, true
			case s > curE:
				d.Downtime += curE - curS
				curS, curE = s, e
			case e > curE:
				curE = e
			}
		}
		if have {
			d.Downtime += curE - curS
		}
		tot.Keys++
		tot.Outages += d.Outages
		tot.Downtime += d.Downtime
		tot.Counted += d.Counted()
		if d.Downtime > 0 {
			tot.KeysDown++
		}
		if d.Open {
			tot.Open++
		}
		out = append(out, d)
	}
	if !sorted {
		slices.SortFunc(out, func(a, b KeyDowntime) int { return a.Key.Compare(b.Key) })
	}
	return out, tot
}

// span is an outage clipped to a period, as offsets from its start.
type span struct {
	s, e time.Duration
	open bool
}

func bySpanStart(a, b span) int { return cmp.Compare(a.s, b.s) }
