//! Networking inside the sandbox: a fresh network namespace with only `lo`, brought up.
//!
//! Guarantees: the sandbox has no interface but its own loopback, so it can talk to
//! itself on 127.0.0.1 and cannot reach the host's loopback or any other network. Does not
//! provide egress: that is the egress proxy's job, reached through a socket (later).

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
