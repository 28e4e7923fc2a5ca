#!/usr/bin/env bash
# Builds with optimizations and runs the UNIX socket echo benchmark; arguments go to
# bench/run_unix.py. Example: bench/run_unix.sh --rounds 5 --seconds 2
set -euo pipefail
cd "$(dirname "$0")/.."
bazel build -c opt //bench:all
exec python3 bench/run_unix.py "$@"
