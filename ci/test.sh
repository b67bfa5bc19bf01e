#!/usr/bin/env bash
# The README's test command. Release, because the integration suite runs
# real load (ab, wrk, 200 clients, 1024-deep pipelines) against the server
# and the split-request vectors open thousands of connections: an
# unoptimised server and client make that several times slower, and a
# release build is what is measured and shipped.
set -euo pipefail

cargo test --release
