#!/bin/bash
# Below saturation and under churn: the figures behind #12's goals 1-3 in
# docs/performance.md, recorded under bench/runs/<UTC date>-below-saturation/.
#
# 1. Fixed rate (open loop, 256 keep-alive connections) at 10, 25 and 50 %
#    of epoll's closed-loop capacity on one server core: server CPU per
#    request (schedstat of every server thread over the measured window),
#    corrected p99/p99.9, and the event loop's counters, for epoll, uring
#    and uring with batched waits (--uring-wait 50us, 100us, 200us).
# 2. Churn (--close, 32 and 256 connections, closed loop): requests/s and
#    server CPU per request for uring, epoll and prefork with either loop;
#    the server core's busy share says whether the load generator keeps up.
#    The same again over a veth pair between two network namespaces, with
#    each side's inbound packets processed on its own CPU (RPS; root only):
#    on loopback the client's CPU runs the server's half of every handshake.
# 3. Open-loop accuracy: schedule lag p99 and achieved rate at 10-80 % of
#    the closed-loop rate, both load engines.
#
# Server on SERVER_CPU (default 1), load generator on CLIENT_CPU (default 0).
# About 5 minutes. Usage: bench/below-saturation.sh   (builds the binary)
#                         OKRING=/path/to/okring bench/below-saturation.sh
set -eu
cd "$(dirname "$0")/.."
if [ -z "${OKRING:-}" ]; then
    cargo build --release --quiet
    OKRING="${CARGO_TARGET_DIR:-target}/release/okring"
fi
SRV=${SERVER_CPU:-1}
CLI=${CLIENT_CPU:-0}
DUR=${DURATION:-4s}
out=${OUT:-bench/runs/$(date -u +%F)-below-saturation}
mkdir -p "$out"
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
md="$out/README.md.tmp"
: >"$md"

# Run time, ns, of every thread of process $1 and of its children (prefork
# workers), from schedstat.
cpu_ns() {
    kids=$(cat /proc/"$1"/task/*/children 2>/dev/null)
    for p in "$1" $kids; do cat /proc/"$p"/task/*/schedstat 2>/dev/null; done |
        awk '{s += $1} END {printf "%d\n", s}'
}

# Steal ticks of all CPUs (/proc/stat): time the hypervisor ran something else.
steal_ticks() { awk '$1 == "cpu" {print $9}' /proc/stat; }

# Busy time of CPU $SRV, in USER_HZ ticks: user, nice, system, irq and
# softirq (on loopback much TCP work runs there); not idle, iowait or steal.
core_ticks() { awk -v c="cpu$SRV" '$1 == c {print $2 + $3 + $4 + $7 + $8}' /proc/stat; }

# Where point() runs: loopback by default; netns_up (bench/netns.sh) moves
# it to a veth pair between two namespaces.
. bench/netns.sh

# point LABEL "LOAD ARGS" SERVE ARGS... : one measured run; prints
# requests, rps, server CPU µs/request, server busy %, p99, p99.9, counters.
point() {
    label=$1 largs=$2
    shift 2
    err="$out/$label.serve.txt"
    "${IN_SRV[@]}" taskset -c "$SRV" "$OKRING" serve --threads 1 --bind "$HOST:0" "$@" 2>"$err" &
    sp=$!
    for _ in $(seq 100); do grep -q 'listening on' "$err" && break; sleep 0.1; done
    port=$(grep -o 'listening on [0-9.]*:[0-9]*' "$err" | head -1 | sed 's/.*://')
    # shellcheck disable=SC2086
    "${IN_CLI[@]}" taskset -c "$CLI" "$OKRING" load "http://$HOST:$port/" $largs --duration 1s --warmup 0s >/dev/null 2>&1
    a=$(cpu_ns $sp)
    ka=$(core_ticks)
    sa=$(steal_ticks)
    t0=$(date +%s%N)
    # shellcheck disable=SC2086
    "${IN_CLI[@]}" taskset -c "$CLI" "$OKRING" load "http://$HOST:$port/" $largs --duration "$DUR" --warmup 0s \
        --json "$out/$label.json" >"$out/$label.load.txt" 2>&1
    t1=$(date +%s%N)
    b=$(cpu_ns $sp)
    kb=$(core_ticks)
    sb=$(steal_ticks)
    kill -TERM $sp
    wait $sp 2>/dev/null || true
    n=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['results']['requests'])" "$out/$label.json")
    rps=$(sed -n 's/^Requests\/sec: *\([0-9.]*\)/\1/p' "$out/$label.load.txt" | cut -d. -f1)
    lat=$(grep -A2 'Latency (corrected\|^  Latency (send' "$out/$label.load.txt" | sed -n 3p)
    p99=$(echo "$lat" | sed -n 's/.* p99 \([^ ]*\) .*/\1/p')
    p999=$(echo "$lat" | sed -n 's/.* p99.9 \([^ ]*\) .*/\1/p')
    lag=$(grep -A2 'Schedule lag' "$out/$label.load.txt" | sed -n 3p | sed -n 's/.* p99 \([^ ]*\) .*/\1/p')
    ctr=$(grep -o 'ring_enters=[0-9]* cqes=[0-9]*\( wait_cap_expired=[0-9]*\)\?\|epoll_waits=[0-9]* epoll_events=[0-9]*' "$err" | tail -1)
    POINT_DIR="$out" python3 - "$label" "$n" "$rps" "$a" "$b" "$t0" "$t1" "$p99" "$p999" "${lag:--}" "$ctr" "$ka" "$kb" "$(getconf CLK_TCK)" "$sa" "$sb" "$(nproc)" <<'EOF' | tee -a "$md"
import json, os, sys
label, n, rps, a, b, t0, t1, p99, p999, lag, ctr, ka, kb, hz, sa, sb, ncpu = sys.argv[1:]
core = (int(kb) - int(ka)) * 1e9 / int(hz)
n = int(n); cpu = int(b) - int(a); wall = int(t1) - int(t0)
per = {}
for kv in ctr.split():
    k, v = kv.split("=")
    per[k] = int(v)
extra = ""
if "ring_enters" in per:
    extra = f"{per['ring_enters'] / n:.2f} enters/req, {per['cqes'] / per['ring_enters']:.1f} CQEs/enter"
    if "wait_cap_expired" in per:
        extra += f", {per['wait_cap_expired'] / per['ring_enters']:.0%} capped"
elif "epoll_waits" in per:
    extra = f"{per['epoll_waits'] / n:.2f} waits/req, {per['epoll_events'] / per['epoll_waits']:.1f} events/wait"
stolen = (int(sb) - int(sa)) * 1e9 / int(hz) / (wall * int(ncpu))
print(f"| {label} | {rps} | {cpu / 1000 / n:.2f} | {core / 1000 / n:.2f} | {core / wall:.0%} | {p99} | {p999} | {lag} | {stolen:.0%} | {extra} |")
# The same figures for bench/goals.py (latency, lag and rate are in $label.json).
with open(f"{os.environ['POINT_DIR']}/{label}.point.json", "w") as f:
    json.dump({"label": label, "requests": n, "server_threads_us_per_req": cpu / 1000 / n,
               "server_core_us_per_req": core / 1000 / n, "server_core_busy": core / wall,
               "steal_share": stolen,
               "counters": per}, f)
EOF
}

