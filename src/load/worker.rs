//! One load thread: its connections, their request/response state machine,
//! the schedule (closed or open loop), timeouts, and the per-thread
//! histograms and counters.
//!
//! The I/O mechanism is behind [`Io`], implemented by `uring.rs` (io_uring)
//! and `epoll.rs` (epoll). Both report results as [`Completion`]s in the
//! io_uring style (`res` ≥ 0 or `-errno`), so this file holds the logic once.
//! Every operation here is non-blocking; the only wait is [`Io::poll`].
//!
//! Connection life: socket → connect → (recv always armed while connected)
//! → send batch → responses parsed → next batch … On any error, timeout,
//! `Connection: close` or EOF the connection is shut down; once every
//! operation on it has completed its fd is closed and a new connection is
//! opened in the same slot. A slot's buffers are never reused while an
//! operation may still write to them.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::net::SocketAddr;
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Barrier;

use hdrhistogram::Histogram;

use super::result::{ErrorCounts, LATE_SEND_THRESHOLD_NS};
use crate::http::response::{FramedResponse, ResponseFramer};
use crate::stats::{new_histogram, record_ns};
use crate::sys::net::{self as os, RawAddr};

/// Receive buffer per connection, bytes. A response head must fit in it;
/// bodies stream through it and are counted, not kept.
pub(crate) const RECV_BUF_LEN: usize = 16 * 1024;
/// Longest response head accepted, bytes.
const RESPONSE_HEAD_MAX_BYTES: usize = 16 * 1024;
/// Wait before reconnecting after a failed connect, ns (keeps a refused
/// connection from spinning a core).
const RECONNECT_BACKOFF_NS: u64 = 10_000_000;
/// Longest teardown wait for in-flight operations, ns.
const TEARDOWN_LIMIT_NS: u64 = 1_000_000_000;

/// Operation kinds carried in completions.
pub(crate) const OP_CONNECT: u8 = 1;
pub(crate) const OP_SEND: u8 = 2;
pub(crate) const OP_RECV: u8 = 3;
/// Completions of bookkeeping operations (cancellations); ignored.
pub(crate) const OP_OTHER: u8 = 4;

/// The result of one operation on a connection slot: `res` ≥ 0 is the
/// syscall's return value, `res` < 0 is `-errno`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Completion {
    pub slot: u32,
    pub op: u8,
    pub res: i32,
}

/// The memory the operations of one engine read and write, owned by the
/// engine so that no operation outlives it: the request batch every send
/// reads (`pipeline` copies of the request) and one receive buffer of
/// [`RECV_BUF_LEN`] bytes per connection slot. While a recv is in flight on
/// a slot its buffer belongs to the kernel: [`OpBufs::recv_buf`] refuses it.
pub(crate) struct OpBufs {
    batch: Box<[u8]>,
    recv: Box<[u8]>,
    recv_busy: Vec<bool>,
}

impl OpBufs {
    /// Buffers for `connections` slots, sending `batch`.
    pub(crate) fn new(batch: Vec<u8>, connections: usize) -> OpBufs {
        OpBufs {
            batch: batch.into_boxed_slice(),
            recv: vec![0u8; connections * RECV_BUF_LEN].into_boxed_slice(),
            recv_busy: vec![false; connections],
        }
    }

    /// The rest of the batch from byte `off`.
    pub(crate) fn batch_from(&self, off: u32) -> &[u8] {
        &self.batch[(off as usize).min(self.batch.len())..]
    }

    /// A recv into `slot`'s buffer from byte `start` begins: the span it
    /// may write, (pointer, length); the buffer is the kernel's until
    /// [`end_recv`](Self::end_recv). Panics if a recv is already in flight
    /// there or `start` is past the buffer.
    pub(crate) fn begin_recv(&mut self, slot: u32, start: u32) -> (*mut u8, u32) {
        let busy = &mut self.recv_busy[slot as usize];
        assert!(!*busy, "a second recv into slot {slot}");
        assert!((start as usize) < RECV_BUF_LEN);
        *busy = true;
        let base = slot as usize * RECV_BUF_LEN + start as usize;
        let end = (slot as usize + 1) * RECV_BUF_LEN;
        (self.recv[base..end].as_mut_ptr(), (end - base) as u32)
    }

    /// The recv into `slot`'s buffer completed (or never started).
    pub(crate) fn end_recv(&mut self, slot: u32) {
        self.recv_busy[slot as usize] = false;
    }

