package tcpstats

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/net/bpf"

	"github.com/netpulse/netpulse/capture"
	"github.com/netpulse/netpulse/internal/integration"
)

// filterExprs are compiled by us and by tcpdump and must give the same
// verdict on every frame of the corpus. Addresses and ports are ones the
// captures hold, so every expression accepts some frames and rejects
// others (TestFilterAgainstTcpdump checks that too).
var filterExprs = []string{
	"tcp", "udp", "icmp", "icmp6", "ip", "ip6", "arp", "sctp",
	"host 203.0.113.175", "src host 192.0.2.131", "dst host 192.0.2.7",
	"vlan and host 198.51.100.242", "vlan and dst host 203.0.113.140",
	"host 10.0.0.1", "arp and dst host 10.0.0.2", "ip host 10.0.0.1",
	"host 2001:db8:5e::ca", "src host 2001:db8:c1::6317", "dst host fd77::2", "ip6 host fd77:1::1",
	"vlan and host 2001:db8:c1::1:cb1c", "vlan and src host 2001:db8:5e::3f1",
	"net 192.0.2.0/24", "src net 198.51.100.0/24", "dst net 10.77.0.0/16", "net 10.0.0.0/8",
	"net 2001:db8:c1::/48", "dst net fd77::/33", "net 0.0.0.0/0", "net ::/0", "net 192.0.2.131",
	"port 22", "src port 5001", "dst port 443", "tcp port 179", "udp port 53", "udp dst port 4789",
	"sctp port 9", "portrange 1000-2000", "tcp dst portrange 440-450", "src portrange 5002-5000",
	"port 22 or 443 or 8080", "src or dst host 192.0.2.131", "src and dst net 10.77.0.0/16",
	"host 192.0.2.131 and not 192.0.2.67",
	"vlan", "vlan 100", "vlan 1000", "vlan and tcp", "vlan 2000 and vlan 301 and ip",
	"vlan and vlan and ip6", "tcp or vlan and tcp", "not vlan", "vlan and not host 198.51.100.242",
	"vlan 104 and tcp port 22", "vlan and arp", "vlan or udp", "udp or vlan 105",
	"tcp and not port 22", "host 203.0.113.175 and (port 22 or port 443)",
	"udp or icmp and not ip6", "not (tcp or udp)", "!tcp && !udp", "icmp || ip6 && !tcp",
	"ip proto 17", "ip6 proto 58", "proto 6", "ip6 proto 0",
	DefaultFilterEthernet,
}

// filterFrame is one frame the programs run over.
type filterFrame struct {
	name string
	data []byte
	// For an AF_PACKET socket: the outer VLAN tag the kernel took out of
	// the frame, and the protocol it reports.
	vlan    bool
	tci     uint16
	proto   uint16
	cooked  bool // data starts at the network header
	sourceE bool // derived from an Ethernet frame
}

// readFrames reads every frame of the repository's captures.
func readFrames(t *testing.T) map[LinkType][]filterFrame {
	t.Helper()
	var files []string
	for _, g := range []string{"../testdata/tcp/*.pcap*", "../testdata/captures/*.pcap*"} {
		m, err := filepath.Glob(g)
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, m...)
	}
	if len(files) < 10 {
		t.Fatalf("only %d captures found", len(files))
	}
	out := map[LinkType][]filterFrame{}
	for _, f := range files {
		fh, err := os.Open(f)
		if err != nil {
			t.Fatal(err)
		}
		r, err := capture.NewReader(fh)
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		for {
			fr, err := r.Next()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			lt := LinkType(fr.LinkType)
			out[lt] = append(out[lt], filterFrame{name: fmt.Sprintf("%s#%d", filepath.Base(f), fr.Number), data: fr.Data})
		}
		fh.Close()
	}
	return out
}

