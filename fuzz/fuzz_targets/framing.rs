//! Fuzz the HTTP/1.1 request framing state machine (src/http/request.rs).
//!
//! Input layout: byte 0 sets the head cap (64 + 32·b bytes), byte 1 the
//! body limit (KiB), bytes 2..8 the sizes of the pieces (1..=64, cycled);
//! the rest is the byte stream, fed whole and in those pieces. Invariants:
//! - no panic;
//! - the pieces produce exactly the bytes and totals of the whole feed;
//! - never more 200 responses than request heads that could be complete
//!   (each needs at least one "\n\n"-like terminator, so ≤ count of LF);
//! - the framer never buffers more than the head cap.
#![no_main]

use libfuzzer_sys::fuzz_target;
use okring::http::{Framer, Limits, Responder};

fuzz_target!(|data: &[u8]| {
    if data.len() < 8 {
        return;
    }
    let (ctl, input) = data.split_at(8);
    let limits = Limits {
        max_head_bytes: 64 + usize::from(ctl[0]) * 32,
        max_body_bytes: u64::from(ctl[1]) * 1024,
    };
    let resp = Responder::new(b"OK");

    let mut whole = Framer::new();
    let mut out_whole = Vec::new();
    let fw = whole.feed(input, &limits, &resp, &mut out_whole);
    assert!(whole.buffered_len() <= limits.max_head_bytes);

    let mut split = Framer::new();
    let mut out_split = Vec::new();
    let (mut responses, mut close) = (0u32, false);
    let mut rest = input;
    let mut k = 0;
    while !rest.is_empty() {
        let n = (usize::from(ctl[2 + k % 6]) % 64 + 1).min(rest.len());
        let (piece, tail) = rest.split_at(n);
        let f = split.feed(piece, &limits, &resp, &mut out_split);
        assert!(split.buffered_len() <= limits.max_head_bytes);
        responses += f.responses;
        close |= f.close;
        rest = tail;
        k += 1;
    }
    assert_eq!(out_whole, out_split, "a split changed the responses");
    assert_eq!(fw.responses, responses);
    assert_eq!(fw.close, close);
    let lf = input.iter().filter(|&&b| b == b'\n').count() as u32;
    assert!(fw.responses <= lf / 2 + 1, "more responses than possible request heads");
});
