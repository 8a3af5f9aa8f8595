//! The control channel between the parent and a live sandbox's init: a `SOCK_SEQPACKET`
//! unix socketpair created before `clone`.
//!
//! Parent -> init: [`Op::Go`] (the id maps are written), [`Op::Exec`] (one command: a header
//! and NUL-separated strings, with the command's stdin, stdout and stderr pipes attached
//! by `SCM_RIGHTS`), [`Op::Spawn`] (the same for a long-running process), [`Op::Kill`] (the
//! deadline passed).
//! Init -> parent: a fixed [`REPLY_LEN`]-byte [`Reply`]: ready (with the egress listener
//! attached when there is one), a setup failure, started (a spawned command passed
//! `execve`), or the wait status of a finished command.
//!
//! Guarantees: a request is at most [`MAX_MESSAGE`] bytes with at most [`MAX_ARGS`]
//! arguments, [`MAX_ENV`] variables and [`MAX_CANDIDATES`] program paths; the parent refuses
//! bigger ones with [`SandboxError::Invalid`] before sending, and init rejects (without
//! running anything) any message that does not parse. Init parses into fixed-size arrays in
//! memory the parent allocated before `clone`: nothing here allocates on the init side. Does not authenticate the peer: the
//! socketpair is private to the parent and init (close-on-exec, closed in the command
//! before `execve`).

use std::ffi::c_char;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use super::command::CommandPlan;
use super::report::{REPORT_LEN, Report, errno};
use crate::SandboxError;

/// Largest serialized request (header, cwd, program paths, argv, environment).
pub(crate) const MAX_MESSAGE: usize = 64 * 1024;
/// Most arguments (argv entries) in one request.
pub(crate) const MAX_ARGS: usize = 1024;
/// Most environment variables.
pub(crate) const MAX_ENV: usize = 256;
/// Most program paths tried (the profile's `PATH` entries).
pub(crate) const MAX_CANDIDATES: usize = 64;
/// Length of one reply from init.
pub(crate) const REPLY_LEN: usize = 4 + REPORT_LEN;
/// Descriptors attached to an exec request: stdin, stdout, stderr.
pub(crate) const EXEC_FDS: usize = 3;

const HEADER: usize = 16;

/// What the parent asks of init. The first byte of every request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum Op {
    Go = b'G',
    Exec = b'E',
    /// An exec whose start is acknowledged with [`Reply::Started`] (a long-running
    /// process: the parent must not wait for its end to know it runs).
    Spawn = b'S',
    Kill = b'K',
}

/// What init answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reply {
    /// Setup done; the next message may be an exec.
    Ready,
    /// A setup step failed: at start, or in the command's process before `execve` (every
    /// process it could have started is gone, as after [`Reply::Status`]).
    Failed(Report),
    /// The command ended and every other process in the sandbox is gone. `killed`: it
    /// ended because the parent sent [`Op::Kill`].
    Status { killed: bool, status: libc::c_int },
    /// The command of an [`Op::Spawn`] passed `execve`; its [`Reply::Status`] follows
    /// when it ends.
    Started,
}

impl Reply {
    pub(crate) fn encode(self) -> [u8; REPLY_LEN] {
        let mut out = [0u8; REPLY_LEN];
        let (kind, body) = match self {
            Reply::Ready => (1u32, [0u8; REPORT_LEN]),
            Reply::Started => (4, [0u8; REPORT_LEN]),
            Reply::Failed(r) => (2, r.encode()),
            Reply::Status { killed, status } => {
                let mut b = [0u8; REPORT_LEN];
                b[..4].copy_from_slice(&u32::from(killed).to_ne_bytes());
                b[8..].copy_from_slice(&status.to_ne_bytes());
                (3, b)
            }
        };
        out[..4].copy_from_slice(&kind.to_ne_bytes());
        out[4..].copy_from_slice(&body);
        out
    }

