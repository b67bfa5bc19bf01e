//! [`Responder`]: every response okring sends, pre-built once.

use std::time::{SystemTime, UNIX_EPOCH};

use super::date::MAX_IMF_UNIX_S;
use super::*;

pub(super) const CONNS: [ConnHeader; 3] =
    [ConnHeader::None, ConnHeader::KeepAlive, ConnHeader::Close];
/// 200 variants: {GET-like, HEAD} × {no Connection, keep-alive, close}.
const OK_VARIANTS: usize = 6;
/// Error variants: 6 error statuses × {with body, HEAD}; always close.
const ERR_VARIANTS: usize = 12;

/// Pre-built response bytes with a cached `Date` header.
///
/// All 18 variants live in one buffer; [`Responder::bytes`] hands out a
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
