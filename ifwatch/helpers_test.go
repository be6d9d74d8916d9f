package ifwatch_test

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/netpulse/netpulse/ifwatch"
)

// clock is the injected clock of the tests.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Set(t time.Time) {
	c.mu.Lock()
	c.t = t
	c.mu.Unlock()
}

// harness runs a watcher over a ledger with the test clock and keeps the
// events it returns.
type harness struct {
	t      testing.TB
	cfg    ifwatch.Config
	clk    *clock
	ledger ifwatch.Ledger
	w      *ifwatch.Watcher
	events []ifwatch.Event
}

func newHarness(t testing.TB, cfg ifwatch.Config, start time.Time) *harness {
	t.Helper()
	h := &harness{t: t, cfg: cfg, clk: &clock{t: start}, ledger: ifwatch.NewMemLedger()}
	h.restart()
	return h
}

// restart replaces the watcher with a new one over the same ledger, as a
// restarted process would.
func (h *harness) restart() {
	h.t.Helper()
	w, err := ifwatch.New(h.cfg, ifwatch.Deps{Ledger: h.ledger, Now: h.clk.Now})
	if err != nil {
		h.t.Fatal(err)
	}
	if err := w.Restore(context.Background()); err != nil {
		h.t.Fatal(err)
	}
	h.w = w
}

func (h *harness) at(t time.Time) *harness {
	h.clk.Set(t)
	return h
}

func (h *harness) observe(obs ...ifwatch.Observation) []ifwatch.Event {
	h.t.Helper()
	ev, err := h.w.Observe(context.Background(), obs...)
	if err != nil {
		h.t.Fatalf("Observe at %s: %v", h.clk.Now().Format(time.RFC3339), err)
	}
	h.events = append(h.events, ev...)
	return ev
}

func (h *harness) tick() []ifwatch.Event {
	h.t.Helper()
	ev, err := h.w.Tick(context.Background())
	if err != nil {
		h.t.Fatalf("Tick at %s: %v", h.clk.Now().Format(time.RFC3339), err)
	}
	h.events = append(h.events, ev...)
	return ev
}

func (h *harness) outages() []ifwatch.Outage {
	h.t.Helper()
	os, err := h.ledger.Overlapping(context.Background(), time.Time{}, time.Date(3000, 1, 1, 0, 0, 0, 0, time.UTC))
	if err != nil {
		h.t.Fatal(err)
	}
	return os
}

func key(s string, ifIndex uint32) ifwatch.Key {
	return ifwatch.Key{Exporter: netip.MustParseAddr(s), IfIndex: ifIndex}
}

var (
	flowSrc = ifwatch.Source{Name: "collector", Kind: ifwatch.KindFlow}
	sflow   = ifwatch.Source{Name: "sflow", Kind: ifwatch.KindCounters}
	fcA     = ifwatch.Source{Name: "fc-a", Kind: ifwatch.KindStatsFile}
	fcB     = ifwatch.Source{Name: "fc-b", Kind: ifwatch.KindStatsFile}
)

func traffic(src ifwatch.Source, k ifwatch.Key, t time.Time, bps float64) ifwatch.Observation {
	return ifwatch.Observation{Source: src, Key: k, Time: t, Traffic: bps}
}

func oper(src ifwatch.Source, k ifwatch.Key, t time.Time, st ifwatch.OperStatus) ifwatch.Observation {
	return ifwatch.Observation{Source: src, Key: k, Time: t, Traffic: ifwatch.TrafficUnknown, Oper: st}
}

// ts formats a time for failure messages and expectations.
func ts(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format("01-02T15:04:05")
}

// evString is an event as the tests compare them.
func evString(e ifwatch.Event) string {
	return fmt.Sprintf("%s %s %s since %s", ts(e.Time), e.Key, e.Kind, ts(e.Since))
}

func evStrings(es []ifwatch.Event) string {
	var b strings.Builder
	for _, e := range es {
		b.WriteString(evString(e))
		b.WriteByte('\n')
	}
	return b.String()
}

// outString is an outage as the tests compare them.
func outString(o ifwatch.Outage) string {
	return fmt.Sprintf("%s [%s, %s) %s by %s, opened %s closed %s", o.Key, ts(o.Start), ts(o.End), o.Cause, o.Source, ts(o.OpenedAt), ts(o.ClosedAt))
}

func outStrings(os []ifwatch.Outage) string {
	var b strings.Builder
	for _, o := range os {
		b.WriteString(outString(o))
		b.WriteByte('\n')
	}
	return b.String()
}

// diffLines reports the first differing line of two multi-line strings.
func diffLines(got, want string) string {
	g, w := strings.Split(got, "\n"), strings.Split(want, "\n")
	for i := 0; i < len(g) || i < len(w); i++ {
		var gl, wl string
		if i < len(g) {
			gl = g[i]
		}
		if i < len(w) {
			wl = w[i]
		}
		if gl != wl {
			if len(g) > 30 {
				return fmt.Sprintf("line %d:\n got: %q\nwant: %q", i+1, gl, wl)
			}
			return fmt.Sprintf("line %d:\n got: %q\nwant: %q\n--- got:\n%s--- want:\n%s", i+1, gl, wl, got, want)
		}
	}
	return ""
}
