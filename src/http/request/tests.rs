//! Unit tests and proptests of the request framer, the responder and the date.
use std::time::UNIX_EPOCH;

use super::super::responder::CONNS;
use super::*;
use proptest::prelude::*;
use std::time::Duration;

const V01: &[u8] = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n";
/// Sun, 06 Nov 1994 08:49:37 GMT (RFC 9110 §5.6.7's example).
const RFC_EXAMPLE_UNIX_S: u64 = 784_111_777;

fn responder() -> Responder {
    let mut r = Responder::new(b"OK");
    r.refresh_date(UNIX_EPOCH + Duration::from_secs(RFC_EXAMPLE_UNIX_S));
    r
}

/// Everything a sequence of feeds produced, summed.
#[derive(Debug, PartialEq, Eq)]
struct Run {
    out: Vec<u8>,
    responses: u32,
    errors: u32,
    close: bool,
    error: Option<Status>,
    idle: bool,
}

fn run_pieces<'a>(pieces: impl IntoIterator<Item = &'a [u8]>, limits: &Limits) -> Run {
    let r = responder();
    let mut f = Framer::new();
    let mut run = Run {
        out: Vec::new(),
        responses: 0,
        errors: 0,
        close: false,
        error: None,
        idle: true,
    };
    for piece in pieces {
        let fed = f.feed(piece, limits, &r, &mut run.out);
        assert!(f.buffered_len() <= limits.max_head_bytes);
        assert!(
            f.buf.capacity() <= limits.max_head_bytes,
            "memory stays under the cap"
        );
        assert!(fed.errors <= 1 && fed.errors <= fed.responses);
        assert_eq!(fed.error.is_some(), fed.errors == 1);
        if run.close {
            assert_eq!(
                fed,
                Fed {
                    close: true,
                    ..Fed::default()
                }
            );
        }
        run.responses += fed.responses;
        run.errors += fed.errors;
        run.close |= fed.close;
        run.error = run.error.or(fed.error);
    }
    run.idle = f.is_idle();
    run
}

/// Feed `input` whole, byte by byte, and split in two at every byte
/// boundary (every `stride`-th for long inputs); all must agree.
fn run_all_splits(input: &[u8], limits: &Limits) -> Run {
    let whole = run_pieces([input], limits);
    assert_eq!(run_pieces(input.chunks(1), limits), whole, "byte by byte");
    let stride = (input.len() / 1500).max(1);
    for k in (1..input.len()).step_by(stride) {
        let (a, b) = input.split_at(k);
        assert_eq!(run_pieces([a, b], limits), whole, "split at {k}");
    }
    whole
}

fn ok(head: bool, conn: ConnHeader) -> Vec<u8> {
    responder().bytes(Status::Ok200, head, conn).to_vec()
}

fn err(status: Status) -> Vec<u8> {
    responder().bytes(status, false, ConnHeader::Close).to_vec()
}

fn oks(n: usize) -> Vec<u8> {
    ok(false, ConnHeader::None).repeat(n)
}

/// `input` gets `expected` and stays open: a following V01 gets OK.
fn expect_open(input: &[u8], expected: &[u8], responses: u32) {
    let limits = Limits::default();
    let run = run_all_splits(input, &limits);
    assert_eq!(
        String::from_utf8_lossy(&run.out),
        String::from_utf8_lossy(expected)
    );
    assert_eq!(
        (run.responses, run.errors, run.close),
        (responses, 0, false)
    );
    assert!(run.idle, "a complete request leaves the framer idle");
    let then = run_pieces([input, V01], &limits);
    assert_eq!(then.out, [expected, &oks(1)].concat());
}

/// `input` gets `expected`, then the connection closes and a
/// following V01 is ignored.
fn expect_close(input: &[u8], expected: &[u8], error: Option<Status>) {
    let limits = Limits::default();
    let run = run_all_splits(input, &limits);
    assert_eq!(
        String::from_utf8_lossy(&run.out),
        String::from_utf8_lossy(expected)
    );
    assert!(run.close);
    assert_eq!(run.error, error);
    assert_eq!(run.errors, u32::from(error.is_some()));
    assert_eq!(run_pieces([input, V01], &limits).out, expected);
}

fn expect_error(input: &[u8], status: Status) {
    expect_close(input, &err(status), Some(status));
}

#[test]
fn v01_v02_simple_gets() {
    expect_open(V01, &oks(1), 1);
    expect_open(
        b"GET /x?y=1 HTTP/1.1\r\nHost: a\r\nUser-Agent: t\r\nAccept: */*\r\n\r\n",
        &oks(1),
        1,
    );
}

#[test]
fn v03_v04_pipelined() {
    expect_open(&V01.repeat(16), &oks(16), 16);
    expect_open(&V01.repeat(1024), &oks(1024), 1024);
}

#[test]
fn v05_leading_empty_line() {
    expect_open(b"\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", &oks(1), 1);
}

#[test]
fn v06_v07_http10() {
    expect_close(
        b"GET / HTTP/1.0\r\nHost: a\r\n\r\n",
        &ok(false, ConnHeader::Close),
        None,
    );
    // No Host is fine in HTTP/1.0 (RFC 9112 §3.2 binds HTTP/1.1).
    expect_close(
        b"GET / HTTP/1.0\r\n\r\n",
        &ok(false, ConnHeader::Close),
        None,
    );
    let keep = ok(false, ConnHeader::KeepAlive);
    assert!(String::from_utf8_lossy(&keep).contains("\r\nConnection: keep-alive\r\n"));
    expect_open(
        b"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\nHost: a\r\n\r\n",
        &keep,
        1,
    );
}

