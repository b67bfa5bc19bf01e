//! The kernel interface that is not io_uring: listening sockets, CPU
//! affinity, eventfds and kernel version checks.
//!
//! Owns no long-lived descriptors itself; every function hands its fd to the
//! caller as an owning type. `unsafe` here is limited to libc calls whose
//! contracts are stated at each block.

use std::io;
use std::net::{SocketAddr, TcpListener};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use socket2::{Domain, Protocol, Socket, Type};

/// Listen backlog okring asks for; the kernel clamps it to
/// `net.core.somaxconn` (listen(2)).
pub const LISTEN_BACKLOG: i32 = 4096;

/// The CPUs this process may run on (sched_getaffinity(2)), ascending.
/// Falls back to `0..available_parallelism` if the call fails.
pub fn allowed_cpus() -> Vec<usize> {
    // SAFETY: cpu_set_t is plain data; zeroed is a valid empty set, and
    // sched_getaffinity writes at most size_of::<cpu_set_t>() bytes into it.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: pid 0 = the calling thread; `set` is a valid, writable cpu_set_t.
    let rc =
        unsafe { libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) };
    if rc != 0 {
        let n = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1);
        return (0..n).collect();
    }
    // SAFETY: CPU_ISSET only reads the set for indices below CPU_SETSIZE.
    (0..libc::CPU_SETSIZE as usize)
        .filter(|&c| unsafe { libc::CPU_ISSET(c, &set) })
        .collect()
}

/// Pin the calling thread to `cpu` (sched_setaffinity(2)).
///
/// Errors: EINVAL when `cpu` is not in the process's allowed set.
pub fn pin_current_thread(cpu: usize) -> io::Result<()> {
    pin_current_thread_to(&[cpu])
}

