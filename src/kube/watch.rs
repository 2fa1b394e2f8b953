//! A watch stream that lives inside the agent's single poll(2) loop.
//!
//! # Why not ureq
//! ureq 3 is blocking by design. Its unversioned `Connector`/`Transport`
//! API would let a custom connector remember the socket's fd, and a body
//! read that hits `timeout_per_read` returns an error without dropping the
//! connection. But two things make it a poor fit for a poll loop:
//! * readiness is invisible: bytes already decrypted into rustls' or ureq's
//!   buffers do not show up on the fd, so after every wakeup we would have
//!   to read until a timeout fires — each wakeup then blocks for at least
//!   the smallest socket timeout, and relies on ureq keeping internal state
//!   consistent across timed-out reads, which it does not promise;
//! * connect, TLS handshake and response head are blocking: an unreachable
//!   API server would freeze the loop (and netlink events) for the whole
//!   connect + request timeout on every reconnect.
//!
//! # What this does instead
//! A non-blocking TCP socket (non-blocking `connect`, TCP keepalive), a
//! rustls `ClientConnection` built from the *same* `ClientConfig` as the
//! request client (same CA, same client certificate), a hand-written
//! HTTP/1.1 `GET` and a push parser for the response head and chunked body
//! (`http1.rs`), and a line splitter for the JSON events (`events.rs`).
//! Every byte we read is decrypted and decoded at once into our own queue,
//! so "nothing queued" really means "nothing until the fd is readable".
//!
//! # Contract with the event loop
//! * Put [`Watch::raw_fd`] with [`Watch::poll_events`] in the poll set
//!   (the fd is -1 once the stream is closed; poll(2) ignores negative fds),
//!   and use [`Watch::timeout`] as an upper bound for the poll timeout.
//! * When poll reports anything for the fd (or the timeout passes), call
//!   [`Watch::try_next`] until it returns [`WatchPoll::Pending`] or
//!   [`WatchPoll::Ended`]. Each call does at most a bounded amount of
//!   non-blocking I/O (256 KiB), so one busy stream cannot starve netlink.
//! * `Ended`: the server closed the stream (its `timeoutSeconds` elapsed)
//!   or sent an ERROR event: start a new watch from the last
//!   resourceVersion, or re-list after a 410 ([`WatchEvent::is_gone`] /
//!   [`KubeError::is_gone`]). Pacing reconnects is the caller's job.
//!
//! Idle cost is zero: nothing runs until the kernel reports data, a dead
//! peer (keepalive), or a deadline.

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::{AsRawFd, FromRawFd, RawFd};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::{ClientConfig, ClientConnection};
use rustls_pki_types::ServerName;

use super::KubeError;
use super::events::{EventLines, WatchEvent};
use super::http1::{BodyDecoder, parse_head};

/// Time allowed for the TCP connect to one address.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Time allowed from connected to response head (TLS + request + head).
pub const HEAD_TIMEOUT: Duration = Duration::from_secs(10);
/// Slack after the server-side `timeoutSeconds` before we call the stream
/// dead ourselves.
const END_GRACE: Duration = Duration::from_secs(30);
/// Most bytes read from the socket per `try_next` call.
const READ_BUDGET: usize = 256 * 1024;
/// Most bytes of an error body we keep for the message.
const MAX_ERROR_BODY: usize = 64 * 1024;

/// What [`Watch::try_next`] found.
#[derive(Debug, Clone, PartialEq)]
pub enum WatchPoll {
    /// An event; call again, more may be queued.
    Event(WatchEvent),
    /// Nothing until the fd is ready or the timeout passes.
    Pending,
    /// The stream is over; start a new watch.
    Ended,
}

/// Everything needed to open a watch connection.
pub(crate) struct WatchTarget {
    pub(crate) addrs: Vec<SocketAddr>,
    pub(crate) server_name: ServerName<'static>,
    pub(crate) tls: Arc<ClientConfig>,
    pub(crate) authority: String,
    /// Request target: base path, resource path and query.
    pub(crate) path: String,
    pub(crate) token: Option<String>,
    pub(crate) user_agent: String,
    pub(crate) timeout_seconds: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Connecting,
    /// TLS handshake, request, response head.
    Head,
    /// Response body.
    Body,
    Ended,
}