#[test]
fn v08_v09_connection_close_lists() {
    let close = ok(false, ConnHeader::Close);
    assert!(String::from_utf8_lossy(&close).contains("\r\nConnection: close\r\n"));
    expect_close(
        b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
        &close,
        None,
    );
    expect_close(
        b"GET / HTTP/1.1\r\nHost: a\r\nConnection: TE, Close\r\n\r\n",
        &close,
        None,
    );
    expect_close(
        b"GET / HTTP/1.1\r\nHost: a\r\nConnection: ,\t cLoSe ,\r\n\r\n",
        &close,
        None,
    );
    // Options spread over two Connection fields form one list.
    expect_close(
        b"GET / HTTP/1.0\r\nConnection: keep-alive\r\nConnection: upgrade, close\r\n\r\n",
        &close,
        None,
    );
    // Tokens are compared whole, not as prefixes.
    expect_open(
        b"GET / HTTP/1.1\r\nHost: a\r\nConnection: closed\r\n\r\n",
        &oks(1),
        1,
    );
    expect_open(
        b"GET / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive\r\n\r\n",
        &oks(1),
        1,
    );
    // Pipelined requests after the one that closes are not answered.
    let input = [
        V01,
        b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
        V01,
    ]
    .concat();
    expect_close(&input, &[oks(1), close].concat(), None);
}

#[test]
fn v10_head() {
    let r = responder();
    let get = r.bytes(Status::Ok200, false, ConnHeader::None);
    let head = r.bytes(Status::Ok200, true, ConnHeader::None);
    assert_eq!(head, &get[..get.len() - 2], "same head, no body");
    expect_open(b"HEAD / HTTP/1.1\r\nHost: a\r\n\r\n", head, 1);
}

#[test]
fn v11_content_length_body_then_request() {
    expect_open(
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabcGET / HTTP/1.1\r\nHost: a\r\n\r\n",
        &oks(2),
        2,
    );
}

#[test]
fn v12_one_mib_body_over_many_feeds() {
    let limits = Limits::default();
    let head = b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1048576\r\n\r\n";
    let body = vec![b'z'; 1 << 20];
    let mut pieces: Vec<&[u8]> = vec![head];
    pieces.extend(body.chunks(64 << 10));
    pieces.push(V01);
    let run = run_pieces(pieces.iter().copied(), &limits);
    assert_eq!((run.out, run.responses, run.close), (oks(2), 2, false));
    let whole = [&head[..], &body, V01].concat();
    assert_eq!(run_pieces(whole.chunks(1), &limits).out, oks(2));
    assert_eq!(run_pieces([&whole[..]], &limits).out, oks(2));
    // Mid-body the framer is not idle: the header timeout applies.
    let mid = run_pieces([&head[..], &body[..10]], &limits);
    assert!(!mid.idle && mid.responses == 0);
}

#[test]
fn v13_v14_chunked() {
    let te = b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n";
    expect_open(
        &[te, &b"5\r\nhello\r\n0\r\n\r\n"[..], V01].concat(),
        &oks(2),
        2,
    );
    // Chunk data that looks like a request is never parsed as one.
    expect_open(
        &[
            te,
            &b"1c\r\nGET /s HTTP/1.1\r\nHost: a\r\n\r\n\r\n0\r\n\r\n"[..],
        ]
        .concat(),
        &oks(1),
        1,
    );
}

#[test]
fn chunked_extensions_trailers_and_line_ends() {
    let te = b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip;q=1 ,chunked\r\n\r\n";
    expect_error(&[te, &b"0\r\n\r\n"[..]].concat(), Status::NotImplemented501);
    let te = b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: Chunked\r\n\r\n";
    for body in [
        &b"5;name=value;x=\"q;d\"\r\nhello\r\n0\r\n\r\n"[..],
        b"5 ; ext\r\nhello\r\n00000\r\nTrailer-A: 1\r\nTrailer-B: 2\r\n\r\n",
        b"A\r\n0123456789\r\nf\r\n0123456789abcde\r\n0;last\r\n\r\n",
        b"5\nhello\n0\n\n",
        b"3\r\nabc\r\n0\r\nT: v\n\r\n",
    ] {
        expect_open(&[te, body, V01].concat(), &oks(2), 2);
    }
    for body in [
        &b"\r\n"[..],     // no chunk-size digits
        b";ext\r\n",      // extension without a size
        b"5x\r\n",        // junk after the size
        b"5\rX",          // CR not followed by LF
        b"5\r\nhelloX",   // data not followed by CRLF
        b"5\r\nhello\rX", // CR after data not followed by LF
        b"0\r\n\rX",      // CR on the final line not followed by LF
        b"5;\x01\r\n",    // control byte in an extension
    ] {
        expect_error(&[te, body].concat(), Status::BadRequest400);
    }
}

