// Package chtest runs a real clickhouse-server for tests: a throw-away
// configuration and data directory, native and HTTP ports picked free on
// 127.0.0.1 (and nowhere else), a wait until the server answers, and a stop
// and clean-up at the end.
//
// Starting a server costs about a second, so a test package usually shares
// one (see Shared) and gives every test its own database (Shared.Database).
// When clickhouse-server is not installed the tests skip loudly, or fail when
// NETPULSE_REQUIRE_INTEGRATION=1 (see internal/integration).
package chtest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/netpulse/netpulse/internal/integration"
)

// Binary is the server program looked up in PATH. Debian's package installs
// it in /usr/sbin, which Find also tries when PATH lacks it.
const Binary = "clickhouse-server"

// Options tune a server. The zero value is a UTC server.
type Options struct {
	// Timezone is the server's default time zone (the <timezone> key);
	// empty means UTC. Tests of time bucketing use a zone with a
	// half-hour offset to prove that nothing depends on it.
	Timezone string
	// Parent is the directory the server's directory is made in. Empty
	// means /dev/shm when there is one, else os.TempDir(): on tmpfs a
	// MergeTree part costs a millisecond instead of the 50–150 ms of
	// syncing its files to a virtual disk, which makes a test suite of
	// small inserts 10 times faster. Benchmarks of on-disk size or
	// ingest to disk set it to a disk directory.
	Parent string
	// StartTimeout bounds the wait until the server answers; zero means
	// 60 seconds (a cold start on a loaded 2-core machine takes a few).
	StartTimeout time.Duration
}

// Server is a running clickhouse-server.
type Server struct {
	// Addr is the native-protocol address, 127.0.0.1:port.
	Addr string
	// HTTPAddr is the HTTP interface address, 127.0.0.1:port.
	HTTPAddr string
	// Dir holds the configuration, data, temporary files and logs.
	Dir string
	// Version is the server's version() string, e.g. "18.16.1".
	Version string

	// http has its own transport so that Stop can close its idle
	// keep-alive connections: the server waits for open connections
	// before it exits.
	http     *http.Client
	cmd      *exec.Cmd
	exited   chan struct{} // closed when the process has exited
	waitErr  error         // set before exited is closed
	stopOnce sync.Once
	stopErr  error
	dbSeq    atomic.Int64
}

// Find returns the path of clickhouse-server, or "" when it is not
// installed.
func Find() string {
	if p, err := exec.LookPath(Binary); err == nil {
		return p
	}
	for _, p := range []string{"/usr/sbin/" + Binary, "/usr/bin/" + Binary} {
		if st, err := os.Stat(p); err == nil && !st.IsDir() && st.Mode()&0o111 != 0 {
			return p
		}
	}
	return ""
}

// Start starts a server for tb and stops it (and removes its directory)
// when tb's test ends. It skips or fails tb when the server is not
// installed.
func Start(tb testing.TB, opts Options) *Server {
	tb.Helper()
	bin := Find()
	if bin == "" {
		integrationMissing(tb)
		return nil
	}
	s, err := Launch(bin, opts)
	if err != nil {
		tb.Fatalf("chtest: %v", err)
	}
	tb.Cleanup(func() {
		if err := s.Stop(); err != nil {
			tb.Errorf("chtest: %v", err)
		}
	})
	return s
}

// Launch starts the server program bin with opts and waits until it
// answers. The caller must call Stop. Most tests want Start or Shared.
func Launch(bin string, opts Options) (*Server, error) {
	// The ports are picked free and then handed to the server, so another
	// process may take one in between; the server then exits at once, and
	// another pair is tried.
	var err error
	for range 3 {
		var s *Server
		s, err = launchOnce(bin, opts)
		if err == nil {
			return s, nil
		}
		if !errors.Is(err, errAddrInUse) {
			return nil, err
		}
	}
	return nil, err
}

// integrationMissing skips tb loudly, or fails it in CI.
func integrationMissing(tb testing.TB) {
	tb.Helper()
	integration.Missing(tb, Binary+" is not installed (apt-get install clickhouse-server, see .ci/run)")
}

var errAddrInUse = errors.New("address already in use")

