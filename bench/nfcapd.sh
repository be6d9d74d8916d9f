#!/usr/bin/env bash
# nfcapd (nfdump) under the same loopback blast as BenchmarkProxy: for each
# capture, start nfcapd on 127.0.0.1, send one pass slowly (templates),
# blast the capture's datagrams for DURATION at full rate with
# proxy/benchtool/blast, stop nfcapd (it writes its file on exit) and count
# the flows it stored with nfdump. Not part of `make test`.
#
#   bash bench/nfcapd.sh [DURATION] [capture names...]
#
# Prints one line per capture: flows stored, flows/s, datagrams sent, the
# flows those carried, loss, and nfcapd's CPU time (utime+stime from
# /proc/PID/stat) during the run. docs/performance.md, "Proxy", has the
# figures. Needs nfcapd and nfdump (apt-get install nfdump); sFlow is not
# nfcapd's (it is sfcapd's), so pmacct-sflow is skipped.
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${1:-10s}
shift || true
PORT=${NFCAPD_PORT:-39095}
command -v nfcapd >/dev/null || { echo "nfcapd missing: apt-get install nfdump" >&2; exit 1; }
work=$(mktemp -d)
trap 'kill "${pid:-}" 2>/dev/null || true; rm -rf "$work"' EXIT
go build -o "$work/blast" ./proxy/benchtool/blast
tck=$(getconf CLK_TCK)

names=("$@")
if [ ${#names[@]} -eq 0 ]; then
  for f in testdata/captures/*.pcap; do
    n=$(basename "$f" .pcap)
    case $n in traffic | *sflow*) continue ;; esac
    names+=("$n")
  done
fi

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

printf '%-26s %10s %10s %10s %12s %7s %8s %10s\n' capture stored flows/s sent-dg sent-flows loss% cpu-s flows/cpu-s
for n in "${names[@]}"; do
  dir="$work/$n"
  mkdir -p "$dir"
  # -t 3600: no rotation during the run; -B: the proxy's 16 MiB buffer.
  nfcapd -b 127.0.0.1 -p "$PORT" -w "$dir" -t 3600 -B 16777216 >"$work/$n.log" 2>&1 &
  pid=$!
  sleep 0.5
  t0=$(cpu_ticks "$pid")
  out=$("$work/blast" -capture "testdata/captures/$n.pcap" -to "127.0.0.1:$PORT" -duration "$DURATION" -rate max)
  sleep 1 # let nfcapd read what is buffered
  t1=$(cpu_ticks "$pid")
  kill -TERM "$pid"
  wait "$pid" || true
  pid=
  stored=$(nfdump -R "$dir" -I 2>/dev/null | awk '/^Flows:/ {print $2; exit}')
  # $out: sent datagrams=N bytes=N seconds=S dg/s=N flows=N ...
  eval "$(echo "$out" | tr ' ' '\n' | grep -E '^(datagrams|seconds|flows)=' | sed 's/^/sent_/')"
  awk -v n="$n" -v st="${stored:-0}" -v d="$sent_datagrams" -v s="$sent_seconds" -v f="$sent_flows" \
      -v c="$(( t1 - t0 ))" -v tck="$tck" 'BEGIN {
    cpu = c / tck
    printf "%-26s %10d %10.0f %10d %12.0f %7.1f %8.2f %10.0f\n", n, st, st / s, d, f, 100 * (1 - st / f), cpu, (cpu > 0 ? st / cpu : 0)
  }'
done
