package demo

import (
	"bytes"
	"maps"
	"math"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/netpulse/netpulse/flow"
)

// noFlaps is the default configuration with no silences.
func noFlaps() Config {
	c := testConfig()
	c.Devices = DefaultDevices()
	for i := range c.Devices {
		for j := range c.Devices[i].Interfaces {
			c.Devices[i].Interfaces[j].Flaps = false
		}
	}
	return c
}

func day(h, m int) time.Time { return time.Date(2026, 11, 2, h, m, 0, 0, time.UTC) }

// TestDiurnal checks the curve as documented: mean 1 over a day, 0.40 at
// 04:00, 1.63 from 20:00 to 21:00, continuous, and following the time of
// day in the configured location.
func TestDiurnal(t *testing.T) {
	sum, lo, hi := 0.0, math.Inf(1), math.Inf(-1)
	var loAt, hiAt time.Time
	prev := Diurnal(day(0, 0).Add(-time.Minute))
	for m := 0; m < 24*60; m++ {
		at := day(0, 0).Add(time.Duration(m) * time.Minute)
		v := Diurnal(at)
		sum += v
		if v < lo {
			lo, loAt = v, at
		}
		if v > hi {
			hi, hiAt = v, at
		}
		if math.Abs(v-prev) > 0.01 {
			t.Errorf("%s: jumps from %.3f to %.3f in a minute", at.Format("15:04"), prev, v)
		}
		prev = v
	}
	if mean := sum / (24 * 60); math.Abs(mean-1) > 0.001 {
		t.Errorf("mean over a day %.4f, want 1", mean)
	}
	if loAt.Hour() != 4 || loAt.Minute() != 0 || math.Abs(lo-0.40) > 0.005 {
		t.Errorf("minimum %.3f at %s, want 0.40 at 04:00", lo, loAt.Format("15:04"))
	}
	if hiAt.Hour() != 20 || math.Abs(hi-1.63) > 0.005 {
		t.Errorf("maximum %.3f at %s, want 1.63 at 20:00", hi, hiAt.Format("15:04"))
	}

	// The simulator reads the time of day in its location: 20:30 in UTC
	// is 04:30 in a place 8 hours ahead.
	cfg := noFlaps()
	cfg.Location = time.FixedZone("UTC+8", 8*3600)
	s := newSim(t, cfg)
	if got, want := s.Rate(day(20, 30)), cfg.FlowsPerSecond*Diurnal(day(4, 30)); math.Abs(got-want) > 1e-9 {
		t.Errorf("rate at 20:30 UTC in UTC+8: %.1f/s, want %.1f/s (04:30's)", got, want)
	}
	// A demo, not a benchmark: a few hundred flows per second at peak.
	if peak := newSim(t, testConfig()).Rate(day(20, 30)); peak > 400 {
		t.Errorf("default peak rate %.0f flows/s, want a few hundred at most", peak)
	}
}

// TestRateFollowsCurve counts the flow records sent over two simulated
// minutes at night and in the evening peak: each must be the curve's
// rate, and the evening about four times the night.
func TestRateFollowsCurve(t *testing.T) {
	count := func(start time.Time) (got, want float64) {
		s := newSim(t, noFlaps())
		run(s, start, 2*time.Minute, 100*time.Millisecond)
		for sec := 0; sec < 120; sec++ {
			want += s.Rate(start.Add(time.Duration(sec)*time.Second + time.Second/2))
		}
		return float64(s.Totals().Flows.Flows), want
	}
	night, wantNight := count(day(4, 0))
	peak, wantPeak := count(day(20, 0))
	for _, c := range []struct {
		name      string
		got, want float64
	}{{"04:00", night, wantNight}, {"20:00", peak, wantPeak}} {
		if math.Abs(c.got-c.want)/c.want > 0.02 {
			t.Errorf("%s: %.0f flows in 2 minutes, want %.0f", c.name, c.got, c.want)
		}
	}
	if r := peak / night; r < 3.5 || r > 4.5 {
		t.Errorf("evening/night ratio %.2f, want about 4", r)
	}
}

// appOf names the application of a request flow by its server port.
func appOf(r *flow.Record) string {
	switch {
	case r.Proto == protoICMP || r.Proto == protoICMPv6:
		return "icmp"
	case r.Proto == protoUDP && r.DstPort == 443:
		return "quic"
	}
	for _, a := range apps {
		if a.proto == r.Proto && slices.Contains(a.ports, r.DstPort) && a.name != "quic" {
			return a.name
		}
	}
	return "?"
}