#[test]
fn chunked_limits() {
    let limits = Limits {
        max_head_bytes: 128,
        max_body_bytes: 100,
    };
    let te = b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n";
    let body_ok = [
        &te[..],
        b"32\r\n",
        &[b'x'; 50],
        b"\r\n32\r\n",
        &[b'x'; 50],
        b"\r\n0\r\n\r\n",
    ]
    .concat();
    assert_eq!(run_all_splits(&body_ok, &limits).responses, 1);
    // The cumulative size crosses the limit on the second chunk's digits.
    let over = [&te[..], b"32\r\n", &[b'x'; 50], b"\r\n33\r\n"].concat();
    let run = run_all_splits(&over, &limits);
    assert_eq!(
        (run.error, run.close),
        (Some(Status::PayloadTooLarge413), true)
    );
    // Refused at the digit that crosses the limit, before any line end.
    let run = run_all_splits(&[&te[..], b"65"].concat(), &limits);
    assert_eq!(run.error, Some(Status::PayloadTooLarge413));
    // A size that overflows u64 with the largest possible limit.
    let huge = Limits {
        max_body_bytes: u64::MAX,
        ..limits
    };
    let run = run_all_splits(&[&te[..], &[b'f'; 17][..]].concat(), &huge);
    assert_eq!(run.error, Some(Status::PayloadTooLarge413));
    // Endless leading zeros or extensions are cut at max_head_bytes.
    let run = run_all_splits(&[&te[..], &[b'0'; 200][..]].concat(), &limits);
    assert_eq!(run.error, Some(Status::BadRequest400));
    let run = run_all_splits(&[&te[..], b"1;", &[b'e'; 200][..]].concat(), &limits);
    assert_eq!(run.error, Some(Status::BadRequest400));
    let trailers = [&te[..], b"0\r\n", &b"T: v\r\n".repeat(30)].concat();
    let run = run_all_splits(&trailers, &limits);
    assert_eq!(run.error, Some(Status::HeaderFieldsTooLarge431));
}

#[test]
fn v15_both_length_and_chunked() {
    let head =
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n";
    expect_error(&[&head[..], b"hello"].concat(), Status::BadRequest400);
    // Decided at the end of the head, without waiting for the body.
    let run = run_pieces([&head[..]], &Limits::default());
    assert_eq!(run.error, Some(Status::BadRequest400));
}

#[test]
fn v16_v17_invalid_content_length() {
    for v in [
        &b"-5"[..],
        b"99999999999999999999",
        b"18446744073709551616",
        b"+5",
        b"5 5",
        b"0x10",
        b"",
        b"5,",
        b"5, 6",
    ] {
        let req = [
            &b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: "[..],
            v,
            b"\r\n\r\n",
        ]
        .concat();
        expect_error(&req, Status::BadRequest400);
    }
    expect_error(
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
        Status::BadRequest400,
    );
    // Identical repeated values are one valid length (RFC 9110 §8.6).
    expect_open(
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3, 3\r\ncontent-length: 003\r\n\r\nabc",
        &oks(1),
        1,
    );
    expect_open(
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n",
        &oks(1),
        1,
    );
}

#[test]
fn content_length_limit() {
    let limits = Limits {
        max_head_bytes: 8192,
        max_body_bytes: 10,
    };
    let at = b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\n0123456789";
    assert_eq!(run_all_splits(at, &limits).out, oks(1));
    let over = b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 11\r\n\r\n";
    let run = run_all_splits(over, &limits);
    assert_eq!(run.out, err(Status::PayloadTooLarge413));
    assert!(run.close);
}

#[test]
fn transfer_coding_policy() {
    let req = |te: &str, v: &str| {
        format!("POST / HTTP/{v}\r\nHost: a\r\nTransfer-Encoding: {te}\r\n\r\n0\r\n\r\n")
    };
    expect_error(
        req("chunked, gzip", "1.1").as_bytes(),
        Status::BadRequest400,
    );
    expect_error(
        req("chunked, chunked", "1.1").as_bytes(),
        Status::BadRequest400,
    );
    expect_error(req("gzip", "1.1").as_bytes(), Status::BadRequest400);
    expect_error(req(",", "1.1").as_bytes(), Status::BadRequest400);
    expect_error(
        req("gzip, chunked", "1.1").as_bytes(),
        Status::NotImplemented501,
    );
    expect_error(req("chunked", "1.0").as_bytes(), Status::BadRequest400);
    expect_error(
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: gzip\r\n\r\n",
        Status::BadRequest400,
    );
    expect_open(req(" chunked ,", "1.1").as_bytes(), &oks(1), 1);
}

#[test]
fn host_rules() {
    expect_error(b"GET / HTTP/1.1\r\n\r\n", Status::BadRequest400);
    expect_error(
        b"GET / HTTP/1.1\r\nHost: a\r\nhost: b\r\n\r\n",
        Status::BadRequest400,
    );
    expect_open(b"GET / HTTP/1.1\r\nhOST: a\r\n\r\n", &oks(1), 1);
}

#[test]
fn expect_continue() {
    let req = b"POST / HTTP/1.1\r\nHost: a\r\nExpect: 100-Continue\r\nContent-Length: 2\r\n\r\nab";
    expect_open(req, &[CONTINUE_100, &oks(1)].concat(), 1);
    // Interim response right after the head, before the body arrives.
    let head = &req[..req.len() - 2];
    assert_eq!(run_pieces([head], &Limits::default()).out, CONTINUE_100);
    // Not for a request without a body, nor for HTTP/1.0.
    expect_open(
        b"GET / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\n\r\n",
        &oks(1),
        1,
    );
    expect_close(
        b"POST / HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\nx",
        &ok(false, ConnHeader::Close),
        None,
    );
}

#[test]
fn v18_huge_chunk_size() {
    expect_error(
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n80000000\r\n",
        Status::PayloadTooLarge413,
    );
}

