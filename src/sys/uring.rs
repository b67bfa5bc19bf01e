//! The io_uring kernel edge shared by the server and the load generator:
//! building a ring down the kernel's flag tiers, the provided buffer ring
//! (its mapping and registration), and one-line causes of set-up errors.
//!
//! The drivers (`server::uring`, `load::uring`) prepare SQEs themselves:
//! what an SQE points at is their buffers, so their `unsafe` pushes sit
//! beside the buffers whose lifetimes make them sound.

use std::io;
use std::sync::atomic::{AtomicU16, Ordering};

use io_uring::types::BufRingEntry;
use io_uring::IoUring;

/// Whether `e` is EBUSY or EINTR: a submit to retry after reaping.
pub fn is_retry(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EBUSY) | Some(libc::EINTR))
}

/// Whether `e` is ETIME (a wait's timeout passed), EINTR or EBUSY: a wait
/// that simply returns.
pub fn is_wait_end(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::ETIME) | Some(libc::EINTR) | Some(libc::EBUSY)
    )
}

/// IORING_ENTER_GETEVENTS (include/uapi/linux/io_uring.h).
const IORING_ENTER_GETEVENTS: u32 = 1;

/// Submit the queued SQEs and collect what has completed, without waiting:
/// io_uring_enter(2) with IORING_ENTER_GETEVENTS and `min_complete` 0 and
/// no timeout argument. The kernel runs the ring's deferred task work
/// (DEFER_TASKRUN posts CQEs only then) and returns once completions
/// number at least 0, without entering the timed wait a timeout argument,
/// even a zero one, would set up. Returns the SQEs submitted; errors as
/// io_uring_enter(2).
pub fn submit_nowait(ring: &mut IoUring) -> io::Result<usize> {
    let queued = ring.submission().len() as u32;
    // SAFETY: no argument pointer is passed (`arg` None, size 0); the SQEs
    // in the queue were pushed by the drivers, under their own SAFETY.
    unsafe {
        ring.submitter()
            .enter::<libc::sigset_t>(queued, 0, IORING_ENTER_GETEVENTS, None)
    }
}

/// The symbolic name of an io::Error's errno (`EFAULT`), for one-line
/// causes ([`super::Errno::name`]).
pub fn errno_name(e: &io::Error) -> String {
    match e.raw_os_error() {
        Some(n) => super::Errno(n).name(),
        None => "error".into(),
    }
}

/// One-line cause of an io_uring_setup(2) failure.
pub fn setup_error(e: &io::Error) -> String {
    match e.raw_os_error() {
        Some(libc::EPERM) | Some(libc::EACCES) => {
            let sysctl = std::fs::read_to_string("/proc/sys/kernel/io_uring_disabled")
                .ok()
                .and_then(|s| s.trim().parse::<u32>().ok());
            match sysctl {
                Some(2) => "io_uring_setup: EPERM: io_uring is disabled by sysctl kernel.io_uring_disabled=2 (set it to 0, or use --mode epoll)".into(),
                Some(1) => "io_uring_setup: EPERM: sysctl kernel.io_uring_disabled=1 restricts io_uring to the group in kernel.io_uring_group (join it, or use --mode epoll)".into(),
                _ => "io_uring_setup: EPERM: blocked by a seccomp filter or security module (e.g. Docker's default seccomp profile; allow io_uring_setup, or use --mode epoll)".into(),
            }
        }
        Some(libc::ENOSYS) => "io_uring_setup: ENOSYS: the kernel has no io_uring, or a seccomp filter (e.g. Docker's default profile) hides it (use --mode epoll)".into(),
        Some(libc::ENOMEM) => "io_uring_setup: ENOMEM: locked-memory limit too low for the ring (raise `ulimit -l`)".into(),
        _ => format!("io_uring_setup: {}: {e}", errno_name(e)),
    }
}

