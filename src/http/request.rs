//! [`Framer`]: the request framing state machine (RFC 9112 §2–§7, §9):
//! bytes in, responses appended, body bytes discarded. The policy list is
//! in the module docs of [`crate::http`].

use std::mem::MaybeUninit;

use super::syntax::{
    content_length, hex_digit, list_items, valid_host, ChunkExt, MAX_CHUNK_EXT_BYTES,
};
use super::*;

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
    /// After the size: BWS and chunk extensions, up to the line end,
    /// checked against their grammar as they arrive.
    Ext(ChunkExt),
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

    /// True while a request body (Content-Length or chunked) is being
    /// read: its head is complete, its end not yet seen.
    pub fn in_body(&self) -> bool {
        matches!(self.state, State::Length(_) | State::Chunked(_))
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
                        b'\r' => Chunk::SizeLf,
                        b'\n' => self.size_line_end(),
                        _ => match ChunkExt::Between.step(b) {
                            Some(ext) => {
                                self.line_len += 1;
                                Chunk::Ext(ext)
                            }
                            None => return (i, Err(Status::BadRequest400)),
                        },
                    },
                },
                Chunk::Ext(ext) => match b {
                    b'\r' | b'\n' if !ext.may_end() => return (i, Err(Status::BadRequest400)),
                    b'\r' => Chunk::SizeLf,
                    b'\n' => self.size_line_end(),
                    _ => {
                        self.line_len += 1;
                        if self.line_len > limits.max_head_bytes.min(MAX_CHUNK_EXT_BYTES) {
                            return (i, Err(Status::BadRequest400));
                        }
                        match ext.step(b) {
                            Some(next) => Chunk::Ext(next),
                            None => return (i, Err(Status::BadRequest400)),
                        }
                    }
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

/// A request head read on its own by an endpoint that answers by target
/// (the `/metrics` listener), under the same rules as [`Framer`]: the
/// same parser, version, Host, request-target, Content-Length /
/// Transfer-Encoding and cap checks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RequestHead {
    /// More bytes are needed (the window is under the head cap).
    Partial,
    /// A complete, valid head: its method and request-target as sent.
    Complete { method: String, target: String },
    /// Invalid, or over [`Limits::max_head_bytes`]: answer this status and
    /// close.
    Invalid(Status),
}

