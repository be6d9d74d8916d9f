package proxy

import (
	"flag"
	"io"
	"strings"
	"testing"
	"time"
)

func parseFlags(args ...string) (Settings, error) {
	s := DefaultSettings()
	fs := flag.NewFlagSet("proxy", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	s.Flags(fs)
	err := fs.Parse(args)
	return s, err
}

// TestKproxyFlags: kproxy's spellings, with "-flag value" and
// "-flag=value" alike.
func TestKproxyFlags(t *testing.T) {
	s, err := parseFlags("-host=0.0.0.0", "-port", "2055", "-healthcheck", "0.0.0.0", "-max=8000",
		"-sampleInterval", "30000", "-dns", "internal:127.0.0.1:5353", "-my_network", "10.10.0.0/16,23.1.3.0/24",
		"-bootstrap_devices", "104884,88726", "-rcvbuf_size=33554432", "-tee", "127.0.0.1:9000", "-tee_kproxy", "127.0.0.2:127.0.0.1:9001",
		"-metrics", "graphite:127.0.0.1:2003", "-null")
	if err != nil {
		t.Fatal(err)
	}
	if s.Host != "0.0.0.0" || s.Port != 2055 || s.Max != 8000 || s.SampleInterval != 30*time.Second ||
		s.Enrich.DNS != "internal:127.0.0.1:5353" || len(s.Enrich.MyNetworks) != 2 ||
		len(s.BootstrapDevices) != 2 || s.BootstrapDevices[1] != 88726 || s.RcvBufSize != 33554432 ||
		len(s.Tee) != 2 || s.Metrics != "graphite:127.0.0.1:2003" || !s.Sinks.Null {
		t.Errorf("settings %+v", s)
	}
	if err := s.Validate(); err != nil {
		t.Errorf("validate: %v", err)
	}
}

func TestSettingsErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"-null", "-host", "localhost"}, "host"},
		{[]string{"-null", "-port", "70000"}, "port"},
		{[]string{"-null", "-sampleInterval", "500"}, "sampleInterval"},
		{[]string{"-null", "-max", "-1"}, "max"},
		{[]string{"-null", "-tee", "nowhere"}, "tee"},
		{[]string{"-null", "-metrics", "carbon"}, "metrics"},
		{[]string{}, "no sink"},
	} {
		s, err := parseFlags(tc.args...)
		if err == nil {
			err = s.Validate()
		}
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: error %v, want %q", tc.args, err, tc.want)
		}
	}
	for _, bad := range [][]string{{"-sampleInterval", "soon"}, {"-my_network", "10.0.0.0/40"}, {"-bootstrap_devices", "x"}} {
		if _, err := parseFlags(bad...); err == nil {
			t.Errorf("%v accepted", bad)
		}
	}
}

func TestToken(t *testing.T) {
	t.Setenv("NETPULSE_API_TOKEN", "")
	var k SinkSettings
	if _, err := k.Token(); err == nil {
		t.Error("no token source accepted")
	}
	k.TokenFile = t.TempDir() + "/token"
	writeFile(k.TokenFile, "s3cret\n")
	if tok, err := k.Token(); err != nil || tok != "s3cret" {
		t.Errorf("token file: %q %v", tok, err)
	}
	t.Setenv("NETPULSE_API_TOKEN", "fromenv")
	if tok, _ := k.Token(); tok != "fromenv" {
		t.Errorf("environment must win, got %q", tok)
	}
}

// FuzzFlags feeds arbitrary command lines: parsing and validation may
// refuse them, never panic, and what validates has a sink.
func FuzzFlags(f *testing.F) {
	f.Add("-null -port 2055 -max 10")
	f.Add("-jsonl - -tee 127.0.0.1:1 -my_network 10.0.0.0/8 -sampleInterval 1000")
	f.Add("-collector https://127.0.0.1:1 -metrics graphite:127.0.0.1:2003 -bootstrap_devices 1,2")
	f.Fuzz(func(t *testing.T, line string) {
		s, err := parseFlags(strings.Fields(line)...)
		if err != nil {
			return
		}
		if s.Validate() == nil {
			k := s.Sinks
			if k.Collector.URL == "" && len(k.Kafka.Brokers) == 0 && k.JSONL.Path == "" && !k.Null {
				t.Fatal("validated without a sink")
			}
		}
	})
}
