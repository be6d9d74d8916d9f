package demo

import (
	"fmt"
	"math"
	"math/rand/v2"
	"net/netip"
	"sync"
	"time"

	"github.com/netpulse/netpulse/device"
	"github.com/netpulse/netpulse/flow"
)

// Datagram is one export datagram a simulated device sends, with the
// records a correct decoder reads from it.
type Datagram struct {
	// DeviceID is the sending device; Src is its source address.
	DeviceID uint64
	Src      netip.Addr
	Type     flow.Type
	// Time is when the datagram is sent, its export time.
	Time    time.Time
	Payload []byte
	// Records are what a correct decoder reads from Payload received
	// from Src at Time, in order: flows and, for sFlow, interface counter
	// samples. They are the ground truth of end-to-end tests.
	Records []flow.Record
}

// maxGap bounds how much simulated time one Step covers: after a longer
// pause (a suspended laptop), the devices export as if they had been cut
// off meanwhile, rather than catch up in a burst.
const maxGap = 10 * time.Second

// Simulator is a set of simulated routers. Its clock starts at the first
// Step (or Run, or WritePcap) and only moves forward; a Simulator is one
// run of simulated time, so use a new one for each. Its methods are safe
// for concurrent use.
type Simulator struct {
	cfg     Config
	devs    []*simDevice
	servers []server
	pools   [numPools][2]int

	mu      sync.Mutex
	started bool
	start   time.Time
	last    time.Time
	totals  Totals
}

// New builds a simulator; it opens nothing.
func New(cfg Config) (*Simulator, error) {
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	s := &Simulator{cfg: cfg}
	s.servers, s.pools = buildServers(cfg.Services, cfg.Seed)
	shares := 0.0
	for _, d := range cfg.Devices {
		shares += d.Share
	}
	for i, dc := range cfg.Devices {
		share := 1 / float64(len(cfg.Devices))
		if shares > 0 {
			share = dc.Share / shares
		}
		d, err := newSimDevice(s, i, dc, cfg.FlowsPerSecond*share)
		if err != nil {
			return nil, err
		}
		s.devs = append(s.devs, d)
		dt := DeviceTotals{ID: dc.ID, Name: dc.Name, Type: d.typ, SampleRate: dc.SampleRate}
		for _, ifc := range dc.Interfaces {
			dt.Interfaces = append(dt.Interfaces, InterfaceTotals{Index: ifc.Index, Name: ifc.Name})
		}
		s.totals.Devices = append(s.totals.Devices, dt)
	}
	return s, nil
}

// Devices returns the simulated routers as the device registry wants them.
func (s *Simulator) Devices() []device.Device {
	out := make([]device.Device, len(s.devs))
	for i, d := range s.devs {
		out[i] = device.Device{
			ID:         d.cfg.ID,
			Name:       d.cfg.Name,
			IPs:        []netip.Addr{d.src},
			FlowType:   d.typ.String(),
			SampleRate: d.cfg.SampleRate,
		}
	}
	return out
}

// Rate returns the flow records per second all devices export at t, on
// average and before silences take their part.
func (s *Simulator) Rate(t time.Time) float64 {
	return s.cfg.FlowsPerSecond * Diurnal(t.In(s.cfg.Location))
}

// Silent reports whether the device's interface is silent at t on the
// silence schedule. Before the simulator's clock starts nothing is.
func (s *Simulator) Silent(deviceID uint64, ifIndex uint32, t time.Time) bool {
	s.mu.Lock()
	start, started := s.start, s.started
	s.mu.Unlock()
	if !started {
		return false
	}
	for _, d := range s.devs {
		if d.cfg.ID != deviceID {
			continue
		}
		for _, ifc := range d.cfg.Interfaces {
			if ifc.Index == ifIndex {
				return ifc.Flaps && s.silentAt(start, t)
			}
		}
	}
	return false
}

// silentAt reports whether the silence schedule is in a silence at t.
func (s *Simulator) silentAt(start, t time.Time) bool {
	el := t.Sub(start) - s.cfg.SilenceAfter
	return el >= 0 && el%s.cfg.SilenceEvery < s.cfg.SilenceFor
}

// Start returns when the simulator's clock started, or the zero time.
func (s *Simulator) Start() time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.start
}