// syntheticFrames are the cases the captures lack: ARP and RARP, IPv4
// options and fragments, IPv6 extension headers, SCTP, an 0x9100 tag, and
// truncated frames.
func syntheticFrames() []filterFrame {
	v4 := seg{src: "10.0.0.1", dst: "10.0.0.2", sport: 1500, dport: 22, flags: FlagACK, payload: 10}
	v6 := seg{src: "fd77:1::1", dst: "fd77::2", sport: 443, dport: 1999, flags: FlagACK}
	opts := ipPacket(v4) // IHL 6: the ports move 4 bytes
	opts = append(opts[:20:20], append([]byte{1, 1, 1, 1}, opts[20:]...)...)
	opts[0] = 0x46
	later := ipPacket(seg{src: "10.0.0.1", dst: "10.0.0.2", sport: 22, dport: 22, fragOff: 100})
	first := ipPacket(seg{src: "10.0.0.2", dst: "10.0.0.1", sport: 22, dport: 80, mf: true})
	frag6 := ipPacket(seg{src: "fd77::2", dst: "fd77:1::1", sport: 22, dport: 1000, ext: []byte{6, 0, 0, 1, 0, 0, 0, 1}, extFirst: 44})
	hop6 := ipPacket(seg{src: "fd77::2", dst: "fd77:1::1", sport: 22, dport: 1000, ext: []byte{6, 0, 1, 4, 0, 0, 0, 0}, extFirst: 0})
	udp4 := ipPacket(seg{src: "10.0.0.1", dst: "10.0.0.2", sport: 53, dport: 1500})
	udp4[9] = 17
	sctp4 := ipPacket(seg{src: "10.0.0.2", dst: "10.0.0.1", sport: 9, dport: 2000})
	sctp4[9] = 132
	icmp6 := ipPacket(v6)
	icmp6[6] = 58
	arp := func(op uint16, et uint16, spa, tpa string) []byte {
		b := make([]byte, 12, 42)
		b = binary.BigEndian.AppendUint16(b, et)
		b = append(b, 0, 1, 8, 0, 6, 4)
		b = binary.BigEndian.AppendUint16(b, op)
		b = append(b, 2, 0, 0, 0, 0, 1)
		b = append(b, netipBytes(spa)...)
		b = append(b, 0, 0, 0, 0, 0, 0)
		return append(b, netipBytes(tpa)...)
	}
	tagged := func(f []byte, tpid, vid uint16) []byte {
		b := append([]byte(nil), f[:12]...)
		b = binary.BigEndian.AppendUint16(b, tpid)
		b = binary.BigEndian.AppendUint16(b, vid)
		return append(b, f[12:]...)
	}
	fr := []filterFrame{
		{name: "v4 tcp", data: ethernet(ipPacket(v4))},
		{name: "v6 tcp", data: ethernet(ipPacket(v6))},
		{name: "v4 options", data: ethernet(opts)},
		{name: "v4 later fragment", data: ethernet(later)},
		{name: "v4 first fragment", data: ethernet(first)},
		{name: "v6 fragment header", data: ethernet(frag6)},
		{name: "v6 hop-by-hop", data: ethernet(hop6)},
		{name: "v4 udp", data: ethernet(udp4)},
		{name: "v4 sctp", data: ethernet(sctp4)},
		{name: "icmp6", data: ethernet(icmp6)},
		{name: "arp request", data: arp(1, 0x0806, "10.0.0.1", "10.0.0.2")},
		{name: "arp reply", data: arp(2, 0x0806, "10.0.0.2", "10.0.0.1")},
		{name: "rarp", data: arp(3, 0x8035, "10.0.0.3", "10.0.0.1")},
		{name: "9100 tag", data: tagged(ethernet(ipPacket(v4)), 0x9100, 104)},
		{name: "tagged arp", data: tagged(arp(1, 0x0806, "10.0.0.1", "10.0.0.2"), 0x8100, 100)},
		{name: "tagged v6 fragment", data: tagged(ethernet(frag6), 0x8100, 1000)},
		{name: "truncated ethertype", data: ethernet(ipPacket(v4))[:13]},
		{name: "truncated ip", data: ethernet(ipPacket(v4))[:30]},
		{name: "truncated ports", data: ethernet(ipPacket(v4))[:35]},
		{name: "empty", data: nil},
	}
	return fr
}

func netipBytes(s string) []byte {
	var b []byte
	for _, p := range strings.Split(s, ".") {
		var n byte
		fmt.Sscan(p, &n)
		b = append(b, n)
	}
	return b
}

// toSLL turns an Ethernet frame into the Linux cooked v1 or v2 frame the
// kernel would show for it: the EtherType moves into the cooked header
// and the rest (a VLAN tag included) follows.
func toSLL(f []byte, v2 bool) []byte {
	if len(f) < 14 {
		return nil
	}
	et, rest := f[12:14], f[14:]
	var h []byte
	if v2 {
		h = append(append([]byte{}, et...), 0, 0, 0, 0, 0, 2, 0, 1, 0, 6)
	} else {
		h = []byte{0, 0, 0, 1, 0, 6}
	}
	h = append(h, f[6:12]...)
	h = append(h, 0, 0)
	if !v2 {
		h = append(h, et...)
	}
	return append(h, rest...)
}

