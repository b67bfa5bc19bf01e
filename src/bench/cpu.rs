//! CPU sets, and what a server's process tree used, read from `/proc`.
//!
//! - [`parse_cpu_list`]: the kernel's CPU list syntax (`0-3,6`), as in
//!   `/sys/devices/system/cpu/online` and `taskset -c`.
//! - [`default_split`]: which CPUs the server and the load generator get.
//! - [`tree_usage`]: user and system time, minor faults (each including the
//!   children already reaped) and context switches of live threads, of a
//!   process, its threads and its live descendants (proc(5):
//!   `/proc/<pid>/stat` fields 10, 11, 14–17, `/proc/<pid>/task/<tid>/status`,
//!   `/proc/<pid>/task/<tid>/children`, Linux 3.5+ with `CONFIG_PROC_CHILDREN`).
//! - [`UsageSampler`]: samples that, the kernel probe's counters and the
//!   server's own `/metrics` counters on a background thread, so the
//!   harness can interpolate them at the exact edges of a measured window.
//!
//! It pins only its own sampler thread (to the load generator's CPUs).

use std::collections::{BTreeMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime};

/// How often [`UsageSampler`] reads the process tree's CPU time, ms. The
/// figure itself moves in clock ticks (10 ms at the usual `CLK_TCK` of 100),
/// so sampling faster than that gains nothing.
pub const CPU_SAMPLE_EVERY_MS: u64 = 20;

/// Parse a CPU list such as `1`, `0,2`, `2-3` or `0-1,4` into ascending,
/// de-duplicated CPU numbers. Errors: empty input, a non-number, or a range
/// whose end is below its start; the message quotes the offending part.
pub fn parse_cpu_list(s: &str) -> Result<Vec<usize>, String> {
    let mut out = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let num = |t: &str| {
            t.trim().parse::<usize>().map_err(|_| {
                format!("CPU list {s:?}: {t:?} is not a CPU number (write e.g. 0-1,3)")
            })
        };
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b) = (num(a)?, num(b)?);
                if b < a {
                    return Err(format!(
                        "CPU list {s:?}: range {part:?} ends below its start"
                    ));
                }
                out.extend(a..=b);
            }
            None => out.push(num(part)?),
        }
    }
    if out.is_empty() {
        return Err(format!("CPU list {s:?} is empty (write e.g. 0-1,3)"));
    }
    out.sort_unstable();
    out.dedup();
    Ok(out)
}

/// Format CPUs in the kernel's list syntax (`[0,1,2,5]` → `0-2,5`).
pub fn format_cpu_list(cpus: &[usize]) -> String {
    let mut parts = Vec::new();
    let mut i = 0;
    while i < cpus.len() {
        let start = cpus[i];
        let mut end = start;
        while i + 1 < cpus.len() && cpus[i + 1] == end + 1 {
            i += 1;
            end = cpus[i];
        }
        parts.push(if start == end {
            start.to_string()
        } else {
            format!("{start}-{end}")
        });
        i += 1;
    }
    parts.join(",")
}

/// Split the CPUs this process may use between server and load generator:
/// the load generator gets the lower half, the server the upper half (on 2
/// CPUs: server CPU 1, load CPU 0). With one CPU both share it.
/// Returns `(server, client)`.
pub fn default_split(allowed: &[usize]) -> (Vec<usize>, Vec<usize>) {
    if allowed.len() < 2 {
        return (allowed.to_vec(), allowed.to_vec());
    }
    let half = allowed.len() / 2;
    (allowed[half..].to_vec(), allowed[..half].to_vec())
}

/// Clock ticks per second, the unit of the times in `/proc/<pid>/stat`.
pub fn clock_ticks_per_sec() -> u64 {
    crate::sys::clock_ticks_per_sec()
}

