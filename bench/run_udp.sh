#!/usr/bin/env bash
# Builds with optimizations and runs the UDP echo benchmark; arguments go to bench/run_udp.py.
# Example: bench/run_udp.sh --rounds 5 --seconds 2
set -euo pipefail
cd "$(dirname "$0")/.."
bazel build -c opt //bench:all //examples:udp_echo_server
exec python3 bench/run_udp.py "$@"