#[test]
fn v19_v20_head_caps() {
    let long_uri = [
        &b"GET /"[..],
        &[b'a'; 9000],
        b" HTTP/1.1\r\nHost: a\r\n\r\n",
    ]
    .concat();
    expect_error(&long_uri, Status::UriTooLong414);
    let big = [
        &b"GET / HTTP/1.1\r\nHost: a\r\nX-Big: "[..],
        &[b'x'; 9000],
        b"\r\n\r\n",
    ]
    .concat();
    expect_error(&big, Status::HeaderFieldsTooLarge431);
}

#[test]
fn v21_endless_head_is_cut_at_the_cap() {
    let limits = Limits::default();
    let mut stream = b"GET / HTTP/1.1\r\nHost: a\r\n".to_vec();
    while stream.len() < 1 << 20 {
        // Long fields, so the byte cap is reached before MAX_HEADERS.
        stream.extend_from_slice(b"X-Filler: ");
        stream.extend_from_slice(&[b'v'; 200]);
        stream.extend_from_slice(b"\r\n");
    }
    let r = responder();
    let mut f = Framer::new();
    let mut out = Vec::new();
    for (i, b) in stream.iter().enumerate() {
        let fed = f.feed(std::slice::from_ref(b), &limits, &r, &mut out);
        assert!(f.buffered_len() <= limits.max_head_bytes);
        assert!(
            f.buf.capacity() <= limits.max_head_bytes,
            "memory stays under the cap"
        );
        if i < limits.max_head_bytes {
            assert_eq!(fed, Fed::default(), "byte {i}");
        } else {
            // Answered at the first byte past the cap, not later.
            assert_eq!(fed.error, Some(Status::HeaderFieldsTooLarge431), "byte {i}");
            break;
        }
    }
    assert_eq!(out, err(Status::HeaderFieldsTooLarge431));
    assert_eq!(f.buffered_len(), 0, "buffer released on close");
    for piece in [&stream[..], &stream[..limits.max_head_bytes + 1]] {
        let run = run_pieces(piece.chunks(4096), &limits);
        assert_eq!(run.error, Some(Status::HeaderFieldsTooLarge431));
    }
}

#[test]
fn cap_boundaries() {
    let limits = Limits {
        max_head_bytes: 64,
        max_body_bytes: 0,
    };
    let pad = |total: usize| {
        let base = b"GET / HTTP/1.1\r\nHost: a\r\nX: \r\n\r\n";
        let mut v = base[..base.len() - 4].to_vec();
        v.resize(total - 4, b'x');
        v.extend_from_slice(b"\r\n\r\n");
        v
    };
    assert_eq!(run_all_splits(&pad(64), &limits).out, oks(1));
    assert_eq!(
        run_all_splits(&[pad(64), pad(64)].concat(), &limits).out,
        oks(2)
    );
    let run = run_all_splits(&pad(65), &limits);
    assert_eq!(run.error, Some(Status::HeaderFieldsTooLarge431));
    // A request line whose LF is the 64th byte fits; the head does not.
    let mut line = b"GET /".to_vec();
    line.resize(64 - b" HTTP/1.1\r\n".len(), b'a');
    line.extend_from_slice(b" HTTP/1.1\r\n");
    let run = run_all_splits(&[&line[..], b"Host: a\r\n\r\n"].concat(), &limits);
    assert_eq!(run.error, Some(Status::HeaderFieldsTooLarge431));
    // One byte longer and the request line itself is over the cap.
    line.insert(5, b'a');
    let run = run_all_splits(&[&line[..], b"Host: a\r\n\r\n"].concat(), &limits);
    assert_eq!(run.error, Some(Status::UriTooLong414));
    // Nothing but empty lines up to the cap is not a request.
    let run = run_all_splits(&b"\r\n".repeat(40), &limits);
    assert_eq!(run.error, Some(Status::BadRequest400));
    // A head that fits exactly and was buffered across feeds.
    let run = run_pieces([&pad(64)[..63], &pad(64)[63..]], &limits);
    assert_eq!(run.out, oks(1));
}

#[test]
fn header_count_limit() {
    let limits = Limits {
        max_head_bytes: 1 << 16,
        max_body_bytes: 0,
    };
    let req = |n: usize| {
        let mut v = b"GET / HTTP/1.1\r\nHost: a\r\n".to_vec();
        for i in 1..n {
            v.extend_from_slice(format!("X-{i}: v\r\n").as_bytes());
        }
        v.extend_from_slice(b"\r\n");
        v
    };
    assert_eq!(run_pieces([&req(MAX_HEADERS)[..]], &limits).out, oks(1));
    let run = run_all_splits(&req(MAX_HEADERS + 1), &limits);
    assert_eq!(run.error, Some(Status::HeaderFieldsTooLarge431));
}

