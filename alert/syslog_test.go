package alert

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/netpulse/netpulse/wire/wiretest"
)

// streamServer is an in-process syslog receiver on 127.0.0.1 that reads
// RFC 6587 octet-counted frames, over TCP or TLS.
type streamServer struct {
	ln    net.Listener
	msgs  chan string
	errs  chan error
	mu    sync.Mutex
	conns []net.Conn
	wg    sync.WaitGroup
}

func newStreamServer(t *testing.T, tc *tls.Config) *streamServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if tc != nil {
		ln = tls.NewListener(ln, tc)
	}
	s := &streamServer{ln: ln, msgs: make(chan string, 10000), errs: make(chan error, 100)}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.mu.Lock()
			s.conns = append(s.conns, c)
			s.mu.Unlock()
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				s.read(c)
			}()
		}
	}()
	t.Cleanup(s.close)
	return s
}

func (s *streamServer) addr() string { return s.ln.Addr().String() }

// read splits frames by their octet count.
func (s *streamServer) read(c net.Conn) {
	r := bufio.NewReader(c)
	for {
		n, err := r.ReadString(' ')
		if err != nil {
			if !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) {
				s.errs <- err
			}
			return
		}
		l, err := strconv.Atoi(strings.TrimSuffix(n, " "))
		if err != nil {
			s.errs <- fmt.Errorf("bad frame length %q", n)
			return
		}
		b := make([]byte, l)
		if _, err := io.ReadFull(r, b); err != nil {
			s.errs <- err
			return
		}
		s.msgs <- string(b)
	}
}

// dropConns closes the accepted connections, as a restarting server does.
func (s *streamServer) dropConns() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range s.conns {
		c.Close()
	}
	s.conns = nil
}

func (s *streamServer) close() {
	s.ln.Close()
	s.dropConns()
	s.wg.Wait()
}

func (s *streamServer) next(t *testing.T) string {
	t.Helper()
	select {
	case m := <-s.msgs:
		return m
	case err := <-s.errs:
		t.Fatalf("server: %v", err)
	case <-time.After(5 * time.Second):
		t.Fatal("no message within 5s")
	}
	return ""
}

func stop(t *testing.T, s Sender) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.Stop(ctx); err != nil {
		t.Fatal(err)
	}
}

