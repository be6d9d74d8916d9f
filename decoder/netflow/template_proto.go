package netflow

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"time"

	"github.com/netpulse/netpulse/decoder/seq"
	"github.com/netpulse/netpulse/flow"
)

// msgHeader is what a data set needs from its datagram's header.
type msgHeader struct {
	version  uint16
	exporter netip.Addr
	domain   uint32
	sequence uint32
	export   time.Time
	uptime   uint32 // v9 only: the exporter's uptime in ms at export
	received time.Time
}

// upTime converts a sysUpTime-relative timestamp. NetFlow v9 anchors it
// on the header's uptime and export time; IPFIX on the exporter's system
// init time (IE 160), without which the time is unknown.
func (h *msgHeader) upTime(ms uint32, init uint64, hasInit bool) time.Time {
	if h.version == 9 {
		return uptimeTime(h.export, h.uptime, ms)
	}
	if !hasInit {
		return time.Time{}
	}
	return time.UnixMilli(int64(init + uint64(ms)))
}

const (
	v9HeaderLen    = 20
	ipfixHeaderLen = 16
	setHeaderLen   = 4
)

func (d *Decoder) decodeV9(exporter netip.Addr, received time.Time, b []byte, sc *scratch, emit func(*flow.Record)) error {
	if len(b) < v9HeaderLen {
		return fmt.Errorf("netflow v9: header truncated (%d bytes)", len(b))
	}
	hdr := &sc.hdr
	*hdr = msgHeader{
		version:  9,
		exporter: exporter,
		received: received,
		uptime:   binary.BigEndian.Uint32(b[4:8]),
		export:   time.Unix(int64(binary.BigEndian.Uint32(b[8:12])), 0),
		sequence: binary.BigEndian.Uint32(b[12:16]),
		domain:   binary.BigEndian.Uint32(b[16:20]),
	}
	// v9 counts export packets per source ID.
	if d.seqs != nil {
		lost := d.seqs.Observe(seq.Key{Exporter: exporter, Domain: hdr.domain, Proto: seqV9}, hdr.sequence, 1, received)
		d.lostDatagrams.Add(lost)
	}
	_, _, err := d.decodeSets(hdr, received, b, v9HeaderLen, sc, emit)
	return err
}

func (d *Decoder) decodeIPFIX(exporter netip.Addr, received time.Time, b []byte, sc *scratch, emit func(*flow.Record)) error {
	if len(b) < ipfixHeaderLen {
		return fmt.Errorf("ipfix: header truncated (%d bytes)", len(b))
	}
	length := int(binary.BigEndian.Uint16(b[2:4]))
	if length < ipfixHeaderLen || length > len(b) {
		return fmt.Errorf("ipfix: message length %d but datagram has %d bytes", length, len(b))
	}
	b = b[:length]
	hdr := &sc.hdr
	*hdr = msgHeader{
		version:  10,
		exporter: exporter,
		received: received,
		export:   time.Unix(int64(binary.BigEndian.Uint32(b[4:8])), 0),
		sequence: binary.BigEndian.Uint32(b[8:12]),
		domain:   binary.BigEndian.Uint32(b[12:16]),
	}
	records, held, err := d.decodeSets(hdr, received, b, ipfixHeaderLen, sc, emit)
	// IPFIX counts data records sent before this message. When some of
	// this message's records wait for a template their number is unknown,
	// so the stream is resynchronised on the next message.
	if d.seqs != nil {
		k := seq.Key{Exporter: exporter, Domain: hdr.domain, Proto: seqIPFIX}
		var lost uint64
		if held {
			lost = d.seqs.Resync(k, hdr.sequence, received)
		} else {
			lost = d.seqs.Observe(k, hdr.sequence, uint32(records), received)
		}
		d.lostFlows.Add(lost)
	}
	return err
}