/// Restrict the calling thread to `cpus` (sched_setaffinity(2)).
pub fn pin_current_thread_to(cpus: &[usize]) -> io::Result<()> {
    // SAFETY: zeroed cpu_set_t is a valid empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    for &cpu in cpus {
        if cpu >= libc::CPU_SETSIZE as usize {
            return Err(io::Error::from_raw_os_error(libc::EINVAL));
        }
        // SAFETY: cpu < CPU_SETSIZE was checked above.
        unsafe { libc::CPU_SET(cpu, &mut set) };
    }
    // SAFETY: pid 0 = calling thread; `set` is a valid cpu_set_t of the size passed.
    let rc = unsafe { libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// `net.core.somaxconn`, the kernel's cap on a listen backlog, if readable.
pub fn somaxconn() -> Option<i32> {
    std::fs::read_to_string("/proc/sys/net/core/somaxconn")
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// A TCP listener for one worker: SO_REUSEADDR + SO_REUSEPORT (so every
/// worker owns its own accept queue and the kernel spreads connections by
/// hash, socket(7)), TCP_NODELAY (inherited by accepted sockets, so the
/// fixed responses are never held back by Nagle), backlog
/// min([`LISTEN_BACKLOG`], somaxconn). `nonblocking` for event loops.
///
/// Errors: the bind error (EADDRINUSE, EACCES, EADDRNOTAVAIL) is returned
/// as is; callers name the address in their message.
pub fn reuseport_listener(addr: SocketAddr, nonblocking: bool) -> io::Result<TcpListener> {
    let sock = Socket::new(
        Domain::for_address(addr),
        Type::STREAM.cloexec(),
        Some(Protocol::TCP),
    )?;
    sock.set_reuse_address(true)?;
    sock.set_reuse_port(true)?;
    sock.set_tcp_nodelay(true)?;
    if addr.is_ipv6() {
        sock.set_only_v6(true)?;
    }
    sock.bind(&addr.into())?;
    let backlog = somaxconn().map_or(LISTEN_BACKLOG, |m| m.clamp(1, LISTEN_BACKLOG));
    sock.listen(backlog)?;
    sock.set_nonblocking(nonblocking)?;
    Ok(sock.into())
}

/// Bind `n` SO_REUSEPORT listeners on `addr`. When the port is 0 the first
/// bind picks a free port and the rest bind to that same port.
pub fn reuseport_listeners(
    addr: SocketAddr,
    n: usize,
    nonblocking: bool,
) -> Result<Vec<TcpListener>, String> {
    let mut out = Vec::with_capacity(n);
    let mut bound = addr;
    for _ in 0..n {
        let l = reuseport_listener(bound, nonblocking).map_err(|e| bind_error(addr, &e))?;
        bound = l.local_addr().map_err(|e| format!("getsockname: {e}"))?;
        out.push(l);
    }
    Ok(out)
}

/// One-line message for a failed bind, naming the fix.
pub fn bind_error(addr: SocketAddr, e: &io::Error) -> String {
    match e.raw_os_error() {
        Some(libc::EADDRINUSE) => {
            format!("cannot listen on {addr}: address in use (pick another --bind port, or 0 for a free one)")
        }
        Some(libc::EACCES) => {
            format!("cannot listen on {addr}: permission denied (ports below 1024 need root or CAP_NET_BIND_SERVICE)")
        }
        Some(libc::EADDRNOTAVAIL) => {
            format!("cannot listen on {addr}: address not available on this host (check --bind)")
        }
        _ => format!("cannot listen on {addr}: {e}"),
    }
}

/// A nonblocking, close-on-exec eventfd (eventfd(2)), used to wake a worker
/// loop for shutdown.
pub fn eventfd() -> io::Result<OwnedFd> {
    // SAFETY: eventfd takes no pointers; the returned fd is checked below.
    let fd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd is a fresh descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Add 1 to an eventfd's counter, waking whoever waits on it.
pub fn eventfd_signal(fd: RawFd) {
    let one: u64 = 1;
    // SAFETY: writes 8 bytes from a valid u64; an error (EAGAIN at counter
    // saturation, EBADF after close) only means the waiter is already woken
    // or gone.
    unsafe { libc::write(fd, (&one as *const u64).cast(), 8) };
}

/// Close a raw descriptor the caller owns (close(2)); errors are ignored,
/// as close(2) advises against retrying.
pub fn close_fd(fd: RawFd) {
    // SAFETY: the caller owns `fd` and never uses it after this call.
    unsafe { libc::close(fd) };
}

/// The running kernel's (major, minor) from uname(2), if parseable.
pub fn kernel_version() -> Option<(u32, u32)> {
    // SAFETY: utsname is plain data; uname fills it.
    let mut u: libc::utsname = unsafe { std::mem::zeroed() };
    // SAFETY: `u` is a valid, writable utsname.
    if unsafe { libc::uname(&mut u) } != 0 {
        return None;
    }
    let rel: Vec<u8> = u
        .release
        .iter()
        .take_while(|&&c| c != 0)
        .map(|&c| c as u8)
        .collect();
    let rel = String::from_utf8_lossy(&rel);
    let mut it = rel
        .split(|c: char| !c.is_ascii_digit())
        .filter(|s| !s.is_empty());
    Some((it.next()?.parse().ok()?, it.next()?.parse().ok()?))
}

/// The process's CPU time (user + system) so far, from getrusage(2).
pub fn process_cpu_time() -> std::time::Duration {
    // SAFETY: rusage is plain data; getrusage fills it.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: RUSAGE_SELF with a valid, writable rusage.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let tv = |t: libc::timeval| std::time::Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

/// Raw fd of anything that has one (sugar for call sites that hand fds to
/// the kernel).
pub fn raw<T: AsRawFd>(t: &T) -> RawFd {
    t.as_raw_fd()
}

/// Install a seccomp filter on the calling thread (inherited across
/// execve(2) and by new threads) that makes io_uring_setup(2) fail with
/// `errno` — what Docker's default seccomp profile does (EPERM) or a
/// kernel without io_uring looks like (ENOSYS). Every other syscall is
/// allowed. Sets PR_SET_NO_NEW_PRIVS first, as seccomp(2) requires of an
/// unprivileged caller.
///
/// The filter compares the syscall number only (no architecture check), so
/// it is meant for testing okring's fallback, not as a security boundary.
pub fn deny_io_uring_setup(errno: i32) -> io::Result<()> {
    const BPF_LD_W_ABS: u16 = 0x20;
    const BPF_JEQ_K: u16 = 0x15;
    const BPF_RET_K: u16 = 0x06;
    const SECCOMP_RET_ERRNO: u32 = 0x0005_0000;
    const SECCOMP_RET_ALLOW: u32 = 0x7fff_0000;
    // offsetof(struct seccomp_data, nr) == 0.
    let filter = [
        libc::sock_filter {
            code: BPF_LD_W_ABS,
            jt: 0,
            jf: 0,
            k: 0,
        },
        libc::sock_filter {
            code: BPF_JEQ_K,
            jt: 0,
            jf: 1,
            k: libc::SYS_io_uring_setup as u32,
        },
        libc::sock_filter {
            code: BPF_RET_K,
            jt: 0,
            jf: 0,
            k: SECCOMP_RET_ERRNO | (errno as u32 & 0xffff),
        },
        libc::sock_filter {
            code: BPF_RET_K,
            jt: 0,
            jf: 0,
            k: SECCOMP_RET_ALLOW,
        },
    ];
    let prog = libc::sock_fprog {
        len: filter.len() as u16,
        filter: filter.as_ptr() as *mut _,
    };
    // SAFETY: prctl(PR_SET_NO_NEW_PRIVS) takes integer arguments only.
    if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `prog` points at `filter`, both alive for the call; the kernel
    // copies the program before returning.
    if unsafe {
        libc::prctl(
            libc::PR_SET_SECCOMP,
            libc::SECCOMP_MODE_FILTER,
            &prog as *const _,
            0,
            0,
        )
    } != 0
    {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}
