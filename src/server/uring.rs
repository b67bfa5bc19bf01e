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
//! - a 100 ms Timeout op as the worker's tick (Date refresh, the timer
//!   wheel of connection deadlines, accept back-off): multishot ops cannot
//!   carry linked timeouts;
//! - a read on the worker's shutdown eventfd.
//!
//! Waiting: each loop turn makes one io_uring_enter that submits and
//! waits. With `--uring-wait` (off by default) the wait is batched: it asks
//! for `--uring-wait-cqes` CQEs and returns once it has them or the cap
//! has passed with at least one — via the kernel's minimum-wait timeout
//! (`min_wait_usec`, IORING_FEAT_MIN_TIMEOUT, 6.12) or, before it, a timed
//! wait (IORING_ENTER_EXT_ARG, 5.11) followed by an untimed wait for one
//! CQE when the timed one found none. With DEFER_TASKRUN the kernel then
//! wakes the task only once that many completions are queued. Below
//! saturation this is one wake-up for several requests at the cost of up
//! to the cap in latency; at saturation a batch is always there and the
//! wait never sleeps. The `wait_cap_expired` counter says how often the cap
//! ended a wait.
//!
//! The connection policy is the session's ([`super::session`]); this
//! worker turns its actions into SQEs: Send → IORING_OP_SEND of the
//! session's unsent bytes; PauseRead → IORING_OP_ASYNC_CANCEL of a
//! multishot recv (a single-shot one is not re-armed); Linger →
//! shutdown(2) `SHUT_WR`; Close → IORING_OP_ASYNC_CANCEL of an armed recv
//! (or shutdown(2) `SHUT_RDWR` when a send is in flight), then
//! IORING_OP_CLOSE. A recv stays armed while the
//! session wants to read.
//!
//! Every multishot CQE is checked for `IORING_CQE_F_MORE`; when it is clear
//! the op is over and is re-armed unless the session stopped reading. A
//! buffer id is returned to the ring as soon as its bytes are framed, on
//! every path (data, EOF, error, stale CQE). `user_data` is a [`Token`]:
//! op | generation | slot, so a CQE of a closed connection is dropped.
//!
//! The ring is created inside the worker thread (after any fork), with
//! SINGLE_ISSUER + DEFER_TASKRUN (6.1) where the kernel accepts them,
//! falling back on EINVAL, and an explicit CQ size.

use std::io;
use std::net::TcpListener;
use std::os::fd::{AsRawFd, IntoRawFd, RawFd};
use std::time::Duration;

use io_uring::types::{Fd, SubmitArgs, Timespec};
use io_uring::{cqueue, opcode, squeue, IoUring, Probe};

use super::session::{Action, Session};
use super::worker::{AcceptGate, Slab, TimerWheel, WorkerCtx, GEN_MASK, NO_TIMER, TICK_NS};
use super::{setup_failed, Ready, Stop};
use crate::config::{ServeConfig, UringTier};
use crate::stats::WorkerStats;
use crate::sys::{
    self,
    uring::{self, BufRing},
};

/// Buffer group id of each worker's provided buffer ring.
pub const BGID: u16 = 0;
/// Submission queue entries; the CQ is sized separately (`--uring-cq-entries`).
const SQ_ENTRIES: u32 = 1024;
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
    let ring = IoUring::new(8).map_err(|e| uring::setup_error(&e))?;
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
    let (ring, flags) =
        uring::build_ring(SQ_ENTRIES, cfg.uring_cq_entries, use_multishot_recv(cfg))
            .map_err(|e| uring::setup_error(&e))?;
    let bufs = BufRing::new(&ring, cfg.uring_bufs, cfg.uring_buf_len as usize, BGID).map_err(|e| {
        format!(
            "IORING_REGISTER_PBUF_RING ({}×{} B provided buffers): {} ({e}); provided buffer rings need Linux 5.19 (use --mode epoll)",
            cfg.uring_bufs,
            cfg.uring_buf_len,
            uring::errno_name(&e)
        )
    })?;
    Ok((ring, flags, bufs))
}

/// The op of an SQE, in its `user_data`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
enum Op {
    Accept = 1,
    Recv = 2,
    Send = 3,
    Close = 4,
    Tick = 6,
    Wake = 7,
    Cancel = 8,
}

