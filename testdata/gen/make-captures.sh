#!/usr/bin/env bash
# Regenerates testdata/captures/*.pcap: export datagrams of REAL flow
# exporters (softflowd, pmacctd nfprobe/sfprobe, fprobe) fed with the
# deterministic synthetic traffic of testdata/gen/trafficgen.
#
# Usage, as root, from the repository root:
#
#	bash testdata/gen/make-captures.sh            # everything
#	bash testdata/gen/make-captures.sh softflowd  # only some exporters
#	                                              # (softflowd, pmacct, fprobe)
#
# Needs: go, softflowd, pmacct (pmacctd), fprobe, tcpreplay, dumpcap, tshark,
# capinfos, iproute2, python3. On Debian 12:
#	apt-get install -y softflowd pmacct fprobe tcpreplay tshark iproute2
#
# Safety: every exported datagram goes to 127.0.0.1 and is captured on the
# loopback interface. fprobe can only capture live, so it runs inside a
# private network namespace (created here, deleted on exit) where tcpreplay
# injects the traffic into a veth pair whose both ends live in that
# namespace; nothing touches the host's interfaces. The synthetic traffic
# only uses documentation addresses (192.0.2.0/24, 198.51.100.0/24,
# 203.0.113.0/24, 2001:db8::/32).
#
# This script is not part of the test suite. It is idempotent: each run
# rewrites the captures. softflowd captures are deterministic except for the
# capture timestamps of the export datagrams; pmacct (random sampling,
# wall-clock export headers) and fprobe (live capture) differ slightly from
# run to run.
set -euo pipefail

if [[ $EUID -ne 0 ]]; then
	echo "make-captures.sh: must run as root (dumpcap on lo, ip netns)" >&2
	exit 1
fi
if [[ ! -f go.mod || ! -d testdata/gen/trafficgen ]]; then
	echo "make-captures.sh: run from the repository root" >&2
	exit 1
fi
for tool in go softflowd pmacctd fprobe tcpreplay dumpcap tshark capinfos ip python3; do
	command -v "$tool" >/dev/null || { echo "make-captures.sh: missing $tool" >&2; exit 1; }
done

OUT=testdata/captures
TRAFFIC=$OUT/traffic.pcap
WORK=$(mktemp -d /tmp/np-captures.XXXXXX)
NS=np-fprobe-$$
PIDS=()
declare -A DONE=()
WANT=${*:-softflowd pmacct fprobe}

