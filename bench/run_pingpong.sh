#!/usr/bin/env bash
# Builds the benchmark with optimizations and runs it; arguments go to bench/run_pingpong.py.
# Example: bench/run_pingpong.sh --rounds 5 --seconds 2
set -euo pipefail
cd "$(dirname "$0")/.."
bazel build -c opt //bench:all
exec python3 bench/run_pingpong.py "$@"
