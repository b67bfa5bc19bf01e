//! Socket setup, CPU affinity and signals: the kernel interface that is not
//! io_uring.

/// The CPUs this process may run on (sched_getaffinity(2)), ascending.
pub fn allowed_cpus() -> Vec<usize> {
    vec![0]
}
