//! The kernel interface that is not io_uring: listening sockets, CPU
//! affinity, eventfds and kernel version checks.
//!
//! Owns no long-lived descriptors itself; every function hands its fd to the
//! caller as an owning type. `unsafe` here is limited to libc calls whose
//! contracts are stated at each block.
//!
//! Errors: one type, [`Errno`]. A call that returns -1 goes through the
//! `syscall!` wrapper (`Ok(ret)` or `Err(Errno::last())`); hot-path calls
//! (accept, read, send) return `Result<_, Errno>` and loops classify it
//! ([`Errno::accept_failure`], [`Errno::io_failure`]); set-up calls return
//! `io::Result` (`Errno` converts); io_uring CQE results and the load
//! engines' completions keep the kernel's `-errno` (`Errno::of_result`).

/// Call a libc function that returns -1 and sets errno on failure:
/// `Ok(ret)` or `Err(Errno::last())`. The one wrapper of the kernel edge.
macro_rules! syscall {
    ($call:expr) => {{
        let ret = $call;
        if ret == -1 {
            Err($crate::sys::Errno::last())
        } else {
            Ok(ret)
        }
    }};
}

mod errno;
pub mod net;
pub mod perf;
pub mod uring;

pub use errno::{AcceptFailure, Errno, IoFailure};

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
    syscall!(unsafe { libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) })?;
    Ok(())
}

