package proxy

import (
	"math"
	"testing"
	"time"
)

func TestMeter(t *testing.T) {
	var m meter
	t0 := time.Unix(1_800_000_000, 0)
	// 100 flows/s for 20 minutes, then 10 flows/s for 2 minutes.
	now := t0
	for ; now.Before(t0.Add(20 * time.Minute)); now = now.Add(time.Second) {
		m.add(now, 100)
	}
	if r := m.rate(now, time.Minute); r != 100 {
		t.Errorf("1-minute rate %v, want 100", r)
	}
	for end := now.Add(2 * time.Minute); now.Before(end); now = now.Add(time.Second) {
		m.add(now, 10)
	}
	if r := m.rate(now, time.Minute); r != 10 {
		t.Errorf("1-minute rate after the drop %v, want 10", r)
	}
	want := (13*60*100.0 + 2*60*10) / 900
	if r := m.rate(now, 15*time.Minute); math.Abs(r-want) > 1e-9 {
		t.Errorf("15-minute rate %v, want %v", r, want)
	}
	// Silence: old slots must not be counted again after the ring wraps.
	if r := m.rate(now.Add(30*time.Minute), 15*time.Minute); r != 0 {
		t.Errorf("rate after 30 minutes of silence %v, want 0", r)
	}
}
