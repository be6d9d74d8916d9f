package tcpstats

import (
	"flag"
	"io"
	"reflect"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

func TestFileConfigFlagsOverride(t *testing.T) {
	c := DefaultFileConfig()
	if err := yaml.Unmarshal([]byte("interfaces: [eth0, eth1]\nfilter: tcp port 443\nmax_flows: 1000\nservice_ports: [443]\ntop_k: 7\n"), &c); err != nil {
		t.Fatal(err)
	}
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	c.Flags(fs)
	if err := fs.Parse([]string{"--interface", "lo", "--interface=any", "--filter-bpf", "1,6 0 0 1", "--top-k", "3"}); err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	want := FileConfig{
		Interfaces: []string{"lo", "any"}, FilterBPF: "1,6 0 0 1", Listen: ":9469", MaxFlows: 1000,
		IdleTimeout: 5 * time.Minute, ClosedTimeout: 10 * time.Second, TopK: 3, TopInterval: time.Minute,
		MaxPairs: 10000, ServicePorts: []uint16{443},
	}
	if !reflect.DeepEqual(c, want) {
		t.Errorf("got  %+v\nwant %+v", c, want)
	}
	l := c.Live()
	if l.Table.MaxFlows != 1000 || l.Metrics.TopK != 3 || l.FilterBPF != "1,6 0 0 1" || l.Filter != "" {
		t.Errorf("Live: %+v", l)
	}
}

func TestFileConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		edit func(*FileConfig)
		want string
	}{
		{func(c *FileConfig) { c.Filter = "tcp prot 80" }, `tcpstats.filter: filter "tcp prot 80": col 5`},
		{func(c *FileConfig) { c.FilterBPF = "2,6 0 0 1" }, "tcpstats.filter_bpf: filter_bpf: count says 2"},
		{func(c *FileConfig) { c.Filter, c.FilterBPF = "tcp", "1,6 0 0 1" }, "exclude each other"},
		{func(c *FileConfig) { c.MaxFlows = -1 }, "tcpstats.max_flows"},
		{func(c *FileConfig) { c.TopInterval = time.Millisecond }, "tcpstats.top_interval"},
		{func(c *FileConfig) { c.ServicePorts = []uint16{80, 80} }, "port 80 is zero or listed twice"},
		{func(c *FileConfig) { c.ServicePorts = make([]uint16, 201) }, "at most 200"},
		{func(c *FileConfig) { c.Interfaces = []string{"eth0", ""} }, `tcpstats.interfaces: ""`},
	} {
		c := DefaultFileConfig()
		tc.edit(&c)
		err := c.Validate()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("error %v, want one containing %q", err, tc.want)
		}
	}
	// Good filters, the default and "all" pass.
	for _, f := range []string{"", "all", "vlan and tcp", "port 53 or host fd00::1"} {
		c := DefaultFileConfig()
		c.Filter = f
		if err := c.Validate(); err != nil {
			t.Errorf("%q: %v", f, err)
		}
	}
}
