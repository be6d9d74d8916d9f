// Package device is the registry of flow-sending devices: which source
// address belongs to which router, with its flow type, sample rate and
// SNMP settings. It comes from a YAML file or from the collector's API
// (see Puller), and is swapped whole on reload so that lookups on the
// packet path take no lock.
package device

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/netpulse/netpulse/flow"
)

// Device is one router or switch that sends flow.
type Device struct {
	// ID is unique and stable; health output and records carry it.
	ID uint64 `yaml:"id" json:"id"`
	// Name is the device's name, as the operator knows it.
	Name string `yaml:"name" json:"name"`
	// IPs are the source addresses its export datagrams come from. A
	// router may export from several.
	IPs []netip.Addr `yaml:"ips" json:"ips"`
	// FlowType is what the device is set to export: netflow5, netflow9,
	// ipfix or sflow5. Informational; decoding recognises the protocol.
	FlowType string `yaml:"flow_type" json:"flow_type"`
	// SampleRate is the rate the router samples at. It applies to flows
	// that carry no rate of their own; 0 means unknown.
	SampleRate uint32 `yaml:"sample_rate,omitempty" json:"sample_rate,omitempty"`
	// SNMP holds the polling settings, when the device is polled.
	SNMP *SNMP `yaml:"snmp,omitempty" json:"snmp,omitempty"`
}

// SNMP are a device's SNMP polling settings.
type SNMP struct {
	// IP is the address to poll; the first of IPs when empty.
	IP netip.Addr `yaml:"ip,omitempty" json:"ip,omitempty"`
	// Version is v2c or v3.
	Version string `yaml:"version,omitempty" json:"version,omitempty"`
	// Community for v2c. Prefer CommunityFile in files kept in git.
	Community string `yaml:"community,omitempty" json:"community,omitempty"`
	// Minimize polls interface descriptions every 6 hours and no counters,
	// as kproxy's minimize_snmp.
	Minimize bool `yaml:"minimize,omitempty" json:"minimize,omitempty"`
	V3       *V3  `yaml:"v3,omitempty" json:"v3,omitempty"`
}

// V3 are SNMP v3 user-security settings.
type V3 struct {
	User string `yaml:"user" json:"user"`
	// AuthProtocol is NoAuth, MD5 or SHA.
	AuthProtocol   string `yaml:"auth_protocol" json:"auth_protocol"`
	AuthPassphrase string `yaml:"auth_passphrase,omitempty" json:"auth_passphrase,omitempty"`
	// PrivProtocol is NoPriv, DES or AES.
	PrivProtocol   string `yaml:"priv_protocol" json:"priv_protocol"`
	PrivPassphrase string `yaml:"priv_passphrase,omitempty" json:"priv_passphrase,omitempty"`
}

// Validate checks one device.
func (d *Device) Validate() error {
	if d.ID == 0 {
		return errors.New("id: must be set and not 0")
	}
	if strings.TrimSpace(d.Name) == "" {
		return errors.New("name: must be set")
	}
	if len(d.IPs) == 0 {
		return errors.New("ips: at least one sending address")
	}
	for _, ip := range d.IPs {
		if !ip.IsValid() {
			return errors.New("ips: invalid address")
		}
	}
	if d.FlowType != "" {
		if _, err := flow.ParseType(d.FlowType); err != nil {
			return fmt.Errorf("flow_type: %w", err)
		}
	}
	if s := d.SNMP; s != nil {
		switch s.Version {
		case "", "v2c":
		case "v3":
			if s.V3 == nil || s.V3.User == "" {
				return errors.New("snmp.v3.user: required for version v3")
			}
			switch s.V3.AuthProtocol {
			case "NoAuth", "MD5", "SHA":
			default:
				return fmt.Errorf("snmp.v3.auth_protocol %q: want NoAuth, MD5 or SHA", s.V3.AuthProtocol)
			}
			switch s.V3.PrivProtocol {
			case "NoPriv", "DES", "AES":
			default:
				return fmt.Errorf("snmp.v3.priv_protocol %q: want NoPriv, DES or AES", s.V3.PrivProtocol)
			}
		default:
			return fmt.Errorf("snmp.version %q: want v2c or v3", s.Version)
		}
	}
	return nil
}

// Set is an immutable set of devices, indexed by sending address.
type Set struct {
	devices []*Device
	byIP    map[netip.Addr]*Device
	byID    map[uint64]*Device
}

// NewSet validates devices and indexes them. Two devices may not share an
// ID or a sending address.
func NewSet(devices []Device) (*Set, error) {
	s := &Set{byIP: make(map[netip.Addr]*Device), byID: make(map[uint64]*Device)}
	for i := range devices {
		d := devices[i]
		if err := d.Validate(); err != nil {
			return nil, fmt.Errorf("device %d (%q): %w", i+1, d.Name, err)
		}
		if _, dup := s.byID[d.ID]; dup {
			return nil, fmt.Errorf("device %d (%q): id %d used twice", i+1, d.Name, d.ID)
		}
		d.IPs = slices.Clone(d.IPs)
		for j, ip := range d.IPs {
			ip = ip.Unmap()
			d.IPs[j] = ip
			if o, dup := s.byIP[ip]; dup {
				return nil, fmt.Errorf("device %d (%q): address %v is also device %d's", i+1, d.Name, ip, o.ID)
			}
			s.byIP[ip] = &d
		}
		s.byID[d.ID] = &d
		s.devices = append(s.devices, &d)
	}
	sort.Slice(s.devices, func(i, j int) bool { return s.devices[i].ID < s.devices[j].ID })
	return s, nil
}

