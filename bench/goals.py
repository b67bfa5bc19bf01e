#!/usr/bin/env python3
"""Write README.md for a bench/compare.sh run: the command, host, commit,
and for each performance goal (docs/performance.md) the figures measured
in that run and whether the goal was met.

Inputs (all under the run directory): c256/, c64/, pipeline16/, rate/, few/,
sweep/ (okring bench outputs), below/ (bench/below-saturation.sh), client.json and nohist.json (bench/ab.py),
conn50k.json (bench/conn50k.py), strace-<mode>.txt (strace -c -f) with
strace-<mode>.server.log. A missing input makes its goal "not run".

Ratios are medians of per-repeat ratios (servers measured side by side in
the same repeat), as okring bench computes them.

Usage: bench/goals.py RUN_DIR [--okring PATH] [--load-before X] [--load-after X]
                      [--elapsed S] [--steal PERCENT] [--command CMD]
"""
import argparse
import json
import os
import re
import statistics
import subprocess


# Steal over this share of the run's CPU time makes the run not a result.
STEAL_LIMIT = 2.0


def load(path):
    try:
        with open(path) as f:
            return json.load(f)
    except OSError:
        return None


def per_repeat(results, key, server, other, load="okring"):
    """Median over repeats of results[server][key] / results[other][key]."""
    by = {}
    for r in results["runs"]:
        if r.get("ok") and r["load"] == load:
            by.setdefault(r["repeat"], {})[r["server"]] = r["results"][key]
    ratios = [v[server] / v[other] for v in by.values() if server in v and other in v and v[other]]
    return statistics.median(ratios) if ratios else None


def summary(results, server, load="okring"):
    for s in results["summary"]:
        if s["server"] == server and s["load"] == load:
            return s
    return None


def fmt(x, spec=".2f"):
    return "n/a" if x is None else format(x, spec)


def verdict(ok):
    return "not run" if ok is None else ("**met**" if ok else "**missed**")


def strace_per_request(run, mode):
    path = os.path.join(run, f"strace-{mode}.txt")
    log = os.path.join(run, f"strace-{mode}.server.log")
    try:
        text = open(path).read()
        m = re.search(r"stopped after .*?: (\d+) requests", open(log).read())
    except OSError:
        return None
    if not m:
        return None
    reqs = int(m.group(1))
    calls = {}
    for line in text.splitlines():
        f = line.split()
        # % time, seconds, usecs/call, calls, [errors], syscall
        if len(f) >= 5 and f[0][0].isdigit() and not f[-1].startswith("total"):
            calls[f[-1]] = int(f[3])
    hot = {k: v / reqs for k, v in calls.items() if v / reqs >= 0.001}
    return reqs, hot


def client_per_core(client):
    """(okring load's row, wrk's row, okring's req/s per client core ÷ wrk's)
    from bench/ab.py's JSON against the uring server, or None."""
    s = (client or {}).get("summary", {})
    o, w = s.get("uring/okring"), s.get("uring/wrk")
    if not (o and w):
        return None
    return o, w, w["client_cpu_us_per_req"] / o["client_cpu_us_per_req"]


def point(below, label):
    """One bench/below-saturation.sh point: (load JSON, server figures) or None."""
    ld = load(os.path.join(below, f"{label}.json"))
    pt = load(os.path.join(below, f"{label}.point.json"))
    return (ld, pt) if ld and pt else None


def us(ns):
    return ns / 1e3


# Inclusive shares read out of bench/profiles.sh's reports: the kernel paths
# the goals' misses come down to.
PROFILE_SYMBOLS = [
    ("io_send", "send (io_uring)"),
    ("io_recv", "recv (io_uring)"),
    ("io_connect", "connect (io_uring)"),
    ("__sys_shutdown", "shutdown(2)"),
    ("net_rx_action", "softirq receive (on loopback, the peer's TCP path as well)"),
    ("tcp_rcv_state_process", "handshake and teardown states"),
    ("io_cqring_wait", "waiting for CQEs"),
    ("finish_task_switch.isra.0", "context switch"),
    ("__sys_accept4", "accept4(2)"),
    ("io_accept", "accept (io_uring)"),
    ("__x64_sys_close", "close(2)"),
    ("io_close", "close (io_uring)"),
    ("native_write_msr", "MSR writes (timer, IPI: a VM exit)"),
    ("halted", "idle: halted (self share of the idle routine)"),
]
# The routine a CPU halts in when idle (self share): in a VM, or on bare metal.
IDLE_SYMBOLS = ("pv_native_safe_halt", "native_safe_halt", "intel_idle", "mwait_idle_with_hints",
                "acpi_idle_do_entry", "default_idle")