/// One reading of a process tree from `/proc` (proc(5)).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TreeUsage {
    /// CPU time, ns: `sum_exec_runtime` of every live thread
    /// (`/proc/<pid>/task/<tid>/schedstat`, exact) plus `cutime + cstime`
    /// of every live process (the children it has reaped). Without
    /// schedstat (no `CONFIG_SCHED_INFO`), the threads' `utime + stime`.
    /// Unlike the tick counts below it does not lose the CPU time of many
    /// briefly running processes (a fork server's children), which tick
    /// sampling misses.
    pub run_ns: u64,
    /// User time, clock ticks: `utime + cutime` of every live process (so
    /// the children each has reaped are in).
    pub user_ticks: u64,
    /// System time, clock ticks: `stime + cstime`, likewise.
    pub sys_ticks: u64,
    /// Minor page faults: `minflt + cminflt`, likewise.
    pub minflt: u64,
    /// `voluntary_ctxt_switches` of every live thread
    /// (`/proc/<pid>/task/<tid>/status`). Threads and processes that have
    /// exited are not in it, so it can go down.
    pub vcsw: u64,
    /// `nonvoluntary_ctxt_switches` (preempted), likewise.
    pub ivcsw: u64,
}

impl TreeUsage {
    /// User + system ticks.
    pub fn cpu_ticks(&self) -> u64 {
        self.user_ticks + self.sys_ticks
    }
}

/// `(utime + stime, cutime + cstime)` in clock ticks from `/proc/…/stat` text.
fn stat_own_and_reaped(stat: &str) -> Option<(u64, u64)> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let get = |n: usize| f.get(n - 3)?.parse::<u64>().ok();
    Some((get(14)? + get(15)?, get(16)? + get(17)?))
}

/// `(utime + cutime, stime + cstime, minflt + cminflt)` from the text of
/// `/proc/<pid>/stat`. The command name (field 2) may hold spaces and
/// parentheses, so fields are counted after its last `)`.
pub fn stat_usage(stat: &str) -> Option<(u64, u64, u64)> {
    let rest = &stat[stat.rfind(')')? + 1..];
    // After ")": field 3 (state) is index 0, so field n is index n - 3.
    let f: Vec<&str> = rest.split_whitespace().collect();
    let get = |n: usize| f.get(n - 3)?.parse::<u64>().ok();
    Some((
        get(14)? + get(16)?,
        get(15)? + get(17)?,
        get(10)? + get(11)?,
    ))
}

/// `utime + stime + cutime + cstime` (clock ticks) from `/proc/<pid>/stat` text.
pub fn stat_ticks(stat: &str) -> Option<u64> {
    stat_usage(stat).map(|(u, s, _)| u + s)
}

/// `(voluntary, nonvoluntary)` context switches from `/proc/…/status` text.
fn status_switches(status: &str) -> (u64, u64) {
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name)?.trim().parse::<u64>().ok())
            .unwrap_or(0)
    };
    (
        field("voluntary_ctxt_switches:"),
        field("nonvoluntary_ctxt_switches:"),
    )
}

/// [`TreeUsage`] of `pid` and every live descendant. `None` when `pid`
/// itself is gone; descendants that exit while the tree is walked are
/// skipped.
pub fn tree_usage(pid: u32) -> Option<TreeUsage> {
    let mut total = TreeUsage::default();
    let mut seen = HashSet::new();
    let mut stack = vec![pid];
    let mut root = true;
    while let Some(p) = stack.pop() {
        if !seen.insert(p) {
            continue;
        }
        let stat = std::fs::read_to_string(format!("/proc/{p}/stat")).ok();
        let usage = stat
            .as_deref()
            .and_then(|s| Some((stat_usage(s)?, stat_own_and_reaped(s)?)));
        let (own_ticks, reaped_ticks) = match usage {
            Some(((u, s, f), own_reaped)) => {
                total.user_ticks += u;
                total.sys_ticks += s;
                total.minflt += f;
                own_reaped
            }
            None if root => return None,
            None => continue,
        };
        root = false;
        let tick_ns = 1_000_000_000 / clock_ticks_per_sec().max(1);
        let mut threads_ns = Some(0u64);
        if let Ok(tasks) = std::fs::read_dir(format!("/proc/{p}/task")) {
            for task in tasks.flatten() {
                if let Ok(text) = std::fs::read_to_string(task.path().join("status")) {
                    let (v, i) = status_switches(&text);
                    total.vcsw += v;
                    total.ivcsw += i;
                }
                let ns = std::fs::read_to_string(task.path().join("schedstat"))
                    .ok()
                    .and_then(|t| t.split_whitespace().next()?.parse::<u64>().ok());
                threads_ns = threads_ns.zip(ns).map(|(a, b)| a + b);
            }
        }
        total.run_ns += threads_ns.unwrap_or(own_ticks * tick_ns) + reaped_ticks * tick_ns;
        stack.extend(children_of(p));
    }
    Some(total)
}

