package logging_test

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/netpulse/netpulse/alert"
	"github.com/netpulse/netpulse/alert/rsyslogtest"
	"github.com/netpulse/netpulse/config"
	"github.com/netpulse/netpulse/logging"
)

// TestStderrOnly: without file or syslog keys, New builds the plain slog
// handler it always did, and Close is a no-op.
func TestStderrOnly(t *testing.T) {
	for format, want := range map[string]any{"text": &slog.TextHandler{}, "json": &slog.JSONHandler{}, "": &slog.TextHandler{}} {
		c := logging.DefaultConfig()
		c.Format = format
		var buf bytes.Buffer
		l, err := logging.New(c, &buf)
		if err != nil {
			t.Fatal(err)
		}
		if reflect.TypeOf(l.Handler()) != reflect.TypeOf(want) {
			t.Errorf("format %q: handler %T, want %T", format, l.Handler(), want)
		}
		l.Debug("hidden")
		l.Info("shown")
		if n := strings.Count(buf.String(), "\n"); n != 1 {
			t.Errorf("format %q: %d lines: %s", format, n, buf.String())
		}
		if err := logging.Close(l); err != nil {
			t.Error(err)
		}
	}
	// A Config built in code, without the new sections, is as before.
	if _, err := logging.New(logging.Config{Level: "warn"}, os.Stderr); err != nil {
		t.Error(err)
	}
	if err := logging.Close(nil); err != nil {
		t.Error(err)
	}
}

// udpServer is an in-process syslog receiver on 127.0.0.1.
type udpServer struct {
	pc   net.PacketConn
	msgs chan string
}

func newUDPServer(t *testing.T) *udpServer {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &udpServer{pc: pc, msgs: make(chan string, 100)}
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 65536)
		for {
			n, _, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			s.msgs <- string(buf[:n])
		}
	}()
	t.Cleanup(func() { pc.Close(); <-done })
	return s
}

// all returns the messages received so far, after Close has flushed.
func (s *udpServer) all(t *testing.T, n int) []string {
	t.Helper()
	var out []string
	for len(out) < n {
		select {
		case m := <-s.msgs:
			out = append(out, m)
		case <-time.After(5 * time.Second):
			t.Fatalf("%d datagrams, want %d: %q", len(out), n, out)
		}
	}
	select {
	case m := <-s.msgs:
		t.Errorf("extra datagram %q", m)
	case <-time.After(20 * time.Millisecond):
	}
	return out
}

// TestFanout: each record reaches stderr, the file and syslog exactly
// once, with the attributes (groups flattened) as structured data.
func TestFanout(t *testing.T) {
	srv := newUDPServer(t)
	path := filepath.Join(t.TempDir(), "netpulse.log")
	c := logging.DefaultConfig()
	c.Level = "info"
	c.File.Path = path
	c.Syslog.Address = srv.pc.LocalAddr().String()
	c.Syslog.Hostname = "collector-1"
	var stderr bytes.Buffer
	l, err := logging.New(c, &stderr)
	if err != nil {
		t.Fatal(err)
	}
	pl := l.With("component", "proxy").WithGroup("req")
	pl.Debug("not logged")
	pl.Info("batch sent", "method", "POST", slog.Group("peer", "ip", "10.0.0.1", "port", 443),
		"err", errors.New(`said "no" ]`), "took", 1500*time.Millisecond, slog.Group("empty"))
	l.Warn("plain", "ok", true)
	l.Error("no attributes")
	if err := logging.Close(l); err != nil {
		t.Fatal(err)
	}
	if err := logging.Close(l); err != nil { // twice is harmless
		t.Fatal(err)
	}
	l.Info("after close") // stderr only

	file, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !sameLines(string(file), stderr.String(), 3) {
		t.Errorf("the file is not stderr's first three lines:\nfile:\n%s\nstderr:\n%s", file, stderr.String())
	}
	if !strings.Contains(string(file), `req.peer.ip=10.0.0.1`) || strings.Contains(string(file), "not logged") || strings.Contains(string(file), "after close") {
		t.Errorf("file:\n%s", file)
	}

	msgs := srv.all(t, 3)
	pid := fmt.Sprint(os.Getpid())
	for i, want := range []struct{ pri, rest string }{
		{"<30>1 ", " collector-1 netpulse " + pid + ` - [netpulse@32473 component="proxy" req.method="POST" req.peer.ip="10.0.0.1" req.peer.port="443" req.err="said \"no\" \]" req.took="1.5s"] batch sent`},
		{"<28>1 ", " collector-1 netpulse " + pid + ` - [netpulse@32473 ok="true"] plain`},
		{"<27>1 ", " collector-1 netpulse " + pid + ` - - no attributes`},
	} {
		m := msgs[i]
		if !strings.HasPrefix(m, want.pri) || !strings.HasSuffix(m, want.rest) {
			t.Errorf("datagram %d:\n got %q\nwant %q…%q", i, m, want.pri, want.rest)
		}
		// The record's time, in UTC with microseconds.
		stamp := strings.Fields(m)[1]
		if ts, err := time.Parse(time.RFC3339Nano, stamp); err != nil || len(stamp) != len("2006-01-02T15:04:05.000000Z") || time.Since(ts) > time.Minute {
			t.Errorf("timestamp %q: %v", stamp, err)
		}
	}
}

