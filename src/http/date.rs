//! The `Date` header value: an IMF-fixdate (RFC 9110 §5.6.7), formatted
//! by the `httpdate` crate into a fixed array, with no allocation.

use std::io::Write as _;
use std::time::{Duration, UNIX_EPOCH};

/// Length of an IMF-fixdate, e.g. `Sun, 06 Nov 1994 08:49:37 GMT`, bytes.
pub const IMF_FIXDATE_LEN: usize = 29;

/// Latest second an IMF-fixdate can show (9999-12-31T23:59:59Z), s since
/// the Unix epoch. Later clocks are clamped to it.
pub(crate) const MAX_IMF_UNIX_S: u64 = 253_402_300_799;

/// Format `unix_s` (seconds since 1970-01-01T00:00:00Z) as an IMF-fixdate,
/// e.g. `Sun, 06 Nov 1994 08:49:37 GMT` (RFC 9110 §5.6.7). Years past 9999
/// are clamped to 9999-12-31T23:59:59.
pub fn imf_fixdate(unix_s: u64) -> [u8; IMF_FIXDATE_LEN] {
    let t = UNIX_EPOCH + Duration::from_secs(unix_s.min(MAX_IMF_UNIX_S));
    let mut out = *b"Thu, 01 Jan 1970 00:00:00 GMT";
    // httpdate writes exactly 29 bytes for years 1970..=9999, which the
    // clamp guarantees; a short write would leave the epoch's text, never
    // a torn value.
    let _ = write!(&mut out[..], "{}", httpdate::HttpDate::from(t));
    out
}
