//! The connection session: the life-cycle policy of one HTTP/1.1
//! connection, with no I/O. Shaped like [`Framer`]: events in, the next
//! [`Action`] out.
//!
//! The session owns the framer, the responses waiting to be sent, the send
//! in progress (its bytes stay put until it completes, as an io_uring send
//! needs), the send-completion timestamps that become service times, and
//! three small state enums: sending ([`Sending`]), reading ([`Reading`])
//! and ending ([`Ending`]). Every driver (uring, epoll, the blocking loop
//! of sequential, fork and prefork) turns events into calls here and the
//! returned actions into SQEs or system calls; none of them decides when
//! to send, pause, linger or close.
//!
//! The policy, written once:
//! - one send in flight, carrying every response produced so far; a short
//!   send continues from where it stopped ([`Action::Send`] again);
//! - backpressure: while a send is in flight and more than
//!   [`OUT_HIGH_WATER_BYTES`] of later responses wait, reading pauses, and
//!   resumes once the output drains;
//! - the peer's FIN: every complete request is answered, then a graceful
//!   close; a peer error (reset): an abortive close;
//! - a response that closes (`Connection: close`, HTTP/1.0, an error
//!   status): the lingering close of RFC 9112 §9.6 — our FIN once it is
//!   sent, input discarded until the peer's FIN or [`LINGER_MS`];
//! - drain (the server is stopping): a connection closes as soon as it is
//!   quiet (no partial request, nothing to send);
//! - timeouts ([`Session::deadline`]): the header timeout from accept or
//!   from the first byte of a request, the idle timeout between requests
//!   and while a send is stuck, the linger timeout.
//!
//! Once [`Action::Close`] has been returned the session answers every
//! later event with [`Action::Wait`]; a driver whose close completes
//! asynchronously (io_uring) still reports the completion of a send that
//! was in flight, so that [`Session::send_in_flight`] tells when the send
//! buffer is no longer the kernel's.

use std::io::ErrorKind;

use super::worker::WorkerCtx;
pub use super::worker::LINGER_MS;
use crate::http::{Framer, Status};
use crate::stats::record_ns;

/// Output backpressure: once this many bytes of responses wait behind a
/// send in flight, reading pauses (a client that pipelines but never reads
/// cannot grow our memory).
pub const OUT_HIGH_WATER_BYTES: usize = 64 * 1024;

/// What the driver does next for this connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Nothing until the next event.
    Wait,
    /// Send [`Session::unsent`] (one send in flight at a time): start it,
    /// or continue it after a short send. Report the outcome with
    /// [`Session::on_sent`].
    Send,
    /// Stop reading: backpressure. A multishot recv is cancelled, a
    /// single-shot one is not re-armed, epoll drops `EPOLLIN`.
    PauseRead,
    /// Reading may go on again (see [`Session::wants_read`]).
    ResumeRead,
    /// shutdown(2) with `SHUT_WR` now (our FIN), and keep reading: input
    /// is discarded until the peer's FIN ([`Session::on_eof`]) or the
    /// linger timeout.
    Linger,
    /// Close the descriptor. The session is over.
    Close(CloseKind),
}

/// How a connection ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CloseKind {
    /// Every response owed was sent (or the peer went away first with
    /// nothing owed).
    Graceful,
    /// Dropped: a peer error, a timeout, or the end of the drain. A send
    /// or recv still in flight must be ended (shutdown(2) `SHUT_RDWR`).
    Abortive,
}

/// Why a connection's timer fired.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expiry {
    /// No complete request head in time (from accept or first byte).
    Header,
    /// Idle keep-alive connection, or a send stuck for the idle timeout
    /// (a peer that stopped reading).
    Idle,
    /// A lingering close whose peer never sent its FIN.
    Linger,
    /// A request body that stalled for the body timeout, or arrived slower
    /// than the minimum rate.
    Body,
}

/// Progress of the request body being read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct BodyProgress {
    /// When its head completed, ns.
    started_ns: u64,
    /// When its last bytes arrived, ns.
    last_ns: u64,
    /// Bytes received since (input fed while the body was in progress).
    bytes: u64,
}

