#!/usr/bin/env python3
"""Connection churn against a running server: opens bursts of connections that never send
anything and drops them at once, then counts the server's open descriptors over time.

    bench/churn.py --pid PID --port PORT [--rounds 8] [--connections 2000] [--watch 60]

Each round opens --connections sockets without waiting for the handshakes, then closes them all
(half of them with a reset). A server whose backlog overflows drops handshakes and SYNs; the
peers that give up on a connection the server later completes leave it a socket whose client is
gone, which nothing but a timeout or TCP keepalive will ever close. Prints the server's
descriptor count before, right after, and every 10 s for --watch seconds.
"""
import argparse
import os
import socket
import struct
import time


def fds(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--pid", type=int, required=True)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--rounds", type=int, default=8)
    ap.add_argument("--connections", type=int, default=2000)
    ap.add_argument("--watch", type=float, default=60)
    a = ap.parse_args()
    print(f"descriptors before: {fds(a.pid)}")
    for r in range(a.rounds):
        socks = []
        for i in range(a.connections):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setblocking(False)
            try:
                s.connect((a.host, a.port))
            except BlockingIOError:
                pass
            except OSError:
                s.close()
                continue
            socks.append(s)
        for i, s in enumerate(socks):
            if i % 2:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            s.close()
    print(f"descriptors right after {a.rounds} rounds: {fds(a.pid)}")
    start = time.time()
    while time.time() - start < a.watch:
        time.sleep(10)
        print(f"descriptors after {time.time() - start:.0f} s: {fds(a.pid)}")


if __name__ == "__main__":
    main()
