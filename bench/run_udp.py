#!/usr/bin/env python3
"""UDP echo benchmark driver: twist's examples/udp_echo_server against a hand-written epoll
server that answers each readable event with one recvmmsg and one sendmmsg (raw-mmsg), and the
same without batching (raw-single: recvfrom/sendto per datagram).

twist runs twice: with --max-packet 2048 (batches of up to 64 datagrams per recvmmsg, what a
protocol with small datagrams should ask for) and with the default maxPacketSize of 65535
(batches of 3). Cells: datagram sizes x (flows, depth): 1 flow with 1 datagram in flight is pure
ping-pong (no batch can form); 100 flows with 4 in flight each keep the server's queue full.
The server is pinned to CPU 0 and bench/udp_client to CPU 1; every round runs all servers, one
after the other in a rotating order. Reported: medians of datagrams per second and per server
CPU-second, and the medians of the per-round ratios against raw-mmsg.

Usage (after `bazel build -c opt //bench:all //examples:udp_echo_server`; bench/run_udp.sh
does both):
  bench/run_udp.py [--rounds 5] [--seconds 2] [--sizes 64,1024] [--flows 1:1,100:4]
"""
import argparse
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from run_pingpong import fmt, run_pair  # noqa: E402

SERVERS = {
    "twist": ["bazel-bin/examples/udp_echo_server", "--max-packet", "2048"],
    "twist-65535": ["bazel-bin/examples/udp_echo_server"],
    "raw-mmsg": ["bazel-bin/bench/udp_raw_echo_server", "--batch", "64"],
    "raw-single": ["bazel-bin/bench/udp_raw_echo_server", "--batch", "1"],
}
CLIENT = "bazel-bin/bench/udp_client"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--seconds", type=float, default=2.0)
    ap.add_argument("--sizes", default="64,1024")
    ap.add_argument("--flows", default="1:1,100:4", help="flows:depth pairs")
    args = ap.parse_args()
    for cmd in list(SERVERS.values()) + [[CLIENT]]:
        if not os.path.exists(cmd[0]):
            sys.exit(f"{cmd[0]} is missing: run bench/run_udp.sh (it builds with -c opt)")
    names = list(SERVERS)
    cells = [(size, int(f), int(d)) for size in map(int, args.sizes.split(","))
             for f, d in (p.split(":") for p in args.flows.split(","))]
    results = {cell: {s: [] for s in names} for cell in cells}
    started = time.time()
    for rnd in range(args.rounds):
        for i, (size, flows, depth) in enumerate(cells):
            k = (rnd + i) % len(names)
            for server in names[k:] + names[:k]:
                r, err = run_pair(SERVERS[server], [CLIENT, "--flows", str(flows), "--depth",
                                                    str(depth), "--size", str(size)], args.seconds)
                if r is None:
                    raise RuntimeError(f"client failed against {server}: {err}")
                results[(size, flows, depth)][server].append(r)
        print(f"round {rnd + 1}/{args.rounds} done ({time.time() - started:.0f} s)",
              file=sys.stderr)

    print(f"UDP echo on loopback; {args.rounds} rounds x {args.seconds:g} s per server and cell; "
          "server on CPU 0, client on CPU 1; medians. rate = datagrams echoed per second; "
          "per CPU-s = per second of server CPU time; ratios are medians of per-round ratios "
          "against raw-mmsg.\n")
    print("| size | flows x depth | " + " | ".join(f"{s} rate" for s in names) + " | " +
          " | ".join(f"{s} per CPU-s" for s in names) + " | " +
          " | ".join(f"{s}/raw-mmsg per CPU-s" for s in names if s != "raw-mmsg") + " |")
    print("|---|---|" + "---|" * (2 * len(names) + len(names) - 1))
    for cell in cells:
        size, flows, depth = cell
        rs = results[cell]
        rate = {s: [r["msgs"] / r["seconds"] for r in rs[s]] for s in names}
        eff = {s: [r["msgs"] / max(r["cpu"], 1e-9) for r in rs[s]] for s in names}
        ratios = [statistics.median(a / b for a, b in zip(eff[s], eff["raw-mmsg"]))
                  for s in names if s != "raw-mmsg"]
        print(f"| {size} B | {flows} x {depth} | " +
              " | ".join(fmt(statistics.median(rate[s])) for s in names) + " | " +
              " | ".join(fmt(statistics.median(eff[s])) for s in names) + " | " +
              " | ".join(f"{x:.2f}" for x in ratios) + " |")


if __name__ == "__main__":
    main()