#[test]
fn v22_garbage() {
    expect_error(b"GARBAGE\r\n\r\n", Status::BadRequest400);
    // Decided as soon as the bytes cannot start a request.
    let run = run_pieces([&b"GET /\x01"[..]], &Limits::default());
    assert_eq!(run.error, Some(Status::BadRequest400));
    for bad in [
        &b"GET / HTTP/1.10\r\nHost: a\r\n\r\n"[..],
        b"GET / HTTP/1\r\nHost: a\r\n\r\n",
        b"GET / HTTPS/1.1\r\nHost: a\r\n\r\n",
        b"GET /\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost : a\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\r\n folded\r\n\r\n",
        b"\rGET / HTTP/1.1\r\nHost: a\r\n\r\n",
    ] {
        expect_error(bad, Status::BadRequest400);
    }
    // A request line of another major version is a 505 (RFC 9110 §15.6.6).
    for other in [
        &b"GET / HTTP/2.0\r\nHost: a\r\n\r\n"[..],
        b"GET / HTTP/0.9\r\n\r\n",
    ] {
        expect_error(other, Status::VersionNotSupported505);
    }
    // An error on a HEAD request is sent without a body.
    let r = responder();
    let head_400 = r.bytes(Status::BadRequest400, true, ConnHeader::Close);
    let run = run_all_splits(b"HEAD / HTTP/1.1\r\n\r\n", &Limits::default());
    assert_eq!(run.out, head_400);
}

#[test]
fn v23_bare_lf() {
    expect_open(b"GET / HTTP/1.1\nHost: a\n\n", &oks(1), 1);
}

#[test]
fn v24_to_v28_partial_and_idle() {
    expect_open(&V01.repeat(2), &oks(2), 2);
    assert!(Framer::new().is_idle(), "V27: a new connection is idle");
    let run = run_pieces([&b"GET / HTT"[..]], &Limits::default());
    assert_eq!(
        (run.responses, run.close, run.idle),
        (0, false, false),
        "V26"
    );
    let run = run_pieces([&b"GET / HTTP/1.1\r\n"[..], b"H"], &Limits::default());
    assert!(!run.idle && run.responses == 0, "V28");
    let run = run_pieces([V01, b"\r\n"], &Limits::default());
    assert!(!run.idle, "a leading empty line starts the next request");
}

#[test]
fn responses_are_well_formed() {
    let r = responder();
    for status in Status::ALL {
        for head in [false, true] {
            for conn in CONNS {
                let bytes = r.bytes(status, head, conn);
                let mut headers = [httparse::EMPTY_HEADER; 8];
                let mut p = httparse::Response::new(&mut headers);
                let n = match p.parse(bytes) {
                    Ok(httparse::Status::Complete(n)) => n,
                    other => panic!("{status:?}: {other:?}"),
                };
                assert_eq!(p.code, Some(status.code()));
                assert_eq!(p.reason, Some(status.reason()));
                let get = |name: &str| {
                    p.headers
                        .iter()
                        .find(|h| h.name == name)
                        .map(|h| h.value.to_vec())
                };
                assert_eq!(
                    get("Date").as_deref(),
                    Some(&b"Sun, 06 Nov 1994 08:49:37 GMT"[..])
                );
                assert_eq!(get("Content-Type").as_deref(), Some(&b"text/plain"[..]));
                let body_len = if status == Status::Ok200 {
                    2
                } else {
                    status.reason().len() + 1
                };
                let cl = get("Content-Length").unwrap();
                assert_eq!(cl, body_len.to_string().as_bytes());
                assert_eq!(bytes.len() - n, if head { 0 } else { body_len });
                let expect_conn = match (status, conn) {
                    (Status::Ok200, ConnHeader::None) => None,
                    (Status::Ok200, ConnHeader::KeepAlive) => Some(&b"keep-alive"[..]),
                    _ => Some(&b"close"[..]),
                };
                assert_eq!(get("Connection").as_deref(), expect_conn);
            }
        }
    }
    assert_eq!(
        r.ok_len(),
        r.bytes(Status::Ok200, false, ConnHeader::None).len()
    );
    assert!(r
        .bytes(Status::Ok200, false, ConnHeader::None)
        .ends_with(b"\r\n\r\nOK"));
    assert_eq!(r.body_len(), 2);
    // An empty body: Content-Length 0, and GET and HEAD send the same bytes.
    let empty = Responder::new(b"");
    let get = empty.bytes(Status::Ok200, false, ConnHeader::None);
    assert!(get.ends_with(b"\r\nContent-Length: 0\r\n\r\n"));
    assert_eq!(get, empty.bytes(Status::Ok200, true, ConnHeader::None));
}

#[test]
fn date_known_values() {
    for (secs, want) in [
        (0, "Thu, 01 Jan 1970 00:00:00 GMT"),
        (RFC_EXAMPLE_UNIX_S, "Sun, 06 Nov 1994 08:49:37 GMT"),
        (951_782_400, "Tue, 29 Feb 2000 00:00:00 GMT"),
        (1_234_567_890, "Fri, 13 Feb 2009 23:31:30 GMT"),
        (1_709_164_800, "Thu, 29 Feb 2024 00:00:00 GMT"),
        (4_102_444_800, "Fri, 01 Jan 2100 00:00:00 GMT"),
        (253_402_300_799, "Fri, 31 Dec 9999 23:59:59 GMT"),
        (u64::MAX, "Fri, 31 Dec 9999 23:59:59 GMT"),
    ] {
        assert_eq!(
            std::str::from_utf8(&imf_fixdate(secs)).unwrap(),
            want,
            "{secs}"
        );
    }
}

