package proxy

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/netpulse/netpulse/internal/syncbuf"

	"github.com/netpulse/netpulse/capture"
	"github.com/netpulse/netpulse/wire/wiretest"
)

// childEnv, when set in the environment, makes this test binary a proxy
// process (see TestChildProxy): its value is the proxy's command line,
// one argument per line.
const childEnv = "NETPULSE_TEST_PROXY_ARGS"

// TestChildProxy is not a test: re-executed by TestOutageKill with
// childEnv set, it runs a proxy from kproxy-style flags as `netpulse
// proxy` does, prints where it listens, and runs until SIGTERM (flush and
// exit) or SIGKILL.
func TestChildProxy(t *testing.T) {
	args, ok := os.LookupEnv(childEnv)
	if !ok {
		t.Skip("runs only as the child process of TestOutageKill")
	}
	os.Exit(runChildProxy(strings.Split(args, "\n")))
}

func runChildProxy(args []string) int {
	set := DefaultSettings()
	fs := flag.NewFlagSet("proxy", flag.ContinueOnError)
	set.Flags(fs)
	if err := fs.Parse(args); err != nil {
		return 2
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	svc, err := NewService(set, log)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	if err := svc.Start(ctx); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Printf("listening flow=%s health=%s\n", svc.Proxy.Addr(), svc.Health.Addr())
	<-ctx.Done()
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := svc.Stop(sctx); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

// child is a proxy running in a process of its own.
type child struct {
	cmd    *exec.Cmd
	flow   netip.AddrPort
	health string
	stderr *syncbuf.Buffer
	done   chan struct{} // closed once the process is waited for
	err    error         // cmd.Wait's, once done is closed
}

// startChild re-executes the test binary as a proxy with args.
func startChild(t *testing.T, args ...string) *child {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestChildProxy$")
	cmd.Env = append(os.Environ(), childEnv+"="+strings.Join(args, "\n"))
	c := &child{cmd: cmd, stderr: new(syncbuf.Buffer), done: make(chan struct{})}
	cmd.Stderr = c.stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill() // an error when it already exited
		<-c.done
	})
	line := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if l := sc.Text(); strings.HasPrefix(l, "listening ") {
				line <- l
			}
		}
		io.Copy(io.Discard, out)
		c.err = cmd.Wait()
		close(c.done)
	}()
	select {
	case l := <-line:
		var flowAddr string
		if _, err := fmt.Sscanf(l, "listening flow=%s health=%s", &flowAddr, &c.health); err != nil {
			t.Fatalf("child said %q: %v", l, err)
		}
		if c.flow, err = netip.ParseAddrPort(flowAddr); err != nil {
			t.Fatal(err)
		}
	case <-c.done:
		t.Fatalf("child proxy exited before listening: %v\n%s", c.err, c.stderr)
	case <-time.After(30 * time.Second):
		t.Fatalf("child proxy did not start\n%s", c.stderr)
	}
	return c
}

// metric reads one sample of the child's /metrics (0 when absent).
func (c *child) metric(t *testing.T, name string) float64 {
	t.Helper()
	resp, err := http.Get("http://" + c.health + "/metrics")
	if err != nil {
		t.Fatalf("child metrics: %v", err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if f := strings.Fields(sc.Text()); len(f) == 2 && f[0] == name {
			v, err := strconv.ParseFloat(f[1], 64)
			if err != nil {
				t.Fatalf("metric %s: %v", name, err)
			}
			return v
		}
	}
	return 0
}

// wait waits for the child to exit.
func (c *child) wait(t *testing.T) error {
	t.Helper()
	select {
	case <-c.done:
		return c.err
	case <-time.After(30 * time.Second):
		t.Fatalf("child proxy did not exit\n%s", c.stderr)
		return nil
	}
}

// TestOutageKill is the outage test with a real crash: the collector is
// down; a proxy in a process of its own receives flow and spools it; once
// everything it was sent is on disk it is killed with SIGKILL (no flush,
// no template save), started again on the same data directory, receives
// more flow, and then the collector comes back. Every record must arrive
// exactly once, with its content.
func TestOutageKill(t *testing.T) {
	files := captures(t)[:4]
	want, perFile := expected(t, files)
	srv := wiretest.NewServer(t, wiretest.NewPKI(t), wiretest.Options{})
	addr := srv.Addr()
	srv.Close()
	t.Setenv("NETPULSE_API_TOKEN", wiretest.Token)
	dataDir := t.TempDir()
	args := []string{"-host", "127.0.0.1", "-port", "0", "-sockets", "1", "-max", "0",
		"-devices", writeDevices(t), "-data_dir", dataDir,
		"-collector", srv.URL, "-tls_ca_file", srv.PKI.CAFile}
	spoolDir := filepath.Join(dataDir, "spool")
	spooled := func(c *child) float64 {
		return c.metric(t, `netpulse_proxy_sink_spooled_records{sink="collector"}`)
	}

	// First life: everything sent is spooled, then SIGKILL.
	p := startChild(t, args...)
	sendFiles(t, p, files[:2], perFile[:2])
	first := sum(perFile[:2])
	waitFor(t, "the first captures on disk", func() bool { return spooled(p) == float64(first) })
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	err := p.wait(t)
	if ws, ok := p.cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("first proxy did not die of SIGKILL: %v", err)
	}
	files0 := spoolFiles(t, spoolDir)
	if len(files0) == 0 || srv.Records() != 0 {
		t.Fatalf("after the kill: %d spool files, %d records delivered; want some and none", len(files0), srv.Records())
	}

	// Second life on the same data directory: it finds the spool, takes
	// more flow while the collector is still down.
	p = startChild(t, args...)
	if got := spooled(p); got != float64(first) {
		t.Fatalf("restarted proxy found %v records in the spool, want %d", got, first)
	}
	sendFiles(t, p, files[2:], perFile[2:])
	waitFor(t, "every capture on disk", func() bool { return spooled(p) == float64(len(want)) })

	// The collector comes back: the spool drains, oldest first.
	srv.Start(t, addr)
	waitFor(t, "delivery after the outage", func() bool { return srv.Records() >= len(want) })
	waitFor(t, "an empty spool", func() bool { return spooled(p) == 0 })
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := p.wait(t); err != nil {
		t.Fatalf("second proxy: %v\n%s", err, p.stderr)
	}
	delivered(t, srv, want)
	if left := spoolFiles(t, spoolDir); len(left) != 0 {
		t.Errorf("spool not empty at the end: %v", left)
	}
}

// sendFiles replays captures one after another to the child, waiting
// until its sink has taken each capture's records, so that one
// exporter's templates do not race the next (they share the source
// address).
func sendFiles(t *testing.T, c *child, files []string, perFile []int) {
	t.Helper()
	accepted := func() float64 {
		return c.metric(t, `netpulse_proxy_sink_records_total{outcome="accepted",sink="collector"}`)
	}
	total := accepted()
	for i, f := range files {
		dgs, err := capture.ReadAllUDP(f)
		if err != nil {
			t.Fatal(err)
		}
		replay(t, dgs, c.flow)
		total += float64(perFile[i])
		waitFor(t, "the sink to take "+filepath.Base(f), func() bool { return accepted() >= total })
	}
}

func spoolFiles(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		out = append(out, e.Name())
	}
	return out
}

func sum(xs []int) int {
	n := 0
	for _, x := range xs {
		n += x
	}
	return n
}
