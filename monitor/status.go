package monitor

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"syscall"
	"time"

	"github.com/netpulse/netpulse/health"
)

// Status is the seed's status number of a proxy.
type Status int

// The statuses, with the states they come with.
const (
	Down    Status = 0 // Connection refused
	Up      Status = 1 // Operational
	Error   Status = 2 // No route to host, Timeout or Other
	NotGood Status = 3 // the health check answered but reports trouble
)

// The states of the seed. Not good's state is "Not good: " and the rules
// that fired.
const (
	StateOperational = "Operational"
	StateRefused     = "Connection refused"
	StateNoRoute     = "No route to host"
	StateTimeout     = "Timeout"
	StateOther       = "Other"
	StateNotGood     = "Not good"
)

// The rule names in a Not good state.
const (
	RuleProblemLine   = "problem line"
	RuleNotForwarding = "not forwarding"
	RuleStale         = "stale device"
	RuleHighwater     = "highwater"
	RuleUnregistered  = "unregistered devices"
)

// classify maps a failed connect or read to a status and state, by errno
// where there is one.
func classify(err error) (Status, string) {
	var errno syscall.Errno
	if errors.As(err, &errno) {
		switch errno {
		case syscall.ECONNREFUSED:
			return Down, StateRefused
		case syscall.EHOSTUNREACH, syscall.ENETUNREACH:
			return Error, StateNoRoute
		case syscall.ETIMEDOUT:
			return Error, StateTimeout
		}
	}
	if errors.Is(err, os.ErrDeadlineExceeded) || errors.Is(err, context.DeadlineExceeded) {
		return Error, StateTimeout
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return Error, StateTimeout
	}
	return Error, StateOther
}

// Result is one poll of one target.
type Result struct {
	Target Target
	Status Status
	// State is the seed's state; for Not good it names the rules that
	// fired, e.g. "Not good: problem line, stale device".
	State string
	// Rules are the Not good rules that fired.
	Rules []string
	// Err is why the poll failed (Down and Error), or the problem line.
	Err string
	// Health is the parsed answer; nil for Down and Error.
	Health *health.Status
	// Time is when the poll started; Duration how long it took.
	Time     time.Time
	Duration time.Duration
}

// evaluate applies the Not good rules to an answer at time now.
func (r Rules) evaluate(st *health.Status, now time.Time) []string {
	var fired []string
	if r.ProblemLine == nil || *r.ProblemLine {
		if !st.Good() {
			fired = append(fired, RuleProblemLine)
		}
	}
	notFwd, stale, hw := false, false, false
	for i := range st.Devices {
		d := &st.Devices[i]
		if (r.NotForwarding == nil || *r.NotForwarding) && d.In1 > 0 && d.Out1 == 0 {
			notFwd = true
		}
		if r.StaleAfter > 0 && !d.LastSeen.IsZero() && now.Sub(d.LastSeen) > r.StaleAfter {
			stale = true
		}
		if r.HighwaterAtLeast > 0 {
			for _, h := range d.Highwater {
				if h >= r.HighwaterAtLeast {
					hw = true
				}
			}
		}
	}
	if notFwd {
		fired = append(fired, RuleNotForwarding)
	}
	if stale {
		fired = append(fired, RuleStale)
	}
	if hw {
		fired = append(fired, RuleHighwater)
	}
	if r.Unregistered && len(st.Unregistered) > 0 {
		fired = append(fired, RuleUnregistered)
	}
	return fired
}

// poll connects to t, reads its health text to EOF (at most
// health.MaxTextSize) and classifies the answer.
func (m *Monitor) poll(ctx context.Context, t Target) Result {
	start := m.now()
	res := Result{Target: t, Time: start}
	d := net.Dialer{Timeout: m.cfg.ConnectTimeout}
	conn, err := d.DialContext(ctx, "tcp", t.Addr())
	if err != nil {
		res.Status, res.State = classify(err)
		res.Err = err.Error()
		res.Duration = m.now().Sub(start)
		return res
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(m.cfg.ReadTimeout))
	st, err := health.ParseText(conn)
	res.Duration = m.now().Sub(start)
	if err != nil {
		res.Status, res.State = classify(err)
		if res.State == StateRefused { // reset after accept: not a refusal
			res.Status, res.State = Error, StateOther
		}
		res.Err = err.Error()
		return res
	}
	res.Health = st
	if res.Rules = m.cfg.Rules.evaluate(st, m.now()); len(res.Rules) > 0 {
		res.Status = NotGood
		res.State = StateNotGood + ": " + strings.Join(res.Rules, ", ")
		if st.Problem != "" {
			res.Err = st.Problem
		}
		return res
	}
	res.Status, res.State = Up, StateOperational
	return res
}

func (s Status) String() string {
	switch s {
	case Down:
		return "Down"
	case Up:
		return "Up"
	case Error:
		return "Error"
	case NotGood:
		return "Not good"
	}
	return fmt.Sprintf("Status(%d)", int(s))
}
