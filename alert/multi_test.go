package alert

import (
	"context"
	"errors"
	"reflect"
	"testing"
	"time"
)

// recorder is a Sender that notes its calls in a shared log.
type recorder struct {
	name     string
	calls    *[]string
	events   []Event
	startErr error
	stopErr  error
}

func (r *recorder) Start(context.Context) error {
	*r.calls = append(*r.calls, "start "+r.name)
	return r.startErr
}
func (r *recorder) Send(ev Event) { r.events = append(r.events, ev) }
func (r *recorder) Stop(context.Context) error {
	*r.calls = append(*r.calls, "stop "+r.name)
	return r.stopErr
}

func TestMulti(t *testing.T) {
	var calls []string
	a, b, c := &recorder{name: "a", calls: &calls}, &recorder{name: "b", calls: &calls}, &recorder{name: "c", calls: &calls}
	m := Multi{a, b, c}
	ctx := context.Background()
	if err := m.Start(ctx); err != nil {
		t.Fatal(err)
	}
	m.Send(Event{Severity: Notice, Message: "up"})
	if len(a.events) != 1 || len(c.events) != 1 || a.events[0].Time.IsZero() || !a.events[0].Time.Equal(c.events[0].Time) {
		t.Errorf("every sender gets the event, stamped once: %+v %+v", a.events, c.events)
	}
	stamped := Event{Time: t0, Message: "x"}
	m.Send(stamped)
	if !b.events[1].Time.Equal(t0) {
		t.Errorf("time overwritten: %v", b.events[1].Time)
	}
	b.stopErr = errors.New("b failed")
	err := m.Stop(ctx)
	if err == nil || err.Error() != "b failed" {
		t.Errorf("Stop: %v", err)
	}
	want := []string{"start a", "start b", "start c", "stop c", "stop b", "stop a"}
	if !reflect.DeepEqual(calls, want) {
		t.Errorf("calls %q, want %q", calls, want)
	}

	// A failed start stops those already started, in reverse.
	calls = nil
	b.startErr = errors.New("no")
	if err := m.Start(ctx); err == nil {
		t.Error("Start: no error")
	}
	want = []string{"start a", "start b", "stop a"}
	if !reflect.DeepEqual(calls, want) {
		t.Errorf("calls %q, want %q", calls, want)
	}
}

// TestMultiRealSenders fans one event to a file and a webhook.
func TestMultiRealSenders(t *testing.T) {
	h := &hook{}
	w := startWebhook(t, h, WebhookConfig{})
	f := openFile(t, FileConfig{Path: t.TempDir() + "/events.jsonl"})
	m := Multi{w, f}
	m.Send(Event{Time: t0, Severity: Critical, MsgID: "ifdown", Message: "all down"})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := m.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	got := lines(t, f.cfg.Path)
	if posts := h.got(); len(posts) != 1 || len(got) != 1 || posts[0] != got[0] {
		t.Errorf("webhook %q, file %q: want the same JSON", posts, got)
	}
}

func TestSeverityAndFacilityNames(t *testing.T) {
	for s := Emergency; s <= Debug; s++ {
		back, err := ParseSeverity(s.String())
		if err != nil || back != s {
			t.Errorf("%v: %v %v", s, back, err)
		}
	}
	for in, want := range map[string]Severity{"emerg": Emergency, "crit": Critical, "ERR": Error, "warn": Warning} {
		if got, err := ParseSeverity(in); err != nil || got != want {
			t.Errorf("ParseSeverity(%q) = %v, %v", in, got, err)
		}
	}
	if _, err := ParseSeverity("fatal"); err == nil {
		t.Error("fatal parsed")
	}
	if _, err := Severity(8).MarshalText(); err == nil {
		t.Error("severity 8 marshalled")
	}
	for f := Facility(0); f < 24; f++ {
		back, err := ParseFacility(f.String())
		if err != nil || back != f {
			t.Errorf("%v: %v %v", f, back, err)
		}
	}
}
