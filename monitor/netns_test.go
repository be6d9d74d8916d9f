//go:build linux

package monitor

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"runtime"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/netpulse/netpulse/internal/integration"
)

// TestNoRouteNetns reaches "No route to host" for real: inside a network
// namespace the test creates, where only lo is up, 192.0.2.1 has no
// route (ENETUNREACH), and 198.51.100.0/24 has an unreachable route
// (EHOSTUNREACH). Only addresses inside that namespace are dialled.
func TestNoRouteNetns(t *testing.T) {
	if os.Geteuid() != 0 {
		// Not a missing peer: the errno unit test covers this case.
		t.Skip("NO-ROUTE TEST SKIPPED: not root, cannot create a network namespace (TestClassify covers the errnos)")
	}
	ip := integration.Tool(t, "ip")
	ns := fmt.Sprintf("np-mon-%d", rand.IntN(1<<30))
	run := func(args ...string) {
		t.Helper()
		if out, err := exec.Command(ip, args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %v: %v: %s", args, err, out)
		}
	}
	if out, err := exec.Command(ip, "netns", "add", ns).CombinedOutput(); err != nil {
		integration.Missing(t, fmt.Sprintf("ip netns add: %v: %s", err, out))
	}
	t.Cleanup(func() { exec.Command(ip, "netns", "del", ns).Run() })
	run("-n", ns, "link", "set", "lo", "up")
	run("-n", ns, "route", "add", "unreachable", "198.51.100.0/24")

	c := testConfig(
		Target{Name: "no-route", IP: "192.0.2.1", Port: 9996},
		Target{Name: "unreachable", IP: "198.51.100.1", Port: 9996},
	)
	m := newMonitor(t, c, nil)
	type out struct {
		res []Result
		err error
	}
	ch := make(chan out, 1)
	go func() {
		// The thread enters the namespace and is never given back (the
		// goroutine ends locked, so the runtime discards the thread).
		runtime.LockOSThread()
		f, err := os.Open("/var/run/netns/" + ns)
		if err != nil {
			ch <- out{err: err}
			return
		}
		defer f.Close()
		if err := unix.Setns(int(f.Fd()), unix.CLONE_NEWNET); err != nil {
			ch <- out{err: fmt.Errorf("setns: %w", err)}
			return
		}
		// poll dials from this goroutine: a single address is dialled
		// serially, so the socket is made in the namespace.
		var rs []Result
		for _, tg := range c.Targets {
			rs = append(rs, m.poll(context.Background(), tg))
		}
		ch <- out{res: rs}
	}()
	o := <-ch
	if o.err != nil {
		t.Fatal(o.err)
	}
	for _, r := range o.res {
		if r.Status != Error || r.State != StateNoRoute {
			t.Errorf("%s: got %d %q (%s), want 2 %q", r.Target.Name, r.Status, r.State, r.Err, StateNoRoute)
		}
	}
}
