#!/usr/bin/env bash
# The Rust version Cargo.toml claims (rust-version) builds every target
# with the locked dependencies: install that toolchain (minimal profile)
# with rustup and build with it. Fails if the claim is false in either
# direction we can see: a dependency declaring a newer rust-version, or
# code that does not compile on the claimed version.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
msrv=$(sed -n 's/^rust-version *= *"\(.*\)"/\1/p' Cargo.toml)
[ -n "$msrv" ] || { echo "ci/msrv.sh: no rust-version in Cargo.toml" >&2; exit 1; }
if ! command -v rustup >/dev/null 2>&1; then
    echo "ci/msrv.sh: rustup is needed to check rust-version $msrv (https://rustup.rs)" >&2
    exit 1
fi
rustup toolchain install "$msrv" --profile minimal >/dev/null
cargo "+$msrv" build --locked --all-targets --target-dir target/msrv
echo "ci/msrv.sh: every target builds with Rust $msrv and the locked dependencies"
