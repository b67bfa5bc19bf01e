#!/bin/bash
# The profiles behind the missed goals of docs/performance.md, recorded
# beside a bench/compare.sh run: where the CPU goes at the points the goals
# are judged (perf record, cpu-clock, call graphs). The saturated ones are
# sampled per CPU (-C), so softirq work on that CPU (on loopback, much of
# the TCP path) is counted.
#
# 1. uring server at 10 % of epoll's closed-loop rate, unbatched and with
#    a 50 us wait cap: perf stat (task clock, context switches) of the
#    server, and perf record of the capped server's own run time: what a
#    sleep costs (goal 1).
# 2. okring load --close, 256 connections: the client CPU (goal 2); and
#    the uring and epoll servers' CPU under --close with 32 connections
#    over a veth pair with RPS (bench/netns.sh; root only), where the
#    server's core is the limit.
# 3. okring load open loop at 80 % of its closed-loop rate: the client CPU
#    (goal 3).
# 4. uring server, closed loop, 256 connections: the server CPU (goal 5).
#
# Each profile is `perf report --children` (inclusive shares, no call
# graph) in profile-<name>.txt, and the perf stat output in stat-<name>.txt.
# Needs perf (Debian: linux-perf); without it, writes a note and exits 0.
#
# Usage: OUT=DIR bench/profiles.sh   (OKRING, SERVER_CPU, CLIENT_CPU as in compare.sh)
set -eu
cd "$(dirname "$0")/.."
if [ -z "${OKRING:-}" ]; then
    cargo build --release --quiet
    OKRING="${CARGO_TARGET_DIR:-target}/release/okring"
fi
SRV=${SERVER_CPU:-1}
CLI=${CLIENT_CPU:-0}
out=${OUT:-bench/runs/$(date -u +%F)-profiles}
mkdir -p "$out"
if ! perf stat -e task-clock true >/dev/null 2>&1; then
    echo "perf is not installed or not permitted here (install linux-perf; needs root or" \
        "kernel.perf_event_paranoid <= 0): no profiles" | tee "$out/profiles-not-run.txt"
    exit 0
fi

# serve LOG ARGS...: start a one-thread server on $SRV; sets $sp and $port.
serve() {
    log=$1
    shift
    "${IN_SRV[@]}" taskset -c "$SRV" "$OKRING" serve --threads 1 --bind "$HOST:0" "$@" 2>"$log" &
    sp=$!
    for _ in $(seq 100); do grep -q 'listening on' "$log" && break; sleep 0.1; done
    port=$(grep -o 'listening on [0-9.]*:[0-9]*' "$log" | head -1 | sed 's/.*://')
}

stop() { kill -TERM "$sp"; wait "$sp" 2>/dev/null || true; }

# Loopback unless netns_up moves the runs onto a veth pair.
. bench/netns.sh

# rps LOAD ARGS...: closed- or open-loop requests/s of one 3 s run.
rps() {
    "${IN_CLI[@]}" taskset -c "$CLI" "$OKRING" load "http://$HOST:$port/" --duration 3s --warmup 0s "$@" |
        sed -n 's/^Requests\/sec: *\([0-9]*\).*/\1/p'
}

# profile NAME TARGET LOAD ARGS...: run the load 5 s and record 3 s of it;
# TARGET is perf's "-C CPU" (all of that CPU, idle and softirq included) or
# "-p PID" (one process's run time).
profile() {
    name=$1 target=$2
    shift 2
    "${IN_CLI[@]}" taskset -c "$CLI" "$OKRING" load "http://$HOST:$port/" --duration 5s --warmup 0s "$@" \
        >"$out/load-$name.txt" 2>&1 &
    lp=$!
    sleep 1
    # shellcheck disable=SC2086
    perf record -q -o "$out/perf-$name.data" $target -g -e cpu-clock -- sleep 3 2>/dev/null
    wait "$lp"
    perf report -i "$out/perf-$name.data" --stdio --children --sort sym -g none \
        --percent-limit 1.5 2>/dev/null | grep -v '^$' >"$out/profile-$name.txt"
    rm -f "$out/perf-$name.data"
    echo "profile-$name.txt: $(grep -c '%' "$out/profile-$name.txt") symbols over 1.5 %"
}

echo "-- epoll closed loop (the rate the 10 % point is a fraction of)"
serve "$out/serve-cap.txt" --mode epoll
cap=$(rps -c 256)
stop
rate=$((cap / 10))
echo "   $cap req/s; 10 % = $rate req/s"

for w in 0 50us; do
    name=r10-uring-wait$w
    echo "-- uring server at $rate req/s, --uring-wait $w"
    serve "$out/serve-$name.txt" --mode uring --uring-wait "$w"
    "${IN_CLI[@]}" taskset -c "$CLI" "$OKRING" load "http://$HOST:$port/" -c 256 -R "$rate" --duration 5s \
        --warmup 0s >"$out/load-$name.txt" 2>&1 &
    lp=$!
    sleep 1
    perf stat -e task-clock,context-switches,cpu-migrations -p "$sp" -o "$out/stat-$name.txt" -- sleep 3
    wait "$lp"
    stop
done
serve "$out/serve-r10-uring-wait50us-rec.txt" --mode uring --uring-wait 50us
profile r10-uring-wait50us "-p $sp" -c 256 -R "$rate"
stop

echo "-- okring load --close, 256 connections, against epoll"
serve "$out/serve-close.txt" --mode epoll
profile close256-client "-C $CLI" -c 256 --close
stop

if [ "$(id -u)" = 0 ] && command -v ip >/dev/null 2>&1 && netns_up; then
    trap netns_down EXIT
    for m in uring epoll; do
        echo "-- $m server under --close, 32 connections, over veth with RPS"
        serve "$out/serve-ns-close32-$m.txt" --mode "$m"
        profile "ns-close32-$m-server" "-C $SRV" -c 32 --close
        stop
    done
    netns_down
else
    echo "-- churn over veth skipped: needs root, ip(8) and network namespaces"
fi

echo "-- okring load open loop at 80 % of its closed-loop rate, against epoll"
serve "$out/serve-lag80.txt" --mode epoll
ccap=$(rps -c 256)
profile lag80-client "-C $CLI" -c 256 -R $((ccap * 80 / 100))
profile closed-client "-C $CLI" -c 256
stop

echo "-- uring server, closed loop, 256 connections"
serve "$out/serve-c256.txt" --mode uring
profile c256-uring-server "-C $SRV" -c 256
stop
echo "profiles in $out"