    pub(crate) fn decode(bytes: &[u8]) -> Option<Reply> {
        let kind = u32::from_ne_bytes(bytes.get(..4)?.try_into().ok()?);
        let body: [u8; REPORT_LEN] = bytes.get(4..REPLY_LEN)?.try_into().ok()?;
        match kind {
            1 => Some(Reply::Ready),
            4 => Some(Reply::Started),
            2 => Report::decode(&body).map(Reply::Failed),
            3 => Some(Reply::Status {
                killed: body[..4] != [0; 4],
                status: libc::c_int::from_ne_bytes(body[8..].try_into().ok()?),
            }),
            _ => None,
        }
    }
}

/// Parent side: serialize `cmd` into an exec request, checking every bound.
pub(crate) fn encode_exec(cmd: &CommandPlan) -> Result<Vec<u8>, SandboxError> {
    encode_request(cmd, Op::Exec)
}

/// Parent side: serialize `cmd` into a request for `op` ([`Op::Exec`] or [`Op::Spawn`]).
pub(crate) fn encode_request(cmd: &CommandPlan, op: Op) -> Result<Vec<u8>, SandboxError> {
    let (argv, env) = (cmd.argv(), cmd.env());
    let too_many = |what: &str, n: usize, max: usize| {
        SandboxError::Invalid(format!(
            "{n} {what}: the sandbox accepts at most {max}; pass data through a file in the \
             workspace or stdin instead"
        ))
    };
    if argv.len() > MAX_ARGS {
        return Err(too_many("arguments", argv.len(), MAX_ARGS));
    }
    if env.len() > MAX_ENV {
        return Err(too_many("environment variables", env.len(), MAX_ENV));
    }
    if cmd.candidates.len() > MAX_CANDIDATES {
        return Err(too_many(
            "PATH entries",
            cmd.candidates.len(),
            MAX_CANDIDATES,
        ));
    }
    let strings = std::iter::once(cmd.cwd.as_c_str())
        .chain(cmd.candidates.iter().map(|c| c.as_c_str()))
        .chain(argv.iter().map(|c| c.as_c_str()))
        .chain(env.iter().map(|c| c.as_c_str()));
    let size = HEADER
        + strings
            .clone()
            .map(|s| s.to_bytes_with_nul().len())
            .sum::<usize>();
    if size > MAX_MESSAGE {
        return Err(SandboxError::Invalid(format!(
            "the command line, environment and working directory take {size} bytes; the \
             sandbox accepts at most {MAX_MESSAGE}; pass large data through a file in the \
             workspace or stdin instead"
        )));
    }
    let mut msg = Vec::with_capacity(size);
    msg.extend_from_slice(&[op as u8, 0, 0, 0]);
    for n in [cmd.candidates.len(), argv.len(), env.len()] {
        msg.extend_from_slice(&(n as u32).to_ne_bytes());
    }
    for s in strings {
        msg.extend_from_slice(s.to_bytes_with_nul());
    }
    Ok(msg)
}

/// An exec request parsed in place: pointers into the received buffer, NULL-terminated
/// arrays ready for `execve`. Lives in init's scratch memory (allocated before `clone`).
pub(crate) struct Parsed {
    pub cwd: *const c_char,
    pub candidates: [*const c_char; MAX_CANDIDATES],
    pub n_candidates: usize,
    pub argv: [*const c_char; MAX_ARGS + 1],
    pub env: [*const c_char; MAX_ENV + 1],
}

impl Parsed {
    #[cfg(test)]
    pub(crate) const fn empty() -> Parsed {
        Parsed {
            cwd: std::ptr::null(),
            candidates: [std::ptr::null(); MAX_CANDIDATES],
            n_candidates: 0,
            argv: [std::ptr::null(); MAX_ARGS + 1],
            env: [std::ptr::null(); MAX_ENV + 1],
        }
    }

