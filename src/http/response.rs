//! The response framer: what the load generator needs of RFC 9112 to read
//! any valid HTTP/1.1 response stream — the status line and header section
//! (parsed by `httparse`), interim 1xx responses, and the message body
//! length rules of §6.3 (Content-Length, chunked with extensions and
//! trailers, close-delimited). Pure like [`super::Framer`]: bytes in,
//! completed responses out, no I/O; any split of the stream gives the same
//! responses (proptested, and fuzzed by `fuzz/fuzz_targets/response.rs`).
//!
//! Bodies are counted, never stored. Incomplete items (a head, a chunk-size
//! line, a trailer line) are left unconsumed: the caller keeps them and
//! offers them again with the bytes that follow.

/// One final (non-1xx) response, complete.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FramedResponse {
    /// Status code, 200..=999.
    pub status: u16,
    /// The server closes after it (`Connection: close`, an HTTP/1.0
    /// response without `keep-alive`, or a close-delimited body).
    pub close: bool,
    /// Bytes of the body (decoded size for chunked).
    pub body_bytes: u64,
}

/// Why a response stream cannot be framed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Malformed {
    /// The status line or header section does not parse (RFC 9112 §4, §5).
    Head,
    /// A head, chunk-size line or trailer section longer than the limit.
    TooLong,
    /// Content-Length is not a decimal, or repeated with different values
    /// (RFC 9112 §6.3 item 5).
    ContentLength,
    /// A chunk-size line that is not hex digits with optional extensions,
    /// or chunk data not followed by CRLF (RFC 9112 §7.1).
    Chunk,
    /// 101 Switching Protocols, which was never asked for.
    Upgrade,
    /// The peer closed in the middle of a response.
    Truncated,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Waiting for a status line (a final response or a 1xx).
    Head,
    /// `left` body bytes to go.
    Length(u64),
    /// Chunked: the next chunk-size line.
    ChunkSize,
    /// Chunked: `left` bytes of chunk data, then CRLF.
    ChunkData(u64),
    /// Chunked: the CRLF after chunk data.
    ChunkEnd,
    /// Chunked: trailer field lines until the empty line.
    Trailers,
    /// The body runs until the server closes.
    UntilClose,
    /// A response that closes was completed: nothing more is framed.
    Closed,
}

/// Longest chunk-size line, trailer line or header count accepted.
const MAX_LINE: usize = 4096;
/// Header fields parsed per head.
const MAX_HEADERS: usize = 64;

/// Per-connection response framing state (see the module doc).
#[derive(Clone, Debug)]
pub struct ResponseFramer {
    state: State,
    /// Longest head accepted, bytes.
    max_head: usize,
    /// The response being received: (status, close, body bytes so far).
    cur: (u16, bool, u64),
    /// The requests on this connection are HEAD: no response has a body.
    head_requests: bool,
    /// Interim (1xx) responses skipped since the framer was made.
    interim: u64,
}

impl Default for ResponseFramer {
    /// A framer for heads of at most 16 KiB, GET-like requests.
    fn default() -> Self {
        ResponseFramer::new(16 * 1024, false)
    }
}

impl ResponseFramer {
    /// A framer for a connection whose heads are at most `max_head` bytes;
    /// `head_requests`: the requests are HEAD (RFC 9110 §9.3.2: no body).
    pub fn new(max_head: usize, head_requests: bool) -> Self {
        ResponseFramer {
            state: State::Head,
            max_head,
            cur: (0, false, 0),
            head_requests,
            interim: 0,
        }
    }

    /// Back to the start of a new connection.
    pub fn reset(&mut self) {
        self.state = State::Head;
        self.cur = (0, false, 0);
    }

    /// Interim (1xx) responses skipped so far, over every connection this
    /// framer served ([`reset`](Self::reset) keeps the count).
    pub fn interim_seen(&self) -> u64 {
        self.interim
    }

    /// Whether no response is partially received.
    pub fn is_idle(&self) -> bool {
        matches!(self.state, State::Head | State::Closed)
    }

