#!/bin/sh
# The per-kernel suite of the real-kernel matrix (ci/kernels.sh): POSIX sh,
# run by busybox inside a VM booted on the kernel under test, or natively.
#
# Environment (ci/kernels.sh sets it): OKRING_BIN (release okring),
# OKRING_DENY (deny-io-uring), OKRING_HOLD (hold-conns), OKRING_TEST_SERVE
# and OKRING_TEST_FAULTS (the integration-test binaries of tests/serve.rs
# and tests/faults.rs); OKRING_IN_VM=1 inside a VM, and OKRING_CONN50K=1
# (from the kernel command line) in the one VM that runs the 50k-connection
# check; OKRING_SUITE_ONLY: space-separated sections to run, of modes denied
# engine conn50k faults vectors (all when unset).
#
# Prints `okring-check: PASS|FAIL|INFO <check> [detail]` per check and
# `okring-suite: done pass=N fail=M` at the end. Every wait is bounded.

OK=${OKRING_BIN:?OKRING_BIN: path of the release okring binary}
DENY=${OKRING_DENY:?OKRING_DENY: path of deny-io-uring}
W=$(mktemp -d /tmp/okring-suite.XXXXXX)
pass=0
fail=0

check() { # check NAME STATUS(0=pass) [DETAIL...]
    name=$1
    st=$2
    shift 2
    if [ "$st" -eq 0 ]; then
        pass=$((pass + 1))
        echo "okring-check: PASS $name $*"
    else
        fail=$((fail + 1))
        echo "okring-check: FAIL $name $*"
    fi
}
info() { echo "okring-check: INFO $*"; }

# want SECTION: whether OKRING_SUITE_ONLY selects it.
want() {
    [ -z "${OKRING_SUITE_ONLY:-}" ] && return 0
    case " $OKRING_SUITE_ONLY " in *" $1 "*) return 0 ;; esac
    return 1
}

kver=$(uname -r)
kmaj=$(echo "$kver" | cut -d. -f1)
kmin=$(echo "$kver" | cut -d. -f2 | sed 's/[^0-9].*//')
knum=$((kmaj * 100 + kmin))
info kernel "$kver ($(uname -m), $(nproc) CPUs)"

# The features a uring worker must report on this kernel, as the start-up
# line names them (Linux 5.19: single-shot recv with buffer select and no
# task-run flags; 6.0: multishot recv and SINGLE_ISSUER; 6.1: DEFER_TASKRUN).
if [ $knum -ge 601 ]; then
    want_tier="multishot recv, SINGLE_ISSUER+DEFER_TASKRUN"
elif [ $knum -ge 600 ]; then
    want_tier="multishot recv, SINGLE_ISSUER,"
else
    want_tier="single-shot recv (5.19 tier), no task-run flags"
fi

# start_server LABEL ARGS... : start okring serve on $BIND (127.0.0.1:0 by
# default), wait ≤ 60 s for the `listening on` line; sets $pid and $port;
# returns 1 if it did not start.
start_server() {
    label=$1
    shift
    err=$W/$label.err
    "$OK" serve --bind "${BIND:-127.0.0.1:0}" --hist-out "$W/$label.hgrm" "$@" 2>"$err" &
    pid=$!
    i=0
    while [ $i -lt 600 ]; do
        if grep -q 'listening on' "$err" 2>/dev/null; then
            port=$(grep -o 'listening on [0-9.]*:[0-9]*' "$err" | head -1 | sed 's/.*://')
            return 0
        fi
        kill -0 $pid 2>/dev/null || break
        sleep 0.1
        i=$((i + 1))
    done
    kill -9 $pid 2>/dev/null
    wait $pid 2>/dev/null
    return 1
}

# stop_server: SIGTERM, wait ≤ 30 s; sets $code (exit status; 124 if it
# had to be killed).
stop_server() {
    kill -TERM $pid
    i=0
    while kill -0 $pid 2>/dev/null && [ $i -lt 300 ]; do
        sleep 0.1
        i=$((i + 1))
    done
    if kill -0 $pid 2>/dev/null; then
        kill -9 $pid
        wait $pid
        code=124
    else
        wait $pid
        code=$?
    fi
}

