package tcpstats

import (
	"testing"
	"time"
)

func pkt(t *testing.T, s seg) *Packet {
	t.Helper()
	var p Packet
	if err := Parse(LinkRaw, ipPacket(s), &p); err != nil {
		t.Fatal(err)
	}
	return &p
}

func TestFlowTable(t *testing.T) {
	t0 := time.Unix(1_700_000_000, 0)
	ack := func(sport uint16, flags uint8) seg {
		return seg{src: "10.0.0.1", dst: "10.0.0.2", sport: sport, dport: 80, seq: 1, ack: 1, flags: flags, win: 100}
	}
	cases := []struct {
		name  string
		cfg   Config
		steps []struct {
			at time.Duration
			s  seg
		}
		wantEnds map[EndReason]int // after the steps, before Flush
		wantLen  int
	}{
		{
			name: "evicts least recently seen",
			cfg:  Config{MaxFlows: 2},
			steps: []struct {
				at time.Duration
				s  seg
			}{{0, ack(1, FlagACK)}, {1, ack(2, FlagACK)}, {2, ack(1, FlagACK)}, {3, ack(3, FlagACK)}},
			wantEnds: map[EndReason]int{EndEvicted: 1},
			wantLen:  2,
		},
		{
			name: "idle timeout",
			cfg:  Config{IdleTimeout: time.Minute},
			steps: []struct {
				at time.Duration
				s  seg
			}{{0, ack(1, FlagACK)}, {30 * time.Second, ack(2, FlagACK)}, {61 * time.Second, ack(3, FlagACK)}},
			wantEnds: map[EndReason]int{EndIdle: 1},
			wantLen:  2,
		},
		{
			name: "closed timeout after RST, before idle",
			cfg:  Config{IdleTimeout: time.Hour, ClosedTimeout: 5 * time.Second},
			steps: []struct {
				at time.Duration
				s  seg
			}{{0, ack(1, FlagACK)}, {time.Second, ack(2, FlagRST|FlagACK)}, {7 * time.Second, ack(3, FlagACK)}},
			wantEnds: map[EndReason]int{EndClosed: 1},
			wantLen:  2,
		},
		{
			name: "closed connections are evicted first",
			cfg:  Config{MaxFlows: 2},
			steps: []struct {
				at time.Duration
				s  seg
			}{{0, ack(1, FlagACK)}, {1, ack(2, FlagRST)}, {2, ack(3, FlagACK)}},
			wantEnds: map[EndReason]int{EndEvicted: 1},
			wantLen:  2,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ended := map[EndReason]int{}
			a := New(tc.cfg, func(c *Conn) { ended[c.End]++ })
			for _, st := range tc.steps {
				a.Add(t0.Add(st.at), pkt(t, st.s))
			}
			for r := EndReason(0); int(r) < len(endNames); r++ {
				if ended[r] != tc.wantEnds[r] || a.Totals().Ends[r] != uint64(tc.wantEnds[r]) {
					t.Errorf("%s: %d ended (counter %d), want %d", r, ended[r], a.Totals().Ends[r], tc.wantEnds[r])
				}
			}
			if a.Len() != tc.wantLen {
				t.Errorf("table holds %d, want %d", a.Len(), tc.wantLen)
			}
			a.Flush()
			if a.Len() != 0 {
				t.Errorf("after Flush the table holds %d", a.Len())
			}
		})
	}
}

func TestHandshakeAndDirections(t *testing.T) {
	t0 := time.Unix(1_700_000_000, 0)
	var got *Conn
	a := New(Config{}, func(c *Conn) { cp := *c; got = &cp })
	c2s := seg{src: "fd77::1", dst: "fd77::2", sport: 5000, dport: 443, win: 100}
	s2c := seg{src: "fd77::2", dst: "fd77::1", sport: 443, dport: 5000, win: 100}
	steps := []struct {
		ms int
		s  seg
	}{
		{0, func() seg { s := c2s; s.flags, s.seq, s.opts = FlagSYN, 10, []byte{3, 3, 7, 2, 4, 5, 0xb4}; return s }()},
		{4, func() seg {
			s := s2c
			s.flags, s.seq, s.ack, s.opts = FlagSYN|FlagACK, 20, 11, []byte{3, 3, 9}
			return s
		}()},
		{5, func() seg { s := c2s; s.flags, s.seq, s.ack = FlagACK, 11, 21; return s }()},
		{6, func() seg { s := c2s; s.flags, s.seq, s.ack, s.payload = FlagACK|FlagPSH, 11, 21, 300; return s }()},
		{9, func() seg { s := s2c; s.flags, s.seq, s.ack, s.payload = FlagACK, 21, 311, 1000; return s }()},
	}
	for _, st := range steps {
		a.Add(t0.Add(time.Duration(st.ms)*time.Millisecond), pkt(t, st.s))
	}
	a.Flush()
	if got == nil {
		t.Fatal("no connection ended")
	}
	if got.Client.String() != "[fd77::1]:5000" || got.HandshakeRTT() != 5*time.Millisecond || got.Duration() != 9*time.Millisecond {
		t.Errorf("client %s rtt %v duration %v", got.Client, got.HandshakeRTT(), got.Duration())
	}
	if d := got.Dir[ToServer]; d.Packets != 3 || d.PayloadBytes != 300 || d.WScale != 7 || d.MSS != 1460 || d.DFPackets != 3 {
		t.Errorf("to server: %+v", d)
	}
	if d := got.Dir[ToClient]; d.Packets != 2 || d.PayloadBytes != 1000 || d.WScale != 9 || d.Segments != 1 {
		t.Errorf("to client: %+v", d)
	}
}

func TestAddAllocs(t *testing.T) {
	a := New(Config{}, nil)
	p := pkt(t, seg{src: "10.0.0.1", dst: "10.0.0.2", sport: 1, dport: 2, seq: 1, ack: 1, flags: FlagACK, win: 100, payload: 10})
	var ts timeSeq
	a.Add(ts.next(), p)
	if n := testing.AllocsPerRun(1000, func() { p.Seq += 10; a.Add(ts.next(), p) }); n != 0 {
		t.Errorf("Add allocates %v times per packet on a known connection", n)
	}
}