#[test]
fn refresh_date_patches_every_variant() {
    let mut r = responder();
    let before = r.bytes(Status::Ok200, false, ConnHeader::None).to_vec();
    r.refresh_date(UNIX_EPOCH + Duration::from_millis(RFC_EXAMPLE_UNIX_S * 1000 + 999));
    assert_eq!(
        r.bytes(Status::Ok200, false, ConnHeader::None),
        before,
        "same second"
    );
    r.refresh_date(UNIX_EPOCH + Duration::from_secs(1_709_164_800));
    assert_eq!(r.date(), b"Thu, 29 Feb 2024 00:00:00 GMT");
    for status in Status::ALL {
        for head in [false, true] {
            for conn in CONNS {
                let text = String::from_utf8_lossy(r.bytes(status, head, conn)).into_owned();
                assert!(
                    text.contains("\r\nDate: Thu, 29 Feb 2024 00:00:00 GMT\r\n"),
                    "{text}"
                );
            }
        }
    }
    r.refresh_date(UNIX_EPOCH - Duration::from_secs(5));
    assert_eq!(r.date(), b"Thu, 01 Jan 1970 00:00:00 GMT");
}

/// A request that keeps the connection open, and the response it gets.
fn valid_request(kind: u8) -> (Vec<u8>, Vec<u8>) {
    let get = (V01.to_vec(), oks(1));
    match kind % 12 {
        0 => get,
        1 => (
            b"HEAD /h HTTP/1.1\r\nHost: a\r\n\r\n".to_vec(),
            ok(true, ConnHeader::None),
        ),
        2 => (
            b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 7\r\n\r\n\r\n\r\nGET".to_vec(),
            oks(1),
        ),
        3 => (
            b"PUT / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n\
              3;x=y\r\nGET\r\n1\r\n\n\r\n0\r\nT: 1\r\n\r\n"
                .to_vec(),
            oks(1),
        ),
        4 => (
            b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n".to_vec(),
            ok(false, ConnHeader::KeepAlive),
        ),
        5 => (b"\r\nGET / HTTP/1.1\nHost: a\n\n".to_vec(), oks(1)),
        6 => (
            b"POST / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\nx"
                .to_vec(),
            [CONTINUE_100, &oks(1)].concat(),
        ),
        7 => (
            b"OPTIONS * HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n".to_vec(),
            oks(1),
        ),
        8 => (
            b"GET http://a:1/p HTTP/1.1\r\nHost: a:1\r\n\r\n".to_vec(),
            oks(1),
        ),
        9 => (b"GET / HTTP/1.4\r\nHost: 10.0.0.1\r\n\r\n".to_vec(), oks(1)),
        10 => (
            b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n\
              2 ; n = \"v;\\\"\" ; m\r\nhi\r\n0;z=1\r\n\r\n"
                .to_vec(),
            oks(1),
        ),
        _ => get,
    }
}

/// Upper bound on complete requests in `input`: each needs a head that
/// ends in an empty line (`\n\n` or `\n\r\n`).
fn head_ends(input: &[u8]) -> u32 {
    (0..input.len())
        .filter(|&i| {
            input[i] == b'\n'
                && (input.get(i + 1) == Some(&b'\n') || input[i + 1..].starts_with(b"\r\n"))
        })
        .count() as u32
}

fn split_at_cuts<'a>(input: &'a [u8], cuts: &[usize]) -> Vec<&'a [u8]> {
    let mut cuts: Vec<usize> = cuts.iter().map(|c| c % (input.len() + 1)).collect();
    cuts.sort_unstable();
    let mut pieces = Vec::new();
    let mut at = 0;
    for c in cuts {
        pieces.push(&input[at..c]);
        at = c;
    }
    pieces.push(&input[at..]);
    pieces
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn any_split_gives_the_same_output(
        segments in prop::collection::vec(
            prop_oneof![
                3 => any::<u8>().prop_map(|k| valid_request(k).0),
                1 => prop::collection::vec(any::<u8>(), 0..24),
                1 => prop::sample::select(vec![
                    &b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"[..],
                    b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\n",
                    b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n",
                    b"\r\n", b"\n", b"0\r\n\r\n", b"ff\r\n", b"X: y\r\n",
                ]).prop_map(|s| s.to_vec()),
            ],
            0..12,
        ),
        cuts in prop::collection::vec(any::<usize>(), 0..16),
        max_head_bytes in prop_oneof![Just(8192usize), 16usize..200],
        max_body_bytes in prop_oneof![Just(64u64 << 20), 0u64..300],
    ) {
        let input = segments.concat();
        let limits = Limits { max_head_bytes, max_body_bytes };
        let whole = run_pieces([&input[..]], &limits);
        let split = run_pieces(split_at_cuts(&input, &cuts), &limits);
        prop_assert_eq!(&split, &whole);
        prop_assert_eq!(run_pieces(input.chunks(1), &limits), whole);
        // Errors need no complete request; every 200 does.
        prop_assert!(split.responses - split.errors <= head_ends(&input));
    }

    #[test]
    fn valid_pipelines_get_one_response_each(
        kinds in prop::collection::vec(any::<u8>(), 0..24),
        cuts in prop::collection::vec(any::<usize>(), 0..16),
    ) {
        let (reqs, resps): (Vec<_>, Vec<_>) = kinds.iter().map(|&k| valid_request(k)).unzip();
        let input = reqs.concat();
        let run = run_pieces(split_at_cuts(&input, &cuts), &Limits::default());
        prop_assert_eq!(run.out, resps.concat());
        prop_assert_eq!(run.responses as usize, kinds.len());
        prop_assert!(!run.close && run.idle && run.errors == 0);
    }

    #[test]
    fn date_matches_rfc3339(secs in 0u64..253_402_300_800) {
        let rfc3339 = humantime::format_rfc3339(UNIX_EPOCH + Duration::from_secs(secs))
            .to_string();
        let imf = imf_fixdate(secs);
        let imf = std::str::from_utf8(&imf).unwrap();
        const MON: [&str; 12] = [
            "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov",
            "Dec",
        ];
        let month: usize = rfc3339[5..7].parse().unwrap();
        let want = format!(
            "{}, {} {} {} {} GMT",
            &imf[..3],
            &rfc3339[8..10],
            MON[month - 1],
            &rfc3339[..4],
            &rfc3339[11..19],
        );
        prop_assert_eq!(imf, want);
        // Weekday: 1970-01-01 was a Thursday, and weeks have 7 days.
        let wday = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"][(secs / 86_400 % 7) as usize];
        prop_assert_eq!(&imf[..3], wday);
    }
}

