package testdns

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/netpulse/netpulse/internal/integration"
)

// StartKnotdZones serves zones (origin -> zone file text) from Knot DNS
// (knotd, Debian package knot) on 127.0.0.1 and returns its address. Knot
// serves the zones as given: it neither signs nor checks them. The server
// stops when the test ends.
func StartKnotdZones(t testing.TB, zones map[string]string) string {
	t.Helper()
	bin := integration.Tool(t, "knotd")
	dir := t.TempDir()
	port := freePort(t)
	var conf strings.Builder
	fmt.Fprintf(&conf, `server:
    listen: 127.0.0.1@%d
    rundir: %q
    pidfile: %q
database:
    storage: %q
control:
    listen: %q
log:
  - target: stderr
    any: warning
template:
  - id: default
    storage: %q
    zonefile-sync: -1
    zonefile-load: whole
    journal-content: none
    semantic-checks: off
zone:
`, port, dir, filepath.Join(dir, "knot.pid"), filepath.Join(dir, "db"), filepath.Join(dir, "knot.sock"), dir)
	n := 0
	for origin, text := range zones {
		n++
		file := filepath.Join(dir, fmt.Sprintf("zone-%d.zone", n))
		if err := os.WriteFile(file, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&conf, "  - domain: %q\n    file: %q\n", origin, file)
	}
	// Knot warns when its database folder is missing.
	if err := os.MkdirAll(filepath.Join(dir, "db"), 0o755); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "knot.conf")
	if err := os.WriteFile(cfg, []byte(conf.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-c", cfg)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("knotd: %v", err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	if err := rootWaitSOA(addr, zones); err != nil {
		t.Fatalf("knotd: %v", err)
	}
	return addr
}
