//! What the kernel did on the server's CPUs: context switches and system
//! calls, counted by perf events (perf_event_open(2), counting mode, one
//! counter per event per server CPU, see [`crate::sys::perf`]).
//!
//! The server is pinned alone on its CPUs and the load generator and this
//! harness on the others, so what these counters see there is the server's
//! work: its threads and processes (including the children a fork server
//! has already reaped, which `/proc` no longer shows) and the kernel work
//! done on its behalf (softirq, the idle task it switches to and from).
//!
//! Without the privilege (root, `CAP_PERFMON`, or
//! `kernel.perf_event_paranoid` ≤ 0) or without tracefs the probe is
//! empty and [`KernelProbe::note`] says why and how to fix it.

use crate::sys::perf::{self, PerfEvent};

/// System calls broken out by name (tracepoint `syscalls:sys_enter_NAME`),
/// the ones the server modes make per request or per connection; every
/// other call is in the total only.
pub const SYSCALLS: &[&str] = &[
    "io_uring_enter",
    "epoll_wait",
    "epoll_pwait",
    "epoll_ctl",
    "accept4",
    "accept",
    "read",
    "recvfrom",
    "write",
    "writev",
    "sendto",
    "sendmsg",
    "close",
    "shutdown",
    "poll",
    "clone",
    "clone3",
    "wait4",
    "exit_group",
    "futex",
];

/// One named series the probe reads.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Series {
    /// Context switches, all tasks on the server CPUs.
    ContextSwitches,
    /// Every system call entry (`raw_syscalls:sys_enter`).
    Syscalls,
    /// Entries of one system call.
    Syscall(&'static str),
}

/// Open counters, one set per server CPU.
pub struct KernelProbe {
    series: Vec<Series>,
    /// One counter group per CPU, and where each series is in its read
    /// (`None`: not opened on that CPU).
    groups: Vec<(perf::CpuGroup, Vec<Option<usize>>)>,
    note: Option<String>,
}

impl KernelProbe {
    /// Open every counter this machine allows on `cpus`. Never fails: what
    /// could not be opened is left out and explained in [`Self::note`].
    pub fn open(cpus: &[usize]) -> KernelProbe {
        let mut probe = KernelProbe {
            series: Vec::new(),
            groups: Vec::new(),
            note: None,
        };
        let opened: std::io::Result<Vec<perf::CpuGroup>> = cpus
            .iter()
            .map(|&c| perf::CpuGroup::open(&PerfEvent::ContextSwitches, c))
            .collect();
        match opened {
            Ok(groups) => {
                probe.series.push(Series::ContextSwitches);
                probe.groups = groups.into_iter().map(|g| (g, vec![Some(0)])).collect();
            }
            Err(e) => {
                let paranoid = std::fs::read_to_string("/proc/sys/kernel/perf_event_paranoid")
                    .map(|s| s.trim().to_string())
                    .unwrap_or_else(|_| "?".into());
                probe.note = Some(format!(
                    "context switches and system calls not counted: perf_event_open: {e} \
                     (perf_event_paranoid is {paranoid}; run as root, or \
                     sysctl kernel.perf_event_paranoid=0, or pass --syscalls to count \
                     system calls with strace in an extra, untimed run)"
                ));
                return probe;
            }
        }
        let Some(all) = perf::tracepoint_id("raw_syscalls/sys_enter") else {
            probe.note = Some(if perf::tracefs_mounted() {
                "system calls not counted: this kernel has no raw_syscalls:sys_enter tracepoint"
                    .into()
            } else {
                "system calls not counted: tracefs is not mounted \
                 (mount -t tracefs nodev /sys/kernel/tracing)"
                    .into()
            });
            probe.enable();
            return probe;
        };
        if let Err(e) = probe.add(cpus, Series::Syscalls, &PerfEvent::Tracepoint(all)) {
            probe.note = Some(format!("system calls not counted: perf_event_open: {e}"));
            probe.enable();
            return probe;
        }
        for &name in SYSCALLS {
            let Some(id) = perf::tracepoint_id(&format!("syscalls/sys_enter_{name}")) else {
                continue; // not a system call on this architecture or kernel
            };
            let _ = probe.add(cpus, Series::Syscall(name), &PerfEvent::Tracepoint(id));
        }
        probe.enable();
        probe
    }

    /// Start the groups once every member is in them.
    fn enable(&mut self) {
        if let Some(e) = self.groups.iter().find_map(|(g, _)| g.enable().err()) {
            self.note = Some(format!(
                "context switches and system calls not counted: PERF_EVENT_IOC_ENABLE: {e}"
            ));
            self.series.clear();
            self.groups.clear();
        }
    }

