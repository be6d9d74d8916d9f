package chtest

import (
	"sync"
	"testing"
)

// Shared is one server for a whole test package, started by the first test
// that asks for it and stopped by Close, which the package's TestMain calls
// after m.Run:
//
//	var server chtest.Shared
//
//	func TestMain(m *testing.M) {
//		code := m.Run()
//		server.Close()
//		os.Exit(code)
//	}
//
//	func TestSomething(t *testing.T) {
//		srv := server.Server(t)
//		db := srv.Database(t)
//		…
//	}
//
// Tests that never ask start nothing, so `go test -run` of an unrelated test
// stays instant. The zero value is ready to use; Options may be set before
// the first test runs.
type Shared struct {
	Options Options

	mu     sync.Mutex
	srv    *Server
	err    error
	tried  bool
	closed bool
}

// Server returns the package's server, starting it on first use. It skips
// or fails tb when the server is not installed, and fails tb when it did
// not start (every later test fails the same way, with the same message).
func (s *Shared) Server(tb testing.TB) *Server {
	tb.Helper()
	bin := Find()
	if bin == "" {
		integrationMissing(tb)
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		tb.Fatal("chtest: Shared.Server called after Close")
	}
	if !s.tried {
		s.tried = true
		s.srv, s.err = Launch(bin, s.Options)
	}
	if s.err != nil {
		tb.Fatalf("chtest: %v", s.err)
	}
	return s.srv
}

// Database is Server(tb).Database(tb): a fresh database on the shared
// server, dropped when tb's test ends.
func (s *Shared) Database(tb testing.TB) (*Server, string) {
	tb.Helper()
	srv := s.Server(tb)
	return srv, srv.Database(tb)
}

// Close stops the server if one was started. It returns the error of
// stopping it.
func (s *Shared) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	if s.srv == nil {
		return nil
	}
	return s.srv.Stop()
}
