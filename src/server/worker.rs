//! What every event-loop worker shares, with no I/O: the per-worker
//! context ([`WorkerCtx`]), the connection [`Slab`], the one timer design
//! ([`Ticker`] for the 100 ms tick, [`TimerWheel`] for connection
//! deadlines) and the accept back-off ([`AcceptGate`]).
//!
//! The loops (uring, epoll, the blocking loop) own descriptors and system
//! calls; connection policy is in [`super::session`].

use std::time::Instant;

use crate::config::ServeConfig;
use crate::http::{Limits, Responder};
use crate::stats::WorkerStats;

/// How long a closing connection keeps draining input after our FIN, ms.
pub const LINGER_MS: u64 = 2000;

/// The worker tick: Date refresh, statistics publishing, timer-wheel
/// expiry and the end of an accept back-off, ns.
pub const TICK_NS: u64 = 100_000_000;

/// How long accepting pauses after EMFILE/ENFILE if no connection closes, ns.
pub const ACCEPT_BACKOFF_NS: u64 = 100_000_000;

/// Per-worker state shared by all connections of one loop.
pub struct WorkerCtx {
    pub limits: Limits,
    pub responder: Responder,
    pub stats: WorkerStats,
    /// Monotonic origin of every `*_ns` timestamp in this worker.
    pub epoch: Instant,
    pub header_timeout_ns: u64,
    pub idle_timeout_ns: u64,
    /// A request body with no bytes for this long is closed, ns.
    pub body_timeout_ns: u64,
    /// Slowest average body rate, bytes/s, after `body_timeout_ns`; 0: none.
    pub body_min_rate: u64,
    /// Longest a closing connection waits for the peer's FIN after ours
    /// (lingering close, RFC 9112 §9.6), ns.
    pub linger_ns: u64,
    pub max_conns: usize,
    /// Copies `stats` to the live metrics on [`tick`](Self::tick) when
    /// `--metrics` or `--hlog` is given; `None` otherwise.
    pub publisher: Option<super::live::Publisher>,
    /// Record each response's service time (off with `--no-hist`).
    pub record_hist: bool,
}

impl WorkerCtx {
    /// `publisher`: where the worker's tick publishes snapshots when
    /// `--metrics` or `--hlog` asked for them (None otherwise).
    pub fn new(cfg: &ServeConfig, publisher: Option<super::live::Publisher>) -> Self {
        WorkerCtx {
            limits: cfg.limits,
            responder: Responder::new(&cfg.body),
            stats: WorkerStats::new(),
            epoch: Instant::now(),
            header_timeout_ns: cfg.header_timeout.as_nanos() as u64,
            idle_timeout_ns: cfg.idle_timeout.as_nanos() as u64,
            body_timeout_ns: cfg.body_timeout.as_nanos() as u64,
            body_min_rate: cfg.body_min_rate,
            linger_ns: LINGER_MS * 1_000_000,
            max_conns: cfg.max_conns,
            publisher,
            record_hist: !cfg.no_hist,
        }
    }

    /// A context with default limits, body `ok`, and the given header and
    /// idle timeouts (ms), for unit tests of the session and the loops.
    #[cfg(test)]
    pub fn for_tests(header_ms: u64, idle_ms: u64) -> Self {
        WorkerCtx {
            limits: Limits::default(),
            responder: Responder::new(b"ok"),
            stats: WorkerStats::new(),
            epoch: Instant::now(),
            header_timeout_ns: header_ms * 1_000_000,
            idle_timeout_ns: idle_ms * 1_000_000,
            body_timeout_ns: header_ms * 1_000_000,
            body_min_rate: 0,
            linger_ns: LINGER_MS * 1_000_000,
            max_conns: usize::MAX,
            publisher: None,
            record_hist: true,
        }
    }

    /// Nanoseconds since this worker's epoch (CLOCK_MONOTONIC via vDSO).
    #[inline]
    pub fn now_ns(&self) -> u64 {
        self.epoch.elapsed().as_nanos() as u64
    }