// Step advances the simulated clock to now and returns the datagrams the
// devices send meanwhile, which Totals counts as sent. The first call
// starts the clock: NetFlow v9 and IPFIX devices send their templates and
// sFlow agents their counters at once. A time before the previous call's
// counts as no time passing.
func (s *Simulator) Step(now time.Time) []Datagram {
	dgs := s.generate(now)
	s.mu.Lock()
	for i := range dgs {
		s.countLocked(&dgs[i])
	}
	s.mu.Unlock()
	return dgs
}

// generate is Step without counting the datagrams as sent.
func (s *Simulator) generate(now time.Time) []Datagram {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.started {
		s.started, s.start, s.last = true, now, now
		for _, d := range s.devs {
			d.begin(now)
		}
	}
	if now.Before(s.last) {
		now = s.last
	}
	from := s.last
	if now.Sub(from) > maxGap {
		from = now.Add(-maxGap)
	}
	var out []Datagram
	for _, d := range s.devs {
		out = d.advance(from, now, out)
	}
	s.last = now
	return out
}

// count counts a datagram as sent.
func (s *Simulator) count(dg *Datagram) {
	s.mu.Lock()
	s.countLocked(dg)
	s.mu.Unlock()
}

func (s *Simulator) countLocked(dg *Datagram) {
	t := &s.totals
	d := t.Device(dg.DeviceID)
	t.Datagrams++
	d.Datagrams++
	for i := range dg.Records {
		r := &dg.Records[i]
		if r.Kind == flow.KindCounters {
			d.CounterSamples++
			continue
		}
		t.Flows.Add(r)
		d.Flows.Add(r)
		if ifc := d.Interface(r.InIf); ifc != nil {
			ifc.In.Add(r)
		}
		if ifc := d.Interface(r.OutIf); ifc != nil {
			ifc.Out.Add(r)
		}
	}
}

func (s *Simulator) sendError(id uint64) {
	s.mu.Lock()
	s.totals.SendErrors++
	s.totals.Device(id).SendErrors++
	s.mu.Unlock()
}

// Totals returns what the devices have sent so far.
func (s *Simulator) Totals() Totals {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.totals.clone()
}

// Count sums flow records.
type Count struct {
	Flows, Packets, Bytes uint64
	// ScaledPackets and ScaledBytes sum each record's packets and bytes
	// multiplied by its sampling rate (1 when unknown): the traffic the
	// records stand for.
	ScaledPackets, ScaledBytes uint64
}

// Add counts one flow record.
func (c *Count) Add(r *flow.Record) {
	rate := uint64(max(r.SamplingRate, 1))
	c.Flows++
	c.Packets += r.Packets
	c.Bytes += r.Bytes
	c.ScaledPackets += r.Packets * rate
	c.ScaledBytes += r.Bytes * rate
}

// InterfaceTotals counts the flows of one interface.
type InterfaceTotals struct {
	Index uint32
	Name  string
	// In counts the flows that came in by the interface, Out those that
	// went out by it.
	In, Out Count
}

// DeviceTotals counts what one device sent.
type DeviceTotals struct {
	ID         uint64
	Name       string
	Type       flow.Type
	SampleRate uint32
	Datagrams  uint64
	// SendErrors counts datagrams Run failed to send; they are not
	// counted anywhere else.
	SendErrors uint64
	// CounterSamples counts sFlow interface counter records.
	CounterSamples uint64
	Flows          Count
	// Interfaces are in configuration order.
	Interfaces []InterfaceTotals
}

// Interface returns the totals of the interface with ifIndex, or nil.
func (d *DeviceTotals) Interface(ifIndex uint32) *InterfaceTotals {
	for i := range d.Interfaces {
		if d.Interfaces[i].Index == ifIndex {
			return &d.Interfaces[i]
		}
	}
	return nil
}

// Totals are the ground truth of what the simulator sent.
type Totals struct {
	Datagrams  uint64
	SendErrors uint64
	Flows      Count
	// Devices are in configuration order.
	Devices []DeviceTotals
}

// Device returns the totals of the device with id, or nil.
func (t *Totals) Device(id uint64) *DeviceTotals {
	for i := range t.Devices {
		if t.Devices[i].ID == id {
			return &t.Devices[i]
		}
	}
	return nil
}

func (t *Totals) clone() Totals {
	c := *t
	c.Devices = make([]DeviceTotals, len(t.Devices))
	for i, d := range t.Devices {
		d.Interfaces = append([]InterfaceTotals(nil), d.Interfaces...)
		c.Devices[i] = d
	}
	return c
}

