//! `okring trace`'s analysis: the system calls a server made, read from
//! `strace -f -ttt` output, normalised and grouped per connection. This
//! module is pure; [`run`] runs strace, the server and the client.
//!
//! Normalised means the numbers that change from run to run are replaced
//! by names: descriptors by what they are (`listener`, `conn1`, `ring`,
//! `epoll`, …, from the call that created them), process and thread ids
//! by `main`, `thread1`, `child1`, …, and every argument but the
//! descriptor is left out. A call belongs to a connection when its
//! descriptor is that connection's socket, when a process created for the
//! connection (a fork server's child) makes it, or when it creates or reaps
//! that process (`clone`, `wait4`). Everything else (event-loop waits,
//! timers, statistics) is shared by all requests.

use std::collections::{BTreeMap, HashMap};

pub mod run;

/// One system call from the strace log.
#[derive(Clone, Debug, PartialEq)]
pub struct RawCall {
    /// Thread id as strace printed it.
    pub pid: u32,
    /// Wall clock at entry, s since the Unix epoch (`-ttt`).
    pub ts: f64,
    pub name: String,
    /// The argument text between the parentheses, as printed.
    pub args: String,
    /// The text after ` = `: `79`, `-1 EAGAIN (…)`, `?`.
    pub ret: String,
}

/// Parse `strace -f -ttt` output (`PID SECONDS.MICROS name(args) = ret`),
/// joining `<unfinished ...>` / `<... name resumed>` halves per thread at
/// the entry's position. Signal (`---`) and exit (`+++`) lines and lines
/// of any other shape are skipped.
pub fn parse(text: &str) -> Vec<RawCall> {
    let mut out: Vec<RawCall> = Vec::new();
    let mut pending: HashMap<u32, usize> = HashMap::new();
    for line in text.lines() {
        // strace pads the pid column: `6915  1796220644.007048 …`.
        let Some((pid, rest)) = line.trim_start().split_once(' ') else {
            continue;
        };
        let Some((ts, rest)) = rest.trim_start().split_once(' ') else {
            continue;
        };
        let (Ok(pid), Ok(ts)) = (pid.parse::<u32>(), ts.parse::<f64>()) else {
            continue;
        };
        let rest = rest.trim_start();
        if let Some(resumed) = rest.strip_prefix("<... ") {
            // `<... read resumed>"GET …", 65536) = 79`
            let Some(i) = pending.remove(&pid) else {
                continue;
            };
            let tail = resumed.split_once("resumed>").map_or("", |x| x.1);
            let (args_tail, ret) = split_ret(tail);
            let call = &mut out[i];
            let tail = args_tail.strip_suffix(')').unwrap_or(args_tail);
            if !tail.is_empty() && !call.args.is_empty() && !tail.starts_with(',') {
                call.args.push_str(", ");
            }
            call.args.push_str(tail);
            call.ret = ret;
            continue;
        }
        let Some(open) = rest.find('(') else { continue };
        let name = &rest[..open];
        if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            continue;
        }
        let body = &rest[open + 1..];
        if let Some(args) = body.strip_suffix("<unfinished ...>") {
            pending.insert(pid, out.len());
            out.push(RawCall {
                pid,
                ts,
                name: name.into(),
                args: args.trim_end().trim_end_matches(',').to_string(),
                ret: String::new(),
            });
            continue;
        }
        let (args, ret) = split_ret(body);
        out.push(RawCall {
            pid,
            ts,
            name: name.into(),
            args: args.strip_suffix(')').unwrap_or(args).to_string(),
            ret,
        });
    }
    out
}

/// `args)   = ret` → (`args)`, `ret`), at the last ` = ` (strace pads
/// short calls with spaces before it).
fn split_ret(s: &str) -> (&str, String) {
    match s.rfind(" = ") {
        Some(i) if s[..i].trim_end().ends_with(')') => {
            (s[..i].trim_end(), s[i + 3..].trim().to_string())
        }
        _ => (s.trim_end(), String::new()),
    }
}

/// One normalised call.
#[derive(Clone, Debug, PartialEq)]
pub struct Call {
    pub ts: f64,
    /// `main`, `thread1`, `child2`, …
    pub who: String,
    pub name: String,
    /// `read(conn1) = 79`, `accept4(listener) = conn2`, `close(conn1)`.
    pub text: String,
    /// The connection (1-based, in order of accept) it belongs to.
    pub conn: Option<usize>,
}