header() {
    { echo; echo "### $1"; echo
      echo "| run | req/s | server threads µs/req | server core µs/req | server core busy | p99 | p99.9 | lag p99 | stolen | event loop (whole server life) |"
      echo "|---|---|---|---|---|---|---|---|---|---|"; } | tee -a "$md"
}

header "epoll closed loop (the capacity the rates are fractions of)"
point cap-epoll "-c 256" --mode epoll
cap=$(sed -n 's/^Requests\/sec: *\([0-9]*\).*/\1/p' "$out/cap-epoll.load.txt")

for pct in 10 25 50; do
    rate=$((cap * pct / 100))
    header "fixed rate $rate req/s ($pct % of epoll's closed loop), 256 connections"
    point "r$pct-epoll" "-c 256 -R $rate" --mode epoll
    point "r$pct-uring" "-c 256 -R $rate" --mode uring
    for w in 50us 100us 200us; do
        point "r$pct-uring-wait$w" "-c 256 -R $rate" --mode uring --uring-wait "$w"
    done
done

# churn PREFIX TITLE: the four modes under --close at 32 and 256 connections.
churn() {
    for c in 32 256; do
        header "$2, $c connections"
        for m in epoll uring; do
            point "$1close$c-$m" "-c $c --close" --mode "$m"
        done
        for m in epoll uring; do
            point "$1close$c-prefork-$m" "-c $c --close" --mode prefork --workers 1 --worker-loop "$m"
        done
    done
}

churn "" "churn: --close, closed loop"
if [ "$(id -u)" = 0 ] && command -v ip >/dev/null 2>&1 && netns_up; then
    trap netns_down EXIT
    churn ns- "churn over a veth pair, each side's receive path on its own CPU (RPS): --close"
    netns_down
else
    echo "churn over veth skipped: needs root, ip(8) and network namespaces" | tee -a "$md"
fi

header "open-loop accuracy: schedule lag at fractions of the closed-loop rate (epoll server)"
for engine in uring epoll; do
    point "cap-load-$engine" "-c 256 --engine $engine" --mode epoll
    ccap=$(sed -n 's/^Requests\/sec: *\([0-9]*\).*/\1/p' "$out/cap-load-$engine.load.txt")
    for pct in 10 40 80; do
        point "lag$pct-$engine" "-c 256 -R $((ccap * pct / 100)) --engine $engine" --mode epoll
    done
done

load_after=$(cut -d' ' -f1-3 /proc/loadavg)
{
    echo "# Below saturation and under churn, $(date -u +%F)"
    echo
    echo "- command: \`bench/below-saturation.sh\` (server on CPU $SRV, load generator on CPU $CLI, ${DUR} per point after a 1 s warm-up)"
    echo "- commit: $(git rev-parse HEAD 2>/dev/null || echo unknown)$(git diff --quiet HEAD -- src 2>/dev/null || echo ' (with uncommitted changes in src/)')"
    echo "- okring: $("$OKRING" --version)"
    echo "- kernel: $(uname -r)"
    echo "- CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //') ($(nproc) CPUs)"
    echo "- rustc: $(rustc --version 2>/dev/null || echo 'not on PATH')"
    echo "- load average (1/5/15 min) before: $load_before, after: $load_after"
    echo
    echo "Server threads: the run time of every server thread and child (schedstat)"
    echo "over the measured window, per request; it leaves out softirq time, where"
    echo "on loopback much of the TCP work runs. Server core: all busy time of the"
    echo "server's CPU (/proc/stat, softirq included, which also carries some of the"
    echo "client's receive path), per request and as a share of the window. Latency"
    echo "is corrected for coordinated omission in open-loop rows. Event-loop"
    echo "ratios cover the server's whole life (warm-up included). Stolen: the share"
    echo "of both CPUs' time the hypervisor gave to others during the point (steal,"
    echo "/proc/stat); a point with more than a few per cent is not a result."
    cat "$md"
} >"$out/README.md"
rm -f "$md"
echo "recorded in $out"