/// Set the calling thread's timer slack to `ns` (prctl(2)
/// PR_SET_TIMERSLACK; Linux 2.6.28). The default, 50 µs for a normal
/// thread, lets the kernel defer an hrtimer wake-up by that much, which an
/// open-loop schedule sees as lag; 1 ns asks for the wake-up on time.
/// Best effort: a failure leaves the default.
pub fn set_timer_slack_ns(ns: u64) {
    // SAFETY: PR_SET_TIMERSLACK takes an integer, no pointers.
    unsafe { libc::prctl(libc::PR_SET_TIMERSLACK, ns as libc::c_ulong, 0, 0, 0) };
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

/// Bind `n` SO_REUSEPORT listeners on `addr`, all on one port: the port
/// is claimed first with [`claim_port`], so port 0 becomes a free port and
/// a port another server already listens on is an error, SO_REUSEPORT
/// notwithstanding.
pub fn reuseport_listeners(
    addr: SocketAddr,
    n: usize,
    nonblocking: bool,
) -> Result<Vec<TcpListener>, String> {
    let mut out = Vec::with_capacity(n);
    let mut bound = claim_port(addr).map_err(|e| bind_error(addr, &e))?;
    for _ in 0..n {
        let l = reuseport_listener(bound, nonblocking).map_err(|e| bind_error(addr, &e))?;
        bound = l.local_addr().map_err(|e| format!("getsockname: {e}"))?;
        out.push(l);
    }
    Ok(out)
}

/// Check that nobody listens on `addr` and resolve port 0 to a free port.
///
/// SO_REUSEPORT lets any socket of the same user with the option set bind
/// the same port, so a second okring on a busy port would silently share
/// its connections with the first and spoil both measurements. A probe
/// socket *without* SO_REUSEPORT (with SO_REUSEADDR, so TIME_WAIT
/// connections do not count) conflicts with any listener there: its bind
/// fails with EADDRINUSE. The probe is closed before the real listeners
/// bind; the window between the two is a few microseconds.
pub fn claim_port(addr: SocketAddr) -> io::Result<SocketAddr> {
    let probe = Socket::new(
        Domain::for_address(addr),
        Type::STREAM.cloexec(),
        Some(Protocol::TCP),
    )?;
    probe.set_reuse_address(true)?;
    if addr.is_ipv6() {
        probe.set_only_v6(true)?;
    }
    probe.bind(&addr.into())?;
    probe
        .local_addr()?
        .as_socket()
        .ok_or_else(|| io::Error::from_raw_os_error(libc::EAFNOSUPPORT))
}

/// One-line message for a failed bind, naming the fix.
pub fn bind_error(addr: SocketAddr, e: &io::Error) -> String {
    match e.raw_os_error() {
        Some(libc::EADDRINUSE) => {
            format!("cannot listen on {addr}: address in use — another server (perhaps another okring) listens there (stop it, pick another --bind port, or 0 for a free one)")
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
    let fd = syscall!(unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) })?;
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

/// Reset a non-blocking eventfd's counter to 0 (read(2) of its 8 bytes;
/// EAGAIN when it already is 0).
pub fn eventfd_drain(fd: RawFd) {
    let mut v: u64 = 0;
    // SAFETY: reads at most 8 bytes into a valid u64; errors leave it as is.
    unsafe { libc::read(fd, (&mut v as *mut u64).cast(), 8) };
}

/// Close a raw descriptor the caller owns (close(2)); errors are ignored,
/// as close(2) advises against retrying.
pub fn close_fd(fd: RawFd) {
    // SAFETY: the caller owns `fd` and never uses it after this call.
    unsafe { libc::close(fd) };
}

/// The running kernel's release string from uname(2), e.g. `6.18.44`.
pub fn kernel_release() -> Option<String> {
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
    Some(String::from_utf8_lossy(&rel).into_owned())
}

/// The running kernel's (major, minor) from uname(2), if parseable.
pub fn kernel_version() -> Option<(u32, u32)> {
    let rel = kernel_release()?;
    let mut it = rel
        .split(|c: char| !c.is_ascii_digit())
        .filter(|s| !s.is_empty());
    Some((it.next()?.parse().ok()?, it.next()?.parse().ok()?))
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

// ---------------------------------------------------------------------------
// Processes and signals, for the process modes (fork, prefork, sequential).
// ---------------------------------------------------------------------------

/// fork(2), made safe by checking its precondition: the calling process
/// must have exactly one thread (read from /proc/self/stat), so that the
/// child inherits no lock another thread holds (the allocator's, stdio's);
/// the child runs `child`, which cannot return (its type says so: it ends
/// in [`exit_now`]),
/// and a panic in it ends the child with exit code 101 instead of
/// unwinding into the parent's code. Returns the child's pid in the parent.
///
/// Errors: EAGAIN (RLIMIT_NPROC or pid space exhausted), ENOMEM; and an
/// error naming the thread count when the process is multi-threaded.
pub fn fork_child(child: impl FnOnce() -> std::convert::Infallible) -> io::Result<Pid> {
    // One open, one read, one close per fork (a fork server pays this per
    // connection): /proc/self/stat fits the buffer, and a seq_file read
    // of that size returns it whole.
    let mut buf = [0u8; 4096];
    let threads = std::fs::File::open("/proc/self/stat")
        .and_then(|mut f| io::Read::read(&mut f, &mut buf))
        .ok()
        .and_then(|n| {
            let s = std::str::from_utf8(&buf[..n]).ok()?;
            let after = &s[s.rfind(')')? + 1..];
            // Fields from 3 (state) on; num_threads is field 20.
            after.split_whitespace().nth(17)?.parse::<u32>().ok()
        });
    if threads != Some(1) {
        return Err(io::Error::other(format!(
            "fork refused: the process has {} threads (a child could inherit a lock held by another)",
            threads.map_or("an unknown number of".into(), |n| n.to_string())
        )));
    }
    // SAFETY: the process is single-threaded (checked above), and the
    // child never returns from this function: it runs `child`, which
    // diverges, or exits on a panic.
    match unsafe { libc::fork() } {
        -1 => Err(io::Error::last_os_error()),
        0 => {
            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(child));
            exit_now(101)
        }
        pid => Ok(pid),
    }
}

/// A process id (pid_t).
pub type Pid = libc::pid_t;

/// SIGINT, SIGTERM, SIGKILL and SIGCHLD (signal(7)).
pub const SIGINT: i32 = libc::SIGINT;
/// See [`SIGINT`].
pub const SIGTERM: i32 = libc::SIGTERM;
/// See [`SIGINT`].
pub const SIGKILL: i32 = libc::SIGKILL;
/// See [`SIGINT`].
pub const SIGCHLD: i32 = libc::SIGCHLD;
/// EPERM and ENOSYS, the errnos a seccomp filter can give
/// ([`deny_io_uring_setup`]).
pub const EPERM: i32 = libc::EPERM;
/// See [`EPERM`].
pub const ENOSYS: i32 = libc::ENOSYS;

/// recv(2) with MSG_DONTWAIT into `buf`: `Some(bytes)` (0: EOF), `None`
/// when nothing is queued or on an error.
pub fn recv_dontwait(fd: RawFd, buf: &mut [u8]) -> Option<usize> {
    // SAFETY: `buf` is a valid writable buffer of the length passed.
    let n = unsafe { libc::recv(fd, buf.as_mut_ptr().cast(), buf.len(), libc::MSG_DONTWAIT) };
    (n >= 0).then_some(n as usize)
}

/// End the calling process at once with `code` (_exit(2)): no destructors,
/// no atexit handlers, no stdio flush. What a forked child must use.
pub fn exit_now(code: i32) -> ! {
    // SAFETY: _exit takes no pointers and never returns.
    unsafe { libc::_exit(code) }
}

/// How a reaped child ended, from the status word of waitpid(2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChildEnd {
    /// exit(code).
    Exited(i32),
    /// Killed by this signal.
    Signaled(i32),
}

/// Reap one terminated child, if any, without blocking
/// (`waitpid(-1, WNOHANG)`). `None` when no child has terminated (or there
/// are no children: ECHILD). One SIGCHLD can stand for several children, so
/// callers loop until `None`.
pub fn reap_any() -> Option<(Pid, ChildEnd)> {
    let mut status = 0;
    loop {
        // SAFETY: `status` is a valid writable int.
        let pid = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
        if pid > 0 {
            let end = if libc::WIFSIGNALED(status) {
                ChildEnd::Signaled(libc::WTERMSIG(status))
            } else {
                ChildEnd::Exited(libc::WEXITSTATUS(status))
            };
            return Some((pid, end));
        }
        if pid < 0 && io::Error::last_os_error().raw_os_error() == Some(libc::EINTR) {
            continue;
        }
        return None;
    }
}

/// Send `sig` to process `pid` (kill(2)); errors (ESRCH: already gone)
/// are ignored.
pub fn kill(pid: Pid, sig: i32) {
    // SAFETY: kill takes no pointers.
    unsafe { libc::kill(pid, sig) };
}

/// Ask the kernel to send `sig` to the calling process when its parent
/// dies (prctl(2) PR_SET_PDEATHSIG), so workers never outlive a killed
/// master. Errors are ignored (the worker still stops on SIGTERM).
pub fn die_with_parent(sig: i32) {
    // SAFETY: PR_SET_PDEATHSIG takes a signal number, no pointers.
    unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, sig as libc::c_ulong, 0, 0, 0) };
}

