package config

import (
	"strings"
	"testing"
	"time"
)

func TestParse(t *testing.T) {
	cfg, err := Parse([]byte("log:\n  level: debug\ndecoder:\n  netflow:\n    hold_time: 90s\n"))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Log.Level != "debug" || cfg.Decoder.NetFlow.HoldTime != 90*time.Second {
		t.Errorf("got %+v", cfg)
	}
	if cfg.Decoder.NetFlow.HoldSets != Default().Decoder.NetFlow.HoldSets {
		t.Error("absent key lost its default")
	}
}

func TestParseEmpty(t *testing.T) {
	cfg, err := Parse(nil)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Log != Default().Log {
		t.Errorf("empty file: got %+v", cfg.Log)
	}
}

func TestParseErrors(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"log:\n  levle: debug\n", "unknown key levle"},
		{"nosuch: 1\n", "unknown key nosuch"},
		{"log:\n  level: loud\n", "log.level"},
		{"log:\n  format: xml\n", "log.format"},
		{"decoder:\n  netflow:\n    hold_time: -1s\n", "decoder.netflow.hold_time"},
		{"decoder:\n  netflow:\n    hold_time: soon\n", "line 3"},
		{"log: [\n", "yaml"},
	} {
		_, err := Parse([]byte(tc.in))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: error %v, want one containing %q", tc.in, err, tc.want)
		}
	}
}

func TestDefaultsRoundTrip(t *testing.T) {
	b, err := Default().Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Parse(b); err != nil {
		t.Errorf("defaults do not parse back: %v\n%s", err, b)
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte("log:\n  level: debug\n"))
	f.Add([]byte("decoder:\n  netflow:\n    hold_time: 1m\n    hold_sets: 3\n"))
	f.Add([]byte("{}"))
	f.Fuzz(func(t *testing.T, b []byte) {
		cfg, err := Parse(b)
		if err == nil {
			if verr := cfg.Validate(); verr != nil {
				t.Fatalf("Parse accepted a config that does not validate: %v", verr)
			}
		}
	})
}
