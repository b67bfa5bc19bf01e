#!/usr/bin/env python3
"""A/B measurement of servers started from arbitrary command lines.

`okring bench` compares the modes of one okring binary; this script
compares any commands (two builds of okring, `serve` with and without a
flag, nginx), each started once and pinned, driven in alternated order
(A B, B A, ...) by `okring load` or wrk pinned to another CPU. Per run it
records requests/s, the server's CPU per request (user + system of the
server's process tree from /proc/<pid>/stat, including threads and worker
processes, over the load process's whole life) and the load generator's
own CPU per request (rusage of the load process from wait4(2)). It prints
medians and the median per-repeat ratio to the first server, and writes
everything as JSON with --json.

It does not warm caches beyond one unmeasured load run per server, and it
does not separate connection set-up from the measured window (the
connections are opened inside it: a few hundred accepts, well under 1 %
of the CPU of a multi-second run).

Usage:
  bench/ab.py --server 'base=/tmp/okring-a serve --mode uring --threads 1 --bind 127.0.0.1:{port}' \\
              --server 'new=/tmp/okring-b serve --mode uring --threads 1 --bind 127.0.0.1:{port}' \\
              [--load okring|wrk|LABEL=PATH,...] [--conns 256] [--pipeline 1] [--rate R] [--duration 5] [--repeat 3]
"""
import argparse
import json
import os
import re
import shlex
import socket
import statistics
import subprocess
import sys
import tempfile
import time