/// What a CQE is for: op (8 bits) | slot generation (24 bits) | slot (32
/// bits) in `user_data`, so a CQE of a closed connection is recognised.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Token {
    op: Op,
    slot: u32,
    gen: u32,
}

impl Token {
    /// The token of a worker-level op (no connection).
    const fn worker(op: Op) -> Token {
        Token {
            op,
            slot: 0,
            gen: 0,
        }
    }

    fn pack(self) -> u64 {
        (u64::from(self.op as u8) << 56)
            | (u64::from(self.gen & GEN_MASK) << 32)
            | u64::from(self.slot)
    }

    fn unpack(u: u64) -> Option<Token> {
        let op = match (u >> 56) as u8 {
            1 => Op::Accept,
            2 => Op::Recv,
            3 => Op::Send,
            4 => Op::Close,
            6 => Op::Tick,
            7 => Op::Wake,
            8 => Op::Cancel,
            _ => return None,
        };
        Some(Token {
            op,
            slot: u as u32,
            gen: ((u >> 32) as u32) & GEN_MASK,
        })
    }
}

/// One connection: its descriptor, its session, and what the ring holds.
struct Conn {
    fd: RawFd,
    s: Session,
    slot: u32,
    gen: u32,
    /// A recv (multishot or single-shot) is armed.
    recv_armed: bool,
    /// The close completed: the fd number is no longer ours.
    fd_closed: bool,
    /// The tick of this connection's timer-wheel entry, or [`NO_TIMER`].
    timer: u64,
}

/// The submission side of a worker: prepared SQEs (pushed before the next
/// enter), the recv flavour, and the timer wheel.
struct Io {
    sqes: Vec<squeue::Entry>,
    multishot_recv: bool,
    recv_len: u32,
    wheel: TimerWheel,
}

impl Io {
    /// Carry out `a` for `c` and every action its session gives next, then
    /// keep a recv armed while the session wants to read, and its timer
    /// filed.
    fn drive(&mut self, c: &mut Conn, mut a: Action, now: u64, w: &mut WorkerCtx) {
        loop {
            match a {
                Action::Wait => break,
                Action::Send => {
                    let rest = c.s.unsent();
                    self.sqes.push(
                        opcode::Send::new(Fd(c.fd), rest.as_ptr(), rest.len() as u32)
                            .flags(sys::MSG_NOSIGNAL)
                            .build()
                            .user_data(c.token(Op::Send)),
                    );
                }
                Action::PauseRead => {
                    // A single-shot recv is simply not re-armed; a multishot
                    // one is cancelled.
                    if c.recv_armed && self.multishot_recv {
                        self.sqes.push(
                            opcode::AsyncCancel::new(c.token(Op::Recv))
                                .build()
                                .user_data(Token::worker(Op::Cancel).pack()),
                        );
                    }
                }
                Action::ResumeRead => {}
                Action::Linger => {
                    // shutdown(2) directly: IORING_OP_SHUTDOWN is always
                    // punted to an io-wq thread (a thread wake-up per
                    // connection), and it would look the fd number up there,
                    // after a queued close may have let a new connection
                    // take that number.
                    sys::shutdown(c.fd, true);
                }
                Action::Close(_) => {
                    // An armed recv, or a send the kernel still holds, would
                    // keep the socket alive past the close: end them. A recv
                    // alone is cancelled by an SQE ahead of the close (a
                    // poll-armed recv is cancelled inline, during the same
                    // submission; its -ECANCELED CQE is dropped as stale and
                    // the cancel's own CQE is skipped on success,
                    // IOSQE_CQE_SKIP_SUCCESS, 5.17): no system call. A send
                    // in flight cannot be cancelled that way once it has
                    // started: shutdown(2) ends both.
                    if c.s.send_in_flight() {
                        sys::shutdown(c.fd, false);
                    } else if c.recv_armed {
                        self.sqes.push(
                            opcode::AsyncCancel::new(c.token(Op::Recv))
                                .build()
                                .flags(squeue::Flags::SKIP_SUCCESS)
                                .user_data(Token::worker(Op::Cancel).pack()),
                        );
                    }
                    self.sqes.push(
                        opcode::Close::new(Fd(c.fd))
                            .build()
                            .user_data(c.token(Op::Close)),
                    );
                    return;
                }
            }
            a = c.s.poll(now);
        }
        if c.s.wants_read() && !c.recv_armed {
            self.arm_recv(c);
        }
        if let Some((at, _)) = c.s.deadline(w) {
            self.wheel.arm(c.slot, c.gen, at, &mut c.timer);
        }
    }

