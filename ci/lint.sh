#!/usr/bin/env bash
# Formatting (rustfmt.toml: 100 columns) and clippy with warnings as errors,
# over every target (library, binary, tests, benches).
set -euo pipefail

cargo fmt --all -- --check
cargo clippy --all-targets -- -D warnings
# libc:: and unsafe only in the kernel edge (src/sys/).
bash ci/kernel-edge.sh
