package diskusage

import (
	"os/exec"
	"strconv"
	"strings"
	"testing"
)

// TestStatfsMatchesDF compares with df's Use% on the test's temp dir.
func TestStatfsMatchesDF(t *testing.T) {
	dir := t.TempDir()
	got, err := Statfs{}.Used(dir)
	if err != nil {
		t.Fatal(err)
	}
	if got < 0 || got > 1 {
		t.Fatalf("used %g out of [0,1]", got)
	}
	out, err := exec.Command("df", "--output=pcent", dir).Output()
	if err != nil {
		t.Skipf("df: %v", err)
	}
	lines := strings.Fields(string(out))
	pct, err := strconv.Atoi(strings.TrimSuffix(lines[len(lines)-1], "%"))
	if err != nil {
		t.Fatalf("df output %q", out)
	}
	// df rounds up to a whole percent, and the disk may change between calls.
	if d := got*100 - float64(pct); d > 1 || d < -2 {
		t.Fatalf("statfs %.2f%%, df %d%%", got*100, pct)
	}
}

func TestMissingPath(t *testing.T) {
	if _, err := (Statfs{}).Used("/nonexistent/path/x"); err == nil {
		t.Fatal("no error for a missing path")
	}
}