// encoder turns a device's flows and counter records into datagrams. Its
// input records are the simulator's view of the traffic; the records of
// its datagrams are what a decoder reads from them.
type encoder interface {
	encode(now time.Time, flows, counters []flow.Record) []Datagram
}

// ifCounters are an interface's traffic counters, for sFlow counter
// samples: the sampled traffic scaled by the sampling rate.
type ifCounters struct {
	inOctets, inPkts, outOctets, outPkts uint64
}

// simDevice is one simulated router.
type simDevice struct {
	sim  *Simulator
	cfg  DeviceConfig
	pos  int
	typ  flow.Type
	src  netip.Addr
	rate float64 // mean flow records per second

	r     *rand.Rand
	hosts *rand.Zipf
	pools [numPools]*rand.Zipf
	// uplinks and lans are positions in cfg.Interfaces; transit and
	// peering are the preferred uplinks (peering -1 when none).
	uplinks, lans    []int
	transit, peering int

	acc          float64
	pending      []flow.Record
	nextFlush    time.Time
	nextCounters time.Time
	counters     []ifCounters
	enc          encoder
}

func newSimDevice(s *Simulator, pos int, dc DeviceConfig, rate float64) (*simDevice, error) {
	typ, _ := flow.ParseType(dc.FlowType)
	d := &simDevice{sim: s, cfg: dc, pos: pos, typ: typ, src: dc.Source.Unmap(), rate: rate, peering: -1, transit: -1}
	d.r = rand.New(rand.NewPCG(s.cfg.Seed, uint64(pos)+1))
	d.hosts = rand.NewZipf(d.r, hostZipfS, hostZipfV, uint64(s.cfg.Hosts-1))
	for p := range d.pools {
		n := s.pools[p][1] - s.pools[p][0]
		d.pools[p] = rand.NewZipf(d.r, serverZipfS, serverZipfV, uint64(n-1))
	}
	for i, ifc := range dc.Interfaces {
		switch {
		case !ifc.Uplink:
			d.lans = append(d.lans, i)
		case ifc.Peering && d.peering < 0:
			d.uplinks = append(d.uplinks, i)
			d.peering = i
		default:
			d.uplinks = append(d.uplinks, i)
			if d.transit < 0 {
				d.transit = i
			}
		}
	}
	if d.transit < 0 {
		d.transit = d.uplinks[0]
	}
	if s.cfg.Hosts > 244*len(d.lans) {
		return nil, fmt.Errorf("demo: device %q: %d hosts do not fit %d LANs of 244", dc.Name, s.cfg.Hosts, len(d.lans))
	}
	d.counters = make([]ifCounters, len(dc.Interfaces))
	return d, nil
}

// begin starts the device's clock: its uptime is a few days, different
// for each device (and far from the 49.7 days after which 32-bit uptimes
// wrap), and it exports at once.
func (d *simDevice) begin(now time.Time) {
	up := 3*24*time.Hour + time.Duration(d.pos%16)*7*time.Hour + time.Duration(d.pos*1237)*time.Millisecond
	boot := msTime(now).Add(-up)
	b := encBase{id: d.cfg.ID, src: d.src, typ: d.typ, boot: boot, maxSize: d.sim.cfg.MaxDatagram, domain: d.cfg.Domain, rate: d.cfg.SampleRate}
	switch d.typ {
	case flow.TypeNetFlowV5:
		d.enc = &v5Encoder{encBase: b}
	case flow.TypeNetFlowV9:
		d.enc = newTemplateEncoder(b, 9, d.cfg.SamplerOptions, d.sim.cfg.TemplateRefresh)
	case flow.TypeIPFIX:
		d.enc = newTemplateEncoder(b, 10, d.cfg.SamplerOptions, d.sim.cfg.TemplateRefresh)
	case flow.TypeSFlowV5:
		d.enc = newSFlowEncoder(b)
	}
	d.nextFlush, d.nextCounters = now, now
}

func (d *simDevice) silent(ifPos int, t time.Time) bool {
	return d.cfg.Interfaces[ifPos].Flaps && d.sim.silentAt(d.sim.start, t)
}

