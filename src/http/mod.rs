//! HTTP/1.1 request framing and the fixed response bytes — pure, no I/O.
//!
//! What this module does:
//! - [`Framer`]: a per-connection state machine that takes the received byte
//!   stream in pieces of any size (down to one byte), finds where each
//!   request ends (head, then a `Content-Length` or chunked body that is
//!   discarded, never buffered) and appends one response per complete
//!   request to the caller's output buffer, in order (RFC 9112 §2–§7, §9).
//! - [`Responder`]: every response okring can send, pre-built once, each in
//!   its own contiguous byte range, with a cached `Date` (RFC 9110 §6.6.1)
//!   patched in place at most once per wall-clock second.
//!
//! What it does not do: sockets, timeouts, counters, or deciding when a
//! connection is actually closed. The server loops own those and use
//! [`Fed::close`] and [`Framer::is_idle`] to decide.
//!
//! Policy where RFC 9112 leaves a choice (one policy for every mode):
//! - Any number of empty lines before a request line is ignored (§2.2
//!   requires at least one); they count towards the head cap.
//! - A bare LF is accepted as a line terminator in the head (as `httparse`
//!   does) and in chunk framing (§2.2 "MAY recognize a single LF"). A CR not
//!   followed by LF is a 400.
//! - An HTTP/1.1 request without exactly one `Host`, or any request with
//!   more than one, is a 400 (RFC 9112 §3.2).
//! - Both `Content-Length` and `Transfer-Encoding` → 400 (RFC 9112 §6.3
//!   allows rejecting; request smuggling relies on the other reading).
//!   `Transfer-Encoding` in an HTTP/1.0 request → 400 (§6.1).
//!   `chunked` not last (or twice) → 400; any other coding → 501 (§6.1).
//! - `Content-Length` must be digits; a list of identical values is
//!   accepted (RFC 9110 §8.6), differing values or overflow → 400.
//! - A body over [`Limits::max_body_bytes`] → 413, decided from the
//!   `Content-Length` or the chunk-size digit that crosses the limit.
//! - Head over [`Limits::max_head_bytes`] → 414 when the request line does
//!   not end inside the cap, else 431; more than [`MAX_HEADERS`] fields →
//!   431. Decided the moment the cap is crossed.
//! - The 200 is produced once the whole request (with its body) is
//!   received. `Expect: 100-continue` on an HTTP/1.1 request with a body gets
//!   an interim `100 Continue` right after the head (RFC 9110 §10.1.1).
//! - Every error response carries `Connection: close`; nothing after it is
//!   read (RFC 9112 §9.6: the server lingers, that is the caller's job).

pub mod response;

use std::mem::MaybeUninit;
use std::time::{SystemTime, UNIX_EPOCH};

/// Most header fields accepted in one request head; more → 431. The parse
/// array lives on the stack, so this bounds per-request stack use too.
pub const MAX_HEADERS: usize = 64;

/// Interim response sent after a head carrying `Expect: 100-continue`
/// (RFC 9110 §15.2.1). Not counted in [`Fed::responses`].
pub const CONTINUE_100: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";

/// Length of an IMF-fixdate, e.g. `Sun, 06 Nov 1994 08:49:37 GMT`, bytes.
pub const IMF_FIXDATE_LEN: usize = 29;

/// Latest second an IMF-fixdate can show (9999-12-31T23:59:59Z), s since
/// the Unix epoch. Later clocks are clamped to it.
const MAX_IMF_UNIX_S: u64 = 253_402_300_799;

/// Limits applied while framing (http-behaviour.md, "Framing").
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Cap on the request head (request line + header section), bytes.
    /// Over it: 414 if the request line alone exceeds it, else 431; close.
    /// Also the most bytes a [`Framer`] ever buffers, and the cap on one
    /// chunk-size line and on a chunked trailer section.
    pub max_head_bytes: usize,
    /// Largest request body (Content-Length or sum of chunk sizes) that is
    /// read and discarded, bytes. Over it: 413 and close.
    pub max_body_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_head_bytes: 8192,
            max_body_bytes: 64 << 20,
        }
    }
}

/// Status codes okring can answer with (RFC 9110 §15, RFC 6585 §5).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Status {
    /// 200 OK: the fixed response.
    Ok200,
    /// 400 Bad Request: malformed request line, header or framing.
    BadRequest400,
    /// 413 Content Too Large: body over [`Limits::max_body_bytes`].
    PayloadTooLarge413,
    /// 414 URI Too Long: request line over [`Limits::max_head_bytes`].
    UriTooLong414,
    /// 431 Request Header Fields Too Large: head over the cap, or more
    /// than [`MAX_HEADERS`] fields (RFC 6585 §5).
    HeaderFieldsTooLarge431,
    /// 501 Not Implemented: a transfer coding other than chunked.
    NotImplemented501,
}

impl Status {
    /// Every status, in the order of [`Status::index`].
    pub const ALL: [Status; 6] = [
        Status::Ok200,
        Status::BadRequest400,
        Status::PayloadTooLarge413,
        Status::UriTooLong414,
        Status::HeaderFieldsTooLarge431,
        Status::NotImplemented501,
    ];

    /// The numeric status code, e.g. 431.
    pub fn code(self) -> u16 {
        match self {
            Status::Ok200 => 200,
            Status::BadRequest400 => 400,
            Status::PayloadTooLarge413 => 413,
            Status::UriTooLong414 => 414,
            Status::HeaderFieldsTooLarge431 => 431,
            Status::NotImplemented501 => 501,
        }
    }

    /// The reason phrase sent on the status line (RFC 9110 §15 names).
    pub fn reason(self) -> &'static str {
        match self {
            Status::Ok200 => "OK",
            Status::BadRequest400 => "Bad Request",
            Status::PayloadTooLarge413 => "Content Too Large",
            Status::UriTooLong414 => "URI Too Long",
            Status::HeaderFieldsTooLarge431 => "Request Header Fields Too Large",
            Status::NotImplemented501 => "Not Implemented",
        }
    }

    /// Position in [`Status::ALL`] (0..6), for per-status counter arrays.
    pub fn index(self) -> usize {
        self as usize
    }
}

/// The `Connection` header a response carries (RFC 9112 §9.3, §9.6).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ConnHeader {
    /// No `Connection` header: HTTP/1.1 persistence is the default.
    None,
    /// `Connection: keep-alive`, answering an HTTP/1.0 keep-alive request.
    KeepAlive,
    /// `Connection: close`: the server closes after this response.
    Close,
}

impl ConnHeader {
    fn line(self) -> &'static str {
        match self {
            ConnHeader::None => "",
            ConnHeader::KeepAlive => "Connection: keep-alive\r\n",
            ConnHeader::Close => "Connection: close\r\n",
        }
    }
}

/// One pre-built response inside [`Responder`]'s buffer.
#[derive(Clone, Copy, Debug, Default)]
struct Span {
    start: usize,
    len: usize,
    date_at: usize,
}

const CONNS: [ConnHeader; 3] = [ConnHeader::None, ConnHeader::KeepAlive, ConnHeader::Close];
/// 200 variants: {GET-like, HEAD} × {no Connection, keep-alive, close}.
const OK_VARIANTS: usize = 6;
/// Error variants: 5 error statuses × {with body, HEAD}; always close.
const ERR_VARIANTS: usize = 10;

/// Pre-built response bytes with a cached `Date` header.
///
/// All 16 variants live in one buffer; [`Responder::bytes`] hands out a
/// slice, so producing a response is one `extend_from_slice`. Layout of
/// each: `HTTP/1.1 <code> <reason>\r\nDate: <IMF-fixdate>\r\n`
/// `Content-Type: text/plain\r\nContent-Length: <n>\r\n[Connection: ..\r\n]`
/// `\r\n<body>` (no body for HEAD, same Content-Length: RFC 9110 §9.3.2).
/// Error bodies are the reason phrase and a newline.
#[derive(Clone, Debug)]
pub struct Responder {
    buf: Vec<u8>,
    ok: [Span; OK_VARIANTS],
    err: [Span; ERR_VARIANTS],
    date_unix_s: u64,
    date: [u8; IMF_FIXDATE_LEN],
    body_len: usize,
}

