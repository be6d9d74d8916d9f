package probe

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/netpulse/netpulse/internal/diskusage"
	"github.com/netpulse/netpulse/internal/promtest"
	"github.com/netpulse/netpulse/probe/result"
)

// fakeDisk is a disk whose fullness the test sets.
type fakeDisk struct {
	mu   sync.Mutex
	used float64
}

func (d *fakeDisk) set(v float64) { d.mu.Lock(); d.used = v; d.mu.Unlock() }

func (d *fakeDisk) source() diskusage.Source {
	return diskusage.Func(func(string) (float64, error) {
		d.mu.Lock()
		defer d.mu.Unlock()
		return d.used, nil
	})
}

// syslogSink receives UDP syslog messages on loopback.
func syslogSink(t *testing.T) (addr string, next func() string) {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	return pc.LocalAddr().String(), func() string {
		buf := make([]byte, 4096)
		pc.SetReadDeadline(time.Now().Add(5 * time.Second))
		n, _, err := pc.ReadFrom(buf)
		if err != nil {
			t.Fatalf("no syslog message: %v", err)
		}
		return string(buf[:n])
	}
}

func alertGauge(t *testing.T, g prometheus.Gatherer, kind string) float64 {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "netpulse_probe_alert_active" {
			continue
		}
		for _, m := range mf.Metric {
			for _, l := range m.Label {
				if l.GetName() == "kind" && l.GetValue() == kind {
					return m.GetGauge().GetValue()
				}
			}
		}
	}
	t.Fatalf("no alert gauge for %s", kind)
	return 0
}