    /// Whether a response that closes was completed.
    pub fn is_closed(&self) -> bool {
        self.state == State::Closed
    }

    /// Frame `buf`: push every final response it completes to `out`, and
    /// return how many bytes were consumed; the rest (an incomplete head or
    /// line) must be offered again, followed by more bytes. After a
    /// response that closes, everything is consumed and ignored.
    pub fn feed(&mut self, buf: &[u8], out: &mut Vec<FramedResponse>) -> Result<usize, Malformed> {
        let mut pos = 0;
        loop {
            let rest = &buf[pos..];
            match self.state {
                State::Closed | State::UntilClose => {
                    if self.state == State::UntilClose {
                        self.cur.2 += rest.len() as u64;
                    }
                    return Ok(buf.len());
                }
                State::Head => {
                    if rest.is_empty() {
                        return Ok(pos);
                    }
                    match self.head(rest)? {
                        Some(n) => pos += n,
                        None if rest.len() >= self.max_head => return Err(Malformed::TooLong),
                        None => return Ok(pos),
                    }
                    if self.state == State::Length(0) {
                        self.complete(out);
                    }
                }
                State::Length(left) => {
                    pos += self.take_body(left, rest.len());
                    if let Some(left) = self.remaining(left, rest.len()) {
                        self.state = State::Length(left);
                        return Ok(pos);
                    }
                    self.complete(out);
                }
                State::ChunkSize => {
                    let Some(line) = line(rest)? else {
                        return Ok(pos);
                    };
                    pos += line.len();
                    let size = chunk_size(line)?;
                    self.state = if size == 0 {
                        State::Trailers
                    } else {
                        State::ChunkData(size)
                    };
                }
                State::ChunkData(left) => {
                    pos += self.take_body(left, rest.len());
                    if let Some(left) = self.remaining(left, rest.len()) {
                        self.state = State::ChunkData(left);
                        return Ok(pos);
                    }
                    self.state = State::ChunkEnd;
                }
                State::ChunkEnd => {
                    let Some(line) = line(rest)? else {
                        return Ok(pos);
                    };
                    if !matches!(line, b"\r\n" | b"\n") {
                        return Err(Malformed::Chunk);
                    }
                    pos += line.len();
                    self.state = State::ChunkSize;
                }
                State::Trailers => {
                    let Some(line) = line(rest)? else {
                        return Ok(pos);
                    };
                    pos += line.len();
                    if matches!(line, b"\r\n" | b"\n") {
                        self.complete(out);
                    }
                }
            }
        }
    }

    /// The server closed the connection: a close-delimited body ends here
    /// and its response is returned; `Ok(None)` when no response was in
    /// progress; [`Malformed::Truncated`] in the middle of one.
    pub fn on_eof(&mut self) -> Result<Option<FramedResponse>, Malformed> {
        match self.state {
            State::Head | State::Closed => Ok(None),
            State::UntilClose => {
                let mut out = Vec::with_capacity(1);
                self.complete(&mut out);
                Ok(out.pop())
            }
            _ => Err(Malformed::Truncated),
        }
    }