impl Responder {
    /// Build every response variant for the 200 body `body` (sent as
    /// `text/plain`), with the current date.
    pub fn new(body: &[u8]) -> Self {
        let mut r = Responder {
            buf: Vec::new(),
            ok: [Span::default(); OK_VARIANTS],
            err: [Span::default(); ERR_VARIANTS],
            date_unix_s: u64::MAX,
            date: [b' '; IMF_FIXDATE_LEN],
            body_len: body.len(),
        };
        for (h, head) in [false, true].into_iter().enumerate() {
            for (c, conn) in CONNS.into_iter().enumerate() {
                r.ok[h * 3 + c] = r.push(Status::Ok200, body, head, conn);
            }
        }
        for (s, status) in Status::ALL[1..].iter().enumerate() {
            let body = format!("{}\n", status.reason());
            for (h, head) in [false, true].into_iter().enumerate() {
                r.err[s * 2 + h] = r.push(*status, body.as_bytes(), head, ConnHeader::Close);
            }
        }
        r.refresh_date(SystemTime::now());
        r
    }

    fn push(&mut self, status: Status, body: &[u8], head: bool, conn: ConnHeader) -> Span {
        let start = self.buf.len();
        let line = format!("HTTP/1.1 {} {}\r\nDate: ", status.code(), status.reason());
        self.buf.extend_from_slice(line.as_bytes());
        let date_at = self.buf.len();
        self.buf.extend_from_slice(&self.date);
        let rest = format!(
            "\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n{}\r\n",
            body.len(),
            conn.line()
        );
        self.buf.extend_from_slice(rest.as_bytes());
        if !head {
            self.buf.extend_from_slice(body);
        }
        Span {
            start,
            len: self.buf.len() - start,
            date_at,
        }
    }

    /// Refresh the cached `Date` if the wall-clock second of `now` differs
    /// from the cached one: one comparison when it does not, one format and
    /// 16 copies of 29 bytes when it does. No allocation. Clocks before 1970
    /// show 1970-01-01, after 9999 show 9999-12-31T23:59:59.
    pub fn refresh_date(&mut self, now: SystemTime) {
        let secs = now
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
            .min(MAX_IMF_UNIX_S);
        if secs == self.date_unix_s {
            return;
        }
        self.date_unix_s = secs;
        self.date = imf_fixdate(secs);
        for span in self.ok.iter().chain(self.err.iter()) {
            self.buf[span.date_at..span.date_at + IMF_FIXDATE_LEN].copy_from_slice(&self.date);
        }
    }

    /// The complete bytes of one response. `head`: answer to a HEAD request
    /// (no body). `conn` selects the `Connection` header of a 200; error
    /// statuses always carry `Connection: close` and ignore it.
    #[inline]
    pub fn bytes(&self, status: Status, head: bool, conn: ConnHeader) -> &[u8] {
        let span = match status {
            Status::Ok200 => self.ok[head as usize * 3 + conn as usize],
            _ => self.err[(status.index() - 1) * 2 + head as usize],
        };
        &self.buf[span.start..span.start + span.len]
    }

    /// Length of the plain 200 answer to a GET (no `Connection` header),
    /// bytes: what a keep-alive HTTP/1.1 client reads per request.
    pub fn ok_len(&self) -> usize {
        self.ok[0].len
    }

    /// Length of the 200 body, bytes (the `Content-Length` of every 200).
    pub fn body_len(&self) -> usize {
        self.body_len
    }

    /// The cached `Date` value, an IMF-fixdate (29 ASCII bytes).
    pub fn date(&self) -> &[u8; IMF_FIXDATE_LEN] {
        &self.date
    }
}

/// Format `unix_s` (seconds since 1970-01-01T00:00:00Z) as an IMF-fixdate,
/// e.g. `Sun, 06 Nov 1994 08:49:37 GMT` (RFC 9110 §5.6.7). Years past 9999
/// are clamped to 9999-12-31T23:59:59. No allocation.
pub fn imf_fixdate(unix_s: u64) -> [u8; IMF_FIXDATE_LEN] {
    const WDAY: [&[u8; 3]; 7] = [b"Thu", b"Fri", b"Sat", b"Sun", b"Mon", b"Tue", b"Wed"];
    const MON: [&[u8; 3]; 12] = [
        b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov",
        b"Dec",
    ];
    let unix_s = unix_s.min(MAX_IMF_UNIX_S);
    let days = unix_s / 86_400;
    let sod = unix_s % 86_400;
    let (year, month, day) = civil_from_days(days);
    let mut out = *b"Thu, 01 Jan 1970 00:00:00 GMT";
    // 1970-01-01 was a Thursday.
    out[0..3].copy_from_slice(WDAY[(days % 7) as usize]);
    put2(&mut out[5..7], day);
    out[8..11].copy_from_slice(MON[(month - 1) as usize]);
    put2(&mut out[12..14], year / 100);
    put2(&mut out[14..16], year % 100);
    put2(&mut out[17..19], (sod / 3600) as u32);
    put2(&mut out[20..22], (sod / 60 % 60) as u32);
    put2(&mut out[23..25], (sod % 60) as u32);
    out
}

fn put2(dst: &mut [u8], v: u32) {
    dst[0] = b'0' + (v / 10 % 10) as u8;
    dst[1] = b'0' + (v % 10) as u8;
}

/// Days since 1970-01-01 → (year, month 1..=12, day 1..=31) in the
/// proleptic Gregorian calendar (H. Hinnant, "chrono-Compatible Low-Level
/// Date Algorithms", `civil_from_days`), for non-negative days.
fn civil_from_days(days: u64) -> (u32, u32, u32) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = (yoe + era * 400) as u32 + u32::from(month <= 2);
    (year, month, day)
}

/// What one call to [`Framer::feed`] produced.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Fed {
    /// Final responses appended to `out` by this call (an interim
    /// [`CONTINUE_100`] is not counted).
    pub responses: u32,
    /// Of those, how many were errors (non-200): 0 or 1, since an error
    /// always closes.
    pub errors: u32,
    /// Close after `out` is sent; ignore any further input.
    pub close: bool,
    /// The error status sent by this call, if any.
    pub error: Option<Status>,
}

/// Where the framer is in the byte stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Reading a request head (possibly partially buffered).
    Head,
    /// Discarding a Content-Length body: bytes left.
    Length(u64),
    /// Decoding and discarding a chunked body.
    Chunked(Chunk),
    /// A response that closes was produced; input is ignored.
    Closed,
}

/// Chunked body decoder states (RFC 9112 §7.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Chunk {
    /// In the chunk-size hex digits (none read yet when `line_len` is 0).
    Size,
    /// After the size: BWS and chunk extensions, up to the line end.
    Ext,
    /// Saw CR ending the chunk-size line; expect LF.
    SizeLf,
    /// In chunk data: `chunk_left` bytes to discard.
    Data,
    /// After chunk data; expect CR (or bare LF).
    DataCr,
    /// Saw CR after chunk data; expect LF.
    DataLf,
    /// At the start of a trailer line (or the final empty line).
    TrailerStart,
    /// Inside a trailer field line, up to its LF.
    Trailer,
    /// Saw CR at the start of a trailer line; expect LF ending the body.
    EndLf,
}

/// What happened to the head bytes handed to [`parse_head`].
enum Head {
    /// The head is complete: its length in bytes and what it asks for.
    Complete(usize, Request),
    /// More bytes are needed; `head` is whether the method is HEAD so far.
    Partial { head: bool },
    /// The head is invalid: answer `status` (`head`: method was HEAD).
    Invalid { status: Status, head: bool },
}

/// How the body of a request is delimited (RFC 9112 §6.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Body {
    None,
    Length(u64),
    Chunked,
}

/// The parts of a complete head that framing and the response depend on.
#[derive(Clone, Copy, Debug)]
struct Request {
    head: bool,
    conn: ConnHeader,
    close: bool,
    body: Body,
    expect_continue: bool,
}

