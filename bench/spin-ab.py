#!/usr/bin/env python3
"""A/B of `okring load --spin` (the open loop's polling window before a due
send): schedule lag, achieved rate, corrected latency and the generator's
CPU (rusage over wall time) at shares of the closed-loop rate, for each
load engine, against one epoll server. Server on CPU 1, generator on CPU 0.

Usage: bench/spin-ab.py target/release/okring
Environment: SPINS (0s,20us,50us), PCTS (10,40,80), ENGINES (uring,epoll),
DUR (4s per point). About 2 minutes with the defaults."""
import json, os, re, subprocess, sys, time
OK = sys.argv[1]
DUR = os.environ.get("DUR", "4s")
spins = os.environ.get("SPINS", "0s,20us,50us").split(",")
pcts = [int(x) for x in os.environ.get("PCTS", "10,40,80").split(",")]
engines = os.environ.get("ENGINES", "uring,epoll").split(",")
srv = subprocess.Popen(["taskset", "-c", "1", OK, "serve", "--mode", "epoll", "--threads", "1", "--bind", "127.0.0.1:0"], stderr=subprocess.PIPE, text=True)
line = srv.stderr.readline()
while "listening on" not in line:
    line = srv.stderr.readline()
port = re.search(r"listening on [0-9.]+:(\d+)", line).group(1)
url = f"http://127.0.0.1:{port}/"
def load(args):
    t = time.time()
    p = subprocess.Popen(["taskset", "-c", "0", OK, "load", url, "-c", "256", "--duration", DUR, "--warmup", "1s", "--json", "-"] + args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    out = p.stdout.read()
    _, _, ru = os.wait4(p.pid, 0)
    d = json.loads(out)
    return d, (ru.ru_utime + ru.ru_stime) / (time.time() - t)
print(f"kernel {os.uname().release} load {open('/proc/loadavg').read().split()[:3]}")
for eng in engines:
    d, cpu = load(["--engine", eng])
    cap = d["results"]["requests_per_sec"]
    print(f"{eng}: closed loop {cap:.0f} req/s")
    for p in pcts:
        for sp in spins:
            rate = cap * p / 100
            d, cpu = load(["--engine", eng, "--rate", str(int(rate)), "--spin", sp])
            r = d["results"]
            h = d["histograms"]
            lag = h.get("schedule_lag", {}).get("percentiles", {})
            lat = h["latency"]["percentiles"]
            us = lambda v: f"{v/1000:8.1f}" if v is not None else "       -"
            print(f"  {p:3d}% spin {sp:5s} rate {r['requests_per_sec']:9.0f} (target {rate:9.0f}, {r['requests_per_sec']/rate-1:+.3%}) "
                  f"lag p99 {us(lag.get('99'))} p99.9 {us(lag.get('99.9'))} | lat p99 {us(lat['99'])} p99.9 {us(lat['99.9'])} us | client cpu {cpu:.2f} late {r['late_sends']}", flush=True)
srv.terminate(); srv.wait()
