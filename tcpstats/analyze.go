package tcpstats

import (
	"net/netip"
	"time"
)

// Config bounds the flow table. The zero value of a field means its default.
type Config struct {
	// MaxFlows is the most connections followed at once. When the table is
	// full the least recently seen connection is evicted and counted.
	// Default 65536.
	MaxFlows int
	// IdleTimeout ends a connection that has seen no packet for this long.
	// Default 5 minutes, longer than Linux's default keep-alive interval
	// would need only with tuned keep-alives.
	IdleTimeout time.Duration
	// ClosedTimeout ends a connection this long after its first RST or its
	// second FIN, leaving time for the last ACK and for retransmitted FINs.
	// Default 10 seconds.
	ClosedTimeout time.Duration
}

// DefaultConfig returns the defaults documented on Config.
func DefaultConfig() Config {
	return Config{MaxFlows: 65536, IdleTimeout: 5 * time.Minute, ClosedTimeout: 10 * time.Second}
}

func (c Config) withDefaults() Config {
	d := DefaultConfig()
	if c.MaxFlows <= 0 {
		c.MaxFlows = d.MaxFlows
	}
	if c.IdleTimeout <= 0 {
		c.IdleTimeout = d.IdleTimeout
	}
	if c.ClosedTimeout <= 0 {
		c.ClosedTimeout = d.ClosedTimeout
	}
	return c
}

// EndReason says why a connection left the flow table.
type EndReason uint8

// The reasons a connection ends.
const (
	EndClosed  EndReason = iota // FIN/RST seen and ClosedTimeout passed
	EndIdle                     // IdleTimeout passed
	EndEvicted                  // the table was full
	EndReused                   // a new SYN reused the 4-tuple
	EndFlush                    // Flush, at the end of a capture
)

var endNames = [...]string{"closed", "idle", "evicted", "reused", "flush"}

func (r EndReason) String() string { return endNames[r] }

// Direction is 0 from client to server, 1 from server to client. The
// client is the sender of the SYN or, when the handshake was not captured,
// the sender of the first packet seen.
type Direction uint8

// The two directions of a connection.
const (
	ToServer Direction = 0
	ToClient Direction = 1
)

func (d Direction) String() string {
	if d == ToServer {
		return "to_server"
	}
	return "to_client"
}

// Half is what one direction of a connection sent.
type Half struct {
	Packets      uint64 `json:"packets"`
	Segments     uint64 `json:"segments"` // packets carrying payload
	PayloadBytes uint64 `json:"payload_bytes"`
	IPBytes      uint64 `json:"ip_bytes"`
	MaxPayload   int    `json:"max_payload"`
	DFPackets    uint64 `json:"df_packets"`
	// WScale is the window scale option of this side's SYN, -1 if the SYN
	// was not seen, -2 if it carried none (scale 0).
	WScale int8   `json:"window_scale"`
	MSS    uint16 `json:"mss,omitempty"`
	Flags  Counts `json:"-"`
}

// Conn is one TCP connection. The Analyzer reuses Conns: one passed to a
// callback is valid only during the call; copy it to keep it.
type Conn struct {
	// ID numbers connections from 0 in the order they appear, as
	// Wireshark's tcp.stream does.
	ID             int
	Client, Server netip.AddrPort
	First, Last    time.Time
	// Handshake times; zero when that part of the handshake was not seen.
	SYN, SYNACK, ACK time.Time
	Dir              [2]Half
	Flags            Counts
	FINs             [2]bool
	RST              bool
	End              EndReason

	st [2]seqState
	// flow table links
	key        flowKey
	prev, next *Conn
	closed     bool
	closedAt   time.Time
	synSeq     uint32
	rttSeen    bool // the handshake RTT was recorded in Metrics
	synSeen    bool
}

// HandshakeRTT is the time from the last SYN to the ACK of the SYN-ACK,
// Wireshark's tcp.analysis.initial_rtt; zero if the handshake was not
// fully seen.
func (c *Conn) HandshakeRTT() time.Duration {
	if c.SYN.IsZero() || c.ACK.IsZero() {
		return 0
	}
	return c.ACK.Sub(c.SYN)
}

