#!/usr/bin/env python3
"""Echo benchmark driver: twist's Echo vs a raw libevent bufferevent echo vs a raw epoll echo.

For every cell (block size x connections) and every round, the three servers run one after the
other in a rotating order (interleaved, so drift on a noisy machine hits all three alike). Each
server is pinned to CPU 0 and the client to CPU 1 (taskset). The server's CPU time comes from
/proc/PID/schedstat (nanoseconds; /proc/PID/stat as a fallback), so every result is also given
per server-CPU-second. Reported: medians over the rounds, and the median of the per-round ratios
against the baselines measured in the same round.

A third mode, pipeline, sends --pipeline-depth lines of 16 bytes at once per connection and
waits for all the answers (a pipelining client: Redis, HTTP/1.1); twist answers with a
LineReceiver that sends each line back on its own (twist_echo_server --lines), the raw servers
echo what they read. It reports lines per second and per server CPU-second; and, from one more
run per server outside the timed rounds (perf stat on the send/write tracepoints, when perf is
there), how many system calls the server made to send each batch of answers.

Usage (after `bazel build -c opt //bench:all`; bench/run_pingpong.sh does both):
  bench/run_pingpong.py [--rounds 3] [--seconds 2] [--sizes 16,4096,65536] [--conns 1,10,100,1000]
                        [--rr-sizes 16,4096] [--rr-conns 1,100]
                        [--pipeline-depth 100] [--pipeline-conns 1,100]
                        [--before PATH]
--before PATH runs another build of twist_echo_server (say, of the previous commit) in the
libevent server's place, labelled "before": a change is then measured against the code before
it in the same interleaved rounds, which a comparison across runs on a noisy machine cannot do.
"""
import argparse
import glob
import os
import resource
import statistics
import subprocess
import sys
import time

SERVERS = ["twist", "libevent", "epoll"]
BINARIES = {
    "twist": "bazel-bin/bench/twist_echo_server",
    "libevent": "bazel-bin/bench/libevent_echo_server",
    "epoll": "bazel-bin/bench/epoll_echo_server",
}
CLIENT = "bazel-bin/bench/pingpong_client"


def raise_fd_limit():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 65536), hard))


def cpu_seconds(pid):
    try:
        with open(f"/proc/{pid}/schedstat") as f:
            return int(f.read().split()[0]) / 1e9
    except OSError:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_all(pid):
    """CPU seconds of pid's threads and of its child processes' (pre-forked workers)."""
    total = 0
    for path in glob.glob(f"/proc/{pid}/task/*/schedstat"):
        try:
            with open(path) as f:
                total += int(f.read().split()[0])
        except OSError:
            pass
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            children = [int(c) for c in f.read().split()]
    except OSError:
        children = []
    return total / 1e9 + sum(cpu_all(c) for c in children)


def run_pair(server_cmd, client_cmd, seconds, pin=True):
    """Starts server_cmd with --port 0, reads its "listening on HOST:PORT" line (or "listening
    on /PATH", a UNIX socket), runs client_cmd with --port PORT (or --unix /PATH) and --seconds,
    and stops the server. Pinned: server on CPU 0, client on CPU 1. Returns (the client's
    key=value result with "cpu", the server's CPU seconds over all its threads and processes;
    or None if the client failed, and the client's stderr)."""
    prefix_s = ["taskset", "-c", "0"] if pin else []
    prefix_c = ["taskset", "-c", "1"] if pin else []
    srv = subprocess.Popen(prefix_s + server_cmd + ["--port", "0"], stdout=subprocess.PIPE,
                           stderr=subprocess.DEVNULL, text=True, preexec_fn=raise_fd_limit)
    try:
        where = srv.stdout.readline().strip().split("listening on ", 1)[1]
        target = ["--unix", where] if where.startswith("/") else ["--port", where.rsplit(":", 1)[1]]
        cpu0 = cpu_all(srv.pid)
        out = subprocess.run(prefix_c + client_cmd + target + ["--seconds", str(seconds)],
                             capture_output=True, text=True, preexec_fn=raise_fd_limit,
                             timeout=seconds + 120)
        cpu = cpu_all(srv.pid) - cpu0
    finally:
        srv.terminate()
        srv.wait()
    if out.returncode != 0:
        return None, out.stderr.strip()
    r = {k: float(v) for k, v in (kv.split("=") for kv in out.stdout.split())}
    r["cpu"] = cpu
    return r, out.stderr.strip()


