#!/usr/bin/env bash
# Install what the test suite drives: curl, ApacheBench (apache2-utils), wrk,
# h2load (nghttp2-client), nginx-light (the peer the bench scripts compare
# with), promtool (prometheus), prlimit (util-linux), HdrHistogram's Java
# tools (libhdrhistogram-java on default-jre-headless) and its Python
# package (hdrhistogram, PyPI), and for the real-kernel matrix
# qemu-system-x86, cpio and busybox-static; iproute2, parallel,
# python3-yaml, bsdutils and man-db for tests/shards.rs and tests/cli.rs; mounts
# tracefs for okring bench's system-call counters; strace for okring trace;
# chromium for tests/html.rs.
# Installs only
# what is missing; needs root (or sudo) when something is.
set -euo pipefail

need=()
command -v curl >/dev/null 2>&1 || need+=(curl)
command -v ab >/dev/null 2>&1 || need+=(apache2-utils)
command -v wrk >/dev/null 2>&1 || need+=(wrk)
command -v h2load >/dev/null 2>&1 || need+=(nghttp2-client)
# tests/metrics.rs reads okring's .hlog with HistogramLogProcessor.
command -v java >/dev/null 2>&1 || need+=(default-jre-headless)
[ -f /usr/share/java/hdrhistogram.jar ] || need+=(libhdrhistogram-java)
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || need+=(nginx-light)
# promtool validates the /metrics exposition in tests/metrics.rs.
command -v promtool >/dev/null 2>&1 || need+=(prometheus)
# prlimit runs the server with a tiny descriptor table in tests/faults.rs.
command -v prlimit >/dev/null 2>&1 || need+=(util-linux)
# The real-kernel matrix (ci/kernels.sh): qemu boots the kernel images with
# an initramfs (cpio) around a static busybox.
command -v qemu-system-x86_64 >/dev/null 2>&1 || need+=(qemu-system-x86)
command -v cpio >/dev/null 2>&1 || need+=(cpio)
{ ldd /bin/busybox 2>&1 || true; } | grep -q 'not a dynamic' || need+=(busybox-static)
# tests/shards.rs: network namespaces as load machines (ip, iproute2), the
# GNU parallel recipe (parallel), the Kubernetes manifest read as YAML
# (python3-yaml), the progress bar seen through a pseudo-terminal (script).
command -v ip >/dev/null 2>&1 || need+=(iproute2)
command -v parallel >/dev/null 2>&1 || need+=(parallel)
python3 -c 'import yaml' >/dev/null 2>&1 || need+=(python3-yaml)
command -v script >/dev/null 2>&1 || need+=(bsdutils)
# tests/trace.rs runs okring trace, which runs the server under strace.
command -v strace >/dev/null 2>&1 || need+=(strace)
# tests/html.rs opens report.html in headless Chromium.
command -v chromium >/dev/null 2>&1 || need+=(chromium)
# tests/cli.rs renders okring's man page with man (man-db).
command -v man >/dev/null 2>&1 || need+=(man-db)

if [ "${#need[@]}" -gt 0 ]; then
    sudo=()
    if [ "$(id -u)" -ne 0 ]; then
        sudo=(sudo)
    fi
    echo "ci/deps.sh: installing ${need[*]}"
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y -q --no-install-recommends "${need[@]}"
fi

# okring bench counts system calls with perf tracepoints, whose ids live in
# tracefs: mount it where the kernel has it and nothing is mounted yet.
if [ -d /sys/kernel/tracing ] && [ ! -d /sys/kernel/tracing/events ]; then
    echo "ci/deps.sh: mounting tracefs on /sys/kernel/tracing"
    sudo=()
    if [ "$(id -u)" -ne 0 ]; then
        sudo=(sudo)
    fi
    "${sudo[@]}" mount -t tracefs nodev /sys/kernel/tracing
fi

# tests/metrics.rs parses /metrics with the reference Python client too,
# and reads okring's histograms with the Python HdrHistogram package.
if ! python3 -c 'import prometheus_client' >/dev/null 2>&1; then
    echo "ci/deps.sh: installing prometheus_client (PyPI)"
    python3 -m pip install -q prometheus_client
fi
if ! python3 -c 'import hdrh' >/dev/null 2>&1; then
    echo "ci/deps.sh: installing hdrhistogram (PyPI)"
    python3 -m pip install -q hdrhistogram
fi

# Rust components for the lint steps.
if command -v rustup >/dev/null 2>&1; then
    installed=$(rustup component list --installed)
    for c in rustfmt clippy; do
        if ! grep -q "^$c" <<<"$installed"; then
            rustup component add "$c"
        fi
    done
fi