/// CPU time, in clock ticks, of `pid` and every live descendant, the
/// children each has reaped included (so a fork-per-connection server's
/// exited children are counted once their parent has waited for them).
pub fn tree_cpu_ticks(pid: u32) -> Option<u64> {
    tree_usage(pid).map(|u| u.cpu_ticks())
}

/// Child pids of every thread of `pid` (`/proc/<pid>/task/<tid>/children`).
fn children_of(pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return out;
    };
    for task in tasks.flatten() {
        if let Ok(text) = std::fs::read_to_string(task.path().join("children")) {
            out.extend(
                text.split_whitespace()
                    .filter_map(|t| t.parse::<u32>().ok()),
            );
        }
    }
    out
}

/// One timestamped reading of the server: its process tree, the kernel
/// counters ([`KernelReader`]) and, every
/// [`SCRAPE_EVERY_SAMPLES`]th time, its own `/metrics` counters.
#[derive(Clone, Debug)]
pub struct Sample {
    pub at: SystemTime,
    pub tree: TreeUsage,
    pub kernel: Vec<u64>,
    /// `okring_*_total` counters by name (without prefix and suffix).
    pub counters: Option<BTreeMap<String, f64>>,
}

/// Every how many samples [`UsageSampler`] scrapes the server's `/metrics`
/// (100 ms): a scrape costs the server a little CPU, and the counter
/// ratios it feeds are ratios of deltas that staleness does not skew.
pub const SCRAPE_EVERY_SAMPLES: usize = 5;

/// Reads the kernel counters of one sample (the bench's
/// `KernelProbe::read`), one value per series.
pub type KernelReader = Box<dyn Fn() -> Vec<u64> + Send>;

/// A background thread that reads [`tree_usage`] of one pid, the kernel
/// counters ([`KernelReader`]) and the server's `/metrics` every
/// [`CPU_SAMPLE_EVERY_MS`], with wall-clock timestamps.
pub struct UsageSampler {
    stop: Arc<AtomicBool>,
    samples: Arc<Mutex<Vec<Sample>>>,
    handle: Option<JoinHandle<()>>,
}

impl UsageSampler {
    /// Start sampling `pid` from a thread restricted to `own_cpus` (so its
    /// reads are not counted on the server's CPUs). Errors: the thread
    /// cannot be spawned.
    pub fn start(
        pid: u32,
        kernel: Option<KernelReader>,
        metrics: Option<SocketAddr>,
        own_cpus: &[usize],
    ) -> Result<UsageSampler, String> {
        let stop = Arc::new(AtomicBool::new(false));
        let samples = Arc::new(Mutex::new(Vec::new()));
        let (s, v) = (stop.clone(), samples.clone());
        let own_cpus = own_cpus.to_vec();
        let handle = std::thread::Builder::new()
            .name("okring-bench-usage".into())
            .spawn(move || {
                let _ = crate::sys::pin_current_thread_to(&own_cpus);
                let mut n = 0usize;
                loop {
                    let kernel = kernel.as_ref().map(|read| read()).unwrap_or_default();
                    let counters = match metrics {
                        Some(addr) if n.is_multiple_of(SCRAPE_EVERY_SAMPLES) => {
                            scrape_counters(addr)
                        }
                        _ => None,
                    };
                    if let Some(tree) = tree_usage(pid) {
                        let at = SystemTime::now();
                        v.lock().unwrap_or_else(|e| e.into_inner()).push(Sample {
                            at,
                            tree,
                            kernel,
                            counters,
                        });
                    }
                    if s.load(Ordering::Relaxed) {
                        break;
                    }
                    n += 1;
                    std::thread::sleep(Duration::from_millis(CPU_SAMPLE_EVERY_MS));
                }
            })
            .map_err(|e| format!("cannot start the usage sampler thread: {e}"))?;
        Ok(UsageSampler {
            stop,
            samples,
            handle: Some(handle),
        })
    }

