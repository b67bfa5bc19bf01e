//! The epoll engine of the load generator (epoll(7)): nonblocking sockets,
//! level-triggered `EPOLLIN` for each connected socket, `EPOLLOUT` only while
//! a connect or a short send waits. Sends are written at once; receives are
//! done when the socket is readable. Results are handed to the worker as
//! io_uring-style completions so both engines share one state machine.
//!
//! Waits use epoll_pwait2(2) (Linux 5.11) for a ns timeout where available.
//!
//! Owns the epoll fd; sockets belong to the worker (they are removed from
//! the interest list before the worker closes them).

use std::io;
use std::os::fd::RawFd;

use super::os::{self, RawAddr};
use super::worker::{Completion, Io, OP_CONNECT, OP_RECV, OP_SEND};

/// Events fetched per epoll_wait(2).
const EVENTS_PER_WAIT: usize = 256;

#[derive(Clone, Copy)]
struct Slot {
    fd: RawFd,
    registered: bool,
    connecting: bool,
    /// An armed recv: where to put the bytes.
    read: Option<(*mut u8, u32)>,
    /// A send waiting for `EPOLLOUT`.
    write: Option<(*const u8, u32)>,
    /// `EPOLLOUT` is in the interest set.
    out_interest: bool,
}

/// One thread's epoll instance.
pub(crate) struct Epoll {
    ep: RawFd,
    addr: Box<RawAddr>,
    slots: Vec<Slot>,
    /// Completions produced synchronously, delivered by the next poll.
    ready: Vec<Completion>,
    events: Vec<libc::epoll_event>,
    /// epoll_pwait2 is available (cleared on the first ENOSYS).
    #[cfg_attr(not(target_env = "gnu"), allow(dead_code))]
    pwait2: bool,
}

impl Epoll {
    pub(crate) fn new(connections: usize, addr: Box<RawAddr>) -> io::Result<Epoll> {
        // SAFETY: epoll_create1 with a constant flag; the fd is owned by the Epoll.
        let ep = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if ep < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(Epoll {
            ep,
            addr,
            slots: vec![
                Slot {
                    fd: -1,
                    registered: false,
                    connecting: false,
                    read: None,
                    write: None,
                    out_interest: false,
                };
                connections
            ],
            ready: Vec::with_capacity(connections * 2),
            events: vec![libc::epoll_event { events: 0, u64: 0 }; EVENTS_PER_WAIT],
            pwait2: true,
        })
    }

    fn ctl(&mut self, op: libc::c_int, slot: u32, events: u32) -> i32 {
        let fd = self.slots[slot as usize].fd;
        let mut ev = libc::epoll_event {
            events,
            u64: slot as u64,
        };
        // SAFETY: `ev` is valid for the call; `fd` is an open socket of this slot.
        let r = unsafe { libc::epoll_ctl(self.ep, op, fd, &mut ev) };
        if r < 0 {
            -io::Error::last_os_error()
                .raw_os_error()
                .unwrap_or(libc::EIO)
        } else {
            0
        }
    }

    fn set_out_interest(&mut self, slot: u32, on: bool) {
        let s = &mut self.slots[slot as usize];
        if s.out_interest == on || !s.registered {
            return;
        }
        s.out_interest = on;
        let ev = libc::EPOLLIN as u32 | if on { libc::EPOLLOUT as u32 } else { 0 };
        self.ctl(libc::EPOLL_CTL_MOD, slot, ev);
    }

