package tcpstats

import "time"

// Sequence-space comparisons, modulo 2^32.
func gtSeq(a, b uint32) bool { return int32(a-b) > 0 }
func ltSeq(a, b uint32) bool { return int32(a-b) < 0 }
func leSeq(a, b uint32) bool { return int32(a-b) <= 0 }

const (
	// fastRetransWindow is how soon after the last duplicate ACK a
	// retransmission counts as fast (Wireshark: 20 ms).
	fastRetransWindow = 20 * time.Millisecond
	// defaultOOOThreshold is the out-of-order window when the handshake
	// RTT is unknown (Wireshark: 3 ms).
	defaultOOOThreshold = 3 * time.Millisecond
)

// analyze updates c with packet p sent in direction dir and returns the
// findings, following Wireshark's tcp_analyze_sequence_number in its order.
// docs/tcpstats.md describes each rule.
func (c *Conn) analyze(t time.Time, dir Direction, p *Packet) Flags {
	fwd, rev := &c.st[dir], &c.st[1-dir]
	h := &c.Dir[dir]
	h.Packets++
	h.IPBytes += uint64(p.IPLen)
	if p.PayloadLen > 0 {
		h.Segments++
		h.PayloadBytes += uint64(p.PayloadLen)
		h.MaxPayload = max(h.MaxPayload, p.PayloadLen)
	}
	if p.DF {
		h.DFPackets++
	}
	fl := p.Flags
	syn, fin, rst, ackf := fl&FlagSYN != 0, fl&FlagFIN != 0, fl&FlagRST != 0, fl&FlagACK != 0

	// Handshake and options.
	if syn {
		if p.HasMSS {
			h.MSS = p.MSS
		}
		ws := int8(-2)
		if p.WScale >= 0 {
			ws = p.WScale
		}
		fwd.winScale, h.WScale = ws, ws
		if !ackf {
			// The most recent SYN, as Wireshark's iRTT: a retransmitted
			// SYN restarts the handshake clock.
			if c.ACK.IsZero() {
				c.SYN = t
			}
			c.synSeq, c.synSeen = p.Seq, true
		} else {
			if c.SYNACK.IsZero() {
				c.SYNACK = t
			}
			// Window scaling needs both sides: without the option on
			// either SYN, neither side scales (RFC 7323 2.2).
			if fwd.winScale == -2 || rev.winScale == -2 {
				fwd.winScale, rev.winScale = -2, -2
			}
		}
	} else if ackf && dir == ToServer && !c.SYNACK.IsZero() && c.ACK.IsZero() {
		c.ACK = t
	}
	if fin {
		c.FINs[dir] = true
	}
	if rst {
		c.RST = true
	}

	// Relative sequence numbers, as Wireshark's default.
	if !fwd.baseSet {
		fwd.base, fwd.baseSet = p.Seq, true
		if !syn {
			fwd.base--
		}
	}
	if !rev.baseSet && ackf {
		rev.base, rev.baseSet = p.Ack-1, true
	}
	seq := p.Seq - fwd.base
	// Without the ACK flag the ACK field is kept raw (Linux sends 0 in a
	// bare RST), as tshark does: a later lastAck of 0 then disables the
	// peer's spurious-retransmission check instead of comparing against
	// 0 minus the base (netem-delay-rst-v4.pcap).
	ack := p.Ack
	if ackf {
		ack -= rev.base
	}
	seglen := uint32(p.PayloadLen)
	win := uint32(p.Window)
	var f Flags
	if rst {
		f.set(Reset)
	}

	// The checks from here to "finished" are Wireshark's, in its order.
	// Zero-window probe: one byte at the next sequence number into a
	// closed window.
	if seglen == 1 && seq == fwd.nextSeq && rev.window == 0 {
		f.set(ZeroWindowProbe)
		goto finished
	}
	if win == 0 && fl&(FlagRST|FlagFIN|FlagSYN) == 0 {
		f.set(ZeroWindow)
	}
	// Lost segment: a gap before this one.
	if fwd.nextSeq != 0 && gtSeq(seq, fwd.nextSeq) && !rst {
		f.set(LostSegment)
	}
	// Keep-alive: 0 or 1 byte one before the next sequence number.
	if seglen <= 1 && seq == fwd.nextSeq-1 && fl&(FlagSYN|FlagFIN|FlagRST) == 0 {
		f.set(KeepAlive)
	}
	// Window update: no data, same SEQ/ACK, a new nonzero window.
	if seglen == 0 && win != 0 && win != fwd.window && seq == fwd.nextSeq &&
		ack == fwd.lastAck && fl&(FlagSYN|FlagFIN|FlagRST) == 0 {
		f.set(WindowUpdate)
	}
	// Window full: data that reaches the right edge of the peer's window.
	if seglen > 0 && rev.winScale != -1 && fl&(FlagSYN|FlagFIN|FlagRST) == 0 {
		edge := rev.lastAck + rev.scaledWindow()
		if seq+seglen == edge {
			f.set(WindowFull)
		}
	}
	// Keep-alive ACK: repeats the last ACK after a keep-alive.
	if seglen == 0 && win != 0 && win == fwd.window && seq == fwd.nextSeq &&
		ack == fwd.lastAck && rev.lastFlags.Has(KeepAlive) && fl&(FlagSYN|FlagFIN|FlagRST) == 0 {
		f.set(KeepAliveAck)
		goto finished
	}
	// Zero-window probe ACK.
	if seglen == 0 && win == 0 && win == fwd.window && seq == fwd.nextSeq &&
		ack == fwd.lastAck && rev.lastFlags.Has(ZeroWindowProbe) &&
		fl&(FlagSYN|FlagFIN|FlagRST) == 0 {
		f.set(ZeroWindowProbeAck)
		goto finished
	}
	// Duplicate ACK: no data, same window, SEQ and ACK.
	if seglen == 0 && win != 0 && win == fwd.window && seq == fwd.nextSeq &&
		ack == fwd.lastAck && fl&(FlagSYN|FlagFIN|FlagRST) == 0 {
		if fwd.dupAcks == -1 {
			fwd.dupAcks = 1 // neutralizes the ACKed-unseen mark
		} else {
			fwd.dupAcks++
		}
		f.set(DuplicateAck)
	}

finished:
	if ack != fwd.lastAck {
		fwd.dupAcks = 0
	}
	// ACKed unseen segment: acknowledges beyond what the peer was seen to
	// send contiguously. Reported once per hole: the boundary then jumps
	// to the peer's highest sequence number, and while the peer only sends
	// pure ACKs a dupAcks of -1 remembers that this hole was reported.
	if rev.maxToBeAcked != 0 && gtSeq(ack, rev.maxToBeAcked) && ackf {
		// tshark 4.0 moves the boundary when the peer has sent beyond
		// it (newer releases compare the other way round; see the doc).
		if rev.maxToBeAcked < rev.nextSeq { // unsigned, as Wireshark
			rev.maxToBeAcked = rev.nextSeq
			f.set(AckedUnseen)
		} else {
			if rev.dupAcks == 0 {
				f.set(AckedUnseen)
			}
			rev.dupAcks = -1
		}
	}

	// Retransmission, spurious retransmission, fast retransmission,
	// out-of-order: a segment with data (or SYN/FIN) that does not
	// advance the sequence number. A keep-alive is none of these.
	if (seglen > 0 || syn || fin) && !f.Has(KeepAlive) {
		notAdvanced := fwd.nextSeq != 0 && ltSeq(seq, fwd.nextSeq)
		// One less than the next sequence number, with more than one
		// byte: new data after a zero-window probe, not a retransmission.
		if seglen > 1 && fwd.nextSeq-1 == seq {
			notAdvanced = false
		}
		synfin := uint32(0)
		if syn || fin {
			synfin = 1
		}
		// tshark marks fast and spurious retransmissions with the
		// retransmission field too; so do we, so counts compare.
		switch {
		case seglen > 0 && rev.lastAck != 0 && leSeq(seq+seglen, rev.lastAck):
			f.set(SpuriousRetransmission)
			f.set(Retransmission)
		case notAdvanced && rev.dupAcks >= 2 && rev.lastAck == seq &&
			t.Sub(rev.lastAckTime) < fastRetransWindow:
			f.set(FastRetransmission)
			f.set(Retransmission)
		case notAdvanced && t.Sub(fwd.nextSeqTime) < c.oooThreshold() && fwd.nextSeq != seq+seglen+synfin:
			f.set(OutOfOrder)
		case notAdvanced:
			f.set(Retransmission)
		}
	}

	next := seq + seglen
	if syn || fin {
		next++
	}
	if (gtSeq(next, fwd.nextSeq) || fwd.nextSeq == 0) && !f.Has(ZeroWindowProbe) {
		fwd.nextSeq, fwd.nextSeqTime = next, t
	}
	if (seq == fwd.maxToBeAcked || fwd.maxToBeAcked == 0) && !f.Has(ZeroWindowProbe) {
		fwd.maxToBeAcked = fwd.nextSeq
	}
	fwd.window = win
	fwd.windowFromSYN = syn
	fwd.lastAck, fwd.lastAckTime = ack, t
	fwd.lastFlags = f
	return f
}

// scaledWindow is the receive window this side last advertised, in bytes.
// The window of a SYN is never scaled.
func (s *seqState) scaledWindow() uint32 {
	w := s.window
	if s.windowFromSYN || s.winScale < 0 {
		return w
	}
	return w << uint(s.winScale)
}

// oooThreshold is how close to the highest segment a lower one must come
// to be called out-of-order rather than a retransmission: the handshake
// RTT when known, else 3 ms.
func (c *Conn) oooThreshold() time.Duration {
	if rtt := c.HandshakeRTT(); rtt > 0 {
		return rtt
	}
	return defaultOOOThreshold
}