cleanup() {
	local rc=$?
	set +e
	local live=()
	for pid in "${PIDS[@]}"; do
		[[ -n ${DONE[$pid]:-} ]] && continue
		kill -0 "$pid" 2>/dev/null && live+=("$pid") && kill "$pid" 2>/dev/null
	done
	[[ ${#live[@]} -gt 0 ]] && sleep 0.5
	for pid in "${live[@]}"; do
		kill -0 "$pid" 2>/dev/null && kill -9 "$pid" 2>/dev/null
	done
	if ip netns list | grep -qw "$NS"; then
		ip netns delete "$NS"
	fi
	rm -f "/var/run/fprobe[np$$].pid"
	rm -rf "$WORK"
	exit "$rc"
}
trap cleanup EXIT INT TERM

log() { printf '== %s\n' "$*" >&2; }

# start_bg CMD...: runs CMD in its own session (dumpcap got killed when it
# shared a process group with an exiting pmacctd), records its pid in PIDS
# and in $BGPID.
start_bg() {
	setsid "$@" &
	BGPID=$!
	PIDS+=("$BGPID")
}

# stop PID [SIGNAL]: signals PID and waits for it.
stop() {
	local pid=$1 sig=${2:-TERM}
	if kill -0 "$pid" 2>/dev/null; then
		kill "-$sig" "$pid" 2>/dev/null || true
	fi
	wait "$pid" 2>/dev/null || true
	DONE[$pid]=1
}

# The UDP sink keeps the collector port open so exporters' connected sockets
# don't get ICMP port unreachable / ECONNREFUSED.
SINK='import socket,sys
s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)
s.bind(("127.0.0.1",int(sys.argv[1])))
while True: s.recv(65535)'

# capture_start PORT FILE [NETNS]: starts a UDP sink and dumpcap on lo.
capture_start() {
	local port=$1 file=$2 netns=${3:-}
	local pre=()
	[[ -n $netns ]] && pre=(ip netns exec "$netns")
	rm -f "$file"
	start_bg "${pre[@]}" python3 -c "$SINK" "$port"
	SINKPID=$BGPID
	start_bg "${pre[@]}" dumpcap -q -P -i lo -f "udp dst port $port" -w "$file" 2>>"$WORK/dumpcap.log"
	DUMPPID=$BGPID
	# dumpcap writes the file header once the capture (and its filter) is
	# set up; give it one more second before the exporter starts.
	for _ in $(seq 100); do
		if [[ -s $file ]]; then break; fi
		sleep 0.1
	done
	sleep 1
	[[ -s $file ]] || { echo "dumpcap did not start for port $port" >&2; exit 1; }
}

capture_stop() {
	sleep 1
	stop "$DUMPPID" INT
	stop "$SINKPID" TERM
	chmod 0644 "$1"
}

# summary FILE PORT DISSECTOR: prints datagrams and record counts.
summary() {
	local f=$1 port=$2 diss=$3 n v4 v6
	n=$(capinfos -c -M "$f" | awk '/Number of packets/{print $NF}')
	if [[ $diss == sflow ]]; then
		v4=$(tshark -r "$f" -d "udp.port==$port,sflow" -T fields -e sflow_245.sampletype 2>/dev/null | tr ',' '\n' | grep -c '^1$' || true)
		v6=$(tshark -r "$f" -d "udp.port==$port,sflow" -T fields -e sflow_245.sampletype 2>/dev/null | tr ',' '\n' | grep -c '^2$' || true)
		printf '%-32s port %-5s datagrams %-4s flow_samples %-5s counter_samples %s\n' "$(basename "$f")" "$port" "$n" "$v4" "$v6"
	else
		v4=$(tshark -r "$f" -d "udp.port==$port,cflow" -T fields -e cflow.srcaddr 2>/dev/null | tr ',' '\n' | grep -c . || true)
		v6=$(tshark -r "$f" -d "udp.port==$port,cflow" -T fields -e cflow.srcaddrv6 2>/dev/null | tr ',' '\n' | grep -c . || true)
		printf '%-32s port %-5s datagrams %-4s ipv4_records %-5s ipv6_records %s\n' "$(basename "$f")" "$port" "$n" "$v4" "$v6"
	fi
}

SUMMARY=()

mkdir -p "$OUT"
log "traffic: go run ./testdata/gen/trafficgen -o $TRAFFIC"
go run ./testdata/gen/trafficgen -o "$TRAFFIC"
chmod 0644 "$TRAFFIC"
cp "$TRAFFIC" "$WORK/traffic.pcap"

# ---------------------------------------------------------------- softflowd
# -r FILE: read the pcap; -a: use packet timestamps as the clock (export
# header time and sysUptime follow the capture, 2026-11-01T10:00Z);
# -c none: no control socket (with one, softflowd 1.1.0 blocks in accept()
# before reading the file); it exports every flow on EOF and exits.
softflowd_run() {
	local name=$1 port=$2
	shift 2
	local file=$OUT/$name.pcap
	log "softflowd $* -> $file (port $port)"
	capture_start "$port" "$file"
	# Run from $WORK: softflowd exports the -r argument as IF_NAME in its
	# options record, so keep it a stable "traffic.pcap".
	(cd "$WORK" && softflowd -d -a -c none -p "$WORK/softflowd.pid" -r traffic.pcap \
		-n "127.0.0.1:$port" "$@" >"$WORK/$name.log" 2>&1)
	capture_stop "$file"
	SUMMARY+=("$(summary "$file" "$port" cflow)")
}

if [[ " $WANT " == *" softflowd "* ]]; then
	softflowd_run softflowd-v5             29055 -v 5
	softflowd_run softflowd-v9             29059 -v 9
	softflowd_run softflowd-ipfix          29010 -v 10
	softflowd_run softflowd-ipfix-biflow   29011 -v 10 -b
	softflowd_run softflowd-v9-sampled     29069 -v 9 -s 10
	softflowd_run softflowd-ipfix-sampled  29020 -v 10 -s 10
fi

# ------------------------------------------------------------------ pmacct
# pmacctd reads the pcap (pcap_savefile) and exits when done; the nfprobe
# timeouts are evaluated against packet timestamps, so the 150 s capture is
# split by maxlife=60 (active) and udp=30 (inactive) timeouts.
PM_TIMEOUTS='tcp=60:tcp.rst=5:tcp.fin=5:udp=30:icmp=30:general=60:maxlife=60:expint=5'
PM_AGG='src_host, dst_host, src_port, dst_port, proto, tos, tcpflags, vlan, src_mac, dst_mac'

pmacct_run() {
	local name=$1 port=$2 wait=$3 conf=$WORK/$1.conf
	local file=$OUT/$name.pcap
	{
		echo "daemonize: false"
		echo "pcap_savefile: $WORK/traffic.pcap"
		cat
	} >"$conf"
	log "pmacctd ($name) -> $file (port $port)"
	capture_start "$port" "$file"
	if [[ $wait == 0 ]]; then
		start_bg pmacctd -f "$conf" >>"$WORK/$name.log" 2>&1
		local pm=$BGPID
		for _ in $(seq 600); do kill -0 "$pm" 2>/dev/null || break; sleep 0.1; done
		stop "$pm" INT
	else
		# sfprobe: keep the daemon alive after the file so that the
		# 20 s (wall clock) counter poller fires a couple of times, then
		# stop it with SIGINT.
		echo "pcap_savefile_wait: true" >>"$conf"
		start_bg pmacctd -f "$conf" >>"$WORK/$name.log" 2>&1
		local pm=$BGPID
		sleep "$wait"
		stop "$pm" INT
	fi
	capture_stop "$file"
	if [[ $name == *sflow* ]]; then
		SUMMARY+=("$(summary "$file" "$port" sflow)")
	else
		SUMMARY+=("$(summary "$file" "$port" cflow)")
	fi
}

if [[ " $WANT " == *" pmacct "* ]]; then
	pmacct_run pmacct-v5 29155 0 <<EOF
plugins: nfprobe
nfprobe_receiver: 127.0.0.1:29155
nfprobe_version: 5
nfprobe_engine: 1:2
nfprobe_timeouts: $PM_TIMEOUTS
EOF
	pmacct_run pmacct-v9 29159 0 <<EOF
plugins: nfprobe
nfprobe_receiver: 127.0.0.1:29159
nfprobe_source_ip: 127.0.0.1
nfprobe_version: 9
nfprobe_engine: 100
nfprobe_timeouts: $PM_TIMEOUTS
aggregate: $PM_AGG
EOF
	pmacct_run pmacct-ipfix 29110 0 <<EOF
plugins: nfprobe
nfprobe_receiver: 127.0.0.1:29110
nfprobe_source_ip: 127.0.0.1
nfprobe_version: 10
nfprobe_engine: 100
nfprobe_timeouts: $PM_TIMEOUTS
aggregate: $PM_AGG
EOF
	pmacct_run pmacct-v9-sampled 29169 0 <<EOF
plugins: nfprobe
nfprobe_receiver: 127.0.0.1:29169
nfprobe_source_ip: 127.0.0.1
nfprobe_version: 9
nfprobe_engine: 101
sampling_rate: 10
nfprobe_timeouts: $PM_TIMEOUTS
aggregate: $PM_AGG
EOF
	pmacct_run pmacct-ipfix-sampled 29120 0 <<EOF
plugins: nfprobe
nfprobe_receiver: 127.0.0.1:29120
nfprobe_source_ip: 127.0.0.1
nfprobe_version: 10
nfprobe_engine: 101
sampling_rate: 10
nfprobe_timeouts: $PM_TIMEOUTS
aggregate: $PM_AGG
EOF
	pmacct_run pmacct-sflow 29143 45 <<EOF
plugins: sfprobe
sfprobe_receiver: 127.0.0.1:29143
sfprobe_agentip: 127.0.0.1
sfprobe_agentsubid: 1402
sampling_rate: 10
EOF
fi

# ------------------------------------------------------------------ fprobe
# fprobe only captures live: replay the traffic at 2x speed into a veth pair
# inside a private namespace, with fprobe listening on the other end and
# exporting to 127.0.0.1 of that namespace, where dumpcap captures it.
# Timeouts (real time): idle 15 s, active 30 s, so the 45 s gap (22.5 s at
# 2x) and the ~160 s long-lived flows (80 s at 2x) are split.
if [[ " $WANT " == *" fprobe "* ]]; then
	port=29255
	file=$OUT/fprobe-v5.pcap
	log "fprobe (namespace $NS) -> $file (port $port)"
	ip netns add "$NS"
	ip -n "$NS" link set lo up
	ip -n "$NS" link add vethA mtu 9000 type veth peer name vethB mtu 9000
	# No IPv6 on the veths: no router solicitations / MLD reports.
	ip netns exec "$NS" sysctl -q -w net.ipv6.conf.all.disable_ipv6=1 \
		net.ipv6.conf.default.disable_ipv6=1 \
		net.ipv6.conf.vethA.disable_ipv6=1 net.ipv6.conf.vethB.disable_ipv6=1
	ip -n "$NS" link set vethA up
	ip -n "$NS" link set vethB up
	capture_start "$port" "$file" "$NS"
	# -f ip: fprobe assumes a 14-byte link header (-K), so tagged frames
	# would be misparsed; -x 1:2: input/output ifIndex; -l 2:ID: log to
	# stdout and stay in the foreground.
	start_bg ip netns exec "$NS" fprobe -i vethB -f ip -x 1:2 -s 1 -d 15 -e 30 \
		-l "2:np$$" "127.0.0.1:$port" >"$WORK/fprobe.log" 2>&1
	fp=$BGPID
	sleep 2
	ip netns exec "$NS" tcpreplay -q -i vethA --multiplier=2 "$WORK/traffic.pcap" >"$WORK/tcpreplay.log" 2>&1
	# fprobe does not flush its cache on SIGTERM: wait until every flow
	# has idled out and the datagram count stays the same for 20 s.
	last=-1 stable=0
	for _ in $(seq 180); do
		sleep 1
		n=$(capinfos -c -M "$file" 2>/dev/null | awk '/Number of packets/{print $NF}')
		if [[ $n == "$last" ]]; then stable=$((stable + 1)); else stable=0; last=$n; fi
		[[ $stable -ge 20 ]] && break
	done
	stop "$fp" TERM
	capture_stop "$file"
	ip netns delete "$NS"
	SUMMARY+=("$(summary "$file" "$port" cflow)")
fi

log "summary"
printf '%s\n' "${SUMMARY[@]}"