// advance generates the traffic of (from, to] and sends what is due at to.
func (d *simDevice) advance(from, to time.Time, out []Datagram) []Datagram {
	if span := to.Sub(from); span > 0 {
		mid := from.Add(span / 2).In(d.sim.cfg.Location)
		d.acc += d.rate * Diurnal(mid) * span.Seconds()
		for d.acc >= 1 {
			t := from.Add(time.Duration(d.r.Float64() * float64(span)))
			d.acc -= float64(d.conversation(t))
		}
	}
	if to.Before(d.nextFlush) {
		return out
	}
	var counters []flow.Record
	if d.typ == flow.TypeSFlowV5 && !to.Before(d.nextCounters) {
		counters = d.counterRecords(to)
		d.nextCounters = to.Add(d.sim.cfg.CounterInterval)
	}
	out = append(out, d.enc.encode(to, d.pending, counters)...)
	d.pending = d.pending[:0]
	d.nextFlush = to.Add(d.sim.cfg.ExportInterval)
	return out
}

// counterRecords returns a generic interface counter record per
// interface, as of t.
func (d *simDevice) counterRecords(t time.Time) []flow.Record {
	out := make([]flow.Record, len(d.cfg.Interfaces))
	for i, ifc := range d.cfg.Interfaces {
		c := d.counters[i]
		out[i] = flow.Record{Kind: flow.KindCounters, Counters: flow.Counters{
			IfIndex:      ifc.Index,
			IfType:       6, // ethernetCsmacd
			IfSpeed:      ifc.Speed,
			IfDirection:  1, // full duplex
			IfAdminUp:    true,
			IfOperUp:     !d.silent(i, t),
			InOctets:     c.inOctets,
			InUcastPkts:  uint64(uint32(c.inPkts)),
			OutOctets:    c.outOctets,
			OutUcastPkts: uint64(uint32(c.outPkts)),
		}}
	}
	return out
}

// conversation generates one conversation at t and queues its flows, or
// its packet sample on an sFlow agent. It returns the flow records it
// stands for, queued or lost to a silent interface.
func (d *simDevice) conversation(t time.Time) int {
	c, ok := d.newConversation(t)
	if d.typ == flow.TypeSFlowV5 {
		if ok {
			d.pending = append(d.pending, d.sample(&c))
		}
		return 1
	}
	n := 1
	if c.hasResp {
		n = 2
	}
	if ok {
		d.pending = append(d.pending, c.req)
		if c.hasResp {
			d.pending = append(d.pending, c.resp)
		}
	}
	return n
}

// uplinkFor returns the uplink towards srv at t: the peering uplink for
// the largest networks, else the transit one, failing over to any other
// uplink that is not silent; -1 when all are.
func (d *simDevice) uplinkFor(srv *server, t time.Time) int {
	want := d.transit
	if srv.peering && d.peering >= 0 {
		want = d.peering
	}
	if !d.silent(want, t) {
		return want
	}
	for _, u := range d.uplinks {
		if !d.silent(u, t) {
			return u
		}
	}
	return -1
}

// hostAddr returns internal host addresses: 10.D.L.H and 2001:db8:D:L::H.
func (d *simDevice) hostAddr(lan, slot int, v6 bool) netip.Addr {
	dev, l, h := byte(d.pos+1), byte(lan+1), byte(10+slot)
	if v6 {
		return netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 0, dev, 0, l, 15: h})
	}
	return netip.AddrFrom4([4]byte{10, dev, l, h})
}

// gateway returns the next hop through uplink position u.
func (d *simDevice) gateway(u int, v6 bool) netip.Addr {
	dev, n := byte(d.pos+1), byte(u+1)
	if v6 {
		return netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 0xff, 0xfe, 0, dev, 15: n})
	}
	return netip.AddrFrom4([4]byte{198, 18, dev, n})
}

// MAC addresses, locally administered: the router's port, the neighbour
// router on an uplink, and an internal host.
func (d *simDevice) portMAC(ifPos int) flow.MAC {
	return flow.MAC{0x02, 0x4e, 0x50, byte(d.pos + 1), byte(ifPos), 0x01}
}

func (d *simDevice) neighbourMAC(ifPos int) flow.MAC {
	return flow.MAC{0x02, 0x4e, 0x50, byte(d.pos + 1), byte(ifPos), 0xfe}
}

