package tcpstats

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"testing"
)

var update = flag.Bool("update", false, "rewrite golden files under testdata/")

// TestReportGolden checks `netpulse tcpstats --read` output on two real
// captures against golden files (regenerate with -update and review the
// diff).
func TestReportGolden(t *testing.T) {
	files := []string{"../testdata/tcp/rst4.pcap", "../testdata/tcp/keepalive6.pcap", "../testdata/tcp/lossboth4.pcap"}
	rep, err := ReadFiles(files, DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	for _, format := range []string{"table", "json"} {
		var buf bytes.Buffer
		if format == "table" {
			err = rep.WriteTable(&buf)
		} else {
			err = rep.WriteJSON(&buf)
		}
		if err != nil {
			t.Fatal(err)
		}
		golden := filepath.Join("testdata", "report."+format)
		if *update {
			os.MkdirAll("testdata", 0o755)
			if err := os.WriteFile(golden, buf.Bytes(), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		want, err := os.ReadFile(golden)
		if err != nil {
			t.Fatalf("%v (run go test -update)", err)
		}
		if !bytes.Equal(buf.Bytes(), want) {
			t.Errorf("%s output differs from %s (run go test -update and review the diff):\n%s", format, golden, buf.String())
		}
	}
	var back Report
	var buf bytes.Buffer
	rep.WriteJSON(&buf)
	if err := json.Unmarshal(buf.Bytes(), &back); err != nil {
		t.Fatal(err)
	}
	if len(back.Connections) != 5 || back.Totals["reset"] != 1 || back.Totals["keep_alive"] != 4 {
		t.Errorf("connections %d, totals %v", len(back.Connections), back.Totals)
	}
}
