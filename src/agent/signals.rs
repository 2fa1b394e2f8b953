//! SIGTERM/SIGINT as a pollable file descriptor (signalfd), so the single
//! event loop notices a shutdown request within one poll(2) wake-up and no
//! signal handler ever runs concurrently with the loop.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

/// A signalfd for SIGTERM and SIGINT; those signals are blocked for normal
/// delivery while it exists.
pub struct Signals {
    fd: OwnedFd,
}

impl Signals {
    pub fn open() -> io::Result<Signals> {
        // SAFETY: sigset_t is plain data; sigemptyset/sigaddset initialise
        // it, and sigprocmask/signalfd only read it. The process is
        // single-threaded, so blocking in this thread blocks process-wide.
        unsafe {
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            libc::sigaddset(&mut set, libc::SIGTERM);
            libc::sigaddset(&mut set, libc::SIGINT);
            if libc::sigprocmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) != 0 {
                return Err(io::Error::last_os_error());
            }
            let fd = libc::signalfd(-1, &set, libc::SFD_NONBLOCK | libc::SFD_CLOEXEC);
            if fd < 0 {
                return Err(io::Error::last_os_error());
            }
            // SAFETY: fd is a fresh descriptor we exclusively own.
            Ok(Signals {
                fd: OwnedFd::from_raw_fd(fd),
            })
        }
    }

    pub fn fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// Returns the number of a pending signal, if any.
    pub fn take(&self) -> Option<i32> {
        let mut info = [0u8; 128]; // sizeof(struct signalfd_siginfo)
        // SAFETY: reading at most 128 bytes into a 128-byte buffer.
        let n = unsafe { libc::read(self.fd(), info.as_mut_ptr().cast(), info.len()) };
        if n == 128 {
            Some(u32::from_ne_bytes([info[0], info[1], info[2], info[3]]) as i32)
        } else {
            None
        }
    }
}
