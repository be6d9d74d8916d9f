package probe

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os/exec"
	"strings"
	"time"

	"github.com/netpulse/netpulse/probe/result"
)

// lookScamper finds the scamper program.
func lookScamper(name string) (string, error) {
	if name == "" {
		name = "scamper"
	}
	return exec.LookPath(name)
}

// scamperTrace runs `scamper -O json -c "trace -P icmp-paris …" -i ADDR`
// (Debian's scamper) and records its hops. scamper needs raw sockets
// too, but it may be installed with the privilege (setuid or a file
// capability) where netpulse runs without it.
func scamperTrace(ctx context.Context, cfg TraceConfig, target string, addr netip.Addr) result.Trace {
	tr := result.Trace{Target: target, Address: addr.String(), Family: family(addr), Method: MethodScamper, Start: time.Now().UTC()}
	bin, err := lookScamper(cfg.Scamper)
	if err != nil {
		tr.Error = "scamper: " + err.Error()
		return tr
	}
	wait := int((cfg.Wait + time.Second - 1) / time.Second) // whole seconds, at least 1
	wait = max(wait, 1)
	// A bound on the worst case, should scamper hang.
	limit := time.Duration(cfg.MaxHops*cfg.Attempts*wait)*time.Second + 10*time.Second
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	command := fmt.Sprintf("trace -P icmp-paris -q %d -w %d -m %d -g %d", cfg.Attempts, wait, cfg.MaxHops, cfg.GapLimit)
	cmd := exec.CommandContext(ctx, bin, "-O", "json", "-c", command, "-i", addr.String())
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		msg := strings.TrimSpace(stderr.String())
		if len(msg) > 200 {
			msg = msg[:200]
		}
		tr.Error = fmt.Sprintf("scamper: %v %s", err, msg)
		return tr
	}
	st, err := parseScamper(out, addr)
	if err != nil {
		tr.Error = err.Error()
		return tr
	}
	if !st.start.IsZero() {
		tr.Start = st.start
	}
	tr.Hops, tr.Reached = st.hops, st.reached
	return tr
}

// scamperTraceResult is what parseScamper reads from scamper's output.
type scamperTraceResult struct {
	start   time.Time
	hops    []result.Hop
	reached bool
}

// maxScamperTTL bounds the TTLs read (IP's TTL is 8 bits).
const maxScamperTTL = 255

// parseScamper reads scamper's JSON output (one object per line) and
// returns the trace to dst: one Hop per TTL up to the last one that
// answered, each with its replies; a TTL without any reply gets one
// empty reply per attempt scamper made. It is fed a program's output, so
// it checks everything and never panics.
func parseScamper(out []byte, dst netip.Addr) (scamperTraceResult, error) {
	var res scamperTraceResult
	type hop struct {
		Addr     string  `json:"addr"`
		ProbeTTL int     `json:"probe_ttl"`
		RTT      float64 `json:"rtt"`
	}
	type trace struct {
		Type       string `json:"type"`
		Dst        string `json:"dst"`
		StopReason string `json:"stop_reason"`
		Attempts   int    `json:"attempts"`
		Start      struct {
			Sec  int64 `json:"sec"`
			Usec int64 `json:"usec"`
		} `json:"start"`
		Hops []hop `json:"hops"`
	}
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 0, 64<<10), 16<<20)
	for sc.Scan() {
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 || line[0] != '{' {
			continue
		}
		var t trace
		if json.Unmarshal(line, &t) != nil || t.Type != "trace" {
			continue
		}
		if a, err := netip.ParseAddr(t.Dst); err != nil || a.Unmap() != dst {
			continue
		}
		if t.Start.Sec > 0 && t.Start.Sec < 1<<40 && t.Start.Usec >= 0 && t.Start.Usec < 1e6 {
			res.start = time.Unix(t.Start.Sec, t.Start.Usec*1000).UTC()
		}
		attempts := min(max(t.Attempts, 1), 10)
		byTTL := map[int][]result.HopReply{}
		last := 0
		for _, h := range t.Hops {
			if h.ProbeTTL < 1 || h.ProbeTTL > maxScamperTTL {
				continue
			}
			a, err := netip.ParseAddr(h.Addr)
			if err != nil {
				continue
			}
			rtt := h.RTT
			if rtt < 0 || rtt > 3600e3 {
				rtt = 0
			}
			byTTL[h.ProbeTTL] = append(byTTL[h.ProbeTTL], result.HopReply{Addr: a.Unmap().String(), RTTMS: rtt})
			last = max(last, h.ProbeTTL)
		}
		for ttl := 1; ttl <= last; ttl++ {
			rs := byTTL[ttl]
			if len(rs) == 0 {
				rs = make([]result.HopReply, attempts)
			}
			res.hops = append(res.hops, result.Hop{TTL: ttl, Replies: rs})
		}
		res.reached = t.StopReason == "COMPLETED"
		return res, nil
	}
	if err := sc.Err(); err != nil {
		return res, fmt.Errorf("scamper: output: %w", err)
	}
	return res, errors.New("scamper: no trace to " + dst.String() + " in its output")
}