    fn arm_recv(&mut self, c: &mut Conn) {
        let e = if self.multishot_recv {
            opcode::RecvMulti::new(Fd(c.fd), BGID).build()
        } else {
            opcode::Recv::new(Fd(c.fd), std::ptr::null_mut(), self.recv_len)
                .buf_group(BGID)
                .build()
                .flags(squeue::Flags::BUFFER_SELECT)
        };
        c.recv_armed = true;
        self.sqes.push(e.user_data(c.token(Op::Recv)));
    }
}

impl Conn {
    fn token(&self, op: Op) -> u64 {
        Token {
            op,
            slot: self.slot,
            gen: self.gen,
        }
        .pack()
    }
}

/// How a worker waits for completions (`--uring-wait`, `--uring-wait-cqes`).
struct Wait {
    /// CQEs a batched wait asks for; 0: no batching (wait for one).
    want: usize,
    /// The cap, µs, as `min_wait_usec` (6.12).
    cap_us: u32,
    /// The cap as the timed wait's timeout (before 6.12).
    cap: Timespec,
    /// The timeout of a minimum-wait, for its wait for the first CQE: the
    /// 100 ms tick always ends it before.
    long: Timespec,
    /// The kernel has IORING_FEAT_MIN_TIMEOUT.
    min_timeout: bool,
    /// The last timed wait found nothing: the next waits for one CQE, untimed.
    idle: bool,
}

impl Wait {
    fn new(cfg: &ServeConfig, ring: &IoUring) -> Wait {
        let cap_ns = cfg.uring_wait.as_nanos() as u64;
        Wait {
            want: if cap_ns == 0 {
                0
            } else {
                cfg.uring_wait_cqes as usize
            },
            cap_us: (cap_ns / 1000).max(1) as u32,
            cap: Timespec::new().nsec(cap_ns as u32),
            long: Timespec::new().sec(1),
            min_timeout: ring.params().is_feature_min_timeout(),
            idle: false,
        }
    }

    /// For the start-up line: nothing when waits are not batched.
    fn describe(&self) -> String {
        if self.want == 0 {
            return String::new();
        }
        let how = if self.min_timeout {
            "min-wait"
        } else {
            "timed wait"
        };
        format!(", waits ≤{}µs for {} CQEs ({how})", self.cap_us, self.want)
    }
}

/// Per-thread uring worker. Field order matters: `ring` drops before
/// `bufs`, so the kernel stops using the buffer ring before it is unmapped.
struct Worker<'a> {
    ring: IoUring,
    bufs: BufRing,
    conns: Slab<Conn>,
    ctx: WorkerCtx,
    io: Io,
    cqes: Vec<(u64, i32, u32)>,
    /// Timer-wheel entries due at this tick.
    due: Vec<(u32, u32, u64)>,
    listener: Option<TcpListener>,
    accept_armed: bool,
    accept: AcceptGate,
    /// Timespec of the tick Timeout op; boxed so its address is stable
    /// while the kernel holds it.
    tick: Box<Timespec>,
    wake_buf: Box<u64>,
    waker: RawFd,
    overflow_seen: u32,
    draining: bool,
    wait: Wait,
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
    let ctx = WorkerCtx::new(cfg, publisher);
    let now = ctx.now_ns();
    let wait = Wait::new(cfg, &ring);
    let mut w = Worker {
        ring,
        bufs,
        conns: Slab::new(),
        ctx,
        io: Io {
            sqes: Vec::with_capacity(256),
            multishot_recv,
            recv_len: cfg.uring_buf_len,
            wheel: TimerWheel::new(now),
        },
        cqes: Vec::with_capacity(1024),
        due: Vec::new(),
        listener: Some(listener),
        accept_armed: false,
        accept: AcceptGate::default(),
        tick: Box::new(Timespec::new().nsec(TICK_NS as u32)),
        wake_buf: Box::new(0),
        waker: stop.waker(id),
        overflow_seen: 0,
        draining: false,
        wait,
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
        "{recv}, {flags}, {}×{} B provided buffers, CQ {}{}",
        cfg.uring_bufs,
        cfg.uring_buf_len,
        w.ring.params().cq_entries(),
        w.wait.describe()
    )));
    w.run(cfg.drain)
        .map_err(|e| format!("worker {id}: io_uring_enter: {e}"))?;
    Ok(std::mem::take(&mut w.ctx.stats))
}

