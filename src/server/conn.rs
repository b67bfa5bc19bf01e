//! What every event-loop mode keeps per connection and per worker, with no
//! I/O: the framer, the response bytes waiting to be sent, the timestamps
//! that turn into service times, and the timeout bookkeeping.
//!
//! The loops (epoll, uring) own the descriptors and the syscalls; this file
//! only decides what to send, when to close, and what to count.

use std::time::Instant;

use crate::cli::ServeConfig;
use crate::http::{Fed, Framer, Limits, Responder, Status};
use crate::stats::{record_ns, WorkerStats};

/// Per-worker state shared by all connections of one event loop.
pub struct WorkerCtx {
    pub limits: Limits,
    pub responder: Responder,
    pub stats: WorkerStats,
    /// Monotonic origin of every `*_ns` timestamp in this worker.
    pub epoch: Instant,
    pub header_timeout_ns: u64,
    pub idle_timeout_ns: u64,
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

/// How long a closing connection keeps draining input after our FIN.
pub const LINGER_MS: u64 = 2000;

/// Output backpressure: once a connection's unsent responses exceed this
/// while a send is stuck, the loop stops reading it (a client that
/// pipelines but never reads cannot grow our memory), bytes.
pub const OUT_HIGH_WATER_BYTES: usize = 64 * 1024;

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
            linger_ns: LINGER_MS * 1_000_000,
            max_conns: cfg.max_conns,
            publisher,
            record_hist: !cfg.no_hist,
        }
    }

    /// Nanoseconds since this worker's epoch (CLOCK_MONOTONIC via vDSO).
    #[inline]
    pub fn now_ns(&self) -> u64 {
        self.epoch.elapsed().as_nanos() as u64
    }

    /// Once per timer tick: refresh the cached `Date` header, and publish
    /// a statistics snapshot if a publisher is installed (rate-limited).
    pub fn tick(&mut self) {
        self.responder.refresh_date(std::time::SystemTime::now());
        if let Some(p) = &mut self.publisher {
            let now = self.epoch.elapsed().as_nanos() as u64;
            p.tick(now, &self.stats);
        }
    }
}

/// Why a connection's timer fired.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expiry {
    /// No complete request head in time (from accept or first byte).
    Header,
    /// Idle keep-alive connection.
    Idle,
    /// A lingering close whose peer never sent its FIN.
    Linger,
}

/// Framing and output state of one connection.
pub struct ConnCore {
    pub framer: Framer,
    /// Responses produced but not yet handed to a send.
    pub out: Vec<u8>,
    /// For the responses in `out`: (ns when the input completing them
    /// arrived, how many).
    pending: Vec<(u64, u32)>,
    /// The same, for the responses of the send in flight.
    inflight: Vec<(u64, u32)>,
    /// The framer asked to close once `out` is sent; further input is ignored.
    pub close_after: bool,
    /// Our FIN is sent; input is discarded until the peer's FIN.
    pub lingering: bool,
    /// No request has completed yet: the header timeout runs from accept
    /// (http-behaviour.md), not the idle timeout.
    pub fresh: bool,
    /// Start of the current timeout period, ns: accept, the first byte of a
    /// request, the end of the last send, or the start of lingering.
    pub since_ns: u64,
}

impl ConnCore {
    pub fn new(now_ns: u64) -> Self {
        ConnCore {
            framer: Framer::new(),
            out: Vec::new(),
            pending: Vec::new(),
            inflight: Vec::new(),
            close_after: false,
            lingering: false,
            fresh: true,
            since_ns: now_ns,
        }
    }

    /// Reset for reuse by a new connection, keeping buffer capacity.
    pub fn reset(&mut self, now_ns: u64) {
        self.framer = Framer::new();
        self.out.clear();
        self.pending.clear();
        self.inflight.clear();
        self.close_after = false;
        self.lingering = false;
        self.fresh = true;
        self.since_ns = now_ns;
    }

