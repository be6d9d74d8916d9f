package wiretest

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/netpulse/netpulse/flow/flowpb"
	"github.com/netpulse/netpulse/wire"
)

// processEnv, in a child's environment, holds the server certificate and
// key files: the child is a receiver (see ServeProcess).
const processEnv = "NETPULSE_WIRETEST_RECEIVER"

// Process is a counting receiver (wire.Handler on a loopback TLS listener,
// the token Token) in a process of its own: the test binary, executed
// again. Benchmarks use it so that the receiver's CPU time is not the
// sender's, and the two do not share a Go runtime.
type Process struct {
	URL string
	cmd *exec.Cmd
	out *bufio.Reader
	mu  sync.Mutex
	err bytes.Buffer
}

// StartProcess starts a receiver process: the running test binary with
// -test.run=^testName$, where testName is a test of the calling package
// whose first statement is ServeProcess(t). It stops when tb ends.
func StartProcess(tb testing.TB, pki *PKI, testName string) *Process {
	tb.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^"+testName+"$")
	cmd.Env = append(os.Environ(), processEnv+"="+pki.ServerCertFile+","+pki.ServerKeyFile)
	p := &Process{cmd: cmd}
	cmd.Stderr = &lockedBuffer{p: p}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		tb.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	p.out = bufio.NewReader(stdout)
	line, err := p.out.ReadString('\n')
	addr, ok := strings.CutPrefix(strings.TrimSpace(line), "listening ")
	if err != nil || !ok {
		tb.Fatalf("wiretest: receiver process did not start (%q, %v)\n%s", line, err, p.stderrText())
	}
	p.URL = "https://" + addr + wire.Path
	go io.Copy(io.Discard, p.out)
	return p
}

type lockedBuffer struct{ p *Process }

func (l *lockedBuffer) Write(b []byte) (int, error) {
	l.p.mu.Lock()
	defer l.p.mu.Unlock()
	return l.p.err.Write(b)
}

func (p *Process) stderrText() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.err.String()
}

// PID is the receiver's process id, to read its CPU time.
func (p *Process) PID() int { return p.cmd.Process.Pid }

// CPU returns the receiver process's user+system CPU time so far, from
// /proc (Linux).
func (p *Process) CPU() (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p.PID()))
	if err != nil {
		return 0, err
	}
	// The command name, field 2, may hold spaces: count from the ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, fmt.Errorf("wiretest: odd /proc stat %q", b)
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0, fmt.Errorf("wiretest: odd /proc stat %q", b)
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64) // utime, field 14
	st, err2 := strconv.ParseInt(f[12], 10, 64) // stime, field 15
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("wiretest: odd /proc stat %q", b)
	}
	const ticksPerSecond = 100 // USER_HZ, 100 on every Linux architecture
	return time.Duration(ut+st) * time.Second / ticksPerSecond, nil
}

// ServeProcess makes the calling test the receiver of StartProcess when
// the environment says so: it serves until the process is killed and
// never returns. Otherwise it skips the test.
func ServeProcess(t *testing.T) {
	files, ok := os.LookupEnv(processEnv)
	if !ok {
		t.Skip("a receiver process for benchmarks (wiretest.StartProcess)")
	}
	cert, key, _ := strings.Cut(files, ",")
	if err := serveProcess(cert, key); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Exit(0)
}

func serveProcess(certFile, keyFile string) error {
	return ServeCounting(certFile, keyFile, "127.0.0.1:0", func(addr string) { fmt.Printf("listening %s\n", addr) })
}

// ServeCounting runs a receiver on addr (loopback) until it fails: TLS
// with the certificate and key files, the token Token, every batch
// decoded, de-duplicated and dropped. ready is called with the address
// once it listens. It is what StartProcess runs, and the receiver of the
// benchmarks' shell scripts (proxy/benchtool/receiver).
func ServeCounting(certFile, keyFile, addr string, ready func(addr string)) error {
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return err
	}
	h, err := wire.NewHandler(wire.HandlerConfig{Tokens: map[string]string{Token: Proxy}},
		func(context.Context, string, *flowpb.Batch) error { return nil }, nil)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	if ap, err := netip.ParseAddrPort(ln.Addr().String()); err != nil || !ap.Addr().IsLoopback() {
		ln.Close()
		return fmt.Errorf("wiretest: %s is not a loopback address", ln.Addr())
	}
	ready(ln.Addr().String())
	tc := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	mux := http.NewServeMux()
	mux.Handle(wire.Path, h)
	srv := &http.Server{Handler: mux, TLSConfig: tc, ReadHeaderTimeout: 5 * time.Second}
	return srv.Serve(tls.NewListener(ln, tc))
}