#[test]
fn request_heads_read_alone_follow_the_framer_rules() {
    let l = Limits::default();
    assert_eq!(
        read_request_head(b"GET /metrics HTTP/1.1\r\nHo", &l),
        RequestHead::Partial
    );
    assert_eq!(
        read_request_head(b"HEAD /metrics?a=1 HTTP/1.1\r\nHost: x\r\n\r\n", &l),
        RequestHead::Complete {
            method: "HEAD".into(),
            target: "/metrics?a=1".into()
        }
    );
    assert_eq!(
        read_request_head(b"GET / HTTP/1.1\r\n\r\n", &l),
        RequestHead::Invalid(Status::BadRequest400),
        "no Host"
    );
    assert_eq!(
        read_request_head(
            b"GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
            &l
        ),
        RequestHead::Invalid(Status::NotImplemented501)
    );
    let small = Limits {
        max_head_bytes: 64,
        ..Limits::default()
    };
    let long_line = [b"GET /".as_slice(), &[b'a'; 100]].concat();
    assert_eq!(
        read_request_head(&long_line, &small),
        RequestHead::Invalid(Status::UriTooLong414)
    );
    let long_field = [b"GET / HTTP/1.1\r\nX: ".as_slice(), &[b'a'; 100]].concat();
    assert_eq!(
        read_request_head(&long_field, &small),
        RequestHead::Invalid(Status::HeaderFieldsTooLarge431)
    );
}

/// RFC 9112 §3.2: a Host value that is not `uri-host [ ":" port ]` is a
/// 400, in HTTP/1.1 and HTTP/1.0 alike; so is an empty one.
#[test]
fn host_values_follow_the_uri_host_grammar() {
    for good in [
        "a",
        "a:80",
        "a:",
        "example.com:65535",
        "127.0.0.1",
        "127.0.0.1:8080",
        "[::1]",
        "[::1]:8080",
        "[2001:db8::7]:1",
        "[v7.fe80::a+en1]",
        "a-b_c~d.e",
        "%41%42",
        "xn--bcher-kva.example",
        "!$&'()*+,;=",
    ] {
        let req = format!("GET / HTTP/1.1\r\nHost: {good}\r\n\r\n");
        expect_open(req.as_bytes(), &oks(1), 1);
    }
    for bad in [
        &b""[..],
        b"   ",
        b"user@a",
        b"u:p@a:80",
        b"a/b",
        b"a?b",
        b"a#b",
        b"a, b",
        b"a b",
        b"a:8x",
        b"a:99999",
        b"a:-1",
        b"[::1",
        b"[::1]x",
        b"[::1]:x",
        b"[zz::1]",
        b"[v7]",
        b"a\xff",
        b"%4",
        b"%zz",
        b"a:80:80",
        b"\"a\"",
    ] {
        let req = [&b"GET / HTTP/1.1\r\nHost: "[..], bad, b"\r\n\r\n"].concat();
        expect_error(&req, Status::BadRequest400);
        let req10 = [&b"GET / HTTP/1.0\r\nHost: "[..], bad, b"\r\n\r\n"].concat();
        expect_error(&req10, Status::BadRequest400);
    }
}

/// RFC 9112 §3.2: origin-form and absolute-form for any method,
/// asterisk-form for OPTIONS only, authority-form for CONNECT only — and
/// CONNECT is refused (RFC 9110 §9.3.6: a 2xx would make it a tunnel).
#[test]
fn request_target_forms_fit_the_method() {
    let ok_ = |req: &[u8]| expect_open(req, &oks(1), 1);
    ok_(b"OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n");
    ok_(b"GET http://a/x?y HTTP/1.1\r\nHost: a\r\n\r\n");
    ok_(b"GET HTTPS://a:443 HTTP/1.1\r\nHost: other\r\n\r\n");
    ok_(b"OPTIONS / HTTP/1.1\r\nHost: a\r\n\r\n");
    for bad in [
        &b"GET * HTTP/1.1\r\nHost: a\r\n\r\n"[..],
        b"POST * HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n",
        b"GET a:80 HTTP/1.1\r\nHost: a\r\n\r\n",
        b"OPTIONS a:80 HTTP/1.1\r\nHost: a\r\n\r\n",
        b"GET http://u@a/ HTTP/1.1\r\nHost: a\r\n\r\n",
        b"GET http:///x HTTP/1.1\r\nHost: a\r\n\r\n",
        b"GET ftp://a/ HTTP/1.1\r\nHost: a\r\n\r\n",
        b"GET x HTTP/1.1\r\nHost: a\r\n\r\n",
    ] {
        expect_error(bad, Status::BadRequest400);
    }
    for connect in [
        &b"CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n"[..],
        b"CONNECT [::1]:443 HTTP/1.1\r\nHost: [::1]:443\r\n\r\n",
        b"CONNECT / HTTP/1.1\r\nHost: a\r\n\r\n",
    ] {
        expect_error(connect, Status::NotImplemented501);
    }
}

