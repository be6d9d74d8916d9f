module github.com/netpulse/netpulse/bench/goflow2

go 1.26.8

require (
	github.com/netpulse/netpulse v0.0.0
	github.com/netsampler/goflow2/v2 v2.2.6
)

require (
	github.com/gopacket/gopacket v1.7.7 // indirect
	github.com/libp2p/go-reuseport v0.4.0 // indirect
	golang.org/x/net v0.62.0 // indirect
	golang.org/x/sys v0.49.0 // indirect
	google.golang.org/protobuf v1.36.12 // indirect
)

replace github.com/netpulse/netpulse => ../..
