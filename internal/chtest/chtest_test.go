package chtest

import (
	"net"
	"os"
	"strings"
	"testing"
)

var shared Shared

func TestMain(m *testing.M) {
	code := m.Run()
	if err := shared.Close(); err != nil {
		println(err.Error())
		code = 1
	}
	os.Exit(code)
}

// TestStartStop starts a private server, checks that it answers on
// loopback only, and that Stop removes its directory.
func TestStartStop(t *testing.T) {
	s := Start(t, Options{Timezone: "Asia/Kolkata"})
	if s.Version == "" {
		t.Error("empty version")
	}
	for _, addr := range []string{s.Addr, s.HTTPAddr} {
		host, _, err := net.SplitHostPort(addr)
		if err != nil || host != "127.0.0.1" {
			t.Errorf("address %q: want 127.0.0.1:port", addr)
		}
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Errorf("dial %s: %v", addr, err)
			continue
		}
		c.Close()
	}
	if got := strings.TrimSpace(s.MustQuery(t, "SELECT timezone()")); got != "Asia/Kolkata" {
		t.Errorf("timezone() = %q, want Asia/Kolkata", got)
	}
	if err := s.Stop(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(s.Dir); !os.IsNotExist(err) {
		t.Errorf("%s still there after Stop: %v", s.Dir, err)
	}
	if err := s.Stop(); err != nil {
		t.Errorf("second Stop: %v", err)
	}
}

// TestDatabase checks that each test gets its own database and that it
// is dropped at the end of the test.
func TestDatabase(t *testing.T) {
	srv := shared.Server(t)
	var names []string
	for _, name := range []string{"a", "b"} {
		t.Run(name, func(t *testing.T) {
			db := srv.Database(t)
			names = append(names, db)
			srv.MustQuery(t, "CREATE TABLE "+db+".x (a UInt8) ENGINE = Memory")
		})
	}
	if len(names) != 2 || names[0] == names[1] {
		t.Fatalf("databases %q: want two distinct", names)
	}
	out := srv.MustQuery(t, "SELECT name FROM system.databases")
	for _, n := range names {
		if strings.Contains(out, n) {
			t.Errorf("database %s not dropped at the end of its test", n)
		}
	}
}

// TestQueryError checks that a server error comes back with its message.
func TestQueryError(t *testing.T) {
	srv := shared.Server(t)
	_, err := srv.Query("SELECT no_such_column FROM system.one")
	if err == nil || !strings.Contains(err.Error(), "no_such_column") {
		t.Errorf("err = %v, want the server's message naming no_such_column", err)
	}
}
