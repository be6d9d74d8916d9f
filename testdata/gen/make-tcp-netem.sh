#!/bin/sh
# make-tcp-netem.sh makes the netem captures under testdata/tcp/
# (netem-*.pcap): real Linux TCP through `tc netem` reordering, duplication,
# delay with jitter, and loss, over IPv4 and IPv6. TestAgainstTShark
# (tcpstats/tshark_test.go) compares our analysis of each with tshark's.
#
# Usage, from anywhere, as root or not:
#
#	sh testdata/gen/make-tcp-netem.sh                     # all captures
#	sh testdata/gen/make-tcp-netem.sh netem-dup-v4 ...    # only these
#
# The host kernel has no sch_netem, so everything happens inside a
# user-mode-linux guest (Debian's user-mode-linux package: a 6.1 kernel,
# /usr/bin/linux, with netem, veth and ipv6 as modules under
# /usr/lib/uml/modules). The guest gets NO network device, so no packet can
# leave it; its root is the host's / through hostfs, mounted read-only, and
# its one writable folder is a fresh temporary folder on the host. Its init
# is testdata/gen/uml/guest.sh (namespaces, netem, tcpdump), the traffic is
# testdata/gen/uml/traffic.py. The captures are moved into testdata/tcp only
# when the guest reports success.
#
# Needs: user-mode-linux, iproute2, tcpdump, python3, ethtool; capinfos
# (tshark's wireshark-common) for the summary. Takes about a minute.
set -eu
GEN=$(cd "$(dirname "$0")" && pwd)
DEST=$(cd "$GEN/../tcp" && pwd)
for tool in linux tcpdump ip tc /usr/bin/python3 capinfos; do
  command -v "$tool" >/dev/null || { echo "make-tcp-netem.sh: missing $tool" >&2; exit 1; }
done
ls /usr/lib/uml/modules/*/kernel/net/sched/sch_netem.ko >/dev/null 2>&1 || {
  echo "make-tcp-netem.sh: no sch_netem.ko under /usr/lib/uml/modules (apt-get install user-mode-linux)" >&2
  exit 1
}
case $GEN in /run/* | /proc/* | /sys/* | /dev/*)
  echo "make-tcp-netem.sh: the guest mounts its own $GEN; run from a checkout elsewhere" >&2
  exit 1 ;;
esac
OUT=$(mktemp -d /tmp/np-netem.XXXXXX)
trap 'rm -rf "$OUT"' EXIT
ONLY=$(echo "$*" | tr ' ' ,)

# Arguments the kernel does not know (NETEM_*=...) reach init as its
# environment. con0 is the guest's console (its stdout goes to ours);
# ubd0 is left unset, which the guest kernel reports and ignores; the
# guest halts itself when done, so timeout only guards against a hang.
start=$(date +%s)
timeout 600 linux mem=384M rootfstype=hostfs rootflags=/ ro \
  init="$GEN/uml/guest.sh" con=null con0=null,fd:1 \
  NETEM_GEN="$GEN/uml" NETEM_OUT="$OUT" NETEM_ONLY="$ONLY" \
  </dev/null >"$OUT/console.log" 2>&1 || true
cat "$OUT/guest.log" 2>/dev/null || true
if [ "$(cat "$OUT/status" 2>/dev/null)" != ok ]; then
  echo "make-tcp-netem.sh: the guest did not finish; its console:" >&2
  tail -n 30 "$OUT/console.log" >&2
  exit 1
fi
for f in "$OUT"/*.pcap; do
  chmod 644 "$f"
  mv "$f" "$DEST/"
  b=$(basename "$f")
  echo "$b: $(capinfos -c -M "$DEST/$b" | awk '/Number of packets/ {print $NF}') packets, $(wc -c <"$DEST/$b") bytes"
done
echo "make-tcp-netem.sh: done in $(($(date +%s) - start)) s"
