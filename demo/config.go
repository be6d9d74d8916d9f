package demo

import (
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/netpulse/netpulse/flow"
)

// Config configures the simulator. The zero value of a field means its
// default, given by DefaultConfig.
type Config struct {
	// Seed makes the traffic reproducible. Default 1.
	Seed uint64 `yaml:"seed"`
	// FlowsPerSecond is the export rate of all devices together, in flow
	// records (NetFlow/IPFIX flows and sFlow flow samples) per second,
	// averaged over a day; the diurnal curve moves it between about 0.4
	// and 1.6 times this. Default 200: a demo, not a benchmark.
	FlowsPerSecond float64 `yaml:"flows_per_second"`
	// Location is the time zone whose time of day drives the diurnal
	// curve. Default time.Local.
	Location *time.Location `yaml:"-"`
	// Tick is how often Run advances the simulation, and the step of
	// WritePcap. Default 100ms.
	Tick time.Duration `yaml:"tick"`
	// ExportInterval is how long a device gathers flows before it sends
	// them, as routers batch their export. Default 1s.
	ExportInterval time.Duration `yaml:"export_interval"`
	// TemplateRefresh is how often NetFlow v9 and IPFIX devices resend
	// their templates and sampler options. Default 1m.
	TemplateRefresh time.Duration `yaml:"template_refresh"`
	// CounterInterval is how often sFlow devices send interface counter
	// samples. Default 20s, a common agent setting.
	CounterInterval time.Duration `yaml:"counter_interval"`
	// MaxDatagram bounds the payload of a NetFlow v9, IPFIX or sFlow
	// datagram, in bytes; NetFlow v5 sends up to 30 flows. Default 1400.
	MaxDatagram int `yaml:"max_datagram"`
	// Hosts is the number of internal hosts behind each device, at most
	// 244 per LAN. Default 200.
	Hosts int `yaml:"hosts"`
	// Services is the number of external web servers, at most 750.
	// Default 300.
	Services int `yaml:"services"`
	// IPv6Share is the fraction of conversations over IPv6 on devices
	// that export IPv6 (all but NetFlow v5); negative turns IPv6 off.
	// Default 0.3.
	IPv6Share float64 `yaml:"ipv6_share"`
	// SilenceAfter, SilenceFor and SilenceEvery schedule the silences of
	// the interfaces marked Flaps: silent from SilenceAfter after the
	// start for SilenceFor, and again every SilenceEvery. Defaults 90s,
	// 3m and 10m.
	SilenceAfter time.Duration `yaml:"silence_after"`
	SilenceFor   time.Duration `yaml:"silence_for"`
	SilenceEvery time.Duration `yaml:"silence_every"`
	// Devices are the simulated routers. Default DefaultDevices().
	Devices []DeviceConfig `yaml:"devices"`
}

// DeviceConfig is one simulated router.
type DeviceConfig struct {
	// ID and Name are what Devices reports for registration.
	ID   uint64 `yaml:"id"`
	Name string `yaml:"name"`
	// Source is the loopback address the device sends from; each device
	// needs its own.
	Source netip.Addr `yaml:"source"`
	// FlowType is netflow5, netflow9, ipfix or sflow5.
	FlowType string `yaml:"flow_type"`
	// SampleRate is one packet in SampleRate sampled; 1 for unsampled.
	// NetFlow v5 allows up to 16383.
	SampleRate uint32 `yaml:"sample_rate"`
	// SamplerOptions makes a NetFlow v9 or IPFIX device announce its
	// sampling in options data for a sampler (v9: sampler ID, mode and
	// random interval; IPFIX: selector ID, packet interval and space)
	// that every flow names, instead of a sampling interval field in every
	// flow.
	SamplerOptions bool `yaml:"sampler_options"`
	// Domain is the v9 source ID, the IPFIX observation domain, the sFlow
	// sub-agent ID, or the v5 engine type<<8 | engine ID.
	Domain uint32 `yaml:"domain"`
	// Share is the device's part of Config.FlowsPerSecond; shares are
	// normalised over the devices, and all zero means equal parts.
	Share float64 `yaml:"share"`
	// Interfaces are the device's interfaces: at least one uplink and one
	// LAN.
	Interfaces []InterfaceConfig `yaml:"interfaces"`
}

// InterfaceConfig is one interface of a simulated router.
type InterfaceConfig struct {
	// Index is the SNMP ifIndex the export carries.
	Index uint32 `yaml:"index"`
	Name  string `yaml:"name"`
	// Speed is in bits per second, for sFlow counter samples.
	Speed uint64 `yaml:"speed"`
	// Uplink marks an interface towards the Internet; the others are LANs
	// with internal hosts behind them.
	Uplink bool `yaml:"uplink"`
	// Peering marks the uplink the servers of the few largest networks
	// are reached through; other traffic uses the first other uplink.
	Peering bool `yaml:"peering"`
	// Flaps makes the interface go silent on the silence schedule.
	Flaps bool `yaml:"flaps"`
}