// Duration is the time from the first to the last packet.
func (c *Conn) Duration() time.Duration { return c.Last.Sub(c.First) }

// seqState is Wireshark's tcp_analyze_seq_info for one direction, in
// sequence numbers relative to that direction's base.
type seqState struct {
	base          uint32
	baseSet       bool
	nextSeq       uint32 // 0: unknown, as in Wireshark
	nextSeqTime   time.Time
	maxToBeAcked  uint32
	lastAck       uint32 // relative to the other direction's base
	lastAckTime   time.Time
	dupAcks       int
	window        uint32 // unscaled; noWindow until the side sends
	winScale      int8   // -1 unknown, -2 no option (0)
	windowFromSYN bool
	lastFlags     Flags
}

// noWindow is the window of a side not seen yet: not zero, so the first
// segment the other way is no zero-window probe (Wireshark: G_MAXUINT32).
const noWindow = ^uint32(0)

type flowKey struct{ a, b netip.AddrPort }

// keyOf orders the two endpoints, so both directions find one entry.
func keyOf(p *Packet) flowKey {
	s := netip.AddrPortFrom(p.Src, p.SrcPort)
	d := netip.AddrPortFrom(p.Dst, p.DstPort)
	if s.Compare(d) > 0 {
		return flowKey{d, s}
	}
	return flowKey{s, d}
}

// Totals are the Analyzer's counters over every connection.
type Totals struct {
	Packets     uint64
	Connections uint64
	Flags       Counts
	Ends        [len(endNames)]uint64
	// PacketSize and PayloadSize count packets by IP length and TCP
	// payload length into SizeBuckets.
	PacketSize  [len(SizeBuckets) + 1]uint64
	PayloadSize [len(SizeBuckets) + 1]uint64
}

// SizeBuckets are the upper bounds, in bytes, of the size distributions.
var SizeBuckets = [...]int{0, 64, 128, 256, 512, 1024, 1500, 9000, 65535}

func bucket(n int) int {
	for i, b := range SizeBuckets {
		if n <= b {
			return i
		}
	}
	return len(SizeBuckets)
}

// Analyzer follows TCP connections and classifies their segments. It is
// not safe for concurrent use; time comes only from packet timestamps, so
// replaying a capture gives the same result as watching it live.
type Analyzer struct {
	cfg    Config
	flows  map[flowKey]*Conn
	active list // least recently seen at the tail
	closed list // oldest close at the tail
	free   *Conn
	nextID int
	totals Totals
	onEnd  func(*Conn)
}

// New returns an Analyzer. onEnd, if not nil, is called for every
// connection as it leaves the table.
func New(cfg Config, onEnd func(*Conn)) *Analyzer {
	cfg = cfg.withDefaults()
	return &Analyzer{cfg: cfg, flows: make(map[flowKey]*Conn, min(cfg.MaxFlows, 4096)), onEnd: onEnd}
}

// Totals returns the counters so far.
func (a *Analyzer) Totals() Totals { return a.totals }

// Len returns the number of connections in the table.
func (a *Analyzer) Len() int { return len(a.flows) }

// Add analyzes one packet seen at time t and returns its connection, its
// direction and the findings about it. The Conn is valid until the next
// call.
func (a *Analyzer) Add(t time.Time, p *Packet) (*Conn, Direction, Flags) {
	a.totals.Packets++
	a.totals.PacketSize[bucket(p.IPLen)]++
	a.totals.PayloadSize[bucket(p.PayloadLen)]++
	a.expire(t)
	key := keyOf(p)
	c := a.flows[key]
	if c != nil && p.Flags&(FlagSYN|FlagACK) == FlagSYN && c.isNewSYN(p) {
		a.end(c, EndReused)
		c = nil
	}
	if c == nil {
		c = a.create(t, key, p)
	}
	dir := ToServer
	if p.Src != c.Client.Addr() || p.SrcPort != c.Client.Port() {
		dir = ToClient
	}
	c.Last = t
	if !c.closed {
		a.active.moveFront(c)
	}
	flags := c.analyze(t, dir, p)
	c.Flags.Add(flags)
	c.Dir[dir].Flags.Add(flags)
	a.totals.Flags.Add(flags)
	if !c.closed && (c.RST || c.FINs[0] && c.FINs[1]) {
		c.closed, c.closedAt = true, t
		a.active.remove(c)
		a.closed.pushFront(c)
	}
	return c, dir, flags
}