func started(t *testing.T, cfg SyslogConfig) *Syslog {
	t.Helper()
	s, err := NewSyslog(cfg, Deps{Log: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	s.backoffMin, s.backoffMax = time.Millisecond, 20*time.Millisecond
	if err := s.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	return s
}

func TestSyslogTCPFramingAndReconnect(t *testing.T) {
	srv := newStreamServer(t, nil)
	s := started(t, SyslogConfig{Address: srv.addr(), Transport: "tcp", Hostname: "h", AppName: "app"})
	s.Send(Event{Time: t0, Severity: Info, Message: "first\nwith a newline"})
	want := fmt.Sprintf("<30>1 2024-03-09T13:05:06.123456Z h app %d - - first\nwith a newline", os.Getpid())
	if got := srv.next(t); got != want {
		t.Errorf("got  %q\nwant %q", got, want)
	}
	// The server restarts its side: the sender notices the closed stream
	// and the next message arrives on a new connection, not in the void.
	srv.dropConns()
	waitFor(t, func() bool { return s.peerClosed.Load() == 1 })
	s.Send(Event{Time: t0, Severity: Info, Message: "second"})
	if got := srv.next(t); !strings.HasSuffix(got, "- - second") {
		t.Errorf("after reconnect got %q", got)
	}
	stop(t, s)
	if st := s.Stats(); st.Sent != 2 || st.Dropped != 0 || st.Failed != 0 {
		t.Errorf("stats %+v", st)
	}
}

func TestSyslogTLS(t *testing.T) {
	pki := wiretest.NewPKI(t)
	srv := newStreamServer(t, &tls.Config{
		Certificates: []tls.Certificate{pki.ServerCert},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    pki.CAPool,
		MinVersion:   tls.VersionTLS12,
	})
	s := started(t, SyslogConfig{Address: srv.addr(), Transport: "tls", Hostname: "h",
		CAFile: pki.CAFile, CertFile: pki.ClientCertFile, KeyFile: pki.ClientKeyFile})
	for i := range 3 {
		s.Send(Event{Time: t0, Severity: Warning, MsgID: "tls", Message: fmt.Sprint("over tls ", i),
			SD: map[string][]Param{"x@32473": {{"i", strconv.Itoa(i)}}}})
	}
	for i := range 3 {
		want := fmt.Sprintf(`tls [x@32473 i="%d"] over tls %d`, i, i)
		if got := srv.next(t); !strings.HasPrefix(got, "<28>1 ") || !strings.HasSuffix(got, want) {
			t.Errorf("got %q, want …%q", got, want)
		}
	}
	stop(t, s)

	// A CA that did not sign the server's certificate: the dial fails,
	// errors are counted, nothing is sent.
	other := wiretest.NewPKI(t)
	s = started(t, SyslogConfig{Address: srv.addr(), Transport: "tls", CAFile: other.CAFile,
		CertFile: pki.ClientCertFile, KeyFile: pki.ClientKeyFile})
	s.Send(Event{Severity: Warning, Message: "untrusted"})
	waitFor(t, func() bool { return s.Stats().Errors > 0 })
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := s.Stop(ctx); err == nil {
		t.Error("Stop: no error for an undelivered message")
	}
	if st := s.Stats(); st.Sent != 0 || st.Dropped != 1 {
		t.Errorf("stats %+v", st)
	}

	// Without the client certificate, TLS 1.3 lets the client finish its
	// handshake before the server refuses it: the first message is
	// written and lost (as on any stream whose server goes away), the
	// refusal is read, counted and logged, and the sender backs off.
	s = started(t, SyslogConfig{Address: srv.addr(), Transport: "tls", CAFile: pki.CAFile})
	s.Send(Event{Severity: Warning, Message: "refused 1"})
	waitFor(t, func() bool { return s.peerClosed.Load() > 0 })
	s.Send(Event{Severity: Warning, Message: "refused 2"})
	waitFor(t, func() bool { return s.Stats().Errors > 0 })
	ctx, cancel = context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_ = s.Stop(ctx)
	select {
	case m := <-srv.msgs:
		t.Errorf("server accepted %q from a client without a certificate", m)
	default:
	}
}

func TestSyslogTLSConfigErrors(t *testing.T) {
	for _, tc := range []struct {
		cfg  SyslogConfig
		want string
	}{
		{SyslogConfig{Address: "h", Transport: "tls", CAFile: "/nonexistent/ca.pem"}, "syslog.ca_file"},
		{SyslogConfig{Address: "h", Transport: "tls", CertFile: "c.pem"}, "syslog.cert_file/key_file: set both"},
		{SyslogConfig{Address: "h", Transport: "tcp", CAFile: "ca.pem"}, "syslog.ca_file: set only with transport: tls"},
	} {
		if _, err := NewSyslog(tc.cfg, Deps{}); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: err %v, want %q", tc.cfg, err, tc.want)
		}
	}
}

func TestSyslogConfig(t *testing.T) {
	const daemon, local3 = 3, 19
	for _, tc := range []struct {
		cfg      SyslogConfig
		addr     string
		facility Facility
		wantErr  string
	}{
		{cfg: SyslogConfig{Address: "logs.example.net"}, addr: "logs.example.net:514", facility: daemon},
		{cfg: SyslogConfig{Address: "logs.example.net", Transport: "tls"}, addr: "logs.example.net:6514", facility: daemon},
		{cfg: SyslogConfig{Address: "::1"}, addr: "[::1]:514", facility: daemon},
		{cfg: SyslogConfig{Address: "[::1]"}, addr: "[::1]:514", facility: daemon},
		{cfg: SyslogConfig{Address: "[::1]:1514"}, addr: "[::1]:1514", facility: daemon},
		{cfg: SyslogConfig{Address: "10.0.0.1:10514", Facility: "LOCAL3"}, addr: "10.0.0.1:10514", facility: local3},
		{cfg: SyslogConfig{}, wantErr: "syslog.address: empty"},
		{cfg: SyslogConfig{Address: ":514"}, wantErr: "no host"},
		{cfg: SyslogConfig{Address: "h:syslog"}, wantErr: "want 1-65535"},
		{cfg: SyslogConfig{Address: "h:70000"}, wantErr: "want 1-65535"},
		{cfg: SyslogConfig{Address: "h", Transport: "relp"}, wantErr: "syslog.transport"},
		{cfg: SyslogConfig{Address: "h", Format: "json"}, wantErr: "syslog.format"},
		{cfg: SyslogConfig{Address: "h", Facility: "local8"}, wantErr: "syslog.facility"},
		{cfg: SyslogConfig{Address: "h", Timeout: -1}, wantErr: "syslog.timeout"},
		{cfg: SyslogConfig{Address: "h", Queue: -1}, wantErr: "syslog.queue"},
	} {
		s, err := NewSyslog(tc.cfg, Deps{})
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("%+v: err %v, want %q", tc.cfg, err, tc.wantErr)
			}
			continue
		}
		if err != nil {
			t.Errorf("%+v: %v", tc.cfg, err)
			continue
		}
		if s.addr != tc.addr || s.h.facility != tc.facility {
			t.Errorf("%+v: addr %s facility %d, want %s %d", tc.cfg, s.addr, s.h.facility, tc.addr, tc.facility)
		}
	}
	// Defaults fill zero fields.
	s, err := NewSyslog(SyslogConfig{Address: "h"}, Deps{})
	if err != nil {
		t.Fatal(err)
	}
	if want := DefaultSyslogConfig(); s.cfg.Transport != want.Transport || s.cfg.Format != want.Format ||
		s.cfg.Timeout != want.Timeout || cap(s.queue) != want.Queue || s.h.appName != "netpulse" {
		t.Errorf("defaults not applied: %+v", s.cfg)
	}
}