/// Calls whose first argument is a descriptor.
const TAKES_FD: &[&str] = &[
    "read",
    "write",
    "readv",
    "writev",
    "pread64",
    "pwrite64",
    "recvfrom",
    "recvmsg",
    "sendto",
    "sendmsg",
    "close",
    "shutdown",
    "accept",
    "accept4",
    "listen",
    "bind",
    "connect",
    "setsockopt",
    "getsockopt",
    "getsockname",
    "getpeername",
    "epoll_wait",
    "epoll_pwait",
    "epoll_ctl",
    "io_uring_enter",
    "io_uring_register",
    "fcntl",
    "ioctl",
    "fstat",
    "lseek",
    "splice",
    "sendfile",
    "dup",
    "dup2",
    "dup3",
    "timerfd_settime",
    "signalfd4",
    "poll",
    "ppoll",
];

/// Calls on a socket that, when its descriptor was never seen created,
/// mean the kernel created it (an io_uring accept).
const KERNEL_MADE_FD_CALLS: &[&str] = &["shutdown", "setsockopt", "getsockopt"];

/// Calls that return a new descriptor, and the name it gets.
fn creates_fd(name: &str) -> Option<&'static str> {
    Some(match name {
        "socket" => "socket",
        "io_uring_setup" => "ring",
        "epoll_create" | "epoll_create1" => "epoll",
        "eventfd" | "eventfd2" => "eventfd",
        "signalfd" | "signalfd4" => "signalfd",
        "timerfd_create" => "timerfd",
        "open" | "openat" => "file",
        "dup" | "dup2" | "dup3" => "dup",
        _ => return None,
    })
}

