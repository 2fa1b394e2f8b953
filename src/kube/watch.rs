//! A watch stream that lives inside the agent's single poll(2) loop.
//!
//! The stream runs on its own connection (`conn.rs`: non-blocking TCP,
//! rustls with the client's shared `ClientConfig`) and its own HTTP
//! exchange (`exchange.rs`, on ureq-proto), with a line splitter for the
//! JSON events (`events.rs`). Every byte read is decrypted and de-chunked
//! at once into our own buffer, so "nothing buffered" really means "nothing
//! until the fd is readable"; events are parsed one per [`Watch::try_next`],
//! so the caller's budget bounds the parsing too.
//!
//! # Contract with the event loop
//! * Put [`Watch::raw_fd`] with [`Watch::poll_events`] in the poll set
//!   (the fd is -1 once the stream is closed; poll(2) ignores negative fds),
//!   and use [`Watch::timeout`] as an upper bound for the poll timeout.
//! * When poll reports anything for the fd (or the timeout passes), call
//!   [`Watch::try_next`] until it returns [`WatchPoll::Pending`] or
//!   [`WatchPoll::Ended`], or until the loop's own budget for this turn is
//!   spent (an endless stream never returns `Pending`). Each call does at
//!   most a bounded amount of non-blocking I/O (256 KiB).
//! * `Ended`: the server closed the stream (its `timeoutSeconds` elapsed)
//!   or sent an ERROR event: start a new watch from the last
//!   resourceVersion, or re-list after a 410 ([`WatchEvent::is_gone`] /
//!   [`KubeError::is_gone`]). Pacing reconnects is the caller's job.
//!
//! Idle cost is zero: nothing runs until the kernel reports data, a dead
//! peer (keepalive), or a deadline.

use std::net::SocketAddr;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::ClientConfig;
use rustls_pki_types::ServerName;

use super::KubeError;
use super::conn::Conn;
use super::events::{EventLines, WatchEvent};
use super::exchange::{Exchange, Progress};

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
    wire: Vec<u8>,
    conn: Option<Conn>,
    exchange: Exchange,
    phase: Phase,
    deadline: Instant,
    stream_timeout: Duration,
    plain: Vec<u8>,
    decoded: Vec<u8>,
    error_body: Vec<u8>,
    lines: EventLines,
    failure: Option<KubeError>,
    /// A TCP connection was established at some point.
    connected: bool,
}

impl std::fmt::Debug for Watch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Watch")
            .field("path", &self.path)
            .field("phase", &self.phase)
            .finish()
    }
}

impl Watch {
    /// Starts connecting; never blocks (addresses are already resolved).
    pub(crate) fn start(target: WatchTarget) -> Result<Watch, KubeError> {
        let auth = target.token.as_ref().map(|t| format!("Bearer {t}"));
        let mut headers = vec![
            ("user-agent", target.user_agent.as_str()),
            ("accept", "application/json"),
            ("connection", "close"),
        ];
        if let Some(a) = &auth {
            headers.push(("authorization", a.as_str()));
        }
        let transport = |message: String| KubeError::Transport {
            path: target.path.clone(),
            message,
        };
        let mut exchange = Exchange::new("GET", &target.authority, &target.path, &headers, None)
            .map_err(transport)?;
        let mut wire = Vec::new();
        exchange.output(&mut wire).map_err(transport)?;
        let mut w = Watch {
            path: target.path,
            addrs: target.addrs,
            next_addr: 0,
            server_name: target.server_name,
            tls_config: target.tls,
            wire,
            conn: None,
            exchange,
            phase: Phase::Connecting,
            deadline: Instant::now(),
            stream_timeout: Duration::from_secs(u64::from(target.timeout_seconds)) + END_GRACE,
            plain: Vec::new(),
            decoded: Vec::new(),
            error_body: Vec::new(),
            lines: EventLines::default(),
            failure: None,
            connected: false,
        };
        w.connect_next()?;
        Ok(w)
    }

    /// The socket to poll, or -1 once closed.
    pub fn raw_fd(&self) -> RawFd {
        self.conn.as_ref().map_or(-1, Conn::fd)
    }

    /// The poll(2) events to wait for.
    pub fn poll_events(&self) -> libc::c_short {
        match (&self.conn, self.phase) {
            (Some(c), Phase::Connecting | Phase::Head | Phase::Body) => c.events(),
            _ => 0,
        }
    }