// decodeSets walks the (flow)sets of a v9 or IPFIX message. It returns the
// number of data records (flows and options) decoded and whether any set
// was held for want of its template.
func (d *Decoder) decodeSets(hdr *msgHeader, received time.Time, b []byte, off int, sc *scratch, emit func(*flow.Record)) (records int, held bool, err error) {
	r := &sc.rec
	learned := &sc.learned
	*learned = (*learned)[:0]
	sc.tmpl.reset()
	var ctx setContext // one exporter and domain: shared by the data sets
	flows := 0
	defer func() {
		d.flows.Add(uint64(flows))
		if len(*learned) > 0 && d.held.len() > 0 {
			d.release(*learned, r, emit)
		}
	}()
	tmplSet, optsSet := uint16(2), uint16(3)
	if hdr.version == 9 {
		tmplSet, optsSet = 0, 1
	}
	for off < len(b) {
		if len(b)-off < setHeaderLen {
			// v9 allows trailing padding; IPFIX does not, but a few
			// exporters pad anyway. Nothing can be lost in under 4 bytes.
			break
		}
		id := binary.BigEndian.Uint16(b[off:])
		length := int(binary.BigEndian.Uint16(b[off+2:]))
		if length < setHeaderLen || off+length > len(b) {
			return records, held, fmt.Errorf("%s: set %d at offset %d: length %d exceeds the %d bytes left", hdr.name(), id, off, length, len(b)-off)
		}
		body := b[off+setHeaderLen : off+length]
		switch {
		case id == tmplSet:
			sc.tmpl.reset()
			if err := d.templateSet(hdr, received, body, false, learned); err != nil {
				return records, held, fmt.Errorf("%s: template set at offset %d: %w", hdr.name(), off, err)
			}
		case id == optsSet:
			sc.tmpl.reset()
			if err := d.templateSet(hdr, received, body, true, learned); err != nil {
				return records, held, fmt.Errorf("%s: options template set at offset %d: %w", hdr.name(), off, err)
			}
		case id >= 256:
			k := TemplateKey{Exporter: hdr.exporter, Domain: hdr.domain, Version: hdr.version, ID: id}
			t := sc.tmpl.get(id)
			if t == nil {
				if t = d.templates.Get(k); t != nil {
					sc.tmpl.put(id, t)
				}
			}
			if t == nil {
				held = true
				if d.held.add(k, *hdr, received, body) {
					d.heldSets.Add(1)
				} else {
					d.heldDropped.Add(1)
				}
				break
			}
			n, f, err := d.dataSet(hdr, t, body, r, emit, &ctx)
			records += n
			flows += f
			if err != nil {
				return records, held, fmt.Errorf("%s: data set %d at offset %d: %w", hdr.name(), id, off, err)
			}
		default:
			// Set IDs 4..255 (2..255 in v9) are reserved: skip by length.
		}
		off += length
	}
	return records, held, nil
}

func (h *msgHeader) name() string {
	if h.version == 9 {
		return "netflow v9"
	}
	return "ipfix"
}