func launchOnce(bin string, opts Options) (*Server, error) {
	dir, err := os.MkdirTemp(parentDir(opts.Parent), "netpulse-chtest-")
	if err != nil {
		return nil, fmt.Errorf("chtest: %w", err)
	}
	ports, err := freePorts(2)
	if err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("chtest: %w", err)
	}
	s := &Server{
		Addr:     fmt.Sprintf("127.0.0.1:%d", ports[0]),
		HTTPAddr: fmt.Sprintf("127.0.0.1:%d", ports[1]),
		Dir:      dir,
		exited:   make(chan struct{}),
		http:     &http.Client{Transport: &http.Transport{}},
	}
	tz := opts.Timezone
	if tz == "" {
		tz = "UTC"
	}
	if err := writeConfig(dir, ports[0], ports[1], tz); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("chtest: %w", err)
	}
	out, err := os.Create(filepath.Join(dir, "log", "stdout.log"))
	if err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("chtest: %w", err)
	}
	defer out.Close()
	s.cmd = exec.Command(bin, "--config-file="+filepath.Join(dir, "config.xml"))
	s.cmd.Dir = dir
	s.cmd.Stdout = out
	s.cmd.Stderr = out
	s.cmd.SysProcAttr = sysProcAttr()
	if err := s.cmd.Start(); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("chtest: start %s: %w", bin, err)
	}
	go func() {
		s.waitErr = s.cmd.Wait()
		close(s.exited)
	}()
	timeout := opts.StartTimeout
	if timeout <= 0 {
		timeout = 60 * time.Second
	}
	if err := s.waitReady(timeout); err != nil {
		logs := s.logTail()
		s.Stop()
		if strings.Contains(logs, "Address already in use") {
			return nil, errAddrInUse
		}
		return nil, fmt.Errorf("chtest: %s did not start: %w\n%s", bin, err, logs)
	}
	v, err := s.Query("SELECT version()")
	if err != nil {
		s.Stop()
		return nil, fmt.Errorf("chtest: %w", err)
	}
	s.Version = strings.TrimSpace(v)
	return s, nil
}

func parentDir(parent string) string {
	if parent != "" {
		return parent
	}
	if st, err := os.Stat("/dev/shm"); err == nil && st.IsDir() {
		if f, err := os.CreateTemp("/dev/shm", "netpulse-chtest-probe-"); err == nil {
			f.Close()
			os.Remove(f.Name())
			return "/dev/shm"
		}
	}
	return os.TempDir()
}

// freePorts returns n distinct free TCP ports on 127.0.0.1.
func freePorts(n int) ([]int, error) {
	var ports []int
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("pick a free port: %w", err)
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// writeConfig writes the smallest configuration 18.16 and current servers
// both accept: loopback only, no interserver port, every path inside dir,
// small caches.
func writeConfig(dir string, tcpPort, httpPort int, tz string) error {
	for _, sub := range []string{"data", "tmp", "user_files", "format_schemas", "log"} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o755); err != nil {
			return err
		}
	}
	p := func(sub string) string { return xmlEscape(filepath.Join(dir, sub) + "/") }
	config := fmt.Sprintf(`<?xml version="1.0"?>
<yandex>
  <logger>
    <level>warning</level>
    <log>%[1]sserver.log</log>
    <errorlog>%[1]serror.log</errorlog>
    <size>10M</size>
    <count>1</count>
  </logger>
  <listen_host>127.0.0.1</listen_host>
  <tcp_port>%[2]d</tcp_port>
  <http_port>%[3]d</http_port>
  <path>%[4]s</path>
  <tmp_path>%[5]s</tmp_path>
  <user_files_path>%[6]s</user_files_path>
  <format_schema_path>%[7]s</format_schema_path>
  <users_config>users.xml</users_config>
  <default_profile>default</default_profile>
  <default_database>default</default_database>
  <timezone>%[8]s</timezone>
  <mark_cache_size>67108864</mark_cache_size>
  <uncompressed_cache_size>0</uncompressed_cache_size>
  <max_concurrent_queries>100</max_concurrent_queries>
  <max_table_size_to_drop>0</max_table_size_to_drop>
  <max_partition_size_to_drop>0</max_partition_size_to_drop>
</yandex>
`, p("log"), tcpPort, httpPort, p("data"), p("tmp"), p("user_files"), p("format_schemas"), xmlEscape(tz))
	users := `<?xml version="1.0"?>
<yandex>
  <profiles>
    <default>
      <max_memory_usage>4000000000</max_memory_usage>
    </default>
  </profiles>
  <users>
    <default>
      <password></password>
      <networks>
        <ip>127.0.0.1</ip>
      </networks>
      <profile>default</profile>
      <quota>default</quota>
    </default>
  </users>
  <quotas>
    <default></default>
  </quotas>
</yandex>
`
	if err := os.WriteFile(filepath.Join(dir, "config.xml"), []byte(config), 0o644); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "users.xml"), []byte(users), 0o644)
}