/// A pipe(2) pair (read end, write end), both close-on-exec; the read end
/// nonblocking when `nonblocking_read`.
pub fn pipe(nonblocking_read: bool) -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: `fds` is a valid array of two ints for pipe2 to fill.
    syscall!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) })?;
    // SAFETY: both descriptors are new and owned by nobody else.
    let (r, w) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    if nonblocking_read {
        set_nonblocking(r.as_raw_fd())?;
    }
    Ok((r, w))
}

/// A connected AF_UNIX SOCK_DGRAM pair (receive end, send end), both
/// close-on-exec, the receive end nonblocking (unix(7)). Each send(2) is
/// delivered whole as one datagram, so many processes may share the send
/// end without interleaving, for messages far above PIPE_BUF.
pub fn dgram_pair() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: `fds` is a valid array of two ints for socketpair to fill.
    let rc = unsafe {
        libc::socketpair(
            libc::AF_UNIX,
            libc::SOCK_DGRAM | libc::SOCK_CLOEXEC,
            0,
            fds.as_mut_ptr(),
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: both descriptors are new and owned by nobody else.
    let (r, w) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    set_nonblocking(r.as_raw_fd())?;
    Ok((r, w))
}

/// Set O_NONBLOCK on `fd` (fcntl(2)).
pub fn set_nonblocking(fd: RawFd) -> io::Result<()> {
    // SAFETY: F_GETFL/F_SETFL take no pointers; `fd` is the caller's.
    let rc = unsafe {
        let fl = libc::fcntl(fd, libc::F_GETFL);
        if fl < 0 {
            fl
        } else {
            libc::fcntl(fd, libc::F_SETFL, fl | libc::O_NONBLOCK)
        }
    };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// poll(2) on `fds` for at most `timeout_ms` (−1: forever). Returns how
/// many entries have events; EINTR counts as a wake-up with none.
pub fn poll(fds: &mut [libc::pollfd], timeout_ms: i32) -> io::Result<usize> {
    // SAFETY: `fds` is a valid writable array of the length passed.
    match syscall!(unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout_ms) }) {
        Ok(n) => Ok(n as usize),
        Err(Errno::EINTR) => Ok(0),
        Err(e) => Err(e.into()),
    }
}