// TestSyslogQueueFull checks that Send never waits: beyond the queue,
// messages are dropped and counted, and Stop counts what was left.
func TestSyslogQueueFull(t *testing.T) {
	s, err := NewSyslog(SyslogConfig{Address: "127.0.0.1:9", Queue: 4}, Deps{})
	if err != nil {
		t.Fatal(err)
	}
	for range 10 {
		s.Send(Event{Severity: Info, Message: "m"})
	}
	if st := s.Stats(); st.Dropped != 6 {
		t.Errorf("dropped %d, want 6", st.Dropped)
	}
	stop(t, s) // never started: the queued four are dropped too
	s.Send(Event{Severity: Info, Message: "after stop"})
	if st := s.Stats(); st.Dropped != 11 || st.Sent != 0 {
		t.Errorf("stats %+v, want 11 dropped", st)
	}
	if err := s.Start(context.Background()); err == nil {
		t.Error("Start after Stop: no error")
	}
}

// TestSyslogServerDown checks that a dead server costs messages, not the
// caller's time, and that Stop gives up at its deadline.
func TestSyslogServerDown(t *testing.T) {
	for _, transport := range []string{"tcp", "udp"} {
		t.Run(transport, func(t *testing.T) {
			addr := deadAddr(t)
			s := started(t, SyslogConfig{Address: addr, Transport: transport, Queue: 16})
			const n = 2000
			begin := time.Now()
			for i := range n {
				s.Send(Event{Severity: Info, Message: fmt.Sprint("m", i)})
			}
			if d := time.Since(begin); d > 2*time.Second {
				t.Errorf("%d sends took %s", n, d)
			}
			waitFor(t, func() bool { return s.Stats().Errors > 0 })
			ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
			defer cancel()
			err := s.Stop(ctx)
			st := s.Stats()
			if transport == "tcp" {
				if err == nil || !strings.Contains(err.Error(), "not delivered") {
					t.Errorf("Stop: %v, want an error counting the lost messages", err)
				}
				if st.Sent != 0 {
					t.Errorf("sent %d to a closed port", st.Sent)
				}
			}
			// UDP "sends" some into the void between refusals: only the
			// total is certain.
			if st.Sent+st.Dropped+st.Failed != n {
				t.Errorf("stats %+v: sent+dropped+failed != %d", st, n)
			}
			if transport == "tcp" && st.Dropped != n {
				t.Errorf("stats %+v: want all %d dropped (a failed dial is no attempt)", st, n)
			}
		})
	}
}

// TestSyslogServerComesUp checks the reconnect: messages queued while the
// server was down are delivered once it listens.
func TestSyslogServerComesUp(t *testing.T) {
	addr := deadAddr(t)
	s := started(t, SyslogConfig{Address: addr, Transport: "tcp"})
	for i := range 5 {
		s.Send(Event{Severity: Info, MsgID: "m" + strconv.Itoa(i)})
	}
	waitFor(t, func() bool { return s.Stats().Errors >= 2 })
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Skipf("port %s taken meanwhile: %v", addr, err)
	}
	got := make(chan string, 5)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		r := bufio.NewReader(c)
		for {
			n, err := r.ReadString(' ')
			if err != nil {
				return
			}
			l, _ := strconv.Atoi(strings.TrimSpace(n))
			b := make([]byte, l)
			if _, err := io.ReadFull(r, b); err != nil {
				return
			}
			got <- string(b)
		}
	}()
	defer ln.Close()
	for i := range 5 {
		select {
		case m := <-got:
			if want := fmt.Sprintf(" m%d -", i); !strings.HasSuffix(m, want) {
				t.Errorf("message %d: %q, want …%q", i, m, want)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("message %d not delivered after the server came up; stats %+v", i, s.Stats())
		}
	}
	stop(t, s)
	if st := s.Stats(); st.Sent != 5 || st.Dropped != 0 || st.Failed != 0 || st.Errors == 0 {
		t.Errorf("stats %+v", st)
	}
}

// TestSyslogStuckServer: a server that accepts but never reads fills the
// socket buffers; Stop still returns at its deadline.
func TestSyslogStuckServer(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		if c, err := ln.Accept(); err == nil {
			accepted <- c
		}
	}()
	// 40 MiB: more than loopback socket buffers hold.
	s := started(t, SyslogConfig{Address: ln.Addr().String(), Transport: "tcp", Queue: 16, Timeout: 10 * time.Second})
	big := strings.Repeat("x", 1<<20)
	const n = 40
	for range n {
		s.Send(Event{Severity: Info, Message: big})
	}
	c := <-accepted
	defer c.Close()
	begin := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if err := s.Stop(ctx); err == nil {
		t.Error("Stop: no error")
	}
	if d := time.Since(begin); d > 2*time.Second {
		t.Errorf("Stop took %s with a 100ms deadline (write timeout 10s)", d)
	}
	if st := s.Stats(); st.Sent+st.Dropped+st.Failed != n || st.Dropped == 0 {
		t.Errorf("stats %+v: want some dropped, all %d accounted for", st, n)
	}
}

// deadAddr returns a loopback TCP address nothing listens on.
func deadAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// waitFor polls cond for up to 5s: for conditions a worker goroutine
// reaches, which no channel announces.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 5s")
		}
		time.Sleep(time.Millisecond)
	}
}