// templateSet learns the templates of one template or options template
// set, and decodes any data that was held waiting for them.
func (d *Decoder) templateSet(hdr *msgHeader, received time.Time, b []byte, options bool, learned *[]TemplateKey) error {
	for len(b) >= 4 {
		id := binary.BigEndian.Uint16(b)
		count := int(binary.BigEndian.Uint16(b[2:]))
		scope := 0
		var spec []byte // the field specifiers on the wire
		if hdr.version == 9 {
			if options {
				// v9 options templates give scope and option lengths in
				// bytes, four bytes per field.
				if len(b) < 6 {
					return fmt.Errorf("options template %d truncated", id)
				}
				scopeLen, optLen := count, int(binary.BigEndian.Uint16(b[4:]))
				if scopeLen%4 != 0 || optLen%4 != 0 || 6+scopeLen+optLen > len(b) {
					return fmt.Errorf("options template %d: scope length %d and option length %d do not fit", id, scopeLen, optLen)
				}
				scope, count = scopeLen/4, (scopeLen+optLen)/4
				spec, b = b[6:6+scopeLen+optLen], b[6+scopeLen+optLen:]
			} else {
				if 4+4*count > len(b) {
					return fmt.Errorf("template %d: %d fields but room for %d", id, count, (len(b)-4)/4)
				}
				spec, b = b[4:4+4*count], b[4+4*count:]
			}
			if count == 0 {
				return fmt.Errorf("template %d: no fields", id)
			}
		} else {
			hl := 4
			if options {
				if len(b) < 6 {
					return fmt.Errorf("options template %d truncated", id)
				}
				scope = int(binary.BigEndian.Uint16(b[4:]))
				hl = 6
			}
			if count == 0 {
				// Withdrawal (RFC 7011 section 8.1): of one template, or of
				// all data (ID 2) or options (ID 3) templates.
				k := TemplateKey{Exporter: hdr.exporter, Domain: hdr.domain, Version: 10, ID: id}
				d.templates.withdraw(k, id == 2 || id == 3, options)
				b = b[4:]
				continue
			}
			n, err := ipfixSpecLen(b[hl:], count)
			if err != nil {
				return fmt.Errorf("template %d: %w", id, err)
			}
			spec, b = b[hl:hl+n], b[hl+n:]
		}
		if id < 256 {
			return fmt.Errorf("template ID %d is reserved", id)
		}
		if scope > count || (options && hdr.version == 10 && scope == 0) {
			return fmt.Errorf("options template %d: scope count %d of %d fields", id, scope, count)
		}
		k := TemplateKey{Exporter: hdr.exporter, Domain: hdr.domain, Version: hdr.version, ID: id}
		// Exporters resend unchanged templates all the time: recognise
		// them without building anything.
		if old := d.templates.Get(k); old != nil && old.Options == options && old.ScopeCount == scope && old.sameSpec(spec, hdr.version) {
			d.templates.touch(k, received)
			continue
		}
		fields := parseSpec(spec, count, hdr.version)
		t := newTemplate(hdr.version, id, options, scope, fields)
		if t.minLen == 0 {
			return fmt.Errorf("template %d: records of length 0", id)
		}
		if hdr.version == 9 && t.variable {
			return fmt.Errorf("template %d: length 65535 is not valid in NetFlow v9", id)
		}
		d.templates.put(k, t, received)
		*learned = append(*learned, k)
	}
	return nil
}

// release decodes the data held for templates this datagram taught. It
// runs once the whole datagram is read, so that options data sent with the
// templates (sampling rates, system init time) applies to the held data as
// it does to data that came in order.
func (d *Decoder) release(learned []TemplateKey, r *flow.Record, emit func(*flow.Record)) {
	for _, k := range learned {
		t := d.templates.Get(k)
		if t == nil {
			continue
		}
		for _, h := range d.held.take(k) {
			d.heldDecoded.Add(1)
			// Held data is counted as decoded whether or not it turns out
			// well formed; a malformed held set is an error of its own
			// datagram, long gone, so it only counts.
			_, flows, err := d.dataSet(&h.hdr, t, h.data, r, emit, new(setContext))
			d.flows.Add(uint64(flows))
			if err != nil {
				d.errors.Add(1)
			}
		}
	}
}

// ipfixSpecLen returns the bytes taken by count IPFIX field specifiers:
// four each, and four more for those with an enterprise number.
func ipfixSpecLen(b []byte, count int) (int, error) {
	if 4*count > len(b) {
		return 0, fmt.Errorf("%d fields but room for at most %d", count, len(b)/4)
	}
	off := 0
	for i := 0; i < count; i++ {
		if off+4 > len(b) {
			return 0, fmt.Errorf("field %d of %d truncated", i+1, count)
		}
		if b[off]&0x80 != 0 {
			off += 4
			if off+4 > len(b) {
				return 0, fmt.Errorf("field %d of %d: enterprise number truncated", i+1, count)
			}
		}
		off += 4
	}
	return off, nil
}

// parseSpec builds the fields of a specifier list already checked by
// the caller.
func parseSpec(b []byte, count int, version uint16) []Field {
	fields := make([]Field, count)
	off := 0
	for i := range fields {
		id := binary.BigEndian.Uint16(b[off:])
		f := Field{ID: id, Length: binary.BigEndian.Uint16(b[off+2:])}
		off += 4
		if version == 10 {
			f.ID &= 0x7fff
			if id&0x8000 != 0 {
				f.Enterprise = binary.BigEndian.Uint32(b[off:])
				off += 4
			}
		}
		fields[i] = f
	}
	return fields
}

