//! One connection to the API server: a non-blocking TCP socket and a rustls
//! `ClientConnection` over it, moved only when poll(2) says so.
//!
//! Nothing here waits: `connect` returns while the TCP handshake is still
//! in flight, the TLS handshake advances with each [`Conn::pump`], and every
//! byte read is decrypted at once, so "no plaintext queued" really means
//! "nothing until the fd is readable" (no hidden buffers for poll to miss).

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::{AsRawFd, FromRawFd, RawFd};
use std::sync::Arc;

use rustls::{ClientConfig, ClientConnection};
use rustls_pki_types::ServerName;

/// An open (or opening) TLS connection.
pub(crate) struct Conn {
    sock: TcpStream,
    tls: ClientConnection,
    connecting: bool,
    addr: SocketAddr,
}

impl std::fmt::Debug for Conn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Conn")
            .field("addr", &self.addr)
            .field("connecting", &self.connecting)
            .finish()
    }
}

/// What one [`Conn::pump`] saw.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Pumped {
    /// Bytes read from the socket (TLS records, before decryption).
    pub(crate) read: usize,
    /// The peer closed the connection (TCP FIN or TLS close_notify).
    pub(crate) eof: bool,
}

impl Conn {
    /// Starts a TCP connect to `addr`; never blocks.
    pub(crate) fn connect(
        addr: SocketAddr,
        tls: Arc<ClientConfig>,
        name: ServerName<'static>,
    ) -> io::Result<Conn> {
        let sock = connect_nonblocking(&addr)?;
        let mut tls = ClientConnection::new(tls, name).map_err(io::Error::other)?;
        // Requests are small and built by us; let rustls hold the whole one
        // until the handshake is done.
        tls.set_buffer_limit(None);
        Ok(Conn {
            sock,
            tls,
            connecting: true,
            addr,
        })
    }

    pub(crate) fn fd(&self) -> RawFd {
        self.sock.as_raw_fd()
    }

    /// True until the TCP handshake finished.
    pub(crate) fn is_connecting(&self) -> bool {
        self.connecting
    }

    /// The poll(2) events to wait for.
    pub(crate) fn events(&self) -> libc::c_short {
        if self.connecting {
            libc::POLLOUT
        } else if self.tls.wants_write() {
            libc::POLLIN | libc::POLLOUT
        } else {
            libc::POLLIN
        }
    }

    /// Queues plaintext to send (encrypted once the handshake is done).
    pub(crate) fn send(&mut self, plaintext: &[u8]) -> io::Result<()> {
        self.tls.writer().write_all(plaintext)
    }

