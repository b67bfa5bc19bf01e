#!/bin/sh
# Record an `okring bench` run under bench/runs/<UTC date>/: build the
# release binary (unless OKRING names one), run the bench with the given
# arguments (defaults when none), and write a README.md beside the outputs
# with the exact command, kernel, CPU, rustc, commit and the load average
# before and after (other processes on the machine skew absolute figures).
#
# Usage: bench/record.sh [okring bench options...]
set -eu
cd "$(dirname "$0")/.."
if [ -z "${OKRING:-}" ]; then
    cargo build --release --quiet
    OKRING="${CARGO_TARGET_DIR:-target}/release/okring"
fi
out="bench/runs/$(date -u +%F)"
mkdir -p "$out"
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
"$OKRING" bench --out "$out" "$@"
load_after=$(cut -d' ' -f1-3 /proc/loadavg)
{
    echo "# okring bench run, $(date -u +%F)"
    echo
    echo "- command: \`okring bench --out $out${*:+ $*}\`"
    echo "- commit: $(git rev-parse HEAD 2>/dev/null || echo unknown)$(git diff --quiet HEAD -- src 2>/dev/null || echo ' (with uncommitted changes in src/)')"
    echo "- okring: $("$OKRING" --version)"
    echo "- kernel: $(uname -r)"
    echo "- CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //') ($(nproc) CPUs)"
    echo "- rustc: $(rustc --version 2>/dev/null || echo 'not on PATH')"
    echo "- load average (1/5/15 min) before: $load_before, after: $load_after"
    echo
    echo "Other processes may share this machine; the load average above says how"
    echo "busy it was. Trust the ratios (measured side by side, order alternated)"
    echo "over the absolute figures. See report.md for the table and pinning,"
    echo "results.json for every run, *.svg for the plots, docs/benchmarking.md"
    echo "for how to read them."
} > "$out/README.md"
echo "recorded in $out"
