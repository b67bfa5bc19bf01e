//! HTTP/1.x response head parser for the load generator (RFC 9112 §4
//! status line, §5 fields, §6.3 message body length).
//!
//! One pass over the head, no allocation, never panics on input. It reads
//! what framing needs — the status code, `Content-Length`, `Connection` and
//! `Transfer-Encoding` — and skips every other field. It does not decode
//! chunked bodies (okring and the peers it is run against frame with
//! `Content-Length`); a chunked response is reported as malformed, and so is
//! a 1xx interim response (the load generator never sends `Expect`).

/// How the body of a response is delimited (RFC 9112 §6.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum BodyLen {
    /// Exactly this many bytes follow the head.
    Length(u64),
    /// No length given: the body runs until the server closes.
    UntilClose,
}

/// A complete, well-formed response head.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Head {
    /// Length of the head in bytes, including the empty line that ends it.
    pub len: usize,
    /// Status code, 200..=999.
    pub status: u16,
    pub body: BodyLen,
    /// The server will close after this response (`Connection: close`, or an
    /// HTTP/1.0 response without `Connection: keep-alive`).
    pub close: bool,
}

/// Outcome of [`parse_head`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Parsed {
    /// More bytes are needed.
    Incomplete,
    /// Not a response head this parser accepts.
    Bad,
    Done(Head),
}

const PREFIX: &[u8] = b"HTTP/1.";
/// Longest `Content-Length` value accepted, in digits (fits in u64).
const MAX_CONTENT_LENGTH_DIGITS: usize = 18;

/// Parse one response head at the start of `buf`.
pub(crate) fn parse_head(buf: &[u8]) -> Parsed {
    // Status line: "HTTP/1.x SSS[ reason]" CRLF (RFC 9112 §4).
    if buf.len() < 13 {
        let n = buf.len().min(PREFIX.len());
        return if buf[..n] == PREFIX[..n] {
            Parsed::Incomplete
        } else {
            Parsed::Bad
        };
    }
    if &buf[..7] != PREFIX || !matches!(buf[7], b'0' | b'1') || buf[8] != b' ' {
        return Parsed::Bad;
    }
    let (d0, d1, d2) = (buf[9], buf[10], buf[11]);
    if !(d0.is_ascii_digit() && d1.is_ascii_digit() && d2.is_ascii_digit()) {
        return Parsed::Bad;
    }
    if !matches!(buf[12], b' ' | b'\r' | b'\n') {
        return Parsed::Bad;
    }
    let status = (d0 - b'0') as u16 * 100 + (d1 - b'0') as u16 * 10 + (d2 - b'0') as u16;
    if status < 200 {
        return Parsed::Bad;
    }
    let http10 = buf[7] == b'0';
    let Some(mut pos) = line_end(buf, 12) else {
        return Parsed::Incomplete;
    };

    let mut content_length: Option<u64> = None;
    let mut close_token = false;
    let mut keep_alive_token = false;
    loop {
        let Some(next) = line_end(buf, pos) else {
            return Parsed::Incomplete;
        };
        let mut line = &buf[pos..next - 1];
        if let [rest @ .., b'\r'] = line {
            line = rest;
        }
        pos = next;
        if line.is_empty() {
            break;
        }
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            return Parsed::Bad;
        };
        let name = &line[..colon];
        let value = trim(&line[colon + 1..]);
        if name.eq_ignore_ascii_case(b"content-length") {
            let Some(n) = parse_decimal(value) else {
                return Parsed::Bad;
            };
            // Repeated, differing values are an error (RFC 9112 §6.3 item 5).
            if content_length.is_some_and(|old| old != n) {
                return Parsed::Bad;
            }
            content_length = Some(n);
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            return Parsed::Bad;
        } else if name.eq_ignore_ascii_case(b"connection") {
            for token in value.split(|&b| b == b',') {
                let token = trim(token);
                close_token |= token.eq_ignore_ascii_case(b"close");
                keep_alive_token |= token.eq_ignore_ascii_case(b"keep-alive");
            }
        }
    }
    let body = if status == 204 || status == 304 {
        BodyLen::Length(0)
    } else {
        match content_length {
            Some(n) => BodyLen::Length(n),
            None => BodyLen::UntilClose,
        }
    };
    let close = close_token || (http10 && !keep_alive_token) || body == BodyLen::UntilClose;
    Parsed::Done(Head {
        len: pos,
        status,
        body,
        close,
    })
}

/// Index just past the next `\n` at or after `from` (recipients may accept a
/// bare LF as a line terminator, RFC 9112 §2.2).
#[inline]
fn line_end(buf: &[u8], from: usize) -> Option<usize> {
    buf.get(from..)?
        .iter()
        .position(|&b| b == b'\n')
        .map(|i| from + i + 1)
}

#[inline]
fn trim(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    s
}

fn parse_decimal(s: &[u8]) -> Option<u64> {
    if s.is_empty() || s.len() > MAX_CONTENT_LENGTH_DIGITS {
        return None;
    }
    let mut n = 0u64;
    for &b in s {
        if !b.is_ascii_digit() {
            return None;
        }
        n = n * 10 + (b - b'0') as u64;
    }
    Some(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    const OK: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Type: text/plain\r\n\r\nOK";

    #[test]
    fn parses_a_complete_head() {
        let Parsed::Done(h) = parse_head(OK) else {
            panic!("not parsed")
        };
        assert_eq!(h.len, OK.len() - 2);
        assert_eq!(h.status, 200);
        assert_eq!(h.body, BodyLen::Length(2));
        assert!(!h.close);
    }

    #[test]
    fn every_proper_prefix_is_incomplete() {
        let head_len = OK.len() - 2;
        for n in 0..head_len {
            assert_eq!(parse_head(&OK[..n]), Parsed::Incomplete, "prefix {n}");
        }
    }

    #[test]
    fn connection_and_version_decide_close() {
        let r = b"HTTP/1.1 500 Oops\r\nconnection: Keep-Alive, CLOSE\r\ncontent-length:0\r\n\r\n";
        let Parsed::Done(h) = parse_head(r) else {
            panic!()
        };
        assert!(h.close);
        assert_eq!(h.status, 500);
        let r = b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n";
        assert!(matches!(
            parse_head(r),
            Parsed::Done(Head { close: true, .. })
        ));
        let r = b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n";
        assert!(matches!(
            parse_head(r),
            Parsed::Done(Head { close: false, .. })
        ));
        let r = b"HTTP/1.1 200 OK\r\n\r\n";
        assert!(matches!(
            parse_head(r),
            Parsed::Done(Head {
                close: true,
                body: BodyLen::UntilClose,
                ..
            })
        ));
    }

    #[test]
    fn rejects_malformed_heads() {
        for bad in [
            &b"HTTX/1.1 200 OK\r\n\r\n"[..],
            b"HTTP/2.0 200 OK\r\n\r\n",
            b"HTTP/1.1 2x0 OK\r\n\r\n",
            b"HTTP/1.1 100 Continue\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nno colon here\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: 1x\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
            b"garbage",
        ] {
            assert_eq!(
                parse_head(bad),
                Parsed::Bad,
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    proptest::proptest! {
        #[test]
        fn never_panics(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..300)) {
            let _ = parse_head(&bytes);
        }
    }
}