// sameSpec reports whether the specifiers on the wire are t's fields.
func (t *Template) sameSpec(b []byte, version uint16) bool {
	off := 0
	for _, f := range t.Fields {
		if off+4 > len(b) {
			return false
		}
		id := binary.BigEndian.Uint16(b[off:])
		if binary.BigEndian.Uint16(b[off+2:]) != f.Length {
			return false
		}
		off += 4
		var pen uint32
		if version == 10 {
			if id&0x8000 != 0 {
				pen = binary.BigEndian.Uint32(b[off:])
				off += 4
			}
			id &= 0x7fff
		}
		if id != f.ID || pen != f.Enterprise {
			return false
		}
	}
	return off == len(b)
}

// setContext caches, for the data sets of one datagram, what every record
// would otherwise look up under a lock: the exporter's system init time
// (looked up at the first record that needs it) and the rate of the last
// sampler seen. Options data in the datagram empties it, so that the data
// after it sees what it says.
type setContext struct {
	init       uint64
	hasInit    bool
	initLoaded bool
	sampler    uint32
	hasSampler bool
	rate       uint32
	rateCached bool
}

// initFor loads the exporter's system init time when tp's times may need
// it: IPFIX uptime-based times without an init time in the record.
func (d *Decoder) initFor(sc *setContext, hdr *msgHeader, tp *timeParts) {
	if sc.initLoaded || hdr.version != 10 || tp.hasInit || !(tp.hasStartUp || tp.hasEndUp) {
		return
	}
	sc.init, sc.hasInit = d.sampling.initTime(hdr.exporter, hdr.domain)
	sc.initLoaded = true
}

