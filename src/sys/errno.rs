//! [`Errno`]: the one error of the kernel edge's calls, and the classes a
//! loop reacts to. A syscall that returns -1 gives `Errno::last()` (through
//! the `syscall!` wrapper); an io_uring CQE or a `-errno` return gives
//! `Errno::of_result`. Set-up calls hand it on as [`io::Error`] (`From`).

use std::fmt;
use std::io;

/// An errno value (errno(3)), positive.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Errno(pub i32);

impl Errno {
    /// EAGAIN (= EWOULDBLOCK on Linux).
    pub const EAGAIN: Errno = Errno(libc::EAGAIN);
    /// EBUSY: io_uring_enter(2) with a full CQ (reap before submitting).
    pub const EBUSY: Errno = Errno(libc::EBUSY);
    /// ECANCELED: an operation cancelled before it ran.
    pub const ECANCELED: Errno = Errno(libc::ECANCELED);
    /// EINPROGRESS: a nonblocking connect(2) has started.
    pub const EINPROGRESS: Errno = Errno(libc::EINPROGRESS);
    /// EINTR: a signal interrupted the call.
    pub const EINTR: Errno = Errno(libc::EINTR);
    /// EIO, for an error that carries no errno of its own.
    pub const EIO: Errno = Errno(libc::EIO);
    /// ENOSYS: no such system call here (or a seccomp filter says so).
    pub const ENOSYS: Errno = Errno(libc::ENOSYS);
    /// EPERM: not permitted (seccomp, a sysctl, a missing capability).
    pub const EPERM: Errno = Errno(libc::EPERM);

    /// The calling thread's errno, right after a call returned -1.
    pub fn last() -> Errno {
        Errno(
            io::Error::last_os_error()
                .raw_os_error()
                .unwrap_or(libc::EIO),
        )
    }

    /// A result in the kernel's `-errno` convention (an io_uring CQE's
    /// `res`, the load engines' completions): `Ok(res)` when `res >= 0`.
    pub fn of_result(res: i32) -> Result<u32, Errno> {
        if res >= 0 {
            Ok(res as u32)
        } else {
            Err(Errno(-res))
        }
    }

    /// The `-errno` form of this error (what a CQE would carry).
    pub fn as_result(self) -> i32 {
        -self.0
    }

    /// The [`io::ErrorKind`] std maps this errno to.
    pub fn kind(self) -> io::ErrorKind {
        io::Error::from_raw_os_error(self.0).kind()
    }

    /// How an accept failed, as a loop must react (accept4(2), ERRORS).
    pub fn accept_failure(self) -> AcceptFailure {
        match self.0 {
            libc::EAGAIN => AcceptFailure::WouldBlock,
            libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM => AcceptFailure::Exhausted,
            libc::ECANCELED => AcceptFailure::Canceled,
            _ => AcceptFailure::Transient,
        }
    }

    /// How a recv or send on a connection failed, as a loop must react.
    pub fn io_failure(self) -> IoFailure {
        match self.0 {
            libc::EAGAIN | libc::EINTR => IoFailure::Again,
            libc::ENOBUFS => IoFailure::NoBuffers,
            libc::ECANCELED => IoFailure::Canceled,
            _ => IoFailure::Failed(self.kind()),
        }
    }

    /// Whether the peer of a socket is gone: ECONNREFUSED (on a datagram
    /// socket), EPIPE, ECONNRESET.
    pub fn is_peer_gone(self) -> bool {
        matches!(self.0, libc::ECONNREFUSED | libc::EPIPE | libc::ECONNRESET)
    }