    /// `slot`'s receive buffer from byte `start`, for a recv done at once
    /// (a nonblocking engine).
    pub(crate) fn recv_span(&mut self, slot: u32, start: u32) -> &mut [u8] {
        self.recv_buf(slot)
            .get_mut(start as usize..)
            .unwrap_or(&mut [])
    }

    /// `slot`'s whole receive buffer. Panics while a recv is in flight on
    /// it (the kernel may be writing it).
    pub(crate) fn recv_buf(&mut self, slot: u32) -> &mut [u8] {
        assert!(
            !self.recv_busy[slot as usize],
            "slot {slot}: recv in flight"
        );
        let base = slot as usize * RECV_BUF_LEN;
        &mut self.recv[base..base + RECV_BUF_LEN]
    }
}

/// An I/O mechanism. Operations are started here and finish later as
/// [`Completion`]s returned by [`Io::poll`], exactly one per started
/// operation (`connect`, `send`, `recv`); failures to start are reported as
/// completions too.
pub(crate) trait Io {
    /// Whether sockets must be created nonblocking for this mechanism.
    fn nonblocking(&self) -> bool;
    /// Start connecting `fd` to the target.
    fn connect(&mut self, slot: u32, fd: RawFd);
    /// Start sending the request batch from byte `off` (a short send
    /// continues from there).
    fn send(&mut self, slot: u32, fd: RawFd, off: u32);
    /// Start receiving into `slot`'s buffer from byte `start` to its end.
    fn recv(&mut self, slot: u32, fd: RawFd, start: u32);
    /// `slot`'s receive buffer ([`RECV_BUF_LEN`] bytes), when no recv is
    /// in flight on it.
    fn recv_buf(&mut self, slot: u32) -> &mut [u8];
    /// Make every operation pending on `fd` complete soon; `connect_pending`
    /// says whether a connect is among them.
    fn shutdown(&mut self, slot: u32, fd: RawFd, connect_pending: bool);
    /// Close `fd`; no operation is pending on it.
    fn close(&mut self, slot: u32, fd: RawFd);
    /// Start queued operations, wait up to `timeout_ns` for at least one
    /// completion, and append every available completion to `out`. With
    /// `timeout_ns` 0 it does not wait and passes the kernel no timeout.
    fn poll(&mut self, timeout_ns: u64, out: &mut Vec<Completion>) -> Result<(), String>;
}

impl Plan {
    /// One batch: `pipeline` copies of the request.
    pub(crate) fn batch(&self) -> Vec<u8> {
        self.request.repeat(self.pipeline as usize)
    }
}

/// What every load thread shares (read-only).
pub(crate) struct Plan {
    /// One request, exact bytes.
    pub request: Vec<u8>,
    pub pipeline: u32,
    /// Every request asks the server to close (`--close`, `--http1.0`).
    pub close_each: bool,
    pub total_connections: usize,
    /// Open loop: total requests per second.
    pub rate: Option<f64>,
    /// Open loop: the polling window before a due send, ns (`--spin`).
    pub spin_ns: u64,
    pub warmup_ns: u64,
    pub duration_ns: u64,
    pub timeout_ns: u64,
    pub interval_ns: Option<u64>,
    /// `--requests`: stop once this many are sent in the window.
    pub requests: Option<u64>,
    /// Requests of the window sent so far, over every thread (counts
    /// against `requests`).
    pub budget_used: AtomicU64,
    /// The requests are HEAD: responses have no body.
    pub head: bool,
    /// Where each thread reports every interval it completes (live output).
    pub live: Option<crossbeam_channel::Sender<IntervalReport>>,
}

/// One thread's completed interval, for live output.
pub(crate) struct IntervalReport {
    /// Interval number from the window's start (0-based).
    pub index: usize,
    /// Start (from the window's start) and length, ns.
    pub start_ns: u64,
    pub len_ns: u64,
    /// Latency samples of the interval, ns.
    pub hist: Histogram<u64>,
    /// The thread's errors and late sends so far (cumulative).
    pub errors_total: u64,
    pub late_total: u64,
}

/// The run's shared start: every thread connects, then all start at `t0`.
pub(crate) struct StartGate {
    pub connected: Barrier,
    pub go: Barrier,
    pub t0_ns: AtomicU64,
}

