// Command receiver is a collector receiver for benchmarks: HTTPS on a
// loopback address with the given certificate, the test token of package
// wiretest (NETPULSE_API_TOKEN=test-token-0123456789 on the proxy), every
// batch decoded, de-duplicated and dropped. It prints "listening ADDR" and
// serves until killed. bench/nfcapd.sh runs it for the proxy's HTTPS sink.
//
//	go run ./proxy/benchtool/receiver -cert cert.pem -key key.pem -addr 127.0.0.1:9443
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/netpulse/netpulse/wire/wiretest"
)

func main() {
	cert := flag.String("cert", "", "PEM certificate for 127.0.0.1")
	key := flag.String("key", "", "PEM private key")
	addr := flag.String("addr", "127.0.0.1:0", "loopback address to listen on")
	flag.Parse()
	err := wiretest.ServeCounting(*cert, *key, *addr, func(a string) { fmt.Println("listening", a) })
	fmt.Fprintln(os.Stderr, "receiver:", err)
	os.Exit(1)
}