// sameLines reports whether a and the first n lines of b are equal.
func sameLines(a, b string, n int) bool {
	bl := strings.SplitAfter(b, "\n")
	return len(bl) > n && a == strings.Join(bl[:n], "")
}

func TestJSONFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "netpulse.jsonl")
	c := logging.Config{Level: "debug", Format: "json", File: alert.FileConfig{Path: path, MaxSize: 300, MaxFiles: 2}}
	l, err := logging.New(c, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for i := range 25 {
				l.Debug("tick", "w", w, "i", i)
			}
		})
	}
	wg.Wait()
	if err := logging.Close(l); err != nil {
		t.Fatal(err)
	}
	files, _ := filepath.Glob(path + "*")
	if len(files) != 3 {
		t.Errorf("files %q, want the log and two rotated", files)
	}
	b, _ := os.ReadFile(path)
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		if !strings.HasPrefix(line, `{"time":`) || !strings.HasSuffix(line, "}") {
			t.Errorf("torn JSON line %q", line)
		}
	}
}

func TestSeverity(t *testing.T) {
	for l, want := range map[slog.Level]alert.Severity{
		slog.LevelDebug - 4: alert.Debug, slog.LevelDebug: alert.Debug, slog.LevelInfo: alert.Info,
		slog.LevelInfo + 2: alert.Info, slog.LevelWarn: alert.Warning, slog.LevelError: alert.Error, slog.LevelError + 8: alert.Error,
	} {
		if got := logging.Severity(l); got != want {
			t.Errorf("Severity(%v) = %v, want %v", l, got, want)
		}
	}
}

func TestValidate(t *testing.T) {
	file := func(f func(*logging.Config)) logging.Config {
		c := logging.DefaultConfig()
		f(&c)
		return c
	}
	for _, tc := range []struct {
		c    logging.Config
		want string
	}{
		{file(func(c *logging.Config) { c.File.MaxFiles = 9 }), "log.file.path: empty"},
		{file(func(c *logging.Config) { c.File.Path, c.File.MaxSize = "x", -1 }), "log.file.max_size"},
		{file(func(c *logging.Config) { c.Syslog.Transport = "tcp" }), "log.syslog.address: empty"},
		{file(func(c *logging.Config) { c.Syslog.Address, c.Syslog.Transport = "h", "relp" }), "log.syslog.transport"},
		{file(func(c *logging.Config) { c.Syslog.Address, c.Syslog.Facility = "h", "local9" }), "log.syslog.facility"},
		{file(func(c *logging.Config) { c.Syslog.Address, c.Syslog.CAFile = "h", "ca.pem" }), "log.syslog.ca_file: set only with transport: tls"},
		{file(func(c *logging.Config) { c.Level = "loud" }), "log.level"},
		{logging.Config{Syslog: alert.SyslogConfig{Queue: 5}}, "log.syslog.address"},
	} {
		err := tc.c.Validate()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: %v, want %q", tc.c, err, tc.want)
		}
		if _, err := logging.New(tc.c, &bytes.Buffer{}); err == nil {
			t.Errorf("%+v: New accepted it", tc.c)
		}
	}
	// The file is opened by New: a path it cannot create stops start-up.
	blocker := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(blocker, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	c := logging.DefaultConfig()
	c.File.Path = filepath.Join(blocker, "x.log")
	if _, err := logging.New(c, &bytes.Buffer{}); err == nil || !strings.Contains(err.Error(), "log.file.path") {
		t.Errorf("unwritable path: %v", err)
	}
}

