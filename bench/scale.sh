#!/bin/sh
# Scale the server from 1 to 16 workers: for N in 1 2 4 8 16, one
# `okring bench` with the server on CPUs 0..N-1 (so N worker threads, one
# per CPU, and nginx with N worker processes) and the load generator on
# the CPUs above them (at most CLIENT_MAX of them, default 8), recorded under
# bench/runs/<UTC date>-scale/wN/, then one table of requests/s and server
# CPU per request per N and mode.
#
# A step runs only if the machine has N server CPUs plus at least
# CLIENT_MIN (default N/2, at least 1) CPUs for the load generator: on a
# 16-core machine that is N = 1..8 (N = 16 needs a bigger machine, or a
# second machine for the load). Server and client CPUs never overlap.
#
# Usage: bench/scale.sh [okring bench options, e.g. --modes uring,epoll,nginx]
#        OKRING=/path/to/okring bench/scale.sh
set -eu
cd "$(dirname "$0")/.."
if [ -z "${OKRING:-}" ]; then
    cargo build --release --quiet
    OKRING="${CARGO_TARGET_DIR:-target}/release/okring"
fi
cpus=$(nproc)
client_max=${CLIENT_MAX:-8}
out=${OUT:-bench/runs/$(date -u +%F)-scale}
mkdir -p "$out"
for n in 1 2 4 8 16; do
    min=${CLIENT_MIN:-$(( n / 2 > 0 ? n / 2 : 1 ))}
    free=$(( cpus - n ))
    if [ "$free" -lt "$min" ]; then
        echo "== N=$n skipped: needs $n server CPUs + $min client CPUs, this machine has $cpus"
        continue
    fi
    nc=$(( free < client_max ? free : client_max ))
    server="0-$(( n - 1 ))"
    client="$n-$(( n + nc - 1 ))"
    conns=$(( 256 * nc > 256 * n ? 256 * nc : 256 * n ))
    echo "== N=$n: server CPUs $server, client CPUs $client, $conns connections"
    "$OKRING" bench --server-cpus "$server" --client-cpus "$client" --connections "$conns" \
        --duration 5s --warmup 2s --repeat 2 --out "$out/w$n" "$@"
done
python3 - "$out" <<'EOF'
import json, os, sys
out = sys.argv[1]
rows = []
for d in sorted(os.listdir(out), key=lambda s: int(s[1:]) if s[1:].isdigit() else 0):
    p = os.path.join(out, d, "results.json")
    if not os.path.exists(p):
        continue
    for s in json.load(open(p))["summary"]:
        if s["load"] == "okring":
            rows.append((d[1:], s["server"], s["requests_per_sec_median"], s["server_cpu_us_per_req_median"],
                         s["server_cpu_util_median"]))
lines = ["| workers | server | req/s | server CPU µs/req | server CPU |", "|---:|---|---:|---:|---:|"]
lines += [f"| {n} | {m} | {r:.0f} | {c:.2f} | {u * 100:.0f} % |" for n, m, r, c, u in rows]
text = "\n".join(lines)
print(text)
with open(os.path.join(out, "README.md"), "w") as f:
    f.write(f"# okring scaling run\n\n- kernel: {os.uname().release}, CPUs: {os.cpu_count()}\n"
            "- server CPU 100 % = one CPU busy; per-N details in wN/report.md\n\n" + text + "\n")
EOF
