#!/usr/bin/env bash
# The real-kernel matrix: run ci/kernel-suite.sh on each kernel given.
#
#   ci/kernels.sh [--out DIR] [--timeout SECONDS] [--only SECTIONS] KERNEL...
#
# KERNEL is one of:
#   PATH        a kernel image (bzImage / vmlinuz), booted under
#               qemu-system-x86_64 with an initramfs holding busybox, the
#               release binaries, the integration-test binaries the suite
#               runs and their shared libraries (same paths as here);
#   native      this machine's own kernel, the suite run directly;
#   debian-6.1  Linux 6.1 from Debian's linux-image-6.1.*-cloud-amd64-unsigned
#               package, fetched with `apt-get download` and unpacked with
#               `dpkg-deb -x` into target/kernels/ (never installed);
#   all         the matrix CI runs: ci/kernels/bzImage-5.19,
#               ci/kernels/bzImage-6.0 (provenance in ci/kernels/README.md),
#               debian-6.1 and native.
#
# KVM is used when /dev/kvm boots a guest to its first console line within
# a short probe; otherwise (a nested guest hangs on some hosts) TCG, which
# is 10-30x slower: the VM is for behaviour, never for timing.
#
# The many-connections check (RLIMIT_NOFILE raised in the guest;
# OKRING_CONN50K_N connections, 5000 by default: under TCG 20000 take 8
# minutes and 50000 over 20, see docs/performance.md) runs in the first VM of the list only. --only "conn50k vectors" runs only those sections of the suite (of: modes
# denied engine conn50k faults vectors). Prints one `okring-check: PASS|FAIL|INFO <kernel> <check> ...` line per
# check (the console of each VM is kept in DIR/<kernel>.console), then one
# line per kernel, and exits non-zero when any check failed or a suite did
# not finish. Needs the Debian packages qemu-system-x86, busybox-static and
# cpio (ci/deps.sh installs them).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
repo=$PWD
out=$repo/target/kernels
timeout_s=2400
kernels=()
while [ $# -gt 0 ]; do
    case $1 in
    --out) out=$(realpath -m "$2"); shift 2 ;;
    --timeout) timeout_s=$2; shift 2 ;;
    --only)
        for sec in $2; do
            case $sec in
            modes | denied | engine | conn50k | faults | vectors) ;;
            *) echo "ci/kernels.sh: --only: unknown section '$sec' (of: modes denied engine conn50k faults vectors, space-separated)" >&2; exit 2 ;;
            esac
        done
        export OKRING_SUITE_ONLY=$2
        shift 2
        ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    -*) echo "ci/kernels.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
    all) kernels+=(ci/kernels/bzImage-5.19 ci/kernels/bzImage-6.0 debian-6.1 native); shift ;;
    *) kernels+=("$1"); shift ;;
    esac