/// What one thread hands back. Times are `CLOCK_MONOTONIC` ns.
pub(crate) struct ThreadOut {
    pub requests: u64,
    /// Requests sent in the window (by send time).
    pub sent: u64,
    /// Requests of the window outstanding at teardown.
    pub unfinished: u64,
    /// Interim (1xx) responses skipped before final ones, in the window.
    pub interim: u64,
    /// Final responses by status code, in the window.
    pub statuses: std::collections::BTreeMap<u16, u64>,
    pub errors: ErrorCounts,
    pub latency: Histogram<u64>,
    pub uncorrected: Histogram<u64>,
    pub lag: Histogram<u64>,
    pub late_sends: u64,
    pub sends: u64,
    /// `(start offset from the measured window's start, length, histogram)`, ns.
    pub intervals: Vec<(u64, u64, Histogram<u64>)>,
    pub bytes_read: u64,
    pub bytes_written: u64,
    pub reconnects: u64,
    pub measure_start_ns: u64,
    pub finished_ns: u64,
}

impl ThreadOut {
    /// Nothing counted yet: zero counts, empty histograms, no intervals.
    fn empty() -> ThreadOut {
        ThreadOut {
            requests: 0,
            sent: 0,
            unfinished: 0,
            interim: 0,
            statuses: Default::default(),
            errors: ErrorCounts::default(),
            latency: new_histogram(),
            uncorrected: new_histogram(),
            lag: new_histogram(),
            late_sends: 0,
            sends: 0,
            intervals: Vec::new(),
            bytes_read: 0,
            bytes_written: 0,
            reconnects: 0,
            measure_start_ns: 0,
            finished_ns: 0,
        }
    }
}

/// Recorders, gated on the measured window.
struct Stats {
    open: bool,
    /// Samples and counts are kept from here on (u64::MAX before the start).
    measure_start: u64,
    interval_ns: u64,
    next_interval: u64,
    live: Option<crossbeam_channel::Sender<IntervalReport>>,
    interval_h: Histogram<u64>,
    out: ThreadOut,
}

impl Stats {
    #[inline]
    fn on(&self, now: u64) -> bool {
        now >= self.measure_start
    }

    #[inline]
    fn rotate(&mut self, now: u64) {
        while self.interval_ns != 0 && now >= self.next_interval {
            let start = self.next_interval - self.interval_ns - self.out.measure_start_ns;
            let h = self.interval_h.clone();
            self.interval_h.reset();
            if let Some(tx) = &self.live {
                // The run's reader may have gone (it returned): nothing to do.
                let _ = tx.send(IntervalReport {
                    index: self.out.intervals.len(),
                    start_ns: start,
                    len_ns: self.interval_ns,
                    hist: h.clone(),
                    errors_total: self.out.errors.total(),
                    late_total: self.out.late_sends,
                });
            }
            self.out.intervals.push((start, self.interval_ns, h));
            self.next_interval += self.interval_ns;
        }
    }

    /// Record `count` samples for the outstanding batch of `c` at `now`.
    #[inline]
    fn sample(&mut self, now: u64, c: &Conn, count: u64) {
        self.rotate(now);
        let main = now.saturating_sub(c.intended);
        record_ns(&mut self.out.latency, main, count);
        if self.interval_ns != 0 {
            record_ns(&mut self.interval_h, main, count);
        }
        if self.open {
            record_ns(
                &mut self.out.uncorrected,
                now.saturating_sub(c.sent_at),
                count,
            );
        }
    }

    #[inline]
    fn response(&mut self, now: u64, c: &Conn) {
        // A request belongs to the window by its send time.
        if !self.on(c.sent_at) {
            return;
        }
        self.out.requests += 1;
        *self.out.statuses.entry(c.cur_status).or_default() += 1;
        if !(200..400).contains(&c.cur_status) {
            self.out.errors.status += 1;
        }
        self.sample(now, c, 1);
    }