    /// Finishes a non-blocking connect: `Ok(false)` while in progress.
    fn check_connected(&mut self) -> io::Result<bool> {
        if !self.connecting {
            return Ok(true);
        }
        match self.sock.take_error() {
            Ok(Some(e)) | Err(e) => return Err(e),
            Ok(None) => {}
        }
        match self.sock.peer_addr() {
            Ok(_) => {
                self.connecting = false;
                Ok(true)
            }
            Err(e) if e.kind() == io::ErrorKind::NotConnected => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Moves what can move without waiting: finishes the connect, writes
    /// queued TLS records, reads at most `budget` bytes from the socket and
    /// appends the decrypted plaintext to `into`.
    pub(crate) fn pump(&mut self, into: &mut Vec<u8>, budget: usize) -> Result<Pumped, String> {
        let mut seen = Pumped::default();
        if !self
            .check_connected()
            .map_err(|e| format!("connect {}: {e}", self.addr))?
        {
            return Ok(seen);
        }
        self.flush()?;
        loop {
            let more = match self.tls.read_tls(&mut self.sock) {
                Ok(0) => {
                    seen.eof = true;
                    false
                }
                Ok(n) => {
                    seen.read += n;
                    seen.read < budget
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => false,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => true,
                Err(e) => return Err(format!("read: {e}")),
            };
            if let Err(e) = self.tls.process_new_packets() {
                // Let rustls tell the server why (best effort).
                let _ = self.tls.write_tls(&mut self.sock);
                return Err(format!("TLS: {e}"));
            }
            self.drain_plaintext(into, &mut seen.eof)?;
            if seen.eof || !more {
                break;
            }
        }
        self.flush()?;
        Ok(seen)
    }

    fn flush(&mut self) -> Result<(), String> {
        while self.tls.wants_write() {
            match self.tls.write_tls(&mut self.sock) {
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(format!("write: {e}")),
            }
        }
        Ok(())
    }

    fn drain_plaintext(&mut self, into: &mut Vec<u8>, eof: &mut bool) -> Result<(), String> {
        let mut buf = [0u8; 16 * 1024];
        loop {
            match self.tls.reader().read(&mut buf) {
                Ok(0) => {
                    *eof = true;
                    return Ok(());
                }
                Ok(n) => into.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                    *eof = true;
                    return Ok(());
                }
                Err(e) => return Err(format!("TLS read: {e}")),
            }
        }
    }
}

/// Opens a TCP socket and starts connecting without waiting. Keepalive
/// makes a silently vanished server show up as an error on the fd within
/// about a minute instead of at the stream deadline.
fn connect_nonblocking(addr: &SocketAddr) -> io::Result<TcpStream> {
    let family = match addr {
        SocketAddr::V4(_) => libc::AF_INET,
        SocketAddr::V6(_) => libc::AF_INET6,
    };
    // SAFETY: plain socket(2) call; the fd is owned by the TcpStream below.
    let fd = unsafe {
        libc::socket(
            family,
            libc::SOCK_STREAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            0,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd is a fresh socket that nothing else owns.
    let stream = unsafe { TcpStream::from_raw_fd(fd) };
    // SAFETY: sockaddr_storage is plain data; all-zero is a valid value.
    let mut storage: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let len = match addr {
        SocketAddr::V4(a) => {
            // SAFETY: sockaddr_storage is large enough and suitably aligned
            // for sockaddr_in.
            let sin = unsafe {
                &mut *(&mut storage as *mut libc::sockaddr_storage as *mut libc::sockaddr_in)
            };
            sin.sin_family = libc::AF_INET as libc::sa_family_t;
            sin.sin_port = a.port().to_be();
            sin.sin_addr.s_addr = u32::from_ne_bytes(a.ip().octets());
            std::mem::size_of::<libc::sockaddr_in>()
        }
        SocketAddr::V6(a) => {
            // SAFETY: as above, for sockaddr_in6.
            let sin6 = unsafe {
                &mut *(&mut storage as *mut libc::sockaddr_storage as *mut libc::sockaddr_in6)
            };
            sin6.sin6_family = libc::AF_INET6 as libc::sa_family_t;
            sin6.sin6_port = a.port().to_be();
            sin6.sin6_addr.s6_addr = a.ip().octets();
            sin6.sin6_flowinfo = a.flowinfo();
            sin6.sin6_scope_id = a.scope_id();
            std::mem::size_of::<libc::sockaddr_in6>()
        }
    };
    // SAFETY: storage holds a valid sockaddr of `len` bytes.
    let r = unsafe {
        libc::connect(
            fd,
            &storage as *const libc::sockaddr_storage as *const libc::sockaddr,
            len as libc::socklen_t,
        )
    };
    if r < 0 {
        let e = io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EINPROGRESS) {
            return Err(e);
        }
    }
    let _ = stream.set_nodelay(true);
    for (level, opt, val) in [
        (libc::SOL_SOCKET, libc::SO_KEEPALIVE, 1),
        (libc::IPPROTO_TCP, libc::TCP_KEEPIDLE, 30),
        (libc::IPPROTO_TCP, libc::TCP_KEEPINTVL, 10),
        (libc::IPPROTO_TCP, libc::TCP_KEEPCNT, 3),
    ] {
        let v: libc::c_int = val;
        // SAFETY: setsockopt with a pointer to a c_int of the given size.
        let r = unsafe {
            libc::setsockopt(
                fd,
                level,
                opt,
                &v as *const libc::c_int as *const libc::c_void,
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if r < 0 {
            log::debug!("kube: setsockopt({opt}): {}", io::Error::last_os_error());
        }
    }
    Ok(stream)
}
