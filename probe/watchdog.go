package probe

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"

	"github.com/netpulse/netpulse/alert"
	"github.com/netpulse/netpulse/internal/diskusage"
)

// Kinds of watchdog alert; each is a value of the kind label of
// netpulse_probe_alert_active.
const (
	// AlertNoOutput: the last run's result file is missing a few minutes
	// after its slot began.
	AlertNoOutput = "no_output"
	// AlertUploadOverdue: a result file has waited longer than
	// alerts.upload_overdue for the collector's acknowledgement.
	AlertUploadOverdue = "upload_overdue"
	// AlertDiskFull: the file system of output_dir is fuller than
	// alerts.disk_used.
	AlertDiskFull = "disk_full"
)

// alertKinds lists the kinds in the order checks run and metrics show.
var alertKinds = []string{AlertNoOutput, AlertUploadOverdue, AlertDiskFull}

// Alert is one watchdog message: a condition that became (or is still)
// active, or one that cleared.
type Alert struct {
	Time   time.Time
	Kind   string
	Active bool
	Detail string
}

// Line is the alert as one line of the alerts file, e.g.
// "2026-11-22T07:19:00Z 001 ALERT no_output: no result file for slot …".
func (a Alert) Line(vp string) string {
	state := "ALERT"
	if !a.Active {
		state = "CLEAR"
	}
	return fmt.Sprintf("%s %s %s %s: %s", a.Time.UTC().Format(time.RFC3339), vp, state, a.Kind, a.Detail)
}

// watchdog checks, a few minutes after each slot, that the slot's run
// wrote its file, that uploads are not overdue and that the disk is not
// full. It raises an alert when a condition becomes true, repeats it
// every Repeat while it holds, and clears it when it no longer does.
type watchdog struct {
	cfg      AlertConfig
	vp       string
	interval time.Duration
	st       store
	upload   bool // whether files are uploaded (else no overdue check)
	disk     diskusage.Source
	log      *slog.Logger
	// first is the first slot the probe was running for: earlier slots
	// are not expected to have a file.
	first time.Time

	file   *alert.File   // nil when off
	syslog *alert.Syslog // nil when off

	mu    sync.Mutex
	state map[string]*alertState
	used  float64 // the disk's last fullness, for the metrics
}

type alertState struct {
	active   bool
	since    time.Time
	lastSent time.Time
	raised   uint64
}

// checkSlot is the slot whose file a check at now looks for: the last
// one whose CheckAfter has passed.
func (w *watchdog) checkSlot(now time.Time) time.Time {
	return now.Add(-w.cfg.CheckAfter).UTC().Truncate(w.interval)
}

// nextCheck is the first check time after now.
func (w *watchdog) nextCheck(now time.Time) time.Time {
	return w.checkSlot(now).Add(w.interval + w.cfg.CheckAfter)
}

// check evaluates every condition at now, delivers what changed and
// returns it.
func (w *watchdog) check(now time.Time) []Alert {
	conds := map[string]string{} // kind -> detail, for the active ones
	slot := w.checkSlot(now)
	if !slot.Before(w.first) {
		p := w.st.path(slot)
		if _, err := os.Stat(p); err != nil {
			conds[AlertNoOutput] = fmt.Sprintf("no result file for the run of slot %s (%s)", slot.Format("2006-01-02T15:04Z"), p)
		}
	}
	if w.upload {
		if name, n, age, ok := w.oldestPending(now); ok && age > w.cfg.UploadOverdue {
			conds[AlertUploadOverdue] = fmt.Sprintf("%d result files not acknowledged by the collector; the oldest, %s, is %s old (limit %s)", n, name, age.Round(time.Second), w.cfg.UploadOverdue)
		}
	}
	used, err := w.disk.Used(w.st.dir)
	if err != nil {
		w.log.Error("probe: watchdog: disk usage", "dir", w.st.dir, "err", err)
	} else if used > w.cfg.DiskUsed {
		conds[AlertDiskFull] = fmt.Sprintf("the disk holding %s is %.1f%% full (limit %.0f%%)", w.st.dir, 100*used, 100*w.cfg.DiskUsed)
	}

	var out []Alert
	w.mu.Lock()
	if err == nil {
		w.used = used
	}
	for _, kind := range alertKinds {
		s := w.state[kind]
		detail, on := conds[kind]
		switch {
		case on && (!s.active || now.Sub(s.lastSent) >= w.cfg.Repeat):
			if !s.active {
				s.since = now
			}
			s.active, s.lastSent = true, now
			s.raised++
			out = append(out, Alert{Time: now, Kind: kind, Active: true, Detail: detail})
		case !on && s.active:
			s.active = false
			out = append(out, Alert{Time: now, Kind: kind, Detail: fmt.Sprintf("cleared after %s", now.Sub(s.since).Round(time.Second))})
		}
	}
	w.mu.Unlock()
	for _, a := range out {
		w.deliver(a)
	}
	return out
}

