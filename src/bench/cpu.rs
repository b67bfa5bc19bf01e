//! CPU sets and CPU time of a process tree, read from `/proc`.
//!
//! - [`parse_cpu_list`]: the kernel's CPU list syntax (`0-3,6`), as in
//!   `/sys/devices/system/cpu/online` and `taskset -c`.
//! - [`default_split`]: which CPUs the server and the load generator get.
//! - [`tree_cpu_ticks`]: user + system time of a process, its threads, its
//!   live descendants and the children it has already reaped, in clock ticks
//!   (proc(5): `/proc/<pid>/stat` fields 14–17, `/proc/<pid>/task/<tid>/children`,
//!   Linux 3.5+ with `CONFIG_PROC_CHILDREN`).
//! - [`CpuSampler`]: samples that figure on a background thread so the
//!   harness can interpolate it at the exact edges of a measured window.
//!
//! It does not pin anything (see [`crate::sys`]) and owns no descriptors
//! beyond the short-lived `/proc` reads.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime};

/// How often [`CpuSampler`] reads the process tree's CPU time, ms. The
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

/// `utime + stime + cutime + cstime` (clock ticks) from the text of
/// `/proc/<pid>/stat`. The command name (field 2) may hold spaces and
/// parentheses, so fields are counted after its last `)`.
pub fn stat_ticks(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    // After ")": field 3 (state) is index 0, so field n is index n - 3.
    let f: Vec<&str> = rest.split_whitespace().collect();
    let get = |n: usize| f.get(n - 3)?.parse::<u64>().ok();
    Some(get(14)? + get(15)? + get(16)? + get(17)?)
}

/// CPU time, in clock ticks, of `pid` and every live descendant: each
/// process's own user + system time (all its threads) plus that of the
/// children it has reaped (`cutime`/`cstime`), so a fork-per-connection
/// server's exited children are counted once their parent has waited for
/// them. `None` when `pid` itself is gone; descendants that exit while
/// the tree is walked are skipped.
pub fn tree_cpu_ticks(pid: u32) -> Option<u64> {
    let mut total = 0;
    let mut seen = HashSet::new();
    let mut stack = vec![pid];
    let mut root = true;
    while let Some(p) = stack.pop() {
        if !seen.insert(p) {
            continue;
        }
        let ticks = std::fs::read_to_string(format!("/proc/{p}/stat"))
            .ok()
            .and_then(|s| stat_ticks(&s));
        match ticks {
            Some(t) => total += t,
            None if root => return None,
            None => continue,
        }
        root = false;
        stack.extend(children_of(p));
    }
    Some(total)
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

/// A background thread that samples [`tree_cpu_ticks`] of one pid every
/// [`CPU_SAMPLE_EVERY_MS`] with wall-clock timestamps.
pub struct CpuSampler {
    stop: Arc<AtomicBool>,
    samples: Arc<Mutex<Vec<(SystemTime, u64)>>>,
    handle: Option<JoinHandle<()>>,
}

impl CpuSampler {
    /// Start sampling `pid`. Errors: the thread cannot be spawned.
    pub fn start(pid: u32) -> Result<CpuSampler, String> {
        let stop = Arc::new(AtomicBool::new(false));
        let samples = Arc::new(Mutex::new(Vec::new()));
        let (s, v) = (stop.clone(), samples.clone());
        let handle = std::thread::Builder::new()
            .name("okring-bench-cpu".into())
            .spawn(move || loop {
                if let Some(t) = tree_cpu_ticks(pid) {
                    let now = SystemTime::now();
                    v.lock().unwrap_or_else(|e| e.into_inner()).push((now, t));
                }
                if s.load(Ordering::Relaxed) {
                    break;
                }
                std::thread::sleep(Duration::from_millis(CPU_SAMPLE_EVERY_MS));
            })
            .map_err(|e| format!("cannot start the CPU sampler thread: {e}"))?;
        Ok(CpuSampler {
            stop,
            samples,
            handle: Some(handle),
        })
    }

    /// Stop sampling (after one last sample) and return the samples in time order.
    pub fn finish(mut self) -> Vec<(SystemTime, u64)> {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
        std::mem::take(&mut *self.samples.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

impl Drop for CpuSampler {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

/// The sampled tick count at `at`, linearly interpolated between the two
/// samples around it (clamped to the first/last sample outside their span).
/// `None` without samples.
pub fn ticks_at(samples: &[(SystemTime, u64)], at: SystemTime) -> Option<f64> {
    let secs = |t: SystemTime| {
        t.duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or(0.0)
    };
    let x = secs(at);
    let (first, last) = (samples.first()?, samples.last()?);
    if x <= secs(first.0) {
        return Some(first.1 as f64);
    }
    if x >= secs(last.0) {
        return Some(last.1 as f64);
    }
    let i = samples.partition_point(|s| secs(s.0) <= x);
    let (a, b) = (samples[i - 1], samples[i]);
    let (xa, xb) = (secs(a.0), secs(b.0));
    if xb <= xa {
        return Some(b.1 as f64);
    }
    Some(a.1 as f64 + (b.1 as f64 - a.1 as f64) * (x - xa) / (xb - xa))
}

/// CPU seconds the sampled tree used between `from` and `to`.
pub fn cpu_secs_between(samples: &[(SystemTime, u64)], from: SystemTime, to: SystemTime) -> f64 {
    match (ticks_at(samples, from), ticks_at(samples, to)) {
        (Some(a), Some(b)) => (b - a).max(0.0) / clock_ticks_per_sec() as f64,
        _ => 0.0,
    }
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
        let s = "42 (a) b (c)) S 1 42 42 0 -1 4194560 10 0 0 0 7 11 13 17 20 0 3";
        assert_eq!(stat_ticks(s), Some(7 + 11 + 13 + 17));
        assert_eq!(stat_ticks("garbage"), None);
    }

    #[test]
    fn interpolates_between_samples() {
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(100);
        let s = [(t0, 0), (t0 + Duration::from_secs(1), 100)];
        assert_eq!(ticks_at(&s, t0 + Duration::from_millis(250)), Some(25.0));
        assert_eq!(ticks_at(&s, t0 - Duration::from_secs(1)), Some(0.0));
        assert_eq!(ticks_at(&s, t0 + Duration::from_secs(9)), Some(100.0));
    }

    #[test]
    fn own_process_tree_has_cpu_time() {
        let me = std::process::id();
        let spin = std::time::Instant::now();
        while spin.elapsed() < Duration::from_millis(50) {
            std::hint::black_box(0u64);
        }
        assert!(tree_cpu_ticks(me).is_some());
        assert_eq!(tree_cpu_ticks(u32::MAX), None);
    }
}