    /// Stop sampling (after one last sample) and return the samples in time order.
    pub fn finish(mut self) -> Vec<Sample> {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
        std::mem::take(&mut *self.samples.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

impl Drop for UsageSampler {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

/// GET /metrics from `addr` (200 ms bounds) and keep the `okring_X_total`
/// counters as `X` → value. `None` when the scrape fails.
fn scrape_counters(addr: SocketAddr) -> Option<BTreeMap<String, f64>> {
    use std::io::{Read, Write};
    let limit = Duration::from_millis(200);
    let mut s = std::net::TcpStream::connect_timeout(&addr, limit).ok()?;
    s.set_read_timeout(Some(limit)).ok()?;
    s.set_write_timeout(Some(limit)).ok()?;
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: okring\r\nConnection: close\r\n\r\n")
        .ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    let body = text.split_once("\r\n\r\n")?.1;
    Some(
        body.lines()
            .filter_map(|l| {
                let (name, value) = l.split_once(' ')?;
                let name = name.strip_prefix("okring_")?.strip_suffix("_total")?;
                Some((name.to_string(), value.trim().parse().ok()?))
            })
            .collect(),
    )
}

/// Series `f` of `samples` at `at`, linearly interpolated between the two
/// samples around it (clamped to the first/last sample outside their span).
/// `None` without samples.
pub fn value_at(samples: &[Sample], at: SystemTime, f: impl Fn(&Sample) -> f64) -> Option<f64> {
    let secs = |t: SystemTime| {
        t.duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or(0.0)
    };
    let x = secs(at);
    let (first, last) = (samples.first()?, samples.last()?);
    if x <= secs(first.at) {
        return Some(f(first));
    }
    if x >= secs(last.at) {
        return Some(f(last));
    }
    let i = samples.partition_point(|s| secs(s.at) <= x);
    let (a, b) = (&samples[i - 1], &samples[i]);
    let (xa, xb) = (secs(a.at), secs(b.at));
    if xb <= xa {
        return Some(f(b));
    }
    Some(f(a) + (f(b) - f(a)) * (x - xa) / (xb - xa))
}

/// How much series `f` grew between `from` and `to` (never below 0).
pub fn delta_between(
    samples: &[Sample],
    from: SystemTime,
    to: SystemTime,
    f: impl Fn(&Sample) -> f64,
) -> f64 {
    match (value_at(samples, from, &f), value_at(samples, to, &f)) {
        (Some(a), Some(b)) => (b - a).max(0.0),
        _ => 0.0,
    }
}

/// CPU seconds the sampled tree used between `from` and `to`
/// ([`TreeUsage::run_ns`]).
pub fn cpu_secs_between(samples: &[Sample], from: SystemTime, to: SystemTime) -> f64 {
    delta_between(samples, from, to, |s| s.tree.run_ns as f64) / 1e9
}

/// The growth of server counters `num` and `den` over the scrapes inside
/// `[from, to]` (the first and the last), as `Δnum / Δden`. `None` with
/// fewer than two scrapes in the window or no growth of `den`.
pub fn counter_ratio(
    samples: &[Sample],
    from: SystemTime,
    to: SystemTime,
    num: &str,
    den: &str,
) -> Option<f64> {
    let inside: Vec<&BTreeMap<String, f64>> = samples
        .iter()
        .filter(|s| s.at >= from && s.at <= to)
        .filter_map(|s| s.counters.as_ref())
        .collect();
    let (a, b) = (inside.first()?, inside.last()?);
    let d = |m: &str| Some(b.get(m)? - a.get(m)?);
    let dd = d(den)?;
    (dd > 0.0).then(|| d(num).map(|n| n / dd)).flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_lists_parse_and_format() {
        assert_eq!(parse_cpu_list("0-2,5").unwrap(), vec![0, 1, 2, 5]);
        assert_eq!(parse_cpu_list("3,1,1").unwrap(), vec![1, 3]);
        assert!(parse_cpu_list("2-1").is_err());
        assert!(parse_cpu_list("x").is_err());
        assert!(parse_cpu_list("").is_err());
        assert_eq!(format_cpu_list(&[0, 1, 2, 5, 7, 8]), "0-2,5,7-8");
    }

    #[test]
    fn split_gives_the_server_the_upper_half() {
        assert_eq!(default_split(&[0, 1]), (vec![1], vec![0]));
        assert_eq!(default_split(&[0, 1, 2, 3]), (vec![2, 3], vec![0, 1]));
        assert_eq!(default_split(&[4]), (vec![4], vec![4]));
    }

    #[test]
    fn stat_fields_are_counted_after_the_command_name() {
        // pid (comm) state ppid pgrp session tty tpgid flags minflt cminflt
        // majflt cmajflt utime stime cutime cstime ...
        let s = "42 (a) b (c)) S 1 42 42 0 -1 4194560 10 5 0 0 7 11 13 17 20 0 3";
        assert_eq!(stat_ticks(s), Some(7 + 11 + 13 + 17));
        assert_eq!(stat_usage(s), Some((7 + 13, 11 + 17, 10 + 5)));
        assert_eq!(stat_ticks("garbage"), None);
    }

    fn sample(at: SystemTime, user: u64, counters: Option<&[(&str, f64)]>) -> Sample {
        Sample {
            at,
            tree: TreeUsage {
                user_ticks: user,
                ..TreeUsage::default()
            },
            kernel: Vec::new(),
            counters: counters.map(|c| c.iter().map(|(k, v)| (k.to_string(), *v)).collect()),
        }
    }

    #[test]
    fn interpolates_between_samples() {
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(100);
        let s = [
            sample(t0, 0, None),
            sample(t0 + Duration::from_secs(1), 100, None),
        ];
        let user = |s: &Sample| s.tree.user_ticks as f64;
        assert_eq!(
            value_at(&s, t0 + Duration::from_millis(250), user),
            Some(25.0)
        );
        assert_eq!(value_at(&s, t0 - Duration::from_secs(1), user), Some(0.0));
        assert_eq!(value_at(&s, t0 + Duration::from_secs(9), user), Some(100.0));
        let d = delta_between(&s, t0, t0 + Duration::from_millis(500), user);
        assert_eq!(d, 50.0);
    }

    #[test]
    fn counter_ratios_use_the_scrapes_inside_the_window() {
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(100);
        let ms = |n| t0 + Duration::from_millis(n);
        let s = [
            sample(ms(0), 0, Some(&[("requests", 0.0), ("ring_enters", 0.0)])),
            sample(
                ms(100),
                0,
                Some(&[("requests", 100.0), ("ring_enters", 90.0)]),
            ),
            sample(ms(150), 0, None),
            sample(
                ms(200),
                0,
                Some(&[("requests", 300.0), ("ring_enters", 100.0)]),
            ),
            sample(
                ms(300),
                0,
                Some(&[("requests", 900.0), ("ring_enters", 500.0)]),
            ),
        ];
        // Inside [50, 250]: the scrapes at 100 and 200 ms.
        assert_eq!(
            counter_ratio(&s, ms(50), ms(250), "ring_enters", "requests"),
            Some(0.05)
        );
        assert_eq!(
            counter_ratio(&s, ms(50), ms(150), "ring_enters", "requests"),
            None
        );
        assert_eq!(
            counter_ratio(&s, ms(0), ms(300), "absent", "requests"),
            None
        );
    }

    #[test]
    fn status_gives_both_kinds_of_switch() {
        let text = "Name:\tokring\nvoluntary_ctxt_switches:\t12\nnonvoluntary_ctxt_switches:\t3\n";
        assert_eq!(status_switches(text), (12, 3));
        assert_eq!(status_switches("Name: x"), (0, 0));
    }

    #[test]
    fn own_process_tree_has_cpu_time() {
        let me = std::process::id();
        // This thread's own CPU time, ns (Linux 3.17+: /proc/thread-self).
        let own = || -> u64 {
            std::fs::read_to_string("/proc/thread-self/schedstat")
                .ok()
                .and_then(|t| t.split_whitespace().next()?.parse().ok())
                .expect("schedstat")
        };
        let start = own();
        let spin = std::time::Instant::now();
        // 20 ms of this thread's CPU, however busy the machine (≤ 10 s).
        while own() - start < 20_000_000 && spin.elapsed() < Duration::from_secs(10) {
            std::hint::black_box(0u64);
        }
        let spent = own();
        assert!(
            spent - start >= 20_000_000,
            "spun only {} ns",
            spent - start
        );
        assert!(tree_cpu_ticks(me).is_some());
        let u = tree_usage(me).unwrap();
        // The tree holds this live thread, so at least its CPU time.
        assert!(u.run_ns >= spent, "tree {u:?} < this thread's {spent} ns");
        assert!(u.vcsw + u.ivcsw > 0, "this process has switched: {u:?}");
        assert_eq!(tree_cpu_ticks(u32::MAX), None);
    }
}