// dataSet decodes the records of one data set with template t and returns
// the records (flows and options) and the flows among them. sc is the
// datagram's context (its exporter and domain are hdr's).
func (d *Decoder) dataSet(hdr *msgHeader, t *Template, b []byte, r *flow.Record, emit func(*flow.Record), sc *setContext) (n, flows int, err error) {
	for len(b) >= t.minLen {
		var s recState
		*r = flow.Record{}
		s.r, s.hdr = r, hdr
		used, ok := d.record(&s, t, b)
		if !ok {
			if allZero(b) {
				break // padding
			}
			return n, flows, fmt.Errorf("record %d: variable-length field runs past the set", n+1)
		}
		b = b[used:]
		n++
		if t.Options {
			d.options.Add(1)
			d.applyOptions(hdr, &s)
			*sc = setContext{}
			continue
		}
		d.finish(&s, sc)
		flows++
		emit(r)
		if s.hasRev && (s.revBytes > 0 || s.revPackets > 0) {
			d.reverse(&s, sc)
			flows++
			emit(r)
		}
	}
	return n, flows, nil
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// record reads one record's fields into s and returns its length.
func (d *Decoder) record(s *recState, t *Template, b []byte) (int, bool) {
	if !t.variable {
		if len(b) < t.minLen {
			return 0, false
		}
		b = b[:t.minLen]
		for _, op := range t.ops {
			s.applyField(op.kind, op.id, b[op.off:op.off+op.len])
		}
		return t.minLen, true
	}
	off := 0
	for i, f := range t.Fields {
		l := int(f.Length)
		if f.Length == variableLength {
			if off >= len(b) {
				return 0, false
			}
			l = int(b[off])
			off++
			if l == 255 {
				if off+2 > len(b) {
					return 0, false
				}
				l = int(binary.BigEndian.Uint16(b[off:]))
				off += 2
			}
		}
		if off+l > len(b) {
			return 0, false
		}
		if k := t.kinds[i]; k != kNone {
			s.applyField(k, f.ID, b[off:off+l])
		}
		off += l
	}
	return off, true
}

// applyOptions keeps what options data says about sampling and the
// exporter's system init time.
func (d *Decoder) applyOptions(hdr *msgHeader, s *recState) {
	if rate := s.ownRate(); rate > 0 {
		d.sampling.setRate(samplerKey{hdr.exporter, hdr.domain, s.sampler}, rate)
	}
	if s.fwd.hasInit {
		d.sampling.setInit(hdr.exporter, hdr.domain, s.fwd.initMillis)
	}
}

// finish completes a forward record once all its fields are read.
func (d *Decoder) finish(s *recState, sc *setContext) {
	r, hdr := s.r, s.hdr
	r.Kind = flow.KindFlow
	r.Type = flow.TypeNetFlowV9
	if hdr.version == 10 {
		r.Type = flow.TypeIPFIX
	}
	r.TimeReceived = hdr.received
	r.Exporter = hdr.exporter
	r.ObservationDomain = hdr.domain
	r.Sequence = hdr.sequence
	if !s.hasBytes {
		r.Bytes = s.totBytes
		if r.Bytes == 0 {
			r.Bytes = s.postBytes
		}
	}
	if !s.hasPackets {
		r.Packets = s.totPackets
		if r.Packets == 0 {
			r.Packets = s.postPkts
		}
	}
	if !r.NextHop.IsValid() && s.bgpNextHop.IsValid() {
		r.NextHop = s.bgpNextHop
	}
	if !s.hasToS && s.hasDSCP {
		r.ToS = s.dscp << 2
	}
	if r.EtherType == 0 {
		switch {
		case s.ipVersion == 4 || (s.ipVersion == 0 && r.SrcAddr.Is4()):
			r.EtherType = 0x0800
		case s.ipVersion == 6 || (s.ipVersion == 0 && r.SrcAddr.Is6()):
			r.EtherType = 0x86dd
		}
	}
	// ICMP: source port 0, destination port type*256+code, when the
	// record says so in an ICMP element. Otherwise the ports stay as the
	// exporter wrote them.
	if r.Proto == 1 || r.Proto == 58 {
		switch {
		case s.hasICMP:
			r.SrcPort, r.DstPort = 0, s.icmp
		case s.hasICMPTC:
			r.SrcPort, r.DstPort = 0, uint16(s.icmpType)<<8|uint16(s.icmpCode)
		}
	}
	r.SamplerID = s.sampler
	r.SamplingRate = s.ownRate()
	if r.SamplingRate == 0 {
		if !sc.rateCached || sc.sampler != s.sampler || sc.hasSampler != s.hasSampler {
			sc.rate = d.sampling.rate(hdr.exporter, hdr.domain, s.sampler, s.hasSampler)
			sc.sampler, sc.hasSampler, sc.rateCached = s.sampler, s.hasSampler, true
		}
		r.SamplingRate = sc.rate
	}
	d.initFor(sc, hdr, &s.fwd)
	r.FlowStart, r.FlowEnd = s.fwd.resolve(hdr, sc.init, sc.hasInit)
}

// reverse turns the forward record in s.r into the reverse direction of an
// RFC 5103 biflow: endpoints swapped, the reverse counters and flags, and
// the reverse times where the record has them.
func (d *Decoder) reverse(s *recState, sc *setContext) {
	r := s.r
	r.SrcAddr, r.DstAddr = r.DstAddr, r.SrcAddr
	if r.Proto != 1 && r.Proto != 58 {
		r.SrcPort, r.DstPort = r.DstPort, r.SrcPort
	}
	r.InIf, r.OutIf = r.OutIf, r.InIf
	r.SrcAS, r.DstAS = r.DstAS, r.SrcAS
	r.SrcMask, r.DstMask = r.DstMask, r.SrcMask
	r.SrcMAC, r.DstMAC = r.DstMAC, r.SrcMAC
	r.SrcVLAN, r.DstVLAN = r.DstVLAN, r.SrcVLAN
	r.Bytes, r.Packets = s.revBytes, s.revPackets
	r.TCPFlags = s.revFlags
	r.Reverse = true
	d.initFor(sc, s.hdr, &s.rev)
	if start, end := s.rev.resolve(s.hdr, sc.init, sc.hasInit); !start.IsZero() || !end.IsZero() {
		r.FlowStart, r.FlowEnd = start, end
	}
}