    /// Once per tick: refresh the cached `Date` header, and publish a
    /// statistics snapshot if a publisher is installed (rate-limited).
    pub fn tick(&mut self) {
        self.responder.refresh_date(std::time::SystemTime::now());
        if let Some(p) = &mut self.publisher {
            let now = self.epoch.elapsed().as_nanos() as u64;
            p.tick(now, &self.stats);
        }
    }
}

/// The periodic tick of a loop that waits with a timeout (epoll, poll):
/// when the next tick is due and how long to wait for it.
pub struct Ticker {
    next_ns: u64,
}

impl Ticker {
    /// A ticker whose first tick is one [`TICK_NS`] after `now_ns`.
    pub fn new(now_ns: u64) -> Self {
        Ticker {
            next_ns: now_ns + TICK_NS,
        }
    }

    /// Whether a tick is due at `now_ns`; if so the next one is scheduled
    /// one period later (skipping missed ones).
    pub fn due(&mut self, now_ns: u64) -> bool {
        if now_ns < self.next_ns {
            return false;
        }
        self.next_ns += TICK_NS;
        if self.next_ns <= now_ns {
            self.next_ns = now_ns + TICK_NS;
        }
        true
    }

    /// Milliseconds to wait for the next tick (rounded up, ≥ 0), as epoll_wait(2)
    /// and poll(2) take them.
    pub fn timeout_ms(&self, now_ns: u64) -> i32 {
        let ns = self.next_ns.saturating_sub(now_ns);
        ns.div_ceil(1_000_000).min(i32::MAX as u64) as i32
    }
}

/// Connection deadlines in a hashed timing wheel of [`TICK_NS`] slots:
/// arming and expiring cost O(1) per connection, and a tick visits only the
/// connections whose slot it is, not every connection (with long timeouts
/// about N/1024 entries per tick for N idle keep-alive connections).
///
/// Entries are `(slot, generation, tick)`. A connection keeps at most one
/// live entry, remembered by its tick ([`TimerWheel::arm`]); an entry whose
/// tick is not the connection's current one is stale and dropped. A
/// deadline that moves later is not re-filed: when its entry fires the
/// driver asks the session, which answers Wait, and re-arms it.
pub struct TimerWheel {
    slots: Vec<Vec<(u32, u32, u64)>>,
    /// The last tick expired.
    done: u64,
}

/// Slots of the wheel: 1024 × 100 ms ≈ 102 s; a later deadline stays in
/// its slot across turns of the wheel.
const WHEEL_SLOTS: usize = 1024;

/// The tick of a connection with no wheel entry.
pub const NO_TIMER: u64 = u64::MAX;

impl TimerWheel {
    /// A wheel whose first expiry is for the tick after `now_ns`.
    pub fn new(now_ns: u64) -> Self {
        TimerWheel {
            slots: vec![Vec::new(); WHEEL_SLOTS],
            done: now_ns / TICK_NS,
        }
    }

    /// File connection `(slot, gen)` for deadline `at_ns` unless its live
    /// entry (tick `*armed`, or [`NO_TIMER`]) fires no later; updates
    /// `*armed`.
    pub fn arm(&mut self, slot: u32, gen: u32, at_ns: u64, armed: &mut u64) {
        // Round up: a deadline never fires early.
        let tick = at_ns.div_ceil(TICK_NS).max(self.done + 1);
        if tick >= *armed {
            return;
        }
        *armed = tick;
        self.slots[(tick % WHEEL_SLOTS as u64) as usize].push((slot, gen, tick));
    }

    /// Move every entry due at `now_ns` into `due` as `(slot, gen, tick)`;
    /// the driver compares `tick` with the connection's armed tick, and
    /// asks its session.
    pub fn expire(&mut self, now_ns: u64, due: &mut Vec<(u32, u32, u64)>) {
        let now_tick = now_ns / TICK_NS;
        if now_tick <= self.done {
            return;
        }
        // After a long stall every slot is visited once.
        let first = (now_tick - self.done).min(WHEEL_SLOTS as u64);
        for t in (now_tick + 1 - first)..=now_tick {
            let slot = &mut self.slots[(t % WHEEL_SLOTS as u64) as usize];
            slot.retain(|&e| {
                if e.2 <= now_tick {
                    due.push(e);
                    false
                } else {
                    true
                }
            });
        }
        self.done = now_tick;
    }

