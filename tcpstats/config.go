package tcpstats

import (
	"errors"
	"flag"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// FileConfig is the `tcpstats:` section of netpulse's YAML file
// (docs/configuration.md). The command's flags override it; Flags binds
// them to its fields. A zero number or duration means the default.
type FileConfig struct {
	// Interfaces to capture on ("any": all, in Linux cooked mode).
	Interfaces []string `yaml:"interfaces"`
	// Filter is a capture filter in pcap-filter syntax (docs/tcpstats.md,
	// "Capture filters"); empty is the default for each link, "all"
	// keeps every frame.
	Filter string `yaml:"filter"`
	// FilterBPF is a precompiled program, `tcpdump -ddd` output, instead
	// of Filter.
	FilterBPF string `yaml:"filter_bpf"`
	// Listen is the address of /metrics, /healthz and /readyz.
	Listen string `yaml:"listen"`
	// MaxFlows, IdleTimeout and ClosedTimeout bound the flow table of
	// each interface (Config).
	MaxFlows      int           `yaml:"max_flows"`
	IdleTimeout   time.Duration `yaml:"idle_timeout"`
	ClosedTimeout time.Duration `yaml:"closed_timeout"`
	// TopK IP pairs by retransmissions are published every TopInterval;
	// at most MaxPairs pairs are counted per interval.
	TopK        int           `yaml:"top_k"`
	TopInterval time.Duration `yaml:"top_interval"`
	MaxPairs    int           `yaml:"max_pairs"`
	// ServicePorts get their own service label; others are "other".
	ServicePorts []uint16 `yaml:"service_ports"`
}

// maxServicePorts keeps the service label bounded (and its index in a
// byte).
const maxServicePorts = 200

// DefaultFileConfig returns the defaults documented in
// docs/configuration.md.
func DefaultFileConfig() FileConfig {
	t := DefaultConfig()
	return FileConfig{
		Listen:        ":9469",
		MaxFlows:      t.MaxFlows,
		IdleTimeout:   t.IdleTimeout,
		ClosedTimeout: t.ClosedTimeout,
		TopK:          100,
		TopInterval:   time.Minute,
		MaxPairs:      10000,
		ServicePorts:  slices.Clone(DefaultServicePorts),
	}
}

// Validate checks what YAML types cannot, naming the key.
func (c *FileConfig) Validate() error {
	for _, v := range []struct {
		key string
		bad bool
	}{
		{"max_flows", c.MaxFlows < 0},
		{"idle_timeout", c.IdleTimeout < 0},
		{"closed_timeout", c.ClosedTimeout < 0},
		{"top_k", c.TopK < 0},
		{"top_interval", c.TopInterval < 0 || c.TopInterval > 0 && c.TopInterval < time.Second},
		{"max_pairs", c.MaxPairs < 0},
	} {
		if v.bad {
			return fmt.Errorf("tcpstats.%s: out of range (see docs/configuration.md)", v.key)
		}
	}
	if len(c.ServicePorts) > maxServicePorts {
		return fmt.Errorf("tcpstats.service_ports: %d ports, at most %d", len(c.ServicePorts), maxServicePorts)
	}
	seen := map[uint16]bool{}
	for _, p := range c.ServicePorts {
		if p == 0 || seen[p] {
			return fmt.Errorf("tcpstats.service_ports: port %d is zero or listed twice", p)
		}
		seen[p] = true
	}
	for _, name := range c.Interfaces {
		if name == "" || len(name) >= 16 || strings.ContainsAny(name, "/ \t") {
			return fmt.Errorf("tcpstats.interfaces: %q is not an interface name", name)
		}
	}
	if _, err := (LiveConfig{Filter: c.Filter, FilterBPF: c.FilterBPF}).filter(); err != nil {
		key := "tcpstats.filter"
		if c.FilterBPF != "" {
			key = "tcpstats.filter_bpf"
		}
		return fmt.Errorf("%s: %w", key, err)
	}
	return nil
}

// Live returns the capture configuration.
func (c FileConfig) Live() LiveConfig {
	return LiveConfig{
		Interfaces:  slices.Clone(c.Interfaces),
		Filter:      c.Filter,
		FilterBPF:   c.FilterBPF,
		Listen:      c.Listen,
		TopInterval: c.TopInterval,
		Table:       c.Table(),
		Metrics:     MetricsConfig{ServicePorts: slices.Clone(c.ServicePorts), TopK: c.TopK, MaxPairs: c.MaxPairs},
	}
}

// Table returns the flow-table bounds, for --read too.
func (c FileConfig) Table() Config {
	return Config{MaxFlows: c.MaxFlows, IdleTimeout: c.IdleTimeout, ClosedTimeout: c.ClosedTimeout}
}

// Flags binds the command-line flags to c: a flag given overrides the
// file's value, one not given leaves it.
func (c *FileConfig) Flags(fs *flag.FlagSet) {
	fs.Var(&listFlag{p: &c.Interfaces}, "interface", "`name` of an interface to capture on live, \"any\" for all (repeatable; replaces tcpstats.interfaces)")
	fs.Var(&filterFlag{c: c}, "filter", "capture `expression`, pcap-filter syntax (docs/tcpstats.md); empty: the default, \"all\": everything")
	fs.Var(&filterFlag{c: c, bpf: true}, "filter-bpf", "precompiled capture `program`, the output of tcpdump -ddd EXPR, lines joined with commas")
	fs.StringVar(&c.Listen, "listen", c.Listen, "`address` of /metrics, /healthz and /readyz")
	fs.IntVar(&c.MaxFlows, "max-flows", c.MaxFlows, "most connections followed at once per interface; the least recently seen is evicted and counted")
	fs.DurationVar(&c.IdleTimeout, "idle-timeout", c.IdleTimeout, "end a connection after this long without packets")
	fs.DurationVar(&c.ClosedTimeout, "closed-timeout", c.ClosedTimeout, "end a connection this long after its RST or second FIN")
	fs.IntVar(&c.TopK, "top-k", c.TopK, "IP pairs shown in netpulse_tcpstats_top_pair_retransmissions")
	fs.DurationVar(&c.TopInterval, "top-interval", c.TopInterval, "how often the top-K IP pairs by retransmissions are refreshed")
	fs.Var(portsFlag{&c.ServicePorts}, "service-ports", "comma-separated server `ports` that get their own service label; others are \"other\"")
}

// listFlag is a repeatable flag whose first use replaces the file's list.
type listFlag struct {
	p   *[]string
	set bool
}

func (f *listFlag) String() string {
	if f.p == nil {
		return ""
	}
	return strings.Join(*f.p, ",")
}

func (f *listFlag) Set(s string) error {
	if !f.set {
		*f.p, f.set = nil, true
	}
	*f.p = append(*f.p, s)
	return nil
}

// filterFlag sets Filter or FilterBPF and clears the other, so a flag
// overrides either kind of filter in the file.
type filterFlag struct {
	c   *FileConfig
	bpf bool
}

func (f *filterFlag) String() string {
	if f.c == nil {
		return ""
	}
	if f.bpf {
		return f.c.FilterBPF
	}
	return f.c.Filter
}

func (f *filterFlag) Set(s string) error {
	if f.bpf {
		f.c.FilterBPF, f.c.Filter = s, ""
	} else {
		f.c.Filter, f.c.FilterBPF = s, ""
	}
	return nil
}

// portsFlag parses a comma-separated port list.
type portsFlag struct{ p *[]uint16 }

func (f portsFlag) String() string {
	if f.p == nil {
		return ""
	}
	var s []string
	for _, p := range *f.p {
		s = append(s, strconv.Itoa(int(p)))
	}
	return strings.Join(s, ",")
}

func (f portsFlag) Set(s string) error {
	var out []uint16
	for _, v := range strings.Split(s, ",") {
		n, err := strconv.ParseUint(strings.TrimSpace(v), 10, 16)
		if err != nil {
			return errors.New("want comma-separated port numbers")
		}
		out = append(out, uint16(n))
	}
	*f.p = out
	return nil
}