PROFILES = [
    ("r10-uring-wait50us", "uring server at 10 %, 50 µs wait cap, its own run time (goal 1)"),
    ("close256-client", "okring load --close, 256 conns (goal 2)"),
    ("ns-close32-uring-server", "uring server, --close, 32 conns, veth + RPS (goal 2)"),
    ("ns-close32-epoll-server", "epoll server, same (goal 2)"),
    ("lag80-client", "okring load at 80 % of its closed-loop rate (goal 3)"),
    ("closed-client", "okring load closed loop, same server (goal 3)"),
    ("c256-uring-server", "uring server, 256 conns closed loop (goal 5)"),
]


def profile_table(prof):
    """A table of inclusive shares per profile, and the perf stat of the
    uring server at 10 % with and without a wait cap."""
    if not os.path.isdir(prof):
        return []
    out = ["", "### Profiles (bench/profiles.sh: perf record, inclusive share of the samples: of one CPU, idle included, or of the goal 1 server's run time)", ""]
    have = [(n, d) for n, d in PROFILES if os.path.exists(os.path.join(prof, f"profile-{n}.txt"))]
    if not have:
        return out + ["not run: " + " ".join(open(os.path.join(prof, f)).read().strip()
                                         for f in os.listdir(prof) if f.endswith("not-run.txt"))]
    shares = {}
    for n, _ in have:
        for line in open(os.path.join(prof, f"profile-{n}.txt")):
            f = line.split()
            if len(f) >= 4 and f[0].endswith("%") and f[2] in ("[k]", "[.]"):
                shares.setdefault(n, {}).setdefault(f[3], f[0])
                if f[3] in IDLE_SYMBOLS:
                    best = shares[n].get("halted", "0.00%")
                    shares[n]["halted"] = max(best, f[1], key=lambda x: float(x.rstrip("%")))
    out.append("| path | " + " | ".join(d for _, d in have) + " |")
    out.append("|---|" + "---:|" * len(have))
    for sym, desc in PROFILE_SYMBOLS:
        cells = [shares.get(n, {}).get(sym, "< 1.5%") for n, _ in have]
        out.append(f"| {desc} (`{sym}`) | " + " | ".join(cells) + " |")
    stats = []
    for w in ("0", "50us"):
        path = os.path.join(prof, f"stat-r10-uring-wait{w}.txt")
        try:
            text = open(path).read()
        except OSError:
            continue
        tc = re.search(r"([\d.,]+) msec task-clock", text)
        cs = re.search(r"([\d,]+)\s+context-switches", text)
        if tc and cs:
            ms, n = float(tc.group(1).replace(",", "")), int(cs.group(1).replace(",", ""))
            stats.append(f"`--uring-wait {w}`: {ms:.0f} ms task clock, {n} context switches "
                         f"({ms * 1e3 / n:.1f} µs per switch)" if n else f"`--uring-wait {w}`: {ms:.0f} ms")
    if stats:
        out += ["", "uring server at 10 %, perf stat over 3 s: " + "; ".join(stats) + "."]
    return out


