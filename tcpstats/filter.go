package tcpstats

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"golang.org/x/net/bpf"
)

// This file compiles a documented subset of pcap-filter(7) into classic
// BPF without libpcap, so the capture stays cgo-free. The subset and every
// place where we follow or refuse libpcap are in docs/tcpstats.md
// ("Capture filters"); TestFilterAgainstTcpdump runs our programs and
// tcpdump's over real captures and requires the same verdict for every
// frame.
//
// The pipeline is: words → a tree of comparisons (parse, which bakes in
// the header offsets, because pcap's "vlan" shifts the offsets of
// everything written after it) → short-circuit code with symbolic labels
// (gen) → instructions with jump offsets (layout, which inserts long jumps
// where a conditional one cannot reach).

// Limits on outside input: an expression is a flag or a YAML value, but
// it still must not blow up the stack or the kernel's program limit.
const (
	maxFilterLen   = 4096
	maxFilterDepth = 100
	// maxBPFInsns is the kernel's limit (BPF_MAXINSNS).
	maxBPFInsns = 4096
)

// FilterError is a filter expression the compiler refuses, with the byte
// position (from 1) where the trouble starts.
type FilterError struct {
	Expr string
	Pos  int
	Msg  string
}

func (e *FilterError) Error() string {
	if e.Pos > 0 {
		return fmt.Sprintf("filter %q: col %d: %s", e.Expr, e.Pos, e.Msg)
	}
	return fmt.Sprintf("filter %q: %s", e.Expr, e.Msg)
}

// CompileFilter compiles a pcap-filter expression for frames of link type
// lt as they are stored in a capture file (LinkEthernet, LinkLinuxSLL or
// LinkLinuxSLL2): the program `tcpdump -ddd -y EN10MB|LINUX_SLL|LINUX_SLL2
// EXPR` prints, up to libpcap's optimizer. Accepted frames return snap.
// An empty expression accepts every frame, as in tcpdump.
func CompileFilter(expr string, lt LinkType, snap uint32) ([]bpf.RawInstruction, error) {
	return compileFilter(expr, target{link: lt}, snap)
}

// target says where a program runs.
type target struct {
	link LinkType
	// kernelVLAN: the program runs on an AF_PACKET socket, where the
	// kernel has usually moved the outer 802.1Q tag out of the frame into
	// metadata. The first "vlan" then tests that metadata, as libpcap does
	// for live captures (its BPF_SPECIAL_VLAN_HANDLING).
	kernelVLAN bool
}

func compileFilter(expr string, tg target, snap uint32) ([]bpf.RawInstruction, error) {
	switch tg.link {
	case LinkEthernet, LinkLinuxSLL, LinkLinuxSLL2:
	default:
		return nil, fmt.Errorf("filter: link type %d not supported (Ethernet, Linux SLL, SLL2)", tg.link)
	}
	if len(expr) > maxFilterLen {
		return nil, &FilterError{Expr: expr[:40] + "…", Msg: fmt.Sprintf("longer than %d bytes", maxFilterLen)}
	}
	toks, err := lex(expr)
	if err != nil {
		return nil, err
	}
	if len(toks) == 0 {
		return []bpf.RawInstruction{{Op: opRet, K: snap}}, nil
	}
	p := &parser{expr: expr, toks: toks, st: linkState{target: tg}}
	root, err := p.parseExpr()
	if err != nil {
		return nil, err
	}
	if p.i < len(p.toks) {
		return nil, p.errAt(p.toks[p.i], "unexpected %q", p.toks[p.i].text)
	}
	prog, err := generate(root, p.st.usedM, snap)
	if err != nil {
		return nil, &FilterError{Expr: expr, Msg: err.Error()}
	}
	return prog, nil
}

// Tokens.

type tokKind uint8

const (
	tWord tokKind = iota
	tLParen
	tRParen
	tNot // "!" (the word "not" stays a word)
	tAnd // "&&"
	tOr  // "||"
)

type token struct {
	kind tokKind
	text string
	pos  int // byte offset from 0
}