SEND_SYSCALLS = ["sendmsg", "sendto", "write", "writev"]


def run_one(server, mode, size, conns, seconds, depth=1, count_sends=False):
    extra = ["--lines"] if mode == "pipeline" and server in ("twist", "before") else []
    srv = subprocess.Popen(["taskset", "-c", "0", BINARIES[server], "--port", "0"] + extra,
                           stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                           preexec_fn=raise_fd_limit)
    try:
        line = srv.stdout.readline()
        port = line.strip().rsplit(":", 1)[1]
        cpu0 = cpu_seconds(srv.pid)
        perf = None
        if count_sends:
            events = ",".join(f"syscalls:sys_enter_{c}" for c in SEND_SYSCALLS)
            perf = subprocess.Popen(["perf", "stat", "-x,", "-e", events, "-p", str(srv.pid)],
                                    stderr=subprocess.PIPE, text=True)
        out = subprocess.run(["taskset", "-c", "1", CLIENT, "--port", port, "--conns", str(conns),
                              "--size", str(size), "--seconds", str(seconds), "--mode", mode,
                              "--depth", str(depth)],
                             capture_output=True, text=True, preexec_fn=raise_fd_limit,
                             timeout=seconds + 60)
        cpu = cpu_seconds(srv.pid) - cpu0
        sends = 0
        if perf:
            perf.send_signal(2)
            for line in perf.communicate()[1].splitlines():
                fields = line.split(",")
                if len(fields) > 2 and fields[0].isdigit():
                    sends += int(fields[0])
    finally:
        srv.terminate()
        srv.wait()
    if out.returncode != 0:
        raise RuntimeError(f"client failed against {server}: {out.stderr.strip()}")
    r = dict(kv.split("=") for kv in out.stdout.split())
    r = {k: float(v) for k, v in r.items()}
    r["cpu"] = cpu
    r["sends"] = sends
    return r


def msg_rates(rs):
    """Per server, from one cell's rounds: median messages per second, median messages per
    server CPU-second, and the median of the per-round ratios of the latter against epoll's."""
    eff = {s: [r["msgs"] / max(r["cpu"], 1e-9) for r in rs[s]] for s in SERVERS}
    return {s: (statistics.median(r["msgs"] / r["seconds"] for r in rs[s]),
                statistics.median(eff[s]),
                statistics.median(a / b for a, b in zip(eff[s], eff["epoll"])))
            for s in SERVERS}


def fmt(x):
    """Three significant figures, without exponents."""
    return f"{x:.2f}" if x < 10 else f"{x:.1f}" if x < 100 else f"{x:.0f}"


