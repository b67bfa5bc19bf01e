//! Unit tests and a proptest of [`ResponseFramer`].

use proptest::prelude::*;

use super::*;

/// Feed `input` in pieces cut at `cuts` as a caller does (unconsumed bytes
/// kept and offered again), then EOF; the responses, or the error.
fn frame(
    input: &[u8],
    cuts: &[usize],
    head_requests: bool,
) -> Result<Vec<FramedResponse>, Malformed> {
    let mut f = ResponseFramer::new(8192, head_requests);
    let mut out = Vec::new();
    let mut pending: Vec<u8> = Vec::new();
    let mut at = 0;
    let mut cuts: Vec<usize> = cuts.iter().map(|c| c % (input.len() + 1)).collect();
    cuts.sort_unstable();
    for c in cuts.into_iter().chain([input.len()]) {
        let c = c.max(at);
        pending.extend_from_slice(&input[at..c]);
        at = c;
        let n = f.feed(&pending, &mut out)?;
        pending.drain(..n);
    }
    if let Some(r) = f.on_eof()? {
        out.push(r);
    }
    if !pending.is_empty() && !f.is_closed() {
        return Err(Malformed::Truncated);
    }
    Ok(out)
}

fn r(status: u16, close: bool, body_bytes: u64) -> FramedResponse {
    FramedResponse {
        status,
        close,
        body_bytes,
    }
}

const OK: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nOK";

#[test]
fn content_length_responses_in_a_row() {
    let two = [OK, OK].concat();
    assert_eq!(
        frame(&two, &[], false),
        Ok(vec![r(200, false, 2), r(200, false, 2)])
    );
}

#[test]
fn interim_1xx_responses_are_skipped() {
    let s = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 102 Processing\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nOK";
    assert_eq!(frame(s, &[], false), Ok(vec![r(200, false, 2)]));
}

#[test]
fn chunked_bodies_with_extensions_and_trailers() {
    let s = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n5;a=b;c\r\nhello\r\n1 ; x=\"y\"\r\n!\r\n0\r\nTrailer-A: 1\r\nTrailer-B: 2\r\n\r\n";
    assert_eq!(
        frame(&[&s[..], OK].concat(), &[], false),
        Ok(vec![r(200, false, 6), r(200, false, 2)])
    );
    let bare_lf = b"HTTP/1.1 200 OK\nTransfer-Encoding: chunked\n\n3\nabc\n0\n\n";
    assert_eq!(frame(bare_lf, &[], false), Ok(vec![r(200, false, 3)]));
}

#[test]
fn close_delimited_body_ends_at_eof() {
    let s = b"HTTP/1.0 200 OK\r\n\r\nthe body runs to the close";
    assert_eq!(frame(s, &[], false), Ok(vec![r(200, true, 26)]));
    // Unknown final coding: until close too (RFC 9112 §6.3 item 4).
    let s = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nxyz";
    assert_eq!(frame(s, &[], false), Ok(vec![r(200, true, 3)]));
}

#[test]
fn bodiless_statuses_and_head_requests() {
    let s =
        b"HTTP/1.1 204 No Content\r\nContent-Length: 9\r\n\r\nHTTP/1.1 304 Not Modified\r\n\r\n";
    assert_eq!(
        frame(s, &[], false),
        Ok(vec![r(204, false, 0), r(304, false, 0)])
    );
    let head = b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n";
    assert_eq!(
        frame(head, &[], true),
        Ok(vec![r(200, false, 0), r(200, false, 0)])
    );
}

#[test]
fn connection_and_version_decide_close() {
    let s = b"HTTP/1.1 500 Oops\r\nconnection: Keep-Alive, CLOSE\r\ncontent-length:0\r\n\r\nHTTP/1.1 200 OK\r\n\r\n";
    assert_eq!(
        frame(s, &[], false),
        Ok(vec![r(500, true, 0)]),
        "nothing after a close is framed"
    );
    let s = b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n";
    assert_eq!(frame(s, &[], false), Ok(vec![r(200, false, 0)]));
    let s = b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n";
    assert_eq!(frame(s, &[], false), Ok(vec![r(200, true, 0)]));
}

