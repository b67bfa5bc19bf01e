//! Kernel event counters, CPU-wide (perf_event_open(2), Linux 2.6.31+).
//!
//! Counting mode only: no sampling, no ring buffer, so the cost is one
//! increment per event in the kernel. A counter opened with `pid = -1` on
//! CPU `c` counts every task that runs there, including processes that
//! exit before anyone looks at `/proc` (the children of a fork-per-connection
//! server). That needs `CAP_PERFMON` (or root) or
//! `/proc/sys/kernel/perf_event_paranoid` ≤ 0.
//!
//! Tracepoint ids (`raw_syscalls:sys_enter`, `syscalls:sys_enter_NAME`)
//! come from tracefs (`/sys/kernel/tracing/events/…/id`, or under
//! `/sys/kernel/debug/tracing`), which must be mounted.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// `PERF_TYPE_SOFTWARE` (include/uapi/linux/perf_event.h).
const PERF_TYPE_SOFTWARE: u32 = 1;
/// `PERF_TYPE_TRACEPOINT`.
const PERF_TYPE_TRACEPOINT: u32 = 2;
/// `PERF_COUNT_SW_PAGE_FAULTS_MIN`.
const PERF_COUNT_SW_PAGE_FAULTS_MIN: u64 = 5;
/// `PERF_COUNT_SW_CONTEXT_SWITCHES`.
const PERF_COUNT_SW_CONTEXT_SWITCHES: u64 = 3;
/// `PERF_FLAG_FD_CLOEXEC` (Linux 3.14).
const PERF_FLAG_FD_CLOEXEC: libc::c_ulong = 8;
/// Where tracefs is mounted, newest convention first.
const TRACEFS: [&str; 2] = ["/sys/kernel/tracing", "/sys/kernel/debug/tracing"];

/// The first 64 bytes of `struct perf_event_attr` (`PERF_ATTR_SIZE_VER0`):
/// all a counting event needs; the kernel zero-fills the rest.
#[repr(C)]
#[derive(Default)]
struct PerfEventAttr {
    kind: u32,
    size: u32,
    config: u64,
    sample_period: u64,
    sample_type: u64,
    read_format: u64,
    /// Bit field: disabled, inherit, pinned, exclusive, exclude_user, …
    flags: u64,
    wakeup_events: u32,
    bp_type: u32,
    config1: u64,
}

/// What a counter counts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PerfEvent {
    /// Context switches (software event), voluntary and involuntary.
    ContextSwitches,
    /// Minor page faults (software event).
    MinorFaults,
    /// A tracepoint by its tracefs id, e.g. `raw_syscalls:sys_enter`
    /// (every system call) or `syscalls:sys_enter_read`.
    Tracepoint(u64),
}

/// The id of tracepoint `group/name` (e.g. `raw_syscalls/sys_enter`), or
/// `None` when tracefs is not mounted or the kernel has no such event.
pub fn tracepoint_id(group_name: &str) -> Option<u64> {
    TRACEFS.iter().find_map(|root| {
        std::fs::read_to_string(format!("{root}/events/{group_name}/id"))
            .ok()?
            .trim()
            .parse()
            .ok()
    })
}

/// Whether a tracefs mount is visible (its `events/` directory).
pub fn tracefs_mounted() -> bool {
    TRACEFS
        .iter()
        .any(|root| std::path::Path::new(root).join("events").is_dir())
}

/// `PERF_FORMAT_GROUP`: a read of the group leader returns every member.
const PERF_FORMAT_GROUP: u64 = 1 << 3;
/// `perf_event_attr.disabled` (bit 0 of the flags).
const ATTR_DISABLED: u64 = 1;
/// `PERF_EVENT_IOC_ENABLE`: `_IO('$', 0)`.
const PERF_EVENT_IOC_ENABLE: libc::c_ulong = 0x2400;
/// `PERF_IOC_FLAG_GROUP`: the ioctl applies to the whole group.
const PERF_IOC_FLAG_GROUP: libc::c_ulong = 1;

/// A counter of `event` on CPU `cpu` for every task (enabled at once).
/// Errors: EACCES/EPERM without the privilege above, ENOENT/EINVAL for an
/// event the kernel lacks.
pub fn open_cpu_counter(event: &PerfEvent, cpu: usize) -> io::Result<OwnedFd> {
    open(event, cpu, -1, 0, 0)
}

/// Counters on one CPU read together: one read(2) — one cross-CPU call
/// into the kernel — returns them all, where a read per counter would
/// interrupt the counted CPU once per counter (PERF_FORMAT_GROUP).
pub struct CpuGroup {
    leader: OwnedFd,
    members: Vec<OwnedFd>,
}

impl CpuGroup {
    /// A group on `cpu` led by a counter of `event`, disabled until
    /// [`Self::enable`] (members added to a running CPU-wide group are not
    /// scheduled in and count nothing). Errors as [`open_cpu_counter`].
    pub fn open(event: &PerfEvent, cpu: usize) -> io::Result<CpuGroup> {
        Ok(CpuGroup {
            leader: open(event, cpu, -1, PERF_FORMAT_GROUP, ATTR_DISABLED)?,
            members: Vec::new(),
        })
    }