/// Normalise `calls` (the whole log, so descriptors created at start-up
/// have their names) and keep those with `from ≤ ts ≤ to`.
pub fn normalise(calls: &[RawCall], from: f64, to: f64) -> Vec<Call> {
    #[derive(Default, Clone)]
    struct Proc {
        fds: HashMap<i64, String>,
        /// The connection this process or thread was created for.
        conn: Option<usize>,
        /// The connection this process accepted last (a fork server's
        /// next child serves it).
        last_accept: Option<usize>,
    }
    let mut procs: HashMap<u32, Proc> = HashMap::new();
    let mut who: HashMap<u32, String> = HashMap::new();
    let (mut conns, mut threads, mut children) = (0usize, 0usize, 0usize);
    let mut counts: HashMap<&'static str, usize> = HashMap::new();
    // Descriptors the kernel made (io_uring accepts): their close is an
    // SQE strace does not see, so a shutdown ends one and the number may
    // name the next connection.
    let mut kernel_made: std::collections::HashSet<(u32, i64)> = std::collections::HashSet::new();
    let mut out = Vec::new();
    for c in calls {
        let first_pid = who.is_empty();
        let label = who
            .entry(c.pid)
            .or_insert_with(|| {
                if first_pid {
                    "main".into()
                } else {
                    format!("task{}", c.pid)
                }
            })
            .clone();
        let first_arg = c.args.split([',', ')']).next().unwrap_or("").trim();
        let first_fd = first_arg.parse::<i64>().ok();
        let takes_fd = TAKES_FD.contains(&c.name.as_str());
        let first_fd = first_fd.filter(|_| takes_fd);
        // In a task with a ring, a socket first seen after start-up in a
        // call on it was made by the kernel: io_uring's multishot accept
        // returns it in a CQE.
        if let Some(fd) = first_fd {
            let known = procs.get(&c.pid).is_some_and(|p| p.fds.contains_key(&fd));
            let has_ring = procs
                .get(&c.pid)
                .is_some_and(|p| p.fds.values().any(|n| n.starts_with("ring")));
            if !known && has_ring && KERNEL_MADE_FD_CALLS.contains(&c.name.as_str()) && c.ts >= from
            {
                conns += 1;
                let name = format!("conn{conns}");
                procs.entry(c.pid).or_default().fds.insert(fd, name);
                kernel_made.insert((c.pid, fd));
            }
        }
        let p = procs.entry(c.pid).or_default().clone();
        let fd_name = |fd: i64| p.fds.get(&fd).cloned().unwrap_or_else(|| format!("fd{fd}"));
        let mut conn = p.conn;
        let mut arg_text = match first_fd {
            Some(fd) => fd_name(fd),
            None => String::new(),
        };
        if c.name == "epoll_ctl" {
            // epoll_ctl(epfd, op, fd, event): the connection is the third.
            let target = c
                .args
                .split(',')
                .nth(2)
                .and_then(|a| a.trim().parse::<i64>().ok());
            if let Some(fd) = target {
                let t = fd_name(fd);
                if let Some(n) = t.strip_prefix("conn").and_then(|n| n.parse().ok()) {
                    conn = Some(n);
                }
                arg_text = format!("{arg_text}, {t}");
            }
        }
        if let Some(name) = first_fd.and_then(|fd| p.fds.get(&fd)) {
            if let Some(n) = name.strip_prefix("conn").and_then(|n| n.parse().ok()) {
                conn = Some(n);
            }
        }
        if c.name == "poll" || c.name == "ppoll" {
            let fds: Vec<String> = c
                .args
                .split("fd=")
                .skip(1)
                .filter_map(|s| s.split(',').next()?.parse::<i64>().ok())
                .map(fd_name)
                .collect();
            if let Some(n) = fds
                .iter()
                .find_map(|f| f.strip_prefix("conn")?.parse().ok())
            {
                conn = conn.or(Some(n));
            }
            arg_text = fds.join(", ");
        }
        let ret_num = c
            .ret
            .split_whitespace()
            .next()
            .and_then(|r| r.parse::<i64>().ok());
        let mut ret_text = match ret_num {
            Some(-1) => c.ret.split(" (").next().unwrap_or(&c.ret).to_string(),
            Some(n) => n.to_string(),
            // An address (mmap, brk) differs every run.
            None if matches!(c.name.as_str(), "mmap" | "mremap" | "brk") => "ADDR".into(),
            None => c.ret.split(" (").next().unwrap_or(&c.ret).to_string(),
        };
        let entry = procs.entry(c.pid).or_default();
        match (c.name.as_str(), ret_num) {
            ("accept" | "accept4", Some(fd)) if fd >= 0 => {
                conns += 1;
                let name = format!("conn{conns}");
                entry.fds.insert(fd, name.clone());
                entry.last_accept = Some(conns);
                conn = Some(conns);
                ret_text = name;
            }
            ("socketpair" | "pipe" | "pipe2", Some(0)) => {
                // The two new descriptors are in the last `[a, b]`.
                let kind = if c.name == "socketpair" {
                    "pair"
                } else {
                    "pipe"
                };
                let ends = c
                    .args
                    .rsplit('[')
                    .next()
                    .and_then(|t| t.split(']').next())
                    .unwrap_or("");
                for fd in ends.split(',').filter_map(|x| x.trim().parse::<i64>().ok()) {
                    let n = counts.entry(kind).or_insert(0);
                    *n += 1;
                    let label = if *n == 1 {
                        kind.to_string()
                    } else {
                        format!("{kind}{n}")
                    };
                    entry.fds.insert(fd, label);
                }
            }
            ("listen", _) => {
                if let Some(fd) = first_fd {
                    entry.fds.insert(fd, "listener".into());
                    arg_text = "listener".into();
                }
            }
            ("close", Some(0)) => {
                if let Some(fd) = first_fd {
                    entry.fds.remove(&fd);
                    kernel_made.remove(&(c.pid, fd));
                }
            }
            ("shutdown", _) => {
                if let Some(fd) = first_fd {
                    if kernel_made.remove(&(c.pid, fd)) {
                        entry.fds.remove(&fd);
                    }
                }
            }
            ("clone" | "clone3" | "fork" | "vfork", Some(pid)) if pid > 0 => {
                let thread = c.args.contains("CLONE_THREAD");
                let name = if thread {
                    threads += 1;
                    format!("thread{threads}")
                } else {
                    children += 1;
                    format!("child{children}")
                };
                let mut child = entry.clone();
                if !thread {
                    child.conn = entry.last_accept;
                    conn = entry.last_accept.or(conn);
                }
                who.insert(pid as u32, name.clone());
                procs.insert(pid as u32, child);
                ret_text = name;
            }
            ("wait4" | "waitpid", Some(pid)) if pid > 0 => {
                let reaped = procs.get(&(pid as u32)).and_then(|q| q.conn);
                conn = reaped.or(conn);
                ret_text = who.get(&(pid as u32)).cloned().unwrap_or(ret_text);
            }
            (name, Some(fd)) if fd >= 0 => {
                // fcntl returns a descriptor only for F_DUPFD*; else flags.
                let kind = match name {
                    "fcntl" if c.args.contains("F_DUPFD") => Some("dup"),
                    _ => creates_fd(name),
                };
                let source = first_fd.and_then(|f| p.fds.get(&f)).cloned();
                if let (Some("dup"), Some(name)) = (kind, source) {
                    // A copy keeps the name of what it copies.
                    entry.fds.insert(fd, name.clone());
                    ret_text = name;
                } else if let Some(kind) = kind {
                    let n = counts.entry(kind).or_insert(0);
                    *n += 1;
                    let label = if *n == 1 {
                        kind.to_string()
                    } else {
                        format!("{kind}{n}")
                    };
                    entry.fds.insert(fd, label.clone());
                    ret_text = label;
                }
            }
            _ => {}
        }
        if c.ts < from || c.ts > to {
            continue;
        }
        let text = if c.name == "close" && ret_text == "0" {
            format!("close({arg_text})")
        } else {
            format!("{}({arg_text}) = {ret_text}", c.name)
        };
        out.push(Call {
            ts: c.ts,
            who: label,
            name: c.name.clone(),
            text,
            conn,
        });
    }
    out
}