/// A pollfd asking for POLLIN on `fd`.
pub fn pollin(fd: RawFd) -> libc::pollfd {
    libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    }
}

/// A signalfd(2) for SIGINT, SIGTERM and SIGCHLD, which are blocked in the
/// calling thread first (and so in every thread and process created from
/// it afterwards: the mask is inherited across pthread_create and fork).
/// Signals then arrive only as records read from this fd, never as
/// asynchronous handlers — nothing async-signal-unsafe can run, and a
/// forked child reads its own signals from its inherited copy (signalfd(2):
/// "a read from the file descriptor in the child will return information
/// about signals queued to the child").
pub struct SignalFd {
    fd: OwnedFd,
}

impl SignalFd {
    /// Block SIGINT, SIGTERM and SIGCHLD in the calling thread and open a
    /// nonblocking, close-on-exec signalfd for them. Call before any other
    /// thread exists, or those threads keep receiving the signals.
    pub fn for_stop_and_child() -> io::Result<SignalFd> {
        // SAFETY: sigset_t is plain data; sigemptyset initialises it.
        let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
        // SAFETY: `set` is a valid sigset_t; the signal numbers are valid.
        unsafe {
            libc::sigemptyset(&mut set);
            libc::sigaddset(&mut set, libc::SIGINT);
            libc::sigaddset(&mut set, libc::SIGTERM);
            libc::sigaddset(&mut set, libc::SIGCHLD);
        }
        // SAFETY: `set` is initialised; the old mask is not wanted (null).
        let rc = unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) };
        if rc != 0 {
            return Err(io::Error::from_raw_os_error(rc));
        }
        let flags = libc::SFD_NONBLOCK | libc::SFD_CLOEXEC;
        // SAFETY: -1 asks for a new fd; `set` is initialised.
        let fd = syscall!(unsafe { libc::signalfd(-1, &set, flags) })?;
        Ok(SignalFd {
            // SAFETY: `fd` is new and owned by nobody else.
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
        })
    }

    /// The descriptor, readable while a signal is pending.
    pub fn fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// Read every pending signal; returns their numbers, oldest first.
    /// Standard signals do not queue: several SIGCHLDs may arrive as one.
    pub fn read_all(&self) -> Vec<i32> {
        read_signals(self.fd())
    }
}

/// Read every pending signal from the nonblocking signalfd `fd` (a
/// [`SignalFd::fd`] that stays open for the call); their numbers, oldest
/// first. For a thread that holds the descriptor's number, not the owner.
pub fn read_signals(fd: RawFd) -> Vec<i32> {
    let mut out = Vec::new();
    loop {
        // SAFETY: signalfd_siginfo is plain data.
        let mut info: libc::signalfd_siginfo = unsafe { std::mem::zeroed() };
        let len = std::mem::size_of::<libc::signalfd_siginfo>();
        // SAFETY: `info` is a valid writable buffer of `len` bytes.
        let n = unsafe { libc::read(fd, (&mut info as *mut libc::signalfd_siginfo).cast(), len) };
        if n != len as isize {
            return out;
        }
        out.push(info.ssi_signo as i32);
    }
}

/// Resource use of the calling process or of its reaped children
/// (getrusage(2)).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Usage {
    /// User + system CPU time.
    pub cpu: std::time::Duration,
    /// Minor page faults (no I/O), e.g. copy-on-write after fork.
    pub minflt: u64,
    /// Voluntary context switches (blocked waiting).
    pub nvcsw: u64,
    /// Involuntary context switches (preempted).
    pub nivcsw: u64,
}

