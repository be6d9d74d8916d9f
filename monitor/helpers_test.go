package monitor

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/netpulse/netpulse/proxy"
)

// closedPort returns a loopback port nothing listens on: listen, then
// close.
func closedPort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	return port
}

// silentListener accepts connections and never writes to them: a health
// check that hangs.
func silentListener(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	var conns []net.Conn
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				break
			}
			conns = append(conns, c)
		}
		for _, c := range conns {
			c.Close()
		}
	}()
	t.Cleanup(func() { ln.Close(); <-done })
	return ln.Addr().(*net.TCPAddr).Port
}

// textServer serves text to every connection, then closes it, as a
// kproxy health check does.
func textServer(t testing.TB, text []byte) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				c.Write(text)
			}()
		}
	}()
	t.Cleanup(func() { ln.Close(); <-done })
	return ln.Addr().(*net.TCPAddr).Port
}

// startProxy starts a real netpulse proxy in-process on loopback and
// returns its health check port.
func startProxy(t testing.TB, sinks func(*proxy.Settings)) int {
	t.Helper()
	set := proxy.DefaultSettings()
	set.Host, set.Healthcheck = "127.0.0.1", "127.0.0.1"
	set.Port, set.Sockets, set.Max = 0, 1, 0
	set.Name = "test-proxy"
	dir := t.TempDir()
	set.DataDir = dir
	set.Devices = filepath.Join(dir, "devices.yaml")
	if err := os.WriteFile(set.Devices, []byte("devices:\n  - {id: 7, name: lo, ips: [127.0.0.1], flow_type: ipfix}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	sinks(&set)
	s, err := proxy.NewService(set, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		s.Stop(ctx)
	})
	_, port, _ := net.SplitHostPort(s.Health.Addr().String())
	p, _ := strconv.Atoi(port)
	return p
}

// testConfig is a config for loopback tests: short timeouts, no
// listener, alerts at once.
func testConfig(targets ...Target) Config {
	c := DefaultConfig()
	c.Targets = targets
	c.ConnectTimeout = time.Second
	c.ReadTimeout = 300 * time.Millisecond
	c.Listen = "none"
	c.Alerts.Hold = 1
	return c
}

func newMonitor(t testing.TB, c Config, now func() time.Time) *Monitor {
	t.Helper()
	m, err := New(c, Deps{Now: now})
	if err != nil {
		t.Fatal(err)
	}
	return m
}
