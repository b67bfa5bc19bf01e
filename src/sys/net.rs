//! The kernel edge of the load generator that is not io_uring: the monotonic
//! clock, TCP sockets (create, connect, read, write, shutdown, close) and CPU
//! pinning. Thin wrappers over libc that return `-errno` / `Result`; every
//! `unsafe` block is here or in `uring.rs` / `epoll.rs`.
//!
//! Owns no descriptors itself: the caller owns every fd these return.

use std::io;
use std::net::SocketAddr;
use std::os::fd::RawFd;

/// Nanoseconds on `CLOCK_MONOTONIC` (clock_gettime(2), served by the vDSO:
/// about 20 ns, no syscall). The same clock io_uring timeouts use.
#[inline]
pub(crate) fn now_ns() -> u64 {
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
pub(crate) struct RawAddr {
    pub storage: libc::sockaddr_storage,
    pub len: libc::socklen_t,
}

impl RawAddr {
    pub(crate) fn new(addr: SocketAddr) -> Box<RawAddr> {
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

    pub(crate) fn as_ptr(&self) -> *const libc::sockaddr {
        &self.storage as *const _ as *const libc::sockaddr
    }

    pub(crate) fn family(&self) -> libc::c_int {
        self.storage.ss_family as libc::c_int
    }
}

/// A new TCP socket (close-on-exec, TCP_NODELAY set, nonblocking if asked).
/// Errors are `-errno`.
pub(crate) fn tcp_socket(family: libc::c_int, nonblocking: bool) -> Result<RawFd, i32> {
    let mut ty = libc::SOCK_STREAM | libc::SOCK_CLOEXEC;
    if nonblocking {
        ty |= libc::SOCK_NONBLOCK;
    }
    // SAFETY: socket(2) with constant arguments; the returned fd is owned by the caller.
    let fd = unsafe { libc::socket(family, ty, 0) };
    if fd < 0 {
        return Err(-errno());
    }
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
pub(crate) fn connect(fd: RawFd, addr: &RawAddr) -> i32 {
    // SAFETY: `addr` points to a valid sockaddr of `addr.len` bytes for the call.
    let r = unsafe { libc::connect(fd, addr.as_ptr(), addr.len) };
    if r < 0 {
        -errno()
    } else {
        0
    }
}

/// The pending error of a socket (SO_ERROR), as `-errno`, 0 when none.
pub(crate) fn socket_error(fd: RawFd) -> i32 {
    let mut err: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: `err` and `len` are valid for writes for the duration of the call.
    let r = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_ERROR,
            &mut err as *mut _ as *mut libc::c_void,
            &mut len,
        )
    };
    if r < 0 {
        -errno()
    } else {
        -err
    }
}

/// recv(2) into `buf[..len]`: bytes read, or `-errno`.
///
/// # Safety
/// `buf` must be valid for writes of `len` bytes.
pub(crate) unsafe fn recv(fd: RawFd, buf: *mut u8, len: usize) -> i32 {
    // SAFETY: the caller guarantees `buf` is writable for `len` bytes.
    let r = unsafe { libc::recv(fd, buf as *mut libc::c_void, len, 0) };
    if r < 0 {
        -errno()
    } else {
        r as i32
    }
}

/// send(2) of `buf[..len]` without SIGPIPE: bytes sent, or `-errno`.
///
/// # Safety
/// `buf` must be valid for reads of `len` bytes.
pub(crate) unsafe fn send(fd: RawFd, buf: *const u8, len: usize) -> i32 {
    // SAFETY: the caller guarantees `buf` is readable for `len` bytes.
    let r = unsafe { libc::send(fd, buf as *const libc::c_void, len, libc::MSG_NOSIGNAL) };
    if r < 0 {
        -errno()
    } else {
        r as i32
    }
}

/// shutdown(2) both directions: wakes every operation pending on the socket.
pub(crate) fn shutdown(fd: RawFd) {
    // SAFETY: plain syscall on an fd we own; errors (ENOTCONN) are harmless here.
    unsafe { libc::shutdown(fd, libc::SHUT_RDWR) };
}

/// close(2) an fd the caller owns and no longer uses.
pub(crate) fn close(fd: RawFd) {
    // SAFETY: the caller owns `fd` and has no operation pending on it.
    unsafe { libc::close(fd) };
}

/// Pin the calling thread to one CPU (sched_setaffinity(2)).
pub(crate) fn pin_current_thread(cpu: usize) -> Result<(), String> {
    if cpu >= libc::CPU_SETSIZE as usize {
        return Err(format!("--cpus: CPU {cpu} is out of range"));
    }
    // SAFETY: cpu_set_t is plain old data; zero is the empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: `cpu` < CPU_SETSIZE, checked above.
    unsafe { libc::CPU_SET(cpu, &mut set) };
    // SAFETY: `set` is a valid cpu_set_t of the size passed; pid 0 = this thread.
    let r = unsafe { libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) };
    if r < 0 {
        return Err(format!(
            "--cpus: cannot pin to CPU {cpu}: {}; pick CPUs this process may use (see taskset -p $$)",
            io::Error::last_os_error()
        ));
    }
    Ok(())
}

#[inline]
fn errno() -> i32 {
    io::Error::last_os_error()
        .raw_os_error()
        .unwrap_or(libc::EIO)
}