CLK_TCK = os.sysconf("SC_CLK_TCK")


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def tree_pids(pid):
    """pid and every descendant (via /proc/<pid>/task/<tid>/children)."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        try:
            for tid in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{tid}/children") as f:
                    todo.extend(int(c) for c in f.read().split())
        except OSError:
            pass
    return out


def tree_cpu_s(pid):
    """User + system seconds of the process tree rooted at pid."""
    total = 0
    for p in tree_pids(pid):
        try:
            with open(f"/proc/{p}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            # fields[0] is field 3 (state): utime/stime are fields 14/15.
            total += int(fields[11]) + int(fields[12])
        except (OSError, IndexError):
            pass
    return total / CLK_TCK


def wait_port(port, timeout=5.0):
    end = time.time() + timeout
    while time.time() < end:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return True
        except OSError:
            time.sleep(0.05)
    return False


def run_load(args, load, port, duration, cpu):
    """Run load generator `load` once; returns (requests, elapsed s, client CPU s, wall s, p99 ms, text)."""
    url = f"http://127.0.0.1:{port}/"
    if load == "wrk":
        cmd = ["wrk", "-t1", f"-c{args.conns}", f"-d{duration}s", "--latency"]
        if args.pipeline > 1:
            lua = tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False)
            lua.write(
                "init = function(args)\n  local r = {}\n"
                f"  for i = 1, {args.pipeline} do r[i] = wrk.format(nil, '/') end\n"
                "  req = table.concat(r)\nend\nrequest = function() return req end\n"
            )
            lua.close()
            cmd += ["-s", lua.name]
        cmd.append(url)
        jf = None
    else:
        jf = tempfile.NamedTemporaryFile(suffix=".json", delete=False).name
        cmd = [args.load_bins.get(load, args.okring), "load", url, "-c", str(args.conns), "-d", f"{duration}s",
               "--warmup", "0s", "--pipeline", str(args.pipeline), "--json", jf]
        if args.rate:
            cmd += ["--rate", str(args.rate)]
    t0 = time.time()
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                         preexec_fn=lambda: os.sched_setaffinity(0, {cpu}))
    text = p.stdout.read()
    _, status, ru = os.wait4(p.pid, 0)
    p.returncode = os.waitstatus_to_exitcode(status)
    wall = time.time() - t0
    client_cpu = ru.ru_utime + ru.ru_stime
    if p.returncode != 0:
        raise SystemExit(f"load generator failed ({p.returncode}): {' '.join(cmd)}\n{text}")
    if jf:
        with open(jf) as f:
            r = json.load(f)["results"]
        os.unlink(jf)
        reqs, elapsed = r["requests"], r["elapsed_s"]
        p99 = None
        m = re.search(r"p99 ([0-9.]+)(µs|ms|s)\b", text)
        if m:
            p99 = float(m.group(1)) * {"µs": 1e-3, "ms": 1.0, "s": 1e3}[m.group(2)]
    else:
        m = re.search(r"(\d+) requests in ([0-9.]+)(m?s)", text)
        reqs = int(m.group(1))
        elapsed = float(m.group(2)) / (1000 if m.group(3) == "ms" else 1)
        p99 = None
    return reqs, elapsed, client_cpu, wall, p99, text


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--server", action="append", required=True,
                    help="LABEL=COMMAND with {port} where the port goes")
    ap.add_argument("--load", default="okring",
                    help="okring, wrk, or LABEL=PATH (the okring binary at PATH); several, comma-separated "
                         "(okring,wrk: each server is driven by each, alternated)")
    ap.add_argument("--okring", default=os.environ.get("OKRING", "okring"),
                    help="okring binary used as load generator")
    ap.add_argument("--conns", type=int, default=256)
    ap.add_argument("--pipeline", type=int, default=1)
    ap.add_argument("--rate", type=float)
    ap.add_argument("--duration", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--server-cpu", type=int, default=1)
    ap.add_argument("--client-cpu", type=int, default=0)
    ap.add_argument("--json")
    args = ap.parse_args()

    loads = []
    args.load_bins = {}
    for load in args.load.split(","):
        if "=" in load:
            label, path = load.split("=", 1)
            args.load_bins[label] = path
            load = label
        elif load not in ("okring", "wrk"):
            raise SystemExit(f"--load {load}: okring, wrk or LABEL=PATH (an okring binary)")
        loads.append(load)
    servers = []
    for spec in args.server:
        label, cmd = spec.split("=", 1)
        port = free_port()
        argv = shlex.split(cmd.replace("{port}", str(port)))
        p = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                             preexec_fn=lambda: os.sched_setaffinity(0, {args.server_cpu}))
        servers.append({"label": label, "cmd": argv, "port": port, "proc": p})
    try:
        for s in servers:
            if not wait_port(s["port"]):
                raise SystemExit(f"{s['label']}: nothing listening on port {s['port']}")
            run_load(args, loads[0], s["port"], args.warmup, args.client_cpu)
        combos = [(s, l) for s in servers for l in loads]
        for c in combos:
            c[0].setdefault("by_load", {})[c[1]] = []
        for r in range(args.repeat):
            order = combos if r % 2 == 0 else list(reversed(combos))
            for s, load in order:
                c0 = tree_cpu_s(s["proc"].pid)
                reqs, elapsed, ccpu, wall, p99, _ = run_load(args, load, s["port"], args.duration, args.client_cpu)
                c1 = tree_cpu_s(s["proc"].pid)
                s["by_load"][load].append({
                    "repeat": r + 1, "requests": reqs, "elapsed_s": elapsed,
                    "req_per_s": reqs / elapsed,
                    "server_cpu_s": c1 - c0,
                    "server_cpu_us_per_req": (c1 - c0) * 1e6 / max(reqs, 1),
                    "server_util": (c1 - c0) / wall,
                    "client_cpu_s": ccpu,
                    "client_cpu_us_per_req": ccpu * 1e6 / max(reqs, 1),
                    "p99_ms": p99,
                })
    finally:
        for s in servers:
            s["proc"].terminate()
        for s in servers:
            try:
                s["proc"].wait(timeout=10)
            except subprocess.TimeoutExpired:
                s["proc"].kill()

    rows = [(f"{s['label']}" + (f"/{l}" if len(loads) > 1 else ""), s, l) for s in servers for l in loads]
    base = servers[0]["by_load"][loads[0]]
    load_avg = open("/proc/loadavg").read().split()[:3]
    print(f"load generator: {'+'.join(loads)}, {args.conns} connections, pipeline {args.pipeline}"
          f"{', rate ' + str(args.rate) if args.rate else ''}, {args.duration}s x {args.repeat}, "
          f"server CPU {args.server_cpu}, client CPU {args.client_cpu}, load average {' '.join(load_avg)}")
    hdr = f"{'server':<16}{'req/s':>11}{'srv µs/req':>12}{'srv CPU':>9}{'cli µs/req':>12}{'req/s ÷ A':>11}{'srv/req ÷ A':>13}{'cli/req ÷ A':>13}"
    print(hdr)
    summaries = {}
    for label, s, load in rows:
        runs = s["by_load"][load]
        med = lambda k: statistics.median(x[k] for x in runs)
        ratio = lambda k: statistics.median(a[k] / b[k] for a, b in zip(runs, base))
        m = summaries[label] = {
            "req_per_s": med("req_per_s"),
            "server_cpu_us_per_req": med("server_cpu_us_per_req"),
            "server_util": med("server_util"),
            "client_cpu_us_per_req": med("client_cpu_us_per_req"),
            "ratio_req_per_s": ratio("req_per_s"),
            "ratio_server_cpu_per_req": ratio("server_cpu_us_per_req"),
            "ratio_client_cpu_per_req": ratio("client_cpu_us_per_req"),
        }
        print(f"{label:<16}{m['req_per_s']:>11.0f}{m['server_cpu_us_per_req']:>12.2f}"
              f"{m['server_util'] * 100:>8.0f}%{m['client_cpu_us_per_req']:>12.2f}"
              f"{m['ratio_req_per_s']:>11.3f}{m['ratio_server_cpu_per_req']:>13.3f}{m['ratio_client_cpu_per_req']:>13.3f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"args": vars(args), "load_average": load_avg, "summary": summaries,
                       "servers": [{k: v for k, v in s.items() if k != "proc"} for s in servers]},
                      f, indent=1)


if __name__ == "__main__":
    main()
