//! `--mode uring`: one thread per worker, each owning one io_uring, its
//! SO_REUSEPORT listener, a provided buffer ring and its connections.
//!
//! Operations (io_uring_enter(2), io_uring_prep_*(3)):
//! - multishot accept (Linux 5.19) on the listener;
//! - multishot recv (6.0) selecting buffers from this worker's provided
//!   buffer ring (buffer group [`BGID`], 5.19); on the 5.19 tier, or with
//!   `--uring-tier 5.19`, a single-shot recv with buffer select instead;
//! - send (one in flight per connection, carrying every response produced
//!   so far; short sends resumed) and close; the lingering close's
//!   shutdown(SHUT_WR) is a direct syscall (IORING_OP_SHUTDOWN always goes
//!   through an io-wq thread);
//! - a 100 ms Timeout op as the worker's timer (Date refresh, header and
//!   idle timeouts, accept back-off): multishot ops cannot carry linked
//!   timeouts;
//! - a read on the worker's shutdown eventfd.
//!
//! Every multishot CQE is checked for `IORING_CQE_F_MORE`; when it is clear
//! the op is over and is re-armed unless the connection is closing. A
//! buffer id is returned to the ring as soon as its bytes are framed, on
//! every path (data, EOF, error, stale CQE). `user_data` carries
//! op kind | generation | slot, so a CQE of a closed connection is dropped.
//!
//! The ring is created inside the worker thread (after any fork), with
//! SINGLE_ISSUER + DEFER_TASKRUN (6.1) where the kernel accepts them,
//! falling back on EINVAL, and an explicit CQ size.

use std::io;
use std::net::TcpListener;
use std::os::fd::{AsRawFd, IntoRawFd, RawFd};
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::Duration;

use io_uring::types::{BufRingEntry, Fd, Timespec};
use io_uring::{cqueue, opcode, squeue, IoUring, Probe};

use super::conn::{count_expiry, ConnCore, Slab, WorkerCtx, GEN_MASK, OUT_HIGH_WATER_BYTES};
use super::{setup_failed, Ready, Stop};
use crate::cli::{ServeConfig, UringTier};
use crate::stats::WorkerStats;
use crate::sys;

/// Buffer group id of each worker's provided buffer ring.
pub const BGID: u16 = 0;
/// Submission queue entries; the CQ is sized separately (`--uring-cq-entries`).
const SQ_ENTRIES: u32 = 1024;
/// Timer tick, ns.
const TICK_NS: u32 = 100_000_000;
/// Interval of the timeout sweep over all connections, ns.
const SWEEP_NS: u64 = 1_000_000_000;
/// How long accepting pauses after EMFILE/ENFILE if no connection closes, ns.
const ACCEPT_BACKOFF_NS: u64 = 100_000_000;

// Op kinds in the top byte of `user_data`.
const OP_ACCEPT: u64 = 1;
const OP_RECV: u64 = 2;
const OP_SEND: u64 = 3;
const OP_CLOSE: u64 = 4;
const OP_TICK: u64 = 6;
const OP_WAKE: u64 = 7;
const OP_CANCEL: u64 = 8;

/// `user_data` = kind (8 bits) | generation (24 bits) | slot (32 bits).
#[inline]
fn ud(kind: u64, slot: u32, gen: u32) -> u64 {
    (kind << 56) | (u64::from(gen & GEN_MASK) << 32) | u64::from(slot)
}

#[inline]
fn ud_parts(u: u64) -> (u64, u32, u32) {
    (
        u >> 56,
        (u & 0xffff_ffff) as u32,
        ((u >> 32) as u32) & GEN_MASK,
    )
}