/// An open (or opening) watch stream.
pub struct Watch {
    path: String,
    addrs: Vec<SocketAddr>,
    next_addr: usize,
    server_name: ServerName<'static>,
    tls_config: Arc<ClientConfig>,
    request: Vec<u8>,
    sock: Option<TcpStream>,
    tls: Option<ClientConnection>,
    phase: Phase,
    deadline: Instant,
    stream_timeout: Duration,
    head: Vec<u8>,
    status: u16,
    body: Option<BodyDecoder>,
    error_body: Vec<u8>,
    lines: EventLines,
    queue: VecDeque<WatchEvent>,
    failure: Option<KubeError>,
}

impl std::fmt::Debug for Watch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Watch")
            .field("path", &self.path)
            .field("phase", &self.phase)
            .field("queued", &self.queue.len())
            .finish()
    }
}

impl Watch {
    /// Starts connecting; never blocks (addresses are already resolved).
    pub(crate) fn start(target: WatchTarget) -> Result<Watch, KubeError> {
        let mut request = format!(
            "GET {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: {}\r\nAccept: application/json\r\nConnection: close\r\n",
            target.path, target.authority, target.user_agent
        );
        if let Some(t) = &target.token {
            request.push_str("Authorization: Bearer ");
            request.push_str(t);
            request.push_str("\r\n");
        }
        request.push_str("\r\n");
        let mut w = Watch {
            path: target.path,
            addrs: target.addrs,
            next_addr: 0,
            server_name: target.server_name,
            tls_config: target.tls,
            request: request.into_bytes(),
            sock: None,
            tls: None,
            phase: Phase::Connecting,
            deadline: Instant::now(),
            stream_timeout: Duration::from_secs(u64::from(target.timeout_seconds)) + END_GRACE,
            head: Vec::new(),
            status: 0,
            body: None,
            error_body: Vec::new(),
            lines: EventLines::default(),
            queue: VecDeque::new(),
            failure: None,
        };
        w.connect_next()?;
        Ok(w)
    }

    /// The socket to poll, or -1 once closed.
    pub fn raw_fd(&self) -> RawFd {
        self.sock.as_ref().map_or(-1, |s| s.as_raw_fd())
    }

    /// The poll(2) events to wait for.
    pub fn poll_events(&self) -> libc::c_short {
        match self.phase {
            Phase::Connecting => libc::POLLOUT,
            Phase::Head | Phase::Body => {
                if self.tls.as_ref().is_some_and(|t| t.wants_write()) {
                    libc::POLLIN | libc::POLLOUT
                } else {
                    libc::POLLIN
                }
            }
            Phase::Ended => 0,
        }
    }

    /// How long poll may sleep before [`Watch::try_next`] must run again
    /// (a deadline passes then). Zero when events are already queued.
    pub fn timeout(&self) -> Duration {
        if !self.queue.is_empty() || self.failure.is_some() {
            return Duration::ZERO;
        }
        match self.phase {
            Phase::Ended => Duration::MAX,
            _ => self.deadline.saturating_duration_since(Instant::now()),
        }
    }

    /// The request path and query, for log lines.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// Advances the stream without blocking and returns the next event.
    pub fn try_next(&mut self) -> Result<WatchPoll, KubeError> {
        if let Some(ev) = self.queue.pop_front() {
            return Ok(WatchPoll::Event(ev));
        }
        if let Some(e) = self.failure.take() {
            return Err(e);
        }
        if self.phase == Phase::Ended {
            return Ok(WatchPoll::Ended);
        }
        if let Err(e) = self.advance() {
            self.close();
            // Events decoded before the failure still count.
            if self.queue.is_empty() {
                return Err(e);
            }
            self.failure = Some(e);
        }
        if let Some(ev) = self.queue.pop_front() {
            return Ok(WatchPoll::Event(ev));
        }
        if self.phase == Phase::Ended {
            return Ok(WatchPoll::Ended);
        }
        if Instant::now() >= self.deadline {
            if self.phase == Phase::Connecting && self.next_addr < self.addrs.len() {
                log::debug!("kube: watch: connect timed out, trying the next address");
                self.connect_next()?;
                return Ok(WatchPoll::Pending);
            }
            let what = match self.phase {
                Phase::Connecting => "connecting",
                Phase::Head => "waiting for the response",
                _ => "the stream outlived its timeoutSeconds",
            };
            self.close();
            return Err(KubeError::Timeout {
                path: self.path.clone(),
                message: what.to_string(),
            });
        }
        Ok(WatchPoll::Pending)
    }

