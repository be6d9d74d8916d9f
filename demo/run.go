package demo

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"time"
)

// CheckTarget returns an error unless target is a loopback address
// (127.0.0.0/8 or ::1) with a port: the demo sends to this host only, so
// that simulated traffic can never reach a real network.
func CheckTarget(target netip.AddrPort) error {
	a := target.Addr().Unmap()
	switch {
	case !a.IsValid():
		return errors.New("demo: no target address")
	case !a.IsLoopback():
		return fmt.Errorf("demo: target %v is not a loopback address (127.0.0.0/8 or ::1): the demo sends to this host only", target)
	case target.Port() == 0:
		return fmt.Errorf("demo: target %v: want a port", target)
	}
	return nil
}

// route checks the target and that every device can send to it from its
// source address, and returns the target as the sockets want it.
func (s *Simulator) route(target netip.AddrPort) (netip.AddrPort, error) {
	if err := CheckTarget(target); err != nil {
		return target, err
	}
	dst := netip.AddrPortFrom(target.Addr().Unmap().WithZone(""), target.Port())
	for _, d := range s.devs {
		if d.src.Is4() != dst.Addr().Is4() {
			return dst, fmt.Errorf("demo: device %q sends from %v, which cannot reach %v: use a 127.0.0.0/8 target (a receiver listening on :: hears it too)", d.cfg.Name, d.src, dst.Addr())
		}
	}
	return dst, nil
}

// Run sends the devices' export to target, a loopback address, until ctx
// is done; it then returns nil. Each device sends from a UDP socket bound
// to its own source address, so that the receiver sees distinct
// exporters. A datagram that fails to send is counted in Totals as a send
// error and the run goes on: the receiver may not be up yet. Run refuses
// any target that is not a loopback address before it opens anything.
func (s *Simulator) Run(ctx context.Context, target netip.AddrPort) error {
	dst, err := s.route(target)
	if err != nil {
		return err
	}
	conns := make(map[uint64]*net.UDPConn, len(s.devs))
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for _, d := range s.devs {
		network := "udp4"
		if d.src.Is6() {
			network = "udp6"
		}
		c, err := net.ListenUDP(network, net.UDPAddrFromAddrPort(netip.AddrPortFrom(d.src, 0)))
		if err != nil {
			return fmt.Errorf("demo: device %q: %w (Linux has all of 127.0.0.0/8 on lo; elsewhere add the address to the loopback interface, e.g. ifconfig lo0 alias %v)", d.cfg.Name, err, d.src)
		}
		conns[d.cfg.ID] = c
	}
	send := func(now time.Time) {
		for _, dg := range s.generate(now) {
			if _, err := conns[dg.DeviceID].WriteToUDPAddrPort(dg.Payload, dst); err != nil {
				s.sendError(dg.DeviceID)
				continue
			}
			s.count(&dg)
		}
	}
	if ctx.Err() != nil {
		return nil
	}
	send(time.Now())
	tick := time.NewTicker(s.cfg.Tick)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case now := <-tick.C:
			send(now)
		}
	}
}
