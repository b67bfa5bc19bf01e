//! Client TCP sockets for the load generator (create, connect, recv, send,
//! shutdown, close), the socket address in the kernel's layout an io_uring
//! connect reads, and the monotonic clock. Thin wrappers over libc that
//! return `-errno` (the io_uring CQE convention) or `Result`.
//!
//! Owns no descriptors itself: the caller owns every fd these return.

use std::net::SocketAddr;
use std::os::fd::RawFd;

use super::Errno;

/// Nanoseconds on `CLOCK_MONOTONIC` (clock_gettime(2), served by the vDSO:
/// about 20 ns, no syscall). The same clock io_uring timeouts use.
#[inline]
pub fn now_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; CLOCK_MONOTONIC always exists on Linux.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// A socket address in the kernel's layout, kept at a stable address while
/// an io_uring connect reads it.
pub struct RawAddr {
    storage: libc::sockaddr_storage,
    len: libc::socklen_t,
}

impl RawAddr {
    pub fn new(addr: SocketAddr) -> Box<RawAddr> {
        // SAFETY: sockaddr_storage is plain old data; all-zero is a valid value.
        let mut storage: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
        let len = match addr {
            SocketAddr::V4(a) => {
                let sin = libc::sockaddr_in {
                    sin_family: libc::AF_INET as libc::sa_family_t,
                    sin_port: a.port().to_be(),
                    sin_addr: libc::in_addr {
                        s_addr: u32::from_ne_bytes(a.ip().octets()),
                    },
                    sin_zero: [0; 8],
                };
                // SAFETY: sockaddr_storage is larger than and aligned for sockaddr_in.
                unsafe { std::ptr::write(&mut storage as *mut _ as *mut libc::sockaddr_in, sin) };
                std::mem::size_of::<libc::sockaddr_in>()
            }
            SocketAddr::V6(a) => {
                let sin6 = libc::sockaddr_in6 {
                    sin6_family: libc::AF_INET6 as libc::sa_family_t,
                    sin6_port: a.port().to_be(),
                    sin6_flowinfo: a.flowinfo(),
                    sin6_addr: libc::in6_addr {
                        s6_addr: a.ip().octets(),
                    },
                    sin6_scope_id: a.scope_id(),
                };
                // SAFETY: sockaddr_storage is larger than and aligned for sockaddr_in6.
                unsafe { std::ptr::write(&mut storage as *mut _ as *mut libc::sockaddr_in6, sin6) };
                std::mem::size_of::<libc::sockaddr_in6>()
            }
        };
        Box::new(RawAddr {
            storage,
            len: len as libc::socklen_t,
        })
    }

    pub fn as_ptr(&self) -> *const libc::sockaddr {
        &self.storage as *const _ as *const libc::sockaddr
    }

    /// The address family (AF_INET or AF_INET6), as socket(2) takes it.
    pub fn family(&self) -> i32 {
        self.storage.ss_family as i32
    }

    /// The address length, bytes, as connect(2) takes it.
    pub fn socklen(&self) -> u32 {
        self.len
    }
}

/// A new TCP socket (close-on-exec, TCP_NODELAY set, nonblocking if asked).
pub fn tcp_socket(family: i32, nonblocking: bool) -> Result<RawFd, Errno> {
    let mut ty = libc::SOCK_STREAM | libc::SOCK_CLOEXEC;
    if nonblocking {
        ty |= libc::SOCK_NONBLOCK;
    }
    // SAFETY: socket(2) with constant arguments; the returned fd is owned by the caller.
    let fd = syscall!(unsafe { libc::socket(family, ty, 0) })?;
    let one: libc::c_int = 1;
    // SAFETY: `one` is a valid c_int for the duration of the call; fd is ours.
    // Requests are written whole, so Nagle would only add delay (tcp(7)).
    unsafe {
        libc::setsockopt(
            fd,
            libc::IPPROTO_TCP,
            libc::TCP_NODELAY,
            &one as *const _ as *const libc::c_void,
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    Ok(fd)
}

/// connect(2). Returns 0, or `-errno` (`-EINPROGRESS` on a nonblocking socket).
pub fn connect(fd: RawFd, addr: &RawAddr) -> i32 {
    // SAFETY: `addr` points to a valid sockaddr of `addr.len` bytes for the call.
    cqe_style(syscall!(unsafe {
        libc::connect(fd, addr.as_ptr(), addr.len)
    }))
}

/// The pending error of a socket (SO_ERROR), as `-errno`, 0 when none.
pub fn socket_error(fd: RawFd) -> i32 {
    let mut err: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: `err` and `len` are valid for writes for the duration of the call.
    let r = syscall!(unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_ERROR,
            &mut err as *mut _ as *mut libc::c_void,
            &mut len,
        )
    });
    match r {
        Ok(_) => -err,
        Err(e) => e.as_result(),
    }
}

/// recv(2) into `buf`: bytes read (0: the peer's FIN), or `-errno`.
pub fn recv(fd: RawFd, buf: &mut [u8]) -> i32 {
    // SAFETY: `buf` is valid for writes of its length for the call.
    cqe_style(syscall!(unsafe {
        libc::recv(fd, buf.as_mut_ptr().cast(), buf.len(), 0)
    }))
}

/// send(2) of `buf` without SIGPIPE (MSG_NOSIGNAL): bytes sent, or `-errno`.
pub fn send(fd: RawFd, buf: &[u8]) -> i32 {
    // SAFETY: `buf` is valid for reads of its length for the call.
    cqe_style(syscall!(unsafe {
        libc::send(fd, buf.as_ptr().cast(), buf.len(), libc::MSG_NOSIGNAL)
    }))
}

/// Whether `res` (`-errno`) is -EINPROGRESS: a nonblocking connect(2)
/// under way.
pub fn is_in_progress(res: i32) -> bool {
    res == Errno::EINPROGRESS.as_result()
}

/// `-ECANCELED`: the result of an operation cancelled before it ran.
pub const CANCELED: i32 = -libc::ECANCELED;

/// shutdown(2) both directions: wakes every operation pending on the socket.
pub fn shutdown(fd: RawFd) {
    // SAFETY: plain syscall on an fd we own; errors (ENOTCONN) are harmless here.
    unsafe { libc::shutdown(fd, libc::SHUT_RDWR) };
}

/// close(2) an fd the caller owns and no longer uses.
pub fn close(fd: RawFd) {
    // SAFETY: the caller owns `fd` and has no operation pending on it.
    unsafe { libc::close(fd) };
}

/// A [`syscall!`] result in the CQE convention: the count, or `-errno`.
#[inline]
fn cqe_style<T: TryInto<i32>>(r: Result<T, Errno>) -> i32 {
    match r {
        Ok(n) => n.try_into().unwrap_or(i32::MAX),
        Err(e) => e.as_result(),
    }
}