// ByIP returns the device that sends from ip, or nil.
func (s *Set) ByIP(ip netip.Addr) *Device {
	if s == nil {
		return nil
	}
	return s.byIP[ip.Unmap()]
}

// ByID returns the device with the given ID, or nil.
func (s *Set) ByID(id uint64) *Device {
	if s == nil {
		return nil
	}
	return s.byID[id]
}

// All returns the devices ordered by ID. The caller must not change them.
func (s *Set) All() []*Device {
	if s == nil {
		return nil
	}
	return s.devices
}

// Len returns the number of devices.
func (s *Set) Len() int {
	if s == nil {
		return 0
	}
	return len(s.devices)
}

// File is the YAML form of a device list.
type File struct {
	Devices []Device `yaml:"devices" json:"devices"`
}

// Parse reads a YAML device file; unknown keys are errors.
func Parse(r io.Reader) (*Set, error) {
	dec := yaml.NewDecoder(r)
	dec.KnownFields(true)
	var f File
	if err := dec.Decode(&f); err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	return NewSet(f.Devices)
}

// LoadFile reads the YAML device file at path.
func LoadFile(path string) (*Set, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("devices: %w", err)
	}
	s, err := Parse(bytes.NewReader(b))
	if err != nil {
		return nil, fmt.Errorf("devices %s: %w", path, err)
	}
	return s, nil
}

// Registry holds the current device set and the unregistered sources. Its
// lookups are safe for concurrent use and take no lock.
type Registry struct {
	cur atomic.Pointer[Set]

	mu    sync.Mutex
	unreg map[netip.Addr]seen
	// ttl is how long an unregistered source is remembered after it last
	// sent (kproxy: 30 minutes).
	ttl time.Duration
	max int
}

type seen struct{ first, last time.Time }

// UnregisteredTTL is kproxy's rule: a source that sent in the last 30
// minutes is listed.
const UnregisteredTTL = 30 * time.Minute

// maxUnregistered bounds the unregistered table, keyed by network input.
const maxUnregistered = 4096

// NewRegistry returns a registry holding s (which may be nil).
func NewRegistry(s *Set) *Registry {
	r := &Registry{unreg: make(map[netip.Addr]seen), ttl: UnregisteredTTL, max: maxUnregistered}
	r.Set(s)
	return r
}

// Set replaces the device set.
func (r *Registry) Set(s *Set) {
	if s == nil {
		s = &Set{byIP: map[netip.Addr]*Device{}, byID: map[uint64]*Device{}}
	}
	r.cur.Store(s)
	r.mu.Lock()
	for ip := range r.unreg {
		if s.ByIP(ip) != nil {
			delete(r.unreg, ip)
		}
	}
	r.mu.Unlock()
}

// Current returns the current device set.
func (r *Registry) Current() *Set { return r.cur.Load() }

// Lookup returns the device for a source address, or nil.
func (r *Registry) Lookup(ip netip.Addr) *Device { return r.cur.Load().ByIP(ip) }

// Unregistered records a datagram from a source not in the registry. It
// returns false when the table is full and the source was not recorded.
func (r *Registry) Unregistered(ip netip.Addr, now time.Time) bool {
	ip = ip.Unmap()
	r.mu.Lock()
	defer r.mu.Unlock()
	if e, ok := r.unreg[ip]; ok && now.Sub(e.last) <= r.ttl {
		if now.After(e.last) {
			e.last = now
			r.unreg[ip] = e
		}
		return true
	}
	if len(r.unreg) >= r.max {
		r.expireLocked(now)
		if len(r.unreg) >= r.max {
			return false
		}
	}
	r.unreg[ip] = seen{now, now}
	return true
}

// UnregisteredSource is a source not in the registry and when it was
// first seen.
type UnregisteredSource struct {
	Addr      netip.Addr `json:"addr"`
	FirstSeen time.Time  `json:"first_seen"`
}

// UnregisteredList returns the sources that sent within the TTL, first
// seen first, and forgets the others.
func (r *Registry) UnregisteredList(now time.Time) []UnregisteredSource {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.expireLocked(now)
	out := make([]UnregisteredSource, 0, len(r.unreg))
	for ip, e := range r.unreg {
		out = append(out, UnregisteredSource{ip, e.first})
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].FirstSeen.Equal(out[j].FirstSeen) {
			return out[i].FirstSeen.Before(out[j].FirstSeen)
		}
		return out[i].Addr.Less(out[j].Addr)
	})
	return out
}

func (r *Registry) expireLocked(now time.Time) {
	for ip, e := range r.unreg {
		if now.Sub(e.last) > r.ttl {
			delete(r.unreg, ip)
		}
	}
}