// DefaultConfig returns the documented defaults, with DefaultDevices.
func DefaultConfig() Config {
	return Config{
		Seed:            1,
		FlowsPerSecond:  200,
		Location:        time.Local,
		Tick:            100 * time.Millisecond,
		ExportInterval:  time.Second,
		TemplateRefresh: time.Minute,
		CounterInterval: 20 * time.Second,
		MaxDatagram:     1400,
		Hosts:           200,
		Services:        300,
		IPv6Share:       0.3,
		SilenceAfter:    90 * time.Second,
		SilenceFor:      3 * time.Minute,
		SilenceEvery:    10 * time.Minute,
		Devices:         DefaultDevices(),
	}
}

// standardInterfaces are a router's two uplinks and two LANs; users is the
// LAN that flaps when flaps is set.
func standardInterfaces(flaps bool) []InterfaceConfig {
	return []InterfaceConfig{
		{Index: 1, Name: "xe-0/0/0 transit", Speed: 10e9, Uplink: true},
		{Index: 2, Name: "xe-0/0/1 peering", Speed: 10e9, Uplink: true, Peering: true},
		{Index: 3, Name: "ge-0/1/0 servers", Speed: 1e9},
		{Index: 4, Name: "ge-0/1/1 users", Speed: 1e9, Flaps: flaps},
	}
}

// DefaultDevices are six routers: one NetFlow v5 (unsampled), two NetFlow
// v9 (1:100 with a sampler in options data; unsampled with a sampling
// interval field), two IPFIX (unsampled and 1:1000, both with a selector
// in options data) and one sFlow agent (1:512). The LAN "users" of the
// second v9 router and of the sFlow agent flaps.
func DefaultDevices() []DeviceConfig {
	a := func(n byte) netip.Addr { return netip.AddrFrom4([4]byte{127, 0, 1, n}) }
	return []DeviceConfig{
		{ID: 9001, Name: "demo-edge-v5", Source: a(1), FlowType: "netflow5", SampleRate: 1, Share: 0.15, Interfaces: standardInterfaces(false)},
		{ID: 9002, Name: "demo-core-v9", Source: a(2), FlowType: "netflow9", SampleRate: 100, SamplerOptions: true, Domain: 1, Share: 0.2, Interfaces: standardInterfaces(false)},
		{ID: 9003, Name: "demo-branch-v9", Source: a(3), FlowType: "netflow9", SampleRate: 1, Domain: 2, Share: 0.1, Interfaces: standardInterfaces(true)},
		{ID: 9004, Name: "demo-dc-ipfix", Source: a(4), FlowType: "ipfix", SampleRate: 1, SamplerOptions: true, Domain: 1, Share: 0.2, Interfaces: standardInterfaces(false)},
		{ID: 9005, Name: "demo-peering-ipfix", Source: a(5), FlowType: "ipfix", SampleRate: 1000, SamplerOptions: true, Domain: 7, Share: 0.15, Interfaces: standardInterfaces(false)},
		{ID: 9006, Name: "demo-access-sflow", Source: a(6), FlowType: "sflow5", SampleRate: 512, Share: 0.2, Interfaces: standardInterfaces(true)},
	}
}

func (c Config) withDefaults() Config {
	d := DefaultConfig()
	if c.Seed == 0 {
		c.Seed = d.Seed
	}
	if c.FlowsPerSecond <= 0 {
		c.FlowsPerSecond = d.FlowsPerSecond
	}
	if c.Location == nil {
		c.Location = d.Location
	}
	if c.Tick <= 0 {
		c.Tick = d.Tick
	}
	if c.ExportInterval <= 0 {
		c.ExportInterval = d.ExportInterval
	}
	if c.TemplateRefresh <= 0 {
		c.TemplateRefresh = d.TemplateRefresh
	}
	if c.CounterInterval <= 0 {
		c.CounterInterval = d.CounterInterval
	}
	if c.MaxDatagram <= 0 {
		c.MaxDatagram = d.MaxDatagram
	}
	if c.Hosts <= 0 {
		c.Hosts = d.Hosts
	}
	if c.Services <= 0 {
		c.Services = d.Services
	}
	switch {
	case c.IPv6Share == 0:
		c.IPv6Share = d.IPv6Share
	case c.IPv6Share < 0:
		c.IPv6Share = 0
	}
	if c.SilenceAfter <= 0 {
		c.SilenceAfter = d.SilenceAfter
	}
	if c.SilenceFor <= 0 {
		c.SilenceFor = d.SilenceFor
	}
	if c.SilenceEvery <= 0 {
		c.SilenceEvery = d.SilenceEvery
	}
	if len(c.Devices) == 0 {
		c.Devices = d.Devices
	}
	return c
}