def size_name(n):
    return f"{n // 1024} KiB" if n >= 1024 else f"{n} B"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=2.0)
    ap.add_argument("--sizes", default="16,4096,65536")
    ap.add_argument("--conns", default="1,10,100,1000")
    ap.add_argument("--rr-sizes", default="16,4096")
    ap.add_argument("--rr-conns", default="1,100")
    ap.add_argument("--pipeline-depth", type=int, default=100)
    ap.add_argument("--pipeline-conns", default="1,100")
    ap.add_argument("--before", help="another twist_echo_server build, run in libevent's place")
    args = ap.parse_args()
    if args.before:
        SERVERS[1] = "before"
        BINARIES["before"] = args.before
    mid = SERVERS[1]
    for b in list(BINARIES.values()) + [CLIENT]:
        if not os.path.exists(b):
            sys.exit(f"{b} is missing: run `bazel build -c opt //bench:all` first")

    cells = [("pingpong", s, c) for s in map(int, args.sizes.split(","))
             for c in map(int, args.conns.split(","))]
    if args.rr_sizes:
        cells += [("rr", s, c) for s in map(int, args.rr_sizes.split(","))
                  for c in map(int, args.rr_conns.split(","))]
    if args.pipeline_conns:
        cells += [("pipeline", 16, c) for c in map(int, args.pipeline_conns.split(","))]
    results = {cell: {s: [] for s in SERVERS} for cell in cells}
    started = time.time()
    for rnd in range(args.rounds):
        for i, cell in enumerate(cells):
            order = SERVERS[(rnd + i) % 3:] + SERVERS[:(rnd + i) % 3]
            for server in order:
                results[cell][server].append(
                    run_one(server, *cell, args.seconds, args.pipeline_depth))
        print(f"round {rnd + 1}/{args.rounds} done ({time.time() - started:.0f} s)",
              file=sys.stderr)
    counted = {}
    have_perf = subprocess.run(["sh", "-c", "command -v perf"], capture_output=True).returncode == 0
    for cell in cells:
        if cell[0] == "pipeline" and have_perf:
            counted[cell] = {s: run_one(s, *cell, args.seconds, args.pipeline_depth, True)
                             for s in SERVERS}

    mib = 1024 * 1024
    print(f"Echo ping-pong, {args.rounds} rounds x {args.seconds:g} s per server and cell; server "
          "on CPU 0, client on CPU 1; medians.")
    print("MiB/s = bytes the client read per second; per CPU-s = per second of server CPU time.\n")
    print(f"| block | conns | twist MiB/s | {mid} MiB/s | epoll MiB/s | twist per CPU-s | "
          f"{mid} per CPU-s | epoll per CPU-s | twist/epoll (CPU-s) | twist/{mid} (CPU-s) |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for cell in cells:
        mode, size, conns = cell
        if mode != "pingpong":
            continue
        rs = results[cell]
        tput = {s: statistics.median(r["bytes"] / r["seconds"] / mib for r in rs[s]) for s in SERVERS}
        eff = {s: [r["bytes"] / max(r["cpu"], 1e-9) / mib for r in rs[s]] for s in SERVERS}
        med = {s: statistics.median(eff[s]) for s in SERVERS}
        vs_epoll = statistics.median(t / e for t, e in zip(eff["twist"], eff["epoll"]))
        vs_mid = statistics.median(t / e for t, e in zip(eff["twist"], eff[mid]))
        print(f"| {size_name(size)} | {conns} | {fmt(tput['twist'])} | {fmt(tput[mid])} | "
              f"{fmt(tput['epoll'])} | {fmt(med['twist'])} | {fmt(med[mid])} | "
              f"{fmt(med['epoll'])} | {vs_epoll:.2f} | {vs_mid:.2f} |")

    rr_cells = [c for c in cells if c[0] == "rr"]
    if rr_cells:
        print("\nClosed-loop request/response (one request in flight per connection); medians.\n")
        print("| block | conns | server | msgs/s | msgs per CPU-s | p50 us | p99 us | "
              "vs epoll (per CPU-s) |")
        print("|---|---|---|---|---|---|---|---|")
        for cell in rr_cells:
            _, size, conns = cell
            rs = results[cell]
            for s, (rate, per_cpu, ratio) in msg_rates(rs).items():
                p50 = statistics.median(r["p50_us"] for r in rs[s])
                p99 = statistics.median(r["p99_us"] for r in rs[s])
                print(f"| {size_name(size)} | {conns} | {s} | {rate:.0f} | "
                      f"{per_cpu:.0f} | {p50:.1f} | {p99:.1f} | {ratio:.2f} |")


    pl_cells = [c for c in cells if c[0] == "pipeline"]
    if pl_cells:
        print(f"\nPipelined requests: batches of {args.pipeline_depth} lines of 16 B in flight per "
              "connection; medians. twist answers each line with its own sendLine; the raw "
              "servers echo each read whole.\n")
        print("| conns | server | lines/s | lines per CPU-s | send syscalls per batch | "
              "vs epoll (per CPU-s) |")
        print("|---|---|---|---|---|---|")
        for cell in pl_cells:
            _, size, conns = cell
            for s, (rate, per_cpu, ratio) in msg_rates(results[cell]).items():
                c = counted.get(cell, {}).get(s)
                per_batch = (f"{c['sends'] / max(c['msgs'] / args.pipeline_depth, 1):.2f}"
                             if c else "-")
                print(f"| {conns} | {s} | {rate:.0f} | {per_cpu:.0f} | {per_batch} | {ratio:.2f} |")


if __name__ == "__main__":
    main()