// corpus returns the frames for each link type a filter is compiled for.
func filterCorpus(t *testing.T) map[LinkType][]filterFrame {
	t.Helper()
	byLink := readFrames(t)
	eth := append(byLink[LinkEthernet], syntheticFrames()...)
	byLink[LinkEthernet] = eth
	for _, f := range eth {
		if s := toSLL(f.data, false); s != nil {
			byLink[LinkLinuxSLL] = append(byLink[LinkLinuxSLL], filterFrame{name: f.name + " as SLL", data: s, sourceE: true})
		}
		if s := toSLL(f.data, true); s != nil {
			byLink[LinkLinuxSLL2] = append(byLink[LinkLinuxSLL2], filterFrame{name: f.name + " as SLL2", data: s, sourceE: true})
		}
	}
	return byLink
}

// aux stands for what the kernel knows about a frame besides its bytes.
type aux struct {
	vlan  bool
	tci   uint16
	proto uint16
}

// vmFor replaces the kernel's ancillary loads, which x/net/bpf's VM does
// not run, by the constants a frame with a gives them, and builds a VM.
func vmFor(t *testing.T, prog []bpf.RawInstruction, a aux) *bpf.VM {
	t.Helper()
	ins := make([]bpf.Instruction, len(prog))
	for i, ri := range prog {
		if ri.Op&0x07 == 0 && ri.Op&0xe0 == 0x20 && ri.K >= skfAdOff {
			var v uint32
			switch bpf.Extension(ri.K - skfAdOff) {
			case bpf.ExtVLANTagPresent:
				if a.vlan {
					v = 1
				}
			case bpf.ExtVLANTag:
				v = uint32(a.tci)
			case bpf.ExtProto:
				v = uint32(a.proto)
			default:
				t.Fatalf("instruction %d: ancillary load %d not modelled", i, ri.K-skfAdOff)
			}
			ins[i] = bpf.LoadConstant{Dst: bpf.RegA, Val: v}
			continue
		}
		ins[i] = ri.Disassemble()
	}
	vm, err := bpf.NewVM(ins)
	if err != nil {
		t.Fatalf("VM: %v\n%s", err, dumpBPF(prog))
	}
	return vm
}

// verdicts runs prog over frames, with the ancillary data of each.
func verdicts(t *testing.T, prog []bpf.RawInstruction, frames []filterFrame) []bool {
	t.Helper()
	vms := map[aux]*bpf.VM{}
	out := make([]bool, len(frames))
	for i, f := range frames {
		a := aux{vlan: f.vlan, tci: f.tci, proto: f.proto}
		vm := vms[a]
		if vm == nil {
			vm = vmFor(t, prog, a)
			vms[a] = vm
		}
		n, err := vm.Run(f.data)
		if err != nil {
			t.Fatalf("%s: %v", f.name, err)
		}
		out[i] = n > 0
	}
	return out
}

func dumpBPF(prog []bpf.RawInstruction) string {
	var b strings.Builder
	for i, ri := range prog {
		fmt.Fprintf(&b, "(%03d) %v\n", i, ri.Disassemble())
	}
	return b.String()
}

// tcpdumpProgram compiles expr with tcpdump (-ddd) for link type name, or
// for the live interface iface; ok is false when tcpdump refuses it.
func tcpdumpProgram(t *testing.T, tcpdump, expr string, args ...string) ([]bpf.RawInstruction, string, bool) {
	t.Helper()
	cmd := exec.Command(tcpdump, append(append([]string{"-ddd"}, args...), expr)...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, stderr.String(), false
	}
	prog, err := ParseBPF(string(out))
	if err != nil {
		t.Fatalf("tcpdump %v %q: our ParseBPF refuses its output: %v\n%s", args, expr, err, out)
	}
	return prog, "", true
}

var linkNames = map[LinkType]string{LinkEthernet: "EN10MB", LinkLinuxSLL: "LINUX_SLL", LinkLinuxSLL2: "LINUX_SLL2"}

// compare requires the same verdict from both programs on every frame
// and returns how many frames they keep.
func compare(t *testing.T, what string, ours, theirs []bpf.RawInstruction, oursOn, theirsOn []filterFrame) int {
	t.Helper()
	a, b := verdicts(t, ours, oursOn), verdicts(t, theirs, theirsOn)
	kept, bad := 0, 0
	for i := range a {
		if a[i] {
			kept++
		}
		if a[i] != b[i] {
			if bad < 5 {
				t.Errorf("%s: frame %s: ours %v, tcpdump %v", what, oursOn[i].name, a[i], b[i])
			}
			bad++
		}
	}
	if bad > 0 {
		t.Errorf("%s: %d of %d frames differ\nours:\n%s\ntcpdump:\n%s", what, bad, len(a), dumpBPF(ours), dumpBPF(theirs))
	}
	return kept
}