// isNewSYN reports whether a SYN starts a new connection on a known
// 4-tuple: after a close, or with a new initial sequence number.
func (c *Conn) isNewSYN(p *Packet) bool {
	if c.closed || c.FINs[0] || c.FINs[1] || c.RST {
		return true
	}
	return c.synSeen && p.Seq != c.synSeq
}

func (a *Analyzer) create(t time.Time, key flowKey, p *Packet) *Conn {
	if len(a.flows) >= a.cfg.MaxFlows {
		victim := a.closed.back()
		if victim == nil {
			victim = a.active.back()
		}
		a.end(victim, EndEvicted)
	}
	c := a.free
	if c != nil {
		a.free = c.next
		*c = Conn{}
	} else {
		c = new(Conn)
	}
	c.ID = a.nextID
	a.nextID++
	a.totals.Connections++
	c.key = key
	src := netip.AddrPortFrom(p.Src, p.SrcPort)
	dst := netip.AddrPortFrom(p.Dst, p.DstPort)
	c.Client, c.Server = src, dst
	if p.Flags&(FlagSYN|FlagACK) == FlagSYN|FlagACK {
		c.Client, c.Server = dst, src
	}
	c.First = t
	for i := range c.st {
		c.st[i].winScale = -1
		c.st[i].window = noWindow
		c.Dir[i].WScale = -1
	}
	a.flows[key] = c
	a.active.pushFront(c)
	return c
}

// end removes c from the table and hands it to the callback.
func (a *Analyzer) end(c *Conn, why EndReason) {
	c.End = why
	a.totals.Ends[why]++
	if c.closed {
		a.closed.remove(c)
	} else {
		a.active.remove(c)
	}
	delete(a.flows, c.key)
	if a.onEnd != nil {
		a.onEnd(c)
	}
	c.next, a.free = a.free, c
}

func (a *Analyzer) expire(now time.Time) {
	for c := a.closed.back(); c != nil && now.Sub(c.closedAt) > a.cfg.ClosedTimeout; c = a.closed.back() {
		a.end(c, EndClosed)
	}
	for c := a.active.back(); c != nil && now.Sub(c.Last) > a.cfg.IdleTimeout; c = a.active.back() {
		a.end(c, EndIdle)
	}
}

// Flush ends every connection still in the table, oldest first.
func (a *Analyzer) Flush() {
	for c := a.closed.back(); c != nil; c = a.closed.back() {
		a.end(c, EndFlush)
	}
	for c := a.active.back(); c != nil; c = a.active.back() {
		a.end(c, EndFlush)
	}
}

// list is an intrusive doubly linked list of Conns.
type list struct{ head, tail *Conn }

func (l *list) pushFront(c *Conn) {
	c.prev, c.next = nil, l.head
	if l.head != nil {
		l.head.prev = c
	} else {
		l.tail = c
	}
	l.head = c
}

func (l *list) remove(c *Conn) {
	if c.prev != nil {
		c.prev.next = c.next
	} else {
		l.head = c.next
	}
	if c.next != nil {
		c.next.prev = c.prev
	} else {
		l.tail = c.prev
	}
	c.prev, c.next = nil, nil
}

func (l *list) moveFront(c *Conn) {
	if l.head == c {
		return
	}
	l.remove(c)
	l.pushFront(c)
}

func (l *list) back() *Conn { return l.tail }