/// Build a ring of `sq` SQ and `cq` CQ entries (the SQ is cut to the CQ
/// size; a tiny CQ is allowed: overflowed CQEs are kept by the kernel,
/// IORING_FEAT_NODROP, and counted) down the one tier ladder of the server
/// and the load generator: SUBMIT_ALL + SINGLE_ISSUER + DEFER_TASKRUN
/// (Linux 6.1), then SUBMIT_ALL + SINGLE_ISSUER (6.0), then no flags, each
/// step taken on EINVAL; `task_run_flags: false` starts at the last. The
/// ring must be used only from the calling thread. Returns the ring and
/// the flags it got, as the start-up line names them.
pub fn build_ring(sq: u32, cq: u32, task_run_flags: bool) -> io::Result<(IoUring, &'static str)> {
    let sq = sq.min(cq);
    // (flags tried, as named in the start-up line), newest first.
    let tiers: &[(bool, bool, &str)] = if task_run_flags {
        &[
            (true, true, "SINGLE_ISSUER+DEFER_TASKRUN"),
            (true, false, "SINGLE_ISSUER"),
            (false, false, "no task-run flags"),
        ]
    } else {
        &[(false, false, "no task-run flags")]
    };
    let mut last = io::Error::from_raw_os_error(libc::EINVAL);
    for &(single_issuer, defer_taskrun, name) in tiers {
        let mut b = IoUring::builder();
        b.setup_cqsize(cq);
        if single_issuer {
            b.setup_submit_all().setup_single_issuer();
        }
        if defer_taskrun {
            b.setup_defer_taskrun();
        }
        match b.build(sq) {
            Ok(r) => return Ok((r, name)),
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => last = e,
            Err(e) => return Err(e),
        }
    }
    Err(last)
}

/// A provided buffer ring (io_uring_register_buf_ring(3), Linux 5.19):
/// `count` buffers of `buf_len` bytes in one allocation, announced to the
/// kernel through a page-aligned ring of [`BufRingEntry`] whose tail we own.
pub struct BufRing {
    ring: *mut BufRingEntry,
    map_len: usize,
    mask: u16,
    /// Our copy of the tail; published with a release store.
    tail: u16,
    mem: Vec<u8>,
    buf_len: usize,
}

impl BufRing {
    pub fn new(uring: &IoUring, count: u16, buf_len: usize, bgid: u16) -> io::Result<BufRing> {
        // Linux 5.19 and 6.0 pin `struct_size(br, bufs, count)` bytes for
        // IORING_REGISTER_PBUF_RING: one entry more than the ring, since the
        // header that overlays entry 0 is counted again (6.1 counts it
        // once). When `count` entries fill whole pages, that extra entry lies
        // on the page after the ring, and registration fails with EFAULT
        // unless something else happens to be mapped there (seen on real
        // 5.19.0 and 6.0.19 kernels with 1024 entries). So the mapping
        // covers one entry more than the ring.
        let map_len = (usize::from(count) + 1) * std::mem::size_of::<BufRingEntry>();
        // SAFETY: anonymous private mapping, no fd; the result is checked.
        // mmap returns page-aligned memory, as the kernel requires.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                map_len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let mut br = BufRing {
            ring: ptr.cast(),
            map_len,
            mask: count - 1,
            tail: 0,
            mem: vec![0u8; usize::from(count) * buf_len],
            buf_len,
        };
        // SAFETY: `ring` is a zeroed, page-aligned mapping of `count`
        // entries that stays mapped until Drop, which runs after the ring
        // (declared first in `Worker`) is gone; count is a power of two.
        unsafe {
            uring
                .submitter()
                .register_buf_ring_with_flags(ptr as u64, count, bgid, 0)?
        };
        for bid in 0..count {
            br.recycle(bid);
        }
        br.publish();
        Ok(br)
    }

    /// Give buffer `bid` back to the kernel (visible after [`publish`](Self::publish)).
    #[inline]
    pub fn recycle(&mut self, bid: u16) {
        let idx = usize::from(self.tail & self.mask);
        // SAFETY: idx ≤ mask < count, inside the mapping; the kernel only
        // reads entries between its head and our published tail, and this
        // slot is past the published tail.
        let e = unsafe { &mut *self.ring.add(idx) };
        let off = usize::from(bid) * self.buf_len;
        e.set_addr(self.mem[off..].as_ptr() as u64);
        e.set_len(self.buf_len as u32);
        e.set_bid(bid);
        self.tail = self.tail.wrapping_add(1);
    }

    /// Publish every recycled buffer to the kernel.
    #[inline]
    pub fn publish(&self) {
        // SAFETY: the tail field overlays the `resv` of entry 0, inside the
        // mapping; it is a u16 the kernel reads with acquire semantics.
        unsafe {
            let tail = BufRingEntry::tail(self.ring) as *const AtomicU16;
            (*tail).store(self.tail, Ordering::Release);
        }
    }

    /// The first `len` bytes of buffer `bid` (as filled by a recv).
    #[inline]
    pub fn data(&self, bid: u16, len: usize) -> &[u8] {
        let off = usize::from(bid) * self.buf_len;
        &self.mem[off..off + len.min(self.buf_len)]
    }
}

impl Drop for BufRing {
    fn drop(&mut self) {
        // SAFETY: the mapping was created in `new` with this length and the
        // ring that used it is already dropped.
        unsafe { libc::munmap(self.ring.cast(), self.map_len) };
    }
}