# The `N requests in` figure and the error total of an okring load summary.
load_requests() { sed -n 's/^ *\([0-9]*\) requests in .*/\1/p' "$1" | head -1; }
load_errors() {
    sed -n 's/^ *Errors: //p' "$1" | tr ',' '\n' | awk '{s += $2} END {print s + 0}'
}
# A counter from the server's `okring: counters:` line (0 when absent).
counter() {
    v=$(grep '^okring: counters:' "$1" | tr ' ' '\n' | sed -n "s/^$2=//p")
    echo "${v:-0}"
}

# run_load LABEL LOAD-ARGS... : one bounded okring load run against $port;
# checks 0 errors and > 0 requests; adds its count to $client_total.
run_load() {
    llabel=$1
    shift
    lout=$W/$label-$llabel.load
    timeout 60 "$OK" load "http://127.0.0.1:$port/" --warmup 0s -d 2s --timeout 10s "$@" >"$lout" 2>&1
    lst=$?
    n=$(load_requests "$lout")
    e=$(load_errors "$lout")
    n=${n:-0}
    client_total=$((client_total + n))
    [ $lst -eq 0 ] && [ "$n" -gt 0 ] && [ "$e" -eq 0 ]
    check "$label/load-$llabel" $? "exit=$lst requests=$n errors=$e"
    [ $lst -eq 0 ] || sed 's/^/    /' "$lout"
}

# mode_suite LABEL CONNS ARGS... : start, load (keep-alive, pipelined x16,
# --close), SIGTERM, counts and the .hgrm.
mode_suite() {
    label=$1
    conns=$2
    shift 2
    if ! start_server "$label" --threads 2 "$@"; then
        check "$label/start" 1 "$(tr '\n' ' ' <"$W/$label.err")"
        return
    fi
    line=$(grep 'listening on' "$W/$label.err" | head -1)
    check "$label/start" 0 "$line"
    case "$*" in
    *uring* | *auto*)
        case "$line" in
        *"$want_tier"*) check "$label/tier" 0 "names: $want_tier" ;;
        *) check "$label/tier" 1 "want \"$want_tier\" in: $line" ;;
        esac
        ;;
    esac
    client_total=0
    run_load keepalive -c "$conns"
    run_load pipeline16 -c "$conns" --pipeline 16
    run_load close -c "$conns" --close
    stop_server
    e=$W/$label.err
    reqs=$(counter "$e" requests)
    grep -q '^okring: .* mode stopped after' "$e"
    summary=$?
    [ $code -eq 0 ] && [ $summary -eq 0 ]
    check "$label/sigterm" $? "exit=$code summary=$([ $summary -eq 0 ] && echo yes || echo no)"
    [ "$reqs" -eq "$client_total" ]
    check "$label/counts" $? "server requests=$reqs client requests=$client_total"
    total=$(sed -n 's/.*Total count *= *\([0-9]*\)\].*/\1/p' "$W/$label.hgrm" 2>/dev/null)
    [ "${total:-x}" = "$reqs" ]
    check "$label/hgrm" $? "Total count=${total:-none} requests=$reqs"
    [ $code -eq 0 ] || sed 's/^/    /' "$e"
}

if want modes; then
    mode_suite uring 8 --mode uring
    # Batched waits: the minimum-wait timeout on 6.12 and later, a timed
    # wait before; 64 CQEs is more than 8 connections can have in flight,
    # so every batched wait must end at its cap and be counted.
    mode_suite uring-batched 8 --mode uring --uring-wait 200us --uring-wait-cqes 64
    case $(uname -r) in
    5.* | 6.[0-9].* | 6.1[01].*) flavour="timed wait" ;;
    *) flavour="min-wait" ;;
    esac
    grep 'listening on' "$W/uring-batched.err" | grep -q "for 64 CQEs ($flavour)"
    check uring-batched/flavour $? "want \"$flavour\" in: $(grep 'listening on' "$W/uring-batched.err" | head -1)"
    expired=$(counter "$W/uring-batched.err" wait_cap_expired)
    [ "$expired" -gt 0 ]
    check uring-batched/cap-counted $? "wait_cap_expired=$expired"
    mode_suite epoll 8 --mode epoll
    mode_suite auto 8 --mode auto
    mode_suite prefork-uring 8 --mode prefork --workers 2 --worker-loop uring
    mode_suite prefork-epoll 8 --mode prefork --workers 2 --worker-loop epoll
    mode_suite fork 4 --mode fork
    mode_suite sequential 1 --mode sequential
    # auto on this kernel chooses uring (io_uring works) ...
    grep -q 'uring mode, chosen by --mode auto' "$W/auto.err"
    check auto/chooses-uring $? "$(grep 'listening on' "$W/auto.err" | head -1)"
