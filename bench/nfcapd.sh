#!/usr/bin/env bash
# nfcapd (nfdump) and `netpulse proxy` under the same loopback blast, in
# the same run, each in its own process and measured the same way. For each
# capture and each receiver: start it on 127.0.0.1, send one pass slowly
# (templates), blast the capture's datagrams for DURATION at full rate with
# proxy/benchtool/blast (a separate process), wait a second for what is
# buffered, and count the flows the receiver took in:
#   - nfcapd: the flows it stored (nfdump -R DIR -I), after stopping it (it
#     writes its file on exit);
#   - netpulse: netpulse_proxy_flows_forwarded_total from its /metrics
#     (one socket, the null sink, no rate limit), turned into flows with the
#     capture's flows per flow record (reverse biflow halves are records of
#     their own);
#   - netpulse-https: the same proxy with the collector sink posting over
#     HTTPS to a receiver process (proxy/benchtool/receiver, which decodes
#     and drops each batch): the records the receiver acknowledged, once
#     they stop coming; the receiver's CPU is printed on a line of its own.
# CPU is utime+stime of the receiver's process (all threads) from
# /proc/PID/stat over the blast and the second after it, for both. Not
# part of `make test`.
#
#   bash bench/nfcapd.sh [DURATION] [capture names...]
#   RECEIVERS=nfcapd bash bench/nfcapd.sh 5s     # nfcapd only
#   RATE=100000 bash bench/nfcapd.sh 5s          # datagrams/s instead of max
#   OTHER=/tmp/netpulse-old RECEIVERS="netpulse other" bash bench/nfcapd.sh 5s
#                                   # against another netpulse build
#   RECEIVERS="nfcapd netpulse netpulse-https" bash bench/nfcapd.sh 5s
#   NETPULSE_BIN=/tmp/netpulse bash bench/nfcapd.sh 5s   # no go build
#
# Prints one line per capture and receiver: flows taken in, flows/s,
# datagrams sent, the flows those carried, loss, CPU seconds and flows per
# CPU-second. docs/performance.md, "Proxy", has the figures. Needs nfcapd
# and nfdump (apt-get install nfdump), and openssl for netpulse-https; sFlow
# is not nfcapd's (it is sfcapd's), so pmacct-sflow is skipped.
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${1:-10s}
shift || true
PORT=${NFCAPD_PORT:-39095}
RECEIVERS=${RECEIVERS:-nfcapd netpulse}
command -v nfcapd >/dev/null || { echo "nfcapd missing: apt-get install nfdump" >&2; exit 1; }
work=$(mktemp -d)
trap 'kill "${pid:-}" "${rpid:-}" 2>/dev/null || true; rm -rf "$work"' EXIT
go build -o "$work/blast" ./proxy/benchtool/blast
if [ -n "${NETPULSE_BIN:-}" ]; then # an already built netpulse
  cp "$NETPULSE_BIN" "$work/netpulse"
else
  CGO_ENABLED=0 go build -o "$work/netpulse" ./cmd/netpulse
fi
case " $RECEIVERS " in *" netpulse-https "*)
  go build -o "$work/receiver" ./proxy/benchtool/receiver
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 -subj /CN=127.0.0.1 \
    -addext subjectAltName=IP:127.0.0.1 -keyout "$work/key.pem" -out "$work/cert.pem" 2>/dev/null
  ;;
esac
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
metric() { # metric NAME: a counter of the running netpulse proxy
  curl -s "http://127.0.0.1:$((PORT + 1))/metrics" | awk -v m="$1" '$1 == m {v = $2} END {print v}'
}