    /// Init side: parse `msg` (an exec request) into `self`. No allocation. `None` when the
    /// message is malformed or exceeds a bound. The pointers borrow `msg`.
    pub(crate) fn parse(&mut self, msg: &[u8]) -> Option<()> {
        let count = |i: usize| -> Option<usize> {
            let b = msg.get(4 + 4 * i..8 + 4 * i)?;
            usize::try_from(u32::from_ne_bytes(b.try_into().ok()?)).ok()
        };
        let (nc, na, ne) = (count(0)?, count(1)?, count(2)?);
        let op = *msg.first()?;
        if (op != Op::Exec as u8 && op != Op::Spawn as u8)
            || nc > MAX_CANDIDATES
            || na > MAX_ARGS
            || ne > MAX_ENV
        {
            return None;
        }
        if na == 0 || nc == 0 {
            return None;
        }
        let mut rest = msg.get(HEADER..)?;
        let mut next = || -> Option<*const c_char> {
            let end = rest.iter().position(|&b| b == 0)?;
            let s = rest.as_ptr().cast::<c_char>();
            rest = rest.get(end + 1..)?;
            Some(s)
        };
        self.cwd = next()?;
        for slot in self.candidates.iter_mut().take(nc) {
            *slot = next()?;
        }
        self.n_candidates = nc;
        for slot in self.argv.iter_mut().take(na) {
            *slot = next()?;
        }
        *self.argv.get_mut(na)? = std::ptr::null();
        for slot in self.env.iter_mut().take(ne) {
            *slot = next()?;
        }
        *self.env.get_mut(ne)? = std::ptr::null();
        rest.is_empty().then_some(())
    }

    /// Child side: `execve` each candidate in turn, as `CommandPlan::exec` did. Returns only
    /// on failure, with the errno that best explains it.
    pub(crate) fn exec(&self) -> i32 {
        let mut best = libc::ENOENT;
        for path in self.candidates.iter().take(self.n_candidates) {
            // SAFETY: `path` points at a NUL-terminated string in the received buffer;
            // argv and env are NULL-terminated arrays of such pointers, all alive here.
            unsafe { libc::execve(*path, self.argv.as_ptr(), self.env.as_ptr()) };
            match errno() {
                libc::ENOENT | libc::ENOTDIR => {}
                libc::EACCES => best = libc::EACCES,
                other => return other,
            }
        }
        best
    }
}

/// Space for the control message carrying up to [`EXEC_FDS`] descriptors, aligned for
/// `cmsghdr`.
#[repr(C, align(8))]
struct CmsgSpace([u8; 64]);

/// Send `bytes` with `fds` attached (SCM_RIGHTS). No allocation; usable in init.
pub(crate) fn send(sock: RawFd, bytes: &[u8], fds: &[RawFd]) -> Result<(), i32> {
    let mut iov = libc::iovec {
        iov_base: bytes.as_ptr() as *mut libc::c_void,
        iov_len: bytes.len(),
    };
    let mut space = CmsgSpace([0; 64]);
    // SAFETY: msghdr is plain old data; all-zero is a valid empty header.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    if !fds.is_empty() {
        let data_len = std::mem::size_of_val(fds);
        // SAFETY: CMSG_SPACE is a pure size computation.
        let needed = unsafe { libc::CMSG_SPACE(data_len as u32) } as usize;
        if needed > space.0.len() {
            return Err(libc::EINVAL);
        }
        msg.msg_control = space.0.as_mut_ptr().cast();
        msg.msg_controllen = needed as _;
        // SAFETY: msg_control points at `needed` zeroed, aligned bytes, so CMSG_FIRSTHDR
        // returns a header inside them and CMSG_DATA has room for `data_len` bytes.
        unsafe {
            let cmsg = libc::CMSG_FIRSTHDR(&msg);
            (*cmsg).cmsg_level = libc::SOL_SOCKET;
            (*cmsg).cmsg_type = libc::SCM_RIGHTS;
            (*cmsg).cmsg_len = libc::CMSG_LEN(data_len as u32) as _;
            std::ptr::copy_nonoverlapping(
                fds.as_ptr().cast::<u8>(),
                libc::CMSG_DATA(cmsg),
                data_len,
            );
        }
    }
    loop {
        // SAFETY: `msg` points at live iovec and control buffers for the call.
        let n = unsafe { libc::sendmsg(sock, &msg, libc::MSG_NOSIGNAL) };
        if n >= 0 {
            return if n as usize == bytes.len() {
                Ok(())
            } else {
                Err(libc::EMSGSIZE)
            };
        }
        let e = errno();
        if e != libc::EINTR {
            return Err(e);
        }
    }
}