fi

# ... and epoll, saying why, under a seccomp filter that denies io_uring.
want denied && for errno in EPERM ENOSYS; do
    label=auto-denied-$errno
    err=$W/$label.err
    "$DENY" --errno $errno -- "$OK" serve --bind 127.0.0.1:0 --threads 1 --mode auto 2>"$err" &
    pid=$!
    i=0
    while [ $i -lt 600 ] && ! grep -q 'listening on' "$err"; do
        kill -0 $pid 2>/dev/null || break
        sleep 0.1
        i=$((i + 1))
    done
    port=$(grep -o 'listening on [0-9.]*:[0-9]*' "$err" | head -1 | sed 's/.*://')
    client_total=0
    if [ -n "$port" ]; then run_load keepalive -c 2; fi
    stop_server
    grep -q 'auto mode: using epoll because' "$err" && grep -q "$errno" "$err" &&
        grep -q 'epoll mode, chosen by --mode auto' "$err" && [ $code -eq 0 ]
    check "$label/falls-back" $? "exit=$code: $(grep 'auto mode' "$err" | head -1)"
done

# --mode uring under the filter exits non-zero with one line naming the cause.
if want denied; then
err=$W/uring-denied.err
timeout 30 "$DENY" --errno EPERM -- "$OK" serve --bind 127.0.0.1:0 --threads 1 --mode uring 2>"$err"
st=$?
[ $st -ne 0 ] && [ $st -ne 124 ] && [ "$(wc -l <"$err")" -eq 1 ] && grep -q 'EPERM' "$err"
check uring-denied/one-line-error $? "exit=$st: $(head -1 "$err")"
fi

# okring load's uring engine on this kernel (no fallback notice).
if ! want engine; then
    :
elif start_server load-engine --threads 1 --mode epoll; then
    out=$W/load-engine.out
    timeout 60 "$OK" load "http://127.0.0.1:$port/" --engine uring -c 8 -d 2s --warmup 0s >"$out" 2>&1
    st=$?
    stop_server
    grep -q 'engine uring' "$out" && ! grep -q 'no io_uring' "$out" && [ $st -eq 0 ] &&
        [ "$(load_errors "$out")" -eq 0 ]
    check load/engine-uring $? "exit=$st $(grep 'engine' "$out" | head -1)"
else
    check load/engine-uring 1 "epoll server did not start"
fi