#[test]
fn malformed_streams_are_named() {
    let cases: &[(&[u8], Malformed)] = &[
        (b"HTTX/1.1 200 OK\r\n\r\n", Malformed::Head),
        (b"HTTP/1.1 2x0 OK\r\n\r\n", Malformed::Head),
        (b"HTTP/1.1 200 OK\r\nno colon\r\n\r\n", Malformed::Head),
        (
            b"HTTP/1.1 200 OK\r\nContent-Length: 1x\r\n\r\n",
            Malformed::ContentLength,
        ),
        (
            b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
            Malformed::ContentLength,
        ),
        (
            b"HTTP/1.1 200 OK\r\nContent-Length: 1, 2\r\n\r\n",
            Malformed::ContentLength,
        ),
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
            Malformed::Chunk,
        ),
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3 x\r\nabc\r\n",
            Malformed::Chunk,
        ),
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcd\r\n",
            Malformed::Chunk,
        ),
        (
            b"HTTP/1.1 101 Switching Protocols\r\n\r\n",
            Malformed::Upgrade,
        ),
        (
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nab",
            Malformed::Truncated,
        ),
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab",
            Malformed::Truncated,
        ),
    ];
    for (input, want) in cases {
        assert_eq!(
            frame(input, &[], false),
            Err(*want),
            "{:?}",
            String::from_utf8_lossy(input)
        );
    }
}

#[test]
fn a_head_longer_than_the_limit_is_too_long() {
    let mut f = ResponseFramer::new(64, false);
    let mut out = Vec::new();
    let long = [&b"HTTP/1.1 200 OK\r\nX: "[..], &[b'a'; 100]].concat();
    assert_eq!(f.feed(&long, &mut out), Err(Malformed::TooLong));
}

#[test]
fn an_over_long_head_is_too_long_however_it_is_split() {
    // A syntax error past the head cap: only the first `max_head` bytes
    // decide (a fuzzer found whole → Head, split → TooLong).
    let input = [&b"HTTP/1.1 200 OK\r\nX: "[..], &[b'a'; 80], b"\x01\r\n\r\n"].concat();
    for cuts in [&[][..], &[30], &[10, 50, 90]] {
        let mut f = ResponseFramer::new(64, false);
        let (mut out, mut pending) = (Vec::new(), Vec::new());
        let mut at = 0;
        let mut res = Ok(0);
        for &c in cuts.iter().chain([&input.len()]) {
            pending.extend_from_slice(&input[at..c]);
            at = c;
            res = f.feed(&pending, &mut out);
            match res {
                Ok(n) => drop(pending.drain(..n)),
                Err(_) => break,
            }
        }
        assert_eq!(res, Err(Malformed::TooLong), "cuts {cuts:?}");
    }
}

#[test]
fn every_proper_prefix_of_a_head_consumes_nothing() {
    let head_len = OK.len() - 2;
    for n in 0..head_len {
        let mut f = ResponseFramer::new(8192, false);
        let mut out = Vec::new();
        assert_eq!(f.feed(&OK[..n], &mut out), Ok(0), "prefix {n}");
        assert!(out.is_empty());
    }
}

fn response() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        Just(OK.to_vec()),
        Just(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nServer: x\r\n\r\n".to_vec()),
        Just(b"HTTP/1.1 100 Continue\r\n\r\n".to_vec()),
        Just(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4;e=1\r\nwiki\r\n0\r\nT: v\r\n\r\n".to_vec()),
        Just(b"HTTP/1.1 204 No Content\r\n\r\n".to_vec()),
        (0usize..300).prop_map(|n| {
            [format!("HTTP/1.1 200 OK\r\nContent-Length: {n}\r\n\r\n").as_bytes(), &vec![b'x'; n]].concat()
        }),
    ]
}

proptest! {
    /// Any split of a valid stream gives the same responses as feeding it
    /// whole; a close-delimited last response ends at EOF.
    #[test]
    fn any_split_gives_the_same_responses(
        resps in proptest::collection::vec(response(), 1..8),
        close_delimited_tail in proptest::bool::ANY,
        cuts in proptest::collection::vec(0usize..4096, 0..16),
    ) {
        let mut input = resps.concat();
        if close_delimited_tail {
            input.extend_from_slice(b"HTTP/1.1 200 OK\r\n\r\ntail bytes");
        }
        let whole = frame(&input, &[], false);
        prop_assert!(whole.is_ok(), "{:?}", whole);
        prop_assert_eq!(&whole, &frame(&input, &cuts, false));
        let finals = resps.iter().filter(|r| !r.starts_with(b"HTTP/1.1 100")).count()
            + usize::from(close_delimited_tail);
        prop_assert_eq!(whole.unwrap().len(), finals);
    }

    #[test]
    fn never_panics_on_any_bytes(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..400), cuts in proptest::collection::vec(0usize..400, 0..6)) {
        let _ = frame(&bytes, &cuts, false);
    }
}
