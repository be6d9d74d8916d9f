#!/bin/sh
# guest.sh is the init (PID 1) of the user-mode-linux guest that
# testdata/gen/make-tcp-netem.sh boots. It runs only inside that guest, which
# has no network device: the three namespaces below, their veth pairs and
# every packet exist only in the guest's kernel.
#
# The kernel command line hands it, as environment variables:
#   NETEM_GEN  host path of this folder (read-only through the hostfs root)
#   NETEM_OUT  host path of the one writable folder, for the captures
#   NETEM_ONLY comma-separated capture names to make (empty: all)
#
# Topology, as testdata/tcp/make-captures.sh: client A -- router R -- server
# B. netem sits on R's two egress veths (toward B and toward A), so an
# impairment happens "on the wire"; tcpdump captures on B's veth (or A's, for
# the sender's view) with a 128-byte snap length.
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
PY=/usr/bin/python3
A=a R=r B=b

# Whatever happens, halt: an init that exits panics the guest kernel.
trap 'sync; halt -f >/dev/null 2>&1' EXIT
set -eu

mount -t proc proc /proc
mount -t sysfs sys /sys
# The guest's own scratch space is a tmpfs on /run (ip netns needs
# /run/netns); /tmp stays the host's, read-only, where a checkout may live.
mount -t tmpfs tmpfs /run
T=/run/np
mkdir -p $T/out
mount -t hostfs none $T/out -o "$NETEM_OUT"
OUT=$T/out
exec >"$OUT/guest.log" 2>&1
echo "guest: $(uname -sr)"

# Debian ships the guest's modules under /usr/lib/uml/modules/VERSION, not
# /lib/modules: point modprobe there through a private root.
mkdir -p $T/modroot/lib
ln -s /usr/lib/uml/modules $T/modroot/lib/modules
for m in ipv6 veth sch_netem; do modprobe -d $T/modroot "$m"; done

ip link set lo up
for ns in $A $R $B; do ip netns add $ns; ip -n $ns link set lo up; done
# gso_max_segs 1: the stack hands netem one segment per skb, so it drops,
# duplicates and delays single packets, never whole GSO bursts.
ip link add veth-a netns $A gso_max_segs 1 type veth peer name veth-ra netns $R gso_max_segs 1
ip link add veth-b netns $B gso_max_segs 1 type veth peer name veth-rb netns $R gso_max_segs 1
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
  ip -n "$1" link set "$2" up
  # One segment per packet on the wire, as a NIC would send them.
  ip netns exec "$1" ethtool -K "$2" tso off gso off gro off tx off rx off >/dev/null 2>&1 || true
done
ip -n $A route add default via 10.77.1.254
ip -n $A -6 route add default via fd77:1::fe
ip -n $B route add default via 10.77.0.254
ip -n $B -6 route add default via fd77::fe
ip netns exec $R sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1
echo "veth-rb: $(ip -d -n $R link show veth-rb | grep -o 'gso_max_segs [0-9]*');" \
  "$(ip netns exec $R ethtool -k veth-rb | grep -E '^(tcp-segmentation|generic-segmentation|generic-receive)-offload' | tr '\n' ' ')"

# capture NAME FAMILY MODE SIDE TO_B TO_A: one capture of traffic.py MODE,
# with netem TO_B on R's egress toward B and TO_A toward A ("-": none),
# taken on SIDE's veth (B: the receiver of the bulk data; A: its sender).
capture() {
  name=$1 fam=$2 mode=$3 side=$4 to_b=$5 to_a=$6
  case ",${NETEM_ONLY:-}," in ,,|*",$name,"*) ;; *) return 0 ;; esac
  if [ "$fam" = 6 ]; then dst=fd77::2; else dst=10.77.0.2; fi
  if [ "$side" = A ]; then cns=$A cdev=veth-a; else cns=$B cdev=veth-b; fi
  [ "$to_b" = - ] || tc -n $R qdisc add dev veth-rb root netem $to_b
  [ "$to_a" = - ] || tc -n $R qdisc add dev veth-ra root netem $to_a
  rm -f "$OUT/$name.pcap" $T/ready $T/dump.err
  ip netns exec $cns tcpdump --immediate-mode -Z root -i $cdev -s 128 -U -w "$OUT/$name.pcap" tcp 2>$T/dump.err &
  dump=$!
  i=0
  until grep -qs listening $T/dump.err; do
    i=$((i + 1)); [ $i -lt 100 ] || { cat $T/dump.err; exit 1; }; sleep 0.1
  done
  ip netns exec $B $PY "$NETEM_GEN/traffic.py" server "$mode" "$dst" $T/ready &
  srv=$!
  i=0
  until [ -e $T/ready ]; do
    kill -0 $srv && [ $i -lt 100 ] || exit 1; i=$((i + 1)); sleep 0.1
  done
  start=$(date +%s.%N)
  ip netns exec $A $PY "$NETEM_GEN/traffic.py" client "$mode" "$dst"
  wait $srv
  # Let the last FIN and ACK cross the delayed link before the capture ends.
  sleep 0.5
  kill -INT $dump; wait $dump || true
  tc -n $R qdisc del dev veth-rb root 2>/dev/null || true
  tc -n $R qdisc del dev veth-ra root 2>/dev/null || true
  echo "$name: $(awk "BEGIN{printf \"%.1f\", $(date +%s.%N) - $start}") s; $(grep -E "captured|received|dropped" $T/dump.err | tr "\n" " ")"
}

# name              fam mode side to B (data)                  to A (ACKs, echoes)
capture netem-reorder-v4        4 bulk B "delay 10ms reorder 25% 50%" -
capture netem-reorder-sender-v4 4 bulk A "delay 10ms reorder 25% 50%" -
capture netem-reorder-v6        6 echo B "delay 10ms reorder 25% 50%" "delay 10ms reorder 25% 50%"
capture netem-dup-v4            4 bulk B "duplicate 5%" "duplicate 5%"
capture netem-dup-v6            6 echo B "duplicate 5%" "duplicate 5%"
capture netem-delay-v4          4 bulk B "delay 30ms 20ms" "delay 30ms 20ms"
capture netem-delay-v6          6 echo B "delay 30ms 20ms" "delay 30ms 20ms"
capture netem-loss-v4           4 bulk B "loss 3%" "loss 3%"
capture netem-loss-v6           6 echo B "loss 3%" "loss 3%"
capture netem-mix-sender-v6     6 bulk A "delay 15ms 5ms loss 2% duplicate 2%" "delay 15ms 5ms loss 2% duplicate 2%"
echo ok >"$OUT/status"
