#!/usr/bin/env python3
"""Every-core benchmarks (issue 10), all servers interleaved over --rounds, medians.

  backends  twist's echo on libevent's epoll, poll and select backends: closed-loop
            request/response (16 B) on 10 busy connections beside 0, 990 and 9,990 silent ones
            (10, 1,000 and 10,000 connections). Server on CPU 0, client on CPU 1.
  reactors  twist's echo with 1 reactor, with N (a ReactorPool, SO_REUSEPORT) and with N
            pre-forked workers (N = --cores, default the machine's): ping-pong on 100
            connections. Nothing pinned (the server may use every core); the server's CPU is
            summed over its threads and worker processes.
  accept    short connections (connect, 16 B request, reply, close, again; 10 at a time):
            twist (one reactor), the raw epoll echo and a standalone Asio echo. Pinned as in
            backends.

Usage (after `bazel build -c opt //bench:all`; bench/run_cores.sh does both):
  bench/run_cores.py [--rounds 5] [--seconds 2] [--cores N] [--only backends,reactors,accept]
"""
import argparse
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from run_pingpong import fmt, run_pair  # noqa: E402

CLIENT = "bazel-bin/bench/pingpong_client"
BIN = {
    "twist": "bazel-bin/bench/twist_echo_server",
    "epoll": "bazel-bin/bench/epoll_echo_server",
    "asio": "bazel-bin/bench/asio_echo_server",
}


def run(server_args, client_args, seconds, pin):
    """None when the client failed: the server refused (select past FD_SETSIZE) or failed."""
    return run_pair(server_args, [CLIENT] + client_args, seconds, pin)[0]


def interleave(rounds, cells, servers, runner):
    """results[cell][server] = list of results (None for a failed run)."""
    results = {c: {s: [] for s in servers} for c in cells}
    for rnd in range(rounds):
        for i, cell in enumerate(cells):
            k = (rnd + i) % len(servers)
            for s in servers[k:] + servers[:k]:
                results[cell][s].append(runner(s, cell))
    return results


def med(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def show(x):
    return "refused" if x is None else fmt(x)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--seconds", type=float, default=2.0)
    ap.add_argument("--cores", type=int, default=os.cpu_count())
    ap.add_argument("--only", default="backends,reactors,accept")
    args = ap.parse_args()
    for b in list(BIN.values()) + [CLIENT]:
        if not os.path.exists(b):
            sys.exit(f"{b} is missing: run `bazel build -c opt //bench:all` first")
    parts = args.only.split(",")
    started = time.time()

    if "backends" in parts:
        backends = ["epoll", "poll", "select"]
        cells = [0, 990, 9990]
        res = interleave(args.rounds, cells, backends, lambda b, idle: run(
            [BIN["twist"], "--backend", b],
            ["--mode", "rr", "--size", "16", "--conns", "10", "--idle", str(idle)],
            args.seconds, True))
        print(f"libevent backends: twist echo, request/response of 16 B on 10 busy connections "
              f"beside silent ones; {args.rounds} rounds x {args.seconds:g} s, medians; server "
              "CPU 0, client CPU 1. msgs/s (msgs per server CPU-s).\n")
        print("| connections | " + " | ".join(backends) + " |")
        print("|---|" + "---|" * len(backends))
        for idle in cells:
            row = []
            for b in backends:
                rs = [r for r in res[idle][b] if r is not None]
                if not rs:
                    row.append("refused")
                    continue
                rate = med([r["msgs"] / r["seconds"] for r in rs])
                eff = med([r["msgs"] / max(r["cpu"], 1e-9) for r in rs])
                row.append(f"{fmt(rate)} ({fmt(eff)})")
            print(f"| {idle + 10} | " + " | ".join(row) + " |")
        print(f"\n({time.time() - started:.0f} s so far)\n", file=sys.stderr)

    if "reactors" in parts:
        names = ["1 reactor"]
        if args.cores > 1:
            names += [f"{args.cores} reactors", f"{args.cores} workers"]
        cells = [4096, 65536]

        def server(name):
            n, kind = name.split()
            return [BIN["twist"], "--workers" if kind == "workers" else "--threads", n]
        res = interleave(args.rounds, cells, names, lambda name, size: run(
            server(name), ["--mode", "pingpong", "--size", str(size), "--conns", "100"],
            args.seconds, False))
        print(f"Reactors and workers: twist echo ping-pong, 100 connections, with 1 reactor, "
              f"{args.cores} reactors (ReactorPool, SO_REUSEPORT) and {args.cores} pre-forked "
              f"workers; nothing pinned; {args.rounds} rounds x {args.seconds:g} s, medians. "
              "MiB/s (MiB per server CPU-s, all threads and processes).\n")
        print("| block | " + " | ".join(names) + " | per CPU-s, reactors vs 1 | "
              "per CPU-s, workers vs 1 |")
        print("|---|" + "---|" * (len(names) + 2))
        mib = 1024 * 1024
        for size in cells:
            row, effs = [], []
            for n in names:
                rs = [r for r in res[size][n] if r is not None]
                rate = med([r["bytes"] / r["seconds"] / mib for r in rs])
                eff = [r["bytes"] / max(r["cpu"], 1e-9) / mib for r in rs]
                effs.append(eff)
                row.append(f"{show(rate)} ({show(med(eff))})")
            ratios = []
            for k in range(1, len(effs)):
                ok = effs[0] and effs[k] and len(effs[0]) == len(effs[k])
                ratios.append(f"{statistics.median(a / b for a, b in zip(effs[k], effs[0])):.2f}"
                              if ok else "-")
            ratios += ["-"] * (2 - len(ratios))
            print(f"| {size // 1024} KiB | " + " | ".join(row) + " | " + " | ".join(ratios) + " |")
        print(f"\n({time.time() - started:.0f} s so far)\n", file=sys.stderr)

    if "accept" in parts:
        servers = ["twist", "epoll", "asio"]
        res = interleave(args.rounds, ["accept"], servers, lambda s, _: run(
            [BIN[s]], ["--mode", "accept", "--size", "16", "--conns", "10"], args.seconds, True))
        print(f"Accept rate: short connections (connect, 16 B, reply, close), 10 at a time; "
              f"{args.rounds} rounds x {args.seconds:g} s, medians; server CPU 0, client CPU 1.\n")
        print("| server | connections/s | per server CPU-s | vs epoll (per CPU-s) |")
        print("|---|---|---|---|")
        eff = {s: [r["msgs"] / max(r["cpu"], 1e-9) for r in res["accept"][s] if r] for s in servers}
        for s in servers:
            rate = med([r["msgs"] / r["seconds"] for r in res["accept"][s] if r])
            ratio = statistics.median(a / b for a, b in zip(eff[s], eff["epoll"]))
            print(f"| {s} | {show(rate)} | {show(med(eff[s]))} | {ratio:.2f} |")


if __name__ == "__main__":
    main()