// TestMixAndTopTalkers draws conversations and checks the application mix
// against the documented weights, the IPv6 share, and that a few hosts
// and servers carry most of them.
func TestMixAndTopTalkers(t *testing.T) {
	s := newSim(t, noFlaps())
	s.Step(t0)
	d := s.devs[1] // NetFlow v9: IPv4 and IPv6
	const n = 50000
	mix := map[string]int{}
	hosts, servers := map[[2]int]int{}, map[netip.Addr]int{}
	v6 := 0
	for i := 0; i < n; i++ {
		c, ok := d.newConversation(t0)
		if !ok {
			t.Fatal("conversation lost with no silence scheduled")
		}
		app := appOf(&c.req)
		mix[app]++
		hosts[[2]int{c.li, c.slot}]++
		if app == "https" || app == "quic" || app == "http" {
			ext := c.req.DstAddr
			if c.req.SrcAS != localAS { // opened from outside
				ext = c.req.SrcAddr
			}
			servers[ext]++
		}
		if c.req.SrcAddr.Is6() {
			v6++
		}
	}
	for _, a := range apps {
		got := 100 * float64(mix[a.name]) / n
		if math.Abs(got-a.weight) > 1 {
			t.Errorf("%s: %.1f%% of conversations, want %.0f%%", a.name, got, a.weight)
		}
	}
	if mix["?"] > 0 {
		t.Errorf("%d conversations of no known application", mix["?"])
	}
	if got := float64(v6) / n; math.Abs(got-0.3) > 0.01 {
		t.Errorf("IPv6 share %.3f, want 0.3", got)
	}

	skew(t, "hosts", slices.Collect(maps.Values(hosts)), s.cfg.Hosts, 0.06, 0.4)
	skew(t, "web servers", slices.Collect(maps.Values(servers)), s.cfg.Services, 0.08, 0.5)
}

// skew checks that the most popular of a population has at least topMin
// of the counts, and its top tenth at least tenthMin, but that no one
// has more than a quarter.
func skew(t *testing.T, what string, counts []int, population int, topMin, tenthMin float64) {
	t.Helper()
	slices.Sort(counts)
	slices.Reverse(counts)
	total, tenth := 0, 0
	for i, v := range counts {
		total += v
		if i < population/10 {
			tenth += v
		}
	}
	top, share := float64(counts[0])/float64(total), float64(tenth)/float64(total)
	if top < topMin || share < tenthMin {
		t.Errorf("%s: top %.1f%%, top tenth %.1f%%; want at least %.0f%% and %.0f%%", what, 100*top, 100*share, 100*topMin, 100*tenthMin)
	}
	if top > 0.25 {
		t.Errorf("%s: top %.1f%%: too skewed to look like a network", what, 100*top)
	}
	t.Logf("%s: top %.1f%%, top tenth %.1f%% of %d", what, 100*top, 100*share, total)
}