func lex(expr string) ([]token, error) {
	var toks []token
	for i := 0; i < len(expr); {
		c := expr[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			i++
		case c == '(':
			toks = append(toks, token{tLParen, "(", i})
			i++
		case c == ')':
			toks = append(toks, token{tRParen, ")", i})
			i++
		case c == '!':
			toks = append(toks, token{tNot, "!", i})
			i++
		case c == '&' || c == '|':
			if i+1 >= len(expr) || expr[i+1] != c {
				word := map[byte]string{'&': "and", '|': "or"}[c]
				return nil, &FilterError{Expr: expr, Pos: i + 1, Msg: fmt.Sprintf("%c alone: write %c%c or %s", c, c, c, word)}
			}
			k := tAnd
			if c == '|' {
				k = tOr
			}
			toks = append(toks, token{k, expr[i : i+2], i})
			i += 2
		default:
			j := i
			for j < len(expr) && !strings.ContainsRune(" \t\n\r()!&|", rune(expr[j])) {
				j++
			}
			toks = append(toks, token{tWord, expr[i:j], i})
			i = j
		}
	}
	return toks, nil
}

// The tree the parser builds. Every leaf already knows its offsets.

type node interface{}

type (
	nAnd  struct{ a, b node }
	nOr   struct{ a, b node }
	nNot  struct{ a node }
	nTrue struct{}
	// nTest loads a value, masks it (when mask is not 0) and compares it.
	nTest struct {
		ld   load
		mask uint32
		op   uint16 // opJEQ, opJGT, opJGE or opJSET
		val  uint32
	}
	// nSetOff stores val in M[0], the run-time link offset, and is true.
	nSetOff struct{ val uint32 }
)

type ldKind uint8

const (
	ldPacket     ldKind = iota // [off], plus M[0] when variable
	ldTransport4               // [off + 4*(IPv4 IHL)], the IPv4 header at nl
	ldAncillary                // the kernel's SKF_AD_OFF + off
)

type load struct {
	kind     ldKind
	size     uint8 // 1, 2 or 4
	off      uint32
	nl       uint32 // ldTransport4: where the IPv4 header starts
	variable bool   // add M[0]
}

func and(ns ...node) node {
	r := ns[0]
	for _, n := range ns[1:] {
		r = nAnd{r, n}
	}
	return r
}

func or(ns ...node) node {
	r := ns[0]
	for _, n := range ns[1:] {
		r = nOr{r, n}
	}
	return r
}

// linkState tracks the header offsets as the parser moves through the
// expression: libpcap's "vlan" moves them for everything after it.
type linkState struct {
	target
	vlanOff  uint32 // bytes of VLAN tags assumed so far
	variable bool   // M[0] holds a run-time offset (0 or 4): kernelVLAN after the first vlan
	usedM    bool
}

// etherTypeOff is where the link layer's EtherType field is, and netOff
// where the network layer starts.
func (s *linkState) etherTypeOff() uint32 {
	switch s.link {
	case LinkLinuxSLL:
		return 14 + s.vlanOff
	case LinkLinuxSLL2:
		return 0 + s.vlanOff
	}
	return 12 + s.vlanOff
}

func (s *linkState) netOff() uint32 {
	switch s.link {
	case LinkLinuxSLL:
		return 16 + s.vlanOff
	case LinkLinuxSLL2:
		return 20 + s.vlanOff
	}
	return 14 + s.vlanOff
}

func (s *linkState) pkt(off uint32, size uint8) load {
	return load{kind: ldPacket, size: size, off: off, variable: s.variable}
}

func (s *linkState) cmp(off uint32, size uint8, op uint16, val uint32) node {
	return nTest{ld: s.pkt(off, size), op: op, val: val}
}

func (s *linkState) etherType(et uint32) node { return s.cmp(s.etherTypeOff(), 2, opJEQ, et) }

// ipProto is libpcap's "ip proto p"; IPv4 fragments all match.
func (s *linkState) ipProto(p uint32) node {
	return and(s.etherType(0x0800), s.cmp(s.netOff()+9, 1, opJEQ, p))
}

// ip6Proto is libpcap's "ip6 proto p": the next header, or the header
// after a fragment header. Other extension headers are not walked.
func (s *linkState) ip6Proto(p uint32) node {
	nl := s.netOff()
	return and(s.etherType(0x86dd), or(s.cmp(nl+6, 1, opJEQ, p),
		and(s.cmp(nl+6, 1, opJEQ, 44), s.cmp(nl+40, 1, opJEQ, p))))
}

// Parser.

type parser struct {
	expr  string
	toks  []token
	i     int
	st    linkState
	depth int
	// last is the qualifiers of the last primitive with a value, which a
	// bare value after and/or inherits ("port 80 or 443").
	last *quals
}

