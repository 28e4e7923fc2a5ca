#!/usr/bin/env python3
"""Memory an idle TLS connection holds in the server: twist's listenSSL echo vs the plain
OpenSSL echo (bench/). Opens --conns TLS 1.3 connections with Python's ssl, has each echo
--size bytes (so every buffer has been used), leaves them idle, and reads the server's VmRSS
before and after; prints the difference per connection.

Usage (after `bazel build -c opt //bench:all`):
  bench/tls_idle_memory.py [--conns 2000] [--size 65536]
"""
import argparse
import os
import resource
import socket
import ssl
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from run_tls import BINARIES, make_certificate  # noqa: E402


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def measure(server, conns, size, cert, key):
    srv = subprocess.Popen([BINARIES[server], "--port", "0", "--cert", cert, "--key", key],
                           stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    socks = []
    try:
        port = int(srv.stdout.readline().strip().rsplit(":", 1)[1])
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        ctx.minimum_version = ssl.TLSVersion.TLSv1_3
        block = b"x" * size
        # One connection first, so the baseline includes what the first one allocates once.
        for i in range(conns + 1):
            s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", port)))
            s.sendall(block)
            got = 0
            while got < size:
                got += len(s.recv(size))
            socks.append(s)
            if i == 0:
                before = rss_kib(srv.pid)
        after = rss_kib(srv.pid)
        return (after - before) * 1024 / conns
    finally:
        for s in socks:
            s.close()
        srv.terminate()
        srv.wait()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--conns", type=int, default=2000)
    ap.add_argument("--size", type=int, default=65536)
    args = ap.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 65536), hard))
    with tempfile.TemporaryDirectory() as tmp:
        cert, key = make_certificate(tmp)
        print(f"Idle TLS connections ({args.conns}, each after echoing {args.size} bytes): "
              "server memory (VmRSS) per connection")
        for server in ["twist", "openssl"]:
            per = measure(server, args.conns, args.size, cert, key)
            print(f"  {server}: {per / 1024:.1f} KiB")


if __name__ == "__main__":
    main()