func (d *simDevice) hostMAC(lan, slot int) flow.MAC {
	return flow.MAC{0x02, 0x4e, 0x50, byte(d.pos + 1), 0x80 | byte(lan), byte(slot)}
}

// newConversation draws one conversation at t. ok is false when it cannot
// happen because an interface on its path is silent.
func (d *simDevice) newConversation(t time.Time) (c conversation, ok bool) {
	r := d.r
	cfg := &d.sim.cfg
	a := &apps[pick(appCumulative, r.Float64())]
	v6 := d.typ != flow.TypeNetFlowV5 && r.Float64() < cfg.IPv6Share
	host := int(d.hosts.Uint64())
	li, slot := host%len(d.lans), host/len(d.lans)
	lan := d.lans[li]
	srv := &d.sim.servers[d.sim.pools[a.pool][0]+int(d.pools[a.pool].Uint64())]
	inbound := r.Float64() < a.inbound
	tos := tosValues[pick(tosCum, r.Float64())]

	proto := a.proto
	if proto == protoICMP && v6 {
		proto = protoICMPv6
	}
	var sport, dport, rsport, rdport uint16 // request and response ports
	switch proto {
	case protoICMP:
		dport, rdport = 8<<8, 0 // echo request, echo reply
	case protoICMPv6:
		dport, rdport = 128<<8, 129<<8
	default:
		sport = uint16(32768 + r.IntN(28232))
		if a.name == "ntp" && r.IntN(2) == 0 {
			sport = 123
		}
		dport = a.ports[r.IntN(len(a.ports))]
		rsport, rdport = dport, sport
	}

	cp := clampPackets(lognormal(r, a.pkts, a.sigma))
	sp := clampPackets(float64(cp) * a.ratio * (0.8 + 0.4*r.Float64()))
	dur := time.Duration(lognormal(r, float64(a.dur), 1))
	if cp == 1 && sp == 1 {
		dur = time.Duration(r.Float64() * float64(a.dur))
	}
	sizeC, sizeS := a.sizeC, a.sizeS
	if v6 {
		sizeC, sizeS = sizeC+20, sizeS+20
	}
	reqFlags, respFlags := uint8(0), uint8(0)
	c.hasResp = true
	if proto == protoTCP {
		switch u := r.Float64(); {
		case u < 0.02: // unanswered SYN, retransmitted
			cp, c.hasResp = 1+r.IntN(3), false
			reqFlags = tcpSYN
			sizeC = 60
			if v6 {
				sizeC = 80
			}
			dur = time.Duration(cp-1) * time.Second
		case u < 0.04: // refused or reset
			reqFlags, respFlags = tcpSYN|tcpPSH|tcpACK, tcpSYN|tcpRST|tcpACK
			cp, sp = max(cp, 2), max(sp, 1)
		default:
			reqFlags, respFlags = tcpSYN|tcpACK|tcpPSH|tcpFIN, tcpSYN|tcpACK|tcpPSH|tcpFIN
			cp, sp = max(cp, 3), max(sp, 2)
		}
	}
	if dur > activeTimeout {
		// Still going: exported on the active timeout.
		dur = activeTimeout
		if proto == protoTCP && c.hasResp {
			reqFlags, respFlags = tcpPSH|tcpACK, tcpPSH|tcpACK
		}
	}
	end := t.Add(-time.Duration(r.Float64() * float64(2*time.Second)))
	start := end.Add(-dur)
	rtt := min(dur, time.Duration(2+r.IntN(60))*time.Millisecond)
	minSize := minIPSize(proto, v6)
	cbytes := uint64(cp) * uint64(packetSize(r, sizeC, minSize))
	sbytes := uint64(sp) * uint64(packetSize(r, sizeS, minSize))

	internal := d.hostAddr(li, slot, v6)
	external := srv.v4
	extMask, intMask := uint8(24), uint8(24)
	if v6 {
		external, extMask, intMask = srv.v6, 48, 64
	}
	up := d.uplinkFor(srv, t)
	ok = up >= 0 && !d.silent(lan, t)
	if up < 0 {
		up = d.transit
	}
	upIf, lanIf := d.cfg.Interfaces[up].Index, d.cfg.Interfaces[lan].Index
	gw := d.gateway(up, v6)

	// out is a flow from the internal host to the outside, in the other
	// way round.
	mk := func(out bool, sp, dp uint16, pkts int, bytes uint64, flags uint8, s, e time.Time) flow.Record {
		rec := flow.Record{
			Kind: flow.KindFlow, Proto: proto, ToS: tos, TCPFlags: flags,
			SrcPort: sp, DstPort: dp, Packets: uint64(pkts), Bytes: bytes,
			FlowStart: msTime(s), FlowEnd: msTime(e), Direction: flow.DirectionIngress,
		}
		if out {
			rec.SrcAddr, rec.DstAddr = internal, external
			rec.SrcAS, rec.DstAS = localAS, srv.as
			rec.SrcMask, rec.DstMask = intMask, extMask
			rec.InIf, rec.OutIf = lanIf, upIf
			rec.NextHop = gw
		} else {
			rec.SrcAddr, rec.DstAddr = external, internal
			rec.SrcAS, rec.DstAS = srv.as, localAS
			rec.SrcMask, rec.DstMask = extMask, intMask
			rec.InIf, rec.OutIf = upIf, lanIf
			rec.NextHop = internal
		}
		return rec
	}
	reqEnd, respStart := end, start.Add(rtt)
	if cp == 1 {
		reqEnd = start
	}
	respEnd := end
	if sp == 1 || respEnd.Before(respStart) {
		respEnd = respStart
	}
	c.req = mk(!inbound, sport, dport, cp, cbytes, reqFlags, start, reqEnd)
	c.resp = mk(inbound, rsport, rdport, sp, sbytes, respFlags, respStart, respEnd)
	c.sizeC, c.sizeS = sizeC, sizeS
	c.lan, c.slot, c.up = lan, slot, up
	c.li = li
	return c, ok
}