    fn error(&mut self, now: u64, f: impl FnOnce(&mut ErrorCounts)) {
        if self.on(now) {
            f(&mut self.out.errors);
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
enum Phase {
    /// Connecting before the shared start; nothing is sent.
    Setup,
    /// Warm-up and measured window: requests are sent.
    Run,
    /// After the window: no new requests, outstanding ones finish or time out.
    Drain,
}

/// One connection slot.
#[derive(Default)]
struct Conn {
    fd: RawFd,
    global: u64,
    state: ConnState,
    /// Operations submitted to the engine and not completed; a closing
    /// connection is closed once none is left.
    pending: Pending,
    outstanding: u32,
    /// Actual send time of the outstanding batch, ns.
    sent_at: u64,
    /// Intended send time of the outstanding batch (= `sent_at` in closed loop), ns.
    intended: u64,
    connect_started: u64,
    retry_at: u64,
    /// Open loop: the time this idle connection waits for in the heap (0 = none).
    sched_at: u64,
    /// Open loop: index of this connection's next request in its schedule.
    next_k: u64,
    send_off: u32,
    send_len: u32,
    /// Bytes of an unfinished response kept at the start of the buffer.
    rd_end: u32,
    /// Response framing (heads, 1xx, Content-Length, chunked, close-delimited).
    rf: ResponseFramer,
    /// Status code of the response being recorded.
    cur_status: u16,
}

/// Where a connection is in its life. Transitions:
///
/// ```text
/// Closed --open--> Connecting --connected--> Idle --send_batch--> Busy
///   ^                                          ^                    |
///   |                                          +--all answered------+
///   |                                                               | Connection: close
///   +--nothing pending-- Closing <--close (error, timeout, EOF)-- AwaitingEof
/// ```
/// Any state but `Closed` can go to `Closing`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum ConnState {
    /// No socket: not opened yet, or closed and waiting for `retry_at`.
    #[default]
    Closed,
    /// connect(2) submitted; nothing sent yet.
    Connecting,
    /// Connected, no batch outstanding: the next one starts now (closed
    /// loop) or at its scheduled time (open loop).
    Idle,
    /// A batch was sent and not all of it answered (or its send not done).
    Busy,
    /// The server said it will close (`Connection: close`, HTTP/1.0):
    /// wait for its EOF, send nothing more.
    AwaitingEof,
    /// Shut down; closed and replaced once nothing is pending.
    Closing,
}

/// Engine operations in flight on one connection (each at most one).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Pending {
    connect: bool,
    send: bool,
    recv: bool,
}

impl Pending {
    fn any(self) -> bool {
        self.connect || self.send || self.recv
    }
}

impl Conn {
    fn reset_stream(&mut self) {
        self.outstanding = 0;
        self.rd_end = 0;
        self.rf.reset();
        self.sched_at = 0;
    }
}

/// The state machine of one thread's connections.
pub(crate) struct Core<'p> {
    plan: &'p Plan,
    addr: Box<RawAddr>,
    conns: Vec<Conn>,
    /// Bytes of one batch (`pipeline` copies of the request).
    batch_len: usize,
    phase: Phase,
    t0: u64,
    end: u64,
    drain_deadline: u64,
    /// Open loop: ns between consecutive requests of the whole run (1e9 / rate).
    ns_per_request: f64,
    sched: BinaryHeap<Reverse<(u64, u32)>>,
    retry: Vec<u32>,
    scan_step: u64,
    next_scan: u64,
    stats: Stats,
    comps: Vec<Completion>,
    /// Responses completed by one feed (reused).
    framed: Vec<FramedResponse>,
}

impl<'p> Core<'p> {
    /// Slots `0..connections` are global connections `first_global..`.
    pub(crate) fn new(
        plan: &'p Plan,
        addr: SocketAddr,
        first_global: usize,
        connections: usize,
    ) -> Self {
        let conns = (0..connections)
            .map(|i| Conn {
                fd: -1,
                global: (first_global + i) as u64,
                rf: ResponseFramer::new(RESPONSE_HEAD_MAX_BYTES, plan.head),
                ..Conn::default()
            })
            .collect();
        let open = plan.rate.is_some();
        Core {
            plan,
            addr: RawAddr::new(addr),
            conns,
            batch_len: plan.batch().len(),
            phase: Phase::Setup,
            t0: 0,
            end: u64::MAX,
            drain_deadline: u64::MAX,
            ns_per_request: plan.rate.map_or(0.0, |r| 1e9 / r),
            sched: BinaryHeap::with_capacity(connections),
            retry: Vec::with_capacity(connections),
            scan_step: (plan.timeout_ns / 20).clamp(1_000_000, 100_000_000),
            next_scan: 0,
            stats: Stats {
                open,
                measure_start: u64::MAX,
                interval_ns: plan.interval_ns.unwrap_or(0),
                live: plan.live.clone(),
                next_interval: u64::MAX,
                interval_h: new_histogram(),
                out: ThreadOut::empty(),
            },
            framed: Vec::with_capacity(64),
            comps: Vec::with_capacity(connections * 3 + 16),
        }
    }

