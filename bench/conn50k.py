#!/usr/bin/env python3
"""Hold N concurrent keep-alive connections on one okring worker and
measure the server's resident memory per connection.

Steps:
1. raise RLIMIT_NOFILE for this process and for the server (setrlimit in
   the child before exec), and net.core.somaxconn when it is lower than
   the burst (root only; skipped otherwise);
2. start `okring serve --mode MODE --threads 1` pinned to --server-cpu,
   warm it with a short `okring load` (so the provided buffers and the
   allocator's arenas are touched) and read its idle VmRSS from
   /proc/<pid>/status;
3. open N connections from several client processes (each has its own
   descriptor table) and from 127.0.0.2, 127.0.0.3, ... (each source address
   has its own ~28k ephemeral ports; IP_BIND_ADDRESS_NO_PORT defers the
   port choice to connect(2)), all non-blocking, in bursts;
   where RLIMIT_NOFILE's hard limit cannot be raised (no CAP_SYS_RESOURCE,
   as in some containers and sandboxes), N is capped to what one server
   process may hold, and the run says so;
4. send one `GET /` on every connection, read every answer, and check each
   is a complete `HTTP/1.1 200` response;
5. read VmRSS again: (RSS with N live connections − idle RSS) ÷ N, and
   the server's own counters at exit.

It prints one summary line per step and exits non-zero if any connection
failed to connect or to get its answer. Kernel socket memory (buffers,
TCP state) is not in the server's RSS and is not counted here; it is
reported from /proc/net/sockstat for reference.

Usage: bench/conn50k.py [--okring PATH] [--conns 50000] [--mode uring] [--json FILE]
"""
import argparse
import errno
import json
import multiprocessing as mp
import os
import resource
import selectors
import socket
import subprocess
import sys
import time

IP_BIND_ADDRESS_NO_PORT = 24  # linux/in.h, Linux 4.2
PORTS_PER_SOURCE = 20000  # stay well under the ~28k ephemeral ports of one source IP
# Connections per client process (each process has its own descriptor table).
CLIENT_FDS_PER_PROC = 16000
REQUEST = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def sockstat():
    with open("/proc/net/sockstat") as f:
        for line in f:
            if line.startswith("TCP:"):
                return line.strip()
    return ""


