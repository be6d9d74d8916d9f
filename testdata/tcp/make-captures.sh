#!/bin/sh
# make-captures.sh makes the TCP captures under testdata/tcp/ from the real
# Linux TCP stack: three network namespaces of its own (client, router,
# server) joined by veth pairs, with addresses that exist only inside them
# (10.77.0.0/24, 10.77.1.0/24, fd77::/64, fd77:1::/64). Nothing touches the
# host's network. Run as root; not part of `make test`. The Go test
# TestAgainstTShark compares our analysis of every capture with tshark's.
#
# Needs: iproute2, iptables (or iptables-nft), tcpdump, python3, ethtool.
# This kernel has no sch_netem, so loss comes from iptables' statistic match
# inside the receiver's namespace; reordering, duplication and delay are not
# made here (they need netem, e.g. inside a user-mode-linux guest).
set -eu
cd "$(dirname "$0")"
A=np-tcp-a R=np-tcp-r B=np-tcp-b
cleanup() { for ns in $A $R $B; do ip netns del $ns 2>/dev/null || true; done; }
trap cleanup EXIT
cleanup
# A (client) -- R (router) -- B (server, where we capture).
for ns in $A $R $B; do ip netns add $ns; ip -n $ns link set lo up; done
ip link add veth-a netns $A type veth peer name veth-ra netns $R
ip link add veth-b netns $B type veth peer name veth-rb netns $R
ip -n $A addr add 10.77.1.1/24 dev veth-a
ip -n $A addr add fd77:1::1/64 dev veth-a nodad
ip -n $R addr add 10.77.1.254/24 dev veth-ra
ip -n $R addr add fd77:1::fe/64 dev veth-ra nodad
ip -n $R addr add 10.77.0.254/24 dev veth-rb
ip -n $R addr add fd77::fe/64 dev veth-rb nodad
ip -n $B addr add 10.77.0.2/24 dev veth-b
ip -n $B addr add fd77::2/64 dev veth-b nodad
for pair in "$A veth-a" "$R veth-ra" "$R veth-rb" "$B veth-b"; do
  set -- $pair
  ip -n $1 link set $2 up
  # One segment per packet on the wire, as a NIC would send them.
  ip netns exec $1 ethtool -K $2 tso off gso off gro off tx off rx off >/dev/null 2>&1 || true
done
ip -n $A route add default via 10.77.1.254
ip -n $A -6 route add default via fd77:1::fe
ip -n $B route add default via 10.77.0.254
ip -n $B -6 route add default via fd77::fe
ip netns exec $R sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1
sleep 1

PY=$(mktemp)
cat > "$PY" <<'PYEOF'
import socket, sys, time, struct
mode, role, fam, addr = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
af = socket.AF_INET6 if fam == "6" else socket.AF_INET
port = 5001
def serve(c):
    if mode == "zerowin":
        time.sleep(3)  # stop reading: the window fills and closes
    while True:
        try:
            d = c.recv(65536)
        except ConnectionResetError:
            break
        if not d: break
        if mode == "echo": c.sendall(d)
        if mode == "zerowin": time.sleep(0.01)
    c.close()
if role == "server":
    s = socket.socket(af, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if mode == "zerowin":
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.bind((addr, port)); s.listen(4)
    conns = 3 if mode == "echo" else 1
    for _ in range(conns):
      c, _ = s.accept()
      serve(c)
    sys.exit(0)
else:
  for _ in range(3 if mode == "echo" else 1):
    c = socket.socket(af, socket.SOCK_STREAM)
    if mode == "keepalive":
        c.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        c.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, 1)
        c.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, 1)
    c.connect((addr, port))
    if mode == "bulk":
        buf = b"x" * 1400
        for i in range(150): c.sendall(buf)
    elif mode == "echo":
        # Request/response both ways, so both directions carry data.
        for i in range(40):
            c.sendall(b"q" * 2000)
            got = 0
            while got < 2000:
                got += len(c.recv(65536))
    elif mode == "zerowin":
        c.sendall(b"z" * 60000)
    elif mode == "keepalive":
        c.sendall(b"hello")
        time.sleep(4.5)
        c.sendall(b"bye")
    elif mode == "rst":
        c.sendall(b"r" * 3000)
        time.sleep(0.2)
        c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    c.close()
PYEOF

# capture NAME FAMILY MODE INLOSS WIRELOSS TOOL: connections of MODE,
# captured in B. INLOSS drops at B's ingress, after the capture point:
# tshark sees the packet and then its retransmission. WIRELOSS drops in the
# router R, both ways, before the capture point: the capture has gaps
# ("previous segment not captured"). (Dropping in A's OUTPUT chain would
# not do: the local stack sees the error and retries at once.) TOOL is tcpdump on veth-b (pcap, Ethernet), tcpdump-any on the
# any device (pcap, Linux SLL2), or dumpcap (pcapng).
capture() {
  name=$1 fam=$2 mode=$3 inloss=$4 wireloss=$5 tool=$6
  if [ "$fam" = 6 ]; then dst=fd77::2; ipt=ip6tables; else dst=10.77.0.2; ipt=iptables; fi
  if [ "$inloss" != 0 ]; then
    ip netns exec $B $ipt -A INPUT -p tcp -m statistic --mode random --probability "$inloss" -j DROP
  fi
  if [ "$wireloss" != 0 ]; then
    ip netns exec $R $ipt -A FORWARD -p tcp -m statistic --mode random --probability "$wireloss" -j DROP
  fi
  case $tool in
  tcpdump) out=$name.pcap; ip netns exec $B tcpdump -i veth-b -s 128 -U -w "$out" tcp >/dev/null 2>&1 & ;;
  tcpdump-any) out=$name.pcap; ip netns exec $B tcpdump -i any -s 128 -U -w "$out" tcp >/dev/null 2>&1 & ;;
  dumpcap) out=$name.pcapng; ip netns exec $B dumpcap -q -i veth-b -s 128 -f tcp -w "$out" >/dev/null 2>&1 & ;;
  esac
  dump=$!
  sleep 1
  ip netns exec $B python3 "$PY" "$mode" server "$fam" "$dst" &
  srv=$!
  sleep 0.5
  ip netns exec $A python3 "$PY" "$mode" client "$fam" "$dst" || true
  wait $srv || true
  sleep 1
  kill $dump; wait $dump || true
  ip netns exec $B $ipt -F INPUT
  ip netns exec $R $ipt -F FORWARD
  chmod 644 "$out"
  echo "$out: $(tshark -r "$out" 2>/dev/null | wc -l) packets"
}

capture loss4 4 bulk 0.05 0 tcpdump
capture loss6 6 bulk 0.05 0 tcpdump
capture wireloss4 4 bulk 0 0.04 tcpdump
capture lossboth4 4 echo 0.03 0.03 tcpdump-any
capture lossboth6 6 echo 0.03 0.03 dumpcap
capture zerowin4 4 zerowin 0 0 tcpdump
capture zerowin6 6 zerowin 0 0 tcpdump
capture rst4 4 rst 0 0 tcpdump
capture keepalive6 6 keepalive 0 0 tcpdump
# Capture loss: the sender's real trace with every 23rd frame removed, as a
# busy capture point drops them, for "ACKed unseen segment".
editcap loss4.pcap caploss4.pcap $(seq 10 23 300) >/dev/null
rm -f "$PY"