    fn do_send(&mut self, slot: u32, buf: *const u8, len: u32) {
        let fd = self.slots[slot as usize].fd;
        // SAFETY: the worker keeps `buf[..len]` valid until this send's completion.
        let r = unsafe { os::send(fd, buf, len as usize) };
        if r == -libc::EAGAIN {
            self.slots[slot as usize].write = Some((buf, len));
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

impl Epoll {
    /// epoll_pwait2(2) (Linux 5.11, ns timeout) where the C library has it
    /// and the kernel accepts it; else epoll_wait(2) with the timeout rounded
    /// up to whole ms (an open-loop send may then start up to 1 ms late).
    fn wait(&mut self, timeout_ns: u64) -> i32 {
        #[cfg(target_env = "gnu")]
        if self.pwait2 {
            let ts = libc::timespec {
                tv_sec: (timeout_ns / 1_000_000_000) as libc::time_t,
                tv_nsec: (timeout_ns % 1_000_000_000) as _,
            };
            // SAFETY: `events` holds EVENTS_PER_WAIT entries; `ts` is valid
            // for the call; a null sigmask leaves the mask unchanged.
            let n = unsafe {
                libc::epoll_pwait2(
                    self.ep,
                    self.events.as_mut_ptr(),
                    EVENTS_PER_WAIT as i32,
                    &ts,
                    std::ptr::null(),
                )
            };
            if n >= 0 || io::Error::last_os_error().raw_os_error() != Some(libc::ENOSYS) {
                return n;
            }
            self.pwait2 = false;
        }
        let timeout_ms = timeout_ns.div_ceil(1_000_000).min(i32::MAX as u64) as i32;
        // SAFETY: `events` is a valid buffer of EVENTS_PER_WAIT entries.
        unsafe {
            libc::epoll_wait(
                self.ep,
                self.events.as_mut_ptr(),
                EVENTS_PER_WAIT as i32,
                timeout_ms,
            )
        }
    }
}

impl Drop for Epoll {
    fn drop(&mut self) {
        os::close(self.ep);
    }
}

impl Io for Epoll {
    fn nonblocking(&self) -> bool {
        true
    }

    fn connect(&mut self, slot: u32, fd: RawFd) {
        let s = &mut self.slots[slot as usize];
        *s = Slot {
            fd,
            registered: false,
            connecting: false,
            read: None,
            write: None,
            out_interest: false,
        };
        let r = os::connect(fd, &self.addr);
        if r != 0 && r != -libc::EINPROGRESS {
            self.ready.push(Completion {
                slot,
                op: OP_CONNECT,
                res: r,
            });
            return;
        }
        let in_progress = r == -libc::EINPROGRESS;
        let ev = libc::EPOLLIN as u32
            | if in_progress {
                libc::EPOLLOUT as u32
            } else {
                0
            };
        let reg = self.ctl(libc::EPOLL_CTL_ADD, slot, ev);
        let s = &mut self.slots[slot as usize];
        if reg < 0 {
            self.ready.push(Completion {
                slot,
                op: OP_CONNECT,
                res: reg,
            });
            return;
        }
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

    fn send(&mut self, slot: u32, _fd: RawFd, buf: *const u8, len: u32) {
        self.do_send(slot, buf, len);
    }

    fn recv(&mut self, slot: u32, _fd: RawFd, buf: *mut u8, len: u32) {
        self.slots[slot as usize].read = Some((buf, len));
    }

    fn shutdown(&mut self, slot: u32, _fd: RawFd, _connect_pending: bool) {
        if self.slots[slot as usize].registered {
            self.ctl(libc::EPOLL_CTL_DEL, slot, 0);
        }
        let s = &mut self.slots[slot as usize];
        s.registered = false;
        let cancelled = -libc::ECANCELED;
        if s.read.take().is_some() {
            self.ready.push(Completion {
                slot,
                op: OP_RECV,
                res: cancelled,
            });
        }
        if s.write.take().is_some() {
            self.ready.push(Completion {
                slot,
                op: OP_SEND,
                res: cancelled,
            });
        }
        if std::mem::take(&mut s.connecting) {
            self.ready.push(Completion {
                slot,
                op: OP_CONNECT,
                res: cancelled,
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
        let n = self.wait(timeout_ns);
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::EINTR) {
                return Ok(());
            }
            return Err(format!("epoll_wait failed: {e}"));
        }
        for i in 0..n as usize {
            let ev = self.events[i];
            let slot = ev.u64 as u32;
            let bits = ev.events;
            let s = self.slots[slot as usize];
            if !s.registered {
                continue;
            }
            let writable = bits & (libc::EPOLLOUT | libc::EPOLLERR | libc::EPOLLHUP) as u32 != 0;
            let readable = bits & (libc::EPOLLIN | libc::EPOLLERR | libc::EPOLLHUP) as u32 != 0;
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
            if let (Some((buf, len)), true) = (s.write, writable) {
                self.slots[slot as usize].write = None;
                self.set_out_interest(slot, false);
                self.do_send(slot, buf, len);
            }
            if let (Some((buf, len)), true) = (s.read, readable) {
                // SAFETY: the worker keeps `buf[..len]` valid and unused until
                // this recv's completion.
                let r = unsafe { os::recv(s.fd, buf, len as usize) };
                if r != -libc::EAGAIN {
                    self.slots[slot as usize].read = None;
                    out.push(Completion {
                        slot,
                        op: OP_RECV,
                        res: r,
                    });
                }
            }
        }
        out.append(&mut self.ready);
        Ok(())
    }
}