    /// Expire the wheel at `now_ns` and keep, in `due`, the connections
    /// of `conns` whose live entry fired (`armed` gives a connection's
    /// armed tick), each disarmed ([`NO_TIMER`]); stale entries and gone
    /// connections are dropped. The driver then asks each one's session
    /// ([`super::session::Session::on_timer`]) and re-arms it.
    pub fn fire<T>(
        &mut self,
        now_ns: u64,
        conns: &mut Slab<T>,
        armed: impl Fn(&mut T) -> &mut u64,
        due: &mut Vec<(u32, u32, u64)>,
    ) {
        due.clear();
        self.expire(now_ns, due);
        due.retain(|&(slot, gen, tick)| {
            // Gone, or superseded by an earlier entry: dropped.
            let Some(timer) = conns.get_mut(slot, gen).map(&armed) else {
                return false;
            };
            let live = *timer == tick;
            if live {
                *timer = NO_TIMER;
            }
            live
        });
    }

    /// Entries filed, live or stale.
    pub fn len(&self) -> usize {
        self.slots.iter().map(Vec::len).sum()
    }

    /// Whether no entry is filed.
    pub fn is_empty(&self) -> bool {
        self.slots.iter().all(Vec::is_empty)
    }
}

/// Accept back-off: after EMFILE/ENFILE (or ENOBUFS/ENOMEM) accepting
/// pauses until a connection closes or [`ACCEPT_BACKOFF_NS`] passes, so a
/// full descriptor table is not a busy loop.
#[derive(Default)]
pub struct AcceptGate {
    paused_until: Option<u64>,
}

impl AcceptGate {
    /// Accepting failed for lack of descriptors or memory at `now_ns`:
    /// pause. Returns true when this starts a pause (counted as one
    /// `emfile_pauses`), false when already paused.
    pub fn exhausted(&mut self, now_ns: u64, w: &mut WorkerCtx) -> bool {
        let fresh = self.paused_until.is_none();
        if fresh {
            w.stats.counters.emfile_pauses += 1;
        }
        self.paused_until = Some(now_ns + ACCEPT_BACKOFF_NS);
        fresh
    }

    /// Whether accepting is paused.
    pub fn is_paused(&self) -> bool {
        self.paused_until.is_some()
    }

    /// A connection closed, or the worker is draining: end any pause.
    /// Returns true when accepting should resume now.
    pub fn release(&mut self) -> bool {
        self.paused_until.take().is_some()
    }

    /// At a tick: true when a pause just ran out.
    pub fn expired(&mut self, now_ns: u64) -> bool {
        match self.paused_until {
            Some(t) if now_ns >= t => {
                self.paused_until = None;
                true
            }
            _ => false,
        }
    }
}

/// A slab of connection slots addressed by index, each with a generation
/// that changes on every reuse, so that an event carrying (slot, generation)
/// of a closed connection is recognised and dropped.
pub struct Slab<T> {
    slots: Vec<Slot<T>>,
    free: Vec<u32>,
    live: usize,
}

struct Slot<T> {
    /// Generation, [`GEN_BITS`] bits used; bumped on every free.
    gen: u32,
    val: Option<T>,
}

/// Bits of a slot generation (they share a u64 with a slot index and an op
/// in io_uring `user_data`).
pub const GEN_BITS: u32 = 24;
/// Mask of [`GEN_BITS`].
pub const GEN_MASK: u32 = (1 << GEN_BITS) - 1;

impl<T> Slab<T> {
    pub fn new() -> Self {
        Slab {
            slots: Vec::new(),
            free: Vec::new(),
            live: 0,
        }
    }