    /// How long poll may sleep before [`Watch::try_next`] must run again
    /// (a deadline passes then). Zero when events are already queued.
    pub fn timeout(&self) -> Duration {
        if self.lines.unscanned() || self.failure.is_some() {
            return Duration::ZERO;
        }
        match self.phase {
            Phase::Ended => Duration::MAX,
            _ => self.deadline.saturating_duration_since(Instant::now()),
        }
    }

    /// True once a TCP connection was established; a watch that failed
    /// without it points at the server's addresses (see
    /// [`super::Client::addresses_failed`]).
    pub fn ever_connected(&self) -> bool {
        self.connected
    }

    /// The request path and query, for log lines.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// Advances the stream without blocking and returns the next event.
    pub fn try_next(&mut self) -> Result<WatchPoll, KubeError> {
        if let Some(ev) = self.next_line()? {
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
            // Events received before the failure still count.
            self.failure = Some(e);
        }
        if let Some(ev) = self.next_line()? {
            return Ok(WatchPoll::Event(ev));
        }
        if let Some(e) = self.failure.take() {
            return Err(e);
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
        self.conn = None;
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
            let conn = Conn::connect(addr, self.tls_config.clone(), self.server_name.clone())
                .and_then(|mut c| c.send(&self.wire).map(|()| c));
            match conn {
                Ok(c) => {
                    self.conn = Some(c);
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
        let Some(conn) = self.conn.as_mut() else {
            return Ok(());
        };
        let pumped = match conn.pump(&mut self.plain, READ_BUDGET) {
            Ok(p) => p,
            Err(m) => {
                if self.phase == Phase::Connecting && self.next_addr < self.addrs.len() {
                    log::debug!("kube: watch: {m}; trying the next address");
                    return self.connect_next();
                }
                return Err(self.transport(m));
            }
        };
        if self.phase == Phase::Connecting && !conn.is_connecting() {
            self.connected = true;
            self.phase = Phase::Head;
            self.deadline = Instant::now() + HEAD_TIMEOUT;
        }
        if !self.plain.is_empty() {
            let plain = std::mem::take(&mut self.plain);
            let progress = self
                .exchange
                .input(&plain, &mut self.decoded)
                .map_err(|m| self.transport(format!("bad response: {m}")))?;
            self.on_body(progress)?;
        }
        if pumped.eof && self.phase != Phase::Ended {
            let progress = self.exchange.end_of_input().map_err(|m| self.transport(m));
            match progress {
                Ok(p) => self.on_body(p)?,
                // A watch cut short (no terminating chunk) loses nothing
                // that matters: the caller resumes from the last complete
                // event's resourceVersion.
                Err(_) if self.exchange.status() == Some(200) => self.finish_ok(),
                Err(_) if self.exchange.status().is_some() => return Err(self.status_error()),
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    fn on_body(&mut self, progress: Progress) -> Result<(), KubeError> {
        let Some(status) = self.exchange.status() else {
            return Ok(());
        };
        if self.phase == Phase::Head {
            self.phase = Phase::Body;
            if status == 200 {
                self.deadline = Instant::now() + self.stream_timeout;
                log::debug!("kube: watch {} started", self.path);
            }
        }
        let decoded = std::mem::take(&mut self.decoded);
        let done = progress == Progress::Complete;
        if status != 200 {
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
        if done {
            self.finish_ok();
        }
        Ok(())
    }

    /// The next complete event line of a 200 stream, parsed.
    fn next_line(&mut self) -> Result<Option<WatchEvent>, KubeError> {
        if self.exchange.status() != Some(200) {
            return Ok(None);
        }
        self.lines.next_event().map_err(|message| {
            self.close();
            KubeError::Decode {
                path: self.path.clone(),
                message,
            }
        })
    }

    fn status_error(&mut self) -> KubeError {
        self.close();
        KubeError::from_status(
            self.exchange.status().unwrap_or(0),
            &self.error_body,
            &self.path,
        )
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
}

impl AsRawFd for Watch {
    fn as_raw_fd(&self) -> RawFd {
        self.raw_fd()
    }
}

#[cfg(test)]
#[path = "watch_tests.rs"]
mod tests;
