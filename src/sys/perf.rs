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

/// A counter of `event` on CPU `cpu` for every task (enabled at once).
/// Errors: EACCES/EPERM without the privilege above, ENOENT/EINVAL for an
/// event the kernel lacks.
pub fn open_cpu_counter(event: &PerfEvent, cpu: usize) -> io::Result<OwnedFd> {
    let (kind, config) = match event {
        PerfEvent::ContextSwitches => (PERF_TYPE_SOFTWARE, PERF_COUNT_SW_CONTEXT_SWITCHES),
        PerfEvent::MinorFaults => (PERF_TYPE_SOFTWARE, PERF_COUNT_SW_PAGE_FAULTS_MIN),
        PerfEvent::Tracepoint(id) => (PERF_TYPE_TRACEPOINT, *id),
    };
    let attr = PerfEventAttr {
        kind,
        size: std::mem::size_of::<PerfEventAttr>() as u32,
        config,
        ..PerfEventAttr::default()
    };
    // SAFETY: `attr` is a valid perf_event_attr prefix whose `size` field
    // says how many bytes the kernel may read; the other arguments are
    // plain integers (pid -1 with a CPU: every task on that CPU; no group).
    let fd = unsafe {
        libc::syscall(
            libc::SYS_perf_event_open,
            &attr as *const PerfEventAttr,
            -1 as libc::pid_t,
            cpu as libc::c_int,
            -1 as libc::c_int,
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