// oldestPending returns the oldest queued file, how many are queued, and
// its age: from its slot, read from its name, or its modification time.
func (w *watchdog) oldestPending(now time.Time) (name string, n int, age time.Duration, ok bool) {
	names, err := w.st.pending()
	if err != nil || len(names) == 0 {
		return "", 0, 0, false
	}
	oldest := time.Time{}
	for _, nm := range names {
		t, ok := slotOfName(nm)
		if !ok {
			fi, err := os.Stat(filepath.Join(w.st.dir, pendingDir, nm))
			if err != nil {
				continue
			}
			t = fi.ModTime()
		}
		if oldest.IsZero() || t.Before(oldest) {
			oldest, name = t, nm
		}
	}
	if oldest.IsZero() {
		return "", 0, 0, false
	}
	return name, len(names), now.Sub(oldest), true
}

// deliver writes the alert to the alerts file, the log and syslog.
func (w *watchdog) deliver(a Alert) {
	line := a.Line(w.vp)
	if a.Active {
		w.log.Warn("probe: watchdog alert", "kind", a.Kind, "detail", a.Detail)
	} else {
		w.log.Info("probe: watchdog alert cleared", "kind", a.Kind, "detail", a.Detail)
	}
	if w.file != nil {
		if _, err := w.file.Write([]byte(line + "\n")); err != nil {
			w.log.Error("probe: alerts file", "err", err)
		}
	}
	if w.syslog != nil {
		sev := alert.Warning
		if !a.Active {
			sev = alert.Notice
		}
		w.syslog.Send(alert.Event{Time: a.Time, Severity: sev, MsgID: a.Kind, Message: line,
			SD: map[string][]alert.Param{"probe@32473": {{Name: "vp", Value: w.vp}, {Name: "kind", Value: a.Kind}}}})
	}
}

// snapshot returns each kind's state (1 active) and the alerts raised so
// far, for the metrics.
func (w *watchdog) snapshot() (active map[string]bool, raised map[string]uint64, used float64) {
	w.mu.Lock()
	defer w.mu.Unlock()
	active, raised = map[string]bool{}, map[string]uint64{}
	for k, s := range w.state {
		active[k], raised[k] = s.active, s.raised
	}
	return active, raised, w.used
}

// Active lists the kinds of the alerts active now, sorted.
func (w *watchdog) Active() []string {
	a, _, _ := w.snapshot()
	var out []string
	for k, on := range a {
		if on {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out
}

func newWatchdog(cfg AlertConfig, vp string, interval time.Duration, st store, upload bool, disk diskusage.Source, log *slog.Logger) *watchdog {
	w := &watchdog{cfg: cfg, vp: vp, interval: interval, st: st, upload: upload, disk: disk, log: log, state: map[string]*alertState{}}
	for _, k := range alertKinds {
		w.state[k] = &alertState{}
	}
	return w
}