def raise_nofile(n):
    """Raise RLIMIT_NOFILE to n (soft and hard) if allowed, else soft to the hard limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (max(n, soft), max(n, hard)))
    except (ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def sysctl_at_least(name, value):
    path = "/proc/sys/" + name.replace(".", "/")
    try:
        cur = int(open(path).read().split()[0])
        if cur < value:
            with open(path, "w") as f:
                f.write(str(value))
            return f"{name} {cur} -> {value}"
    except (OSError, ValueError) as e:
        return f"{name}: not changed ({e})"
    return None


def client(lo, hi, port, burst, q, go, done):
    """One client process: connections lo..hi; reports (connected, failed),
    then after `go` (answered, bad, unanswered), then holds them until `done`."""
    sel = selectors.DefaultSelector()
    socks = []
    failed = pending = 0
    i = lo
    while i < hi or pending:
        while i < hi and pending < burst:
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setsockopt(socket.IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, 1)
            s.bind((f"127.0.0.{2 + i // PORTS_PER_SOURCE}", 0))
            s.setblocking(False)
            e = s.connect_ex(("127.0.0.1", port))
            if e not in (0, errno.EINPROGRESS):
                failed += 1
                s.close()
            else:
                sel.register(s, selectors.EVENT_WRITE)
                pending += 1
                socks.append(s)
            i += 1
        events = sel.select(timeout=10)
        if not events:
            break
        for key, _ in events:
            s = key.fileobj
            sel.unregister(s)
            pending -= 1
            if s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) != 0:
                failed += 1
    q.put((len(socks) - failed - pending, failed + pending))
    go.wait()
    for s in socks:
        try:
            s.send(REQUEST)
        except OSError:
            pass
    bufs = {}
    for s in socks:
        try:
            sel.register(s, selectors.EVENT_READ)
            bufs[s] = b""
        except (ValueError, KeyError):
            pass
    answered = bad = 0
    deadline = time.time() + 60
    while bufs and time.time() < deadline:
        for key, _ in sel.select(timeout=5):
            s = key.fileobj
            try:
                data = s.recv(4096)
            except OSError:
                data = b""
            if not data:
                bad += 1
                sel.unregister(s)
                del bufs[s]
                continue
            b = bufs[s] + data
            head, sep, body = b.partition(b"\r\n\r\n")
            clen = 0
            for line in head.split(b"\r\n")[1:]:
                k, _, v = line.partition(b":")
                if k.strip().lower() == b"content-length":
                    clen = int(v)
            if not sep or len(body) < clen:
                bufs[s] = b
                continue
            if head.startswith(b"HTTP/1.1 200 "):
                answered += 1
            else:
                bad += 1
            sel.unregister(s)
            del bufs[s]
    q.put((answered, bad, len(bufs)))
    done.wait(120)
    for s in socks:
        s.close()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--okring", default=os.environ.get("OKRING", "okring"))
    ap.add_argument("--conns", type=int, default=50000)
    ap.add_argument("--mode", default="uring")
    ap.add_argument("--server-cpu", type=int, default=1)
    ap.add_argument("--client-cpu", type=int, default=0)
    ap.add_argument("--burst", type=int, default=2000, help="connects in flight at once")
    ap.add_argument("--json")
    args = ap.parse_args()

    n = args.conns
    fd_hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    nofile = n + 1024
    raise_nofile(nofile)
    got = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    if got < nofile:
        capped = got - 1024
        print(f"RLIMIT_NOFILE hard limit is {got} and cannot be raised here (setrlimit(2) needs "
              f"CAP_SYS_RESOURCE): one server process can hold at most ~{got} descriptors, so this "
              f"run holds {capped} connections instead of {n}")
        n = capped
        nofile = got
    fd_hard = got
    os.sched_setaffinity(0, {args.client_cpu})
    mp.set_start_method("fork")
    for note in filter(None, [sysctl_at_least("net.core.somaxconn", 4096),
                              sysctl_at_least("net.ipv4.tcp_max_syn_backlog", 4096)]):
        print("sysctl:", note)

    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()

    def child_setup():
        os.sched_setaffinity(0, {args.server_cpu})
        resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))

    srv = subprocess.Popen(
        [args.okring, "serve", "--mode", args.mode, "--threads", "1", "--bind", f"127.0.0.1:{port}",
         "--max-conns", str(n + 1000), "--idle-timeout", "300s",
         # Opening tens of thousands of connections takes longer than the 10 s default.
         "--header-timeout", "300s"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, preexec_fn=child_setup)
    result = {"conns": n, "mode": args.mode}
    ok = False
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.05)
        subprocess.run([args.okring, "load", f"http://127.0.0.1:{port}/", "-c", "64", "-d", "1s",
                        "--warmup", "0s"], check=True, stdout=subprocess.DEVNULL)
        time.sleep(0.3)
        idle = rss_kib(srv.pid)
        result["idle_rss_kib"] = idle
        print(f"server pid {srv.pid}: idle RSS after warm-up {idle} KiB; {sockstat()}")

        per_proc = max(1, min(CLIENT_FDS_PER_PROC, fd_hard - 256))
        nproc = (n + per_proc - 1) // per_proc
        q = mp.Queue()
        go, done = mp.Event(), mp.Event()
        procs = []
        t0 = time.time()
        for k in range(nproc):
            lo, hi = k * per_proc, min(n, (k + 1) * per_proc)
            p = mp.Process(target=client, args=(lo, hi, port, args.burst, q, go, done))
            p.start()
            procs.append(p)
        connected = failed_connect = 0
        for _ in procs:
            c, f = q.get(timeout=120)
            connected += c
            failed_connect += f
        t_conn = time.time() - t0
        time.sleep(0.5)  # let the server accept the tail of the backlog
        held = rss_kib(srv.pid)
        print(f"connected {connected}/{n} in {t_conn:.1f}s from {nproc} client processes and "
              f"{1 + (n - 1) // PORTS_PER_SOURCE} source addresses; server RSS {held} KiB "
              f"(+{(held - idle) * 1024 / max(connected, 1):.0f} B/conn, no request yet); {sockstat()}")
        result.update(connected=connected, connect_s=t_conn, rss_connected_kib=held)

        t1 = time.time()
        go.set()
        answered = bad = unanswered = 0
        for _ in procs:
            a, b, u = q.get(timeout=120)
            answered += a
            bad += b
            unanswered += u
        t_ans = time.time() - t1
        time.sleep(0.3)
        after = rss_kib(srv.pid)
        per_conn = (after - idle) * 1024 / max(connected, 1)
        print(f"answered {answered}/{connected} (bad {bad}, unanswered {unanswered}) in {t_ans:.1f}s; "
              f"server RSS {after} KiB: {per_conn:.0f} B per connection above idle; {sockstat()}")
        result.update(answered=answered, bad=bad, unanswered=unanswered, answer_s=t_ans,
                      rss_after_kib=after, rss_bytes_per_conn=per_conn)
        done.set()
        for p in procs:
            p.join(timeout=30)
        ok = connected == n and answered == n
    finally:
        srv.terminate()
        try:
            _, err = srv.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            srv.kill()
            _, err = srv.communicate()
        for line in err.splitlines():
            if "counters" in line or "stopped" in line:
                print(line)
    print(("PASS" if ok else "FAIL") + f": {n} connections held by one {args.mode} worker, "
          f"{result.get('rss_bytes_per_conn', 0):.0f} B RSS per connection (goal ≤ 1024)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=1)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