impl BodyProgress {
    /// The earlier of: `timeout` after the last bytes (a stall), and
    /// `timeout` plus one second per `min_rate` bytes after the start (a
    /// body slower than `min_rate` on average; Apache's mod_reqtimeout
    /// `MinRate` rule).
    fn deadline(&self, timeout_ns: u64, min_rate: u64) -> u64 {
        let stall = self.last_ns.saturating_add(timeout_ns);
        if min_rate == 0 {
            return stall;
        }
        let credit_ns = (u128::from(self.bytes) * 1_000_000_000 / u128::from(min_rate))
            .min(u128::from(u64::MAX)) as u64;
        stall.min(
            self.started_ns
                .saturating_add(timeout_ns)
                .saturating_add(credit_ns),
        )
    }
}

/// The send side.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sending {
    /// No send in progress.
    Idle,
    /// A send of `send_buf[sent..]` is in progress.
    InFlight {
        /// Bytes of the send buffer the kernel has taken, bytes.
        sent: usize,
    },
}

/// The receive side.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reading {
    /// Reading.
    Open,
    /// Paused for backpressure.
    Paused,
    /// The peer's FIN arrived; nothing more will.
    PeerClosed,
}

/// How far the connection is towards its end.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ending {
    /// Keep-alive.
    Open,
    /// A response that closes was produced; input after it is ignored and
    /// the lingering close starts once the output is sent.
    AfterOutput,
    /// Our FIN is sent; input is discarded until the peer's FIN.
    Lingering,
    /// [`Action::Close`] was returned.
    Closed,
}

/// One connection's session (see the module doc).
pub struct Session {
    framer: Framer,
    /// Responses produced but not yet handed to a send.
    out: Vec<u8>,
    /// The bytes of the send in progress; never touched while in flight.
    send_buf: Vec<u8>,
    /// For the responses in `out`: (ns when the input completing them
    /// arrived, how many).
    pending: Vec<(u64, u32)>,
    /// The same, for the responses in `send_buf`.
    inflight: Vec<(u64, u32)>,
    sending: Sending,
    reading: Reading,
    ending: Ending,
    /// No request has completed yet: the header timeout runs from accept.
    fresh: bool,
    /// The server is stopping: close once quiet.
    draining: bool,
    /// Start of the current timeout period, ns on the worker clock: accept,
    /// the first byte of a request, the end of the last send, or the start
    /// of lingering.
    since_ns: u64,
    /// The request body in progress, if any: the body rule replaces the
    /// header timeout while it is read.
    body: Option<BodyProgress>,
}

impl Session {
    /// A session for a connection accepted at `now_ns`.
    pub fn new(now_ns: u64) -> Self {
        Session {
            framer: Framer::new(),
            out: Vec::new(),
            send_buf: Vec::new(),
            pending: Vec::new(),
            inflight: Vec::new(),
            sending: Sending::Idle,
            reading: Reading::Open,
            ending: Ending::Open,
            fresh: true,
            draining: false,
            since_ns: now_ns,
            body: None,
        }
    }

    /// Reset for a new connection accepted at `now_ns`, keeping buffer
    /// capacity (the blocking loop reuses one session).
    pub fn reset(&mut self, now_ns: u64) {
        let mut out = std::mem::take(&mut self.out);
        let mut send_buf = std::mem::take(&mut self.send_buf);
        out.clear();
        send_buf.clear();
        *self = Session {
            out,
            send_buf,
            ..Session::new(now_ns)
        };
    }

    /// The send side's state.
    pub fn sending(&self) -> Sending {
        self.sending
    }

    /// The receive side's state.
    pub fn reading(&self) -> Reading {
        self.reading
    }

    /// How far the connection is towards its end.
    pub fn ending(&self) -> Ending {
        self.ending
    }

    /// Whether a send is in progress (its buffer may be the kernel's).
    #[inline]
    pub fn send_in_flight(&self) -> bool {
        matches!(self.sending, Sending::InFlight { .. })
    }

    /// Whether the driver should be reading: not paused, no FIN yet, not
    /// closed (a lingering connection reads, to discard).
    #[inline]
    pub fn wants_read(&self) -> bool {
        self.reading == Reading::Open && self.ending != Ending::Closed
    }

    /// Whether [`Action::Close`] was returned.
    #[inline]
    pub fn is_closed(&self) -> bool {
        self.ending == Ending::Closed
    }

    /// The bytes the send in progress still has to send; empty when no
    /// send is in flight. Their address is stable until the send
    /// completes ([`on_sent`](Self::on_sent)).
    #[inline]
    pub fn unsent(&self) -> &[u8] {
        match self.sending {
            Sending::InFlight { sent } => &self.send_buf[sent..],
            Sending::Idle => &[],
        }
    }