    /// Add `event` as `series` to every CPU's group. Errors when it opens on
    /// none; a CPU where it does not open counts 0 for it.
    fn add(&mut self, cpus: &[usize], series: Series, event: &PerfEvent) -> std::io::Result<()> {
        let mut first_err = None;
        let mut any = false;
        for ((g, slots), &cpu) in self.groups.iter_mut().zip(cpus) {
            match g.add(event, cpu) {
                Ok(pos) => {
                    slots.push(Some(pos));
                    any = true;
                }
                Err(e) => {
                    slots.push(None);
                    first_err.get_or_insert(e);
                }
            }
        }
        if !any {
            for (_, slots) in &mut self.groups {
                slots.pop();
            }
            return Err(first_err.unwrap_or_else(|| std::io::Error::other("no CPUs")));
        }
        self.series.push(series);
        Ok(())
    }

    /// The series read by [`Self::read`], in its order.
    pub fn series(&self) -> Vec<Series> {
        self.series.clone()
    }

    /// Why some or all series are missing; `None` when all were opened.
    pub fn note(&self) -> Option<&str> {
        self.note.as_deref()
    }

    /// Each series' count summed over the CPUs, one group read per CPU; a
    /// group that cannot be read counts 0 (it stays 0 at both window edges).
    pub fn read(&self) -> Vec<u64> {
        let mut sums = vec![0u64; self.series.len()];
        for (g, slots) in &self.groups {
            let Ok(values) = g.read() else { continue };
            for (sum, slot) in sums.iter_mut().zip(slots) {
                if let Some(v) = slot.and_then(|p| values.get(p)) {
                    *sum += v;
                }
            }
        }
        sums
    }
}

/// What the server's side cost per request over one measured window.
/// Denominator: the load generator's responses in the window, as for CPU
/// per request, except the ratios of the server's own counters, which are
/// over its own `requests` counter between two scrapes inside the window.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
pub struct PerRequest {
    /// CPU, µs: user + system ([`super::cpu::TreeUsage::run_ns`]).
    pub cpu_us: f64,
    /// Of that, user time: `cpu_us` split in the proportion of the tick
    /// counts (utime + cutime against stime + cstime), which sample which
    /// mode the CPU was in at each timer tick; `None` when the window saw
    /// fewer than [`SPLIT_MIN_TICKS`] ticks.
    pub user_us: Option<f64>,
    /// Of that, system time, likewise.
    pub sys_us: Option<f64>,
    /// Minor page faults (minflt + cminflt).
    pub minor_faults: f64,
    /// Voluntary context switches of the server's live threads (/proc).
    pub voluntary_switches: f64,
    /// Involuntary (preempted) context switches of its live threads (/proc).
    pub involuntary_switches: f64,
    /// Context switches on the server CPUs, every task (perf), where counted.
    pub context_switches: Option<f64>,
    /// System calls on the server CPUs (perf `raw_syscalls:sys_enter`).
    pub syscalls: Option<f64>,
    /// Of those, per name, the ones made at least once per 100 requests,
    /// most frequent first.
    pub syscalls_by_name: Vec<(String, f64)>,
    /// Where the system-call figures come from: `perf counters`, or with
    /// `--syscalls` an untimed extra run under strace.
    pub syscalls_source: Option<String>,
    /// io_uring_enter calls (the server's `ring_enters` counter).
    pub ring_enters: Option<f64>,
    /// CQEs reaped per io_uring_enter.
    pub cqes_per_enter: Option<f64>,
    /// epoll_wait calls (the server's `epoll_waits` counter).
    pub epoll_waits: Option<f64>,
    /// Events returned per epoll_wait.
    pub events_per_wait: Option<f64>,
    /// Connections accepted (the server's `conns_accepted` counter).
    pub accepts: Option<f64>,
    /// Connections closed.
    pub closes: Option<f64>,
}

/// [`PerRequest::syscalls_source`] of figures from the perf counters.
pub const PERF_SOURCE: &str = "perf counters";

/// Fewer ticks than this in a window leave the user/system split unknown.
pub const SPLIT_MIN_TICKS: f64 = 10.0;

/// Syscalls made less often than this per request are left out of
/// [`PerRequest::syscalls_by_name`].
pub const SYSCALL_SHOWN_PER_REQUEST: f64 = 0.01;

