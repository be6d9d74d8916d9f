package proxy

import (
	"errors"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/netpulse/netpulse/device"
	"github.com/netpulse/netpulse/enrich"
	"github.com/netpulse/netpulse/sink/collector"
	"github.com/netpulse/netpulse/sink/jsonl"
	"github.com/netpulse/netpulse/sink/kafka"
)

// Settings is everything `netpulse proxy` is told: the proxy itself, its
// sinks, and its reporting. It is the `proxy:` section of the YAML file,
// and kproxy's flags set the same fields.
type Settings struct {
	Config `yaml:",inline"`
	// Metrics is kproxy's -metrics: a one-line checkpoint every minute to
	// stderr, syslog or graphite:HOST:PORT; none or empty turns it off.
	Metrics string `yaml:"metrics"`
	// Sinks are where records go; any number at once.
	Sinks SinkSettings `yaml:"sinks"`
	// DevicesAPI pulls the device list from a collector (kproxy -api)
	// instead of a local file; the token is the collector token. Its
	// cache file defaults to data_dir/devices.json.
	DevicesAPI device.PullerConfig `yaml:"devices_api"`
}

// SinkSettings configures the sinks. A sink is on when its key setting is
// given.
type SinkSettings struct {
	// Collector is on when URL is set. Its token is read from the
	// environment variable NETPULSE_API_TOKEN, or from TokenFile.
	Collector collector.Config `yaml:"collector"`
	TokenFile string           `yaml:"token_file"`
	// Kafka is on when Brokers is set. A SASL password comes from
	// NETPULSE_KAFKA_PASSWORD.
	Kafka kafka.Config `yaml:"kafka"`
	// JSONL is on when Path is set ("-" is standard output).
	JSONL jsonl.Config `yaml:"jsonl"`
	// Null discards records, for benchmarks.
	Null bool `yaml:"null"`
}

// DefaultSettings returns the defaults.
func DefaultSettings() Settings {
	return Settings{Config: DefaultConfig(), Sinks: SinkSettings{
		Collector: collector.DefaultConfig(), Kafka: kafka.DefaultConfig(), JSONL: jsonl.DefaultConfig(),
	}, DevicesAPI: device.DefaultPullerConfig()}
}

// Validate checks the settings.
func (s *Settings) Validate() error {
	if err := s.Config.Validate(); err != nil {
		return err
	}
	if _, err := parseMetrics(s.Metrics); err != nil {
		return err
	}
	if s.DevicesAPI.URL != "" && s.Devices != "" {
		return errors.New("devices and api: give one source of devices, the file or the collector's API")
	}
	k := s.Sinks
	if k.Collector.URL == "" && len(k.Kafka.Brokers) == 0 && k.JSONL.Path == "" && !k.Null {
		return errors.New("no sink: give -collector URL, -kafka_brokers, -jsonl PATH or -null")
	}
	return nil
}

// Token reads the collector token: NETPULSE_API_TOKEN, else TokenFile.
// It is never taken from the command line, where ps would show it.
func (k *SinkSettings) Token() (string, error) {
	if t := strings.TrimSpace(os.Getenv("NETPULSE_API_TOKEN")); t != "" {
		return t, nil
	}
	if k.TokenFile != "" {
		b, err := os.ReadFile(k.TokenFile)
		if err != nil {
			return "", fmt.Errorf("token_file: %w", err)
		}
		if t := strings.TrimSpace(string(b)); t != "" {
			return t, nil
		}
		return "", fmt.Errorf("token_file %s is empty", k.TokenFile)
	}
	return "", errors.New("collector sink: no token: set NETPULSE_API_TOKEN or -api_token_file")
}

// metricsTarget is where the minute checkpoint goes.
type metricsTarget struct {
	kind string // "", stderr, syslog, graphite
	addr string // graphite host:port
}

func parseMetrics(s string) (metricsTarget, error) {
	switch {
	case s == "" || s == "none":
		return metricsTarget{}, nil
	case s == "stderr" || s == "syslog":
		return metricsTarget{kind: s}, nil
	case strings.HasPrefix(s, "graphite:"):
		addr := strings.TrimPrefix(s, "graphite:")
		if _, err := netip.ParseAddrPort(addr); err != nil {
			return metricsTarget{}, fmt.Errorf("metrics %q: want graphite:IP:PORT", s)
		}
		return metricsTarget{kind: "graphite", addr: addr}, nil
	}
	return metricsTarget{}, fmt.Errorf("metrics %q: want none, stderr, syslog or graphite:IP:PORT", s)
}