// TestWatchdog walks the watchdog through an hour and a half on an
// injected clock: a missing file, a file that arrives, an upload that
// waits too long and is then acknowledged, a disk that fills and is
// cleaned, and an alert repeated after alerts.repeat.
func TestWatchdog(t *testing.T) {
	clock := newFakeClock(time.Date(2026, 11, 22, 7, 13, 0, 0, time.UTC))
	disk := &fakeDisk{used: 0.5}
	sysAddr, nextSyslog := syslogSink(t)
	t.Setenv(TokenEnv, "tok")
	cfg := testConfig(t, Target{Name: "x.test", IPv4: "127.0.0.1"})
	cfg.Upload.URL, cfg.Upload.AllowInsecureLoopback = "http://127.0.0.1:9", true
	cfg.Alerts.Syslog.Address = sysAddr
	p := newTestProbe(t, cfg, Deps{Now: clock.Now, Disk: disk.source()})
	w := p.wd
	ctx := context.Background()
	if err := w.file.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := w.syslog.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer w.syslog.Stop(ctx)
	w.first = time.Date(2026, 11, 22, 7, 15, 0, 0, time.UTC)

	// The checks run at :04, :09, :14… for the slot 4 minutes earlier.
	if got := w.nextCheck(clock.Now()); !got.Equal(time.Date(2026, 11, 22, 7, 14, 0, 0, time.UTC)) {
		t.Errorf("next check %s", got)
	}
	at := func(hhmm string) time.Time {
		tm, _ := time.Parse("2006-01-02 15:04", "2026-11-22 "+hhmm)
		return tm
	}
	write := func(slot time.Time) {
		t.Helper()
		run := &result.Run{Version: result.Version, VP: "001", Slot: slot, Start: slot, End: slot}
		if _, err := p.st.save(run, true); err != nil {
			t.Fatal(err)
		}
	}
	type step struct {
		at    string
		do    func()
		want  []string // "ALERT kind" / "CLEAR kind" lines expected, in order
		state []string // active kinds after the check
	}
	steps := []step{
		// 07:14 looks at 07:10, before the probe started: nothing.
		{at: "07:14"},
		// 07:19: the 07:15 run left no file.
		{at: "07:19", want: []string{"ALERT no_output"}, state: []string{AlertNoOutput}},
		// The 07:20 run writes its file (queued for upload): cleared.
		{at: "07:24", do: func() { write(at("07:20")) }, want: []string{"CLEAR no_output"}},
		{at: "07:29", do: func() { write(at("07:25")) }},
		// 07:39: the 07:20 file has waited 19 minutes (limit 15).
		{at: "07:39", do: func() { write(at("07:30")); write(at("07:35")) }, want: []string{"ALERT upload_overdue"}, state: []string{AlertUploadOverdue}},
		// The collector acknowledges everything; the disk fills.
		{at: "07:44", do: func() {
			for _, s := range []string{"07:20", "07:25", "07:30", "07:35"} {
				p.st.ack(result.FileName("001", at(s)))
			}
			write(at("07:40"))
			p.st.ack(result.FileName("001", at("07:40")))
			disk.set(0.85)
		}, want: []string{"CLEAR upload_overdue", "ALERT disk_full"}, state: []string{AlertDiskFull}},
		// Still full, runs stop: no_output joins; disk_full is not repeated
		// before an hour.
		{at: "07:49", want: []string{"ALERT no_output"}, state: []string{AlertDiskFull, AlertNoOutput}},
		{at: "08:39", state: []string{AlertDiskFull, AlertNoOutput}},
		// An hour after each was raised, it is sent again.
		{at: "08:44", want: []string{"ALERT disk_full"}, state: []string{AlertDiskFull, AlertNoOutput}},
		{at: "08:49", want: []string{"ALERT no_output"}, state: []string{AlertDiskFull, AlertNoOutput}},
		{at: "08:54", do: func() { disk.set(0.2); write(at("08:50")) }, want: []string{"CLEAR no_output", "CLEAR disk_full"}},
	}
	var lines []string
	for _, s := range steps {
		clock.Set(at(s.at))
		if s.do != nil {
			s.do()
		}
		alerts := p.CheckAlerts()
		var got []string
		for _, a := range alerts {
			state := "CLEAR"
			if a.Active {
				state = "ALERT"
			}
			got = append(got, state+" "+a.Kind)
			lines = append(lines, a.Line("001"))
		}
		// Order within one check follows alertKinds.
		if fmt.Sprint(sortedLike(got, s.want)) != fmt.Sprint(s.want) {
			t.Errorf("%s: alerts %v, want %v", s.at, got, s.want)
		}
		if fmt.Sprint(w.Active()) != fmt.Sprint(sortStrings(s.state)) {
			t.Errorf("%s: active %v, want %v", s.at, w.Active(), s.state)
		}
		for _, k := range alertKinds {
			want := 0.0
			for _, a := range s.state {
				if a == k {
					want = 1
				}
			}
			if got := alertGauge(t, p.Registry(), k); got != want {
				t.Errorf("%s: netpulse_probe_alert_active{kind=%q} = %g, want %g", s.at, k, got, want)
			}
		}
	}
	if err := w.file.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(cfg.OutputDir, "001-alerts.txt"))
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.TrimSpace(string(data)); got != strings.Join(lines, "\n") {
		t.Errorf("alerts file:\n%s\nwant:\n%s", got, strings.Join(lines, "\n"))
	}
	if !strings.HasPrefix(lines[0], "2026-11-22T07:19:00Z 001 ALERT no_output: no result file for the run of slot 2026-11-22T07:15Z") {
		t.Errorf("first line %q", lines[0])
	}
	// Syslog got the same alerts, as warnings (daemon: <28>) and the
	// clears as notices (<29>).
	first := nextSyslog()
	if !strings.HasPrefix(first, "<28>1 2026-11-22T07:19:00") || !strings.Contains(first, "netpulse-probe") || !strings.Contains(first, "no_output") {
		t.Errorf("syslog: %q", first)
	}
	if second := nextSyslog(); !strings.HasPrefix(second, "<29>1 ") || !strings.Contains(second, "CLEAR no_output") {
		t.Errorf("syslog: %q", second)
	}
	promtest.Lint(t, p.Registry(), "netpulse_probe_", "netpulse_probe_alert_active", "netpulse_probe_alerts_total", "netpulse_probe_disk_used_ratio", "netpulse_probe_pending_uploads")
}

// sortedLike returns got reordered as want where they hold the same
// elements (the order within a check is not part of the contract).
func sortedLike(got, want []string) []string {
	if len(got) != len(want) {
		return got
	}
	left := append([]string(nil), got...)
	var out []string
	for _, w := range want {
		for i, g := range left {
			if g == w {
				out = append(out, g)
				left = append(left[:i], left[i+1:]...)
				break
			}
		}
	}
	if len(left) > 0 {
		return got
	}
	return out
}

func sortStrings(s []string) []string {
	out := slices.Clone(s)
	slices.Sort(out)
	return out
}