    /// The whole life of the thread: connect, meet the others at the start
    /// gate, run, drain, tear down.
    pub(crate) fn drive<I: Io>(
        &mut self,
        io: &mut I,
        gate: &StartGate,
    ) -> Result<ThreadOut, String> {
        let setup_start = os::now_ns();
        for slot in 0..self.conns.len() as u32 {
            self.open(io, slot, setup_start);
        }
        let setup_deadline = setup_start + self.plan.timeout_ns;
        let mut result = Ok(());
        while self.conns.iter().any(|c| c.state == ConnState::Connecting) {
            let now = os::now_ns();
            if now >= setup_deadline {
                break;
            }
            if let Err(e) = self.poll(io, setup_deadline - now) {
                result = Err(e);
                break;
            }
        }
        gate.connected.wait();
        gate.go.wait();
        result?;
        self.start(io, gate.t0_ns.load(Ordering::Acquire));
        self.run_loop(io)?;
        Ok(self.teardown(io))
    }

    fn start<I: Io>(&mut self, io: &mut I, t0: u64) {
        let p = self.plan;
        self.t0 = t0;
        let ms = t0 + p.warmup_ns;
        self.end = ms + p.duration_ns;
        self.drain_deadline = self.end + p.timeout_ns + 2 * self.scan_step;
        self.stats.measure_start = ms;
        self.stats.out.measure_start_ns = ms;
        if self.stats.interval_ns != 0 {
            self.stats.next_interval = ms + self.stats.interval_ns;
        }
        self.next_scan = t0 + self.scan_step;
        self.phase = Phase::Run;
        let now = os::now_ns();
        for slot in 0..self.conns.len() as u32 {
            let c = &self.conns[slot as usize];
            if c.state == ConnState::Idle {
                self.ready(io, slot, now);
            }
        }
    }

    fn run_loop<I: Io>(&mut self, io: &mut I) -> Result<(), String> {
        loop {
            let now = os::now_ns();
            self.tick(io, now);
            if self.phase == Phase::Drain
                && (now >= self.drain_deadline || !self.conns.iter().any(|c| c.outstanding > 0))
            {
                self.stats.rotate(now);
                self.stats.out.finished_ns = now;
                return Ok(());
            }
            let wait = self.wait_ns(now);
            self.poll(io, wait)?;
        }
    }

    /// Close everything and wait (bounded) until no operation is in flight,
    /// so no buffer is released while the kernel may still write to it.
    fn teardown<I: Io>(&mut self, io: &mut I) -> ThreadOut {
        let now = os::now_ns();
        self.phase = Phase::Drain;
        for c in &mut self.conns {
            if c.outstanding > 0 && self.stats.on(c.sent_at) {
                self.stats.out.unfinished += u64::from(c.outstanding);
            }
            c.outstanding = 0;
        }
        for slot in 0..self.conns.len() as u32 {
            self.close(io, slot, now, 0);
        }
        let deadline = now + TEARDOWN_LIMIT_NS;
        while self.conns.iter().any(|c| c.fd >= 0) {
            let now = os::now_ns();
            if now >= deadline || self.poll(io, deadline - now).is_err() {
                break;
            }
        }
        let s = &mut self.stats;
        if s.interval_ns != 0 && s.out.finished_ns > s.next_interval - s.interval_ns {
            let start = s.next_interval - s.interval_ns;
            let h = s.interval_h.clone();
            s.out
                .intervals
                .push((start - s.out.measure_start_ns, s.out.finished_ns - start, h));
        }
        std::mem::replace(&mut self.stats.out, ThreadOut::empty())
    }

    fn poll<I: Io>(&mut self, io: &mut I, timeout_ns: u64) -> Result<(), String> {
        let mut comps = std::mem::take(&mut self.comps);
        comps.clear();
        let r = io.poll(timeout_ns, &mut comps);
        if r.is_ok() {
            for &c in &comps {
                match c.op {
                    OP_RECV => self.on_recv(io, c.slot, c.res),
                    OP_SEND => self.on_send(io, c.slot, c.res, os::now_ns()),
                    OP_CONNECT => self.on_connect(io, c.slot, c.res, os::now_ns()),
                    _ => {}
                }
            }
        }
        self.comps = comps;
        r
    }