/// Per-connection framing state machine.
///
/// Memory: at most [`Limits::max_head_bytes`] bytes of a partial head are
/// buffered (allocated once, on the first head that straddles two feeds);
/// bodies are counted, never stored.
#[derive(Clone, Debug)]
pub struct Framer {
    state: State,
    /// The partial head received so far (≤ max_head_bytes).
    buf: Vec<u8>,
    /// The 200 owed once the current body is discarded: (answer to HEAD,
    /// its `Connection` header, close after it).
    pending: (bool, ConnHeader, bool),
    /// Chunked decoding: current chunk size being read, or data left.
    chunk_left: u64,
    /// Chunked decoding: sum of chunk sizes so far, bytes.
    chunk_total: u64,
    /// Chunked decoding: bytes in the current size line or trailer section.
    line_len: usize,
}

impl Default for Framer {
    fn default() -> Self {
        Self::new()
    }
}

impl Framer {
    /// A framer at the start of a connection (idle, nothing buffered).
    pub fn new() -> Self {
        Framer {
            state: State::Head,
            buf: Vec::new(),
            pending: (false, ConnHeader::None, false),
            chunk_left: 0,
            chunk_total: 0,
            line_len: 0,
        }
    }

    /// Consume `input` (any split of the byte stream; may be called with 1
    /// byte at a time), append the bytes of every response produced to
    /// `out`, in order. All of `input` is consumed: partial heads are
    /// buffered (≤ `limits.max_head_bytes`), body bytes are discarded.
    /// Once a response that closes has been produced, the rest of `input`
    /// and every later call are ignored (`close` stays true, no responses).
    /// Never panics on any input.
    pub fn feed(
        &mut self,
        input: &[u8],
        limits: &Limits,
        resp: &Responder,
        out: &mut Vec<u8>,
    ) -> Fed {
        let mut fed = Fed::default();
        let mut pos = 0;
        loop {
            match self.state {
                State::Closed => {
                    fed.close = true;
                    return fed;
                }
                State::Head => {
                    if pos == input.len() {
                        return fed;
                    }
                    pos += self.feed_head(&input[pos..], limits, resp, out, &mut fed);
                }
                State::Length(left) => {
                    let take = left.min((input.len() - pos) as u64);
                    pos += take as usize;
                    if take == left {
                        self.respond(resp, out, &mut fed);
                    } else {
                        self.state = State::Length(left - take);
                        return fed;
                    }
                }
                State::Chunked(chunk) => {
                    if pos == input.len() {
                        return fed;
                    }
                    match self.feed_chunked(chunk, &input[pos..], limits) {
                        (n, Ok(true)) => {
                            pos += n;
                            self.respond(resp, out, &mut fed);
                        }
                        (n, Ok(false)) => pos += n,
                        (_, Err(status)) => {
                            let head = self.pending.0;
                            self.fail(status, head, resp, out, &mut fed);
                        }
                    }
                }
            }
        }
    }

    /// True when no request is partially received (no head bytes buffered,
    /// no body pending): the connection is idle (idle keep-alive timeout
    /// applies) rather than mid-request (header timeout). False once closed.
    pub fn is_idle(&self) -> bool {
        self.state == State::Head && self.buf.is_empty()
    }

    /// True once a response that closes the connection was produced.
    pub fn is_closed(&self) -> bool {
        self.state == State::Closed
    }

    /// Bytes of a partial head held in the internal buffer; never more
    /// than the `max_head_bytes` of the limits in use.
    pub fn buffered_len(&self) -> usize {
        self.buf.len()
    }

    /// Handle head bytes at the start of `input`; returns bytes consumed.
    fn feed_head(
        &mut self,
        input: &[u8],
        limits: &Limits,
        resp: &Responder,
        out: &mut Vec<u8>,
        fed: &mut Fed,
    ) -> usize {
        let cap = limits.max_head_bytes;
        if self.buf.is_empty() {
            // Common case: parse in place, no copy.
            let window = &input[..input.len().min(cap)];
            match parse_head(window, limits) {
                Head::Complete(n, req) => {
                    self.start(req, resp, out, fed);
                    n
                }
                Head::Invalid { status, head } => {
                    self.fail(status, head, resp, out, fed);
                    input.len()
                }
                Head::Partial { head } => {
                    if input.len() > cap {
                        self.fail(cap_status(window), head, resp, out, fed);
                    } else {
                        reserve_within(&mut self.buf, input.len(), cap);
                        self.buf.extend_from_slice(input);
                    }
                    input.len()
                }
            }
        } else {
            let old = self.buf.len();
            let take = cap.saturating_sub(old).min(input.len());
            reserve_within(&mut self.buf, take, cap);
            self.buf.extend_from_slice(&input[..take]);
            match parse_head(&self.buf, limits) {
                Head::Complete(n, req) => {
                    self.buf.clear();
                    self.start(req, resp, out, fed);
                    // The buffered prefix alone was partial, so n > old.
                    n.saturating_sub(old)
                }
                Head::Invalid { status, head } => {
                    self.fail(status, head, resp, out, fed);
                    input.len()
                }
                Head::Partial { head } => {
                    if take < input.len() {
                        let status = cap_status(&self.buf);
                        self.fail(status, head, resp, out, fed);
                    }
                    input.len()
                }
            }
        }
    }

    /// A head is complete: respond now or start discarding its body.
    fn start(&mut self, req: Request, resp: &Responder, out: &mut Vec<u8>, fed: &mut Fed) {
        self.pending = (req.head, req.conn, req.close);
        match req.body {
            Body::None | Body::Length(0) => self.respond(resp, out, fed),
            Body::Length(n) => {
                if req.expect_continue {
                    out.extend_from_slice(CONTINUE_100);
                }
                self.state = State::Length(n);
            }
            Body::Chunked => {
                if req.expect_continue {
                    out.extend_from_slice(CONTINUE_100);
                }
                self.chunk_left = 0;
                self.chunk_total = 0;
                self.line_len = 0;
                self.state = State::Chunked(Chunk::Size);
            }
        }
    }

    /// The current request is complete: append its 200.
    #[inline]
    fn respond(&mut self, resp: &Responder, out: &mut Vec<u8>, fed: &mut Fed) {
        let (head, conn, close) = self.pending;
        out.extend_from_slice(resp.bytes(Status::Ok200, head, conn));
        fed.responses += 1;
        if close {
            fed.close = true;
            self.close();
        } else {
            self.state = State::Head;
        }
    }

    /// Append the error response for `status` and stop reading.
    fn fail(
        &mut self,
        status: Status,
        head: bool,
        resp: &Responder,
        out: &mut Vec<u8>,
        fed: &mut Fed,
    ) {
        out.extend_from_slice(resp.bytes(status, head, ConnHeader::Close));
        fed.responses += 1;
        fed.errors += 1;
        fed.error = Some(status);
        fed.close = true;
        self.close();
    }

    fn close(&mut self) {
        self.state = State::Closed;
        self.buf = Vec::new();
    }

