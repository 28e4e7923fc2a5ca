#!/usr/bin/env python3
"""TLS echo benchmark driver: twist's listenSSL Echo vs a hand-written OpenSSL echo over epoll.

Cells: ping-pong over TLS 1.3 with TLS_AES_128_GCM_SHA256 (blocks of 4 and 64 KiB, 1 and 100
connections, all handshaken before the clock starts), and full handshakes per second (1 and 10
connections at a time, each connect + handshake + one byte echoed + close). A fresh P-256 ECDSA
certificate is made for the run with the openssl CLI. Each server is pinned to CPU 0 and the
client (bench/tls_pingpong_client, OpenSSL too) to CPU 1; in every round the servers run one
after the other in a rotating order. Reported: medians over the rounds of the rate and of the
rate per server CPU-second, and the median of the per-round twist/openssl ratios.

Usage (after `bazel build -c opt //bench:all`; bench/run_tls.sh does both):
  bench/run_tls.py [--rounds 5] [--seconds 2] [--sizes 4096,65536] [--conns 1,100]
                   [--handshake-conns 1,10] [--before PATH]
--before PATH also runs another build of twist_tls_echo_server (say, the previous commit's),
labelled "before", in the same interleaved rounds.
"""
import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from run_pingpong import fmt, run_pair, size_name  # noqa: E402

SERVERS = ["twist", "openssl"]
BINARIES = {
    "twist": "bazel-bin/bench/twist_tls_echo_server",
    "openssl": "bazel-bin/bench/openssl_echo_server",
}
CLIENT = "bazel-bin/bench/tls_pingpong_client"


def make_certificate(directory):
    cert, key = os.path.join(directory, "cert.pem"), os.path.join(directory, "key.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:P-256", "-nodes", "-days", "2", "-subj", "/CN=localhost",
                    "-keyout", key, "-out", cert], check=True, capture_output=True)
    return cert, key


def run_one(server, mode, size, conns, seconds, cert, key):
    r, err = run_pair([BINARIES[server], "--cert", cert, "--key", key],
                      [CLIENT, "--conns", str(conns), "--size", str(size), "--mode", mode], seconds)
    if r is None:
        raise RuntimeError(f"client failed against {server}: {err}")
    return r


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--seconds", type=float, default=2.0)
    ap.add_argument("--sizes", default="4096,65536")
    ap.add_argument("--conns", default="1,100")
    ap.add_argument("--handshake-conns", default="1,10")
    ap.add_argument("--before", help="another twist_tls_echo_server build, run as a third server")
    args = ap.parse_args()
    if args.before:
        SERVERS.append("before")
        BINARIES["before"] = args.before
    for b in list(BINARIES.values()) + [CLIENT]:
        if not os.path.exists(b):
            sys.exit(f"{b} is missing: run `bazel build -c opt //bench:all` first")

    cells = [("pingpong", s, c) for s in map(int, args.sizes.split(","))
             for c in map(int, args.conns.split(","))]
    if args.handshake_conns:
        cells += [("handshake", 1, c) for c in map(int, args.handshake_conns.split(","))]
    results = {cell: {s: [] for s in SERVERS} for cell in cells}
    started = time.time()
    with tempfile.TemporaryDirectory() as tmp:
        cert, key = make_certificate(tmp)
        for rnd in range(args.rounds):
            for i, cell in enumerate(cells):
                k = (rnd + i) % len(SERVERS)
                for server in SERVERS[k:] + SERVERS[:k]:
                    results[cell][server].append(run_one(server, *cell, args.seconds, cert, key))
            print(f"round {rnd + 1}/{args.rounds} done ({time.time() - started:.0f} s)",
                  file=sys.stderr)

    print(f"TLS echo, TLS 1.3 TLS_AES_128_GCM_SHA256, P-256 ECDSA certificate; {args.rounds} "
          f"rounds x {args.seconds:g} s per server and cell; server on CPU 0, client on CPU 1; "
          "medians.")
    print("rate = plaintext MiB the client read per second (ping-pong), or connections "
          "handshaken and closed per second; per CPU-s = per second of server CPU time; the "
          "ratios are medians of the per-round twist/openssl ratios.\n")
    print("| cell | conns | " + " | ".join(f"{s} rate" for s in SERVERS) + " | " +
          " | ".join(f"{s} per CPU-s" for s in SERVERS) + " | twist/openssl rate | "
          "twist/openssl per CPU-s |")
    print("|---|---|" + "---|" * (2 * len(SERVERS) + 2))
    mib = 1024 * 1024
    for cell in cells:
        mode, size, conns = cell
        rs = results[cell]
        if mode == "pingpong":
            rate = {s: [r["bytes"] / r["seconds"] / mib for r in rs[s]] for s in SERVERS}
            eff = {s: [r["bytes"] / max(r["cpu"], 1e-9) / mib for r in rs[s]] for s in SERVERS}
            name = f"ping-pong {size_name(size)}"
        else:
            rate = {s: [r["msgs"] / r["seconds"] for r in rs[s]] for s in SERVERS}
            eff = {s: [r["msgs"] / max(r["cpu"], 1e-9) for r in rs[s]] for s in SERVERS}
            name = "handshakes/s"
        ratio_rate = statistics.median(a / b for a, b in zip(rate["twist"], rate["openssl"]))
        ratio_eff = statistics.median(a / b for a, b in zip(eff["twist"], eff["openssl"]))
        print(f"| {name} | {conns} | " +
              " | ".join(fmt(statistics.median(rate[s])) for s in SERVERS) + " | " +
              " | ".join(fmt(statistics.median(eff[s])) for s in SERVERS) +
              f" | {ratio_rate:.2f} | {ratio_eff:.2f} |")


if __name__ == "__main__":
    main()