    /// Drops the connection; further calls return `Ended`.
    pub fn close(&mut self) {
        self.tls = None;
        self.sock = None;
        self.phase = Phase::Ended;
    }

    fn transport(&self, message: impl Into<String>) -> KubeError {
        KubeError::Transport {
            path: self.path.clone(),
            message: message.into(),
        }
    }

    fn connect_next(&mut self) -> Result<(), KubeError> {
        while let Some(addr) = self.addrs.get(self.next_addr).copied() {
            self.next_addr += 1;
            match connect_nonblocking(&addr) {
                Ok(sock) => {
                    self.sock = Some(sock);
                    self.phase = Phase::Connecting;
                    self.deadline = Instant::now() + CONNECT_TIMEOUT;
                    return Ok(());
                }
                Err(e) => log::debug!("kube: watch: connect {addr}: {e}"),
            }
        }
        self.close();
        Err(self.transport("could not connect to any API server address"))
    }

    fn advance(&mut self) -> Result<(), KubeError> {
        if self.phase == Phase::Connecting && !self.check_connected()? {
            return Ok(());
        }
        self.pump()
    }

    /// Finishes a non-blocking connect: `Ok(false)` while in progress.
    fn check_connected(&mut self) -> Result<bool, KubeError> {
        let Some(sock) = &self.sock else {
            return Err(self.transport("no socket"));
        };
        let failed = match sock.take_error() {
            Ok(Some(e)) | Err(e) => Some(e),
            Ok(None) => match sock.peer_addr() {
                Ok(_) => None,
                Err(e) if e.kind() == io::ErrorKind::NotConnected => return Ok(false),
                Err(e) => Some(e),
            },
        };
        if let Some(e) = failed {
            log::debug!("kube: watch: connect failed: {e}");
            if self.next_addr < self.addrs.len() {
                self.connect_next()?;
                return Ok(false);
            }
            return Err(self.transport(format!("connect: {e}")));
        }
        let mut tls = ClientConnection::new(self.tls_config.clone(), self.server_name.clone())
            .map_err(|e| self.transport(format!("TLS setup: {e}")))?;
        // rustls holds the request until the handshake is done.
        tls.writer()
            .write_all(&self.request)
            .map_err(|e| self.transport(format!("queueing request: {e}")))?;
        self.request.clear();
        self.tls = Some(tls);
        self.phase = Phase::Head;
        self.deadline = Instant::now() + HEAD_TIMEOUT;
        Ok(true)
    }

