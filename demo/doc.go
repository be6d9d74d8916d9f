// Package demo is the built-in traffic of `netpulse run --demo`: a few
// simulated routers that export realistic flow over loopback, so that a
// newcomer sees live data within a minute of `make run`.
//
// Each simulated device has its own loopback source address (127.0.1.N;
// on Linux the whole of 127.0.0.0/8 is local) and exports one protocol:
// NetFlow v5, NetFlow v9 (templates, data and template refresh), IPFIX
// (the same, with the sequence counting data records) or sFlow v5 (flow
// samples carrying a raw Ethernet/IPv4/IPv6/TCP/UDP/ICMP header, with
// sampling rate and sample pool, plus generic interface counter samples).
// The encoders do no I/O; Run is the only part that touches the network,
// and it refuses any target that is not a loopback address.
//
// # Traffic model
//
// Everything comes from generators seeded with Config.Seed, so that the
// same configuration stepped through the same times (Step, WritePcap)
// produces the same bytes.
//
//   - Rate: Config.FlowsPerSecond flow records per second for all devices
//     together, averaged over a day, split between devices by their Share.
//     The rate follows a diurnal curve of the wall-clock time of day in
//     Config.Location (see Diurnal): lowest around 04:00 at about 0.4 of
//     the mean, highest around 20:30 at about 1.6 of it. A flow record is
//     one NetFlow/IPFIX flow or one sFlow flow sample.
//   - Conversations: an application is picked from a fixed mix (weights
//     in percent of conversations: HTTPS 36, DNS 20, QUIC 16, HTTP 7,
//     ICMP echo 5, NTP 4, SSH 3, IMAPS 2, SMTP submission 1, other TCP 6),
//     with a realistic size, duration, TCP flag and ToS profile. A NetFlow
//     or IPFIX device exports each conversation as two unidirectional flows
//     (request and response; an unanswered SYN gives one); an sFlow device
//     samples one packet of it. IPFIX, v9 and sFlow devices carry
//     Config.IPv6Share of conversations over IPv6; NetFlow v5 carries IPv4
//     only.
//   - Top talkers: each device has Config.Hosts internal hosts spread over
//     its LAN interfaces, and there are Config.Services external servers
//     plus small pools of DNS and NTP resolvers; hosts and servers are
//     picked with Zipf laws, so that a few carry most of the traffic (by
//     default the top host makes about 11% of a device's conversations and
//     the top tenth of the hosts about 60%).
//   - Interfaces: uplinks (transit, and peering for the servers of a few
//     large networks) and LANs. A conversation enters on one side and
//     leaves on the other; when an uplink is silent, its traffic fails over
//     to another uplink.
//   - Silences: every interface marked Flaps goes silent SilenceAfter after
//     the start, for SilenceFor, and again every SilenceEvery (defaults 90s,
//     3m and 10m): no flow goes in or out of it then, and sFlow counter
//     samples report it operationally down with frozen counters.
//
// # Address plan
//
// Internal hosts are 10.D.L.H and 2001:db8:D:L::H (D the device's position
// from 1, L the LAN's position from 1, H from 10). External servers use the
// documentation ranges 192.0.2.0/24, 198.51.100.0/24, 203.0.113.0/24 and
// 2001:db8:ff00::/40, and documentation AS numbers (64496–64511 and
// 65536–65551; NetFlow v5, whose AS fields have 16 bits, reports 23456,
// AS_TRANS, for the latter). The simulated network is AS 64500. Uplink
// next hops are in 198.18.0.0/15 and 2001:db8:fffe::/48. MAC addresses are
// locally administered (02:4e:50:…).
//
// # Ground truth
//
// Every Datagram carries the records a correct decoder reads from it
// (Datagram.Records), and the simulator keeps Totals of what it sent, per
// device and interface, as sent and scaled by the sampling rate, so that
// end-to-end tests compare what came out of the pipeline with what went in.
package demo
