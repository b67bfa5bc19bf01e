#!/usr/bin/env bash
# The kernel edge is src/sys/: `libc::` appears nowhere else, and `unsafe`
# nowhere else but the SQE pushes of the two io_uring drivers, whose
# soundness rests on the buffers those drivers own (one `unsafe` each).
# Comments are ignored. Exits 1 naming every offending line.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

# The allowed `unsafe` outside src/sys/: FILE:COUNT.
allowed_unsafe="src/server/uring.rs:1 src/load/uring.rs:1"

bad=0
# Code lines (comments stripped) outside src/sys/ that name libc:: or unsafe.
scan() { # PATTERN
    find src -name '*.rs' -not -path 'src/sys/*' -print0 |
        xargs -0 grep -nE "$1" |
        grep -vE '^[^:]+:[0-9]+:\s*//' || true
}
libc_lines=$(scan 'libc::')
if [ -n "$libc_lines" ]; then
    echo "ci/kernel-edge.sh: libc:: outside src/sys/ (move the call into src/sys/):"
    echo "$libc_lines"
    bad=1
fi
unsafe_lines=$(scan '\bunsafe\b')
for f in $(echo "$unsafe_lines" | cut -d: -f1 | sort -u); do
    n=$(echo "$unsafe_lines" | grep -c "^$f:")
    ok=0
    for a in $allowed_unsafe; do
        [ "$a" = "$f:$n" ] && ok=1
    done
    if [ $ok -eq 0 ]; then
        echo "ci/kernel-edge.sh: unsafe outside src/sys/ in $f ($n; allowed: $allowed_unsafe):"
        echo "$unsafe_lines" | grep "^$f:"
        bad=1
    fi
done
# Every allowed file must still have its unsafe (a stale allowance hides a move).
for a in $allowed_unsafe; do
    f=${a%%:*}
    echo "$unsafe_lines" | grep -q "^$f:" || {
        echo "ci/kernel-edge.sh: $f has no unsafe any more: drop it from allowed_unsafe"
        bad=1
    }
done
[ $bad -eq 0 ] && echo "ci/kernel-edge.sh: libc:: and unsafe stay in the kernel edge"
exit $bad
