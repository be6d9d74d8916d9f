// Package rsyslogtest runs Debian's rsyslogd on loopback ports for tests
// of syslog senders. The server writes every message it receives as one
// JSON line: the raw message and the fields rsyslog parsed from it, the
// structured data also parsed into JSON by rsyslog's mmpstrucdata (which
// undoes the PARAM-VALUE escaping), so a test checks a sender against a
// real receiver rather than against its own reading of the RFC.
//
// rsyslogd missing skips the test, or fails it when
// NETPULSE_REQUIRE_INTEGRATION=1 (package internal/integration).
package rsyslogtest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/netpulse/netpulse/internal/syncbuf"

	"github.com/netpulse/netpulse/internal/integration"
)

// Server is a running rsyslogd.
type Server struct {
	// UDP and TCP are the 127.0.0.1 addresses of its imudp and imtcp
	// inputs (TCP accepts RFC 6587 octet-counted and LF-framed messages).
	UDP, TCP string
	out      string
	cmd      *exec.Cmd
	stderr   *syncbuf.Buffer // rsyslogd's output
}

// Message is one received message as rsyslog parsed it. Fields absent
// from the message read "-" (rsyslog's NILVALUE), as in rsyslog.
type Message struct {
	Input     string `json:"input"` // imudp or imtcp
	Raw       string `json:"raw"`   // the message as received, less framing
	PRI       string `json:"pri"`
	Facility  string `json:"facility"`
	Severity  string `json:"severity"`
	Version   string `json:"version"`   // "1" for RFC 5424, "0" for RFC 3164
	Timestamp string `json:"timestamp"` // RFC 3339, as rsyslog read it
	Hostname  string `json:"hostname"`
	AppName   string `json:"app"`
	ProcID    string `json:"procid"`
	MsgID     string `json:"msgid"`
	Tag       string `json:"tag"`
	SD        string `json:"sd"` // STRUCTURED-DATA as sent
	Msg       string `json:"msg"`
	// ParsedSD is mmpstrucdata's reading of SD: SD-ID → name → value,
	// values unescaped. Empty for RFC 3164 and for NILVALUE.
	ParsedSD string `json:"parsed_sd"`
}

// SDMap decodes ParsedSD.
func (m Message) SDMap() (map[string]map[string]string, error) {
	if m.ParsedSD == "" {
		return nil, nil
	}
	var sd map[string]map[string]string
	err := json.Unmarshal([]byte(m.ParsedSD), &sd)
	return sd, err
}

// probeID is the MSGID of the messages Start sends to know the server is
// up; Messages leaves them out.
const probeID = "rsyslogtest-probe"

const confTemplate = `global(workDirectory=%[1]q maxMessageSize="64k"
       parser.escapeControlCharactersOnReceive="off" net.enableDNS="off")
module(load="imudp")
module(load="imtcp")
module(load="mmpstrucdata")
input(type="imudp" address="127.0.0.1" port="%[2]d" ruleset="keep")
input(type="imtcp" address="127.0.0.1" port="0" listenPortFileName=%[3]q ruleset="keep")
template(name="fields" type="list" option.jsonf="on") {
  property(outname="input" name="inputname" format="jsonf")
  property(outname="raw" name="rawmsg" format="jsonf")
  property(outname="pri" name="pri" format="jsonf")
  property(outname="facility" name="syslogfacility" format="jsonf")
  property(outname="severity" name="syslogseverity" format="jsonf")
  property(outname="version" name="protocol-version" format="jsonf")
  property(outname="timestamp" name="timereported" dateFormat="rfc3339" format="jsonf")
  property(outname="hostname" name="hostname" format="jsonf")
  property(outname="app" name="app-name" format="jsonf")
  property(outname="procid" name="procid" format="jsonf")
  property(outname="msgid" name="msgid" format="jsonf")
  property(outname="tag" name="syslogtag" format="jsonf")
  property(outname="sd" name="structured-data" format="jsonf")
  property(outname="msg" name="msg" format="jsonf")
  property(outname="parsed_sd" name="$!rfc5424-sd" format="jsonf")
}
ruleset(name="keep") {
  action(type="mmpstrucdata")
  action(type="omfile" file=%[4]q template="fields")
}
`

// Start runs rsyslogd until the test ends. It picks a free UDP port by
// binding and releasing it, so it tries again on the rare clash with
// another process.
func Start(t testing.TB) *Server {
	t.Helper()
	bin := rsyslogd(t)
	var errs []error
	for range 3 {
		s, err := start(t, bin)
		if err == nil {
			return s
		}
		errs = append(errs, err)
	}
	t.Fatalf("rsyslogd did not start: %v", errors.Join(errs...))
	return nil
}

// rsyslogd finds the daemon, which Debian installs in /usr/sbin, often
// not in a user's PATH.
func rsyslogd(t testing.TB) string {
	t.Helper()
	if _, err := exec.LookPath("rsyslogd"); err != nil {
		if _, err := os.Stat("/usr/sbin/rsyslogd"); err == nil {
			return "/usr/sbin/rsyslogd"
		}
	}
	return integration.Tool(t, "rsyslogd")
}