    /// Live entries.
    #[inline]
    pub fn len(&self) -> usize {
        self.live
    }

    #[inline]
    pub fn is_empty(&self) -> bool {
        self.live == 0
    }

    /// Store `val`; returns (slot, gen).
    pub fn insert(&mut self, val: T) -> (u32, u32) {
        let idx = match self.free.pop() {
            Some(i) => i,
            None => {
                self.slots.push(Slot { gen: 0, val: None });
                (self.slots.len() - 1) as u32
            }
        };
        let slot = &mut self.slots[idx as usize];
        slot.val = Some(val);
        self.live += 1;
        (idx, slot.gen)
    }

    /// The live entry at `idx` if its generation is `gen`.
    #[inline]
    pub fn get_mut(&mut self, idx: u32, gen: u32) -> Option<&mut T> {
        match self.slots.get_mut(idx as usize) {
            Some(s) if s.gen == gen => s.val.as_mut(),
            _ => None,
        }
    }

    /// Remove the entry at `idx` if its generation is `gen`, bumping the
    /// generation.
    pub fn remove(&mut self, idx: u32, gen: u32) -> Option<T> {
        let s = self.slots.get_mut(idx as usize)?;
        if s.gen != gen {
            return None;
        }
        let v = s.val.take()?;
        s.gen = (s.gen + 1) & GEN_MASK;
        self.free.push(idx);
        self.live -= 1;
        Some(v)
    }

    /// Indices and generations of all live entries.
    pub fn live_keys(&self) -> Vec<(u32, u32)> {
        self.slots
            .iter()
            .enumerate()
            .filter(|(_, s)| s.val.is_some())
            .map(|(i, s)| (i as u32, s.gen))
            .collect()
    }
}

impl<T> Default for Slab<T> {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slab_generation_rejects_stale_keys() {
        let mut s: Slab<u32> = Slab::new();
        let (i, g) = s.insert(7);
        assert_eq!(s.get_mut(i, g).copied(), Some(7));
        assert_eq!(s.remove(i, g), Some(7));
        let (i2, g2) = s.insert(8);
        assert_eq!(i2, i, "the freed slot is reused");
        assert_ne!(g2, g, "with a new generation");
        assert!(s.get_mut(i, g).is_none(), "a stale key finds nothing");
        assert!(s.remove(i, g).is_none(), "nor removes anything");
        assert_eq!(s.len(), 1);
    }

    #[test]
    fn wheel_fires_at_the_deadline_tick_never_early() {
        let mut w = TimerWheel::new(0);
        let mut armed = NO_TIMER;
        w.arm(3, 1, 250_000_000, &mut armed); // 250 ms → tick 3
        assert_eq!(armed, 3);
        let mut due = Vec::new();
        w.expire(299_999_999, &mut due);
        assert!(due.is_empty(), "not before tick 3: {due:?}");
        w.expire(300_000_000, &mut due);
        assert_eq!(due, vec![(3, 1, 3)]);
        assert!(w.is_empty());
    }

    #[test]
    fn wheel_keeps_one_entry_unless_the_deadline_moves_earlier() {
        let mut w = TimerWheel::new(0);
        let mut armed = NO_TIMER;
        w.arm(0, 0, 10 * TICK_NS, &mut armed);
        w.arm(0, 0, 20 * TICK_NS, &mut armed); // later: not re-filed
        assert_eq!((w.len(), armed), (1, 10));
        w.arm(0, 0, 5 * TICK_NS, &mut armed); // earlier: a new entry
        assert_eq!((w.len(), armed), (2, 5));
        let mut due = Vec::new();
        w.expire(10 * TICK_NS, &mut due);
        // Both come back; the driver drops the one whose tick (10) is not
        // the armed one (5).
        due.sort();
        assert_eq!(due, vec![(0, 0, 5), (0, 0, 10)]);
    }