// TestFilterAgainstTcpdump compiles every expression with our compiler
// and with tcpdump for Ethernet, Linux cooked v1 and v2, runs both
// programs in x/net/bpf's VM over every frame of the repository's
// captures (plus synthetic ARP, fragment, option and extension-header
// frames, and SLL copies of the Ethernet frames), and requires the same
// verdict on each. Where tcpdump refuses an expression (vlan on a cooked
// link) we must refuse it too.
func TestFilterAgainstTcpdump(t *testing.T) {
	tcpdump := integration.Tool(t, "tcpdump")
	corpus := filterCorpus(t)
	total := 0
	for _, lt := range []LinkType{LinkEthernet, LinkLinuxSLL, LinkLinuxSLL2} {
		frames := corpus[lt]
		for _, expr := range filterExprs {
			what := fmt.Sprintf("%s %q", linkNames[lt], expr)
			theirs, why, ok := tcpdumpProgram(t, tcpdump, expr, "-y", linkNames[lt])
			ours, err := CompileFilter(expr, lt, 262144)
			if !ok {
				if err == nil {
					t.Errorf("%s: tcpdump refuses it (%s), we accept it", what, strings.TrimSpace(why))
				}
				continue
			}
			if err != nil {
				t.Errorf("%s: %v", what, err)
				continue
			}
			kept := compare(t, what, ours, theirs, frames, frames)
			if lt == LinkEthernet && (kept == 0 || kept == len(frames)) {
				t.Errorf("%s keeps %d of %d frames: the corpus does not tell verdicts apart", what, kept, len(frames))
			}
			total += len(frames)
		}
	}
	t.Logf("%d expressions, %d Ethernet, %d SLL, %d SLL2 frames: %d verdicts each side, all equal",
		len(filterExprs), len(corpus[LinkEthernet]), len(corpus[LinkLinuxSLL]), len(corpus[LinkLinuxSLL2]), total)
}

// TestFilterSocketAgainstLibpcap checks the programs we attach to
// sockets against libpcap's own for live captures. Ethernet: libpcap's
// program for a live interface (`tcpdump -ddd -i lo`), whose first "vlan"
// reads the kernel's VLAN metadata, on every frame twice: as captured
// (tag, if any, in the frame) and with the outer tag moved into the
// metadata, as the kernel does on receive. Cooked ("any"): ours, rewritten
// for a SOCK_DGRAM socket, on the bare network packet with the kernel's
// protocol, against tcpdump's LINUX_SLL2 program on the cooked frame.
func TestFilterSocketAgainstLibpcap(t *testing.T) {
	tcpdump := integration.Tool(t, "tcpdump")
	corpus := filterCorpus(t)
	var eth, stripped []filterFrame
	for _, f := range corpus[LinkEthernet] {
		eth = append(eth, f)
		if len(f.data) >= 18 {
			if tp := binary.BigEndian.Uint16(f.data[12:]); tp == 0x8100 || tp == 0x88a8 {
				s := append(append([]byte(nil), f.data[:12]...), f.data[16:]...)
				stripped = append(stripped, filterFrame{name: f.name + " (tag in metadata)", data: s, vlan: true, tci: binary.BigEndian.Uint16(f.data[14:])})
			}
		}
	}
	if len(stripped) < 100 {
		t.Fatalf("only %d tagged frames", len(stripped))
	}
	eth = append(eth, stripped...)
	var cooked []filterFrame
	for _, f := range corpus[LinkLinuxSLL2] {
		cooked = append(cooked, filterFrame{name: f.name + " (socket)", data: f.data[20:], proto: binary.BigEndian.Uint16(f.data), cooked: true})
	}
	live := os.Geteuid() == 0
	if !live {
		if integration.Required() {
			t.Fatal("INTEGRATION PEER MISSING: not root, tcpdump cannot open lo for libpcap's live program (NETPULSE_REQUIRE_INTEGRATION=1)")
		}
		t.Log("INTEGRATION TEST PART SKIPPED: not root, so tcpdump cannot open lo: only the cooked half runs")
	}
	for _, expr := range filterExprs {
		ours, err := compileFilter(expr, target{link: LinkEthernet, kernelVLAN: true}, 262144)
		if err != nil {
			t.Errorf("%q: %v", expr, err)
			continue
		}
		if live {
			theirs, why, ok := tcpdumpProgram(t, tcpdump, expr, "-i", "lo")
			if !ok {
				t.Errorf("%q: tcpdump -i lo: %s", expr, why)
				continue
			}
			compare(t, fmt.Sprintf("socket %q", expr), ours, theirs, eth, eth)
		}
		sock, err := socketFilter(expr, true)
		theirs, _, ok := tcpdumpProgram(t, tcpdump, expr, "-y", "LINUX_SLL2")
		if ok != (err == nil) {
			t.Errorf("cooked socket %q: tcpdump ok=%v, ours: %v", expr, ok, err)
			continue
		}
		if ok {
			compare(t, fmt.Sprintf("cooked socket %q", expr), sock, theirs, cooked, corpus[LinkLinuxSLL2])
		}
	}
}