printf '%-24s %-9s %10s %10s %10s %12s %7s %8s %11s\n' capture receiver flows flows/s sent-dg sent-flows loss% cpu-s flows/cpu-s
for n in "${names[@]}"; do
  for rcv in $RECEIVERS; do
    dir="$work/$n-$rcv"
    mkdir -p "$dir"
    case $rcv in
      nfcapd)
        # -t 3600: no rotation during the run; -B: the proxy's 16 MiB buffer.
        nfcapd -b 127.0.0.1 -p "$PORT" -w "$dir" -t 3600 -B 16777216 >"$work/$n.log" 2>&1 &
        ;;
      netpulse | other)
        bin=$work/netpulse
        [ "$rcv" = other ] && bin=${OTHER:?OTHER=path of another netpulse binary}
        "$bin" proxy -host 127.0.0.1 -port "$PORT" -null -accept_unregistered \
          -sockets 1 -max 0 -rcvbuf_size 16777216 -log_level warn >"$work/$n-netpulse.log" 2>&1 &
        ;;
      netpulse-https)
        "$work/receiver" -cert "$work/cert.pem" -key "$work/key.pem" -addr "127.0.0.1:$((PORT + 2))" >"$work/$n-receiver.log" 2>&1 &
        rpid=$!
        NETPULSE_API_TOKEN=test-token-0123456789 "$work/netpulse" proxy -host 127.0.0.1 -port "$PORT" \
          -collector "https://127.0.0.1:$((PORT + 2))" -tls_ca_file "$work/cert.pem" -accept_unregistered \
          -sockets 1 -max 0 -rcvbuf_size 16777216 -log_level warn >"$work/$n-netpulse.log" 2>&1 &
        ;;
      *) echo "unknown receiver $rcv" >&2; exit 1 ;;
    esac
    pid=$!
    sleep 0.5
    if ! kill -0 "$pid" 2>/dev/null; then
      echo "$rcv did not start:" >&2
      cat "$work/$n"*.log >&2
      exit 1
    fi
    t0=$(cpu_ticks "$pid")
    out=$("$work/blast" -capture "testdata/captures/$n.pcap" -to "127.0.0.1:$PORT" -duration "$DURATION" -rate "${RATE:-max}")
    sleep 1 # let the receiver read what is buffered
    if [ "$rcv" = netpulse-https ]; then
      # Until the sink has delivered what it took (or 30 s).
      last=-1
      for _ in $(seq 60); do
        now=$(metric 'netpulse_proxy_sink_records_total{outcome="delivered",sink="collector"}')
        [ "$now" = "$last" ] && break
        last=$now
        sleep 0.5
      done
    fi
    t1=$(cpu_ticks "$pid")
    # $out: sent datagrams=N bytes=N seconds=S dg/s=N flows=N ... flows/flow-record=R
    eval "$(echo "$out" | tr ' ' '\n' | grep -E '^(datagrams|seconds|flows|flows/flow-record)=' | sed 's|/|_per_|; s/-/_/; s/^/sent_/')"
    if [ "$rcv" = netpulse-https ]; then
      recs=$(metric 'netpulse_proxy_sink_records_total{outcome="delivered",sink="collector"}')
      got=$(awk -v r="${recs:-0}" -v k="$sent_flows_per_flow_record" 'BEGIN {printf "%.0f", r * k}')
      rc=$(cpu_ticks "$rpid")
      kill "$rpid"
      wait "$rpid" 2>/dev/null || true
      rpid=
      echo "# $n receiver cpu-s $(awk -v c="$rc" -v t="$tck" 'BEGIN {printf "%.2f", c / t}')"
    elif [ "$rcv" != nfcapd ]; then
      recs=$(metric netpulse_proxy_flows_forwarded_total)
      got=$(awk -v r="${recs:-0}" -v k="$sent_flows_per_flow_record" 'BEGIN {printf "%.0f", r * k}')
    fi
    kill -TERM "$pid"
    wait "$pid" || true
    pid=
    if [ "$rcv" = nfcapd ]; then
      got=$(nfdump -R "$dir" -I 2>/dev/null | awk '/^Flows:/ {print $2; exit}')
    fi
    awk -v n="$n" -v r="$rcv" -v st="${got:-0}" -v d="$sent_datagrams" -v s="$sent_seconds" -v f="$sent_flows" \
        -v c="$(( t1 - t0 ))" -v tck="$tck" 'BEGIN {
      cpu = c / tck
      printf "%-24s %-9s %10d %10.0f %10d %12.0f %7.1f %8.2f %11.0f\n", n, r, st, st / s, d, f, 100 * (1 - st / f), cpu, (cpu > 0 ? st / cpu : 0)
    }'
  done
done
