#!/usr/bin/env python3
"""UNIX socket echo benchmark: twist (bench/twist_echo_server --listen unix:PATH) against the
hand-written epoll echo (bench/epoll_echo_server --listen unix:PATH) on a UNIX stream socket, and
both again on TCP loopback in the same rounds, so the table says what a UNIX socket gains and
what twist costs on each. Cells: ping-pong blocks (the client keeps one block in flight per
connection) and closed-loop 16 B request/response, each with 1 and 100 connections. Server on
CPU 0, bench/pingpong_client on CPU 1; the four servers run one after the other in a rotating
order each round. Reported: medians of the rate and of the rate per server CPU-second, and the
medians of per-round ratios.

Usage (after `bazel build -c opt //bench:all`; bench/run_unix.sh does both):
  bench/run_unix.py [--rounds 5] [--seconds 2] [--sizes 4096,65536] [--conns 1,100]
"""
import argparse
import os
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from run_pingpong import fmt, run_pair, size_name  # noqa: E402

BINARIES = {"twist": "bazel-bin/bench/twist_echo_server", "epoll": "bazel-bin/bench/epoll_echo_server"}
CLIENT = "bazel-bin/bench/pingpong_client"
SERVERS = ["twist-unix", "epoll-unix", "twist-tcp", "epoll-tcp"]


def run_one(server, mode, size, conns, seconds, tmp):
    impl, transport = server.split("-")
    server_cmd = [BINARIES[impl]]
    if transport == "unix":
        server_cmd += ["--listen", "unix:" + os.path.join(tmp, f"{impl}.sock")]
    r, err = run_pair(server_cmd, [CLIENT, "--mode", mode, "--size", str(size), "--conns",
                                   str(conns)], seconds)
    if r is None:
        raise RuntimeError(f"client failed against {server}: {err}")
    return r


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--seconds", type=float, default=2.0)
    ap.add_argument("--sizes", default="4096,65536")
    ap.add_argument("--conns", default="1,100")
    args = ap.parse_args()
    for b in list(BINARIES.values()) + [CLIENT]:
        if not os.path.exists(b):
            sys.exit(f"{b} is missing: run bench/run_unix.sh (it builds with -c opt)")
    conns = list(map(int, args.conns.split(",")))
    cells = [("pingpong", s, c) for s in map(int, args.sizes.split(",")) for c in conns]
    cells += [("rr", 16, c) for c in conns]
    results = {cell: {s: [] for s in SERVERS} for cell in cells}
    started = time.time()
    with tempfile.TemporaryDirectory(prefix="twist-bench-") as tmp:
        for rnd in range(args.rounds):
            for i, cell in enumerate(cells):
                k = (rnd + i) % len(SERVERS)
                for server in SERVERS[k:] + SERVERS[:k]:
                    results[cell][server].append(run_one(server, *cell, args.seconds, tmp))
            print(f"round {rnd + 1}/{args.rounds} done ({time.time() - started:.0f} s)",
                  file=sys.stderr)

    print(f"Echo over a UNIX stream socket and over TCP loopback; {args.rounds} rounds x "
          f"{args.seconds:g} s per server and cell; server on CPU 0, client on CPU 1; medians. "
          "Rate: MiB/s the client read (ping-pong) or requests/s (rr 16 B); per CPU-s: per "
          "second of server CPU time; ratios are medians of per-round ratios of the per-CPU-s "
          "figures.\n")
    print("| cell | conns | " + " | ".join(f"{s} rate" for s in SERVERS) + " | " +
          " | ".join(f"{s} per CPU-s" for s in SERVERS) +
          " | twist/epoll unix | twist/epoll tcp | twist unix/tcp |")
    print("|---|---|" + "---|" * (2 * len(SERVERS) + 3))
    mib = 1024 * 1024
    for cell in cells:
        mode, size, n = cell
        rs = results[cell]
        if mode == "pingpong":
            rate = {s: [r["bytes"] / r["seconds"] / mib for r in rs[s]] for s in SERVERS}
            eff = {s: [r["bytes"] / max(r["cpu"], 1e-9) / mib for r in rs[s]] for s in SERVERS}
            name = f"ping-pong {size_name(size)}"
        else:
            rate = {s: [r["msgs"] / r["seconds"] for r in rs[s]] for s in SERVERS}
            eff = {s: [r["msgs"] / max(r["cpu"], 1e-9) for r in rs[s]] for s in SERVERS}
            name = "rr 16 B"

        def ratio(a, b):
            return statistics.median(x / y for x, y in zip(eff[a], eff[b]))

        print(f"| {name} | {n} | " +
              " | ".join(fmt(statistics.median(rate[s])) for s in SERVERS) + " | " +
              " | ".join(fmt(statistics.median(eff[s])) for s in SERVERS) +
              f" | {ratio('twist-unix', 'epoll-unix'):.2f} | {ratio('twist-tcp', 'epoll-tcp'):.2f}"
              f" | {ratio('twist-unix', 'twist-tcp'):.2f} |")


if __name__ == "__main__":
    main()
