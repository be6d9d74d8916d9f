package alert_test

import (
	"context"
	"fmt"
	"os"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/netpulse/netpulse/alert"
	"github.com/netpulse/netpulse/alert/rsyslogtest"
)

// TestRsyslog sends through each transport rsyslog serves without extra
// packages (UDP, TCP; Debian's rsyslog has no TLS driver unless
// rsyslog-gnutls or rsyslog-openssl is installed, so TLS is tested
// against an in-process listener in syslog_test.go) and checks what
// rsyslog parsed: every RFC 5424 header field, the structured data as
// sent and as mmpstrucdata unescaped it, and an RFC 3164 message.
func TestRsyslog(t *testing.T) {
	srv := rsyslogtest.Start(t)
	pid := strconv.Itoa(os.Getpid())
	when := time.Date(2024, 3, 9, 13, 5, 6, 123456789, time.UTC)
	sd := map[string][]alert.Param{
		"ifwatch@32473": {
			{Name: "exporter", Value: "10.0.0.1"},
			{Name: "ifname", Value: `ge-0/0/1 "uplink" [core]`},
			{Name: "path", Value: `C:\flows\]`},
			{Name: "note", Value: "débit = 0 bps"},
		},
		"origin": {{Name: "software", Value: "netpulse"}},
	}
	wantParsed := map[string]map[string]string{
		"ifwatch@32473": {"exporter": "10.0.0.1", "ifname": `ge-0/0/1 "uplink" [core]`, "path": `C:\flows\]`, "note": "débit = 0 bps"},
		"origin":        {"software": "netpulse"},
	}
	const wantSD = `[ifwatch@32473 exporter="10.0.0.1" ifname="ge-0/0/1 \"uplink\" [core\]" path="C:\\flows\\\]" note="débit = 0 bps"][origin software="netpulse"]`

	for _, tc := range []struct {
		transport, addr string
		msgid, message  string
	}{
		{"udp", srv.UDP, "ifdown-udp", "interface down: 0 bps for 10m"},
		{"tcp", srv.TCP, "ifdown-tcp", "interface down\nsecond line kept by octet counting"},
		{"tcp", srv.TCP, "ifdown-utf8", "débit nul"},
	} {
		t.Run(tc.transport+"/"+tc.msgid, func(t *testing.T) {
			s := newSyslog(t, alert.SyslogConfig{Address: tc.addr, Transport: tc.transport, Facility: "local4",
				AppName: "netpulse ifwatch", Hostname: "fc-1.example.net"})
			s.Send(alert.Event{Time: when, Severity: alert.Warning, MsgID: tc.msgid, Message: tc.message, SD: sd})
			stopSyslog(t, s)
			m := srv.Wait(t, 1, func(m rsyslogtest.Message) bool { return m.MsgID == tc.msgid })[0]
			wantMsg := tc.message
			if strings.ContainsRune(wantMsg, 'é') {
				wantMsg = "\ufeff" + wantMsg // RFC 5424 §6.4; rsyslog keeps the BOM in msg
			}
			for _, f := range []struct{ name, got, want string }{
				{"input", m.Input, "im" + tc.transport},
				{"pri", m.PRI, "164"}, // local4 (20) * 8 + warning (4)
				{"facility", m.Facility, "20"},
				{"severity", m.Severity, "4"},
				{"version", m.Version, "1"},
				{"timestamp", m.Timestamp, "2024-03-09T13:05:06.123456Z"},
				{"hostname", m.Hostname, "fc-1.example.net"},
				{"app-name", m.AppName, "netpulseifwatch"}, // the space is not PRINTUSASCII
				{"procid", m.ProcID, pid},
				{"msgid", m.MsgID, tc.msgid},
				{"structured-data", m.SD, wantSD},
				{"msg", m.Msg, wantMsg},
			} {
				if f.got != f.want {
					t.Errorf("%s: got %q, want %q", f.name, f.got, f.want)
				}
			}
			parsed, err := m.SDMap()
			if err != nil {
				t.Fatalf("mmpstrucdata output %q: %v", m.ParsedSD, err)
			}
			if !reflect.DeepEqual(parsed, wantParsed) {
				t.Errorf("rsyslog parsed the structured data as\n%q\nwant\n%q", parsed, wantParsed)
			}
		})
	}

	t.Run("udp/rfc3164", func(t *testing.T) {
		s := newSyslog(t, alert.SyslogConfig{Address: srv.UDP, Format: "rfc3164", Facility: "user",
			AppName: "netpulse", Hostname: "fc-2"})
		local := time.Date(2024, 3, 9, 13, 5, 6, 0, time.Local)
		s.Send(alert.Event{Time: local, Severity: alert.Error, Message: "legacy receiver bsd-3164",
			SD: map[string][]alert.Param{"x@32473": {{Name: "k", Value: `v"`}}}})
		stopSyslog(t, s)
		m := srv.Wait(t, 1, func(m rsyslogtest.Message) bool { return strings.Contains(m.Msg, "bsd-3164") })[0]
		// The stamp has no year nor zone: rsyslog takes its own.
		wantTime := local.Format("-01-02T15:04:05")
		for _, f := range []struct{ name, got, want string }{
			{"pri", m.PRI, "11"}, // user (1) * 8 + error (3)
			{"version", m.Version, "0"},
			{"hostname", m.Hostname, "fc-2"},
			{"tag", m.Tag, "netpulse[" + pid + "]:"},
			{"app-name", m.AppName, "netpulse"},
			{"procid", m.ProcID, pid},
			{"msg", strings.TrimPrefix(m.Msg, " "), `legacy receiver bsd-3164 [x@32473 k="v\""]`},
		} {
			if f.got != f.want {
				t.Errorf("%s: got %q, want %q", f.name, f.got, f.want)
			}
		}
		if len(m.Timestamp) < 19 || m.Timestamp[4:19] != wantTime {
			t.Errorf("timestamp %q, want ….%s…", m.Timestamp, wantTime)
		}
	})

	t.Run("tcp/burst", func(t *testing.T) {
		// A burst over one connection: octet counting keeps every
		// message whole and in order.
		s := newSyslog(t, alert.SyslogConfig{Address: srv.TCP, Transport: "tcp", Queue: 500})
		const n = 300
		for i := range n {
			s.Send(alert.Event{Severity: alert.Info, MsgID: "burst", Message: fmt.Sprintf("burst\n%d", i)})
		}
		stopSyslog(t, s)
		var got []string
		for _, m := range srv.Wait(t, n, func(m rsyslogtest.Message) bool { return m.MsgID == "burst" }) {
			got = append(got, m.Msg)
		}
		if len(got) != n {
			t.Fatalf("rsyslog received %d of %d", len(got), n)
		}
		for i, m := range got {
			if want := fmt.Sprintf("burst\n%d", i); m != want {
				t.Fatalf("message %d: %q, want %q", i, m, want)
			}
		}
		if st := s.Stats(); st.Sent != n {
			t.Errorf("stats %+v", st)
		}
	})
}

func newSyslog(t *testing.T, cfg alert.SyslogConfig) *alert.Syslog {
	t.Helper()
	s, err := alert.NewSyslog(cfg, alert.Deps{})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	return s
}

func stopSyslog(t *testing.T, s *alert.Syslog) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if st := s.Stats(); st.Dropped+st.Failed+st.Errors != 0 {
		t.Errorf("stats %+v", st)
	}
}