def below_saturation_goals(run, c256, pipe, client):
    """The goals for below saturation, churn, the open-loop schedule, the
    sweep and the pushed saturated figures (docs/performance.md), from
    below/ (bench/below-saturation.sh), sweep/ (okring bench --rates) and
    the saturated parts of this run."""
    below = os.path.join(run, "below")
    out = ["", "## Below saturation, churn, the open-loop schedule, the sweep", "",
           "| # | goal | measured | verdict |", "|---|---|---|---|"]

    # 1. Fixed rate: one uring configuration must meet every rate's CPU and
    # latency bound.
    targets = {10: 0.5, 25: 0.6, 50: 0.75}
    variants = ["uring", "uring-wait50us", "uring-wait100us", "uring-wait200us"]
    ok_by_variant = {v: True for v in variants}
    parts = []
    seen = False
    for pct, bound in targets.items():
        e = point(below, f"r{pct}-epoll")
        if not e:
            ok_by_variant = {v: False for v in variants}
            continue
        seen = True
        el, ep = e
        e99, e999 = (el["histograms"]["latency"]["percentiles"][q] for q in ("99", "99.9"))
        cells = []
        for v in variants:
            u = point(below, f"r{pct}-{v}")
            if not u:
                ok_by_variant[v] = False
                continue
            ul, up = u
            r = up["server_threads_us_per_req"] / ep["server_threads_us_per_req"]
            u99, u999 = (ul["histograms"]["latency"]["percentiles"][q] for q in ("99", "99.9"))
            ok = r <= bound and u99 <= e99 + 100e3 and u999 <= e999 + 250e3
            ok_by_variant[v] &= ok
            name = "unbatched" if v == "uring" else v.replace("uring-wait", "cap ")
            cells.append(f"{name} {r:.2f}× (p99 {us(u99 - e99):+.0f} µs, p99.9 {us(u999 - e999):+.0f} µs)")
        parts.append(f"{pct} % ({el['config']['rate']:.0f} req/s, epoll {ep['server_threads_us_per_req']:.2f} µs/req, "
                     f"p99 {us(e99):.0f} µs): " + ", ".join(cells))
    met = [v for v, ok in ok_by_variant.items() if ok]
    txt = "; ".join(parts) or "n/a"
    if met:
        txt += f" — met by {', '.join(met)}"
    out.append("| 1 | fixed rate, 256 conns: uring CPU/req ≤ 0.5 / 0.6 / 0.75 × epoll at 10 / 25 / 50 %, "
               f"p99 ≤ epoll + 100 µs, p99.9 ≤ epoll + 250 µs | {txt} | {verdict(bool(met) if seen else None)} |")

    # 2. Churn.
    # Judged per path: loopback, and a veth pair with each side's receive path
    # on its own CPU (RPS), where the server's handshakes run on its core.
    parts = []
    g2 = None
    for prefix, path in (("", "loopback"), ("ns-", "veth + RPS")):
        met_here = None
        for c in (32, 256):
            rows = {m: point(below, f"{prefix}close{c}-{m}") for m in ("epoll", "uring", "prefork-epoll", "prefork-uring")}
            if not all(rows.values()):
                continue
            rps = {m: rows[m][0]["results"]["requests_per_sec"] for m in rows}
            # Over veth the server's inbound TCP path runs in softirq on its
            # core, outside its threads' run time: count the whole core.
            key = "server_core_us_per_req" if prefix else "server_threads_us_per_req"
            cpu = {m: rows[m][1][key] for m in rows}
            busy = {m: rows[m][1]["server_core_busy"] for m in rows}
            r_rps, r_cpu = rps["uring"] / rps["epoll"], cpu["uring"] / cpu["epoll"]
            r_pre = rps["prefork-uring"] / rps["prefork-epoll"]
            ok = r_rps >= 1.15 and r_cpu <= 0.85 and r_pre >= 1.0 and min(busy.values()) >= 0.95
            met_here = ok if met_here is None else (met_here and ok)
            parts.append(f"{path}, {c} conns: uring ÷ epoll {r_rps:.2f}× req/s ({rps['uring']:.0f} vs {rps['epoll']:.0f}), "
                         f"{r_cpu:.2f}× CPU/req; prefork uring ÷ epoll workers {r_pre:.2f}× req/s; "
                         f"server core busy {min(busy.values()):.0%}–{max(busy.values()):.0%}")
        if met_here is not None:
            g2 = met_here or bool(g2)
    out.append("| 2 | churn (--close, 32 and 256 conns): uring ≥ 1.15 × epoll req/s, ≤ 0.85 × CPU/req; "
               "prefork uring workers ≥ epoll workers; server core ≥ 95 % busy | "
               f"{'; '.join(parts) or 'n/a'} | {verdict(g2)} |")

    # 3. Open-loop schedule, both load engines; judged on the default one
    # (uring), the other's figures beside it.
    parts = []
    g3 = None
    by_engine = {}
    for engine in ("uring", "epoll"):
        cap = point(below, f"cap-load-{engine}")
        if not cap:
            continue
        cells = []
        for pct in (10, 40, 80):
            p = point(below, f"lag{pct}-{engine}")
            if not p:
                continue
            ld = p[0]
            lag = ld["histograms"]["schedule_lag"]["percentiles"]["99"]
            target = ld["config"]["rate"]
            got = ld["results"]["requests_per_sec"]
            off = got / target - 1
            ok = lag <= 50e3 and abs(off) <= 0.005
            by_engine[engine] = ok if engine not in by_engine else (by_engine[engine] and ok)
            cells.append(f"{pct} % lag p99 {us(lag):.1f} µs, rate {off:+.2%}, {ld['results']['late_sends']} late")
        parts.append(f"{engine} engine (closed loop {cap[0]['results']['requests_per_sec']:.0f} req/s): "
                     + ", ".join(cells)
                     + ("" if engine not in by_engine else (" — met" if by_engine[engine] else " — missed")))
    g3 = by_engine.get("uring")
    out.append("| 3 | open loop up to 80 % of the client core's closed-loop rate: schedule lag p99 ≤ 50 µs, "
               f"rate within 0.5 % (verdict: the default engine, uring) | {'; '.join(parts) or 'n/a'} | {verdict(g3)} |")

    # 4. The sweep.
    sweep = load(os.path.join(run, "sweep/results.json"))
    g4 = None
    txt = "n/a"
    if sweep and sweep.get("sweep"):
        sw = sweep["sweep"]
        caps = ", ".join(f"{c['server']} {c['capacity_rps']:.0f} req/s" if c.get("capacity_rps")
                         else f"{c['server']} none" for c in sw["capacity_at_slo"])
        plots = [f for f in ("sweep-p50.svg", "sweep-p99.svg", "sweep-p99.9.svg", "sweep-cpu.svg")
                 if os.path.exists(os.path.join(run, "sweep", f))]
        lags = [pt["schedule_lag_p99_ns"] for pt in sw["points"] if pt.get("schedule_lag_p99_ns") is not None]
        txt = (f"{len(sw['points'])} points; capacity at {sw['slo']['percentile']} ≤ "
               f"{sw['slo']['bound_ns'] / 1e6:g} ms: {caps}; plots: {', '.join(plots)}"
               + (f"; generator lag p99 {us(min(lags)):.0f}–{us(max(lags)):.0f} µs" if lags else ""))
        g4 = len(plots) == 4 and bool(sw["capacity_at_slo"])
    out.append(f"| 4 | okring bench --rates auto --slo p99=1ms: sweep, plots, capacity at the objective | {txt} | {verdict(g4)} |")

    # 5. Saturated figures, pushed.
    parts = []
    oks = []
    if c256:
        r = per_repeat(c256, "server_cpu_us_per_req", "uring", "epoll")
        parts.append(f"256 conns uring ÷ epoll CPU/req {fmt(r)}")
        oks.append(r is not None and r <= 0.80)
    if pipe and summary(pipe, "nginx"):
        u = summary(pipe, "uring")
        r = per_repeat(pipe, "requests_per_sec", "uring", "nginx")
        parts.append(f"×16 pipelining {u['requests_per_sec_median'] / 1e6:.2f}M req/s "
                     f"({u['server_cpu_util_median'] * 100:.0f} % server CPU), {fmt(r, '.1f')} × nginx")
        oks.append(u["requests_per_sec_median"] >= 3.5e6 and r is not None and r >= 14)
    pc = client_per_core(client)
    if pc:
        parts.append(f"okring load ÷ wrk req/s per client core {pc[2]:.2f}")
        oks.append(pc[2] >= 1.5)
    g5 = all(oks) if len(oks) == 3 else None
    out.append("| 5 | saturated: uring ≤ 0.80 × epoll CPU/req at 256 conns; ×16 pipelining ≥ 3.5M req/s and "
               f"≥ 14 × nginx; okring load ≥ 1.5 × wrk per client core | {'; '.join(parts) or 'n/a'} | {verdict(g5)} |")
    out += profile_table(os.path.join(run, "profiles"))
    out += ["", "Goal 6 (each technique kept only where its numbers pay) is the "
            "\"What was tried\" table of docs/performance.md. below/README.md has every "
            "point's figures; sweep/ is the okring bench output of the sweep."]
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("run")
    ap.add_argument("--okring", default="okring")
    ap.add_argument("--load-before", default="?")
    ap.add_argument("--steal", type=float,
                    help="share of all CPUs' time the hypervisor stole during the run, %% (/proc/stat)")
    ap.add_argument("--load-after", default="?")
    ap.add_argument("--elapsed", default="?")
    ap.add_argument("--command", default="bench/compare.sh")
    a = ap.parse_args()
    run = a.run
    c256 = load(os.path.join(run, "c256/results.json"))
    c64 = load(os.path.join(run, "c64/results.json"))
    pipe = load(os.path.join(run, "pipeline16/results.json"))
    rate = load(os.path.join(run, "rate/results.json"))
    few = load(os.path.join(run, "few/results.json"))
    client = load(os.path.join(run, "client.json"))
    nohist = load(os.path.join(run, "nohist.json"))
    conn = load(os.path.join(run, "conn50k.json"))

    def sh(cmd):
        try:
            return subprocess.run(cmd, shell=True, capture_output=True, text=True).stdout.strip()
        except OSError:
            return "?"

    host = (c256 or {}).get("host", {})
    lines = [
        f"# okring performance goals, {sh('date -u +%F')}",
        "",
        f"- command: `{a.command}` ({a.elapsed} s)",
        f"- commit: {sh('git rev-parse HEAD')}{'' if sh('git status --porcelain src') == '' else ' (with uncommitted changes in src/)'}",
        f"- okring: {sh(a.okring + ' --version')}",
        f"- kernel: {host.get('kernel', sh('uname -r'))}",
        f"- CPU: {host.get('cpu_model', '?')} ({host.get('cpus', '?')} CPUs)",
        f"- rustc: {host.get('rustc', sh('rustc --version'))}",
        f"- nginx: {sh('nginx -v 2>&1') or 'not installed'}; wrk: {sh('wrk -v 2>&1 | head -1') or 'not installed'}",
        f"- load average (1/5/15 min) before: {a.load_before}, after: {a.load_after}",
        f"- CPU time stolen by the hypervisor during the run (steal, /proc/stat): "
        + ("not measured" if a.steal is None else f"{a.steal:.1f} % of both CPUs"),
        "",
    ]
    if a.steal is not None and a.steal > STEAL_LIMIT:
        lines += [
            f"**Not a result.** The hypervisor ran something else for {a.steal:.1f} % of this machine's "
            f"CPU time during the run (over {STEAL_LIMIT:g} %): a stall that hits one server's run and "
            "not the other's skews the ratios too. Rerun on a quiet host.",
            "",
        ]
    lines += [
        "Server pinned to one CPU, load generator to the other. Other processes",
        "may share the machine (see the load average): trust the ratios, which",
        "are medians of per-repeat ratios of servers measured side by side.",
        "",
        "| # | goal | measured | verdict |",
        "|---|---|---|---|",
    ]

    # 1. CPU per request at 256 connections.
    g1 = None
    txt = "n/a"
    if c256:
        u, e, n = (summary(c256, x) for x in ("uring", "epoll", "nginx"))
        r_e = per_repeat(c256, "server_cpu_us_per_req", "uring", "epoll")
        r_n = per_repeat(c256, "server_cpu_us_per_req", "uring", "nginx") if n else None
        txt = (f"uring {fmt(u and u['server_cpu_us_per_req_median'])} µs/req, epoll "
               f"{fmt(e and e['server_cpu_us_per_req_median'])}, nginx "
               f"{fmt(n and n['server_cpu_us_per_req_median'])}; uring ÷ epoll {fmt(r_e)}, "
               f"uring ÷ nginx {fmt(r_n)}")
        g1 = r_e is not None and r_e <= 0.75 and r_n is not None and r_n <= 0.6
        if c64 and summary(c64, "nginx"):
            txt += (f" (64 conns, server core saturated: uring ÷ epoll "
                    f"{fmt(per_repeat(c64, 'server_cpu_us_per_req', 'uring', 'epoll'))}, uring ÷ nginx "
                    f"{fmt(per_repeat(c64, 'server_cpu_us_per_req', 'uring', 'nginx'))})")
    lines.append(f"| 1 | server CPU/req, 256 conns: uring ≤ 0.75 × epoll and ≤ 0.6 × nginx | {txt} | {verdict(g1)} |")

    # 2. Requests/s vs nginx: at 64 connections (the server's core is the
    # limit there), with 256 connections (client-bound) for reference.
    g2 = None
    parts = []
    for name, res in (("64", c64), ("256", c256)):
        if res and summary(res, "nginx"):
            r = per_repeat(res, "requests_per_sec", "uring", "nginx")
            u, n = summary(res, "uring"), summary(res, "nginx")
            parts.append(f"{name} conns: uring {u['requests_per_sec_median']:.0f} req/s "
                         f"({u['server_cpu_util_median'] * 100:.0f} % CPU), nginx "
                         f"{n['requests_per_sec_median']:.0f} ({n['server_cpu_util_median'] * 100:.0f} %); "
                         f"ratio {fmt(r)}")
            if g2 is None:
                g2 = r is not None and r >= 1.3
    txt = "; ".join(parts) or "n/a"
    lines.append(f"| 2 | req/s with okring load, one server core: uring ≥ 1.3 × nginx | {txt} | {verdict(g2)} |")

    # 3. Pipelining.
    g3 = None
    txt = "n/a"
    if pipe:
        u = summary(pipe, "uring")
        n = summary(pipe, "nginx")
        r = per_repeat(pipe, "requests_per_sec", "uring", "nginx") if n else None
        txt = (f"uring {u['requests_per_sec_median']:.0f} req/s ({u['server_cpu_util_median'] * 100:.0f} % "
               f"server CPU, {u['server_cpu_us_per_req_median']:.2f} µs/req)"
               + (f", nginx {n['requests_per_sec_median']:.0f}; ratio {fmt(r, '.1f')}" if n else ""))
        g3 = u["requests_per_sec_median"] >= 2e6 and r is not None and r >= 10
    lines.append(f"| 3 | 16-deep pipelining: uring ≥ 2M req/s and ≥ 10 × nginx | {txt} | {verdict(g3)} |")

    # 4. Load generator per client core.
    g4 = None
    txt = "n/a"
    pc = client_per_core(client)
    if pc:
        o, w, eff = pc
        txt = (f"okring load {o['req_per_s']:.0f} req/s at {o['client_cpu_us_per_req']:.2f} µs client CPU/req; "
               f"wrk {w['req_per_s']:.0f} req/s at {w['client_cpu_us_per_req']:.2f} µs; "
               f"req/s per client core: okring ÷ wrk = {eff:.2f} (req/s ratio {o['req_per_s'] / w['req_per_s']:.2f})")
        g4 = eff >= 1.5
    lines.append(f"| 4 | okring load ≥ 1.5 × wrk's req/s per client core | {txt} | {verdict(g4)} |")

    # 5. Connections.
    g5 = None
    txt = "n/a"
    if conn:
        txt = (f"{conn.get('connected', 0)}/{conn['conns']} connected, {conn.get('answered', 0)} answered, "
               f"{conn.get('rss_bytes_per_conn', 0):.0f} B server RSS per connection above idle")
        full = conn["conns"] >= 50000
        g5 = full and conn.get("answered") == conn["conns"] and conn.get("rss_bytes_per_conn", 1e9) <= 1024
        if not full:
            txt += (f" — capped at {conn['conns']}: RLIMIT_NOFILE's hard limit cannot be raised here "
                    "(no CAP_SYS_RESOURCE)")
    lines.append(f"| 5 | 50k keep-alive connections, one uring worker, ≤ 1 KiB RSS each, all answered | {txt} | {verdict(g5)} |")

    # 6. Histogram cost.
    g6 = None
    txt = "n/a"
    if nohist:
        s = nohist["summary"]
        h, n = s["hist"], s["nohist"]
        cost = 1 - 1 / n["ratio_server_cpu_per_req"] if n["ratio_server_cpu_per_req"] else None
        txt = (f"server CPU/req with histograms {h['server_cpu_us_per_req']:.2f} µs, without "
               f"{n['server_cpu_us_per_req']:.2f} µs (ratio {n['ratio_server_cpu_per_req']:.3f}); "
               f"req/s ratio {n['ratio_req_per_s']:.3f}")
        g6 = n["ratio_server_cpu_per_req"] >= 0.98
    lines.append(f"| 6 | recording histograms costs ≤ 2 % | {txt} | {verdict(g6)} |")

    # 7. Open loop p99.
    g7 = None
    txt = "n/a"
    if rate:
        u, e = summary(rate, "uring"), summary(rate, "epoll")
        up, ep = (x["latency_merged"]["percentiles"]["99"] / 1e3 for x in (u, e))
        txt = (f"at {rate['config'].get('rate', '?')} req/s: uring p99 {up:.0f} µs, epoll p99 {ep:.0f} µs "
               f"(corrected for coordinated omission)")
        g7 = up <= ep
    lines.append(f"| 7 | open loop at ½ epoll's max: uring p99 ≤ epoll p99 | {txt} | {verdict(g7)} |")

    lines += below_saturation_goals(run, c256, pipe, client)

    lines += ["", "## Where io_uring does not win: 1 and 4 connections", ""]
    if few:
        lines += ["| conns | uring req/s | epoll req/s | uring µs/req | epoll µs/req | CPU/req ÷ epoll |",
                  "|---:|---:|---:|---:|---:|---:|"]
        for c in sorted({s["connections"] for s in few["summary"]}):
            u = next(s for s in few["summary"] if s["server"] == "uring" and s["connections"] == c)
            e = next(s for s in few["summary"] if s["server"] == "epoll" and s["connections"] == c)
            lines.append(f"| {c} | {u['requests_per_sec_median']:.0f} | {e['requests_per_sec_median']:.0f} | "
                         f"{u['server_cpu_us_per_req_median']:.2f} | {e['server_cpu_us_per_req_median']:.2f} | "
                         f"{u['server_cpu_per_req_ratio']:.2f} |")

    modes = load(os.path.join(run, "modes/results.json"))
    if modes:
        lines += ["", "## Every mode, 64 connections, one server core", "",
                  "| server | req/s | server CPU µs/req | server CPU | CPU/req ÷ epoll | errors |",
                  "|---|---:|---:|---:|---:|---:|"]
        for s_ in modes["summary"]:
            lines.append(f"| {s_['server']} | {s_['requests_per_sec_median']:.0f} | "
                         f"{s_['server_cpu_us_per_req_median']:.2f} | {s_['server_cpu_util_median'] * 100:.0f} % | "
                         f"{s_['server_cpu_per_req_ratio']:.2f} | {s_['errors']} |")
        lines.append("")
        lines.append("sequential serves one connection at a time: with 64 keep-alive "
                     "connections the others wait, time out and count as errors.")
    lines += ["", "## Syscalls per request (strace -c -f, 256 connections; strace itself slows the server)", ""]
    for m in ("uring", "epoll"):
        r = strace_per_request(run, m)
        if r:
            reqs, hot = r
            parts = ", ".join(f"{k} {v:.3f}" for k, v in sorted(hot.items(), key=lambda kv: -kv[1]))
            lines.append(f"- {m} ({reqs} requests): {parts}")

    lines += ["", "## Files", "",
              "- c256/, c64/, pipeline16/, rate/, few/, modes/: okring bench outputs (report.md, results.json, .hgrm, .hlog, SVG)",
              "- client.txt/.json: okring load vs wrk against one uring server (bench/ab.py)",
              "- nohist.txt/.json: uring with and without --no-hist (bench/ab.py)",
              "- conn50k.txt/.json: bench/conn50k.py",
              "- strace-<mode>.txt: strace -c -f of the server",
              "- below/: bench/below-saturation.sh (README.md, and per point the load JSON and the server's figures)",
              "- sweep/: okring bench --rates auto --slo p99=1ms (report.md, results.json `sweep`, sweep-*.svg)",
              "- profiles/: bench/profiles.sh (perf report per profile, perf stat of the uring server at 10 %)"]
    with open(os.path.join(run, "README.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    end = next(i for i, l in enumerate(lines) if l.startswith("## Where io_uring does not win"))
    start = next(i for i, l in enumerate(lines) if l.startswith("| # | goal"))
    print("\n".join(lines[start:end]))


if __name__ == "__main__":
    main()