var xmlReplacer = strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", `"`, "&quot;", "'", "&apos;")

func xmlEscape(s string) string { return xmlReplacer.Replace(s) }

// waitReady polls the HTTP /ping endpoint until it answers "Ok.", the
// process exits, or timeout passes.
func (s *Server) waitReady(timeout time.Duration) error {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	tick := time.NewTicker(25 * time.Millisecond)
	defer tick.Stop()
	for {
		resp, err := s.get("http://" + s.HTTPAddr + "/ping")
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK && strings.HasPrefix(string(body), "Ok.") {
				return nil
			}
		}
		select {
		case <-s.exited:
			return fmt.Errorf("server exited: %v", s.waitErr)
		case <-deadline.C:
			return fmt.Errorf("no answer on %s after %v", s.HTTPAddr, timeout)
		case <-tick.C:
		}
	}
}

func (s *Server) get(url string) (*http.Response, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	return s.http.Do(req)
}

// logTail returns the end of the server's error log and output, for
// failure messages.
func (s *Server) logTail() string {
	var b strings.Builder
	for _, name := range []string{"stdout.log", "error.log"} {
		data, err := os.ReadFile(filepath.Join(s.Dir, "log", name))
		if err != nil || len(data) == 0 {
			continue
		}
		if len(data) > 4000 {
			data = data[len(data)-4000:]
		}
		fmt.Fprintf(&b, "--- %s ---\n%s\n", name, data)
	}
	return b.String()
}

// Stop stops the server (SIGTERM, then SIGKILL after 15 seconds) and
// removes its directory. It is safe to call more than once.
func (s *Server) Stop() error {
	s.stopOnce.Do(func() {
		s.http.CloseIdleConnections()
		select {
		case <-s.exited:
		default:
			_ = s.cmd.Process.Signal(syscall.SIGTERM)
			t := time.NewTimer(15 * time.Second)
			select {
			case <-s.exited:
			case <-t.C:
				_ = s.cmd.Process.Kill()
				<-s.exited
				s.stopErr = fmt.Errorf("chtest: clickhouse-server %s ignored SIGTERM for 15s; killed", s.Addr)
			}
			t.Stop()
		}
		if err := os.RemoveAll(s.Dir); err != nil && s.stopErr == nil {
			s.stopErr = fmt.Errorf("chtest: %w", err)
		}
	})
	return s.stopErr
}

// Query runs one statement over the HTTP interface and returns the
// response body (TabSeparated). It is for set-up and checks in tests;
// the code under test uses the native protocol.
func (s *Server) Query(query string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	return s.QueryContext(ctx, query)
}

// QueryContext is Query bounded by ctx instead of a minute.
func (s *Server) QueryContext(ctx context.Context, query string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+s.HTTPAddr+"/", strings.NewReader(query))
	if err != nil {
		return "", err
	}
	resp, err := s.http.Do(req)
	if err != nil {
		return "", fmt.Errorf("query %q: %w", query, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", fmt.Errorf("query %q: %w", query, err)
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("query %q: %s: %s", query, resp.Status, strings.TrimSpace(string(body)))
	}
	return string(body), nil
}

// MustQuery is Query that fails tb on error.
func (s *Server) MustQuery(tb testing.TB, query string) string {
	tb.Helper()
	out, err := s.Query(query)
	if err != nil {
		tb.Fatalf("chtest: %v", err)
	}
	return out
}

var unsafeName = regexp.MustCompile(`[^a-z0-9_]+`)

// Database creates a database of its own for tb and drops it when tb's
// test ends, so that tests sharing a server do not see each other's
// tables. The name is derived from the test name, e.g. "t3_insert_dup".
func (s *Server) Database(tb testing.TB) string {
	tb.Helper()
	name := strings.ToLower(tb.Name())
	name = strings.Trim(unsafeName.ReplaceAllString(name, "_"), "_")
	if len(name) > 40 {
		name = name[:40]
	}
	name = fmt.Sprintf("t%d_%s", s.dbSeq.Add(1), name)
	s.MustQuery(tb, "CREATE DATABASE "+name)
	tb.Cleanup(func() {
		// Dropping gigabytes (a benchmark's database) waits for the
		// background merges of its tables: minutes, on 18.16.
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		defer cancel()
		if _, err := s.QueryContext(ctx, "DROP DATABASE IF EXISTS "+name); err != nil {
			tb.Errorf("chtest: %v", err)
		}
	})
	return name
}