    /// Bytes of responses produced but not yet handed to a send.
    pub fn queued_len(&self) -> usize {
        self.out.len()
    }

    /// Whether nothing is partially received, queued or being sent.
    pub fn is_quiet(&self) -> bool {
        self.out.is_empty() && !self.send_in_flight() && self.framer.is_idle()
    }

    /// `data` arrived at `now_ns`: frame it, queue the responses and count
    /// them. Input after a response that closes, while lingering, after
    /// the FIN or after the close is discarded.
    pub fn on_input(&mut self, data: &[u8], now_ns: u64, w: &mut WorkerCtx) -> Action {
        if self.ending != Ending::Open || self.reading == Reading::PeerClosed {
            return self.poll(now_ns);
        }
        let was_idle = self.framer.is_idle() && self.out.is_empty() && !self.send_in_flight();
        let was_in_body = self.framer.in_body();
        let fed = self
            .framer
            .feed(data, &w.limits, &w.responder, &mut self.out);
        if fed.responses > 0 {
            self.fresh = false;
            self.pending.push((now_ns, fed.responses));
            let c = &mut w.stats.counters;
            c.requests += u64::from(fed.responses);
            c.responses_200 += u64::from(fed.responses - fed.errors);
            match fed.error {
                Some(Status::BadRequest400) => c.responses_400 += 1,
                Some(Status::PayloadTooLarge413) => c.responses_413 += 1,
                Some(Status::UriTooLong414) => c.responses_414 += 1,
                Some(Status::HeaderFieldsTooLarge431) => c.responses_431 += 1,
                Some(Status::NotImplemented501) => c.responses_501 += 1,
                Some(Status::VersionNotSupported505) => c.responses_505 += 1,
                Some(Status::Ok200) | None => {}
            }
        }
        if was_idle && !data.is_empty() {
            // The header timeout runs from the first byte of a request.
            self.since_ns = now_ns;
        }
        self.body = match (self.framer.in_body(), self.body) {
            (false, _) => None,
            (true, Some(b)) if was_in_body && fed.responses == 0 => Some(BodyProgress {
                last_ns: now_ns,
                bytes: b.bytes + data.len() as u64,
                ..b
            }),
            // A body starts in this input (perhaps after others ended).
            (true, _) => Some(BodyProgress {
                started_ns: now_ns,
                last_ns: now_ns,
                bytes: 0,
            }),
        };
        if fed.close {
            self.ending = Ending::AfterOutput;
        }
        self.poll(now_ns)
    }

    /// The send in flight ended at `now_ns`: `Ok(n)` — the kernel took `n`
    /// more bytes of [`unsent`](Self::unsent); `Err(kind)` — it failed
    /// (ConnectionReset and BrokenPipe are counted as resets). A complete
    /// send records each of its responses' service time.
    pub fn on_sent(
        &mut self,
        res: Result<usize, ErrorKind>,
        now_ns: u64,
        w: &mut WorkerCtx,
    ) -> Action {
        let Sending::InFlight { sent } = self.sending else {
            return Action::Wait;
        };
        let n = match res {
            Ok(n) => n,
            Err(kind) => {
                self.sending = Sending::Idle;
                return self.fail(kind, w);
            }
        };
        if self.ending == Ending::Closed {
            self.sending = Sending::Idle;
            return Action::Wait;
        }
        let sent = sent + n;
        if sent < self.send_buf.len() {
            w.stats.counters.short_sends += 1;
            self.sending = Sending::InFlight { sent };
            return Action::Send;
        }
        if w.record_hist {
            for &(t, k) in &self.inflight {
                record_ns(
                    &mut w.stats.service_ns,
                    now_ns.saturating_sub(t),
                    u64::from(k),
                );
            }
        }
        self.inflight.clear();
        self.send_buf.clear();
        self.sending = Sending::Idle;
        self.since_ns = now_ns;
        self.poll(now_ns)
    }

    /// The peer's FIN (a read of 0 bytes) at `now_ns`: answer what is
    /// complete, then close.
    pub fn on_eof(&mut self, now_ns: u64) -> Action {
        if self.ending == Ending::Closed {
            return Action::Wait;
        }
        self.reading = Reading::PeerClosed;
        self.poll(now_ns)
    }

    /// A read failed with `kind` (ConnectionReset, BrokenPipe and TimedOut
    /// are counted as resets): close, abortively.
    pub fn on_recv_error(&mut self, kind: ErrorKind, w: &mut WorkerCtx) -> Action {
        self.fail(kind, w)
    }

