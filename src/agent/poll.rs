//! poll(2) over the loop's file descriptors.

use std::io;
use std::os::fd::RawFd;
use std::time::Duration;

/// Waits until one of `fds` (with the poll events wanted for each) is ready
/// or `timeout` passes; returns which ones are ready, counting hang-ups and
/// errors as ready (a closed stream must be noticed too).
pub fn wait(fds: &[(RawFd, libc::c_short)], timeout: Option<Duration>) -> io::Result<Vec<bool>> {
    let mut pfds: Vec<libc::pollfd> = fds
        .iter()
        .map(|&(fd, events)| libc::pollfd {
            fd,
            events,
            revents: 0,
        })
        .collect();
    let ms: libc::c_int = match timeout {
        None => -1,
        // Round up so a 0.4 ms deadline does not become a busy 0 ms poll.
        Some(t) => t.as_micros().div_ceil(1000).min(i32::MAX as u128) as libc::c_int,
    };
    loop {
        // SAFETY: pfds is a valid, exclusively borrowed array of pollfd of
        // the length passed; negative fds are ignored by the kernel.
        let n = unsafe { libc::poll(pfds.as_mut_ptr(), pfds.len() as libc::nfds_t, ms) };
        if n >= 0 {
            break;
        }
        let err = io::Error::last_os_error();
        if err.kind() != io::ErrorKind::Interrupted {
            return Err(err);
        }
    }
    Ok(pfds.iter().map(|p| p.revents != 0).collect())
}
