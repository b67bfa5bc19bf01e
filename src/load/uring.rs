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
//! Setup flags: the server's ladder ([`crate::sys::uring::build_ring`]):
//! SINGLE_ISSUER + DEFER_TASKRUN (6.1), SINGLE_ISSUER (6.0), none. Owns
//! the ring and the buffers its operations use ([`OpBufs`]); sockets belong
//! to the worker. If operations are still in flight when it is dropped
//! (the worker's bounded teardown gave up), the buffers are leaked rather
//! than freed under the kernel.

use std::io;
use std::os::fd::RawFd;

use io_uring::{opcode, squeue, types, IoUring};

use super::worker::{Completion, Io, OpBufs, OP_CONNECT, OP_OTHER, OP_RECV, OP_SEND};
use crate::sys::net::RawAddr;

/// Largest submission queue the kernel accepts (IORING_MAX_ENTRIES).
const MAX_SQ_ENTRIES: u32 = 32768;

/// One thread's ring. Field order matters: `ring` drops (and with it the
/// kernel's use of every buffer) before `bufs` and `addr`.
pub(crate) struct Uring {
    ring: IoUring,
    /// The target, read by IORING_OP_CONNECT while a connect is in flight;
    /// boxed so its address is stable.
    addr: Box<RawAddr>,
    bufs: OpBufs,
    /// Connects, sends and recvs submitted and not yet completed.
    in_flight: usize,
    fatal: Option<String>,
}

impl Drop for Uring {
    fn drop(&mut self) {
        if self.in_flight > 0 {
            // The kernel may still write these; never free them under it.
            std::mem::forget(std::mem::replace(
                &mut self.bufs,
                OpBufs::new(Vec::new(), 0),
            ));
            std::mem::forget(std::mem::replace(
                &mut self.addr,
                RawAddr::new(([0, 0, 0, 0], 0).into()),
            ));
        }
    }
}

#[inline]
fn user_data(slot: u32, op: u8) -> u64 {
    (slot as u64) << 8 | op as u64
}

impl Uring {
    /// A ring sized for `connections` (each has at most a recv, a send and a
    /// connect or cancel in flight). Errors name the failing setup step.
    pub(crate) fn new(connections: usize, addr: Box<RawAddr>, bufs: OpBufs) -> io::Result<Uring> {
        let sq = ((connections as u32).saturating_mul(2) + 16)
            .next_power_of_two()
            .clamp(64, MAX_SQ_ENTRIES);
        // At most 3 operations per connection are in flight; the CQ holds
        // four per SQ entry up to the kernel's IORING_MAX_CQ_ENTRIES.
        let cq = sq
            .saturating_mul(4)
            .min(crate::config::URING_MAX_CQ_ENTRIES);
        // The ladder the server uses (sys::uring::build_ring).
        let (ring, _flags) = crate::sys::uring::build_ring(sq, cq, true)?;
        if !ring.params().is_feature_ext_arg() {
            return Err(io::Error::other(
                "kernel lacks IORING_FEAT_EXT_ARG (Linux 5.11)",
            ));
        }
        Ok(Uring {
            ring,
            addr,
            bufs,
            in_flight: 0,
            fatal: None,
        })
    }

    #[inline]
    fn push(&mut self, entry: squeue::Entry) {
        if (entry.get_user_data() & 0xff) as u8 != OP_OTHER {
            self.in_flight += 1;
        }
        loop {
            // SAFETY: every buffer an entry points to outlives its operation:
            // sends read `bufs`' batch, recvs write a slot of `bufs` that is
            // marked busy (no safe access) until its completion, connects
            // read `addr`; all three are owned by this engine and, while any
            // operation is in flight, never freed (Drop leaks them).
            let pushed = unsafe { self.ring.submission().push(&entry) };
            if pushed.is_ok() {
                return;
            }
            // SQ full: hand what is queued to the kernel and retry.
            if let Err(e) = self.ring.submit() {
                if !crate::sys::uring::is_retry(&e) {
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
        let e = opcode::Connect::new(types::Fd(fd), self.addr.as_ptr(), self.addr.socklen())
            .build()
            .user_data(user_data(slot, OP_CONNECT));
        self.push(e);
    }

    fn send(&mut self, slot: u32, fd: RawFd, off: u32) {
        let rest = self.bufs.batch_from(off);
        let e = opcode::Send::new(types::Fd(fd), rest.as_ptr(), rest.len() as u32)
            .flags(crate::sys::MSG_NOSIGNAL)
            .build()
            .user_data(user_data(slot, OP_SEND));
        self.push(e);
    }

    fn recv(&mut self, slot: u32, fd: RawFd, start: u32) {
        let (buf, len) = self.bufs.begin_recv(slot, start);
        let e = opcode::Recv::new(types::Fd(fd), buf, len)
            .build()
            .user_data(user_data(slot, OP_RECV));
        self.push(e);
    }

    fn shutdown(&mut self, slot: u32, fd: RawFd, connect_pending: bool) {
        crate::sys::net::shutdown(fd);
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

    fn recv_buf(&mut self, slot: u32) -> &mut [u8] {
        self.bufs.recv_buf(slot)
    }

    fn close(&mut self, _slot: u32, fd: RawFd) {
        crate::sys::net::close(fd);
    }

    fn poll(&mut self, timeout_ns: u64, out: &mut Vec<Completion>) -> Result<(), String> {
        if let Some(e) = self.fatal.take() {
            return Err(e);
        }
        let r = if timeout_ns == 0 {
            // A poll that must not wait: no timeout argument (submit_nowait).
            crate::sys::uring::submit_nowait(&mut self.ring)
        } else {
            let ts = types::Timespec::new()
                .sec(timeout_ns / 1_000_000_000)
                .nsec((timeout_ns % 1_000_000_000) as u32);
            let args = types::SubmitArgs::new().timespec(&ts);
            self.ring.submitter().submit_with_args(1, &args)
        };
        match r {
            Ok(_) => {}
            Err(e) if crate::sys::uring::is_wait_end(&e) => {}
            Err(e) => return Err(format!("io_uring_enter failed: {e}")),
        }
        for cqe in self.ring.completion() {
            let ud = cqe.user_data();
            let c = Completion {
                slot: (ud >> 8) as u32,
                op: (ud & 0xff) as u8,
                res: cqe.result(),
            };
            if c.op != OP_OTHER {
                self.in_flight -= 1;
            }
            if c.op == OP_RECV {
                self.bufs.end_recv(c.slot);
            }
            out.push(c);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `okring load -c 10000` exited with EINVAL: a ring for 10 000
    /// connections asked for a CQ over IORING_MAX_CQ_ENTRIES. Every size
    /// now fits the kernel's limits.
    #[test]
    fn rings_for_large_connection_counts_fit_the_kernel_limits() {
        if let Err(why) = crate::load::probe_uring() {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "no io_uring under CI: {why}"
            );
            eprintln!("skipped: no io_uring here: {why}");
            return;
        }
        for conns in [1, 1000, 10_000, 20_000, 100_000] {
            let addr = RawAddr::new(([127, 0, 0, 1], 1).into());
            let r = Uring::new(conns, addr, OpBufs::new(Vec::new(), 1));
            assert!(r.is_ok(), "{conns} connections: {:?}", r.err());
        }
    }
}
