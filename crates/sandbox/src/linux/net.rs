//! Networking inside the sandbox: a fresh network namespace with only `lo`, brought up.
//! (Made by init's `clone`, or in advance by the worker's armed thread as root on cgroup v1:
//! then owned by the host's user namespace, with unprivileged ports from 0.)
//!
//! Guarantees: the sandbox has no interface but its own loopback, so it can talk to
//! itself on 127.0.0.1 and cannot reach the host's loopback or any other network. Does not
//! provide egress: that is the egress proxy's job. With an egress port, init creates the
//! sandbox's only listening socket on that port ([`egress_listener`]) and hands it to the
//! parent (the proxy), so that connections to `127.0.0.1:PORT` from inside reach the proxy,
//! and nothing inside can bind that port itself (it is taken; no `SO_REUSEPORT`).

use super::report::errno;

/// Child side: set IFF_UP on `lo` with SIOCGIFFLAGS/SIOCSIFFLAGS. No allocation.
pub(crate) fn bring_up_loopback() -> Result<(), i32> {
    // SAFETY: socket() takes integer arguments only.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(errno());
    }
    // SAFETY: ifreq is plain old data; all-zero is a valid value (empty name, zero flags).
    let mut ifr: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in ifr.ifr_name.iter_mut().zip(b"lo\0") {
        *dst = *src as libc::c_char;
    }
    // SAFETY: `ifr` is a valid, NUL-terminated ifreq that outlives the call; SIOCGIFFLAGS
    // writes only its flags member.
    let result = if unsafe { libc::ioctl(fd, libc::SIOCGIFFLAGS, &mut ifr) } < 0 {
        Err(errno())
    } else {
        // SAFETY: SIOCGIFFLAGS just initialised the flags member of the union.
        unsafe {
            ifr.ifr_ifru.ifru_flags |= (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short;
        }
        // SAFETY: as above; SIOCSIFFLAGS only reads `ifr`.
        if unsafe { libc::ioctl(fd, libc::SIOCSIFFLAGS, &ifr) } < 0 {
            Err(errno())
        } else {
            Ok(())
        }
    };
    // SAFETY: `fd` is the socket opened above and not used afterwards.
    unsafe { libc::close(fd) };
    result
}

/// Child side: a TCP socket listening on 127.0.0.1:`port` of the sandbox's network
/// namespace. Error: (step: 0 socket, 1 bind, 2 listen; errno). No allocation.
pub(crate) fn egress_listener(port: u16) -> Result<libc::c_int, (u32, i32)> {
    // SAFETY: socket() takes integer arguments only.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err((0, errno()));
    }
    // SAFETY: sockaddr_in is plain old data; all-zero is a valid value.
    let mut addr: libc::sockaddr_in = unsafe { std::mem::zeroed() };
    addr.sin_family = libc::AF_INET as libc::sa_family_t;
    addr.sin_port = port.to_be();
    addr.sin_addr.s_addr = u32::from(std::net::Ipv4Addr::LOCALHOST).to_be();
    let len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
    // SAFETY: `addr` is a live sockaddr_in of `len` bytes.
    if unsafe { libc::bind(fd, (&raw const addr).cast(), len) } != 0 {
        let e = errno();
        // SAFETY: closing the socket opened above.
        unsafe { libc::close(fd) };
        return Err((1, e));
    }
    // SAFETY: listen with integer arguments.
    if unsafe { libc::listen(fd, 128) } != 0 {
        let e = errno();
        // SAFETY: closing the socket opened above.
        unsafe { libc::close(fd) };
        return Err((2, e));
    }
    Ok(fd)
}