    /// Time-driven work: phase change, open-loop sends that are due,
    /// reconnects, timeout scan, interval rotation.
    fn tick<I: Io>(&mut self, io: &mut I, now: u64) {
        if self.phase == Phase::Run && now >= self.end {
            self.phase = Phase::Drain;
            self.sched.clear();
            self.retry.clear();
        }
        self.stats.rotate(now);
        while let Some(&Reverse((t, slot))) = self.sched.peek() {
            if t > now {
                break;
            }
            self.sched.pop();
            let c = &mut self.conns[slot as usize];
            if c.sched_at == t && c.state == ConnState::Idle {
                c.sched_at = 0;
                // A fresh clock per send: on the epoll engine each send is a
                // system call made here, and the lag of the k-th send of a
                // burst includes the k-1 before it.
                self.send_batch(io, slot, os::now_ns(), t);
            }
        }
        if !self.retry.is_empty() {
            let mut i = 0;
            while i < self.retry.len() {
                let slot = self.retry[i];
                if self.conns[slot as usize].retry_at <= now {
                    self.retry.swap_remove(i);
                    self.open(io, slot, now);
                } else {
                    i += 1;
                }
            }
        }
        if now >= self.next_scan {
            self.next_scan = now + self.scan_step;
            self.scan_timeouts(io, now);
        }
    }

    /// How long the next poll may sleep, ns: until the next wake-up, less
    /// the spin window when that is an open-loop send. Inside the window
    /// the poll does not wait (0), so the send goes out on time instead of
    /// a timed wake-up's latency late, with no timed wait per send.
    fn wait_ns(&self, now: u64) -> u64 {
        let wake = self.next_wake();
        let left = wake.saturating_sub(now);
        match self.sched.peek() {
            Some(&Reverse((t, _))) if t <= wake => left.saturating_sub(self.plan.spin_ns),
            _ => left,
        }
    }

    fn next_wake(&self) -> u64 {
        let mut wake = self.next_scan.min(self.stats.next_interval);
        // Nothing happens at the start of the measured window itself
        // (recorders gate on the time), so it needs no wake-up.
        match self.phase {
            Phase::Run => wake = wake.min(self.end),
            _ => wake = wake.min(self.drain_deadline),
        }
        if let Some(&Reverse((t, _))) = self.sched.peek() {
            wake = wake.min(t);
        }
        for &slot in &self.retry {
            wake = wake.min(self.conns[slot as usize].retry_at);
        }
        wake
    }

    fn scan_timeouts<I: Io>(&mut self, io: &mut I, now: u64) {
        let limit = self.plan.timeout_ns;
        for slot in 0..self.conns.len() as u32 {
            let c = &self.conns[slot as usize];
            let waited = match c.state {
                ConnState::Closed | ConnState::Idle | ConnState::Closing => continue,
                ConnState::Connecting => {
                    if now.saturating_sub(c.connect_started) >= limit {
                        self.stats.error(now, |e| e.connect += 1);
                        self.close(io, slot, now, 0);
                    }
                    continue;
                }
                ConnState::Busy | ConnState::AwaitingEof => now.saturating_sub(c.sent_at),
            };
            if waited >= limit {
                if c.outstanding > 0 && self.stats.on(c.sent_at) {
                    // Never dropped: each timed-out request is a sample at its full elapsed time.
                    let n = c.outstanding as u64;
                    self.stats.out.errors.timeout += n;
                    self.stats.sample(now, &self.conns[slot as usize], n);
                }
                self.conns[slot as usize].outstanding = 0;
                self.close(io, slot, now, 0);
            }
        }
    }

    fn open<I: Io>(&mut self, io: &mut I, slot: u32, now: u64) {
        match os::tcp_socket(self.addr.family(), io.nonblocking()) {
            Ok(fd) => {
                let c = &mut self.conns[slot as usize];
                c.fd = fd;
                c.state = ConnState::Connecting;
                c.connect_started = now;
                c.pending.connect = true;
                io.connect(slot, fd);
            }
            Err(_) => {
                self.stats.error(now, |e| e.connect += 1);
                self.conns[slot as usize].retry_at = now + RECONNECT_BACKOFF_NS;
                if self.phase != Phase::Drain {
                    self.retry.push(slot);
                }
            }
        }
    }