type dir uint8

const (
	dirAny dir = iota // src or dst
	dirSrc
	dirDst
	dirBoth // src and dst
)

type quals struct {
	proto string // "" or a protocol keyword
	dir   dir
	typ   string // host, net, port, portrange
}

var protoWords = map[string]bool{"ip": true, "ip6": true, "arp": true, "rarp": true, "tcp": true, "udp": true, "sctp": true, "icmp": true, "icmp6": true}
var typeWords = map[string]bool{"host": true, "net": true, "port": true, "portrange": true}

func (p *parser) errAt(t token, format string, args ...any) error {
	return &FilterError{Expr: p.expr, Pos: t.pos + 1, Msg: fmt.Sprintf(format, args...)}
}

func (p *parser) errEnd(format string, args ...any) error {
	return &FilterError{Expr: p.expr, Pos: len(p.expr) + 1, Msg: fmt.Sprintf(format, args...)}
}

func (p *parser) peek() (token, bool) {
	if p.i < len(p.toks) {
		return p.toks[p.i], true
	}
	return token{}, false
}

func (p *parser) peekWord(w string) bool {
	t, ok := p.peek()
	return ok && t.kind == tWord && t.text == w
}

// parseExpr: and and or have the same precedence and group from the left,
// as in pcap-filter(7): "a or b and c" is "(a or b) and c".
func (p *parser) parseExpr() (node, error) {
	n, err := p.parseUnary()
	if err != nil {
		return nil, err
	}
	for {
		t, ok := p.peek()
		if !ok {
			return n, nil
		}
		var isAnd bool
		switch {
		case t.kind == tAnd || t.kind == tWord && t.text == "and":
			isAnd = true
		case t.kind == tOr || t.kind == tWord && t.text == "or":
		default:
			return n, nil
		}
		p.i++
		m, err := p.parseUnary()
		if err != nil {
			return nil, err
		}
		if isAnd {
			n = nAnd{n, m}
		} else {
			n = nOr{n, m}
		}
	}
}

func (p *parser) parseUnary() (node, error) {
	t, ok := p.peek()
	if !ok {
		return nil, p.errEnd("expression ends early")
	}
	p.depth++
	defer func() { p.depth-- }()
	if p.depth > maxFilterDepth {
		return nil, p.errAt(t, "nested deeper than %d", maxFilterDepth)
	}
	switch {
	case t.kind == tNot || t.kind == tWord && t.text == "not":
		p.i++
		n, err := p.parseUnary()
		if err != nil {
			return nil, err
		}
		return nNot{n}, nil
	case t.kind == tLParen:
		p.i++
		p.last = nil
		n, err := p.parseExpr()
		if err != nil {
			return nil, err
		}
		c, ok := p.peek()
		if !ok || c.kind != tRParen {
			if !ok {
				return nil, p.errEnd("missing )")
			}
			return nil, p.errAt(c, "want ), got %q", c.text)
		}
		p.i++
		p.last = nil
		return n, nil
	case t.kind == tWord:
		return p.parsePrimitive()
	}
	return nil, p.errAt(t, "unexpected %q", t.text)
}

func (p *parser) parsePrimitive() (node, error) {
	t := p.toks[p.i]
	switch t.text {
	case "vlan":
		p.i++
		return p.vlan(t)
	case "proto":
		p.i++
		return p.proto("")
	}
	var q quals
	head := t
	if protoWords[t.text] {
		q.proto = t.text
		p.i++
		if p.peekWord("proto") {
			if q.proto != "ip" && q.proto != "ip6" {
				return nil, p.errAt(p.toks[p.i], "%s proto: only ip proto and ip6 proto", q.proto)
			}
			p.i++
			return p.proto(q.proto)
		}
	}
	qualified := false
	if t, ok := p.peek(); ok && t.kind == tWord && (t.text == "src" || t.text == "dst") {
		q.dir = dirSrc
		if t.text == "dst" {
			q.dir = dirDst
		}
		p.i++
		qualified = true
		// "src or dst" and "src and dst" are one qualifier.
		if c, ok := p.peek(); ok && p.i+1 < len(p.toks) && (c.kind == tWord && (c.text == "or" || c.text == "and") || c.kind == tOr || c.kind == tAnd) {
			other := "dst"
			if q.dir == dirDst {
				other = "src"
			}
			if n := p.toks[p.i+1]; n.kind == tWord && n.text == other {
				q.dir = dirAny
				if c.text == "and" || c.kind == tAnd {
					q.dir = dirBoth
				}
				p.i += 2
			}
		}
	}
	if t, ok := p.peek(); ok && t.kind == tWord && typeWords[t.text] {
		q.typ = t.text
		p.i++
		qualified = true
	}
	if !qualified {
		if q.proto == "" {
			if p.last != nil {
				// A bare value: the last primitive's qualifiers.
				v := p.toks[p.i]
				p.i++
				return p.value(*p.last, v)
			}
			return nil, p.errAt(head, "unknown word %q (supported: docs/tcpstats.md, \"Capture filters\")", head.text)
		}
		return p.protoAbbrev(q.proto)
	}
	if q.typ == "" {
		q.typ = "host"
	}
	v, ok := p.peek()
	if !ok || v.kind != tWord {
		return nil, p.errEnd("%s needs a value", q.typ)
	}
	p.i++
	n, err := p.value(q, v)
	if err != nil {
		return nil, err
	}
	p.last = &q
	return n, nil
}

