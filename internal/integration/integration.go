// Package integration decides what a test does when a real third-party
// peer (tshark, softflowd, clickhouse-server…) is missing: it skips with a
// loud message on a developer's machine, and fails when
// NETPULSE_REQUIRE_INTEGRATION=1, as CI sets it.
package integration

import (
	"os"
	"os/exec"
	"testing"
)

// Required reports whether integration peers must be present.
func Required() bool { return os.Getenv("NETPULSE_REQUIRE_INTEGRATION") == "1" }

// Tool returns the path of the named program, or skips (or fails) t.
func Tool(t testing.TB, name string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err == nil {
		return path
	}
	Missing(t, name+" is not installed (apt-get install it, see .ci/run)")
	return ""
}

// Missing skips t with a loud message, or fails it when peers are
// required.
func Missing(t testing.TB, why string) {
	t.Helper()
	if Required() {
		t.Fatalf("INTEGRATION PEER MISSING: %s (NETPULSE_REQUIRE_INTEGRATION=1)", why)
	}
	t.Skipf("INTEGRATION TEST SKIPPED: %s", why)
}