/// Receive one message into `buf`, storing up to `fds.len()` attached descriptors
/// (close-on-exec) in `fds` (-1 for missing ones). Returns the message length; 0 means the
/// peer closed. A truncated message is an error (`EMSGSIZE`), its descriptors closed.
/// No allocation; usable in init.
pub(crate) fn recv(sock: RawFd, buf: &mut [u8], fds: &mut [RawFd]) -> Result<usize, i32> {
    fds.fill(-1);
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    let mut space = CmsgSpace([0; 64]);
    // SAFETY: msghdr is plain old data; all-zero is a valid empty header.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = space.0.as_mut_ptr().cast();
    msg.msg_controllen = space.0.len() as _;
    let n = loop {
        // SAFETY: `msg` points at live, writable iovec and control buffers for the call.
        let n = unsafe { libc::recvmsg(sock, &mut msg, libc::MSG_CMSG_CLOEXEC) };
        if n >= 0 {
            break n as usize;
        }
        let e = errno();
        if e != libc::EINTR {
            return Err(e);
        }
    };
    let mut stored = 0;
    let mut extra = false;
    // SAFETY: the kernel filled msg_control/msg_controllen; the CMSG_* macros walk only
    // within it, and each SCM_RIGHTS payload holds cmsg_len - CMSG_LEN(0) bytes of fds.
    unsafe {
        let mut cmsg = libc::CMSG_FIRSTHDR(&msg);
        while !cmsg.is_null() {
            if (*cmsg).cmsg_level == libc::SOL_SOCKET && (*cmsg).cmsg_type == libc::SCM_RIGHTS {
                let bytes = (*cmsg).cmsg_len as usize - libc::CMSG_LEN(0) as usize;
                let data = libc::CMSG_DATA(cmsg).cast::<RawFd>();
                for i in 0..bytes / std::mem::size_of::<RawFd>() {
                    let fd = std::ptr::read_unaligned(data.add(i));
                    match fds.get_mut(stored) {
                        Some(slot) => {
                            *slot = fd;
                            stored += 1;
                        }
                        None => {
                            libc::close(fd);
                            extra = true;
                        }
                    }
                }
            }
            cmsg = libc::CMSG_NXTHDR(&msg, cmsg);
        }
    }
    if extra || msg.msg_flags & (libc::MSG_TRUNC | libc::MSG_CTRUNC) != 0 {
        for fd in fds.iter_mut().filter(|fd| **fd >= 0) {
            // SAFETY: closing descriptors this call just received.
            unsafe { libc::close(*fd) };
            *fd = -1;
        }
        return Err(libc::EMSGSIZE);
    }
    Ok(n)
}

