#!/usr/bin/env bash
# Builds the benchmark with optimizations and runs the every-core benchmarks; arguments go to
# bench/run_cores.py. Example: bench/run_cores.sh --rounds 5 --seconds 2
set -euo pipefail
cd "$(dirname "$0")/.."
bazel build -c opt //bench:all
exec python3 bench/run_cores.py "$@"