func start(t testing.TB, bin string) (*Server, error) {
	dir := t.TempDir()
	port, err := freeUDPPort()
	if err != nil {
		return nil, err
	}
	portFile := filepath.Join(dir, "tcp.port")
	s := &Server{out: filepath.Join(dir, "received.jsonl"), stderr: &syncbuf.Buffer{}}
	conf := filepath.Join(dir, "rsyslog.conf")
	text := fmt.Sprintf(confTemplate, dir, port, portFile, s.out)
	if err := os.WriteFile(conf, []byte(text), 0o644); err != nil {
		return nil, err
	}
	s.cmd = exec.Command(bin, "-n", "-f", conf, "-i", filepath.Join(dir, "rsyslogd.pid"))
	s.cmd.Stdout, s.cmd.Stderr = s.stderr, s.stderr
	s.cmd.SysProcAttr = sysProcAttr()
	if err := s.cmd.Start(); err != nil {
		return nil, fmt.Errorf("rsyslogd: %w", err)
	}
	exited := make(chan struct{})
	go func() {
		_ = s.cmd.Wait()
		close(exited)
	}()
	stop := func() {
		_ = s.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(3 * time.Second):
			_ = s.cmd.Process.Kill()
			<-exited
		}
	}
	s.UDP = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	if err := s.ready(portFile, exited); err != nil {
		stop()
		return nil, fmt.Errorf("%w\nrsyslogd output:\n%s", err, s.stderr)
	}
	t.Cleanup(stop)
	return s, nil
}

// ready waits for the TCP port file, then until a probe sent on each
// input has been written out.
func (s *Server) ready(portFile string, exited <-chan struct{}) error {
	deadline := time.Now().Add(10 * time.Second)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for s.TCP == "" {
		if b, err := os.ReadFile(portFile); err == nil {
			if p, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && p > 0 {
				s.TCP = net.JoinHostPort("127.0.0.1", strconv.Itoa(p))
				break
			}
		}
		if err := s.wait(tick, exited, deadline); err != nil {
			return fmt.Errorf("rsyslogd wrote no TCP port: %w", err)
		}
	}
	for _, input := range []string{"imudp", "imtcp"} {
		for {
			if err := s.probe(input); err == nil && s.seen(input) {
				break
			}
			if err := s.wait(tick, exited, deadline); err != nil {
				return fmt.Errorf("rsyslogd %s input not ready: %w", input, err)
			}
		}
	}
	return nil
}

func (s *Server) wait(tick *time.Ticker, exited <-chan struct{}, deadline time.Time) error {
	select {
	case <-exited:
		return errors.New("rsyslogd exited")
	case <-tick.C:
	}
	if time.Now().After(deadline) {
		return errors.New("timed out")
	}
	return nil
}

func (s *Server) probe(input string) error {
	msg := "<14>1 - - - - " + probeID + " -"
	if input == "imudp" {
		c, err := net.Dial("udp", s.UDP)
		if err != nil {
			return err
		}
		defer c.Close()
		_, err = c.Write([]byte(msg))
		return err
	}
	c, err := net.DialTimeout("tcp", s.TCP, time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	_, err = fmt.Fprintf(c, "%d %s", len(msg), msg)
	return err
}

func (s *Server) seen(input string) bool {
	all, _ := s.read()
	for _, m := range all {
		if m.MsgID == probeID && m.Input == input {
			return true
		}
	}
	return false
}

// read parses the complete lines written so far: rsyslogd may be in the
// middle of writing the last one, which is left for the next read.
func (s *Server) read() ([]Message, error) {
	data, err := os.ReadFile(s.out)
	if err != nil {
		return nil, err
	}
	if i := bytes.LastIndexByte(data, '\n'); i >= 0 {
		data = data[:i+1]
	} else {
		data = nil
	}
	var out []Message
	for _, line := range bytes.Split(data, []byte{'\n'}) {
		if len(line) == 0 {
			continue
		}
		var m Message
		if err := json.Unmarshal(line, &m); err != nil {
			return out, fmt.Errorf("rsyslogtest: %s: %w", line, err)
		}
		out = append(out, m)
	}
	return out, nil
}

// Wait polls until the server has written n messages that match picks
// (nil picks all but Start's probes), and returns them in arrival order.
// It fails the test after 10s, showing what did arrive.
func (s *Server) Wait(t testing.TB, n int, match func(Message) bool) []Message {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		all, err := s.read()
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			t.Fatal(err)
		}
		var got []Message
		for _, m := range all {
			if m.MsgID != probeID && (match == nil || match(m)) {
				got = append(got, m)
			}
		}
		if len(got) >= n {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("rsyslogd received %d matching messages, want %d; all: %+v\nrsyslogd output:\n%s", len(got), n, all, s.stderr)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func freeUDPPort() (int, error) {
	c, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).Port, nil
}