    /// The symbolic name (`EFAULT`), or `errno N` for one not listed.
    pub fn name(self) -> String {
        let name = match self.0 {
            libc::EPERM => "EPERM",
            libc::ENOENT => "ENOENT",
            libc::EINTR => "EINTR",
            libc::EIO => "EIO",
            libc::EAGAIN => "EAGAIN",
            libc::ENOMEM => "ENOMEM",
            libc::EACCES => "EACCES",
            libc::EFAULT => "EFAULT",
            libc::EBUSY => "EBUSY",
            libc::EEXIST => "EEXIST",
            libc::EINVAL => "EINVAL",
            libc::ENFILE => "ENFILE",
            libc::EMFILE => "EMFILE",
            libc::EPIPE => "EPIPE",
            libc::ENOSYS => "ENOSYS",
            libc::EOPNOTSUPP => "EOPNOTSUPP",
            libc::ENOBUFS => "ENOBUFS",
            libc::ECONNRESET => "ECONNRESET",
            libc::ECONNREFUSED => "ECONNREFUSED",
            libc::ETIMEDOUT => "ETIMEDOUT",
            libc::ECANCELED => "ECANCELED",
            n => return format!("errno {n}"),
        };
        name.into()
    }
}

/// `ENAME: description`, e.g. `ECONNRESET: Connection reset by peer`.
impl fmt::Display for Errno {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let desc = io::Error::from_raw_os_error(self.0).to_string();
        let desc = desc.split(" (os error").next().unwrap_or(&desc);
        write!(f, "{}: {desc}", self.name())
    }
}

impl From<Errno> for io::Error {
    fn from(e: Errno) -> io::Error {
        io::Error::from_raw_os_error(e.0)
    }
}

/// How an accept failed (accept4(2), ERRORS), as a loop must react.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AcceptFailure {
    /// EAGAIN: no connection is queued.
    WouldBlock,
    /// EMFILE, ENFILE, ENOBUFS, ENOMEM: out of descriptors or memory;
    /// retrying at once fails again (back off).
    Exhausted,
    /// ECANCELED: the io_uring accept was cancelled (drain).
    Canceled,
    /// Anything else (ECONNABORTED, EPROTO, EINTR, EPERM from a firewall):
    /// that one connection failed; the listener is fine.
    Transient,
}

/// How a recv or send on a connection failed, as a loop must react.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IoFailure {
    /// EAGAIN/EWOULDBLOCK or EINTR: try again when ready.
    Again,
    /// ENOBUFS on an io_uring recv with buffer select: the provided buffer
    /// ring ran dry (Linux 5.19+).
    NoBuffers,
    /// ECANCELED: the op was cancelled (IORING_OP_ASYNC_CANCEL).
    Canceled,
    /// The connection failed: its [`io::ErrorKind`] (ConnectionReset,
    /// BrokenPipe, TimedOut, ...).
    Failed(io::ErrorKind),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_and_classes() {
        assert_eq!(Errno::of_result(7), Ok(7));
        assert_eq!(
            Errno::of_result(-libc::ECONNRESET),
            Err(Errno(libc::ECONNRESET))
        );
        assert_eq!(Errno(libc::ECONNRESET).as_result(), -libc::ECONNRESET);
        assert_eq!(Errno::EAGAIN.io_failure(), IoFailure::Again);
        assert_eq!(
            Errno(libc::EPIPE).io_failure(),
            IoFailure::Failed(io::ErrorKind::BrokenPipe)
        );
        assert_eq!(
            Errno(libc::EMFILE).accept_failure(),
            AcceptFailure::Exhausted
        );
        assert_eq!(
            Errno(libc::ECONNABORTED).accept_failure(),
            AcceptFailure::Transient
        );
        assert!(Errno(libc::ECONNRESET).is_peer_gone());
        assert!(!Errno::EAGAIN.is_peer_gone());
        let shown = Errno(libc::ECONNRESET).to_string();
        assert!(shown.starts_with("ECONNRESET: "), "{shown}");
        assert!(!shown.contains("os error"), "{shown}");
        assert_eq!(Errno(4095).name(), "errno 4095");
        assert_eq!(
            io::Error::from(Errno::EPERM).raw_os_error(),
            Some(libc::EPERM)
        );
    }
}