/// The calls of one connection, in order, split into requests at each
/// read of the connection that returned bytes.
#[derive(Clone, Debug, PartialEq)]
pub struct ConnCalls {
    pub conn: usize,
    /// Calls before the first request's read (accept, fork), then one
    /// entry per request.
    pub requests: Vec<Vec<Call>>,
}

/// A whole trace: per connection, and the shared calls counted by name.
#[derive(Clone, Debug, PartialEq)]
pub struct Grouped {
    pub conns: Vec<ConnCalls>,
    /// Shared calls by normalised text, with their counts.
    pub shared: BTreeMap<String, usize>,
    /// Every call in the window by system-call name.
    pub by_name: BTreeMap<String, usize>,
    pub total: usize,
}

/// Whether `c` is a read of its connection that returned data.
fn reads_a_request(c: &Call) -> bool {
    matches!(c.name.as_str(), "read" | "recvfrom" | "recvmsg" | "readv")
        && c.text
            .rsplit(" = ")
            .next()
            .and_then(|r| r.parse::<i64>().ok())
            .is_some_and(|n| n > 0)
}

/// Group normalised calls.
pub fn group(calls: &[Call]) -> Grouped {
    let mut per: BTreeMap<usize, Vec<Vec<Call>>> = BTreeMap::new();
    let mut shared: BTreeMap<String, usize> = BTreeMap::new();
    let mut by_name: BTreeMap<String, usize> = BTreeMap::new();
    for c in calls {
        *by_name.entry(c.name.clone()).or_insert(0) += 1;
        match c.conn {
            Some(n) => {
                let reqs = per.entry(n).or_insert_with(|| vec![Vec::new()]);
                if reads_a_request(c) {
                    reqs.push(Vec::new());
                }
                if let Some(r) = reqs.last_mut() {
                    r.push(c.clone());
                }
            }
            None => *shared.entry(c.text.clone()).or_insert(0) += 1,
        }
    }
    Grouped {
        conns: per
            .into_iter()
            .map(|(conn, requests)| ConnCalls { conn, requests })
            .collect(),
        shared,
        by_name,
        total: calls.len(),
    }
}

