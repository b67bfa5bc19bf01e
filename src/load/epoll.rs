//! The epoll engine of the load generator (epoll(7)): nonblocking sockets,
//! level-triggered `EPOLLIN` for each connected socket, `EPOLLOUT` only while
//! a connect or a short send waits. Sends are written at once; receives are
//! done when the socket is readable. Results are handed to the worker as
//! io_uring-style completions so both engines share one state machine.
//!
//! Waits use epoll_pwait2(2) (Linux 5.11) for a ns timeout where available
//! ([`Epoll::wait_ns`]).
//!
//! Owns the epoll instance and the operation buffers ([`OpBufs`]); sockets
//! belong to the worker (they are removed from the interest list before the
//! worker closes them). Every system call goes through [`crate::sys`].

use std::os::fd::RawFd;

use super::worker::{Completion, Io, OpBufs, OP_CONNECT, OP_RECV, OP_SEND};
use crate::sys::net::{self as os, RawAddr};
use crate::sys::{Epoll as Poller, Event, Interest};

/// Events fetched per epoll_wait(2).
const EVENTS_PER_WAIT: usize = 256;

#[derive(Clone, Copy)]
struct Slot {
    fd: RawFd,
    registered: bool,
    connecting: bool,
    /// An armed recv: the offset in the slot's buffer to receive at.
    read: Option<u32>,
    /// A send waiting for `EPOLLOUT`: the batch offset to send from.
    write: Option<u32>,
    /// `EPOLLOUT` is in the interest set.
    out_interest: bool,
}

const FREE: Slot = Slot {
    fd: -1,
    registered: false,
    connecting: false,
    read: None,
    write: None,
    out_interest: false,
};

/// One thread's epoll engine.
pub(crate) struct Epoll {
    ep: Poller,
    addr: Box<RawAddr>,
    bufs: OpBufs,
    slots: Vec<Slot>,
    /// Completions produced synchronously, delivered by the next poll.
    ready: Vec<Completion>,
    events: Vec<Event>,
}

impl Epoll {
    pub(crate) fn new(
        connections: usize,
        addr: Box<RawAddr>,
        bufs: OpBufs,
    ) -> std::io::Result<Epoll> {
        Ok(Epoll {
            ep: Poller::new(EVENTS_PER_WAIT)?,
            addr,
            bufs,
            slots: vec![FREE; connections],
            ready: Vec::with_capacity(connections * 2),
            events: Vec::with_capacity(EVENTS_PER_WAIT),
        })
    }

    fn interest(out: bool) -> Interest {
        if out {
            Interest::READABLE.or(Interest::WRITABLE)
        } else {
            Interest::READABLE
        }
    }

    fn set_out_interest(&mut self, slot: u32, on: bool) {
        let s = &mut self.slots[slot as usize];
        if s.out_interest == on || !s.registered {
            return;
        }
        s.out_interest = on;
        let _ = self
            .ep
            .reregister(s.fd, Self::interest(on), u64::from(slot));
    }

    fn do_send(&mut self, slot: u32, off: u32) {
        let fd = self.slots[slot as usize].fd;
        let r = os::send(fd, self.bufs.batch_from(off));
        if r < 0 && crate::sys::Errno(-r).io_failure() == crate::sys::IoFailure::Again {
            self.slots[slot as usize].write = Some(off);
            self.set_out_interest(slot, true);
        } else {
            self.ready.push(Completion {
                slot,
                op: OP_SEND,
                res: r,
            });
        }
    }
}

impl Io for Epoll {
    fn nonblocking(&self) -> bool {
        true
    }

    fn connect(&mut self, slot: u32, fd: RawFd) {
        self.slots[slot as usize] = Slot { fd, ..FREE };
        let r = os::connect(fd, &self.addr);
        let in_progress = os::is_in_progress(r);
        if r != 0 && !in_progress {
            self.ready.push(Completion {
                slot,
                op: OP_CONNECT,
                res: r,
            });
            return;
        }
        if let Err(e) = self
            .ep
            .register(fd, Self::interest(in_progress), u64::from(slot))
        {
            self.ready.push(Completion {
                slot,
                op: OP_CONNECT,
                res: -e.raw_os_error().unwrap_or(crate::sys::Errno::EIO.0),
            });
            return;
        }
        let s = &mut self.slots[slot as usize];
        s.registered = true;
        s.out_interest = in_progress;
        s.connecting = in_progress;
        if !in_progress {
            self.ready.push(Completion {
                slot,
                op: OP_CONNECT,
                res: 0,
            });
        }
    }

    fn send(&mut self, slot: u32, _fd: RawFd, off: u32) {
        self.do_send(slot, off);
    }

    fn recv(&mut self, slot: u32, _fd: RawFd, start: u32) {
        self.slots[slot as usize].read = Some(start);
    }

    fn recv_buf(&mut self, slot: u32) -> &mut [u8] {
        self.bufs.recv_buf(slot)
    }

    fn shutdown(&mut self, slot: u32, _fd: RawFd, _connect_pending: bool) {
        let s = &mut self.slots[slot as usize];
        if s.registered {
            let _ = self.ep.deregister(s.fd);
        }
        s.registered = false;
        if s.read.take().is_some() {
            self.ready.push(Completion {
                slot,
                op: OP_RECV,
                res: os::CANCELED,
            });
        }
        if s.write.take().is_some() {
            self.ready.push(Completion {
                slot,
                op: OP_SEND,
                res: os::CANCELED,
            });
        }
        if std::mem::take(&mut s.connecting) {
            self.ready.push(Completion {
                slot,
                op: OP_CONNECT,
                res: os::CANCELED,
            });
        }
    }

    fn close(&mut self, slot: u32, fd: RawFd) {
        self.slots[slot as usize].fd = -1;
        os::close(fd);
    }

    fn poll(&mut self, timeout_ns: u64, out: &mut Vec<Completion>) -> Result<(), String> {
        let timeout_ns = if self.ready.is_empty() { timeout_ns } else { 0 };
        out.append(&mut self.ready);
        let mut events = std::mem::take(&mut self.events);
        if let Err(e) = self.ep.wait_ns(&mut events, timeout_ns) {
            self.events = events;
            return Err(format!("epoll_wait failed: {e}"));
        }
        for ev in &events {
            let slot = ev.token as u32;
            let s = self.slots[slot as usize];
            if !s.registered {
                continue;
            }
            let writable = ev.writable || ev.hangup;
            let readable = ev.readable || ev.hangup;
            if s.connecting && writable {
                self.slots[slot as usize].connecting = false;
                self.set_out_interest(slot, false);
                out.push(Completion {
                    slot,
                    op: OP_CONNECT,
                    res: os::socket_error(s.fd),
                });
                continue;
            }
            if let (Some(off), true) = (s.write, writable) {
                self.slots[slot as usize].write = None;
                self.set_out_interest(slot, false);
                self.do_send(slot, off);
            }
            if let (Some(start), true) = (s.read, readable) {
                let r = os::recv(s.fd, self.bufs.recv_span(slot, start));
                if !(r < 0 && crate::sys::Errno(-r).io_failure() == crate::sys::IoFailure::Again) {
                    self.slots[slot as usize].read = None;
                    out.push(Completion {
                        slot,
                        op: OP_RECV,
                        res: r,
                    });
                }
            }
        }
        self.events = events;
        out.append(&mut self.ready);
        Ok(())
    }
}