// TestSilenceSchedule runs the default configuration past its second
// silence: the flapping interfaces carry no flow while silent and sFlow
// reports them down with frozen counters; the others carry on; and the
// first silence begins within two minutes of the start.
func TestSilenceSchedule(t *testing.T) {
	cfg := testConfig()
	s := newSim(t, cfg)
	dgs := run(s, t0, 12*time.Minute+30*time.Second, 250*time.Millisecond)

	first := t0.Add(cfg.SilenceAfter)
	if cfg.SilenceAfter > 2*time.Minute {
		t.Errorf("first silence %v after the start, want within two minutes", cfg.SilenceAfter)
	}
	windows := [][2]time.Time{{first, first.Add(cfg.SilenceFor)}, {first.Add(cfg.SilenceEvery), first.Add(cfg.SilenceEvery + cfg.SilenceFor)}}
	in := func(at time.Time) bool {
		for _, w := range windows {
			if !at.Before(w[0]) && at.Before(w[1]) {
				return true
			}
		}
		return false
	}
	// A flow made just before a silence is sent up to an export interval
	// later.
	grace := cfg.ExportInterval + cfg.Tick
	type key struct {
		id      uint64
		ifIndex uint32
	}
	flaps := map[key]bool{}
	for _, d := range cfg.Devices {
		for _, ifc := range d.Interfaces {
			if ifc.Flaps {
				flaps[key{d.ID, ifc.Index}] = true
			}
		}
	}
	if len(flaps) < 2 {
		t.Fatalf("%d flapping interfaces by default, want some", len(flaps))
	}
	for k := range flaps {
		for at := t0; at.Before(t0.Add(12 * time.Minute)); at = at.Add(10 * time.Second) {
			if got := s.Silent(k.id, k.ifIndex, at); got != in(at) {
				t.Errorf("device %d interface %d at +%v: Silent %v", k.id, k.ifIndex, at.Sub(t0), got)
			}
		}
		if s.Silent(k.id, 1, first.Add(time.Minute)) {
			t.Errorf("device %d: interface 1 silent too", k.id)
		}
	}

	flowsIn := map[key][2]int{}   // outside silences, inside
	others := map[uint64][2]int{} // flows on the other interfaces
	type sample struct {
		at     time.Time
		octets uint64
	}
	last := map[key]sample{}
	for _, dg := range dgs {
		inside := in(dg.Time) && in(dg.Time.Add(-grace))
		for i := range dg.Records {
			r := &dg.Records[i]
			if r.Kind == flow.KindCounters {
				k := key{dg.DeviceID, r.Counters.IfIndex}
				if !flaps[k] {
					if !r.Counters.IfOperUp {
						t.Errorf("device %d interface %d reported down", k.id, k.ifIndex)
					}
					continue
				}
				c := r.Counters
				if c.IfOperUp == in(dg.Time) {
					t.Errorf("device %d interface %d at +%v: oper up %v", k.id, k.ifIndex, dg.Time.Sub(t0), c.IfOperUp)
				}
				octets := c.InOctets + c.OutOctets
				if p, ok := last[k]; ok && in(p.at) && in(dg.Time) && dg.Time.Sub(p.at) < cfg.SilenceFor && octets != p.octets {
					t.Errorf("device %d interface %d at +%v: counters moved while silent", k.id, k.ifIndex, dg.Time.Sub(t0))
				}
				last[k] = sample{dg.Time, octets}
				continue
			}
			for _, ifIndex := range []uint32{r.InIf, r.OutIf} {
				k := key{dg.DeviceID, ifIndex}
				if !flaps[k] {
					continue
				}
				n := flowsIn[k]
				if inside {
					n[1]++
				} else {
					n[0]++
				}
				flowsIn[k] = n
			}
			if _, flapping := flaps[key{dg.DeviceID, 4}]; flapping && r.InIf != 4 && r.OutIf != 4 {
				n := others[dg.DeviceID]
				if inside {
					n[1]++
				} else {
					n[0]++
				}
				others[dg.DeviceID] = n
			}
		}
	}
	for k := range flaps {
		if n := flowsIn[k]; n[1] != 0 || n[0] < 100 {
			t.Errorf("device %d interface %d: %d flows while silent, %d otherwise", k.id, k.ifIndex, n[1], n[0])
		}
		if n := others[k.id]; n[1] < 100 {
			t.Errorf("device %d: its other interfaces carried %d flows during the silences", k.id, n[1])
		}
	}
}

// TestDeterministic steps two simulators with the same configuration
// through the same times: the bytes must be the same; another seed must
// change them.
func TestDeterministic(t *testing.T) {
	payloads := func(seed uint64) [][]byte {
		c := testConfig()
		c.Seed = seed
		var out [][]byte
		for _, dg := range run(newSim(t, c), t0, 20*time.Second, 100*time.Millisecond) {
			out = append(out, dg.Payload)
		}
		return out
	}
	a, b, c := payloads(7), payloads(7), payloads(8)
	if !slices.EqualFunc(a, b, bytes.Equal) {
		t.Error("same seed, different datagrams")
	}
	if slices.EqualFunc(a, c, bytes.Equal) {
		t.Error("another seed, same datagrams")
	}
}

// TestServersDistinct: the largest server population still has an
// address of its own for every server.
func TestServersDistinct(t *testing.T) {
	servers, _ := buildServers(maxServices, 1)
	seen := map[netip.Addr]bool{}
	for _, s := range servers {
		if seen[s.v4] || seen[s.v6] {
			t.Fatalf("address %v or %v used twice", s.v4, s.v6)
		}
		seen[s.v4], seen[s.v6] = true, true
	}
}