func TestFilterErrors(t *testing.T) {
	for _, tc := range []struct {
		expr string
		lt   LinkType
		want string
	}{
		{"tcp prot 80", LinkEthernet, `col 5: unexpected "prot"`},
		{"prot 80", LinkEthernet, `col 1: unknown word "prot"`},
		{"port 65536", LinkEthernet, "col 6: port 65536 out of range"},
		{"port 080", LinkEthernet, "not a number"},
		{"host example.com", LinkEthernet, "col 6: host: \"example.com\" is not an IP address"},
		{"net 10.0.0.1/8", LinkEthernet, "non-network bits"},
		{"net 10.0.0.0/33", LinkEthernet, "not an address/length"},
		{"vlan 4096", LinkEthernet, "VLAN ID 4096 out of range"},
		{"vlan", LinkLinuxSLL, "vlan: not supported on Linux cooked"},
		{"tcp and", LinkEthernet, "col 8: expression ends early"},
		{"(tcp", LinkEthernet, "missing )"},
		{"tcp)", LinkEthernet, `col 4: unexpected ")"`},
		{"tcp & udp", LinkEthernet, "col 5:"},
		{"ip6 host 10.0.0.1", LinkEthernet, "'ip6' modifier applied to an IPv4 host"},
		{"ip host ::1", LinkEthernet, "'ip' modifier applied to an IPv6 host"},
		{"tcp or 443", LinkEthernet, `unknown word "443"`},
		{"icmp port 80", LinkEthernet, "'icmp' modifier applied to port"},
		{"portrange 80", LinkEthernet, "want LOW-HIGH"},
		{"tcp proto 6", LinkEthernet, "only ip proto and ip6 proto"},
		{"less 100", LinkEthernet, `unknown word "less"`},
		{strings.Repeat("(", 200) + "tcp" + strings.Repeat(")", 200), LinkEthernet, "nested deeper"},
		{strings.Repeat("not ", 200) + "tcp", LinkEthernet, "nested deeper"},
		{strings.Repeat("x", 5000), LinkEthernet, "longer than 4096"},
		{"tcp", LinkRaw, "link type 101 not supported"},
	} {
		_, err := CompileFilter(tc.expr, tc.lt, 256)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%.40q: error %v, want one containing %q", tc.expr, err, tc.want)
		}
	}
}

// TestFilterLongJumps builds a program longer than a conditional jump can
// span and checks it still runs right: the first host accepts, so the
// jump from its test to "accept" crosses hundreds of instructions.
func TestFilterLongJumps(t *testing.T) {
	var parts []string
	for i := 0; i < 120; i++ {
		parts = append(parts, fmt.Sprintf("host 10.1.%d.%d", i/250, i%250))
	}
	expr := strings.Join(parts, " or ")
	prog, err := CompileFilter(expr, LinkEthernet, 256)
	if err != nil {
		t.Fatal(err)
	}
	if len(prog) < 600 {
		t.Fatalf("only %d instructions: the test does not need long jumps", len(prog))
	}
	vm := vmFor(t, prog, aux{})
	for i, tc := range []struct {
		src  string
		keep bool
	}{{"10.1.0.0", true}, {"10.1.0.119", true}, {"10.1.0.60", true}, {"10.1.0.120", false}, {"10.2.0.0", false}} {
		n, err := vm.Run(ethernet(ipPacket(seg{src: tc.src, dst: "192.0.2.1", flags: FlagACK})))
		if err != nil {
			t.Fatal(err)
		}
		if (n > 0) != tc.keep {
			t.Errorf("case %d %s: got %d, keep=%v", i, tc.src, n, tc.keep)
		}
	}
	long := strings.Repeat("host 10.1.2.3 or ", 240) + "tcp"
	if _, err := CompileFilter(long, LinkEthernet, 256); err == nil || !strings.Contains(err.Error(), "more than 4096 instructions") {
		t.Errorf("300 hosts: %v, want the instruction limit", err)
	}
}

