package demo

import (
	"fmt"
	"io"
	"net/netip"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"
)

// PcapSourcePort is the UDP source port of the first device's datagrams in
// a capture WritePcap writes; the next devices use the following ports.
const PcapSourcePort = 50000

// WritePcap writes to w, as a pcap capture of Ethernet frames, what the
// devices send to target from start for d, stepping the simulated clock by
// Config.Tick: no network is used and no time passes. It advances the
// simulator's clock like Step and counts what it writes in Totals, so give
// it a Simulator of its own. target must be a loopback address, as for
// Run. The capture is what `netpulse decode` reads.
func (s *Simulator) WritePcap(w io.Writer, start time.Time, d time.Duration, target netip.AddrPort) error {
	dst, err := s.route(target)
	if err != nil {
		return err
	}
	pw := pcapgo.NewWriter(w)
	if err := pw.WriteFileHeader(65535, layers.LinkTypeEthernet); err != nil {
		return fmt.Errorf("demo: pcap: %w", err)
	}
	ports := make(map[uint64]uint16, len(s.devs))
	for i, dev := range s.devs {
		ports[dev.cfg.ID] = uint16(PcapSourcePort + i)
	}
	var id uint16
	end := start.Add(d)
	for i := 0; ; i++ {
		t := start.Add(time.Duration(i) * s.cfg.Tick)
		if t.After(end) {
			return nil
		}
		for _, dg := range s.generate(t) {
			id++
			frame := udpFrame(netip.AddrPortFrom(dg.Src, ports[dg.DeviceID]), dst, id, dg.Payload)
			ci := gopacket.CaptureInfo{Timestamp: dg.Time, CaptureLength: len(frame), Length: len(frame)}
			if err := pw.WritePacket(ci, frame); err != nil {
				return fmt.Errorf("demo: pcap: %w", err)
			}
			s.count(&dg)
		}
	}
}

// udpFrame builds an Ethernet frame, as a capture on the loopback
// interface shows it (zero MAC addresses), of a UDP datagram with correct
// IP and UDP checksums.
func udpFrame(src, dst netip.AddrPort, id uint16, payload []byte) []byte {
	udpLen := 8 + len(payload)
	b := make([]byte, 12, 14+40+udpLen)
	var pseudo []byte
	if src.Addr().Is6() {
		b = be.AppendUint16(b, 0x86dd)
		b = be.AppendUint32(b, 6<<28)
		b = be.AppendUint16(b, uint16(udpLen))
		b = append(b, protoUDP, 64)
		b = append16(b, src.Addr())
		b = append16(b, dst.Addr())
		pseudo = append16(append16(nil, src.Addr()), dst.Addr())
		pseudo = be.AppendUint32(pseudo, uint32(udpLen))
		pseudo = append(pseudo, 0, 0, 0, protoUDP)
	} else {
		b = be.AppendUint16(b, 0x0800)
		ip := len(b)
		b = append(b, 0x45, 0)
		b = be.AppendUint16(b, uint16(20+udpLen))
		b = be.AppendUint16(b, id)
		b = be.AppendUint16(b, 0x4000) // don't fragment
		b = append(b, 64, protoUDP, 0, 0)
		b = append4(b, src.Addr())
		b = append4(b, dst.Addr())
		be.PutUint16(b[ip+10:], ipChecksum(b[ip:ip+20]))
		pseudo = append4(append4(nil, src.Addr()), dst.Addr())
		pseudo = append(pseudo, 0, protoUDP)
		pseudo = be.AppendUint16(pseudo, uint16(udpLen))
	}
	u := len(b)
	b = be.AppendUint16(b, src.Port())
	b = be.AppendUint16(b, dst.Port())
	b = be.AppendUint16(b, uint16(udpLen))
	b = be.AppendUint16(b, 0)
	b = append(b, payload...)
	sum := ipChecksum(append(pseudo, b[u:]...))
	if sum == 0 {
		sum = 0xffff
	}
	be.PutUint16(b[u+6:], sum)
	return b
}