    /// Run the chunked decoder over `input` from state `chunk`. Returns the
    /// bytes consumed and `Ok(true)` when the body (trailers included) is
    /// complete, `Ok(false)` when all of `input` was consumed without
    /// completing it, or the error status.
    fn feed_chunked(
        &mut self,
        mut chunk: Chunk,
        input: &[u8],
        limits: &Limits,
    ) -> (usize, Result<bool, Status>) {
        let mut i = 0;
        while i < input.len() {
            if chunk == Chunk::Data {
                let take = self.chunk_left.min((input.len() - i) as u64);
                i += take as usize;
                self.chunk_left -= take;
                if self.chunk_left == 0 {
                    chunk = Chunk::DataCr;
                }
                continue;
            }
            let b = input[i];
            i += 1;
            chunk = match chunk {
                Chunk::Size => match hex_digit(b) {
                    Some(d) => {
                        // Check before adding so a size line like
                        // `80000000` is refused at once, never allocated.
                        let budget = limits.max_body_bytes.saturating_sub(self.chunk_total);
                        match self
                            .chunk_left
                            .checked_mul(16)
                            .and_then(|v| v.checked_add(u64::from(d)))
                        {
                            Some(v) if v <= budget => self.chunk_left = v,
                            _ => return (i, Err(Status::PayloadTooLarge413)),
                        }
                        self.line_len += 1;
                        if self.line_len > limits.max_head_bytes {
                            return (i, Err(Status::BadRequest400));
                        }
                        Chunk::Size
                    }
                    None if self.line_len == 0 => return (i, Err(Status::BadRequest400)),
                    None => match b {
                        b' ' | b'\t' | b';' => Chunk::Ext,
                        b'\r' => Chunk::SizeLf,
                        b'\n' => self.size_line_end(),
                        _ => return (i, Err(Status::BadRequest400)),
                    },
                },
                Chunk::Ext => match b {
                    b'\r' => Chunk::SizeLf,
                    b'\n' => self.size_line_end(),
                    b'\t' | b' '..=b'~' | 0x80..=0xff => {
                        self.line_len += 1;
                        if self.line_len > limits.max_head_bytes {
                            return (i, Err(Status::BadRequest400));
                        }
                        Chunk::Ext
                    }
                    _ => return (i, Err(Status::BadRequest400)),
                },
                Chunk::SizeLf => match b {
                    b'\n' => self.size_line_end(),
                    _ => return (i, Err(Status::BadRequest400)),
                },
                Chunk::DataCr => match b {
                    b'\r' => Chunk::DataLf,
                    b'\n' => self.next_size_line(),
                    _ => return (i, Err(Status::BadRequest400)),
                },
                Chunk::DataLf => match b {
                    b'\n' => self.next_size_line(),
                    _ => return (i, Err(Status::BadRequest400)),
                },
                Chunk::TrailerStart | Chunk::Trailer => {
                    self.line_len += 1;
                    if self.line_len > limits.max_head_bytes {
                        return (i, Err(Status::HeaderFieldsTooLarge431));
                    }
                    let at_line_start = chunk == Chunk::TrailerStart;
                    match b {
                        // An empty line ends the trailer section and the body.
                        b'\r' if at_line_start => Chunk::EndLf,
                        b'\n' if at_line_start => return (i, Ok(true)),
                        // Trailer fields are discarded unread.
                        b'\n' => Chunk::TrailerStart,
                        _ => Chunk::Trailer,
                    }
                }
                Chunk::EndLf => match b {
                    b'\n' => return (i, Ok(true)),
                    _ => return (i, Err(Status::BadRequest400)),
                },
                Chunk::Data => Chunk::Data,
            };
        }
        self.state = State::Chunked(chunk);
        (i, Ok(false))
    }

    /// The chunk-size line ended: data follows, or the trailer section
    /// after the last chunk (size 0).
    fn size_line_end(&mut self) -> Chunk {
        self.line_len = 0;
        if self.chunk_left == 0 {
            Chunk::TrailerStart
        } else {
            self.chunk_total += self.chunk_left;
            Chunk::Data
        }
    }

    fn next_size_line(&mut self) -> Chunk {
        self.chunk_left = 0;
        self.line_len = 0;
        Chunk::Size
    }
}

/// Make room for `extra` more bytes in `buf` without its capacity ever
/// exceeding `cap` (plain `Vec` growth doubles, which could reach 2 × cap):
/// small heads get a small buffer, and it grows geometrically up to the cap.
fn reserve_within(buf: &mut Vec<u8>, extra: usize, cap: usize) {
    /// First allocation for a partial head, bytes: most heads fit.
    const FIRST_HEAD_BUF_BYTES: usize = 1024;
    let need = buf.len() + extra;
    if need > buf.capacity() {
        let target = need
            .max(buf.capacity() * 2)
            .max(FIRST_HEAD_BUF_BYTES)
            .min(cap.max(need));
        buf.reserve_exact(target - buf.len());
    }
}

