//! The io_uring engine of the load generator: one ring per load thread.
//!
//! Per request it queues one `IORING_OP_SEND` (and re-arms one
//! `IORING_OP_RECV` into the connection's own buffer); every queued SQE of a
//! loop iteration goes to the kernel in one `io_uring_enter`, which also
//! waits — with an `IORING_ENTER_EXT_ARG` timeout (Linux 5.11) for the next
//! schedule, interval or deadline, so no timer SQE is needed — and the CQ is
//! drained fully afterwards. Reconnects use `IORING_OP_CONNECT` (5.5) on
//! blocking sockets (io_uring polls them itself); closing uses shutdown(2),
//! which completes the pending recv, plus `IORING_OP_ASYNC_CANCEL` for a
//! pending connect.
//!
//! Setup flags: SINGLE_ISSUER + DEFER_TASKRUN (6.1) when accepted, else
//! COOP_TASKRUN (5.19), else none. Owns the ring fd only; sockets belong to
//! the worker.

use std::io;
use std::os::fd::RawFd;

use io_uring::{opcode, squeue, types, IoUring};

use super::os::RawAddr;
use super::worker::{Completion, Io, OP_CONNECT, OP_OTHER, OP_RECV, OP_SEND};

/// Largest submission queue the kernel accepts (IORING_MAX_ENTRIES).
const MAX_SQ_ENTRIES: u32 = 32768;

/// One thread's ring.
pub(crate) struct Uring {
    ring: IoUring,
    /// The target, read by IORING_OP_CONNECT while a connect is in flight;
    /// boxed so its address is stable.
    addr: Box<RawAddr>,
    fatal: Option<String>,
}

#[inline]
fn user_data(slot: u32, op: u8) -> u64 {
    (slot as u64) << 8 | op as u64
}

impl Uring {
    /// A ring sized for `connections` (each has at most a recv, a send and a
    /// connect or cancel in flight). Errors name the failing setup step.
    pub(crate) fn new(connections: usize, addr: Box<RawAddr>) -> io::Result<Uring> {
        let sq = ((connections as u32).saturating_mul(2) + 16)
            .next_power_of_two()
            .clamp(64, MAX_SQ_ENTRIES);
        let cq = sq.saturating_mul(4);
        let attempts: [fn(&mut io_uring::Builder); 3] = [
            |b| {
                b.setup_single_issuer().setup_defer_taskrun();
            },
            |b| {
                b.setup_coop_taskrun();
            },
            |_| {},
        ];
        let mut last = io::Error::from_raw_os_error(libc::EINVAL);
        for flags in attempts {
            let mut b = IoUring::builder();
            b.setup_cqsize(cq);
            flags(&mut b);
            match b.build(sq) {
                Ok(ring) => {
                    if !ring.params().is_feature_ext_arg() {
                        return Err(io::Error::other(
                            "kernel lacks IORING_FEAT_EXT_ARG (Linux 5.11)",
                        ));
                    }
                    return Ok(Uring {
                        ring,
                        addr,
                        fatal: None,
                    });
                }
                Err(e) if e.raw_os_error() == Some(libc::EINVAL) => last = e,
                Err(e) => return Err(e),
            }
        }
        Err(last)
    }

    #[inline]
    fn push(&mut self, entry: squeue::Entry) {
        loop {
            // SAFETY: every buffer an entry points to outlives its operation:
            // sends read the worker's batch buffer and recvs write the
            // worker's per-slot buffers, both kept until every operation has
            // completed (Core::teardown waits for that); connects read
            // `self.addr`, which lives as long as the ring.
            let pushed = unsafe { self.ring.submission().push(&entry) };
            if pushed.is_ok() {
                return;
            }
            // SQ full: hand what is queued to the kernel and retry.
            if let Err(e) = self.ring.submit() {
                if e.raw_os_error() != Some(libc::EBUSY) && e.raw_os_error() != Some(libc::EINTR) {
                    self.fatal = Some(format!("io_uring submit failed: {e}"));
                    return;
                }
            }
        }
    }
}

impl Io for Uring {
    fn nonblocking(&self) -> bool {
        false
    }

    fn connect(&mut self, slot: u32, fd: RawFd) {
        let e = opcode::Connect::new(types::Fd(fd), self.addr.as_ptr(), self.addr.len)
            .build()
            .user_data(user_data(slot, OP_CONNECT));
        self.push(e);
    }

    fn send(&mut self, slot: u32, fd: RawFd, buf: *const u8, len: u32) {
        let e = opcode::Send::new(types::Fd(fd), buf, len)
            .flags(libc::MSG_NOSIGNAL)
            .build()
            .user_data(user_data(slot, OP_SEND));
        self.push(e);
    }

    fn recv(&mut self, slot: u32, fd: RawFd, buf: *mut u8, len: u32) {
        let e = opcode::Recv::new(types::Fd(fd), buf, len)
            .build()
            .user_data(user_data(slot, OP_RECV));
        self.push(e);
    }

    fn shutdown(&mut self, slot: u32, fd: RawFd, connect_pending: bool) {
        super::os::shutdown(fd);
        if !connect_pending {
            return;
        }
        // A connect in progress is not woken by shutdown(2); cancel it (its
        // completion, -ECANCELED, or the connect's own result ends it).
        let e = opcode::AsyncCancel::new(user_data(slot, OP_CONNECT))
            .build()
            .user_data(user_data(slot, OP_OTHER));
        self.push(e);
    }

    fn close(&mut self, _slot: u32, fd: RawFd) {
        super::os::close(fd);
    }

    fn poll(&mut self, timeout_ns: u64, out: &mut Vec<Completion>) -> Result<(), String> {
        if let Some(e) = self.fatal.take() {
            return Err(e);
        }
        let ts = types::Timespec::new()
            .sec(timeout_ns / 1_000_000_000)
            .nsec((timeout_ns % 1_000_000_000) as u32);
        let args = types::SubmitArgs::new().timespec(&ts);
        match self.ring.submitter().submit_with_args(1, &args) {
            Ok(_) => {}
            Err(e) => match e.raw_os_error() {
                Some(libc::ETIME) | Some(libc::EINTR) | Some(libc::EBUSY) => {}
                _ => return Err(format!("io_uring_enter failed: {e}")),
            },
        }
        for cqe in self.ring.completion() {
            let ud = cqe.user_data();
            out.push(Completion {
                slot: (ud >> 8) as u32,
                op: (ud & 0xff) as u8,
                res: cqe.result(),
            });
        }
        Ok(())
    }
}