/// Say why io_uring cannot be used here, in one line naming the step and
/// the errno, or Ok.
///
/// Checks: io_uring_setup(2) itself (EPERM from `kernel.io_uring_disabled`
/// or a seccomp filter, ENOSYS), the kernel version (5.19 for multishot
/// accept and provided buffer rings), the opcodes okring submits, and then
/// a trial of one worker's whole set-up with `cfg` ([`setup`]: the ring
/// with its flags and CQ size, and the provided buffer ring registration),
/// torn down again.
pub fn probe(cfg: &ServeConfig) -> Result<(), String> {
    let ring = IoUring::new(8).map_err(|e| setup_error(&e))?;
    if let Some((maj, min)) = sys::kernel_version() {
        if (maj, min) < (5, 19) {
            return Err(format!(
                "Linux {maj}.{min} lacks multishot accept and provided buffer rings (need Linux 5.19 or later; use --mode epoll)"
            ));
        }
    }
    let mut p = Probe::new();
    ring.submitter()
        .register_probe(&mut p)
        .map_err(|e| format!("IORING_REGISTER_PROBE failed: {e} (need Linux 5.19 or later)"))?;
    let needed = [
        (opcode::Accept::CODE, "ACCEPT", "5.5"),
        (opcode::Recv::CODE, "RECV", "5.6"),
        (opcode::Send::CODE, "SEND", "5.6"),
        (opcode::Close::CODE, "CLOSE", "5.6"),
        (opcode::Timeout::CODE, "TIMEOUT", "5.4"),
        (opcode::Read::CODE, "READ", "5.6"),
        (opcode::AsyncCancel::CODE, "ASYNC_CANCEL", "5.5"),
    ];
    for (code, name, since) in needed {
        if !p.is_supported(code) {
            return Err(format!(
                "the kernel does not support IORING_OP_{name} (Linux {since}); use --mode epoll"
            ));
        }
    }
    drop(ring);
    setup(cfg).map(drop)
}

/// Whether this worker uses multishot recv: Linux 6.0 (IORING_RECV_MULTISHOT),
/// unless `--uring-tier 5.19` forces the single-shot path.
fn use_multishot_recv(cfg: &ServeConfig) -> bool {
    cfg.uring_tier == UringTier::Auto && sys::kernel_version().is_none_or(|v| v >= (6, 0))
}

/// One worker's kernel objects: the ring (flags named for the start-up
/// line) and its registered provided buffer ring. Errors name the step
/// that failed and its errno, in one line.
fn setup(cfg: &ServeConfig) -> Result<(IoUring, &'static str, BufRing), String> {
    let (ring, flags) = build_ring(cfg, use_multishot_recv(cfg)).map_err(|e| setup_error(&e))?;
    let bufs = BufRing::new(&ring, cfg.uring_bufs, cfg.uring_buf_len as usize).map_err(|e| {
        format!(
            "IORING_REGISTER_PBUF_RING ({}×{} B provided buffers): {} ({e}); provided buffer rings need Linux 5.19 (use --mode epoll)",
            cfg.uring_bufs,
            cfg.uring_buf_len,
            errno_name(&e)
        )
    })?;
    Ok((ring, flags, bufs))
}

/// The symbolic name of an errno (`EFAULT`), for one-line causes.
fn errno_name(e: &io::Error) -> String {
    let name = match e.raw_os_error() {
        Some(libc::EPERM) => "EPERM",
        Some(libc::ENOENT) => "ENOENT",
        Some(libc::ENOMEM) => "ENOMEM",
        Some(libc::EFAULT) => "EFAULT",
        Some(libc::EBUSY) => "EBUSY",
        Some(libc::EEXIST) => "EEXIST",
        Some(libc::EINVAL) => "EINVAL",
        Some(libc::EMFILE) => "EMFILE",
        Some(libc::ENFILE) => "ENFILE",
        Some(libc::ENOSYS) => "ENOSYS",
        Some(libc::EOPNOTSUPP) => "EOPNOTSUPP",
        Some(n) => return format!("errno {n}"),
        None => return "error".into(),
    };
    name.into()
}