/// Read the request head at the start of `window` (RFC 9112 §2–§3).
/// A body is not looked at: the caller answers and closes.
pub fn read_request_head(window: &[u8], limits: &Limits) -> RequestHead {
    let capped = &window[..window.len().min(limits.max_head_bytes)];
    let parsed = parse_with(capped, |req, _| {
        check_head(req, req.method == Some("HEAD"), limits)?;
        Ok((
            req.method.unwrap_or("").to_string(),
            req.path.unwrap_or("").to_string(),
        ))
    });
    match parsed {
        Parsed::Complete((method, target)) => RequestHead::Complete { method, target },
        Parsed::Partial { .. } if window.len() < limits.max_head_bytes => RequestHead::Partial,
        Parsed::Partial { .. } => RequestHead::Invalid(cap_status(capped)),
        Parsed::Invalid { status, .. } => RequestHead::Invalid(status),
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

/// What a head parse gave, once the request-line version rule is applied.
enum Parsed<R> {
    Complete(R),
    Partial { head: bool },
    Invalid { status: Status, head: bool },
}

/// Parse a request head from the start of `window` with `httparse` and hand
/// a complete one, with its length, to `complete`. A request line of
/// version HTTP/1.x with x > 1 is parsed as HTTP/1.1 (RFC 9110 §6.2: a
/// server SHOULD process it as the highest minor version it implements);
/// one of another major version is a 505 (§15.6.6).
fn parse_with<R>(
    window: &[u8],
    complete: impl FnOnce(&httparse::Request<'_, '_>, usize) -> Result<R, Status>,
) -> Parsed<R> {
    let mut headers = [MaybeUninit::<httparse::Header<'_>>::uninit(); MAX_HEADERS];
    let mut req = httparse::Request::new(&mut []);
    let res = req.parse_with_uninit_headers(window, &mut headers);
    let head = req.method == Some("HEAD");
    match res {
        Ok(httparse::Status::Complete(n)) => match complete(&req, n) {
            Ok(r) => Parsed::Complete(r),
            Err(status) => Parsed::Invalid { status, head },
        },
        Ok(httparse::Status::Partial) => Parsed::Partial { head },
        Err(httparse::Error::TooManyHeaders) => Parsed::Invalid {
            status: Status::HeaderFieldsTooLarge431,
            head,
        },
        Err(httparse::Error::Version) => match request_version(window, version_start(window, &req))
        {
            Version::HigherMinor(at) => {
                // Rare: parse a copy (at most the head cap) that says 1.1.
                let mut copy = window.to_vec();
                copy[at] = b'1';
                parse_with(&copy, complete)
            }
            Version::OtherMajor => Parsed::Invalid {
                status: Status::VersionNotSupported505,
                head,
            },
            Version::Incomplete => Parsed::Partial { head },
            Version::Invalid => Parsed::Invalid {
                status: Status::BadRequest400,
                head,
            },
        },
        Err(_) => Parsed::Invalid {
            status: Status::BadRequest400,
            head,
        },
    }
}

/// Parse a request head from the start of `window` and check what framing
/// needs (RFC 9112 §3.2, §6, §9.3).
fn parse_head(window: &[u8], limits: &Limits) -> Head {
    match parse_with(window, |req, n| {
        Ok((n, check_head(req, req.method == Some("HEAD"), limits)?))
    }) {
        Parsed::Complete((n, r)) => Head::Complete(n, r),
        Parsed::Partial { head } => Head::Partial { head },
        Parsed::Invalid { status, head } => Head::Invalid { status, head },
    }
}

/// The request-target's form must fit the method (RFC 9112 §3.2):
/// origin-form (`/path`) for any method, absolute-form (`http://host/…`,
/// `https://…`, with a valid authority) for any method, asterisk-form
/// (`*`) for OPTIONS only; authority-form is CONNECT's, refused before.
fn check_target(method: &str, target: &[u8]) -> Result<(), Status> {
    let absolute = [&b"http://"[..], b"https://"].iter().find_map(|scheme| {
        let n = scheme.len();
        (target.len() >= n && target[..n].eq_ignore_ascii_case(scheme)).then(|| &target[n..])
    });
    let ok = match target {
        [b'/', ..] => true,
        b"*" => method == "OPTIONS",
        _ => absolute.is_some_and(|rest| {
            let end = rest
                .iter()
                .position(|&b| matches!(b, b'/' | b'?' | b'#'))
                .unwrap_or(rest.len());
            valid_host(&rest[..end])
        }),
    };
    if ok {
        Ok(())
    } else {
        Err(Status::BadRequest400)
    }
}

/// The version of a request line httparse refused (it takes only HTTP/1.0
/// and HTTP/1.1).
enum Version {
    /// `HTTP/1.x`, x in 2..=9: the offset of x in the window.
    HigherMinor(usize),
    /// `HTTP/d.d` with a major version other than 1, on a complete line.
    OtherMajor,
    /// The line has not ended and may still become valid.
    Incomplete,
    /// Not `HTTP-version` = `"HTTP/" DIGIT "." DIGIT` (RFC 9112 §2.3).
    Invalid,
}

/// Where the version of the request line starts in `window`: after the
/// request-target httparse read and the space after it.
fn version_start(window: &[u8], req: &httparse::Request<'_, '_>) -> Option<usize> {
    let path = req.path?;
    // `path` borrows `window`: its offset is the distance between them.
    let at = (path.as_ptr() as usize).checked_sub(window.as_ptr() as usize)?;
    Some(at + path.len() + 1).filter(|&v| v <= window.len())
}

fn request_version(w: &[u8], start: Option<usize>) -> Version {
    let Some(start) = start else {
        return Version::Invalid;
    };
    let end = w[start..]
        .iter()
        .position(|&b| b == b'\n')
        .map(|i| start + i);
    let tok = &w[start..end.unwrap_or(w.len())];
    // The CR of the line end, which may have arrived without its LF.
    let tok = tok.strip_suffix(b"\r").unwrap_or(tok);
    match *tok {
        [b'H', b'T', b'T', b'P', b'/', b'1', b'.', minor] if (b'2'..=b'9').contains(&minor) => {
            Version::HigherMinor(start + 7)
        }
        [b'H', b'T', b'T', b'P', b'/', major, b'.', minor]
            if major.is_ascii_digit() && minor.is_ascii_digit() && major != b'1' =>
        {
            if end.is_some() {
                Version::OtherMajor
            } else {
                Version::Incomplete
            }
        }
        _ if end.is_none() && tok.len() < 8 && fits_version(tok) => Version::Incomplete,
        _ => Version::Invalid,
    }
}

/// Whether `tok` (shorter than 8 bytes) can still grow into `HTTP/d.d`.
fn fits_version(tok: &[u8]) -> bool {
    tok.iter().enumerate().all(|(i, &b)| match i {
        0..=4 => b == b"HTTP/"[i],
        5 | 7 => b.is_ascii_digit(),
        _ => b == b'.',
    })
}

fn check_head(
    req: &httparse::Request<'_, '_>,
    head: bool,
    limits: &Limits,
) -> Result<Request, Status> {
    let method = req.method.unwrap_or("");
    if method == "CONNECT" {
        // A tunnel is not what this server offers (RFC 9110 §9.3.6).
        return Err(Status::NotImplemented501);
    }
    check_target(method, req.path.unwrap_or("").as_bytes())?;
    let http11 = req.version == Some(1);
    let mut hosts = 0u32;
    let mut host_ok = true;
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
            4 if name.eq_ignore_ascii_case(b"host") => {
                hosts += 1;
                host_ok &= valid_host(h.value);
            }
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
    if hosts > 1 || (http11 && hosts == 0) || !host_ok {
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

#[cfg(test)]
mod tests;