    /// Parse one head at the start of `buf`: `Some(len)` when complete
    /// (the state is set for its body), `None` when more bytes are needed.
    fn head(&mut self, buf: &[u8]) -> Result<Option<usize>, Malformed> {
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut r = httparse::Response::new(&mut headers);
        // Only the first `max_head` bytes are looked at, so the verdict on
        // an over-long head (TooLong) does not depend on how the stream
        // was split (found by fuzzing).
        let window = &buf[..buf.len().min(self.max_head)];
        let len = match r.parse(window) {
            Ok(httparse::Status::Complete(n)) => n,
            Ok(httparse::Status::Partial) => return Ok(None),
            Err(httparse::Error::TooManyHeaders) => return Err(Malformed::TooLong),
            Err(_) => return Err(Malformed::Head),
        };
        let status = r.code.ok_or(Malformed::Head)?;
        if status == 101 {
            return Err(Malformed::Upgrade);
        }
        if (100..200).contains(&status) {
            // Interim (RFC 9110 §15.2): no body; the final response follows.
            self.interim += 1;
            return Ok(Some(len));
        }
        let http10 = r.version == Some(0);
        let (mut length, mut chunked, mut te) = (None, false, false);
        let (mut close, mut keep_alive) = (false, false);
        for h in r.headers.iter() {
            if h.name.eq_ignore_ascii_case("content-length") {
                let n = super::content_length(h.value).ok_or(Malformed::ContentLength)?;
                if length.is_some_and(|l| l != n) {
                    return Err(Malformed::ContentLength);
                }
                length = Some(n);
            } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
                te = true;
                // Chunked only counts as the final coding (RFC 9112 §6.3 item 4).
                chunked = super::list_items(h.value)
                    .last()
                    .is_some_and(|last| last.eq_ignore_ascii_case(b"chunked"));
            } else if h.name.eq_ignore_ascii_case("connection") {
                for t in super::list_items(h.value) {
                    close |= t.eq_ignore_ascii_case(b"close");
                    keep_alive |= t.eq_ignore_ascii_case(b"keep-alive");
                }
            }
        }
        let close = close || (http10 && !keep_alive);
        self.cur = (status, close, 0);
        // RFC 9112 §6.3: HEAD, 204 and 304 have no body; then chunked,
        // other transfer codings (until close), Content-Length, else
        // until close.
        self.state = if self.head_requests || status == 204 || status == 304 {
            State::Length(0)
        } else if chunked {
            State::ChunkSize
        } else if te {
            State::UntilClose
        } else if let Some(n) = length {
            State::Length(n)
        } else {
            State::UntilClose
        };
        if self.state == State::UntilClose {
            self.cur.1 = true;
        }
        Ok(Some(len))
    }

    /// Count the body bytes of `available` that belong to a span of `left`
    /// bytes; returns how many were taken.
    fn take_body(&mut self, left: u64, available: usize) -> usize {
        let take = left.min(available as u64);
        self.cur.2 += take;
        take as usize
    }

    /// What is left of a span of `left` bytes after `available` bytes, if
    /// it is not finished.
    fn remaining(&self, left: u64, available: usize) -> Option<u64> {
        left.checked_sub(available as u64).filter(|&l| l > 0)
    }

    fn complete(&mut self, out: &mut Vec<FramedResponse>) {
        let (status, close, body_bytes) = self.cur;
        out.push(FramedResponse {
            status,
            close,
            body_bytes,
        });
        self.state = if close { State::Closed } else { State::Head };
    }
}

/// The line at the start of `buf`, with its LF (a bare LF is accepted,
/// RFC 9112 §2.2); `None` if incomplete, TooLong past [`MAX_LINE`].
fn line(buf: &[u8]) -> Result<Option<&[u8]>, Malformed> {
    match buf.iter().take(MAX_LINE).position(|&b| b == b'\n') {
        Some(i) => Ok(Some(&buf[..=i])),
        None if buf.len() >= MAX_LINE => Err(Malformed::TooLong),
        None => Ok(None),
    }
}

/// The size of a chunk-size line (`1*HEXDIG *chunk-ext CRLF`, RFC 9112
/// §7.1; extensions are skipped, not interpreted).
fn chunk_size(line: &[u8]) -> Result<u64, Malformed> {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let digits = line.iter().take_while(|b| b.is_ascii_hexdigit()).count();
    if digits == 0 || digits > 15 {
        return Err(Malformed::Chunk);
    }
    let rest = line[digits..].trim_ascii_start();
    if !rest.is_empty() && rest[0] != b';' {
        return Err(Malformed::Chunk);
    }
    if rest.iter().any(|&b| b < 0x20 && b != b'\t' || b == 0x7f) {
        return Err(Malformed::Chunk);
    }
    let hex = std::str::from_utf8(&line[..digits]).map_err(|_| Malformed::Chunk)?;
    u64::from_str_radix(hex, 16).map_err(|_| Malformed::Chunk)
}

#[cfg(test)]
mod tests;