/// One-line cause of an io_uring_setup(2) failure.
fn setup_error(e: &io::Error) -> String {
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

/// Build the worker's ring: SINGLE_ISSUER + DEFER_TASKRUN (6.1), then
/// SINGLE_ISSUER alone (6.0), then none, each step taken on EINVAL.
fn build_ring(cfg: &ServeConfig, multishot_recv: bool) -> io::Result<(IoUring, &'static str)> {
    // The CQ is sized as asked (even tiny: overflowed CQEs are kept by the
    // kernel, IORING_FEAT_NODROP, and counted); the SQ may not exceed it.
    let cq = cfg.uring_cq_entries;
    let sq = SQ_ENTRIES.min(cq);
    // (flags tried, as named in the start-up line), newest first.
    let tiers: &[(bool, bool, &str)] = if multishot_recv {
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
struct BufRing {
    ring: *mut BufRingEntry,
    map_len: usize,
    mask: u16,
    /// Our copy of the tail; published with a release store.
    tail: u16,
    mem: Vec<u8>,
    buf_len: usize,
}

impl BufRing {
    fn new(uring: &IoUring, count: u16, buf_len: usize) -> io::Result<BufRing> {
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
                .register_buf_ring_with_flags(ptr as u64, count, BGID, 0)?
        };
        for bid in 0..count {
            br.recycle(bid);
        }
        br.publish();
        Ok(br)
    }

    /// Give buffer `bid` back to the kernel (visible after [`publish`](Self::publish)).
    #[inline]
    fn recycle(&mut self, bid: u16) {
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
    fn publish(&self) {
        // SAFETY: the tail field overlays the `resv` of entry 0, inside the
        // mapping; it is a u16 the kernel reads with acquire semantics.
        unsafe {
            let tail = BufRingEntry::tail(self.ring) as *const AtomicU16;
            (*tail).store(self.tail, Ordering::Release);
        }
    }

    /// The first `len` bytes of buffer `bid` (as filled by a recv).
    #[inline]
    fn data(&self, bid: u16, len: usize) -> &[u8] {
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

struct Conn {
    fd: RawFd,
    core: ConnCore,
    /// Bytes of the send in flight; its heap buffer must not move or be
    /// freed until the send's CQE.
    sendbuf: Vec<u8>,
    sent: usize,
    send_inflight: bool,
    recv_armed: bool,
    /// Reading is paused for backpressure (see [`OUT_HIGH_WATER_BYTES`]).
    recv_paused: bool,
    peer_eof: bool,
    /// A close was submitted; the fd number is no longer ours.
    closing: bool,
    fd_closed: bool,
}

/// Per-thread uring worker. Field order matters: `ring` drops before
/// `bufs`, so the kernel stops using the buffer ring before it is unmapped.
struct Worker<'a> {
    ring: IoUring,
    bufs: BufRing,
    conns: Slab<Conn>,
    ctx: WorkerCtx,
    /// SQEs prepared during one batch of CQEs, pushed before the next enter.
    sqes: Vec<squeue::Entry>,
    cqes: Vec<(u64, i32, u32)>,
    listener: Option<TcpListener>,
    accept_armed: bool,
    accept_paused_until: Option<u64>,
    multishot_recv: bool,
    recv_len: u32,
    /// Timespec of the tick Timeout op; boxed so its address is stable
    /// while the kernel holds it.
    tick: Box<Timespec>,
    wake_buf: Box<u64>,
    waker: RawFd,
    overflow_seen: u32,
    draining: bool,
    stop: &'a Stop,
}

/// Run one uring worker until `stop`; see the contract in `server/mod.rs`.
pub fn run_worker(
    id: usize,
    listener: TcpListener,
    cfg: &ServeConfig,
    stop: &Stop,
    ready: &Ready,
    publisher: Option<super::live::Publisher>,
) -> Result<WorkerStats, String> {
    let multishot_recv = use_multishot_recv(cfg);
    let (ring, flags, bufs) = match setup(cfg) {
        Ok(r) => r,
        Err(e) => return setup_failed(ready, format!("worker {id}: {e}")),
    };
    let mut w = Worker {
        ring,
        bufs,
        conns: Slab::new(),
        ctx: WorkerCtx::new(cfg, publisher),
        sqes: Vec::with_capacity(256),
        cqes: Vec::with_capacity(1024),
        listener: Some(listener),
        accept_armed: false,
        accept_paused_until: None,
        multishot_recv,
        recv_len: cfg.uring_buf_len,
        tick: Box::new(Timespec::new().nsec(TICK_NS)),
        wake_buf: Box::new(0),
        waker: stop.waker(id),
        overflow_seen: 0,
        draining: false,
        stop,
    };
    w.arm_accept();
    w.arm_tick();
    w.arm_wake();
    let recv = if multishot_recv {
        "multishot recv"
    } else {
        "single-shot recv (5.19 tier)"
    };
    let _ = ready.send(Ok(format!(
        "{recv}, {flags}, {}×{} B provided buffers, CQ {}",
        cfg.uring_bufs,
        cfg.uring_buf_len,
        w.ring.params().cq_entries()
    )));
    w.run(cfg.drain)
        .map_err(|e| format!("worker {id}: io_uring_enter: {e}"))?;
    Ok(std::mem::take(&mut w.ctx.stats))
}

impl Worker<'_> {
    fn run(&mut self, drain: Duration) -> io::Result<()> {
        let mut last_sweep = self.ctx.now_ns();
        let mut deadline = u64::MAX;
        loop {
            self.submit_and_wait()?;
            let now = self.ctx.now_ns();
            self.reap();
            for i in 0..self.cqes.len() {
                let (u, res, flags) = self.cqes[i];
                self.dispatch(u, res, flags, now);
            }
            if self.stop.raised() && !self.draining {
                self.begin_drain();
                deadline = now + drain.as_nanos() as u64;
            }
            if self.draining && (self.conns.is_empty() || now >= deadline) {
                break;
            }
            if now.saturating_sub(last_sweep) >= SWEEP_NS {
                last_sweep = now;
                self.sweep(now);
            }
        }
        self.shutdown_all()
    }

    /// Push prepared SQEs (submitting whenever the SQ fills), publish the
    /// recycled buffers, then enter once: submit and wait for ≥ 1 CQE.
    fn submit_and_wait(&mut self) -> io::Result<()> {
        self.bufs.publish();
        let mut i = 0;
        while i < self.sqes.len() {
            let mut sq = self.ring.submission();
            while i < self.sqes.len() {
                // SAFETY: every SQE points into memory that outlives its
                // completion: `sendbuf`s stay put until their CQE (slots are
                // freed only after it), the tick timespec and wake buffer are
                // boxed in this worker, and the fds are ours until Close.
                if unsafe { sq.push(&self.sqes[i]) }.is_err() {
                    break;
                }
                i += 1;
            }
            drop(sq);
            if i < self.sqes.len() {
                self.enter(0)?;
            }
        }
        self.sqes.clear();
        self.enter(1)
    }

    fn enter(&mut self, want: usize) -> io::Result<()> {
        match self.ring.submit_and_wait(want) {
            Ok(_) => Ok(()),
            Err(e) => match e.raw_os_error() {
                // EINTR: a signal; EBUSY: the CQ overflowed and must be
                // reaped first; EAGAIN: transient kernel memory shortage.
                Some(libc::EINTR) | Some(libc::EBUSY) | Some(libc::EAGAIN) => Ok(()),
                _ => Err(e),
            },
        }
    }

    fn reap(&mut self) {
        self.cqes.clear();
        let mut cq = self.ring.completion();
        let overflow = cq.overflow();
        for cqe in &mut cq {
            self.cqes.push((cqe.user_data(), cqe.result(), cqe.flags()));
        }
        drop(cq);
        if overflow != self.overflow_seen {
            self.ctx.stats.counters.cq_overflow +=
                u64::from(overflow.wrapping_sub(self.overflow_seen));
            self.overflow_seen = overflow;
        }
    }

    fn dispatch(&mut self, u: u64, res: i32, flags: u32, now: u64) {
        let (kind, slot, gen) = ud_parts(u);
        match kind {
            OP_RECV => self.on_recv(slot, gen, res, flags, now),
            OP_SEND => self.on_send(slot, gen, res, now),
            OP_ACCEPT => self.on_accept(res, flags, now),
            OP_CLOSE => {
                if let Some(c) = self.conns.get_mut(slot, gen) {
                    c.fd_closed = true;
                }
                self.maybe_free(slot, gen);
            }
            OP_TICK => self.on_tick(now),
            OP_WAKE => {}
            OP_CANCEL => {}
            _ => {}
        }
    }

    fn arm_accept(&mut self) {
        let Some(l) = &self.listener else { return };
        if self.accept_armed {
            return;
        }
        let e = opcode::AcceptMulti::new(Fd(l.as_raw_fd()))
            .flags(libc::SOCK_CLOEXEC)
            .build()
            .user_data(ud(OP_ACCEPT, 0, 0));
        self.sqes.push(e);
        self.accept_armed = true;
    }

    fn arm_tick(&mut self) {
        let ts: *const Timespec = &*self.tick;
        self.sqes.push(
            opcode::Timeout::new(ts)
                .build()
                .user_data(ud(OP_TICK, 0, 0)),
        );
    }

    fn arm_wake(&mut self) {
        let buf: *mut u64 = &mut *self.wake_buf;
        self.sqes.push(
            opcode::Read::new(Fd(self.waker), buf.cast(), 8)
                .build()
                .user_data(ud(OP_WAKE, 0, 0)),
        );
    }

    fn arm_recv(&mut self, slot: u32, gen: u32) {
        let multishot = self.multishot_recv;
        let len = self.recv_len;
        let Some(c) = self.conns.get_mut(slot, gen) else {
            return;
        };
        if c.recv_armed || c.closing {
            return;
        }
        let e = if multishot {
            opcode::RecvMulti::new(Fd(c.fd), BGID).build()
        } else {
            opcode::Recv::new(Fd(c.fd), std::ptr::null_mut(), len)
                .buf_group(BGID)
                .build()
                .flags(squeue::Flags::BUFFER_SELECT)
        };
        c.recv_armed = true;
        self.sqes.push(e.user_data(ud(OP_RECV, slot, gen)));
    }

    fn on_accept(&mut self, res: i32, flags: u32, now: u64) {
        let more = cqueue::more(flags);
        if !more {
            self.accept_armed = false;
        }
        if res >= 0 {
            let fd = res;
            if self.draining {
                sys::close_fd(fd);
            } else if self.conns.len() >= self.ctx.max_conns {
                sys::close_fd(fd);
                self.ctx.stats.counters.conns_refused += 1;
            } else {
                let (slot, gen) = self.conns.insert_with(|_, _| Conn {
                    fd,
                    core: ConnCore::new(now),
                    sendbuf: Vec::new(),
                    sent: 0,
                    send_inflight: false,
                    recv_armed: false,
                    recv_paused: false,
                    peer_eof: false,
                    closing: false,
                    fd_closed: false,
                });
                self.ctx.stats.counters.conns_accepted += 1;
                self.arm_recv(slot, gen);
            }
        } else {
            match -res {
                libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM => {
                    // Do not re-arm: it would fail again at once. Resume when a
                    // connection closes or the back-off expires.
                    if self.accept_paused_until.is_none() {
                        self.ctx.stats.counters.emfile_pauses += 1;
                    }
                    self.accept_paused_until = Some(now + ACCEPT_BACKOFF_NS);
                    return;
                }
                libc::ECANCELED => return,
                _ => self.ctx.stats.counters.accept_errors += 1,
            }
        }
        if !self.accept_armed && !self.draining && self.accept_paused_until.is_none() {
            self.ctx.stats.counters.multishot_rearms += 1;
            self.arm_accept();
        }
    }

    fn resume_accept(&mut self) {
        if self.accept_paused_until.take().is_some() && !self.draining {
            self.arm_accept();
        }
    }

    fn on_recv(&mut self, slot: u32, gen: u32, res: i32, flags: u32, now: u64) {
        let bid = cqueue::buffer_select(flags);
        let more = cqueue::more(flags);
        let Some(c) = self.conns.get_mut(slot, gen) else {
            // A CQE of a connection already gone: only its buffer matters.
            if let Some(bid) = bid {
                self.bufs.recycle(bid);
            }
            return;
        };
        if !more {
            c.recv_armed = false;
        }
        if res > 0 {
            if let Some(bid) = bid {
                if !c.closing {
                    let data = self.bufs.data(bid, res as usize);
                    c.core.input(data, now, &mut self.ctx);
                }
                self.bufs.recycle(bid);
            }
            if c.closing {
                return;
            }
            if c.core.has_out() && !c.send_inflight {
                self.start_send(slot, gen);
            } else if c.core.out.len() > OUT_HIGH_WATER_BYTES && !c.recv_paused {
                // The peer is not reading what it asked for: stop reading it
                // until the send in flight drains (a single-shot recv is
                // simply not re-armed; a multishot one is cancelled).
                c.recv_paused = true;
                if c.recv_armed {
                    let e = opcode::AsyncCancel::new(ud(OP_RECV, slot, gen))
                        .build()
                        .user_data(ud(OP_CANCEL, 0, 0));
                    self.sqes.push(e);
                }
            }
            let Some(c) = self.conns.get_mut(slot, gen) else {
                return;
            };
            if !c.recv_armed && !c.closing && !c.peer_eof && !c.recv_paused {
                if self.multishot_recv {
                    self.ctx.stats.counters.multishot_rearms += 1;
                }
                self.arm_recv(slot, gen);
            }
            return;
        }
        if let Some(bid) = bid {
            self.bufs.recycle(bid);
        }
        if res == 0 {
            // The peer's FIN: answer what is complete, then close.
            c.peer_eof = true;
            if !c.send_inflight && !c.core.has_out() {
                self.start_close(slot, gen, false);
            }
            return;
        }
        match -res {
            libc::ENOBUFS => {
                // The buffer ring ran dry; every buffer is recycled by the
                // time the next enter submits this re-arm.
                self.ctx.stats.counters.enobufs += 1;
                if !c.recv_armed && !c.closing && !c.recv_paused {
                    self.arm_recv(slot, gen);
                }
            }
            libc::ECANCELED => {
                // Our backpressure cancel; if the send drained meanwhile,
                // reading resumes now.
                if !c.recv_armed && !c.recv_paused && !c.closing && !c.peer_eof {
                    self.arm_recv(slot, gen);
                }
            }
            libc::ECONNRESET | libc::EPIPE | libc::ETIMEDOUT => {
                self.ctx.stats.counters.resets += 1;
                self.start_close(slot, gen, true);
            }
            _ => self.start_close(slot, gen, true),
        }
    }

    fn start_send(&mut self, slot: u32, gen: u32) {
        let Some(c) = self.conns.get_mut(slot, gen) else {
            return;
        };
        debug_assert!(!c.send_inflight && c.sendbuf.is_empty());
        c.core.begin_send();
        std::mem::swap(&mut c.core.out, &mut c.sendbuf);
        c.sent = 0;
        self.push_send(slot, gen);
    }

    fn push_send(&mut self, slot: u32, gen: u32) {
        let Some(c) = self.conns.get_mut(slot, gen) else {
            return;
        };
        let rest = &c.sendbuf[c.sent..];
        let e = opcode::Send::new(Fd(c.fd), rest.as_ptr(), rest.len() as u32)
            .flags(libc::MSG_NOSIGNAL)
            .build()
            .user_data(ud(OP_SEND, slot, gen));
        c.send_inflight = true;
        self.sqes.push(e);
    }

    fn on_send(&mut self, slot: u32, gen: u32, res: i32, now: u64) {
        let Some(c) = self.conns.get_mut(slot, gen) else {
            return;
        };
        c.send_inflight = false;
        if c.closing {
            self.maybe_free(slot, gen);
            return;
        }
        if res < 0 {
            if matches!(-res, libc::EPIPE | libc::ECONNRESET) {
                self.ctx.stats.counters.resets += 1;
            }
            self.start_close(slot, gen, true);
            return;
        }
        c.sent += res as usize;
        if c.sent < c.sendbuf.len() {
            self.ctx.stats.counters.short_sends += 1;
            self.push_send(slot, gen);
            return;
        }
        c.core.end_send(now, &mut self.ctx);
        c.sendbuf.clear();
        c.sent = 0;
        if c.recv_paused && c.core.out.len() <= OUT_HIGH_WATER_BYTES {
            c.recv_paused = false;
            if !c.recv_armed && !c.peer_eof {
                self.arm_recv(slot, gen);
            }
        }
        let Some(c) = self.conns.get_mut(slot, gen) else {
            return;
        };
        if c.core.has_out() {
            self.start_send(slot, gen);
        } else if c.peer_eof || (self.draining && c.core.is_quiet() && !c.core.close_after) {
            self.start_close(slot, gen, false);
        } else if c.core.close_after && !c.core.lingering {
            // Lingering close (RFC 9112 §9.6): our FIN after the last
            // response; input is discarded until the peer's FIN.
            // shutdown(2) directly: IORING_OP_SHUTDOWN is always punted to
            // an io-wq thread (a thread wake-up per connection), and it
            // would look the fd number up there, after a queued close may
            // have let a new connection take that number.
            c.core.lingering = true;
            c.core.since_ns = now;
            // SAFETY: shutdown(2) on a descriptor this worker owns and has
            // not submitted a close for (`closing` is false here).
            unsafe { libc::shutdown(c.fd, libc::SHUT_WR) };
        }
    }

    /// Close through the ring. `abortive`: the connection is being dropped
    /// (error, timeout, shutdown), so an armed recv is ended first with
    /// shutdown(2); a close alone would leave it holding the socket.
    fn start_close(&mut self, slot: u32, gen: u32, abortive: bool) {
        let Some(c) = self.conns.get_mut(slot, gen) else {
            return;
        };
        if c.closing {
            return;
        }
        c.closing = true;
        if c.recv_armed || (abortive && c.send_inflight) {
            // SAFETY: shutdown(2) on a descriptor this worker still owns.
            unsafe { libc::shutdown(c.fd, libc::SHUT_RDWR) };
        }
        let e = opcode::Close::new(Fd(c.fd))
            .build()
            .user_data(ud(OP_CLOSE, slot, gen));
        self.sqes.push(e);
    }

    /// Free the slot once the close completed and no send still points at
    /// its buffer.
    fn maybe_free(&mut self, slot: u32, gen: u32) {
        let Some(c) = self.conns.get_mut(slot, gen) else {
            return;
        };
        if c.fd_closed && !c.send_inflight {
            self.conns.remove(slot);
            self.ctx.stats.counters.conns_closed += 1;
            self.resume_accept();
        }
    }

    fn on_tick(&mut self, now: u64) {
        self.ctx.tick();
        if let Some(t) = self.accept_paused_until {
            if now >= t {
                self.resume_accept();
            }
        }
        self.arm_tick();
    }

    fn begin_drain(&mut self) {
        self.draining = true;
        self.accept_paused_until = None;
        if self.accept_armed {
            self.sqes.push(
                opcode::AsyncCancel::new(ud(OP_ACCEPT, 0, 0))
                    .build()
                    .user_data(ud(OP_CANCEL, 0, 0)),
            );
        }
        if let Some(l) = self.listener.take() {
            // The accept op holds its own reference until it is cancelled.
            sys::close_fd(l.into_raw_fd());
        }
        for (slot, gen) in self.conns.live_keys() {
            if let Some(c) = self.conns.get_mut(slot, gen) {
                if !c.send_inflight && c.core.is_quiet() {
                    self.start_close(slot, gen, true);
                }
            }
        }
    }

    fn sweep(&mut self, now: u64) {
        for (slot, gen) in self.conns.live_keys() {
            let Some(c) = self.conns.get_mut(slot, gen) else {
                continue;
            };
            if c.closing {
                continue;
            }
            if let Some(e) = c.core.expired(now, &self.ctx) {
                count_expiry(e, &mut self.ctx);
                self.start_close(slot, gen, true);
            }
        }
    }

    /// At exit: end every connection and wait (bounded) for the sends whose
    /// buffers the kernel may still read.
    fn shutdown_all(&mut self) -> io::Result<()> {
        for (slot, gen) in self.conns.live_keys() {
            self.start_close(slot, gen, true);
        }
        for _ in 0..50 {
            if self.conns.is_empty() {
                return Ok(());
            }
            self.submit_and_wait()?;
            let now = self.ctx.now_ns();
            self.reap();
            for i in 0..self.cqes.len() {
                let (u, res, flags) = self.cqes[i];
                self.dispatch(u, res, flags, now);
            }
        }
        // Sends still in flight after 5 s of ticks: their buffers are leaked
        // rather than freed under the kernel.
        std::mem::forget(std::mem::take(&mut self.conns));
        Ok(())
    }
}
