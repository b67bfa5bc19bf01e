//! Field-value syntax shared by the request and response framers
//! (RFC 9110 §5.6): list elements, Content-Length, hex digits, tokens; the
//! `Host` value (RFC 9112 §3.2, RFC 3986 §3.2.2); the chunk-extension
//! grammar (RFC 9112 §7.1.1).

#[inline]
pub(crate) fn hex_digit(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
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
pub(crate) fn parse_decimal(s: &[u8]) -> Option<u64> {
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

/// `tchar` (RFC 9110 §5.6.2): the bytes of a token.
#[inline]
pub(crate) fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric()
        || matches!(
            b,
            b'!' | b'#'
                | b'$'
                | b'%'
                | b'&'
                | b'\''
                | b'*'
                | b'+'
                | b'-'
                | b'.'
                | b'^'
                | b'_'
                | b'`'
                | b'|'
                | b'~'
        )
}

/// Whether `value` is a valid `Host` field value (RFC 9112 §3.2):
/// `uri-host [ ":" port ]` with `uri-host = IP-literal / IPv4address /
/// reg-name` (RFC 3986 §3.2.2) and `port = *DIGIT` up to 65535. Rejects an
/// empty value, userinfo (`@`), a path, a list, whitespace inside, an
/// unterminated or invalid IP literal, and obs-text. Leading and trailing
/// OWS is the field's, not the value's, and is trimmed.
pub(crate) fn valid_host(value: &[u8]) -> bool {
    let v = value.trim_ascii();
    let (host, port) = if v.first() == Some(&b'[') {
        let Some(close) = v.iter().position(|&b| b == b']') else {
            return false;
        };
        if !valid_ip_literal(&v[1..close]) {
            return false;
        }
        match &v[close + 1..] {
            [] => return true,
            [b':', port @ ..] => (&v[..=close], port),
            _ => return false,
        }
    } else {
        match v.iter().rposition(|&b| b == b':') {
            Some(i) => (&v[..i], &v[i + 1..]),
            None => (v, &b""[..]),
        }
    };
    let port_ok = port.iter().all(u8::is_ascii_digit)
        && (port.is_empty() || parse_decimal(port).is_some_and(|p| p <= 65_535));
    let host_ok = host.first() == Some(&b'[') || (!host.is_empty() && valid_reg_name(host));
    port_ok && host_ok
}

/// `reg-name = *( unreserved / pct-encoded / sub-delims )` (RFC 3986
/// §3.2.2); an IPv4address is a reg-name too, so it needs no case of its
/// own.
fn valid_reg_name(h: &[u8]) -> bool {
    let mut i = 0;
    while i < h.len() {
        match h[i] {
            b'%' => {
                if h.len() < i + 3 || hex_digit(h[i + 1]).is_none() || hex_digit(h[i + 2]).is_none()
                {
                    return false;
                }
                i += 3;
                continue;
            }
            b if is_unreserved(b) || is_sub_delim(b) => {}
            _ => return false,
        }
        i += 1;
    }
    true
}

/// `IP-literal` without its brackets: an IPv6address or an IPvFuture
/// (`"v" 1*HEXDIG "." 1*( unreserved / sub-delims / ":" )`).
fn valid_ip_literal(inner: &[u8]) -> bool {
    if let [b'v' | b'V', rest @ ..] = inner {
        let Some(dot) = rest.iter().position(|&b| b == b'.') else {
            return false;
        };
        let (ver, tail) = (&rest[..dot], &rest[dot + 1..]);
        return !ver.is_empty()
            && ver.iter().all(|&b| hex_digit(b).is_some())
            && !tail.is_empty()
            && tail
                .iter()
                .all(|&b| is_unreserved(b) || is_sub_delim(b) || b == b':');
    }
    std::str::from_utf8(inner).is_ok_and(|s| s.parse::<std::net::Ipv6Addr>().is_ok())
}

fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

fn is_sub_delim(b: u8) -> bool {
    matches!(
        b,
        b'!' | b'$' | b'&' | b'\'' | b'(' | b')' | b'*' | b'+' | b',' | b';' | b'='
    )
}

/// Most bytes of chunk extensions on one chunk-size line; more → 400.
pub const MAX_CHUNK_EXT_BYTES: usize = 4096;

/// Where a chunk-size line is after its size (RFC 9112 §7.1.1):
///
/// ```text
/// chunk-ext      = *( BWS ";" BWS chunk-ext-name [ BWS "=" BWS chunk-ext-val ] )
/// chunk-ext-name = token
/// chunk-ext-val  = token / quoted-string
/// ```
///
/// Fed one byte at a time, so a line split anywhere is judged the same.
/// Whitespace after the size or an extension, before the line end, is
/// accepted (BWS a sender should not send but that changes no framing).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ChunkExt {
    /// After the size digits, or after an extension: BWS, `;` or the end.
    Between,
    /// After `;`: BWS, then a name.
    BeforeName,
    /// In a name.
    Name,
    /// After a name and BWS: `=`, `;` or the end.
    AfterName,
    /// After `=`: BWS, then a token or a quoted-string.
    BeforeValue,
    /// In a token value.
    Token,
    /// In a quoted-string value.
    Quoted,
    /// After a backslash in a quoted-string.
    QuotedPair,
}

impl ChunkExt {
    /// The state after byte `b` (not CR or LF), or `None` when `b` breaks
    /// the grammar.
    pub(crate) fn step(self, b: u8) -> Option<ChunkExt> {
        use ChunkExt::*;
        let ws = b == b' ' || b == b'\t';
        Some(match self {
            Between if ws => Between,
            Between | AfterName if b == b';' => BeforeName,
            BeforeName if ws => BeforeName,
            BeforeName if is_tchar(b) => Name,
            Name if is_tchar(b) => Name,
            Name if b == b';' => BeforeName,
            Name if b == b'=' => BeforeValue,
            Name | AfterName if ws => AfterName,
            AfterName if b == b'=' => BeforeValue,
            BeforeValue if ws => BeforeValue,
            BeforeValue if b == b'"' => Quoted,
            BeforeValue if is_tchar(b) => Token,
            Token if is_tchar(b) => Token,
            Token if ws => Between,
            Token if b == b';' => BeforeName,
            Quoted if b == b'"' => Between,
            Quoted if b == b'\\' => QuotedPair,
            // qdtext = HTAB / SP / %x21 / %x23-5B / %x5D-7E / obs-text
            Quoted if ws || (0x21..=0x7e).contains(&b) || b >= 0x80 => Quoted,
            // quoted-pair = "\" ( HTAB / SP / VCHAR / obs-text )
            QuotedPair if ws || (0x21..=0x7e).contains(&b) || b >= 0x80 => Quoted,
            _ => return None,
        })
    }

    /// Whether the line may end here (CRLF or bare LF).
    pub(crate) fn may_end(self) -> bool {
        matches!(
            self,
            ChunkExt::Between | ChunkExt::Name | ChunkExt::AfterName | ChunkExt::Token
        )
    }
}