    fn on_connect<I: Io>(&mut self, io: &mut I, slot: u32, res: i32, now: u64) {
        let c = &mut self.conns[slot as usize];
        c.pending.connect = false;
        if c.state == ConnState::Closing {
            return self.try_finish_close(io, slot, now);
        }
        if res < 0 {
            self.stats.error(now, |e| e.connect += 1);
            return self.close(io, slot, now, RECONNECT_BACKOFF_NS);
        }
        c.state = ConnState::Idle;
        self.arm_recv(io, slot);
        self.ready(io, slot, now);
    }

    /// The connection is idle: start its next batch now or when it is due.
    fn ready<I: Io>(&mut self, io: &mut I, slot: u32, now: u64) {
        if self.phase != Phase::Run {
            return;
        }
        if self.plan.rate.is_none() {
            return self.send_batch(io, slot, now, now);
        }
        let c = &mut self.conns[slot as usize];
        let n = self.plan.total_connections as f64;
        let t = self.t0 + ((c.next_k as f64 * n + c.global as f64) * self.ns_per_request) as u64;
        if t >= self.end {
            return;
        }
        if t <= now {
            self.send_batch(io, slot, now, t);
        } else {
            c.sched_at = t;
            self.sched.push(Reverse((t, slot)));
        }
    }

    fn send_batch<I: Io>(&mut self, io: &mut I, slot: u32, now: u64, intended: u64) {
        if let (Some(n), true) = (self.plan.requests, self.stats.on(now)) {
            let p = u64::from(self.plan.pipeline);
            // n is a multiple of p: a batch that starts below n ends at or under it.
            if self.plan.budget_used.fetch_add(p, Ordering::Relaxed) >= n {
                // Every request is sent: end the window here, drain the rest.
                self.end = self.end.min(now);
                let drain = now + self.plan.timeout_ns + 2 * self.scan_step;
                self.drain_deadline = self.drain_deadline.min(drain);
                return;
            }
        }
        let c = &mut self.conns[slot as usize];
        c.state = ConnState::Busy;
        c.outstanding = self.plan.pipeline;
        c.sent_at = now;
        c.intended = intended;
        c.send_off = 0;
        c.send_len = self.batch_len as u32;
        c.pending.send = true;
        let s = &mut self.stats;
        if s.on(now) {
            s.out.sent += u64::from(self.plan.pipeline);
            s.out.bytes_written += self.batch_len as u64;
            if s.open {
                let lag = now - intended;
                s.out.sends += 1;
                record_ns(&mut s.out.lag, lag, 1);
                if lag > LATE_SEND_THRESHOLD_NS {
                    s.out.late_sends += 1;
                }
            }
        }
        if s.open {
            c.next_k += 1;
        }
        io.send(slot, c.fd, 0);
    }

    fn on_send<I: Io>(&mut self, io: &mut I, slot: u32, res: i32, now: u64) {
        let c = &mut self.conns[slot as usize];
        c.pending.send = false;
        if c.state == ConnState::Closing {
            return self.try_finish_close(io, slot, now);
        }
        if res < 0 && crate::sys::Errno(-res).io_failure() != crate::sys::IoFailure::Again {
            self.stats.error(now, |e| e.write += 1);
            return self.close(io, slot, now, 0);
        }
        c.send_off += res.max(0) as u32;
        if c.send_off < c.send_len {
            c.pending.send = true;
            return io.send(slot, c.fd, c.send_off);
        }
        self.maybe_ready(io, slot, now);
    }

    #[inline]
    fn maybe_ready<I: Io>(&mut self, io: &mut I, slot: u32, now: u64) {
        let c = &mut self.conns[slot as usize];
        if c.state == ConnState::Busy && c.outstanding == 0 && !c.pending.send {
            if self.plan.close_each {
                // We asked for a close but the server kept the connection:
                // close it ourselves (the server's close, when it comes, is
                // waited for instead: AwaitingEof).
                return self.close(io, slot, now, 0);
            }
            c.state = ConnState::Idle;
            self.ready(io, slot, now);
        }
    }

    fn arm_recv<I: Io>(&mut self, io: &mut I, slot: u32) {
        let c = &mut self.conns[slot as usize];
        c.pending.recv = true;
        // rd_end < RECV_BUF_LEN: feed() fails a full buffer.
        io.recv(slot, c.fd, c.rd_end);
    }