# Many (OKRING_CONN50K_N, 5000 by default; 50000 for the full figure)
# keep-alive connections on one uring worker (inside a VM, where
# RLIMIT_NOFILE can be raised): hold-conns opens them 128 at a time, each
# answered before the next batch, towards eight addresses of 127.0.0.0/8
# with the ephemeral port range widened to 1024-65535 (each destination has
# its own ports, and connect(2)'s search for a free port grows with how full
# the range is for that destination); with all of them open
# the server's RSS is read, then every connection is asked once more. The
# memory figure is valid in a VM; its timings are not.
conns50k() {
    n=${OKRING_CONN50K_N:-5000}
    ulimit -n 120000 || { check conn50k/rlimit 1 "cannot raise RLIMIT_NOFILE"; return; }
    echo 65535 >/proc/sys/net/core/somaxconn
    echo "1024 65535" >/proc/sys/net/ipv4/ip_local_port_range
    label=conn50k
    BIND=0.0.0.0:0
    start_server $label --threads 1 --mode uring --idle-timeout 3600s --header-timeout 3600s
    started=$?
    unset BIND
    if [ $started -ne 0 ]; then
        check conn50k/start 1 "$(tr '\n' ' ' <"$W/$label.err")"
        return
    fi
    # Warm-up: touch the provided buffers and the allocator's arenas.
    timeout 60 "$OK" load "http://127.0.0.1:$port/" -c 8 -d 1s --warmup 0s >/dev/null 2>&1
    idle=$(awk '/^VmRSS:/ {print $2}' /proc/$pid/status)
    hout=$W/conn50k.hold
    : >"$hout"
    t0=$(date +%s)
    dests=
    for a in 1 2 3 4 5 6 7 8; do dests="$dests 127.0.0.$a:$port"; done
    # shellcheck disable=SC2086
    timeout "${OKRING_CONN50K_TIMEOUT:-1200}" "${OKRING_HOLD:?}" --conns $n --hold 5 $dests >"$hout" 2>&1 &
    hpid=$!
    # Wait (bounded by hold-conns' own timeout) for every connection to be
    # open and answered, then read the RSS while they are held.
    full=
    while kill -0 $hpid 2>/dev/null; do
        if grep -q 'connections open, every one answered' "$hout"; then
            full=$(awk '/^VmRSS:/ {print $2}' /proc/$pid/status)
            break
        fi
        sleep 0.2
    done
    wait $hpid
    hst=$?
    took=$(($(date +%s) - t0))
    stop_server
    e=$W/$label.err
    acc=$(counter "$e" conns_accepted)
    per=$(((${full:-0} - ${idle:-0}) * 1024 / n))
    info conn50k "server VmRSS idle ${idle} KiB, with $n connections ${full:-?} KiB: $per B per connection above idle (VM; ${took} s, not a timing)"
    [ $hst -eq 0 ] && [ "$acc" -ge $n ]
    check conn50k/answered $? "hold-conns exit=$hst accepted=$acc: $(tail -1 "$hout")"
    [ -n "$full" ] && [ $per -gt 0 ]
    check conn50k/rss-per-conn $? "$per B per connection above idle"
    [ $code -eq 0 ]
    check conn50k/sigterm $? "exit=$code"
}
if ! want conn50k; then
    :
elif [ "${OKRING_IN_VM:-0}" != 1 ]; then
    info conn50k "not run natively: it needs RLIMIT_NOFILE above 100000 (it runs in the VM)"
elif [ "${OKRING_CONN50K:-0}" != 1 ]; then
    info conn50k "runs in the first VM of the matrix only"
else
    conns50k
fi

# run_tests LABEL BINARY FILTER... : integration tests of the project run
# on this kernel (they spawn the same okring binary); one check per test.
run_tests() {
    tlabel=$1
    bin=$2
    shift 2
    tout=$W/$tlabel.tests
    timeout 900 "$bin" --test-threads 2 "$@" >"$tout" 2>&1
    tst=$?
    grep -E '^test .* \.\.\. (ok|FAILED)$' "$tout" | while read -r _ tname _ res; do
        if [ "$res" = ok ]; then echo "okring-check: PASS $tlabel/$tname"; else echo "okring-check: FAIL $tlabel/$tname"; fi
    done
    n_ok=$(grep -cE '^test .* \.\.\. ok$' "$tout")
    n_bad=$(grep -cE '^test .* \.\.\. FAILED$' "$tout")
    pass=$((pass + n_ok))
    fail=$((fail + n_bad))
    # A filter that matches nothing is a failure, not "0 passed".
    grep -q '^test result: ok' "$tout" && [ "$n_ok" -gt 0 ]
    check "$tlabel/result" $? "exit=$tst ok=$n_ok failed=$n_bad"
    [ $tst -eq 0 ] || sed -n '/^failures:/,$p' "$tout" | head -60 | sed 's/^/    /'
}

# The fault cases whose outcome depends on the kernel: 8 provided buffers
# (ENOBUFS recovered), an 8-entry CQ (overflow), EMFILE back-off, a client
# that resets mid-response; and the seccomp fallback.
want faults && run_tests faults "${OKRING_TEST_FAULTS:?}" tiny_buffer_ring tiny_cq fd_exhaustion reset_mid_response seccomp
# The request vectors of shared/cases (V01-V28), whole and split, every mode.
want vectors && run_tests vectors "${OKRING_TEST_SERVE:?}" v0 v1 v2

echo "okring-suite: done pass=$pass fail=$fail"
rm -rf "$W"