    fn fail(&mut self, kind: ErrorKind, w: &mut WorkerCtx) -> Action {
        if self.ending == Ending::Closed {
            return Action::Wait;
        }
        if matches!(
            kind,
            ErrorKind::ConnectionReset | ErrorKind::BrokenPipe | ErrorKind::TimedOut
        ) {
            w.stats.counters.resets += 1;
        }
        self.ending = Ending::Closed;
        Action::Close(CloseKind::Abortive)
    }

    /// The server is stopping: close as soon as quiet (now, if it is).
    pub fn drain(&mut self, now_ns: u64) -> Action {
        self.draining = true;
        self.poll(now_ns)
    }

    /// The drain's deadline passed: close whatever the state.
    pub fn abort(&mut self) -> Action {
        if self.ending == Ending::Closed {
            return Action::Wait;
        }
        self.ending = Ending::Closed;
        Action::Close(CloseKind::Abortive)
    }

    /// When this connection's timeout expires, ns on the worker clock,
    /// and which one; `None` once closed.
    pub fn deadline(&self, w: &WorkerCtx) -> Option<(u64, Expiry)> {
        let (timeout, why) = if self.ending == Ending::Closed {
            return None;
        } else if self.send_in_flight() {
            (w.idle_timeout_ns, Expiry::Idle)
        } else if self.ending == Ending::Lingering {
            (w.linger_ns, Expiry::Linger)
        } else if self.framer.is_idle() && self.out.is_empty() && !self.fresh {
            (w.idle_timeout_ns, Expiry::Idle)
        } else if let Some(b) = self.body {
            return Some((b.deadline(w.body_timeout_ns, w.body_min_rate), Expiry::Body));
        } else {
            (w.header_timeout_ns, Expiry::Header)
        };
        Some((self.since_ns.saturating_add(timeout), why))
    }

    /// The timer fired at `now_ns`: if the deadline has passed, count the
    /// expiry and close abortively; otherwise [`Action::Wait`] (the
    /// deadline moved; re-arm from [`deadline`](Self::deadline)).
    pub fn on_timer(&mut self, now_ns: u64, w: &mut WorkerCtx) -> Action {
        let Some((at, why)) = self.deadline(w) else {
            return Action::Wait;
        };
        if now_ns < at {
            return Action::Wait;
        }
        match why {
            Expiry::Header => w.stats.counters.timeouts_header += 1,
            Expiry::Idle => w.stats.counters.timeouts_idle += 1,
            Expiry::Body => w.stats.counters.timeouts_body += 1,
            Expiry::Linger => {}
        }
        self.ending = Ending::Closed;
        Action::Close(CloseKind::Abortive)
    }

    /// The next action the state calls for; [`Action::Wait`] when there is
    /// none. Every event method ends here; a driver calls it again after
    /// carrying out an action, until it answers Wait.
    pub fn poll(&mut self, now_ns: u64) -> Action {
        if self.ending == Ending::Closed {
            return Action::Wait;
        }
        let send_idle = !self.send_in_flight();
        if send_idle && !self.out.is_empty() {
            std::mem::swap(&mut self.pending, &mut self.inflight);
            std::mem::swap(&mut self.out, &mut self.send_buf);
            self.sending = Sending::InFlight { sent: 0 };
            return Action::Send;
        }
        match self.reading {
            Reading::Open if !send_idle && self.out.len() > OUT_HIGH_WATER_BYTES => {
                self.reading = Reading::Paused;
                return Action::PauseRead;
            }
            Reading::Paused if send_idle || self.out.len() <= OUT_HIGH_WATER_BYTES => {
                self.reading = Reading::Open;
                return Action::ResumeRead;
            }
            _ => {}
        }
        if !send_idle {
            return Action::Wait;
        }
        // Nothing queued, nothing in flight.
        if self.reading == Reading::PeerClosed {
            self.ending = Ending::Closed;
            return Action::Close(CloseKind::Graceful);
        }
        match self.ending {
            Ending::AfterOutput => {
                self.ending = Ending::Lingering;
                self.since_ns = now_ns;
                Action::Linger
            }
            Ending::Open if self.draining && self.framer.is_idle() => {
                self.ending = Ending::Closed;
                Action::Close(CloseKind::Graceful)
            }
            _ => Action::Wait,
        }
    }
}

#[cfg(test)]
mod tests;