/// The one-line summary: `epoll: 2.03 system calls per request (read 1.00,
/// sendto 1.00, epoll_wait 0.03)`, and for uring and epoll how many
/// io_uring_enter or epoll_wait calls that is per request.
pub fn summary(mode: &str, g: &Grouped, requests: u64) -> String {
    let n = requests.max(1) as f64;
    let mut names: Vec<(&String, &usize)> = g.by_name.iter().collect();
    names.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
    let top: Vec<String> = names
        .iter()
        .take(6)
        .map(|(k, v)| format!("{k} {:.2}", **v as f64 / n))
        .collect();
    let per = |name: &str| g.by_name.get(name).copied().unwrap_or(0) as f64 / n;
    let lead = if g.by_name.contains_key("io_uring_enter") || mode.contains("uring") {
        format!("{:.2} io_uring_enter per request; ", per("io_uring_enter"))
    } else if g.by_name.contains_key("epoll_wait") {
        format!("{:.2} epoll_wait per request; ", per("epoll_wait"))
    } else {
        String::new()
    };
    format!(
        "{mode}: {lead}{:.2} system calls per request ({} for {requests}): {}",
        g.total as f64 / n,
        g.total,
        if top.is_empty() {
            "none".into()
        } else {
            top.join(", ")
        }
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fork server's life for one connection, as strace prints it
    /// (pids and descriptors as in a real run).
    const FORK: &str = "\
100 1.000000 socket(AF_INET, SOCK_STREAM|SOCK_CLOEXEC, IPPROTO_TCP) = 4
100 1.000100 bind(4, {sa_family=AF_INET, sin_port=htons(0), sin_addr=inet_addr(\"127.0.0.1\")}, 16) = 0
100 1.000200 listen(4, 4096) = 0
100 2.000000 poll([{fd=3, events=POLLIN}, {fd=4, events=POLLIN}], 2, 100) = 1 ([{fd=4, revents=POLLIN}])
100 2.000100 accept4(4, NULL, NULL, SOCK_CLOEXEC|SOCK_NONBLOCK) = 7
100 2.000200 clone(child_stack=NULL, flags=CLONE_CHILD_CLEARTID|CLONE_CHILD_SETTID|SIGCHLD <unfinished ...>
101 2.000300 close(4)        = 0
100 2.000350 <... clone resumed>, child_tidptr=0x7f585ae6ded0) = 101
100 2.000400 accept4(4, NULL, NULL, SOCK_CLOEXEC|SOCK_NONBLOCK) = -1 EAGAIN (Resource temporarily unavailable)
101 2.000500 read(7,  <unfinished ...>
100   2.000550 poll([{fd=3, events=POLLIN}], 1, 100 <unfinished ...>
101 2.000560 <... read resumed>\"GET / HTTP/1.1\\r\\nHost: 127.0.0.1:\"..., 65536) = 79
100 2.000570 <... poll resumed>) = 0 (Timeout)
101 2.000600 sendto(7, \"HTTP/1.1 200 OK\\r\\n\"..., 103, MSG_NOSIGNAL, NULL, 0) = 103
101 2.000700 read(7, \"\", 65536) = 0
101 2.000800 close(7)        = 0
101 2.000900 exit_group(0)   = ?
101 2.000950 +++ exited with 0 +++
100 2.001000 --- SIGCHLD {si_signo=SIGCHLD, si_code=CLD_EXITED} ---
100 2.001100 wait4(-1, [{WIFEXITED(s) && WEXITSTATUS(s) == 0}], WNOHANG, NULL) = 101
100 2.001200 wait4(-1, 0x7ffe822a6ef0, WNOHANG, NULL) = -1 ECHILD (No child processes)
100 3.000000 exit_group(0)   = ?
";

    #[test]
    fn parses_and_joins_unfinished_calls() {
        let calls = parse(FORK);
        assert_eq!(calls.len(), 17, "{calls:#?}");
        let clone = calls.iter().find(|c| c.name == "clone").unwrap();
        assert_eq!(clone.ret, "101");
        assert_eq!(clone.ts, 2.0002);
        assert!(clone.args.contains("SIGCHLD") && clone.args.contains("child_tidptr"));
        let read = calls.iter().find(|c| c.name == "read").unwrap();
        assert_eq!(read.ret, "79");
        assert!(read.args.starts_with("7, "));
    }

    #[test]
    fn fork_calls_are_named_and_grouped_per_connection_in_order() {
        let calls = normalise(&parse(FORK), 2.0, 2.5);
        let g = group(&calls);
        assert_eq!(g.conns.len(), 1);
        let texts: Vec<String> = g.conns[0]
            .requests
            .iter()
            .flatten()
            .map(|c| format!("{}: {}", c.who, c.text))
            .collect();
        assert_eq!(
            texts,
            [
                "main: accept4(listener) = conn1",
                "main: clone() = child1",
                "child1: close(listener)",
                "child1: read(conn1) = 79",
                "child1: sendto(conn1) = 103",
                "child1: read(conn1) = 0",
                "child1: close(conn1)",
                "child1: exit_group() = ?",
                "main: wait4() = child1",
            ]
        );
        // accept and fork come before the request's read; the request
        // starts at the read that brought it.
        assert_eq!(g.conns[0].requests.len(), 2);
        assert_eq!(g.conns[0].requests[1][0].text, "read(conn1) = 79");
        assert_eq!(g.shared.get("poll(fd3, listener) = 1"), Some(&1));
        assert_eq!(g.shared.get("accept4(listener) = -1 EAGAIN"), Some(&1));
        assert_eq!(g.shared.get("wait4() = -1 ECHILD"), Some(&1));
        assert_eq!(g.total, 13);
        let line = summary("fork", &g, 1);
        assert!(
            line.starts_with("fork: 13.00 system calls per request (13 for 1): "),
            "{line}"
        );
        assert!(line.contains("accept4 2.00"), "{line}");
    }

    #[test]
    fn the_window_leaves_out_start_up_but_keeps_its_names() {
        let calls = normalise(&parse(FORK), 2.0005, 2.0007);
        let texts: Vec<&str> = calls.iter().map(|c| c.text.as_str()).collect();
        assert_eq!(
            texts,
            [
                "read(conn1) = 79",
                "poll(fd3) = 0",
                "sendto(conn1) = 103",
                "read(conn1) = 0"
            ]
        );
    }

    #[test]
    fn fcntl_flags_are_not_descriptors_and_copies_keep_their_name() {
        let log = "\
300 1.0 listen(3, 4096) = 0
300 1.1 fcntl(3, F_GETFL) = 0x802 (flags O_RDWR|O_NONBLOCK)
300 1.2 fcntl(3, F_DUPFD_CLOEXEC, 0) = 9
300 2.0 accept4(9, NULL, NULL, SOCK_CLOEXEC) = 10
300 2.1 fcntl(10, F_GETFL) = 2
";
        let texts: Vec<String> = normalise(&parse(log), 0.0, 3.0)
            .into_iter()
            .map(|c| c.text)
            .collect();
        assert_eq!(
            texts,
            [
                "listen(listener) = 0",
                "fcntl(listener) = 0x802",
                "fcntl(listener) = listener",
                "accept4(listener) = conn1",
                "fcntl(conn1) = 2",
            ]
        );
    }

    #[test]
    fn sockets_an_io_uring_accept_made_are_connections_until_shutdown() {
        let log = "\
400 1.0 io_uring_setup(64, {}) = 5
400 1.1 socketpair(AF_UNIX, SOCK_DGRAM, 0, [6, 7]) = 0
400 2.0 shutdown(8, SHUT_WR) = 0
400 2.1 recvfrom(6, 0x1, 10, MSG_DONTWAIT, NULL, NULL) = -1 EAGAIN (x)
400 2.2 shutdown(8, SHUT_WR) = 0
";
        let calls = normalise(&parse(log), 1.5, 3.0);
        let texts: Vec<(&str, Option<usize>)> =
            calls.iter().map(|c| (c.text.as_str(), c.conn)).collect();
        assert_eq!(
            texts,
            [
                ("shutdown(conn1) = 0", Some(1)),
                ("recvfrom(pair) = -1 EAGAIN", None),
                ("shutdown(conn2) = 0", Some(2)),
            ]
        );
        // Without a ring, an unknown descriptor stays unknown.
        let no_ring = log.replace("io_uring_setup(64, {}) = 5", "getpid() = 400");
        let calls = normalise(&parse(&no_ring), 1.5, 3.0);
        assert!(calls.iter().all(|c| c.conn.is_none()), "{calls:?}");
    }

    #[test]
    fn uring_enters_are_shared_and_counted_per_request() {
        let log = "\
200 1.0 io_uring_setup(4096, {flags=IORING_SETUP_SINGLE_ISSUER|IORING_SETUP_DEFER_TASKRUN, sq_entries=4096}) = 5
200 2.0 io_uring_enter(5, 3, 1, IORING_ENTER_GETEVENTS, NULL, 8) = 3
200 2.1 io_uring_enter(5, 40, 1, IORING_ENTER_GETEVENTS, NULL, 8) = 40
";
        let g = group(&normalise(&parse(log), 1.5, 3.0));
        assert!(g.conns.is_empty());
        assert_eq!(g.shared.get("io_uring_enter(ring) = 3"), Some(&1));
        let line = summary("uring", &g, 100);
        assert!(
            line.starts_with(
                "uring: 0.02 io_uring_enter per request; 0.02 system calls per request (2 for 100)"
            ),
            "{line}"
        );
    }
}
