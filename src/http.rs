//! HTTP/1.1 request framing and the fixed response — pure, no I/O.
//!
//! INTERFACE STUB: the implementation is being written; signatures are the
//! contract every mode codes against.

use std::time::SystemTime;

/// Limits applied while framing (http-behaviour.md, "Framing").
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Cap on the request head (request line + header section), bytes.
    /// Over it: 414 if the request line alone exceeds it, else 431; close.
    pub max_head_bytes: usize,
    /// Largest request body (Content-Length or sum of chunk sizes) that is
    /// read and discarded, bytes. Over it: 413 and close.
    pub max_body_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_head_bytes: 8192,
            max_body_bytes: 64 << 20,
        }
    }
}

/// Status codes okring can answer with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Status {
    Ok200,
    BadRequest400,
    PayloadTooLarge413,
    UriTooLong414,
    HeaderFieldsTooLarge431,
    NotImplemented501,
}

/// Pre-built response bytes with a cached `Date` header.
pub struct Responder {
    _private: (),
}

impl Responder {
    /// Build every response variant for `body` with the current date.
    pub fn new(_body: &[u8]) -> Self {
        unimplemented!()
    }
    /// Refresh the cached `Date` if the wall-clock second changed. Cheap.
    pub fn refresh_date(&mut self, _now: SystemTime) {}
}

/// What one call to [`Framer::feed`] produced.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Fed {
    /// Responses appended to `out` by this call.
    pub responses: u32,
    /// Of those, how many were errors (non-200).
    pub errors: u32,
    /// Close after `out` is sent; ignore any further input.
    pub close: bool,
    /// The error status answered, if any (an error always closes).
    pub error: Option<Status>,
}

/// Per-connection framing state machine.
pub struct Framer {
    _private: (),
}

impl Framer {
    pub fn new() -> Self {
        Framer { _private: () }
    }
    pub fn feed(
        &mut self,
        _input: &[u8],
        _limits: &Limits,
        _resp: &Responder,
        _out: &mut Vec<u8>,
    ) -> Fed {
        unimplemented!()
    }
    pub fn is_idle(&self) -> bool {
        true
    }
}