impl PerRequest {
    /// From the samples of one run: `series` names the kernel probe's
    /// values in each sample, `[from, to]` is the measured window and
    /// `requests` the responses in it.
    pub fn from_samples(
        samples: &[super::cpu::Sample],
        series: &[Series],
        from: std::time::SystemTime,
        to: std::time::SystemTime,
        requests: u64,
    ) -> PerRequest {
        use super::cpu::{counter_ratio, delta_between};
        if requests == 0 {
            return PerRequest::default();
        }
        let n = requests as f64;
        let per = |f: &dyn Fn(&super::cpu::Sample) -> f64| delta_between(samples, from, to, f) / n;
        let kernel = |i: usize| {
            per(&move |s: &super::cpu::Sample| s.kernel.get(i).copied().unwrap_or(0) as f64)
        };
        let find = |want: &Series| series.iter().position(|s| s == want).map(kernel);
        let mut by_name: Vec<(String, f64)> = series
            .iter()
            .enumerate()
            .filter_map(|(i, s)| match s {
                Series::Syscall(name) => Some((name.to_string(), kernel(i))),
                _ => None,
            })
            .filter(|(_, v)| *v >= SYSCALL_SHOWN_PER_REQUEST)
            .collect();
        by_name.sort_by(|a, b| b.1.total_cmp(&a.1));
        let ratio = |num: &str, den: &str| counter_ratio(samples, from, to, num, den);
        let nonzero = |v: Option<f64>| v.filter(|v| *v > 0.0);
        let ring_enters = nonzero(ratio("ring_enters", "requests"));
        let epoll_waits = nonzero(ratio("epoll_waits", "requests"));
        let cpu_us = per(&|s| s.tree.run_ns as f64) / 1e3;
        let user_ticks = delta_between(samples, from, to, |s| s.tree.user_ticks as f64);
        let ticks = delta_between(samples, from, to, |s| s.tree.cpu_ticks() as f64);
        let user_share = (ticks >= SPLIT_MIN_TICKS).then(|| user_ticks / ticks);
        PerRequest {
            cpu_us,
            user_us: user_share.map(|f| cpu_us * f),
            sys_us: user_share.map(|f| cpu_us * (1.0 - f)),
            minor_faults: per(&|s| s.tree.minflt as f64),
            voluntary_switches: per(&|s| s.tree.vcsw as f64),
            involuntary_switches: per(&|s| s.tree.ivcsw as f64),
            context_switches: find(&Series::ContextSwitches),
            syscalls: find(&Series::Syscalls),
            syscalls_source: find(&Series::Syscalls).map(|_| PERF_SOURCE.to_string()),
            syscalls_by_name: by_name,
            cqes_per_enter: ring_enters.and(ratio("cqes", "ring_enters")),
            ring_enters,
            events_per_wait: epoll_waits.and(ratio("epoll_events", "epoll_waits")),
            epoll_waits,
            accepts: ratio("conns_accepted", "requests"),
            closes: ratio("conns_closed", "requests"),
        }
    }

    /// The median of each figure over `runs` (an `Option` figure over the
    /// runs that have it; a syscall name over the runs that show it).
    pub fn median_of(runs: &[&PerRequest]) -> PerRequest {
        use crate::stats::median;
        let m = |f: &dyn Fn(&PerRequest) -> f64| {
            median(&runs.iter().map(|r| f(r)).collect::<Vec<_>>()).unwrap_or(0.0)
        };
        let mo = |f: &dyn Fn(&PerRequest) -> Option<f64>| {
            median(&runs.iter().filter_map(|r| f(r)).collect::<Vec<_>>())
        };
        let mut names: Vec<String> = Vec::new();
        for r in runs {
            for (n, _) in &r.syscalls_by_name {
                if !names.contains(n) {
                    names.push(n.clone());
                }
            }
        }
        let mut by_name: Vec<(String, f64)> = names
            .into_iter()
            .filter_map(|n| {
                let v = mo(&|r| r.syscalls_by_name.iter().find(|x| x.0 == n).map(|x| x.1))?;
                Some((n, v))
            })
            .collect();
        by_name.sort_by(|a, b| b.1.total_cmp(&a.1));
        PerRequest {
            cpu_us: m(&|r| r.cpu_us),
            user_us: mo(&|r| r.user_us),
            sys_us: mo(&|r| r.sys_us),
            minor_faults: m(&|r| r.minor_faults),
            voluntary_switches: m(&|r| r.voluntary_switches),
            involuntary_switches: m(&|r| r.involuntary_switches),
            context_switches: mo(&|r| r.context_switches),
            syscalls: mo(&|r| r.syscalls),
            syscalls_source: runs.iter().find_map(|r| r.syscalls_source.clone()),
            syscalls_by_name: by_name,
            ring_enters: mo(&|r| r.ring_enters),
            cqes_per_enter: mo(&|r| r.cqes_per_enter),
            epoll_waits: mo(&|r| r.epoll_waits),
            events_per_wait: mo(&|r| r.events_per_wait),
            accepts: mo(&|r| r.accepts),
            closes: mo(&|r| r.closes),
        }
    }
}