// protoAbbrev is a protocol keyword alone: "tcp", "ip6"...
func (p *parser) protoAbbrev(proto string) (node, error) {
	s := &p.st
	p.last = nil // as in libpcap, "tcp or 443" is an error
	switch proto {
	case "ip":
		return s.etherType(0x0800), nil
	case "ip6":
		return s.etherType(0x86dd), nil
	case "arp":
		return s.etherType(0x0806), nil
	case "rarp":
		return s.etherType(0x8035), nil
	case "icmp":
		return s.ipProto(1), nil
	case "icmp6":
		return s.ip6Proto(58), nil
	}
	n := ipProtoNum[proto]
	return or(s.ipProto(n), s.ip6Proto(n)), nil
}

var ipProtoNum = map[string]uint32{"tcp": 6, "udp": 17, "sctp": 132}

// proto is "[ip|ip6] proto N".
func (p *parser) proto(family string) (node, error) {
	p.last = nil
	v, ok := p.peek()
	if !ok || v.kind != tWord {
		return nil, p.errEnd("proto needs a protocol number")
	}
	p.i++
	n, err := p.number(v, 255, "protocol number")
	if err != nil {
		return nil, err
	}
	switch family {
	case "ip":
		return p.st.ipProto(n), nil
	case "ip6":
		return p.st.ip6Proto(n), nil
	}
	return or(p.st.ipProto(n), p.st.ip6Proto(n)), nil
}

// number parses a decimal, 0x hex or 0-prefixed octal number, as
// libpcap does, up to limit.
func (p *parser) number(t token, limit uint64, what string) (uint32, error) {
	s, base := t.text, 10
	switch {
	case len(s) > 2 && (s[:2] == "0x" || s[:2] == "0X"):
		s, base = s[2:], 16
	case len(s) > 1 && s[0] == '0':
		s, base = s[1:], 8
	}
	if s == "" {
		return 0, p.errAt(t, "%s %q is not a number", what, t.text)
	}
	for _, c := range s {
		if !strings.ContainsRune("0123456789abcdefABCDEF"[:base+max(0, base-10)], c) {
			return 0, p.errAt(t, "%s %q is not a number", what, t.text)
		}
	}
	n, err := strconv.ParseUint(s, base, 64)
	if err != nil || n > limit {
		return 0, p.errAt(t, "%s %s out of range (at most %d)", what, t.text, limit)
	}
	return uint32(n), nil
}

