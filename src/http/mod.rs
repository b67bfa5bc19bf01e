//! HTTP/1.1 request framing and the fixed response bytes — pure, no I/O.
//!
//! Files: `request.rs` ([`Framer`]), `responder.rs` ([`Responder`]),
//! `response.rs` (the load generator's [`response::ResponseFramer`]),
//! `syntax.rs` (list elements, Content-Length, hex digits: shared by both
//! framers), `date.rs` (IMF-fixdate, by the `httpdate` crate); this file
//! holds the types they share ([`Status`], [`Limits`], [`ConnHeader`]).
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
//!   more than one, or with one whose value is not `uri-host [ ":" port ]`
//!   (RFC 3986 §3.2.2: no userinfo, path, list, inner whitespace, bad or
//!   out-of-range port, unterminated IP literal, obs-text; not empty), is a
//!   400 (RFC 9112 §3.2).
//! - The request-target's form must fit the method (RFC 9112 §3.2):
//!   origin-form or absolute-form (`http`/`https`, valid authority) for
//!   any method, asterisk-form for OPTIONS only; anything else is a 400.
//!   CONNECT (authority-form) is a 501: this server does not tunnel, and a
//!   2xx to CONNECT would be one (RFC 9110 §9.3.6).
//! - A request line of HTTP/1.x with x > 1 is served as HTTP/1.1 (RFC 9110
//!   §6.2); another major version (`HTTP/0.9`, `HTTP/2.0`) is a 505
//!   (§15.6.6); anything else that is not `HTTP/DIGIT.DIGIT` is a 400.
//! - Chunk extensions must follow `*( BWS ";" BWS token [ BWS "=" BWS
//!   ( token / quoted-string ) ] )` (RFC 9112 §7.1.1), at most
//!   [`syntax::MAX_CHUNK_EXT_BYTES`] per chunk-size line; else 400.
//!   Whitespace before the line end is accepted.
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

mod date;
mod request;
mod responder;
pub mod response;
pub mod syntax;

pub use date::{imf_fixdate, IMF_FIXDATE_LEN};
pub use request::{read_request_head, Fed, Framer, RequestHead};
pub use responder::Responder;
pub(crate) use syntax::{content_length, list_items};

/// Most header fields accepted in one request head; more → 431. The parse
/// array lives on the stack, so this bounds per-request stack use too.
pub const MAX_HEADERS: usize = 64;

/// Interim response sent after a head carrying `Expect: 100-continue`
/// (RFC 9110 §15.2.1). Not counted in [`Fed::responses`].
pub const CONTINUE_100: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";

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
    /// 501 Not Implemented: a transfer coding other than chunked, or the
    /// CONNECT method (no tunnels here; RFC 9110 §9.3.6).
    NotImplemented501,
    /// 505 HTTP Version Not Supported: a request line of a major version
    /// other than 1 (RFC 9110 §15.6.6).
    VersionNotSupported505,
}

impl Status {
    /// Every status, in the order of [`Status::index`].
    pub const ALL: [Status; 7] = [
        Status::Ok200,
        Status::BadRequest400,
        Status::PayloadTooLarge413,
        Status::UriTooLong414,
        Status::HeaderFieldsTooLarge431,
        Status::NotImplemented501,
        Status::VersionNotSupported505,
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
            Status::VersionNotSupported505 => 505,
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
            Status::VersionNotSupported505 => "HTTP Version Not Supported",
        }
    }

    /// Position in [`Status::ALL`] (0..7), for per-status counter arrays.
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