func TestParseBPF(t *testing.T) {
	prog, err := ParseBPF("4,40 0 0 12,21 0 1 2048,6 0 0 262144,6 0 0 0,")
	if err != nil {
		t.Fatal(err)
	}
	if len(prog) != 4 || prog[1] != (bpf.RawInstruction{Op: 21, Jt: 0, Jf: 1, K: 2048}) {
		t.Errorf("got %v", prog)
	}
	if prog, err := ParseBPF("2\n48 0 0 -4048\n6 0 0 1\n"); err != nil || prog[0].K != skfAdOff+48 {
		t.Errorf("negative k: %v %v", prog, err)
	}
	for _, tc := range []struct{ in, want string }{
		{"", "empty"},
		{"x", "instruction count"},
		{"2,6 0 0 1", "count says 2"},
		{"1,6 0 0", `want "code jt jf k"`},
		{"1,6 0 300 1", "field 3"},
		{"2,21 0 5 1,6 0 0 1", "jumps past the end"},
		{"1,40 0 0 12", "not a return"},
		{"1,65535 0 0 0", "unknown opcode"},
		{"2,52 0 0 0,6 0 0 1", "division by zero"},
		{"5000", "instruction count"},
	} {
		_, err := ParseBPF(tc.in)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: error %v, want %q", tc.in, err, tc.want)
		}
	}
}

func TestCookedForSocket(t *testing.T) {
	// "tcpdump -y LINUX_SLL2 'inbound'" loads the packet type at byte 10.
	prog, err := ParseBPF("4,48 0 0 10,21 0 1 4,6 0 0 0,6 0 0 262144")
	if err != nil {
		t.Fatal(err)
	}
	got, err := cookedForSocket(prog, LinkLinuxSLL2)
	if err != nil || got[0].K != skfAdOff+uint32(bpf.ExtType) {
		t.Errorf("pkttype load: %v %v", got, err)
	}
	if _, err := cookedForSocket([]bpf.RawInstruction{{Op: 0x28, K: 12}, {Op: opRet}}, LinkLinuxSLL2); err == nil || !strings.Contains(err.Error(), "byte 12 of the cooked header") {
		t.Errorf("hardware address load: %v", err)
	}
}

func FuzzCompileFilter(f *testing.F) {
	for _, e := range filterExprs {
		f.Add(e, uint8(0))
	}
	f.Add("((tcp) and not (udp or icmp) || !ip6)", uint8(1))
	f.Add("src or dst net fd77::/16 and dst port 80 or 443", uint8(2))
	f.Fuzz(func(t *testing.T, expr string, which uint8) {
		tg := []target{{link: LinkEthernet}, {link: LinkEthernet, kernelVLAN: true}, {link: LinkLinuxSLL}, {link: LinkLinuxSLL2}}[which%4]
		prog, err := compileFilter(expr, tg, 256)
		if err != nil {
			var fe *FilterError
			if !errors.As(err, &fe) {
				t.Fatalf("%q: error %v is not a FilterError", expr, err)
			}
			return
		}
		if len(prog) > maxBPFInsns {
			t.Fatalf("%q: %d instructions", expr, len(prog))
		}
		if err := checkBPF(prog); err != nil {
			t.Fatalf("%q: %v\n%s", expr, err, dumpBPF(prog))
		}
		vm := vmFor(t, prog, aux{})
		for _, fr := range syntheticFrames() {
			if _, err := vm.Run(fr.data); err != nil {
				t.Fatal(err)
			}
		}
	})
}

func FuzzParseBPF(f *testing.F) {
	f.Add("4,40 0 0 12,21 0 1 2048,6 0 0 262144,6 0 0 0")
	f.Add("1\n6 0 0 65535\n")
	f.Fuzz(func(t *testing.T, s string) {
		prog, err := ParseBPF(s)
		if err != nil {
			return
		}
		if err := checkBPF(prog); err != nil {
			t.Fatalf("ParseBPF accepted a program checkBPF refuses: %v", err)
		}
	})
}