// Flags binds kproxy's flag spellings (and netpulse's own) to s. Go's
// flag package takes both -flag value and -flag=value, and --flag too.
// Flags parsed after the YAML file is loaded override it.
func (s *Settings) Flags(fs *flag.FlagSet) {
	c := &s.Config
	fs.StringVar(&c.Host, "host", c.Host, "IP to receive flow on (0.0.0.0 or :: for all)")
	fs.IntVar(&c.Port, "port", c.Port, "UDP port to receive flow on; the health check is on port+1")
	fs.StringVar(&c.Healthcheck, "healthcheck", c.Healthcheck, "IP the health check binds to")
	fs.IntVar(&c.Max, "max", c.Max, "max flows/s per device; above it flows are resampled (0: no limit)")
	fs.Var((*millis)(&c.SampleInterval), "sampleInterval", "milliseconds across which resampling evens out")
	fs.IntVar(&c.RcvBufSize, "rcvbuf_size", c.RcvBufSize, "receive buffer of each UDP socket, bytes")
	fs.IntVar(&c.Sockets, "sockets", c.Sockets, "SO_REUSEPORT sockets (one reader and worker each)")
	fs.IntVar(&c.Queue, "queue", c.Queue, "datagram batches queued per socket before dropping")
	fs.StringVar(&c.Name, "name", c.Name, "this proxy's name, as the collector shows it")
	fs.StringVar(&c.Devices, "devices", c.Devices, "YAML device file")
	fs.StringVar(&s.DevicesAPI.URL, "api", s.DevicesAPI.URL, "pull devices from this collector, https://host:port (instead of -devices)")
	fs.BoolVar(&c.AcceptUnregistered, "accept_unregistered", c.AcceptUnregistered, "make a device of every unregistered source")
	fs.Var((*idList)(&c.BootstrapDevices), "bootstrap_devices", "comma-separated device ids to list before they send flow")
	fs.StringVar(&c.DataDir, "data_dir", c.DataDir, "directory for templates, device cache and spool")
	fs.Var((*stringList)(&c.Tee), "tee", "also send every datagram as received to [src-ip:]dst-ip:dst-port (repeatable)")
	fs.Var((*stringList)(&c.Tee), "tee_kproxy", "kproxy's name for -tee")
	fs.Var((*prefixList)(&c.Enrich.MyNetworks), "my_network", "comma-separated CIDRs treated as internal")
	fs.StringVar(&c.Enrich.DNS, "dns", c.Enrich.DNS, "reverse-DNS server [internal:]IP:PORT")
	fs.StringVar(&c.Enrich.GeoIP, "geo", c.Enrich.GeoIP, "MaxMind-format GeoIP country database")
	fs.StringVar(&c.Enrich.ASN, "asn", c.Enrich.ASN, "MaxMind-format ASN database")
	fs.StringVar(&s.Metrics, "metrics", s.Metrics, "checkpoint every minute: none|stderr|syslog|graphite:IP:PORT")

	k := &s.Sinks
	fs.StringVar(&k.Collector.URL, "collector", k.Collector.URL, "collector URL, https://host:port (token from NETPULSE_API_TOKEN or -api_token_file)")
	fs.StringVar(&k.TokenFile, "api_token_file", k.TokenFile, "file holding the collector token")
	fs.StringVar(&k.Collector.CAFile, "tls_ca_file", k.Collector.CAFile, "CA bundle for the collector's certificate")
	fs.StringVar(&k.Collector.CertFile, "tls_cert_file", k.Collector.CertFile, "client certificate for mutual TLS")
	fs.StringVar(&k.Collector.KeyFile, "tls_key_file", k.Collector.KeyFile, "client key for mutual TLS")
	fs.Var((*stringList)(&k.Kafka.Brokers), "kafka_brokers", "comma-separated Kafka brokers host:port")
	fs.StringVar(&k.Kafka.Topic, "kafka_topic", k.Kafka.Topic, "Kafka topic")
	fs.StringVar(&k.JSONL.Path, "jsonl", k.JSONL.Path, "write records as JSON lines to this file (- for stdout)")
	fs.BoolVar(&k.Null, "null", k.Null, "discard records (benchmarks)")
}

// millis is a duration given in milliseconds, as kproxy's -sampleInterval.
type millis time.Duration

func (m *millis) String() string { return strconv.FormatInt(time.Duration(*m).Milliseconds(), 10) }
func (m *millis) Set(s string) error {
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n <= 0 {
		return fmt.Errorf("want milliseconds, a positive integer")
	}
	*m = millis(time.Duration(n) * time.Millisecond)
	return nil
}

// stringList is a comma-separated, repeatable list.
type stringList []string

func (l *stringList) String() string { return strings.Join(*l, ",") }
func (l *stringList) Set(s string) error {
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			*l = append(*l, f)
		}
	}
	return nil
}

type idList []uint64

func (l *idList) String() string {
	var b []string
	for _, id := range *l {
		b = append(b, strconv.FormatUint(id, 10))
	}
	return strings.Join(b, ",")
}
func (l *idList) Set(s string) error {
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		id, err := strconv.ParseUint(f, 10, 64)
		if err != nil {
			return fmt.Errorf("device id %q: want a number", f)
		}
		*l = append(*l, id)
	}
	return nil
}

type prefixList []netip.Prefix

func (l *prefixList) String() string {
	var b []string
	for _, p := range *l {
		b = append(b, p.String())
	}
	return strings.Join(b, ",")
}
func (l *prefixList) Set(s string) error {
	p, err := enrich.ParseNetworks(s)
	if err != nil {
		return err
	}
	*l = append(*l, p...)
	return nil
}
