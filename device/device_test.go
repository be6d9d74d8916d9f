package device

import (
	"net/netip"
	"strings"
	"testing"
	"time"
)

const sample = `devices:
  - id: 29118
    name: mgr-skg-cr01
    ips: [192.0.2.1, 2001:db8::1]
    flow_type: ipfix
    sample_rate: 1000
    snmp:
      version: v3
      v3: {user: admin, auth_protocol: SHA, auth_passphrase: x, priv_protocol: AES, priv_passphrase: y}
  - id: 2
    name: edge
    ips: [192.0.2.2]
`

func TestParse(t *testing.T) {
	s, err := Parse(strings.NewReader(sample))
	if err != nil {
		t.Fatal(err)
	}
	if s.Len() != 2 || s.All()[0].ID != 2 {
		t.Fatalf("devices %+v", s.All())
	}
	d := s.ByIP(netip.MustParseAddr("2001:db8::1"))
	if d == nil || d.Name != "mgr-skg-cr01" || d.SampleRate != 1000 || d.SNMP.V3.PrivProtocol != "AES" {
		t.Errorf("by IPv6: %+v", d)
	}
	if s.ByIP(netip.MustParseAddr("::ffff:192.0.2.2")) == nil {
		t.Error("IPv4-mapped source not found")
	}
	if s.ByID(29118) != d {
		t.Error("by id")
	}
}

func TestParseErrors(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"devices:\n  - {id: 1, name: a, ips: [192.0.2.1], colour: red}\n", "colour"},
		{"devices:\n  - {name: a, ips: [192.0.2.1]}\n", "id"},
		{"devices:\n  - {id: 1, ips: [192.0.2.1]}\n", "name"},
		{"devices:\n  - {id: 1, name: a}\n", "ips"},
		{"devices:\n  - {id: 1, name: a, ips: [nope]}\n", "nope"},
		{"devices:\n  - {id: 1, name: a, ips: [192.0.2.1], flow_type: v7}\n", "flow_type"},
		{"devices:\n  - {id: 1, name: a, ips: [192.0.2.1]}\n  - {id: 1, name: b, ips: [192.0.2.2]}\n", "used twice"},
		{"devices:\n  - {id: 1, name: a, ips: [192.0.2.1]}\n  - {id: 2, name: b, ips: [192.0.2.1]}\n", "also device 1"},
		{"devices:\n  - {id: 1, name: a, ips: [192.0.2.1], snmp: {version: v3}}\n", "snmp.v3.user"},
		{"devices:\n  - {id: 1, name: a, ips: [192.0.2.1], snmp: {version: v1}}\n", "snmp.version"},
	} {
		_, err := Parse(strings.NewReader(tc.in))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: error %v, want %q", tc.in, err, tc.want)
		}
	}
}

func TestUnregistered(t *testing.T) {
	r := NewRegistry(nil)
	t0 := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	a, b := netip.MustParseAddr("192.0.2.7"), netip.MustParseAddr("192.0.2.8")
	r.Unregistered(a, t0)
	r.Unregistered(b, t0.Add(time.Minute))
	r.Unregistered(a, t0.Add(20*time.Minute)) // a keeps sending
	got := r.UnregisteredList(t0.Add(35 * time.Minute))
	if len(got) != 1 || got[0].Addr != a || !got[0].FirstSeen.Equal(t0) {
		t.Errorf("after 35 min: %+v (b silent for 34 min must be gone, a keeps its first-seen time)", got)
	}
	// Registering a source removes it from the list.
	s, _ := NewSet([]Device{{ID: 1, Name: "a", IPs: []netip.Addr{a}}})
	r.Set(s)
	if got := r.UnregisteredList(t0.Add(36 * time.Minute)); len(got) != 0 {
		t.Errorf("registered source still listed: %+v", got)
	}
	if r.Lookup(a) == nil {
		t.Error("lookup after Set")
	}
}

func TestUnregisteredBounded(t *testing.T) {
	r := NewRegistry(nil)
	r.max = 3
	t0 := time.Unix(0, 0)
	for i := 0; i < 5; i++ {
		r.Unregistered(netip.AddrFrom4([4]byte{192, 0, 2, byte(i)}), t0)
	}
	if n := len(r.UnregisteredList(t0)); n != 3 {
		t.Errorf("%d kept, want 3", n)
	}
}

func FuzzParse(f *testing.F) {
	f.Add(sample)
	f.Add("devices: []\n")
	f.Fuzz(func(t *testing.T, in string) {
		s, err := Parse(strings.NewReader(in))
		if err != nil {
			return
		}
		for _, d := range s.All() {
			if err := d.Validate(); err != nil {
				t.Fatalf("accepted an invalid device: %v", err)
			}
			for _, ip := range d.IPs {
				if s.ByIP(ip) != d {
					t.Fatal("index does not find a device's own address")
				}
			}
		}
	})
}