    #[test]
    fn wheel_holds_deadlines_beyond_one_turn() {
        let mut w = TimerWheel::new(0);
        let mut armed = NO_TIMER;
        let at = (WHEEL_SLOTS as u64 + 7) * TICK_NS;
        w.arm(1, 2, at, &mut armed);
        let mut due = Vec::new();
        for t in 1..(WHEEL_SLOTS as u64 + 7) {
            w.expire(t * TICK_NS, &mut due);
        }
        assert!(due.is_empty(), "fired a turn early: {due:?}");
        w.expire(at, &mut due);
        assert_eq!(due, vec![(1, 2, WHEEL_SLOTS as u64 + 7)]);
    }

    #[test]
    fn wheel_after_a_long_stall_expires_everything_due() {
        let mut w = TimerWheel::new(0);
        let mut a = NO_TIMER;
        let mut b = NO_TIMER;
        w.arm(1, 0, 3 * TICK_NS, &mut a);
        w.arm(2, 0, 5000 * TICK_NS, &mut b);
        let mut due = Vec::new();
        w.expire(4000 * TICK_NS, &mut due);
        assert_eq!(due, vec![(1, 0, 3)]);
        due.clear();
        w.expire(5000 * TICK_NS, &mut due);
        assert_eq!(due, vec![(2, 0, 5000)]);
    }

    #[test]
    fn fire_keeps_live_entries_disarms_them_and_drops_stale_ones() {
        let mut conns: Slab<u64> = Slab::new();
        let (a, ga) = conns.insert(NO_TIMER);
        let (b, gb) = conns.insert(NO_TIMER);
        let (c, gc) = conns.insert(NO_TIMER);
        let mut w = TimerWheel::new(0);
        let mut t = NO_TIMER;
        w.arm(a, ga, 3 * TICK_NS, &mut t);
        *conns.get_mut(a, ga).unwrap() = t;
        let mut t = NO_TIMER;
        w.arm(b, gb, 5 * TICK_NS, &mut t);
        w.arm(b, gb, 2 * TICK_NS, &mut t); // earlier: the tick-5 entry is stale
        *conns.get_mut(b, gb).unwrap() = t;
        let mut t = NO_TIMER;
        w.arm(c, gc, 4 * TICK_NS, &mut t);
        conns.remove(c, gc); // gone before its timer fires
        let mut due = Vec::new();
        w.fire(5 * TICK_NS, &mut conns, |t| t, &mut due);
        due.sort();
        assert_eq!(due, vec![(a, ga, 3), (b, gb, 2)]);
        assert_eq!(*conns.get_mut(a, ga).unwrap(), NO_TIMER, "disarmed");
        assert_eq!(*conns.get_mut(b, gb).unwrap(), NO_TIMER);
    }

    #[test]
    fn ticker_waits_for_the_next_tick_and_skips_missed_ones() {
        let mut t = Ticker::new(0);
        assert!(!t.due(TICK_NS - 1));
        assert_eq!(t.timeout_ms(TICK_NS - 1_500_000), 2, "rounded up");
        assert!(t.due(TICK_NS));
        assert!(!t.due(TICK_NS + 1));
        assert!(t.due(10 * TICK_NS + 5), "after a stall");
        assert!(!t.due(10 * TICK_NS + 6), "missed ticks are not replayed");
        assert_eq!(t.timeout_ms(10 * TICK_NS + 5), 100);
    }

    #[test]
    fn accept_gate_counts_one_pause_and_ends_on_close_or_time() {
        let mut w = WorkerCtx::for_tests(10_000, 60_000);
        let mut g = AcceptGate::default();
        assert!(g.exhausted(0, &mut w));
        assert!(!g.exhausted(1, &mut w), "already paused");
        assert_eq!(w.stats.counters.emfile_pauses, 1);
        assert!(!g.expired(ACCEPT_BACKOFF_NS));
        assert!(g.expired(ACCEPT_BACKOFF_NS + 1));
        assert!(!g.is_paused());
        g.exhausted(5, &mut w);
        assert!(g.release());
        assert!(!g.release());
    }
}
