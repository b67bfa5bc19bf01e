#!/usr/bin/env bash
# The Rust version Cargo.toml claims (rust-version) builds every target
# with the locked dependencies: install that toolchain (minimal profile)
# with rustup and build with it. Fails if the claim is false in either
# direction we can see: a dependency declaring a newer rust-version
# (computed from cargo metadata first), or
# code that does not compile on the claimed version.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
msrv=$(sed -n 's/^rust-version *= *"\(.*\)"/\1/p' Cargo.toml)
[ -n "$msrv" ] || { echo "ci/msrv.sh: no rust-version in Cargo.toml" >&2; exit 1; }
# What the locked dependency graph for this host declares: the highest
# rust-version of any package cargo would build here (cargo metadata,
# resolved for the host target). A claim below it is false before anything
# is compiled.
host=$(rustc -vV | sed -n 's/^host: //p')
need=$(cargo metadata --format-version 1 --locked --filter-platform "$host" | python3 -c '
import json, sys
doc = json.load(sys.stdin)
used = {n["id"] for n in doc["resolve"]["nodes"]}
best = ("0", "nothing")
for p in doc["packages"]:
    v = p.get("rust_version")
    if p["id"] in used and v and tuple(map(int, v.split("."))) > tuple(map(int, best[0].split("."))):
        best = (v, p["name"] + " " + p["version"])
print(best[0], best[1])
')
need_v=${need%% *}
if [ "$(printf '%s\n%s\n' "$need_v" "$msrv" | sort -V | tail -n1)" != "$msrv" ]; then
    echo "ci/msrv.sh: Cargo.toml claims rust-version $msrv, but ${need#* } declares $need_v; set rust-version = \"$need_v\" (or lock an older release of it)" >&2
    exit 1
fi
echo "ci/msrv.sh: the locked dependencies need Rust $need_v (the highest, declared by ${need#* }); Cargo.toml claims $msrv"
if ! command -v rustup >/dev/null 2>&1; then
    echo "ci/msrv.sh: rustup is needed to check rust-version $msrv (https://rustup.rs)" >&2
    exit 1
fi
rustup toolchain install "$msrv" --profile minimal >/dev/null
cargo "+$msrv" build --locked --all-targets --target-dir target/msrv
echo "ci/msrv.sh: every target builds with Rust $msrv and the locked dependencies"