func clampPackets(x float64) int {
	return int(min(max(math.Round(x), 1), maxFlowPackets))
}

// sample picks one packet of the conversation, as an sFlow agent samples
// it on the input interface, and counts the traffic it stands for on the
// interface counters.
func (d *simDevice) sample(c *conversation) flow.Record {
	r := d.r
	reqW, respW := float64(c.req.Packets), 0.0
	if c.hasResp {
		respW = float64(c.resp.Packets)
	}
	rec, size, fromClient := c.resp, c.sizeS, false
	if r.Float64()*(reqW+respW) < reqW {
		rec, size, fromClient = c.req, c.sizeC, true
	}
	ip := packetSize(r, size, minIPSize(rec.Proto, rec.SrcAddr.Is6()))
	frame := max(64, ip+18) // Ethernet header and FCS
	if rec.Proto == protoTCP {
		n := float64(rec.Packets)
		switch u := r.Float64(); {
		case rec.TCPFlags == tcpSYN:
		case rec.TCPFlags&tcpSYN != 0 && u < 1/n:
			rec.TCPFlags = tcpSYN
			if !fromClient {
				rec.TCPFlags = tcpSYN | tcpACK
			}
		case rec.TCPFlags&tcpRST != 0 && u < 2/n:
			rec.TCPFlags = tcpRST | tcpACK
		case rec.TCPFlags&tcpFIN != 0 && u < 2/n:
			rec.TCPFlags = tcpFIN | tcpACK
		case r.IntN(2) == 0:
			rec.TCPFlags = tcpACK
		default:
			rec.TCPFlags = tcpPSH | tcpACK
		}
	}
	if rec.Proto == protoTCP && rec.TCPFlags&tcpSYN != 0 {
		// Handshake packets carry TCP options and no data.
		frame = max(64, minIPSize(protoTCP, rec.SrcAddr.Is6())+20+18)
	}
	rec.Packets, rec.Bytes = 1, uint64(frame)
	in := c.lan
	if rec.InIf != d.cfg.Interfaces[c.lan].Index {
		in = c.up
	}
	rec.DstMAC = d.portMAC(in)
	if in == c.lan {
		rec.SrcMAC = d.hostMAC(c.li, c.slot)
	} else {
		rec.SrcMAC = d.neighbourMAC(in)
	}
	rate := uint64(d.cfg.SampleRate)
	for i, ifc := range d.cfg.Interfaces {
		if ifc.Index == rec.InIf {
			d.counters[i].inOctets += uint64(frame) * rate
			d.counters[i].inPkts += rate
		}
		if ifc.Index == rec.OutIf {
			d.counters[i].outOctets += uint64(frame) * rate
			d.counters[i].outPkts += rate
		}
	}
	return rec
}
