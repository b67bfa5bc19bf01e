//! Field-value syntax shared by the request and response framers
//! (RFC 9110 §5.6): list elements, Content-Length, hex digits.

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