func (p *parser) vlan(kw token) (node, error) {
	s := &p.st
	if s.link != LinkEthernet {
		return nil, p.errAt(kw, "vlan: not supported on Linux cooked (SLL) links, as in libpcap")
	}
	var id uint32
	hasID := false
	if t, ok := p.peek(); ok && t.kind == tWord && t.text != "and" && t.text != "or" {
		n, err := p.number(t, 4095, "VLAN ID")
		if err != nil {
			return nil, err
		}
		p.i++
		id, hasID = n, true
	}
	p.last = nil
	if s.kernelVLAN && !s.variable {
		// First vlan on a socket: the kernel usually took the tag out of
		// the frame (vlanp); if not, it is in the frame and everything
		// after sits 4 bytes further, which M[0] says at run time.
		present := node(nTest{ld: load{kind: ldAncillary, size: 1, off: uint32(bpf.ExtVLANTagPresent)}, op: opJEQ, val: 1})
		if hasID {
			present = and(present, nTest{ld: load{kind: ldAncillary, size: 2, off: uint32(bpf.ExtVLANTag)}, mask: 0xfff, op: opJEQ, val: id})
		}
		inFrame := and(nSetOff{4}, s.tpid(12))
		if hasID {
			inFrame = and(inFrame, nTest{ld: s.pkt(14, 2), mask: 0xfff, op: opJEQ, val: id})
		}
		s.variable, s.usedM = true, true
		return or(present, inFrame), nil
	}
	off := s.etherTypeOff()
	n := s.tpid(off)
	if hasID {
		n = and(n, nTest{ld: s.pkt(off+2, 2), mask: 0xfff, op: opJEQ, val: id})
	}
	s.vlanOff += 4
	return n, nil
}

// tpid matches the 802.1Q, 802.1ad and old QinQ tag types at off.
func (s *linkState) tpid(off uint32) node {
	return or(s.cmp(off, 2, opJEQ, 0x8100), s.cmp(off, 2, opJEQ, 0x88a8), s.cmp(off, 2, opJEQ, 0x9100))
}

// value builds host, net, port or portrange for the value in t.
func (p *parser) value(q quals, t token) (node, error) {
	if t.kind != tWord || t.text == "and" || t.text == "or" || t.text == "not" {
		return nil, p.errAt(t, "%s needs a value, got %q", q.typ, t.text)
	}
	switch q.typ {
	case "host", "net":
		return p.hostNet(q, t)
	case "port", "portrange":
		return p.port(q, t)
	}
	return nil, p.errAt(t, "internal: type %q", q.typ)
}

func (p *parser) hostNet(q quals, t token) (node, error) {
	var pfx netip.Prefix
	var err error
	switch {
	case q.typ == "net" && strings.Contains(t.text, "/"):
		pfx, err = netip.ParsePrefix(t.text)
		if err != nil {
			return nil, p.errAt(t, "net: %q is not an address/length", t.text)
		}
		if pfx.Masked() != pfx {
			return nil, p.errAt(t, "net: non-network bits set in %q", t.text)
		}
	default:
		a, err := netip.ParseAddr(t.text)
		if err != nil || a.Zone() != "" {
			return nil, p.errAt(t, "%s: %q is not an IP address (names are not resolved)", q.typ, t.text)
		}
		pfx = netip.PrefixFrom(a, a.BitLen())
	}
	a := pfx.Addr()
	s := &p.st
	nl := s.netOff()
	if a.Is6() {
		if q.proto != "" && q.proto != "ip6" {
			return nil, p.errAt(t, "'%s' modifier applied to an IPv6 %s", q.proto, q.typ)
		}
		b := a.As16()
		words := func(off uint32) node {
			var n node = nTrue{}
			for i := 0; i < 4; i++ {
				m := maskWord(pfx.Bits() - 32*i)
				if m == 0 {
					continue
				}
				v := uint32(b[4*i])<<24 | uint32(b[4*i+1])<<16 | uint32(b[4*i+2])<<8 | uint32(b[4*i+3])
				n = and(n, s.masked(off+uint32(4*i), v, m))
			}
			return n
		}
		return and(s.etherType(0x86dd), dirNode(q.dir, words(nl+8), words(nl+24))), nil
	}
	if q.proto != "" && q.proto != "ip" && q.proto != "arp" && q.proto != "rarp" {
		return nil, p.errAt(t, "'%s' modifier applied to an IPv4 %s", q.proto, q.typ)
	}
	b := a.As4()
	v := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
	m := maskWord(pfx.Bits())
	word := func(off uint32) node {
		if m == 0 {
			return nTrue{}
		}
		return s.masked(off, v, m)
	}
	var parts []node
	if q.proto == "" || q.proto == "ip" {
		parts = append(parts, and(s.etherType(0x0800), dirNode(q.dir, word(nl+12), word(nl+16))))
	}
	// libpcap's host and net also match ARP and RARP sender and target.
	for _, x := range []struct {
		name string
		et   uint32
	}{{"arp", 0x0806}, {"rarp", 0x8035}} {
		if q.proto == "" || q.proto == x.name {
			parts = append(parts, and(s.etherType(x.et), dirNode(q.dir, word(nl+14), word(nl+24))))
		}
	}
	return or(parts...), nil
}