impl Worker<'_> {
    fn run(&mut self, drain: Duration) -> io::Result<()> {
        let mut deadline = u64::MAX;
        loop {
            self.submit_and_wait()?;
            let now = self.ctx.now_ns();
            self.reap_and_dispatch(now);
            if self.stop.raised() && !self.draining {
                self.begin_drain(now);
                deadline = now + drain.as_nanos() as u64;
            }
            if self.draining && (self.conns.is_empty() || now >= deadline) {
                break;
            }
        }
        self.shutdown_all()
    }

    fn reap_and_dispatch(&mut self, now: u64) {
        self.reap();
        for i in 0..self.cqes.len() {
            let (u, res, flags) = self.cqes[i];
            self.dispatch(u, res, flags, now);
        }
    }

    /// Push prepared SQEs (submitting whenever the SQ fills), publish the
    /// recycled buffers, then enter once: submit and wait ([`Self::wait`]).
    fn submit_and_wait(&mut self) -> io::Result<()> {
        self.bufs.publish();
        let mut i = 0;
        while i < self.io.sqes.len() {
            let mut sq = self.ring.submission();
            while i < self.io.sqes.len() {
                // SAFETY: every SQE points into memory that outlives its
                // completion: a send points into its session's send buffer,
                // which is not touched until the send's CQE (slots are freed
                // only after it), the tick timespec and wake buffer are
                // boxed in this worker, and the fds are ours until Close.
                if unsafe { sq.push(&self.io.sqes[i]) }.is_err() {
                    break;
                }
                i += 1;
            }
            drop(sq);
            if i < self.io.sqes.len() {
                self.enter(0)?;
            }
        }
        self.io.sqes.clear();
        self.wait()
    }

    /// The loop's one io_uring_enter: submit, then wait for one CQE, or for
    /// a batch bounded by the cap (see the module docs).
    fn wait(&mut self) -> io::Result<()> {
        let wt = &mut self.wait;
        if wt.want == 0 || wt.idle || self.draining {
            wt.idle = false;
            return self.enter(1);
        }
        self.ctx.stats.counters.ring_enters += 1;
        let r = if wt.min_timeout {
            let args = SubmitArgs::new()
                .min_wait_usec(wt.cap_us)
                .timespec(&wt.long);
            self.ring.submitter().submit_with_args(wt.want, &args)
        } else {
            let args = SubmitArgs::new().timespec(&wt.cap);
            self.ring.submitter().submit_with_args(wt.want, &args)
        };
        if let Err(e) = r {
            // ETIME: the cap (or the long wait) passed; EINTR, EBUSY: as
            // in enter.
            let again = e
                .raw_os_error()
                .is_some_and(|n| sys::Errno(n).io_failure() == sys::IoFailure::Again);
            if !uring::is_wait_end(&e) && !again {
                return Err(e);
            }
        }
        let ready = self.ring.completion().len();
        if ready < self.wait.want {
            self.ctx.stats.counters.wait_cap_expired += 1;
            // Nothing came within the cap: sleep until something does.
            self.wait.idle = ready == 0;
        }
        Ok(())
    }

    fn enter(&mut self, want: usize) -> io::Result<()> {
        // io-uring's submit_and_wait always makes the system call without
        // SQPOLL, so this counts io_uring_enter(2) calls exactly.
        self.ctx.stats.counters.ring_enters += 1;
        match self.ring.submit_and_wait(want) {
            Ok(_) => Ok(()),
            Err(e) => match e.raw_os_error() {
                // EINTR: a signal; EBUSY: the CQ overflowed and must be
                // reaped first; EAGAIN: transient kernel memory shortage.
                Some(n) if sys::Errno(n).io_failure() == sys::IoFailure::Again => Ok(()),
                Some(n) if sys::Errno(n) == sys::Errno::EBUSY => Ok(()),
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
        self.ctx.stats.counters.cqes += self.cqes.len() as u64;
        if overflow != self.overflow_seen {
            self.ctx.stats.counters.cq_overflow +=
                u64::from(overflow.wrapping_sub(self.overflow_seen));
            self.overflow_seen = overflow;
        }
    }

    fn dispatch(&mut self, u: u64, res: i32, flags: u32, now: u64) {
        let Some(t) = Token::unpack(u) else { return };
        match t.op {
            Op::Recv => self.on_recv(t, res, flags, now),
            Op::Send => self.on_send(t, res, now),
            Op::Accept => self.on_accept(res, flags, now),
            Op::Close => {
                if let Some(c) = self.conns.get_mut(t.slot, t.gen) {
                    c.fd_closed = true;
                }
                self.maybe_free(t);
            }
            Op::Tick => self.on_tick(now),
            Op::Wake | Op::Cancel => {}
        }
    }

    fn arm_accept(&mut self) {
        let Some(l) = &self.listener else { return };
        if self.accept_armed {
            return;
        }
        let e = opcode::AcceptMulti::new(Fd(l.as_raw_fd()))
            .flags(sys::SOCK_CLOEXEC)
            .build()
            .user_data(Token::worker(Op::Accept).pack());
        self.io.sqes.push(e);
        self.accept_armed = true;
    }

    fn arm_tick(&mut self) {
        let ts: *const Timespec = &*self.tick;
        self.io.sqes.push(
            opcode::Timeout::new(ts)
                .build()
                .user_data(Token::worker(Op::Tick).pack()),
        );
    }

    fn arm_wake(&mut self) {
        let buf: *mut u64 = &mut *self.wake_buf;
        self.io.sqes.push(
            opcode::Read::new(Fd(self.waker), buf.cast(), 8)
                .build()
                .user_data(Token::worker(Op::Wake).pack()),
        );
    }

    fn on_accept(&mut self, res: i32, flags: u32, now: u64) {
        if !cqueue::more(flags) {
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
                let (slot, gen) = self.conns.insert(Conn {
                    fd,
                    s: Session::new(now),
                    slot: 0,
                    gen: 0,
                    recv_armed: false,
                    fd_closed: false,
                    timer: NO_TIMER,
                });
                self.ctx.stats.counters.conns_accepted += 1;
                let c = self.conns.get_mut(slot, gen).expect("just inserted");
                (c.slot, c.gen) = (slot, gen);
                self.io.drive(c, Action::Wait, now, &mut self.ctx);
            }
        } else {
            match sys::Errno(-res).accept_failure() {
                sys::AcceptFailure::Exhausted => {
                    // Do not re-arm: it would fail again at once. Resume when
                    // a connection closes or the back-off expires.
                    self.accept.exhausted(now, &mut self.ctx);
                    return;
                }
                sys::AcceptFailure::Canceled => return,
                sys::AcceptFailure::WouldBlock | sys::AcceptFailure::Transient => {
                    self.ctx.stats.counters.accept_errors += 1
                }
            }
        }
        if !self.accept_armed && !self.draining && !self.accept.is_paused() {
            self.ctx.stats.counters.multishot_rearms += 1;
            self.arm_accept();
        }
    }

    fn on_recv(&mut self, t: Token, res: i32, flags: u32, now: u64) {
        let bid = cqueue::buffer_select(flags);
        let more = cqueue::more(flags);
        let Worker {
            conns,
            bufs,
            ctx,
            io,
            ..
        } = self;
        let Some(c) = conns.get_mut(t.slot, t.gen) else {
            // A CQE of a connection already gone: only its buffer matters.
            if let Some(bid) = bid {
                bufs.recycle(bid);
            }
            return;
        };
        if !more {
            c.recv_armed = false;
        }
        let a = if res > 0 {
            let a = match bid {
                Some(bid) => {
                    let a = c.s.on_input(bufs.data(bid, res as usize), now, ctx);
                    bufs.recycle(bid);
                    a
                }
                None => Action::Wait,
            };
            if !more && io.multishot_recv && c.s.wants_read() {
                ctx.stats.counters.multishot_rearms += 1;
            }
            a
        } else {
            if let Some(bid) = bid {
                bufs.recycle(bid);
            }
            if res == 0 {
                c.s.on_eof(now)
            } else {
                match sys::Errno(-res).io_failure() {
                    // The buffer ring ran dry; every buffer is recycled by
                    // the time the next enter submits the re-arm.
                    sys::IoFailure::NoBuffers => {
                        ctx.stats.counters.enobufs += 1;
                        Action::Wait
                    }
                    // Our backpressure cancel; if the send drained
                    // meanwhile, reading resumes now.
                    sys::IoFailure::Canceled | sys::IoFailure::Again => Action::Wait,
                    sys::IoFailure::Failed(kind) => c.s.on_recv_error(kind, ctx),
                }
            }
        };
        io.drive(c, a, now, ctx);
    }

    fn on_send(&mut self, t: Token, res: i32, now: u64) {
        let Worker { conns, ctx, io, .. } = self;
        let Some(c) = conns.get_mut(t.slot, t.gen) else {
            return;
        };
        let r = if res >= 0 {
            Ok(res as usize)
        } else {
            match sys::Errno(-res).io_failure() {
                sys::IoFailure::Failed(kind) => Err(kind),
                _ => Err(io::ErrorKind::Other),
            }
        };
        let a = c.s.on_sent(r, now, ctx);
        io.drive(c, a, now, ctx);
        self.maybe_free(t);
    }

    /// Free the slot once the close completed and no send still points at
    /// its session's buffer.
    fn maybe_free(&mut self, t: Token) {
        let Some(c) = self.conns.get_mut(t.slot, t.gen) else {
            return;
        };
        if c.fd_closed && !c.s.send_in_flight() {
            self.conns.remove(t.slot, t.gen);
            self.ctx.stats.counters.conns_closed += 1;
            if self.accept.release() && !self.draining {
                self.arm_accept();
            }
        }
    }

    fn on_tick(&mut self, now: u64) {
        self.ctx.tick();
        if self.accept.expired(now) && !self.draining {
            self.arm_accept();
        }
        self.io
            .wheel
            .fire(now, &mut self.conns, |c| &mut c.timer, &mut self.due);
        for i in 0..self.due.len() {
            let (slot, gen, _) = self.due[i];
            if let Some(c) = self.conns.get_mut(slot, gen) {
                let a = c.s.on_timer(now, &mut self.ctx);
                self.io.drive(c, a, now, &mut self.ctx);
            }
        }
        self.arm_tick();
    }

    /// Apply `f` to every live connection's session and carry out what it
    /// answers.
    fn for_each_conn(&mut self, now: u64, f: impl Fn(&mut Session, u64) -> Action) {
        for (slot, gen) in self.conns.live_keys() {
            if let Some(c) = self.conns.get_mut(slot, gen) {
                let a = f(&mut c.s, now);
                self.io.drive(c, a, now, &mut self.ctx);
            }
        }
    }

    fn begin_drain(&mut self, now: u64) {
        self.draining = true;
        self.accept.release();
        if self.accept_armed {
            self.io.sqes.push(
                opcode::AsyncCancel::new(Token::worker(Op::Accept).pack())
                    .build()
                    .user_data(Token::worker(Op::Cancel).pack()),
            );
        }
        if let Some(l) = self.listener.take() {
            // The accept op holds its own reference until it is cancelled.
            sys::close_fd(l.into_raw_fd());
        }
        self.for_each_conn(now, |s, now| s.drain(now));
    }

    /// At exit: end every connection and wait (bounded) for the sends whose
    /// buffers the kernel may still read.
    fn shutdown_all(&mut self) -> io::Result<()> {
        let now = self.ctx.now_ns();
        self.for_each_conn(now, |s, _| s.abort());
        for _ in 0..50 {
            if self.conns.is_empty() {
                return Ok(());
            }
            self.submit_and_wait()?;
            let now = self.ctx.now_ns();
            self.reap_and_dispatch(now);
        }
        // Sends still in flight after 5 s of ticks: their buffers are leaked
        // rather than freed under the kernel.
        std::mem::forget(std::mem::take(&mut self.conns));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_and_unknown_ops_are_dropped() {
        for op in [
            Op::Accept,
            Op::Recv,
            Op::Send,
            Op::Close,
            Op::Tick,
            Op::Wake,
            Op::Cancel,
        ] {
            let t = Token {
                op,
                slot: 0xdead_beef,
                gen: GEN_MASK,
            };
            assert_eq!(Token::unpack(t.pack()), Some(t));
        }
        let t = Token {
            op: Op::Recv,
            slot: 1,
            gen: GEN_MASK + 5,
        };
        assert_eq!(
            Token::unpack(t.pack()).unwrap().gen,
            4,
            "generations wrap at 24 bits"
        );
        assert_eq!(Token::unpack(0), None);
        assert_eq!(Token::unpack(5 << 56), None);
    }
}