    fn on_recv<I: Io>(&mut self, io: &mut I, slot: u32, res: i32) {
        let now = os::now_ns();
        let c = &mut self.conns[slot as usize];
        c.pending.recv = false;
        if c.state == ConnState::Closing {
            return self.try_finish_close(io, slot, now);
        }
        if res < 0
            && matches!(
                crate::sys::Errno(-res).io_failure(),
                crate::sys::IoFailure::Again | crate::sys::IoFailure::NoBuffers
            )
        {
            return self.arm_recv(io, slot);
        }
        if res <= 0 {
            let mut truncated = false;
            if res == 0 {
                // A body delimited by the close ends here (RFC 9112 §6.3 item 8).
                match c.rf.on_eof() {
                    Ok(Some(r)) if c.outstanding > 0 => {
                        c.cur_status = r.status;
                        self.stats.response(now, c);
                        c.outstanding -= 1;
                    }
                    Ok(_) => {}
                    Err(_) => truncated = true,
                }
            }
            // A failed read, or an EOF inside a response, is a read error;
            // a clean EOF between responses is the server's close, and the
            // requests behind it are counted as unanswered by close().
            if res < 0 || truncated || (c.rd_end > 0 && !c.rf.is_closed()) {
                self.stats.error(now, |e| e.read += 1);
            }
            return self.close(io, slot, now, 0);
        }
        if self.stats.on(now) {
            self.stats.out.bytes_read += res as u64;
        }
        c.rd_end += res as u32;
        if !feed(c, io.recv_buf(slot), &mut self.framed, &mut self.stats, now) {
            self.stats.error(now, |e| e.parse += 1);
            return self.close(io, slot, now, 0);
        }
        self.arm_recv(io, slot);
        self.maybe_ready(io, slot, now);
    }

    /// Shut the connection down; it is closed and replaced once nothing is
    /// in flight on it.
    fn close<I: Io>(&mut self, io: &mut I, slot: u32, now: u64, retry_delay_ns: u64) {
        let c = &mut self.conns[slot as usize];
        if matches!(c.state, ConnState::Closing | ConnState::Closed) {
            return;
        }
        if c.outstanding > 0 && self.stats.on(c.sent_at) {
            // Requests behind the end of the connection: counted, not lost.
            self.stats.out.errors.unanswered += u64::from(c.outstanding);
        }
        c.outstanding = 0;
        c.state = ConnState::Closing;
        c.sched_at = 0;
        c.retry_at = now + retry_delay_ns;
        io.shutdown(slot, c.fd, c.pending.connect);
        self.try_finish_close(io, slot, now);
    }

    fn try_finish_close<I: Io>(&mut self, io: &mut I, slot: u32, now: u64) {
        let c = &mut self.conns[slot as usize];
        if c.pending.any() {
            return;
        }
        io.close(slot, c.fd);
        c.fd = -1;
        c.state = ConnState::Closed;
        c.reset_stream();
        if self.phase == Phase::Drain {
            return;
        }
        if self.stats.on(now) {
            self.stats.out.reconnects += 1;
        }
        if c.retry_at <= now {
            self.open(io, slot, now);
        } else {
            self.retry.push(slot);
        }
    }
}

/// Frame what `c` has buffered in `buf[..c.rd_end]`: complete every
/// response in it, keep an unfinished head or line at the start of `buf`.
/// False on a malformed stream, a response nobody asked for, or an item
/// that does not fit the buffer.
fn feed(
    c: &mut Conn,
    buf: &mut [u8],
    done: &mut Vec<FramedResponse>,
    stats: &mut Stats,
    now: u64,
) -> bool {
    let end = c.rd_end as usize;
    done.clear();
    let interim_before = c.rf.interim_seen();
    let Ok(pos) = c.rf.feed(&buf[..end], done) else {
        return false;
    };
    if stats.on(c.sent_at) {
        stats.out.interim += c.rf.interim_seen() - interim_before;
    }
    for &r in done.iter() {
        if c.outstanding == 0 {
            return false;
        }
        c.cur_status = r.status;
        complete(c, stats, now, r.close);
    }
    if pos == 0 && end == buf.len() {
        return false;
    }
    if pos == end {
        c.rd_end = 0;
    } else if pos > 0 {
        buf.copy_within(pos..end, 0);
        c.rd_end = (end - pos) as u32;
    }
    true
}

#[inline]
fn complete(c: &mut Conn, stats: &mut Stats, now: u64, server_closes: bool) {
    stats.response(now, c);
    c.outstanding -= 1;
    if server_closes && c.state == ConnState::Busy {
        c.state = ConnState::AwaitingEof;
    }
}