// maskWord is the 32-bit mask of the first bits of a word.
func maskWord(bits int) uint32 {
	switch {
	case bits <= 0:
		return 0
	case bits >= 32:
		return 0xffffffff
	}
	return ^uint32(0) << (32 - bits)
}

func (s *linkState) masked(off, v, m uint32) node {
	if m == 0xffffffff {
		m = 0
	}
	return nTest{ld: s.pkt(off, 4), mask: m, op: opJEQ, val: v}
}

func dirNode(d dir, src, dst node) node {
	switch d {
	case dirSrc:
		return src
	case dirDst:
		return dst
	case dirBoth:
		return and(src, dst)
	}
	return or(src, dst)
}

func (p *parser) port(q quals, t token) (node, error) {
	var lo, hi uint32
	if q.typ == "portrange" {
		a, b, ok := strings.Cut(t.text, "-")
		if !ok {
			return nil, p.errAt(t, "portrange: want LOW-HIGH, got %q", t.text)
		}
		var err error
		if lo, err = p.number(token{tWord, a, t.pos}, 65535, "port"); err != nil {
			return nil, err
		}
		if hi, err = p.number(token{tWord, b, t.pos + len(a) + 1}, 65535, "port"); err != nil {
			return nil, err
		}
		if lo > hi {
			lo, hi = hi, lo
		}
	} else {
		n, err := p.number(t, 65535, "port")
		if err != nil {
			return nil, err
		}
		lo, hi = n, n
	}
	var protos []uint32
	switch q.proto {
	case "":
		protos = []uint32{132, 6, 17}
	case "tcp", "udp", "sctp":
		protos = []uint32{ipProtoNum[q.proto]}
	default:
		return nil, p.errAt(t, "'%s' modifier applied to %s (tcp, udp or sctp)", q.proto, q.typ)
	}
	s := &p.st
	nl := s.netOff()
	inRange := func(ld load) node {
		if lo == hi {
			return nTest{ld: ld, op: opJEQ, val: lo}
		}
		return and(nTest{ld: ld, op: opJGE, val: lo}, nNot{nTest{ld: ld, op: opJGT, val: hi}})
	}
	protoIn := func(off uint32) node {
		var ns []node
		for _, pr := range protos {
			ns = append(ns, s.cmp(off, 1, opJEQ, pr))
		}
		return or(ns...)
	}
	tp := func(off uint32) load {
		return load{kind: ldTransport4, size: 2, off: off, nl: nl, variable: s.variable}
	}
	// IPv4: not a later fragment, ports after the IHL. IPv6: ports right
	// after the fixed header (no extension header walk, as in libpcap).
	v4 := and(s.etherType(0x0800), protoIn(nl+9), nNot{nTest{ld: s.pkt(nl+6, 2), op: opJSET, val: 0x1fff}},
		dirNode(q.dir, inRange(tp(0)), inRange(tp(2))))
	v6 := and(s.etherType(0x86dd), protoIn(nl+6),
		dirNode(q.dir, inRange(s.pkt(nl+40, 2)), inRange(s.pkt(nl+42, 2))))
	return or(v4, v6), nil
}

// The default capture filters. On an Ethernet-framed interface the
// default also keeps TCP under one or two VLAN tags left in the frame
// (the kernel takes the outer tag out on receive, not always on send);
// "vlan" does not exist on cooked links, where the kernel shows no tag.
const (
	DefaultFilterEthernet = "tcp or (vlan and (tcp or (vlan and tcp)))"
	DefaultFilterCooked   = "tcp"
)

// socketFilter compiles expr for an AF_PACKET socket: cooked (SOCK_DGRAM:
// the any device, and links without an Ethernet header) or Ethernet
// (SOCK_RAW). An empty expr is the default filter for the link.
func socketFilter(expr string, cooked bool) ([]bpf.RawInstruction, error) {
	if cooked {
		if expr == "" {
			expr = DefaultFilterCooked
		}
		prog, err := compileFilter(expr, target{link: LinkLinuxSLL2}, snapLen)
		if err != nil {
			return nil, err
		}
		return cookedForSocket(prog, LinkLinuxSLL2)
	}
	if expr == "" {
		expr = DefaultFilterEthernet
	}
	return compileFilter(expr, target{link: LinkEthernet, kernelVLAN: true}, snapLen)
}