    /// Non-blocking TLS I/O: flush, read up to the budget, decode.
    fn pump(&mut self) -> Result<(), KubeError> {
        self.flush()?;
        let mut budget = READ_BUDGET;
        let mut eof = false;
        loop {
            let (Some(tls), Some(sock)) = (self.tls.as_mut(), self.sock.as_mut()) else {
                return Ok(());
            };
            let more = match tls.read_tls(sock) {
                Ok(0) => {
                    eof = true;
                    false
                }
                Ok(n) => {
                    budget = budget.saturating_sub(n);
                    budget > 0
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => false,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => true,
                Err(e) => return Err(self.transport(format!("read: {e}"))),
            };
            if let Err(e) = tls.process_new_packets() {
                // Let rustls tell the server why (best effort).
                let _ = tls.write_tls(sock);
                return Err(self.transport(format!("TLS: {e}")));
            }
            self.drain_plaintext(&mut eof)?;
            if self.phase == Phase::Ended || eof || !more {
                break;
            }
        }
        self.flush()?;
        if eof && self.phase != Phase::Ended {
            self.at_eof()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), KubeError> {
        let (Some(tls), Some(sock)) = (self.tls.as_mut(), self.sock.as_mut()) else {
            return Ok(());
        };
        while tls.wants_write() {
            match tls.write_tls(sock) {
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(self.transport(format!("write: {e}"))),
            }
        }
        Ok(())
    }

    /// Moves everything rustls decrypted into our decoders.
    fn drain_plaintext(&mut self, eof: &mut bool) -> Result<(), KubeError> {
        let mut buf = [0u8; 16 * 1024];
        loop {
            let Some(tls) = self.tls.as_mut() else {
                return Ok(());
            };
            match tls.reader().read(&mut buf) {
                Ok(0) => {
                    *eof = true;
                    return Ok(());
                }
                Ok(n) => self.on_bytes(&buf[..n])?,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                    *eof = true;
                    return Ok(());
                }
                Err(e) => return Err(self.transport(format!("TLS read: {e}"))),
            }
            if self.phase == Phase::Ended {
                return Ok(());
            }
        }
    }

    fn on_bytes(&mut self, data: &[u8]) -> Result<(), KubeError> {
        if self.phase != Phase::Head {
            return self.on_body(data);
        }
        self.head.extend_from_slice(data);
        let parsed = parse_head(&self.head).map_err(|e| self.transport(e))?;
        let Some((head, n)) = parsed else {
            return Ok(());
        };
        let rest = self.head.split_off(n);
        self.head = Vec::new();
        self.status = head.status;
        self.body = Some(BodyDecoder::new(head.framing));
        self.phase = Phase::Body;
        if head.status == 200 {
            self.deadline = Instant::now() + self.stream_timeout;
            log::debug!("kube: watch {} started", self.path);
        }
        self.on_body(&rest)
    }

    fn on_body(&mut self, data: &[u8]) -> Result<(), KubeError> {
        let Some(body) = self.body.as_mut() else {
            return Ok(());
        };
        let mut decoded = Vec::with_capacity(data.len());
        if let Err(e) = body.feed(data, &mut decoded) {
            return Err(self.transport(format!("bad response body: {e}")));
        }
        let done = body.is_done();
        if self.status != 200 {
            let room = MAX_ERROR_BODY.saturating_sub(self.error_body.len());
            self.error_body
                .extend_from_slice(&decoded[..decoded.len().min(room)]);
            return if done {
                Err(self.status_error())
            } else {
                Ok(())
            };
        }
        self.lines.push(&decoded);
        loop {
            match self.lines.next_event() {
                Ok(Some(ev)) => self.queue.push_back(ev),
                Ok(None) => break,
                Err(message) => {
                    return Err(KubeError::Decode {
                        path: self.path.clone(),
                        message,
                    });
                }
            }
        }
        if done {
            self.finish_ok();
        }
        Ok(())
    }

    fn status_error(&mut self) -> KubeError {
        self.close();
        KubeError::from_status(self.status, &self.error_body, &self.path)
    }

    fn finish_ok(&mut self) {
        let partial = self.lines.partial_len();
        if partial > 0 {
            log::debug!(
                "kube: watch {}: {partial} bytes of an unfinished event dropped",
                self.path
            );
        }
        log::debug!("kube: watch {} ended", self.path);
        self.close();
    }

    fn at_eof(&mut self) -> Result<(), KubeError> {
        match self.phase {
            Phase::Head => Err(self.transport("connection closed before a response")),
            Phase::Body if self.status != 200 => Err(self.status_error()),
            _ => {
                // A watch cut short (no terminating chunk) loses nothing
                // that matters: the caller resumes from the last complete
                // event's resourceVersion.
                self.finish_ok();
                Ok(())
            }
        }
    }
}

impl AsRawFd for Watch {
    fn as_raw_fd(&self) -> RawFd {
        self.raw_fd()
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
            log::debug!(
                "kube: watch: setsockopt({opt}): {}",
                io::Error::last_os_error()
            );
        }
    }
    Ok(stream)
}

#[cfg(test)]
#[path = "watch_tests.rs"]
mod tests;