// Limits of the address plan and the encoders.
const (
	maxDevices  = 250
	maxHosts    = 10000
	maxServices = 750 // three /24s of documentation addresses, resolvers included
	minDatagram = 512
	maxDatagram = 65000
	maxV5Rate   = 0x3fff
)

// Validate checks the configuration, defaults applied; errors name the
// setting and what is wanted.
func (c *Config) Validate() error {
	if c.MaxDatagram < minDatagram || c.MaxDatagram > maxDatagram {
		return fmt.Errorf("demo: max_datagram %d: want %d..%d", c.MaxDatagram, minDatagram, maxDatagram)
	}
	if c.Hosts > maxHosts {
		return fmt.Errorf("demo: hosts %d: want at most %d", c.Hosts, maxHosts)
	}
	if c.Services > maxServices {
		return fmt.Errorf("demo: services %d: want at most %d", c.Services, maxServices)
	}
	if c.IPv6Share > 1 {
		return fmt.Errorf("demo: ipv6_share %v: want a fraction, 0..1", c.IPv6Share)
	}
	if c.SilenceFor >= c.SilenceEvery {
		return fmt.Errorf("demo: silence_for %v: want less than silence_every (%v)", c.SilenceFor, c.SilenceEvery)
	}
	if len(c.Devices) > maxDevices {
		return fmt.Errorf("demo: %d devices: want at most %d", len(c.Devices), maxDevices)
	}
	ids := map[uint64]bool{}
	srcs := map[netip.Addr]bool{}
	for i := range c.Devices {
		d := &c.Devices[i]
		if err := d.validate(); err != nil {
			return fmt.Errorf("demo: device %d (%q): %w", i+1, d.Name, err)
		}
		if ids[d.ID] {
			return fmt.Errorf("demo: device %d (%q): id %d used twice", i+1, d.Name, d.ID)
		}
		ids[d.ID] = true
		src := d.Source.Unmap()
		if srcs[src] {
			return fmt.Errorf("demo: device %d (%q): source %v used twice: the receiver tells devices apart by it", i+1, d.Name, src)
		}
		srcs[src] = true
	}
	return nil
}

func (d *DeviceConfig) validate() error {
	if d.ID == 0 {
		return errors.New("id: must be set and not 0")
	}
	if d.Name == "" {
		return errors.New("name: must be set")
	}
	if !d.Source.IsValid() || !d.Source.Unmap().IsLoopback() {
		return fmt.Errorf("source %v: want a loopback address, such as 127.0.1.N", d.Source)
	}
	t, err := flow.ParseType(d.FlowType)
	if err != nil {
		return fmt.Errorf("flow_type: %w", err)
	}
	if d.SampleRate == 0 {
		return errors.New("sample_rate: want 1 (unsampled) or more")
	}
	if t == flow.TypeNetFlowV5 && d.SampleRate > maxV5Rate {
		return fmt.Errorf("sample_rate %d: NetFlow v5 carries at most %d", d.SampleRate, maxV5Rate)
	}
	if t == flow.TypeNetFlowV5 && d.Domain > 0xffff {
		return fmt.Errorf("domain %d: NetFlow v5's engine type and ID take 16 bits", d.Domain)
	}
	if d.Share < 0 {
		return fmt.Errorf("share %v: want 0 or more", d.Share)
	}
	var up, lan int
	idx := map[uint32]bool{}
	for _, ifc := range d.Interfaces {
		if ifc.Index == 0 || ifc.Index >= 0x3fffffff {
			return fmt.Errorf("interface %q: index %d: want 1..%d", ifc.Name, ifc.Index, 0x3fffffff-1)
		}
		if t == flow.TypeNetFlowV5 && ifc.Index > 0xffff {
			return fmt.Errorf("interface %q: index %d: NetFlow v5 carries 16 bits", ifc.Name, ifc.Index)
		}
		if t == flow.TypeSFlowV5 && ifc.Index > 0xffffff {
			return fmt.Errorf("interface %q: index %d: an sFlow data source index has 24 bits", ifc.Name, ifc.Index)
		}
		if idx[ifc.Index] {
			return fmt.Errorf("interface index %d used twice", ifc.Index)
		}
		idx[ifc.Index] = true
		if ifc.Peering && !ifc.Uplink {
			return fmt.Errorf("interface %q: peering is for uplinks", ifc.Name)
		}
		if ifc.Uplink {
			up++
		} else {
			lan++
		}
	}
	if up == 0 || lan == 0 || lan > 250 {
		return fmt.Errorf("interfaces: want at least one uplink and 1..250 LANs (have %d uplinks, %d LANs)", up, lan)
	}
	return nil
}