    /// Start every counter of the group (PERF_EVENT_IOC_ENABLE with
    /// PERF_IOC_FLAG_GROUP).
    pub fn enable(&self) -> io::Result<()> {
        // SAFETY: an ioctl with an integer argument on our own descriptor.
        let r = unsafe {
            libc::ioctl(
                self.leader.as_raw_fd(),
                PERF_EVENT_IOC_ENABLE as _,
                PERF_IOC_FLAG_GROUP,
            )
        };
        if r < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Add a counter of `event` on the leader's CPU; returns its position
    /// in [`Self::read`]'s values (the leader is 0).
    pub fn add(&mut self, event: &PerfEvent, cpu: usize) -> io::Result<usize> {
        let fd = open(event, cpu, self.leader.as_raw_fd(), 0, 0)?;
        self.members.push(fd);
        Ok(self.members.len())
    }

    /// Every counter's value: the leader's, then the members' in the order
    /// they were added.
    pub fn read(&self) -> io::Result<Vec<u64>> {
        let n = 1 + self.members.len();
        let mut buf = vec![0u64; 1 + n];
        let len = buf.len() * 8;
        // SAFETY: `buf` is `len` writable bytes: the group read returns
        // `u64 nr` then `nr` values, nr = 1 + members.
        let got = unsafe { libc::read(self.leader.as_raw_fd(), buf.as_mut_ptr().cast(), len) };
        if got < 0 {
            return Err(io::Error::last_os_error());
        }
        if got as usize != len || buf[0] as usize != n {
            return Err(io::Error::other("short perf group read"));
        }
        Ok(buf[1..].to_vec())
    }
}

fn open(
    event: &PerfEvent,
    cpu: usize,
    group_fd: i32,
    read_format: u64,
    flags: u64,
) -> io::Result<OwnedFd> {
    let (kind, config) = match event {
        PerfEvent::ContextSwitches => (PERF_TYPE_SOFTWARE, PERF_COUNT_SW_CONTEXT_SWITCHES),
        PerfEvent::MinorFaults => (PERF_TYPE_SOFTWARE, PERF_COUNT_SW_PAGE_FAULTS_MIN),
        PerfEvent::Tracepoint(id) => (PERF_TYPE_TRACEPOINT, *id),
    };
    let attr = PerfEventAttr {
        kind,
        size: std::mem::size_of::<PerfEventAttr>() as u32,
        config,
        read_format,
        flags,
        ..PerfEventAttr::default()
    };
    // SAFETY: `attr` is a valid perf_event_attr prefix whose `size` field
    // says how many bytes the kernel may read; the other arguments are
    // plain integers (pid -1 with a CPU: every task on that CPU; group_fd
    // -1 or a group leader's descriptor on the same CPU).
    let fd = unsafe {
        libc::syscall(
            libc::SYS_perf_event_open,
            &attr as *const PerfEventAttr,
            -1 as libc::pid_t,
            cpu as libc::c_int,
            group_fd as libc::c_int,
            PERF_FLAG_FD_CLOEXEC,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: perf_event_open returned a new descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as libc::c_int) })
}

/// The current value of a counter from [`open_cpu_counter`].
pub fn read_counter(fd: &OwnedFd) -> io::Result<u64> {
    let mut v = 0u64;
    // SAFETY: `v` is 8 writable bytes, what a counter without read_format
    // flags returns.
    let n = unsafe { libc::read(fd.as_raw_fd(), (&mut v as *mut u64).cast(), 8) };
    if n != 8 {
        return Err(io::Error::last_os_error());
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attr_is_the_version_0_size() {
        assert_eq!(std::mem::size_of::<PerfEventAttr>(), 64);
    }

    /// Counts this test's own context switches when the kernel lets it
    /// (root, CAP_PERFMON or perf_event_paranoid ≤ 0); the refusal is the
    /// documented error otherwise.
    #[test]
    fn a_group_reads_every_member_in_one_read() {
        let cpu = 0;
        let Some(id) = tracepoint_id("raw_syscalls/sys_enter") else {
            assert!(!crate::sys::perf::tracefs_mounted() || std::env::var_os("CI").is_none());
            return;
        };
        let mut g = match CpuGroup::open(&PerfEvent::ContextSwitches, cpu) {
            Ok(g) => g,
            Err(e) => {
                assert!(
                    matches!(e.raw_os_error(), Some(libc::EACCES) | Some(libc::EPERM)),
                    "{e}"
                );
                return;
            }
        };
        assert_eq!(g.add(&PerfEvent::Tracepoint(id), cpu).unwrap(), 1);
        g.enable().unwrap();
        crate::sys::pin_current_thread(cpu).unwrap();
        let a = g.read().unwrap();
        for _ in 0..20 {
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        let b = g.read().unwrap();
        assert_eq!(a.len(), 2);
        assert!(b[0] >= a[0] + 20, "20 sleeps: switches {a:?} -> {b:?}");
        assert!(
            b[1] >= a[1] + 20,
            "20 nanosleeps: system calls {a:?} -> {b:?}"
        );
    }

    #[test]
    fn context_switches_count_up_or_are_refused() {
        let cpu = 0;
        match open_cpu_counter(&PerfEvent::ContextSwitches, cpu) {
            Ok(fd) => {
                let a = read_counter(&fd).unwrap();
                crate::sys::pin_current_thread(cpu).unwrap();
                for _ in 0..20 {
                    std::thread::sleep(std::time::Duration::from_millis(1));
                }
                let b = read_counter(&fd).unwrap();
                assert!(b >= a + 20, "20 sleeps on CPU {cpu}: {a} -> {b}");
            }
            Err(e) => assert!(
                matches!(e.raw_os_error(), Some(libc::EACCES) | Some(libc::EPERM)),
                "{e}"
            ),
        }
    }
}
