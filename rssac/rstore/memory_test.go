package rstore_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/netpulse/netpulse/rssac/rstore"
	"github.com/netpulse/netpulse/rssac/rstore/rstoretest"
)

func TestMemory(t *testing.T) {
	rstoretest.Run(t, rstoretest.Harness{Open: func(t testing.TB) rstore.Store {
		m := rstore.NewMemory()
		t.Cleanup(func() { m.Close() })
		return m
	}})
}

// BenchmarkMemoryMonth: the scale load into memory, as the baseline of the
// engines' figures (go test -run - -bench MemoryMonth -benchtime 1x).
func BenchmarkMemoryMonth(b *testing.B) {
	rstoretest.Scale(b, func(b *testing.B) rstore.Store { return rstore.NewMemory() }, rstoretest.ScaleFromEnv())
}

// TestValues: the adapter for rssac.Compute yields the observations and
// leaves the stream's error for the caller.
func TestValues(t *testing.T) {
	m := rstore.NewMemory()
	ctx := context.Background()
	for i := range 3 {
		slot := rstoretest.Oct.Add(time.Duration(i) * 5 * time.Minute)
		if err := m.AddRun(ctx, rstoretest.Key("001", slot), rstoretest.Synth("001", slot, 4)); err != nil {
			t.Fatal(err)
		}
	}
	var err error
	n := 0
	for range rstore.Values(m.Observations(ctx, rstoretest.Oct, rstoretest.Oct.Add(time.Hour)), &err) {
		n++
	}
	if n != 12 || err != nil {
		t.Errorf("Values: %d observations, %v; want 12, nil", n, err)
	}
	// Stopping early is allowed.
	n = 0
	for range rstore.Values(m.Observations(ctx, rstoretest.Oct, rstoretest.Oct.Add(time.Hour)), &err) {
		n++
		break
	}
	if n != 1 || err != nil {
		t.Errorf("Values stopped early: %d, %v", n, err)
	}
	boom := errors.New("boom")
	n = 0
	for range rstore.Values(rstore.Fail(boom), &err) {
		n++
	}
	if n != 0 || !errors.Is(err, boom) {
		t.Errorf("Values of a failing stream: %d observations, %v", n, err)
	}
	// A closed store fails.
	m.Close()
	if err := m.AddRun(ctx, rstoretest.Key("001", rstoretest.Oct.Add(time.Hour)), nil); !errors.Is(err, rstore.ErrClosed) {
		t.Errorf("AddRun after Close: %v", err)
	}
	if _, err := rstore.Collect(m.Observations(ctx, rstoretest.Oct, rstoretest.Oct.Add(time.Hour))); !errors.Is(err, rstore.ErrClosed) {
		t.Errorf("Observations after Close: %v", err)
	}
}