#[inline]
fn hex_digit(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// The status for a head that reached the cap: `window` holds its first
/// `max_head_bytes` bytes. 414 when the request line does not end inside
/// them, 431 when it does, 400 when they are nothing but empty lines.
fn cap_status(window: &[u8]) -> Status {
    let Some(start) = window.iter().position(|&b| b != b'\r' && b != b'\n') else {
        return Status::BadRequest400;
    };
    if window[start..].contains(&b'\n') {
        Status::HeaderFieldsTooLarge431
    } else {
        Status::UriTooLong414
    }
}

/// Parse a request head from the start of `window` with `httparse` and
/// check what framing needs (RFC 9112 §3.2, §6, §9.3).
#[inline]
fn parse_head(window: &[u8], limits: &Limits) -> Head {
    let mut headers = [MaybeUninit::<httparse::Header<'_>>::uninit(); MAX_HEADERS];
    let mut req = httparse::Request::new(&mut []);
    let res = req.parse_with_uninit_headers(window, &mut headers);
    let head = req.method == Some("HEAD");
    match res {
        Ok(httparse::Status::Complete(n)) => match check_head(&req, head, limits) {
            Ok(r) => Head::Complete(n, r),
            Err(status) => Head::Invalid { status, head },
        },
        Ok(httparse::Status::Partial) => Head::Partial { head },
        Err(httparse::Error::TooManyHeaders) => Head::Invalid {
            status: Status::HeaderFieldsTooLarge431,
            head,
        },
        Err(_) => Head::Invalid {
            status: Status::BadRequest400,
            head,
        },
    }
}

/// Split a header value into its comma-separated list elements, trimmed
/// of optional whitespace, empty elements skipped (RFC 9110 §5.6.1).
/// Shared by the request and response framers.
pub(crate) fn list_items(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    value.split(|&b| b == b',').filter_map(|item| {
        let item = item.trim_ascii();
        (!item.is_empty()).then_some(item)
    })
}

fn check_head(
    req: &httparse::Request<'_, '_>,
    head: bool,
    limits: &Limits,
) -> Result<Request, Status> {
    let http11 = req.version == Some(1);
    let mut hosts = 0u32;
    let mut opt_close = false;
    let mut opt_keep_alive = false;
    let mut length: Option<u64> = None;
    let mut te_seen = false;
    let mut te_last_chunked = false;
    let mut te_chunked_not_last = false;
    let mut te_unknown = false;
    let mut expect_continue = false;
    for h in req.headers.iter() {
        let name = h.name.as_bytes();
        match name.len() {
            4 if name.eq_ignore_ascii_case(b"host") => hosts += 1,
            6 if name.eq_ignore_ascii_case(b"expect") => {
                expect_continue |= h.value.trim_ascii().eq_ignore_ascii_case(b"100-continue");
            }
            10 if name.eq_ignore_ascii_case(b"connection") => {
                for opt in list_items(h.value) {
                    opt_close |= opt.eq_ignore_ascii_case(b"close");
                    opt_keep_alive |= opt.eq_ignore_ascii_case(b"keep-alive");
                }
            }
            14 if name.eq_ignore_ascii_case(b"content-length") => {
                let v = content_length(h.value).ok_or(Status::BadRequest400)?;
                if length.is_some_and(|l| l != v) {
                    return Err(Status::BadRequest400);
                }
                length = Some(v);
            }
            17 if name.eq_ignore_ascii_case(b"transfer-encoding") => {
                te_seen = true;
                for coding in list_items(h.value) {
                    // transfer-coding = token *( OWS ";" OWS parameter )
                    let token = coding.split(|&b| b == b';').next().unwrap_or(coding);
                    if te_last_chunked {
                        te_chunked_not_last = true;
                    }
                    te_last_chunked = token.trim_ascii().eq_ignore_ascii_case(b"chunked");
                    te_unknown |= !te_last_chunked;
                }
            }
            _ => {}
        }
    }
    if hosts > 1 || (http11 && hosts == 0) {
        return Err(Status::BadRequest400);
    }
    let body = if te_seen {
        if length.is_some() || !http11 || te_chunked_not_last || !te_last_chunked {
            return Err(Status::BadRequest400);
        }
        if te_unknown {
            return Err(Status::NotImplemented501);
        }
        Body::Chunked
    } else {
        match length {
            Some(n) if n > limits.max_body_bytes => return Err(Status::PayloadTooLarge413),
            Some(n) => Body::Length(n),
            None => Body::None,
        }
    };
    let close = opt_close || (!http11 && !opt_keep_alive);
    let conn = if close {
        ConnHeader::Close
    } else if !http11 {
        ConnHeader::KeepAlive
    } else {
        ConnHeader::None
    };
    let has_body = !matches!(body, Body::None | Body::Length(0));
    Ok(Request {
        head,
        conn,
        close,
        body,
        expect_continue: expect_continue && http11 && has_body,
    })
}

/// `1*DIGIT` as a u64; `None` when empty, not all digits, or overflowing.
/// A Content-Length field value (RFC 9110 §8.6): `1*DIGIT`, or a list of
/// identical ones; `None` when empty, not decimal, over u64, or a list of
/// differing values. Shared by the request and response framers.
pub(crate) fn content_length(value: &[u8]) -> Option<u64> {
    let mut length = None;
    for item in value.split(|&b| b == b',') {
        let v = parse_decimal(item.trim_ascii())?;
        if length.is_some_and(|l| l != v) {
            return None;
        }
        length = Some(v);
    }
    length
}

/// `1*DIGIT` as a u64; `None` when empty, not decimal or over u64.
fn parse_decimal(s: &[u8]) -> Option<u64> {
    if s.is_empty() {
        return None;
    }
    s.iter().try_fold(0u64, |acc, &b| {
        if b.is_ascii_digit() {
            acc.checked_mul(10)?.checked_add(u64::from(b - b'0'))
        } else {
            None
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::time::Duration;

    const V01: &[u8] = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n";
    /// Sun, 06 Nov 1994 08:49:37 GMT (RFC 9110 §5.6.7's example).
    const RFC_EXAMPLE_UNIX_S: u64 = 784_111_777;

    fn responder() -> Responder {
        let mut r = Responder::new(b"OK");
        r.refresh_date(UNIX_EPOCH + Duration::from_secs(RFC_EXAMPLE_UNIX_S));
        r
    }

    /// Everything a sequence of feeds produced, summed.
    #[derive(Debug, PartialEq, Eq)]
    struct Run {
        out: Vec<u8>,
        responses: u32,
        errors: u32,
        close: bool,
        error: Option<Status>,
        idle: bool,
    }

    fn run_pieces<'a>(pieces: impl IntoIterator<Item = &'a [u8]>, limits: &Limits) -> Run {
        let r = responder();
        let mut f = Framer::new();
        let mut run = Run {
            out: Vec::new(),
            responses: 0,
            errors: 0,
            close: false,
            error: None,
            idle: true,
        };
        for piece in pieces {
            let fed = f.feed(piece, limits, &r, &mut run.out);
            assert!(f.buffered_len() <= limits.max_head_bytes);
            assert!(
                f.buf.capacity() <= limits.max_head_bytes,
                "memory stays under the cap"
            );
            assert!(fed.errors <= 1 && fed.errors <= fed.responses);
            assert_eq!(fed.error.is_some(), fed.errors == 1);
            if run.close {
                assert_eq!(
                    fed,
                    Fed {
                        close: true,
                        ..Fed::default()
                    }
                );
            }
            run.responses += fed.responses;
            run.errors += fed.errors;
            run.close |= fed.close;
            run.error = run.error.or(fed.error);
        }
        run.idle = f.is_idle();
        run
    }

    /// Feed `input` whole, byte by byte, and split in two at every byte
    /// boundary (every `stride`-th for long inputs); all must agree.
    fn run_all_splits(input: &[u8], limits: &Limits) -> Run {
        let whole = run_pieces([input], limits);
        assert_eq!(run_pieces(input.chunks(1), limits), whole, "byte by byte");
        let stride = (input.len() / 1500).max(1);
        for k in (1..input.len()).step_by(stride) {
            let (a, b) = input.split_at(k);
            assert_eq!(run_pieces([a, b], limits), whole, "split at {k}");
        }
        whole
    }

    fn ok(head: bool, conn: ConnHeader) -> Vec<u8> {
        responder().bytes(Status::Ok200, head, conn).to_vec()
    }

    fn err(status: Status) -> Vec<u8> {
        responder().bytes(status, false, ConnHeader::Close).to_vec()
    }

    fn oks(n: usize) -> Vec<u8> {
        ok(false, ConnHeader::None).repeat(n)
    }

    /// `input` gets `expected` and stays open: a following V01 gets OK.
    fn expect_open(input: &[u8], expected: &[u8], responses: u32) {
        let limits = Limits::default();
        let run = run_all_splits(input, &limits);
        assert_eq!(
            String::from_utf8_lossy(&run.out),
            String::from_utf8_lossy(expected)
        );
        assert_eq!(
            (run.responses, run.errors, run.close),
            (responses, 0, false)
        );
        assert!(run.idle, "a complete request leaves the framer idle");
        let then = run_pieces([input, V01], &limits);
        assert_eq!(then.out, [expected, &oks(1)].concat());
    }

    /// `input` gets `expected`, then the connection closes and a
    /// following V01 is ignored.
    fn expect_close(input: &[u8], expected: &[u8], error: Option<Status>) {
        let limits = Limits::default();
        let run = run_all_splits(input, &limits);
        assert_eq!(
            String::from_utf8_lossy(&run.out),
            String::from_utf8_lossy(expected)
        );
        assert!(run.close);
        assert_eq!(run.error, error);
        assert_eq!(run.errors, u32::from(error.is_some()));
        assert_eq!(run_pieces([input, V01], &limits).out, expected);
    }

    fn expect_error(input: &[u8], status: Status) {
        expect_close(input, &err(status), Some(status));
    }

    #[test]
    fn v01_v02_simple_gets() {
        expect_open(V01, &oks(1), 1);
        expect_open(
            b"GET /x?y=1 HTTP/1.1\r\nHost: a\r\nUser-Agent: t\r\nAccept: */*\r\n\r\n",
            &oks(1),
            1,
        );
    }

    #[test]
    fn v03_v04_pipelined() {
        expect_open(&V01.repeat(16), &oks(16), 16);
        expect_open(&V01.repeat(1024), &oks(1024), 1024);
    }

    #[test]
    fn v05_leading_empty_line() {
        expect_open(b"\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", &oks(1), 1);
    }

    #[test]
    fn v06_v07_http10() {
        expect_close(
            b"GET / HTTP/1.0\r\nHost: a\r\n\r\n",
            &ok(false, ConnHeader::Close),
            None,
        );
        // No Host is fine in HTTP/1.0 (RFC 9112 §3.2 binds HTTP/1.1).
        expect_close(
            b"GET / HTTP/1.0\r\n\r\n",
            &ok(false, ConnHeader::Close),
            None,
        );
        let keep = ok(false, ConnHeader::KeepAlive);
        assert!(String::from_utf8_lossy(&keep).contains("\r\nConnection: keep-alive\r\n"));
        expect_open(
            b"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\nHost: a\r\n\r\n",
            &keep,
            1,
        );
    }

    #[test]
    fn v08_v09_connection_close_lists() {
        let close = ok(false, ConnHeader::Close);
        assert!(String::from_utf8_lossy(&close).contains("\r\nConnection: close\r\n"));
        expect_close(
            b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
            &close,
            None,
        );
        expect_close(
            b"GET / HTTP/1.1\r\nHost: a\r\nConnection: TE, Close\r\n\r\n",
            &close,
            None,
        );
        expect_close(
            b"GET / HTTP/1.1\r\nHost: a\r\nConnection: ,\t cLoSe ,\r\n\r\n",
            &close,
            None,
        );
        // Options spread over two Connection fields form one list.
        expect_close(
            b"GET / HTTP/1.0\r\nConnection: keep-alive\r\nConnection: upgrade, close\r\n\r\n",
            &close,
            None,
        );
        // Tokens are compared whole, not as prefixes.
        expect_open(
            b"GET / HTTP/1.1\r\nHost: a\r\nConnection: closed\r\n\r\n",
            &oks(1),
            1,
        );
        expect_open(
            b"GET / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive\r\n\r\n",
            &oks(1),
            1,
        );
        // Pipelined requests after the one that closes are not answered.
        let input = [
            V01,
            b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
            V01,
        ]
        .concat();
        expect_close(&input, &[oks(1), close].concat(), None);
    }

    #[test]
    fn v10_head() {
        let r = responder();
        let get = r.bytes(Status::Ok200, false, ConnHeader::None);
        let head = r.bytes(Status::Ok200, true, ConnHeader::None);
        assert_eq!(head, &get[..get.len() - 2], "same head, no body");
        expect_open(b"HEAD / HTTP/1.1\r\nHost: a\r\n\r\n", head, 1);
    }

    #[test]
    fn v11_content_length_body_then_request() {
        expect_open(
            b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabcGET / HTTP/1.1\r\nHost: a\r\n\r\n",
            &oks(2),
            2,
        );
    }

    #[test]
    fn v12_one_mib_body_over_many_feeds() {
        let limits = Limits::default();
        let head = b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1048576\r\n\r\n";
        let body = vec![b'z'; 1 << 20];
        let mut pieces: Vec<&[u8]> = vec![head];
        pieces.extend(body.chunks(64 << 10));
        pieces.push(V01);
        let run = run_pieces(pieces.iter().copied(), &limits);
        assert_eq!((run.out, run.responses, run.close), (oks(2), 2, false));
        let whole = [&head[..], &body, V01].concat();
        assert_eq!(run_pieces(whole.chunks(1), &limits).out, oks(2));
        assert_eq!(run_pieces([&whole[..]], &limits).out, oks(2));
        // Mid-body the framer is not idle: the header timeout applies.
        let mid = run_pieces([&head[..], &body[..10]], &limits);
        assert!(!mid.idle && mid.responses == 0);
    }

    #[test]
    fn v13_v14_chunked() {
        let te = b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n";
        expect_open(
            &[te, &b"5\r\nhello\r\n0\r\n\r\n"[..], V01].concat(),
            &oks(2),
            2,
        );
        // Chunk data that looks like a request is never parsed as one.
        expect_open(
            &[
                te,
                &b"1c\r\nGET /s HTTP/1.1\r\nHost: a\r\n\r\n\r\n0\r\n\r\n"[..],
            ]
            .concat(),
            &oks(1),
            1,
        );
    }

    #[test]
    fn chunked_extensions_trailers_and_line_ends() {
        let te = b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip;q=1 ,chunked\r\n\r\n";
        expect_error(&[te, &b"0\r\n\r\n"[..]].concat(), Status::NotImplemented501);
        let te = b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: Chunked\r\n\r\n";
        for body in [
            &b"5;name=value;x=\"q;d\"\r\nhello\r\n0\r\n\r\n"[..],
            b"5 ; ext\r\nhello\r\n00000\r\nTrailer-A: 1\r\nTrailer-B: 2\r\n\r\n",
            b"A\r\n0123456789\r\nf\r\n0123456789abcde\r\n0;last\r\n\r\n",
            b"5\nhello\n0\n\n",
            b"3\r\nabc\r\n0\r\nT: v\n\r\n",
        ] {
            expect_open(&[te, body, V01].concat(), &oks(2), 2);
        }
        for body in [
            &b"\r\n"[..],     // no chunk-size digits
            b";ext\r\n",      // extension without a size
            b"5x\r\n",        // junk after the size
            b"5\rX",          // CR not followed by LF
            b"5\r\nhelloX",   // data not followed by CRLF
            b"5\r\nhello\rX", // CR after data not followed by LF
            b"0\r\n\rX",      // CR on the final line not followed by LF
            b"5;\x01\r\n",    // control byte in an extension
        ] {
            expect_error(&[te, body].concat(), Status::BadRequest400);
        }
    }

    #[test]
    fn chunked_limits() {
        let limits = Limits {
            max_head_bytes: 128,
            max_body_bytes: 100,
        };
        let te = b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n";
        let body_ok = [
            &te[..],
            b"32\r\n",
            &[b'x'; 50],
            b"\r\n32\r\n",
            &[b'x'; 50],
            b"\r\n0\r\n\r\n",
        ]
        .concat();
        assert_eq!(run_all_splits(&body_ok, &limits).responses, 1);
        // The cumulative size crosses the limit on the second chunk's digits.
        let over = [&te[..], b"32\r\n", &[b'x'; 50], b"\r\n33\r\n"].concat();
        let run = run_all_splits(&over, &limits);
        assert_eq!(
            (run.error, run.close),
            (Some(Status::PayloadTooLarge413), true)
        );
        // Refused at the digit that crosses the limit, before any line end.
        let run = run_all_splits(&[&te[..], b"65"].concat(), &limits);
        assert_eq!(run.error, Some(Status::PayloadTooLarge413));
        // A size that overflows u64 with the largest possible limit.
        let huge = Limits {
            max_body_bytes: u64::MAX,
            ..limits
        };
        let run = run_all_splits(&[&te[..], &[b'f'; 17][..]].concat(), &huge);
        assert_eq!(run.error, Some(Status::PayloadTooLarge413));
        // Endless leading zeros or extensions are cut at max_head_bytes.
        let run = run_all_splits(&[&te[..], &[b'0'; 200][..]].concat(), &limits);
        assert_eq!(run.error, Some(Status::BadRequest400));
        let run = run_all_splits(&[&te[..], b"1;", &[b'e'; 200][..]].concat(), &limits);
        assert_eq!(run.error, Some(Status::BadRequest400));
        let trailers = [&te[..], b"0\r\n", &b"T: v\r\n".repeat(30)].concat();
        let run = run_all_splits(&trailers, &limits);
        assert_eq!(run.error, Some(Status::HeaderFieldsTooLarge431));
    }

    #[test]
    fn v15_both_length_and_chunked() {
        let head = b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n";
        expect_error(&[&head[..], b"hello"].concat(), Status::BadRequest400);
        // Decided at the end of the head, without waiting for the body.
        let run = run_pieces([&head[..]], &Limits::default());
        assert_eq!(run.error, Some(Status::BadRequest400));
    }

    #[test]
    fn v16_v17_invalid_content_length() {
        for v in [
            &b"-5"[..],
            b"99999999999999999999",
            b"18446744073709551616",
            b"+5",
            b"5 5",
            b"0x10",
            b"",
            b"5,",
            b"5, 6",
        ] {
            let req = [
                &b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: "[..],
                v,
                b"\r\n\r\n",
            ]
            .concat();
            expect_error(&req, Status::BadRequest400);
        }
        expect_error(
            b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
            Status::BadRequest400,
        );
        // Identical repeated values are one valid length (RFC 9110 §8.6).
        expect_open(
            b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3, 3\r\ncontent-length: 003\r\n\r\nabc",
            &oks(1),
            1,
        );
        expect_open(
            b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n",
            &oks(1),
            1,
        );
    }

    #[test]
    fn content_length_limit() {
        let limits = Limits {
            max_head_bytes: 8192,
            max_body_bytes: 10,
        };
        let at = b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\n0123456789";
        assert_eq!(run_all_splits(at, &limits).out, oks(1));
        let over = b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 11\r\n\r\n";
        let run = run_all_splits(over, &limits);
        assert_eq!(run.out, err(Status::PayloadTooLarge413));
        assert!(run.close);
    }

    #[test]
    fn transfer_coding_policy() {
        let req = |te: &str, v: &str| {
            format!("POST / HTTP/{v}\r\nHost: a\r\nTransfer-Encoding: {te}\r\n\r\n0\r\n\r\n")
        };
        expect_error(
            req("chunked, gzip", "1.1").as_bytes(),
            Status::BadRequest400,
        );
        expect_error(
            req("chunked, chunked", "1.1").as_bytes(),
            Status::BadRequest400,
        );
        expect_error(req("gzip", "1.1").as_bytes(), Status::BadRequest400);
        expect_error(req(",", "1.1").as_bytes(), Status::BadRequest400);
        expect_error(
            req("gzip, chunked", "1.1").as_bytes(),
            Status::NotImplemented501,
        );
        expect_error(req("chunked", "1.0").as_bytes(), Status::BadRequest400);
        expect_error(
            b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: gzip\r\n\r\n",
            Status::BadRequest400,
        );
        expect_open(req(" chunked ,", "1.1").as_bytes(), &oks(1), 1);
    }

    #[test]
    fn host_rules() {
        expect_error(b"GET / HTTP/1.1\r\n\r\n", Status::BadRequest400);
        expect_error(
            b"GET / HTTP/1.1\r\nHost: a\r\nhost: b\r\n\r\n",
            Status::BadRequest400,
        );
        expect_open(b"GET / HTTP/1.1\r\nhOST: a\r\n\r\n", &oks(1), 1);
    }

    #[test]
    fn expect_continue() {
        let req =
            b"POST / HTTP/1.1\r\nHost: a\r\nExpect: 100-Continue\r\nContent-Length: 2\r\n\r\nab";
        expect_open(req, &[CONTINUE_100, &oks(1)].concat(), 1);
        // Interim response right after the head, before the body arrives.
        let head = &req[..req.len() - 2];
        assert_eq!(run_pieces([head], &Limits::default()).out, CONTINUE_100);
        // Not for a request without a body, nor for HTTP/1.0.
        expect_open(
            b"GET / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\n\r\n",
            &oks(1),
            1,
        );
        expect_close(
            b"POST / HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\nx",
            &ok(false, ConnHeader::Close),
            None,
        );
    }

    #[test]
    fn v18_huge_chunk_size() {
        expect_error(
            b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n80000000\r\n",
            Status::PayloadTooLarge413,
        );
    }

    #[test]
    fn v19_v20_head_caps() {
        let long_uri = [
            &b"GET /"[..],
            &[b'a'; 9000],
            b" HTTP/1.1\r\nHost: a\r\n\r\n",
        ]
        .concat();
        expect_error(&long_uri, Status::UriTooLong414);
        let big = [
            &b"GET / HTTP/1.1\r\nHost: a\r\nX-Big: "[..],
            &[b'x'; 9000],
            b"\r\n\r\n",
        ]
        .concat();
        expect_error(&big, Status::HeaderFieldsTooLarge431);
    }

    #[test]
    fn v21_endless_head_is_cut_at_the_cap() {
        let limits = Limits::default();
        let mut stream = b"GET / HTTP/1.1\r\nHost: a\r\n".to_vec();
        while stream.len() < 1 << 20 {
            // Long fields, so the byte cap is reached before MAX_HEADERS.
            stream.extend_from_slice(b"X-Filler: ");
            stream.extend_from_slice(&[b'v'; 200]);
            stream.extend_from_slice(b"\r\n");
        }
        let r = responder();
        let mut f = Framer::new();
        let mut out = Vec::new();
        for (i, b) in stream.iter().enumerate() {
            let fed = f.feed(std::slice::from_ref(b), &limits, &r, &mut out);
            assert!(f.buffered_len() <= limits.max_head_bytes);
            assert!(
                f.buf.capacity() <= limits.max_head_bytes,
                "memory stays under the cap"
            );
            if i < limits.max_head_bytes {
                assert_eq!(fed, Fed::default(), "byte {i}");
            } else {
                // Answered at the first byte past the cap, not later.
                assert_eq!(fed.error, Some(Status::HeaderFieldsTooLarge431), "byte {i}");
                break;
            }
        }
        assert_eq!(out, err(Status::HeaderFieldsTooLarge431));
        assert_eq!(f.buffered_len(), 0, "buffer released on close");
        for piece in [&stream[..], &stream[..limits.max_head_bytes + 1]] {
            let run = run_pieces(piece.chunks(4096), &limits);
            assert_eq!(run.error, Some(Status::HeaderFieldsTooLarge431));
        }
    }

    #[test]
    fn cap_boundaries() {
        let limits = Limits {
            max_head_bytes: 64,
            max_body_bytes: 0,
        };
        let pad = |total: usize| {
            let base = b"GET / HTTP/1.1\r\nHost: a\r\nX: \r\n\r\n";
            let mut v = base[..base.len() - 4].to_vec();
            v.resize(total - 4, b'x');
            v.extend_from_slice(b"\r\n\r\n");
            v
        };
        assert_eq!(run_all_splits(&pad(64), &limits).out, oks(1));
        assert_eq!(
            run_all_splits(&[pad(64), pad(64)].concat(), &limits).out,
            oks(2)
        );
        let run = run_all_splits(&pad(65), &limits);
        assert_eq!(run.error, Some(Status::HeaderFieldsTooLarge431));
        // A request line whose LF is the 64th byte fits; the head does not.
        let mut line = b"GET /".to_vec();
        line.resize(64 - b" HTTP/1.1\r\n".len(), b'a');
        line.extend_from_slice(b" HTTP/1.1\r\n");
        let run = run_all_splits(&[&line[..], b"Host: a\r\n\r\n"].concat(), &limits);
        assert_eq!(run.error, Some(Status::HeaderFieldsTooLarge431));
        // One byte longer and the request line itself is over the cap.
        line.insert(5, b'a');
        let run = run_all_splits(&[&line[..], b"Host: a\r\n\r\n"].concat(), &limits);
        assert_eq!(run.error, Some(Status::UriTooLong414));
        // Nothing but empty lines up to the cap is not a request.
        let run = run_all_splits(&b"\r\n".repeat(40), &limits);
        assert_eq!(run.error, Some(Status::BadRequest400));
        // A head that fits exactly and was buffered across feeds.
        let run = run_pieces([&pad(64)[..63], &pad(64)[63..]], &limits);
        assert_eq!(run.out, oks(1));
    }

    #[test]
    fn header_count_limit() {
        let limits = Limits {
            max_head_bytes: 1 << 16,
            max_body_bytes: 0,
        };
        let req = |n: usize| {
            let mut v = b"GET / HTTP/1.1\r\nHost: a\r\n".to_vec();
            for i in 1..n {
                v.extend_from_slice(format!("X-{i}: v\r\n").as_bytes());
            }
            v.extend_from_slice(b"\r\n");
            v
        };
        assert_eq!(run_pieces([&req(MAX_HEADERS)[..]], &limits).out, oks(1));
        let run = run_all_splits(&req(MAX_HEADERS + 1), &limits);
        assert_eq!(run.error, Some(Status::HeaderFieldsTooLarge431));
    }

    #[test]
    fn v22_garbage() {
        expect_error(b"GARBAGE\r\n\r\n", Status::BadRequest400);
        // Decided as soon as the bytes cannot start a request.
        let run = run_pieces([&b"GET /\x01"[..]], &Limits::default());
        assert_eq!(run.error, Some(Status::BadRequest400));
        for bad in [
            &b"GET / HTTP/2.0\r\nHost: a\r\n\r\n"[..],
            b"GET /\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost : a\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: a\r\n folded\r\n\r\n",
            b"\rGET / HTTP/1.1\r\nHost: a\r\n\r\n",
        ] {
            expect_error(bad, Status::BadRequest400);
        }
        // An error on a HEAD request is sent without a body.
        let r = responder();
        let head_400 = r.bytes(Status::BadRequest400, true, ConnHeader::Close);
        let run = run_all_splits(b"HEAD / HTTP/1.1\r\n\r\n", &Limits::default());
        assert_eq!(run.out, head_400);
    }

    #[test]
    fn v23_bare_lf() {
        expect_open(b"GET / HTTP/1.1\nHost: a\n\n", &oks(1), 1);
    }

    #[test]
    fn v24_to_v28_partial_and_idle() {
        expect_open(&V01.repeat(2), &oks(2), 2);
        assert!(Framer::new().is_idle(), "V27: a new connection is idle");
        let run = run_pieces([&b"GET / HTT"[..]], &Limits::default());
        assert_eq!(
            (run.responses, run.close, run.idle),
            (0, false, false),
            "V26"
        );
        let run = run_pieces([&b"GET / HTTP/1.1\r\n"[..], b"H"], &Limits::default());
        assert!(!run.idle && run.responses == 0, "V28");
        let run = run_pieces([V01, b"\r\n"], &Limits::default());
        assert!(!run.idle, "a leading empty line starts the next request");
    }

    #[test]
    fn responses_are_well_formed() {
        let r = responder();
        for status in Status::ALL {
            for head in [false, true] {
                for conn in CONNS {
                    let bytes = r.bytes(status, head, conn);
                    let mut headers = [httparse::EMPTY_HEADER; 8];
                    let mut p = httparse::Response::new(&mut headers);
                    let n = match p.parse(bytes) {
                        Ok(httparse::Status::Complete(n)) => n,
                        other => panic!("{status:?}: {other:?}"),
                    };
                    assert_eq!(p.code, Some(status.code()));
                    assert_eq!(p.reason, Some(status.reason()));
                    let get = |name: &str| {
                        p.headers
                            .iter()
                            .find(|h| h.name == name)
                            .map(|h| h.value.to_vec())
                    };
                    assert_eq!(
                        get("Date").as_deref(),
                        Some(&b"Sun, 06 Nov 1994 08:49:37 GMT"[..])
                    );
                    assert_eq!(get("Content-Type").as_deref(), Some(&b"text/plain"[..]));
                    let body_len = if status == Status::Ok200 {
                        2
                    } else {
                        status.reason().len() + 1
                    };
                    let cl = get("Content-Length").unwrap();
                    assert_eq!(cl, body_len.to_string().as_bytes());
                    assert_eq!(bytes.len() - n, if head { 0 } else { body_len });
                    let expect_conn = match (status, conn) {
                        (Status::Ok200, ConnHeader::None) => None,
                        (Status::Ok200, ConnHeader::KeepAlive) => Some(&b"keep-alive"[..]),
                        _ => Some(&b"close"[..]),
                    };
                    assert_eq!(get("Connection").as_deref(), expect_conn);
                }
            }
        }
        assert_eq!(
            r.ok_len(),
            r.bytes(Status::Ok200, false, ConnHeader::None).len()
        );
        assert!(r
            .bytes(Status::Ok200, false, ConnHeader::None)
            .ends_with(b"\r\n\r\nOK"));
        assert_eq!(r.body_len(), 2);
        // An empty body: Content-Length 0, and GET and HEAD send the same bytes.
        let empty = Responder::new(b"");
        let get = empty.bytes(Status::Ok200, false, ConnHeader::None);
        assert!(get.ends_with(b"\r\nContent-Length: 0\r\n\r\n"));
        assert_eq!(get, empty.bytes(Status::Ok200, true, ConnHeader::None));
    }

    #[test]
    fn date_known_values() {
        for (secs, want) in [
            (0, "Thu, 01 Jan 1970 00:00:00 GMT"),
            (RFC_EXAMPLE_UNIX_S, "Sun, 06 Nov 1994 08:49:37 GMT"),
            (951_782_400, "Tue, 29 Feb 2000 00:00:00 GMT"),
            (1_234_567_890, "Fri, 13 Feb 2009 23:31:30 GMT"),
            (1_709_164_800, "Thu, 29 Feb 2024 00:00:00 GMT"),
            (4_102_444_800, "Fri, 01 Jan 2100 00:00:00 GMT"),
            (253_402_300_799, "Fri, 31 Dec 9999 23:59:59 GMT"),
            (u64::MAX, "Fri, 31 Dec 9999 23:59:59 GMT"),
        ] {
            assert_eq!(
                std::str::from_utf8(&imf_fixdate(secs)).unwrap(),
                want,
                "{secs}"
            );
        }
    }

    #[test]
    fn refresh_date_patches_every_variant() {
        let mut r = responder();
        let before = r.bytes(Status::Ok200, false, ConnHeader::None).to_vec();
        r.refresh_date(UNIX_EPOCH + Duration::from_millis(RFC_EXAMPLE_UNIX_S * 1000 + 999));
        assert_eq!(
            r.bytes(Status::Ok200, false, ConnHeader::None),
            before,
            "same second"
        );
        r.refresh_date(UNIX_EPOCH + Duration::from_secs(1_709_164_800));
        assert_eq!(r.date(), b"Thu, 29 Feb 2024 00:00:00 GMT");
        for status in Status::ALL {
            for head in [false, true] {
                for conn in CONNS {
                    let text = String::from_utf8_lossy(r.bytes(status, head, conn)).into_owned();
                    assert!(
                        text.contains("\r\nDate: Thu, 29 Feb 2024 00:00:00 GMT\r\n"),
                        "{text}"
                    );
                }
            }
        }
        r.refresh_date(UNIX_EPOCH - Duration::from_secs(5));
        assert_eq!(r.date(), b"Thu, 01 Jan 1970 00:00:00 GMT");
    }

    /// A request that keeps the connection open, and the response it gets.
    fn valid_request(kind: u8) -> (Vec<u8>, Vec<u8>) {
        let get = (V01.to_vec(), oks(1));
        match kind % 8 {
            0 => get,
            1 => (
                b"HEAD /h HTTP/1.1\r\nHost: a\r\n\r\n".to_vec(),
                ok(true, ConnHeader::None),
            ),
            2 => (
                b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 7\r\n\r\n\r\n\r\nGET".to_vec(),
                oks(1),
            ),
            3 => (
                b"PUT / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n\
                  3;x=y\r\nGET\r\n1\r\n\n\r\n0\r\nT: 1\r\n\r\n"
                    .to_vec(),
                oks(1),
            ),
            4 => (
                b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n".to_vec(),
                ok(false, ConnHeader::KeepAlive),
            ),
            5 => (b"\r\nGET / HTTP/1.1\nHost: a\n\n".to_vec(), oks(1)),
            6 => (
                b"POST / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\nx"
                    .to_vec(),
                [CONTINUE_100, &oks(1)].concat(),
            ),
            _ => get,
        }
    }

    /// Upper bound on complete requests in `input`: each needs a head that
    /// ends in an empty line (`\n\n` or `\n\r\n`).
    fn head_ends(input: &[u8]) -> u32 {
        (0..input.len())
            .filter(|&i| {
                input[i] == b'\n'
                    && (input.get(i + 1) == Some(&b'\n') || input[i + 1..].starts_with(b"\r\n"))
            })
            .count() as u32
    }

    fn split_at_cuts<'a>(input: &'a [u8], cuts: &[usize]) -> Vec<&'a [u8]> {
        let mut cuts: Vec<usize> = cuts.iter().map(|c| c % (input.len() + 1)).collect();
        cuts.sort_unstable();
        let mut pieces = Vec::new();
        let mut at = 0;
        for c in cuts {
            pieces.push(&input[at..c]);
            at = c;
        }
        pieces.push(&input[at..]);
        pieces
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn any_split_gives_the_same_output(
            segments in prop::collection::vec(
                prop_oneof![
                    3 => any::<u8>().prop_map(|k| valid_request(k).0),
                    1 => prop::collection::vec(any::<u8>(), 0..24),
                    1 => prop::sample::select(vec![
                        &b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"[..],
                        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\n",
                        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n",
                        b"\r\n", b"\n", b"0\r\n\r\n", b"ff\r\n", b"X: y\r\n",
                    ]).prop_map(|s| s.to_vec()),
                ],
                0..12,
            ),
            cuts in prop::collection::vec(any::<usize>(), 0..16),
            max_head_bytes in prop_oneof![Just(8192usize), 16usize..200],
            max_body_bytes in prop_oneof![Just(64u64 << 20), 0u64..300],
        ) {
            let input = segments.concat();
            let limits = Limits { max_head_bytes, max_body_bytes };
            let whole = run_pieces([&input[..]], &limits);
            let split = run_pieces(split_at_cuts(&input, &cuts), &limits);
            prop_assert_eq!(&split, &whole);
            prop_assert_eq!(run_pieces(input.chunks(1), &limits), whole);
            // Errors need no complete request; every 200 does.
            prop_assert!(split.responses - split.errors <= head_ends(&input));
        }

        #[test]
        fn valid_pipelines_get_one_response_each(
            kinds in prop::collection::vec(any::<u8>(), 0..24),
            cuts in prop::collection::vec(any::<usize>(), 0..16),
        ) {
            let (reqs, resps): (Vec<_>, Vec<_>) = kinds.iter().map(|&k| valid_request(k)).unzip();
            let input = reqs.concat();
            let run = run_pieces(split_at_cuts(&input, &cuts), &Limits::default());
            prop_assert_eq!(run.out, resps.concat());
            prop_assert_eq!(run.responses as usize, kinds.len());
            prop_assert!(!run.close && run.idle && run.errors == 0);
        }

        #[test]
        fn date_matches_rfc3339(secs in 0u64..253_402_300_800) {
            let rfc3339 = humantime::format_rfc3339(UNIX_EPOCH + Duration::from_secs(secs))
                .to_string();
            let imf = imf_fixdate(secs);
            let imf = std::str::from_utf8(&imf).unwrap();
            const MON: [&str; 12] = [
                "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov",
                "Dec",
            ];
            let month: usize = rfc3339[5..7].parse().unwrap();
            let want = format!(
                "{}, {} {} {} {} GMT",
                &imf[..3],
                &rfc3339[8..10],
                MON[month - 1],
                &rfc3339[..4],
                &rfc3339[11..19],
            );
            prop_assert_eq!(imf, want);
            // Weekday: 1970-01-01 was a Thursday, and weeks have 7 days.
            let wday = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"][(secs / 86_400 % 7) as usize];
            prop_assert_eq!(&imf[..3], wday);
        }
    }
}