/// getrusage(2) of the process (`children == false`) or of all its
/// terminated and waited-for descendants (`RUSAGE_CHILDREN`).
pub fn usage(children: bool) -> Usage {
    // SAFETY: rusage is plain data; getrusage fills it.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    let who = if children {
        libc::RUSAGE_CHILDREN
    } else {
        libc::RUSAGE_SELF
    };
    // SAFETY: a valid `who` with a valid, writable rusage.
    unsafe { libc::getrusage(who, &mut ru) };
    let tv = |t: libc::timeval| std::time::Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    Usage {
        cpu: tv(ru.ru_utime) + tv(ru.ru_stime),
        minflt: ru.ru_minflt as u64,
        nvcsw: ru.ru_nvcsw as u64,
        nivcsw: ru.ru_nivcsw as u64,
    }
}

/// Write all of `buf` to `fd` (a blocking pipe or socket), retrying on
/// EINTR and short writes.
pub fn write_all_fd(fd: RawFd, mut buf: &[u8]) -> io::Result<()> {
    while !buf.is_empty() {
        // SAFETY: `buf` is a valid readable slice of the length passed.
        let n = unsafe { libc::write(fd, buf.as_ptr().cast(), buf.len()) };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::EINTR) {
                continue;
            }
            return Err(e);
        }
        buf = &buf[n as usize..];
    }
    Ok(())
}

/// Make `cmd` pin itself to `cpus` between fork and exec
/// (sched_setaffinity(2) in the child), so a spawned server or peer runs
/// on its CPU set from its first instruction.
pub fn pin_child(cmd: &mut std::process::Command, cpus: &[usize]) {
    use std::os::unix::process::CommandExt;
    let cpus = cpus.to_vec();
    // SAFETY: the closure runs in the forked child before exec; it only calls
    // sched_setaffinity(2) on a stack cpu_set_t built from the captured Vec
    // (read, not allocated), which is async-signal-safe.
    unsafe {
        cmd.pre_exec(move || pin_current_thread_to(&cpus));
    }
}

/// Clock ticks per second (`sysconf(_SC_CLK_TCK)`, the unit of the times in
/// `/proc/<pid>/stat`); 100 if the call fails.
pub fn clock_ticks_per_sec() -> u64 {
    // SAFETY: sysconf takes no pointers and only reads a configuration value.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as u64
    } else {
        100
    }
}

/// accept4(2) a connection from `lfd` as a nonblocking, close-on-exec
/// socket, without its peer address. Errors: the errno (EAGAIN when none is
/// queued; EMFILE/ENFILE/ENOBUFS/ENOMEM when out of resources; others are
/// per-connection failures).
pub fn accept_nonblocking(lfd: RawFd) -> Result<RawFd, Errno> {
    // SAFETY: null addr/len pointers are allowed (accept4(2): the peer
    // address is not wanted); the result is checked.
    syscall!(unsafe {
        libc::accept4(
            lfd,
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
        )
    })
}

/// read(2) into `buf`: `Ok(0)` is the peer's FIN. Errors: the errno.
pub fn read(fd: RawFd, buf: &mut [u8]) -> Result<usize, Errno> {
    // SAFETY: `buf` is a valid writable buffer of the length passed.
    syscall!(unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) }).map(|n| n as usize)
}

/// send(2) of `buf` with MSG_NOSIGNAL (a closed peer gives EPIPE, never
/// SIGPIPE): bytes taken. Errors: the errno.
pub fn send(fd: RawFd, buf: &[u8]) -> Result<usize, Errno> {
    // SAFETY: `buf` is a valid readable buffer of the length passed.
    syscall!(unsafe { libc::send(fd, buf.as_ptr().cast(), buf.len(), libc::MSG_NOSIGNAL) })
        .map(|n| n as usize)
}

/// shutdown(2) of a connection the caller owns: `SHUT_WR` (`write_only`,
/// our FIN: the lingering close) or `SHUT_RDWR` (ends any recv or send the
/// kernel holds on it). Errors (ENOTCONN: the peer is gone) are ignored.
pub fn shutdown(fd: RawFd, write_only: bool) {
    let how = if write_only {
        libc::SHUT_WR
    } else {
        libc::SHUT_RDWR
    };
    // SAFETY: no pointers; `fd` is the caller's.
    unsafe { libc::shutdown(fd, how) };
}

