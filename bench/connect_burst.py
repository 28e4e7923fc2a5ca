#!/usr/bin/env python3
"""Opens --connections TCP connections to a server one after another, keeping them all open,
and prints how long that took; then closes them.

    bench/connect_burst.py --port PORT [--connections 10000]

A server whose listen backlog is small drops SYNs once its accept queue is full, and each
dropped SYN costs the client a retransmission a second later.
"""
import argparse
import resource
import socket
import time


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--connections", type=int, default=10000)
    a = ap.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, a.connections + 100), hard))
    socks = []
    start = time.monotonic()
    for _ in range(a.connections):
        socks.append(socket.create_connection((a.host, a.port), timeout=30))
    took = time.monotonic() - start
    print(f"{a.connections} connections opened one after another in {took:.2f} s")
    for s in socks:
        s.close()


if __name__ == "__main__":
    main()