/// RFC 9112 §7.1.1: `chunk-ext = *( BWS ";" BWS name [ BWS "=" BWS val ] )`
/// with a token name and a token or quoted-string value, within
/// `MAX_CHUNK_EXT_BYTES`.
#[test]
fn chunk_extensions_follow_their_grammar() {
    let body = |size_line: &[u8]| {
        [
            &b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"[..],
            size_line,
            b"\r\nhello\r\n0\r\n\r\n",
        ]
        .concat()
    };
    for good in [
        &b"5"[..],
        b"5;a",
        b"5;a=b",
        b"5 ; a = b ; c",
        b"5;a=\"q \\\" x\";b=c",
        b"5;a=\"\"",
        b"5 ",
        b"5;a ",
        b"5\t;\ta\t=\tb",
    ] {
        expect_open(&body(good), &oks(1), 1);
    }
    for bad in [
        &b"5;"[..],
        b"5;=b",
        b"5;a=",
        b"5;a= ",
        b"5;a b",
        b"5;a=b c",
        b"5;a=\"open",
        b"5;a=\"x\"y",
        b"5;a=(b)",
        b"5;\"a\"",
        b"5x",
        b"5;a=b,c",
    ] {
        expect_error(&body(bad), Status::BadRequest400);
    }
    let long = [
        &b"5;a="[..],
        &vec![b'x'; crate::http::syntax::MAX_CHUNK_EXT_BYTES],
    ]
    .concat();
    expect_error(&body(&long), Status::BadRequest400);
    let fits = [
        &b"5;a="[..],
        &vec![b'x'; crate::http::syntax::MAX_CHUNK_EXT_BYTES - 8],
    ]
    .concat();
    expect_open(&body(&fits), &oks(1), 1);
}

/// RFC 9110 §6.2: HTTP/1.x with x > 1 is processed as HTTP/1.1 (keep-alive
/// by default, Host required), whole and split.
#[test]
fn higher_minor_versions_are_served_as_http11() {
    expect_open(b"GET / HTTP/1.2\r\nHost: a\r\n\r\n", &oks(1), 1);
    expect_open(
        b"\r\nGET /x HTTP/1.9\r\nHost: a\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n",
        &oks(2),
        2,
    );
    expect_open(
        b"HEAD / HTTP/1.2\r\nHost: a\r\n\r\n",
        &ok(true, ConnHeader::None),
        1,
    );
    expect_error(b"GET / HTTP/1.2\r\n\r\n", Status::BadRequest400);
    expect_close(
        b"GET / HTTP/1.3\r\nHost: a\r\nConnection: close\r\n\r\n",
        &ok(false, ConnHeader::Close),
        None,
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Hosts built from the grammar are served; the same host with one
    /// byte that no uri-host or port may hold is a 400.
    #[test]
    fn generated_hosts(
        labels in prop::collection::vec("[a-zA-Z0-9]([a-zA-Z0-9-]{0,8}[a-zA-Z0-9])?", 1..4),
        port in prop::option::of(0u32..=65535),
        bad in prop::sample::select(vec![b' ', b'@', b'/', b'?', b'#', b'"', b'<', b'{', 0x80, 0xff]),
        at in any::<prop::sample::Index>(),
    ) {
        let mut host = labels.join(".");
        if let Some(p) = port {
            host += &format!(":{p}");
        }
        let req = format!("GET / HTTP/1.1\r\nHost: {host}\r\n\r\n");
        let run = run_pieces([req.as_bytes()], &Limits::default());
        prop_assert_eq!(run.error, None);
        prop_assert_eq!(run.responses, 1);
        let mut broken = host.into_bytes();
        let i = at.index(broken.len() + 1).min(broken.len());
        // Trailing or leading whitespace is the field's OWS, not the value's.
        let i = if bad == b' ' { (i.max(1)).min(broken.len() - 1).max(1) } else { i };
        if bad == b' ' && broken.len() < 2 {
            return Ok(());
        }
        broken.insert(i, bad);
        let req = [&b"GET / HTTP/1.1\r\nHost: "[..], &broken, b"\r\n\r\n"].concat();
        let run = run_pieces([&req[..]], &Limits::default());
        prop_assert_eq!(run.error, Some(Status::BadRequest400), "{:?}", String::from_utf8_lossy(&broken));
    }
}

/// Found by the fuzzer: the version was taken as the last token of the
/// line so far, so a prefix ending in a space waited for more while a
/// shorter one was already refused. The version is what follows the
/// request-target; every split now decides alike.
#[test]
fn version_is_judged_after_the_target_whatever_the_split() {
    let input = b"m` UU UU\x86\x01 \x00\x05\x01m` UU UU\x86\x01 ";
    let limits = Limits {
        max_head_bytes: 64,
        max_body_bytes: 1024,
    };
    let run = run_all_splits(input, &limits);
    assert_eq!(run.error, Some(Status::BadRequest400));
    for partial in [
        &b"GET / HTTP/1.2\r"[..],
        b"GET / HTTP/2.0\r",
        b"GET / HTTP/1.",
        b"GET / HTTP/",
    ] {
        let run = run_all_splits(partial, &Limits::default());
        assert_eq!(
            run.responses,
            0,
            "{:?} waits for its line end",
            String::from_utf8_lossy(partial)
        );
    }
}