    /// Frame `data` (bytes that arrived at `now_ns`), appending responses to
    /// `out` and counting them. Input after a closing response is dropped.
    pub fn input(&mut self, data: &[u8], now_ns: u64, w: &mut WorkerCtx) -> Fed {
        if self.close_after || self.lingering {
            return Fed::default();
        }
        let was_idle = self.framer.is_idle() && self.out.is_empty() && self.inflight.is_empty();
        let fed = self
            .framer
            .feed(data, &w.limits, &w.responder, &mut self.out);
        if fed.responses > 0 {
            self.fresh = false;
            self.pending.push((now_ns, fed.responses));
            let c = &mut w.stats.counters;
            c.requests += u64::from(fed.responses);
            c.responses_200 += u64::from(fed.responses - fed.errors);
            if let Some(status) = fed.error {
                match status {
                    Status::BadRequest400 => c.responses_400 += 1,
                    Status::PayloadTooLarge413 => c.responses_413 += 1,
                    Status::UriTooLong414 => c.responses_414 += 1,
                    Status::HeaderFieldsTooLarge431 => c.responses_431 += 1,
                    Status::NotImplemented501 => c.responses_501 += 1,
                    Status::Ok200 => {}
                }
            }
        }
        if was_idle && !data.is_empty() {
            // The header timeout runs from the first byte of a request.
            self.since_ns = now_ns;
        }
        if fed.close {
            self.close_after = true;
        }
        fed
    }

    /// Whether responses wait in `out`.
    #[inline]
    pub fn has_out(&self) -> bool {
        !self.out.is_empty()
    }

    /// A send of everything in `out` is starting: move its timestamps to
    /// the in-flight list. The caller swaps `out` into its send buffer.
    pub fn begin_send(&mut self) {
        debug_assert!(self.inflight.is_empty());
        std::mem::swap(&mut self.pending, &mut self.inflight);
    }

    /// The send started by [`begin_send`](Self::begin_send) completed in
    /// full at `now_ns`: record each response's service time.
    pub fn end_send(&mut self, now_ns: u64, w: &mut WorkerCtx) {
        if w.record_hist {
            for &(t, n) in &self.inflight {
                record_ns(
                    &mut w.stats.service_ns,
                    now_ns.saturating_sub(t),
                    u64::from(n),
                );
            }
        }
        self.inflight.clear();
        self.since_ns = now_ns;
    }

    /// Whether nothing is buffered, in flight, or partially received: the
    /// connection may be closed without losing a response.
    pub fn is_quiet(&self) -> bool {
        self.out.is_empty() && self.inflight.is_empty() && self.framer.is_idle()
    }

    /// Which timeout, if any, has expired at `now_ns`. A send that has not
    /// completed within the idle timeout (a peer that stopped reading)
    /// counts as idle.
    pub fn expired(&self, now_ns: u64, w: &WorkerCtx) -> Option<Expiry> {
        let age = now_ns.saturating_sub(self.since_ns);
        if !self.inflight.is_empty() {
            (age > w.idle_timeout_ns).then_some(Expiry::Idle)
        } else if self.lingering {
            (age > w.linger_ns).then_some(Expiry::Linger)
        } else if self.framer.is_idle() && self.out.is_empty() && !self.fresh {
            (age > w.idle_timeout_ns).then_some(Expiry::Idle)
        } else {
            (age > w.header_timeout_ns).then_some(Expiry::Header)
        }
    }
}

/// Count an expiry in the worker's counters.
pub fn count_expiry(e: Expiry, w: &mut WorkerCtx) {
    match e {
        Expiry::Header => w.stats.counters.timeouts_header += 1,
        Expiry::Idle => w.stats.counters.timeouts_idle += 1,
        Expiry::Linger => {}
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

pub struct Slot<T> {
    /// Generation, 24 bits used; bumped on every free.
    pub gen: u32,
    pub val: Option<T>,
}

/// Generation values wrap at 24 bits (they share a u64 with a slot index
/// and an op kind in io_uring `user_data`).
pub const GEN_MASK: u32 = 0x00ff_ffff;

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

    /// Store `make(slot, gen)`; returns (slot, gen).
    pub fn insert_with(&mut self, make: impl FnOnce(u32, u32) -> T) -> (u32, u32) {
        let idx = match self.free.pop() {
            Some(i) => i,
            None => {
                self.slots.push(Slot { gen: 0, val: None });
                (self.slots.len() - 1) as u32
            }
        };
        let slot = &mut self.slots[idx as usize];
        slot.val = Some(make(idx, slot.gen));
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

    /// Remove the entry at `idx` (any generation), bumping the generation.
    pub fn remove(&mut self, idx: u32) -> Option<T> {
        let s = self.slots.get_mut(idx as usize)?;
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
        let (i, g) = s.insert_with(|_, _| 7);
        assert_eq!(s.get_mut(i, g).copied(), Some(7));
        assert_eq!(s.remove(i), Some(7));
        let (i2, g2) = s.insert_with(|_, _| 8);
        assert_eq!(i2, i, "the freed slot is reused");
        assert_ne!(g2, g, "with a new generation");
        assert!(s.get_mut(i, g).is_none(), "a stale key finds nothing");
        assert_eq!(s.len(), 1);
    }
}
