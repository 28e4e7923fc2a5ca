#!/usr/bin/env bash
# Builds the benchmark with optimizations and runs the TLS echo benchmark; arguments go to
# bench/run_tls.py. Example: bench/run_tls.sh --rounds 5 --seconds 2
set -euo pipefail
cd "$(dirname "$0")/.."
bazel build -c opt //bench:all
exec python3 bench/run_tls.py "$@"