// TestConfigFile reads the new keys through the configuration file, whose
// parser rejects unknown keys.
func TestConfigFile(t *testing.T) {
	cfg, err := config.Parse([]byte(`
log:
  level: warn
  file:
    path: /var/log/netpulse/netpulse.log
    max_size: 1048576
    max_files: 3
  syslog:
    address: logs.example.net:6514
    transport: tls
    format: rfc5424
    facility: local0
    app_name: netpulse-proxy
    ca_file: /etc/netpulse/syslog-ca.pem
    timeout: 2s
    queue: 100
`))
	if err != nil {
		t.Fatal(err)
	}
	want := logging.DefaultConfig()
	want.Level = "warn"
	want.File = alert.FileConfig{Path: "/var/log/netpulse/netpulse.log", MaxSize: 1 << 20, MaxFiles: 3}
	want.Syslog = alert.SyslogConfig{Address: "logs.example.net:6514", Transport: "tls", Format: "rfc5424",
		Facility: "local0", AppName: "netpulse-proxy", CAFile: "/etc/netpulse/syslog-ca.pem", Timeout: 2 * time.Second, Queue: 100}
	if cfg.Log != want {
		t.Errorf("got  %+v\nwant %+v", cfg.Log, want)
	}
	for _, tc := range []struct{ yaml, want string }{
		{"log:\n  syslog:\n    adress: h\n", "unknown key adress"},
		{"log:\n  file:\n    max_size: 10\n", "log.file.path: empty"},
		{"log:\n  syslog:\n    address: h\n    transport: tls\n    cert_file: c.pem\n", "log.syslog.cert_file/key_file: set both"},
	} {
		if _, err := config.Parse([]byte(tc.yaml)); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: %v, want %q", tc.yaml, err, tc.want)
		}
	}
	// The defaults print and read back unchanged.
	def := config.Default()
	out, err := def.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	back, err := config.Parse(out)
	if err != nil || back.Log != def.Log {
		t.Errorf("defaults do not round-trip: %+v %v", back.Log, err)
	}
}

// TestRsyslog ships records to a real rsyslogd over TCP and checks what
// it parsed: severities from the levels, attributes as structured data.
func TestRsyslog(t *testing.T) {
	srv := rsyslogtest.Start(t)
	c := logging.DefaultConfig()
	c.Level = "debug"
	c.Syslog = alert.SyslogConfig{Address: srv.TCP, Transport: "tcp", Facility: "local7", AppName: "netpulse-collector", Hostname: "c1"}
	l, err := logging.New(c, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	l = l.With("component", "collector")
	l.Debug("d", "n", 1)
	l.Info("i", "path", `C:\x]`)
	l.Warn("w", slog.Group("proxy", "name", `p "1"`))
	l.Error("e", "err", "disk full\nreally")
	if err := logging.Close(l); err != nil {
		t.Fatal(err)
	}
	got := srv.Wait(t, 4, nil)
	for i, want := range []struct {
		msg, severity string
		sd            map[string]string
	}{
		{"d", "7", map[string]string{"component": "collector", "n": "1"}},
		{"i", "6", map[string]string{"component": "collector", "path": `C:\x]`}},
		{"w", "4", map[string]string{"component": "collector", "proxy.name": `p "1"`}},
		{"e", "3", map[string]string{"component": "collector", "err": "disk full\nreally"}},
	} {
		m := got[i]
		sd, err := m.SDMap()
		if err != nil {
			t.Fatal(err)
		}
		if m.Msg != want.msg || m.Severity != want.severity || m.Facility != "23" || m.AppName != "netpulse-collector" ||
			m.Hostname != "c1" || !reflect.DeepEqual(sd, map[string]map[string]string{logging.SDID: want.sd}) {
			t.Errorf("message %d: %+v\nparsed SD %q, want %q", i, m, sd, want.sd)
		}
	}
}