/// Parent side: receive one reply, owning any attached descriptor.
pub(crate) fn recv_reply(sock: &OwnedFd) -> Result<Option<(Reply, Option<OwnedFd>)>, i32> {
    let mut buf = [0u8; REPLY_LEN];
    let mut fds = [-1 as RawFd; 1];
    let n = recv(sock.as_raw_fd(), &mut buf, &mut fds)?;
    // SAFETY: a non-negative fd was just received by this process and is owned by no one.
    let fd = (fds[0] >= 0).then(|| unsafe { OwnedFd::from_raw_fd(fds[0]) });
    if n == 0 {
        return Ok(None);
    }
    match Reply::decode(buf.get(..n).unwrap_or(&[])) {
        Some(r) => Ok(Some((r, fd))),
        None => Err(libc::EPROTO),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ExecRequest;
    use std::ffi::CStr;
    use std::time::Duration;

    fn plan(argv: &[&str]) -> CommandPlan {
        let req = ExecRequest {
            argv: argv.iter().map(|s| s.to_string()).collect(),
            cwd: Some("sub".into()),
            stdin: Vec::new(),
            timeout: Duration::from_secs(1),
            output_limit: 1,
        };
        CommandPlan::new(&req, &[("PATH".into(), "/a:/b".into())]).unwrap()
    }

    fn s(p: *const c_char) -> String {
        // SAFETY: test pointers point at NUL-terminated strings in the message buffer.
        unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
    }

    #[test]
    fn an_exec_request_round_trips() {
        let msg = encode_exec(&plan(&["ls", "-l", ""])).unwrap();
        let mut p = Box::new(Parsed::empty());
        p.parse(&msg).unwrap();
        assert_eq!(s(p.cwd), "/workspace/sub");
        assert_eq!(p.n_candidates, 2);
        assert_eq!(
            (s(p.candidates[0]), s(p.candidates[1])),
            ("/a/ls".into(), "/b/ls".into())
        );
        assert_eq!(
            (s(p.argv[0]), s(p.argv[1]), s(p.argv[2])),
            ("ls".into(), "-l".into(), "".into())
        );
        assert!(p.argv[3].is_null());
        assert_eq!(s(p.env[0]), "PATH=/a:/b");
        assert!(p.env[1].is_null());
    }

    #[test]
    fn a_spawn_request_parses_like_an_exec() {
        let msg = encode_request(&plan(&["cat"]), Op::Spawn).unwrap();
        assert_eq!(msg[0], Op::Spawn as u8);
        let mut p = Box::new(Parsed::empty());
        p.parse(&msg).unwrap();
        assert_eq!(s(p.argv[0]), "cat");
        let mut other = msg.clone();
        other[0] = Op::Kill as u8;
        assert!(p.parse(&other).is_none());
    }

    #[test]
    fn malformed_or_oversized_requests_are_rejected() {
        let msg = encode_exec(&plan(&["ls"])).unwrap();
        let mut p = Box::new(Parsed::empty());
        // Cut anywhere: a missing string or a missing NUL.
        for cut in 0..msg.len() {
            assert!(p.parse(&msg[..cut]).is_none(), "cut at {cut}");
        }
        let mut extra = msg.clone();
        extra.extend_from_slice(b"junk\0");
        assert!(p.parse(&extra).is_none());
        let mut counts = msg.clone();
        counts[8..12].copy_from_slice(&(MAX_ARGS as u32 + 1).to_ne_bytes());
        assert!(p.parse(&counts).is_none());

        let big = "x".repeat(MAX_MESSAGE);
        let err = encode_exec(&plan(&["echo", &big])).unwrap_err();
        assert!(err.to_string().contains("at most 65536"), "{err}");
        let many: Vec<&str> = std::iter::repeat_n("a", MAX_ARGS + 1).collect();
        let err = encode_exec(&plan(&many)).unwrap_err();
        assert!(err.to_string().contains("1025 arguments"), "{err}");
    }

    #[test]
    fn replies_round_trip() {
        for r in [
            Reply::Ready,
            Reply::Started,
            Reply::Status {
                killed: true,
                status: 9,
            },
            Reply::Failed(Report {
                stage: super::super::report::Stage::Fork,
                index: 0,
                errno: libc::EAGAIN,
            }),
        ] {
            assert_eq!(Reply::decode(&r.encode()), Some(r));
        }
    }
}
