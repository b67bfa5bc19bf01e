#!/bin/sh
# Run every performance goal of docs/performance.md in one go and record it
# under bench/runs/<UTC date>-full/: okring bench (uring, epoll, nginx,
# with wrk as a second load generator) at 256 and 64 connections, 16-deep pipelining, an open-loop
# run at half of epoll's rate, 64 connections (server-bound), 1 and 4 connections, load-generator CPU per
# request (okring load vs wrk), the cost of service-time histograms
# (--no-hist), many keep-alive connections (bench/conn50k.py) and syscalls
# per request (strace -c -f); then below saturation, under churn and the
# open-loop schedule (bench/below-saturation.sh) and an offered-load sweep
# (okring bench --rates auto --slo p99=1ms), and the profiles behind the
# goals it misses (bench/profiles.sh, perf). bench/goals.py then writes
# README.md with the command, host, commit, every goal's figures and met /
# missed: the saturated goals and the below-saturation goals.
#
# Server on SERVER_CPU (default 1), load generator on CLIENT_CPU (default 0).
# About 12 minutes on a 2-CPU machine. Needs python3; nginx, wrk and strace
# are used when installed.
#
# Usage: bench/compare.sh            (builds the release binary)
#        OKRING=/path/to/okring bench/compare.sh
set -eu
cd "$(dirname "$0")/.."
if [ -z "${OKRING:-}" ]; then
    cargo build --release --quiet
    OKRING="${CARGO_TARGET_DIR:-target}/release/okring"
fi
SRV=${SERVER_CPU:-1}
CLI=${CLIENT_CPU:-0}
out=${OUT:-bench/runs/$(date -u +%F)-full}
if [ -n "$(ls -A "$out" 2>/dev/null)" ]; then
    echo "bench/compare.sh: $out is not empty; move it away or set OUT to a new directory" >&2
    exit 2
fi
mkdir -p "$out"
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
# Steal and total ticks of all CPUs (/proc/stat): the share of this
# machine's CPU time its hypervisor gave to others during the run.
ticks() { awk '/^cpu / {print $9, $2 + $3 + $4 + $5 + $6 + $7 + $8 + $9}' /proc/stat; }
ticks_before=$(ticks)
start=$(date +%s)
pin="--server-cpus $SRV --client-cpus $CLI"
peers=""
command -v nginx >/dev/null 2>&1 && peers="nginx"
wrk=""
command -v wrk >/dev/null 2>&1 && wrk="--peers wrk"
modes="uring,epoll${peers:+,$peers}"

echo "== 1/11 closed loop, 256 connections: $modes (+ wrk)"
"$OKRING" bench --modes "$modes" $wrk --connections 256 --duration 5s --warmup 1s \
    --repeat 2 $pin --out "$out/c256"

echo "== 1b/11 closed loop, 64 connections (the server core saturates here, not the client's)"
"$OKRING" bench --modes "$modes" --connections 64 --duration 3s --warmup 1s \
    --repeat 3 $pin --out "$out/c64"

echo "== 2/11 16-deep pipelining, 64 connections"
"$OKRING" bench --modes "uring,epoll${peers:+,$peers}" --pipeline 16 --connections 64 \
    --duration 4s --warmup 1s --repeat 2 $pin --out "$out/pipeline16"

rate=$(python3 -c '
import json, sys
d = json.load(open(sys.argv[1]))
r = [s["requests_per_sec_median"] for s in d["summary"] if s["server"] == "epoll" and s["load"] == "okring"]
print(int(r[0] / 2))' "$out/c256/results.json")
echo "== 3/11 open loop at $rate requests/s (half of epoll's closed-loop rate)"
"$OKRING" bench --modes uring,epoll --rate "$rate" --connections 256 --duration 5s \
    --warmup 1s --repeat 2 $pin --out "$out/rate"

echo "== 4/11 1 and 4 connections"
"$OKRING" bench --modes uring,epoll --connections 1,4 --duration 3s --warmup 1s \
    --repeat 2 $pin --out "$out/few"

echo "== 4b/11 every mode, 64 connections (CPU per request per architecture)"
"$OKRING" bench --modes uring,epoll,prefork,prefork-uring,fork,sequential --connections 64 \
    --duration 3s --warmup 1s --repeat 1 $pin --out "$out/modes"

srv="$OKRING serve --mode uring --threads 1 --bind 127.0.0.1:{port}"
echo "== 5/11 load generator CPU per request: okring load vs wrk, same uring server"
if [ -n "$wrk" ]; then
    python3 bench/ab.py --okring "$OKRING" --server "uring=$srv" --load okring,wrk \
        --duration 4 --repeat 3 --server-cpu "$SRV" --client-cpu "$CLI" \
        --json "$out/client.json" | tee "$out/client.txt"
fi

echo "== 6/11 service-time histograms: uring with and without --no-hist"
python3 bench/ab.py --okring "$OKRING" --server "hist=$srv" --server "nohist=$srv --no-hist" \
    --duration 4 --repeat 4 --server-cpu "$SRV" --client-cpu "$CLI" \
    --json "$out/nohist.json" | tee "$out/nohist.txt"

echo "== 7/11 50k keep-alive connections on one uring worker"
python3 bench/conn50k.py --okring "$OKRING" --conns 50000 --server-cpu "$SRV" \
    --client-cpu "$CLI" --json "$out/conn50k.json" | tee "$out/conn50k.txt" || true

echo "== 8/11 syscalls per request (strace -c -f; strace slows the server, counts only)"
if command -v strace >/dev/null 2>&1; then
    for m in uring epoll; do
        port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
        taskset -c "$SRV" strace -c -f -o "$out/strace-$m.txt" \
            "$OKRING" serve --mode "$m" --threads 1 --bind "127.0.0.1:$port" \
            2> "$out/strace-$m.server.log" &
        spid=$!
        sleep 1
        taskset -c "$CLI" "$OKRING" load "http://127.0.0.1:$port/" -c 256 -d 3s --warmup 0s \
            > /dev/null
        # Signal the server (strace's child), not strace: strace would detach and leave it running.
        kill -TERM $(cat "/proc/$spid/task/$spid/children") 2>/dev/null || kill -TERM "$spid"
        wait "$spid" || true
    done
fi

echo "== 9/11 below saturation (10/25/50 % of epoll's rate), churn (--close), open-loop schedule"
OKRING="$OKRING" SERVER_CPU="$SRV" CLIENT_CPU="$CLI" OUT="$out/below" bench/below-saturation.sh

echo "== 10/11 offered-load sweep, 10-120 % of each server's closed-loop rate, capacity at p99 <= 1 ms"
"$OKRING" bench --modes uring,epoll --rates auto --slo p99=1ms --connections 256 --duration 3s \
    --warmup 1s --repeat 1 $pin --out "$out/sweep"

echo "== 11/11 profiles behind the missed goals (perf; skipped without it)"
OKRING="$OKRING" SERVER_CPU="$SRV" CLIENT_CPU="$CLI" OUT="$out/profiles" bench/profiles.sh

load_after=$(cut -d' ' -f1-3 /proc/loadavg)
elapsed=$(( $(date +%s) - start ))
steal=$(echo "$ticks_before $(ticks)" | awk '{ printf "%.1f", ($4 > $2 ? 100 * ($3 - $1) / ($4 - $2) : 0) }')
python3 bench/goals.py "$out" --okring "$OKRING" --load-before "$load_before" \
    --load-after "$load_after" --elapsed "$elapsed" --steal "$steal" --command "bench/compare.sh"
echo "recorded in $out ($elapsed s)"
