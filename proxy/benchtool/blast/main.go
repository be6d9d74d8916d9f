// Command blast replays the UDP datagrams of captures to a loopback
// receiver, as fast as possible or at a given rate, for a given time, with
// sendmmsg. It refuses any destination but 127.0.0.1 and ::1.
//
//	go run ./proxy/benchtool/blast -capture testdata/captures/pmacct-v9.pcap \
//	    -to 127.0.0.1:9995 -duration 10s -rate max
//
// It first sends one pass slowly (-prime, on by default) so that the
// receiver knows the templates, then blasts, and prints what it sent on
// one line: datagrams, bytes, seconds, datagrams/s, the flows those
// datagrams carry (netpulse's decoder's count for one pass times the
// passes), the sender thread's CPU time, and the capture's flows per
// netpulse flow record (reverse biflow halves are records of their own),
// which turns netpulse_proxy_flows_forwarded_total into flows.
package main

import (
	"context"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"github.com/netpulse/netpulse/capture"
	"github.com/netpulse/netpulse/proxy/benchtool"
)

func main() {
	file := flag.String("capture", "", "pcap/pcapng file whose UDP datagrams are sent")
	to := flag.String("to", "", "destination 127.0.0.1:PORT or [::1]:PORT")
	dur := flag.Duration("duration", 10*time.Second, "how long to send")
	rate := flag.String("rate", "max", "datagrams/s, or max")
	prime := flag.Bool("prime", true, "send one pass slowly first, then wait 200ms")
	flag.Parse()
	if err := run(*file, *to, *dur, *rate, *prime); err != nil {
		fmt.Fprintln(os.Stderr, "blast:", err)
		os.Exit(1)
	}
}

func run(file, to string, dur time.Duration, rate string, prime bool) error {
	dst, err := netip.ParseAddrPort(to)
	if err != nil {
		return fmt.Errorf("-to %q: %w", to, err)
	}
	if err := benchtool.CheckLoopback(dst); err != nil {
		return err
	}
	if dur <= 0 || dur > 10*time.Minute {
		return fmt.Errorf("-duration %v: want (0, 10m]", dur)
	}
	r := 0.0
	if rate != "max" {
		if r, err = strconv.ParseFloat(rate, 64); err != nil || r <= 0 {
			return fmt.Errorf("-rate %q: want max or datagrams/s", rate)
		}
	}
	dgs, err := capture.ReadAllUDP(file)
	if err != nil {
		return err
	}
	prof := benchtool.ProfileOf(dgs)
	s, err := benchtool.NewSender(dst, benchtool.Payloads(dgs))
	if err != nil {
		return err
	}
	defer s.Close()
	if prime {
		if err := s.Prime(); err != nil {
			return err
		}
		time.Sleep(200 * time.Millisecond)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	res := s.Blast(ctx, benchtool.Options{Duration: dur, Rate: r})
	flows := float64(res.Datagrams) * prof.FlowsPerDatagram()
	fmt.Printf("sent datagrams=%d bytes=%d seconds=%.3f dg/s=%.0f flows=%.0f flows/s=%.0f sender-cpu-s=%.3f errors=%d flows/flow-record=%.6f\n",
		res.Datagrams, res.Bytes, res.Elapsed.Seconds(), float64(res.Datagrams)/res.Elapsed.Seconds(),
		flows, flows/res.Elapsed.Seconds(), res.ThreadCPU.Seconds(), res.Errors, prof.FlowsPerFlowRecord())
	return nil
}