done
if [ ${#kernels[@]} -eq 0 ]; then
    echo "ci/kernels.sh: name at least one kernel: an image path, native or debian-6.1 (see --help)" >&2
    exit 2
fi
mkdir -p "$out"

log() { echo "ci/kernels.sh: $*" >&2; }

# --- binaries --------------------------------------------------------------
log "building the release binaries and test binaries"
cargo build --release --bins --quiet
okring=$repo/target/release/okring
deny=$repo/target/release/deny-io-uring
hold=$repo/target/release/hold-conns
# Test executables, by test target name, from cargo's build messages.
declare -A testbin
while IFS=' ' read -r name exe; do
    testbin[$name]=$exe
done < <(cargo test --release --no-run --message-format=json 2>/dev/null |
    python3 -c '
import json, sys
for line in sys.stdin:
    try:
        m = json.loads(line)
    except ValueError:
        continue
    t = m.get("target") or {}
    if m.get("reason") == "compiler-artifact" and m.get("executable") and "test" in t.get("kind", []):
        print(t["name"], m["executable"])
')
for t in serve faults; do
    if [ -z "${testbin[$t]:-}" ]; then
        log "no test binary for tests/$t.rs"
        exit 1
    fi
done
export OKRING_BIN=$okring OKRING_DENY=$deny OKRING_HOLD=$hold
export OKRING_TEST_SERVE=${testbin[serve]} OKRING_TEST_FAULTS=${testbin[faults]}

# --- initramfs -------------------------------------------------------------
initrd=$out/initramfs.gz
build_initramfs() {
    local root=$out/root
    rm -rf "$root"
    # /tmp stays on the initramfs root (itself RAM-backed): a tmpfs mounted
    # there would hide binaries whose path is under /tmp (a clone in /tmp).
    mkdir -p "$root"/{bin,sbin,proc,sys,dev,tmp,etc,root}
    cp /bin/busybox "$root/bin/busybox"
    for applet in $("$root/bin/busybox" --list); do
        [ -e "$root/bin/$applet" ] || ln -s busybox "$root/bin/$applet"
    done
    local prlimit
    prlimit=$(command -v prlimit) || { log "prlimit is missing (apt-get install util-linux)"; exit 1; }
    local files=("$okring" "$deny" "$hold" "$OKRING_TEST_SERVE" "$OKRING_TEST_FAULTS" "$prlimit")
    for f in "${files[@]}"; do
        mkdir -p "$root$(dirname "$f")"
        cp "$f" "$root$f"
        # Shared libraries at the paths ldd names (the loader's too).
        ldd "$f" | grep -o '/[^ ]*' | while read -r lib; do
            mkdir -p "$root$(dirname "$lib")"
            cp -L "$lib" "$root$lib"
        done
    done
    ln -sf "$prlimit" "$root/bin/prlimit" 2>/dev/null || true
    cp ci/kernel-suite.sh "$root/suite.sh"
    echo "root:x:0:0:root:/root:/bin/sh" >"$root/etc/passwd"
    cat >"$root/init" <<EOF
#!/bin/sh
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev 2>/dev/null
ip link set lo up
export PATH=/bin:/sbin OKRING_BIN=$okring OKRING_DENY=$deny OKRING_HOLD=$hold
export OKRING_TEST_SERVE=$OKRING_TEST_SERVE OKRING_TEST_FAULTS=$OKRING_TEST_FAULTS
export OKRING_CONN50K_N=${OKRING_CONN50K_N:-5000}
export OKRING_CONN50K_TIMEOUT=${OKRING_CONN50K_TIMEOUT:-1200}
export OKRING_IN_VM=1 CI=true HOME=/root OKRING_SUITE_ONLY="${OKRING_SUITE_ONLY:-}"
case " \$(cat /proc/cmdline) " in *" okring_conn50k=1 "*) export OKRING_CONN50K=1 ;; esac
sh /suite.sh </dev/null 2>&1
reboot -f
EOF
    chmod +x "$root/init"
    (cd "$root" && find . | cpio -o -H newc --quiet | gzip -1) >"$initrd"
    log "initramfs $(du -h "$initrd" | cut -f1)"
}

# --- KVM probe -------------------------------------------------------------
accel=(-accel tcg,thread=multi)
probe_kvm() {
    [ -w /dev/kvm ] || { log "no writable /dev/kvm: TCG"; return; }
    local con=$out/kvm-probe.console
    rm -f "$con"
    (timeout 20 qemu-system-x86_64 -enable-kvm -cpu host -kernel "$1" \
        -initrd "$initrd" -append "console=ttyS0 panic=-1 rdinit=/bin/true" \
        -display none -monitor none -serial "file:$con" -no-reboot -smp 1 -m 256 \
        >/dev/null 2>&1) 2>/dev/null || true
    if grep -q "Linux version" "$con" 2>/dev/null; then
        log "KVM boots a guest here: using it"
        accel=(-enable-kvm -cpu host)
    else
        log "KVM guest printed nothing within 20 s (nested KVM hangs here): TCG"
    fi
}

# --- kernels ---------------------------------------------------------------
debian_61() {
    local dir=$out/debian-6.1
    local img
    img=$(ls "$dir"/boot/vmlinuz-6.1.* 2>/dev/null | head -1 || true)
    if [ -z "$img" ]; then
        mkdir -p "$dir"
        local pkg
        local pattern='^linux-image-6\.1\.[0-9.-]*-cloud-amd64-unsigned$'
        pkg=$(apt-cache search --names-only "$pattern" | awk '{print $1}' | sort -V | tail -1)
        if [ -z "$pkg" ]; then
            log "apt knows no linux-image-6.1.*-cloud-amd64: running apt-get update"
            apt-get update -q >/dev/null 2>&1 || true
            pkg=$(apt-cache search --names-only "$pattern" | awk '{print $1}' | sort -V | tail -1)
        fi
        [ -n "$pkg" ] || { log "apt knows no linux-image-6.1.*-cloud-amd64 (needs Debian 12's archive)"; return 1; }
        (cd "$dir" && apt-get download "$pkg" >/dev/null 2>&1) ||
            { log "apt-get download $pkg failed"; return 1; }
        dpkg-deb -x "$dir"/"$pkg"_*.deb "$dir"
        img=$(ls "$dir"/boot/vmlinuz-6.1.* | head -1)
    fi
    echo "$img"
}

failed=0
summary=()
vms=0
run_vm() {
    local name=$1 image=$2
    local con=$out/$name.console
    rm -f "$con"
    log "booting $name ($image) under ${accel[*]}"
    local t0=$SECONDS
    # The 50k-connection check runs in the first VM only (minutes under TCG).
    local extra=
    [ "$vms" -gt 0 ] || extra=" okring_conn50k=1"
    vms=$((vms + 1))
    timeout "$timeout_s" qemu-system-x86_64 "${accel[@]}" -kernel "$image" \
        -initrd "$initrd" -append "console=ttyS0 panic=-1 quiet$extra" \
        -display none -monitor none -serial "file:$con" -no-reboot -smp 2 -m 2048 \
        >/dev/null 2>&1 || true
    report "$name" "$con" $((SECONDS - t0))
}

run_native() {
    local con=$out/native.console
    log "running the suite natively on $(uname -r)"
    local t0=$SECONDS
    CI=true timeout "$timeout_s" bash ci/kernel-suite.sh >"$con" 2>&1 || true
    report native "$con" $((SECONDS - t0))
}

report() {
    local name=$1 con=$2 took=$3
    tr -d '\r' <"$con" | grep '^okring-check: ' | sed "s/^okring-check: \([A-Z]*\) /okring-check: \1 $name /" || true
    local pass fail done_fail
    pass=$(tr -d '\r' <"$con" | grep -c '^okring-check: PASS' || true)
    fail=$(tr -d '\r' <"$con" | grep -c '^okring-check: FAIL' || true)
    # The suite's own count too: a kernel message spliced into a console
    # line must not hide a failure.
    done_fail=$(tr -d '\r' <"$con" | sed -n 's/^okring-suite: done pass=[0-9]* fail=\([0-9]*\)$/\1/p' | tail -1)
    if [ -z "$done_fail" ]; then
        summary+=("$name: suite did not finish in ${took} s ($pass passed, $fail failed; console: $con)")
        failed=1
    elif [ "$pass" -eq 0 ]; then
        summary+=("$name: no check ran (${took} s; console: $con)")
        failed=1
    elif [ "$fail" -gt 0 ] || [ "$done_fail" -gt 0 ]; then
        summary+=("$name: $fail of $((pass + fail)) checks failed (suite says fail=$done_fail; ${took} s; console: $con)")
        failed=1
    else
        summary+=("$name: all $pass checks passed (${took} s)")
    fi
}

build_initramfs
probed=0
for k in "${kernels[@]}"; do
    case $k in
    native) run_native ;;
    debian-6.1)
        img=$(debian_61) || { summary+=("debian-6.1: could not fetch the image"); failed=1; continue; }
        [ $probed = 1 ] || { probe_kvm "$img"; probed=1; }
        run_vm linux-6.1 "$img"
        ;;
    *)
        if [ ! -r "$k" ]; then
            summary+=("$k: no such kernel image")
            failed=1
            continue
        fi
        [ $probed = 1 ] || { probe_kvm "$k"; probed=1; }
        name=$(basename "$k")
        name=${name#bzImage-}
        name=${name#vmlinuz-}
        run_vm "linux-$name" "$k"
        ;;
    esac
done
echo
for s in "${summary[@]}"; do
    echo "ci/kernels.sh: $s"
done
exit $failed