/// Flags the io_uring driver passes in SQEs: accept4(2)'s SOCK_CLOEXEC and
/// send(2)'s MSG_NOSIGNAL.
pub const SOCK_CLOEXEC: i32 = libc::SOCK_CLOEXEC;
/// See [`SOCK_CLOEXEC`].
pub const MSG_NOSIGNAL: i32 = libc::MSG_NOSIGNAL;

/// Readiness interest of an [`Epoll`] registration (epoll_ctl(2) events).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Interest(u32);

impl Interest {
    /// No interest (EPOLLERR and EPOLLHUP are still reported).
    pub const NONE: Interest = Interest(0);
    /// EPOLLIN.
    pub const READABLE: Interest = Interest(libc::EPOLLIN as u32);
    /// EPOLLOUT.
    pub const WRITABLE: Interest = Interest(libc::EPOLLOUT as u32);
    /// EPOLLIN | EPOLLEXCLUSIVE (Linux 4.5): a listener shared by several
    /// processes wakes one of them per connection, not all.
    pub const READABLE_EXCLUSIVE: Interest =
        Interest((libc::EPOLLIN | libc::EPOLLEXCLUSIVE) as u32);

    /// Both interests.
    pub const fn or(self, other: Interest) -> Interest {
        Interest(self.0 | other.0)
    }
}

/// One readiness event of [`Epoll::wait`].
#[derive(Clone, Copy, Debug)]
pub struct Event {
    /// The token given at registration.
    pub token: u64,
    /// EPOLLIN.
    pub readable: bool,
    /// EPOLLOUT.
    pub writable: bool,
    /// EPOLLHUP or EPOLLERR: a read or write will tell what happened.
    pub hangup: bool,
}

/// An epoll instance (epoll(7)), level-triggered, with mio's verbs:
/// register, reregister, deregister, wait. Owns its descriptor.
pub struct Epoll {
    fd: OwnedFd,
    events: Vec<libc::epoll_event>,
    /// epoll_pwait2 is available (cleared on the first ENOSYS).
    #[cfg_attr(not(target_env = "gnu"), allow(dead_code))]
    pwait2: bool,
}

