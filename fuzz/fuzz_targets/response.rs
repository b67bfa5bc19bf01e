//! Fuzz the response framer of the load generator (src/http/response.rs).
//!
//! Input layout: byte 0 sets the head cap (64 + 64·b bytes), byte 1 says
//! whether the requests were HEAD (odd), bytes 2..8 the sizes of the
//! pieces (1..=64, cycled); the rest is the byte stream, fed whole and in
//! those pieces the way the load generator feeds it (unconsumed bytes kept
//! and offered again). Invariants:
//! - no panic; never more consumed than offered;
//! - the pieces give exactly the responses (or the error) of the whole feed;
//! - never more final responses than status lines (each needs "HTTP/").
#![no_main]

use libfuzzer_sys::fuzz_target;
use okring::http::response::{FramedResponse, Malformed, ResponseFramer};

fn run(input: &[u8], max_head: usize, head: bool, pieces: &[u8]) -> Result<Vec<FramedResponse>, Malformed> {
    let mut f = ResponseFramer::new(max_head, head);
    let mut out = Vec::new();
    let mut pending = Vec::new();
    let mut rest = input;
    let mut k = 0;
    while !rest.is_empty() {
        let n = if pieces.is_empty() {
            rest.len()
        } else {
            (usize::from(pieces[k % pieces.len()]) % 64 + 1).min(rest.len())
        };
        let (piece, tail) = rest.split_at(n);
        pending.extend_from_slice(piece);
        let used = f.feed(&pending, &mut out)?;
        assert!(used <= pending.len());
        pending.drain(..used);
        rest = tail;
        k += 1;
    }
    if let Some(r) = f.on_eof()? {
        out.push(r);
    }
    Ok(out)
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 8 {
        return;
    }
    let (ctl, input) = data.split_at(8);
    let max_head = 64 + usize::from(ctl[0]) * 64;
    let head = ctl[1] & 1 == 1;
    let whole = run(input, max_head, head, &[]);
    let split = run(input, max_head, head, &ctl[2..8]);
    assert_eq!(whole, split, "a split changed the framing");
    if let Ok(rs) = whole {
        let lines = input.windows(5).filter(|w| w == b"HTTP/").count();
        assert!(rs.len() <= lines, "more responses than status lines");
    }
});
