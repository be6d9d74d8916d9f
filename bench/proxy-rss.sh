#!/usr/bin/env bash
# RSS of `netpulse proxy` under sustained overload: build bin/netpulse,
# run it with one socket and the null sink on 127.0.0.1, blast it far
# above its capacity for DURATION with BLASTERS parallel senders
# (proxy/benchtool/blast), and sample VmRSS from /proc/PID/status every
# second. With GOFLOW2=1, goflow2 v2.2.6's collector (built from the module
# proxy into a temporary directory, never committed) gets the same blast,
# with its command's defaults (one socket, two workers, a queue of
# 1,000,000 datagrams), the "bin" format and its file transport to
# /dev/null. goflow2 is killed if its RSS passes RSS_LIMIT_MB.
# Not part of `make test`.
#
#   bash bench/proxy-rss.sh [DURATION] [CAPTURE]
#   GOFLOW2=1 bash bench/proxy-rss.sh 60s
#   NETPULSE_BIN=/tmp/netpulse bash bench/proxy-rss.sh 30s   # no make build
#
# Prints the series (seconds, RSS in MiB) and a summary line per program.
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${1:-60s}
CAPTURE=${2:-testdata/captures/pmacct-ipfix.pcap}
PORT=${RSS_PORT:-39195}
BLASTERS=${BLASTERS:-2}
RSS_LIMIT_MB=${RSS_LIMIT_MB:-6000}
secs=${DURATION%s}
work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

# NETPULSE_BIN: an already built netpulse instead of `make build`.
NETPULSE_BIN=${NETPULSE_BIN:-}
if [ -z "$NETPULSE_BIN" ]; then
  make build >/dev/null
  NETPULSE_BIN=./bin/netpulse
fi
go build -o "$work/blast" ./proxy/benchtool/blast

rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }

# measure NAME PID: blast, sample, summarise.
measure() {
  local name=$1 pid=$2 bl=() i series=() r min=0 max=0
  sleep 1
  echo "# $name: pid $pid, RSS before the blast $(( $(rss_kib "$pid") / 1024 )) MiB"
  for ((i = 0; i < BLASTERS; i++)); do
    "$work/blast" -capture "$CAPTURE" -to "127.0.0.1:$PORT" -duration "$DURATION" -rate max >"$work/blast-$name-$i.txt" &
    bl+=($!)
  done
  for ((i = 1; i <= secs + 1; i++)); do
    sleep 1
    r=$(( $(rss_kib "$pid") / 1024 ))
    series+=("$r")
    echo "$name $i $r"
    if [ "$r" -gt "$RSS_LIMIT_MB" ]; then
      echo "# $name: RSS $r MiB above RSS_LIMIT_MB=$RSS_LIMIT_MB: stopping it"
      break
    fi
  done
  for p in "${bl[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  cat "$work"/blast-"$name"-*.txt | sed "s/^/# $name blast: /"
  min=${series[0]}
  for r in "${series[@]}"; do
    ((r < min)) && min=$r
    ((r > max)) && max=$r
  done
  echo "# $name: RSS min $min MiB, max $max MiB over ${#series[@]} samples; last $r MiB"
  kill -TERM "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}

"$NETPULSE_BIN" proxy -port "$PORT" -null -accept_unregistered -sockets 1 -metrics none 2>"$work/netpulse.log" &
np=$!
pids+=("$np")
measure netpulse "$np"
grep -Ei "error|panic" "$work/netpulse.log" | head -5 || true

if [ "${GOFLOW2:-0}" = 1 ]; then
  gdir="$work/gf"
  mkdir -p "$gdir"
  (cd "$gdir" && go mod init gfbuild >/dev/null 2>&1 &&
    GOFLAGS=-mod=mod go get github.com/netsampler/goflow2/v2@v2.2.6 >/dev/null 2>&1 &&
    GOFLAGS=-mod=mod go build -o "$work/goflow2" github.com/netsampler/goflow2/v2/cmd/goflow2)
  "$work/goflow2" -listen "flow://127.0.0.1:$PORT" -format bin -transport file \
    -transport.file /dev/null -addr 127.0.0.1:0 -loglevel error 2>"$work/goflow2.log" &
  gf=$!
  pids+=("$gf")
  measure goflow2 "$gf"
fi