impl Epoll {
    /// epoll_create1(EPOLL_CLOEXEC), fetching at most `capacity` events per
    /// wait.
    pub fn new(capacity: usize) -> io::Result<Epoll> {
        // SAFETY: epoll_create1 takes no pointers; the result is checked.
        let fd = syscall!(unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) })?;
        Ok(Epoll {
            // SAFETY: `fd` is a new descriptor owned by nobody else.
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
            events: vec![libc::epoll_event { events: 0, u64: 0 }; capacity.max(1)],
            pwait2: true,
        })
    }

    fn ctl(&self, op: i32, fd: RawFd, interest: Interest, token: u64) -> io::Result<()> {
        let mut ev = libc::epoll_event {
            events: interest.0,
            u64: token,
        };
        // SAFETY: `ev` is a valid epoll_event for the duration of the call.
        syscall!(unsafe { libc::epoll_ctl(self.fd.as_raw_fd(), op, fd, &mut ev) })?;
        Ok(())
    }

    /// EPOLL_CTL_ADD.
    pub fn register(&self, fd: RawFd, interest: Interest, token: u64) -> io::Result<()> {
        self.ctl(libc::EPOLL_CTL_ADD, fd, interest, token)
    }

    /// EPOLL_CTL_MOD.
    pub fn reregister(&self, fd: RawFd, interest: Interest, token: u64) -> io::Result<()> {
        self.ctl(libc::EPOLL_CTL_MOD, fd, interest, token)
    }

    /// EPOLL_CTL_DEL (closing a descriptor also removes it).
    pub fn deregister(&self, fd: RawFd) -> io::Result<()> {
        self.ctl(libc::EPOLL_CTL_DEL, fd, Interest::NONE, 0)
    }

    /// epoll_pwait2(2) (Linux 5.11, a ns timeout) where the C library has
    /// it and the kernel accepts it, else epoll_wait(2) with the timeout
    /// rounded up to whole ms; otherwise as [`wait`](Self::wait).
    pub fn wait_ns(&mut self, out: &mut Vec<Event>, timeout_ns: u64) -> io::Result<()> {
        #[cfg(target_env = "gnu")]
        if self.pwait2 {
            let ts = libc::timespec {
                tv_sec: (timeout_ns / 1_000_000_000) as libc::time_t,
                tv_nsec: (timeout_ns % 1_000_000_000) as _,
            };
            // SAFETY: `events` is a valid writable array of the length
            // passed; `ts` is valid for the call; a null sigmask leaves the
            // mask unchanged.
            let n = unsafe {
                libc::epoll_pwait2(
                    self.fd.as_raw_fd(),
                    self.events.as_mut_ptr(),
                    self.events.len() as i32,
                    &ts,
                    std::ptr::null(),
                )
            };
            if n >= 0 || io::Error::last_os_error().raw_os_error() != Some(libc::ENOSYS) {
                return self.collect(n, out);
            }
            self.pwait2 = false;
        }
        let ms = timeout_ns.div_ceil(1_000_000).min(i32::MAX as u64) as i32;
        // SAFETY: `events` is a valid writable array of the length passed.
        let n = unsafe {
            libc::epoll_wait(
                self.fd.as_raw_fd(),
                self.events.as_mut_ptr(),
                self.events.len() as i32,
                ms,
            )
        };
        self.collect(n, out)
    }

    /// The `n` events an epoll wait returned, into `out`; EINTR is an empty
    /// wake-up, any other error is returned.
    fn collect(&self, n: i32, out: &mut Vec<Event>) -> io::Result<()> {
        out.clear();
        if n < 0 {
            let e = io::Error::last_os_error();
            return if e.raw_os_error() == Some(libc::EINTR) {
                Ok(())
            } else {
                Err(e)
            };
        }
        for ev in &self.events[..n as usize] {
            let m = ev.events;
            out.push(Event {
                token: ev.u64,
                readable: m & libc::EPOLLIN as u32 != 0,
                writable: m & libc::EPOLLOUT as u32 != 0,
                hangup: m & (libc::EPOLLHUP | libc::EPOLLERR) as u32 != 0,
            });
        }
        Ok(())
    }

    /// epoll_wait(2) for at most `timeout_ms` (-1: forever): the events
    /// that are ready, into `out` (cleared first). EINTR is an empty
    /// wake-up.
    pub fn wait(&mut self, out: &mut Vec<Event>, timeout_ms: i32) {
        out.clear();
        // SAFETY: `events` is a valid writable array of the length passed.
        let n = unsafe {
            libc::epoll_wait(
                self.fd.as_raw_fd(),
                self.events.as_mut_ptr(),
                self.events.len() as i32,
                timeout_ms,
            )
        };
        let _ = self.collect(n.max(0), out);
    }
}

/// accept4(2) as [`accept_nonblocking`], the connection owned.
pub fn accept_owned(lfd: RawFd) -> Result<OwnedFd, Errno> {
    // SAFETY: accept4 returned a new descriptor that nobody else owns.
    accept_nonblocking(lfd).map(|fd| unsafe { OwnedFd::from_raw_fd(fd) })
}

/// A pollfd entry (poll(2)).
pub type PollFd = libc::pollfd;

/// A pollfd asking for POLLIN if `read` and POLLOUT if `write` on `fd`.
pub fn pollfd(fd: RawFd, read: bool, write: bool) -> PollFd {
    let mut events = 0;
    if read {
        events |= libc::POLLIN;
    }
    if write {
        events |= libc::POLLOUT;
    }
    libc::pollfd {
        fd,
        events,
        revents: 0,
    }
}

/// What poll(2) reported for one entry: (readable, writable, hang-up or
/// error).
pub fn revents(p: &PollFd) -> (bool, bool, bool) {
    let r = p.revents;
    (
        r & libc::POLLIN != 0,
        r & libc::POLLOUT != 0,
        r & (libc::POLLHUP | libc::POLLERR | libc::POLLNVAL) != 0,
    )
}

/// CPUs a cpu_set_t can name (sched_setaffinity(2)).
pub const CPU_SETSIZE: usize = libc::CPU_SETSIZE as usize;
