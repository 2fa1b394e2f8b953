//! The API client: every call a state machine driven by the caller's
//! poll(2) loop, over a small pool of kept-alive TLS connections.
//!
//! # Using it from a poll loop
//! * [`Client::start`] queues an [`ApiRequest`] and returns its
//!   [`CallId`] at once; nothing is sent until the loop drives the client.
//! * Each turn, [`Client::poll_fds`] adds the fds to wait on and
//!   [`Client::deadline`] bounds the poll timeout.
//! * After poll, [`Client::advance`] moves every connection as far as it
//!   goes without waiting (at most [`READ_BUDGET`] bytes per connection),
//!   and [`Client::take_completed`] hands out the finished calls. A call
//!   ends in an [`ApiResponse`] (2xx) or a [`KubeError`] (non-2xx status,
//!   transport failure, [`ApiRequest::timeout`] passed, response larger than
//!   [`ApiRequest::max_response`]).
//! * Watches get their own connection: [`Client::watch_path`].
//!
//! ```text
//! let id = client.start(ApiRequest::json(
//!     "PUT", "/apis/coordination.k8s.io/v1/namespaces/liqo/leases/x",
//!     "application/json", &lease)?);          // returns at once
//! ... poll(client.poll_fds(), client.deadline()) ...
//! client.advance();
//! for done in client.take_completed() {        // done.id == id, once
//!     match done.result { Ok(r) => r.json(&done.request.path)?, Err(e) if e.is_conflict() => ... }
//! }
//! let watch = client.watch_path("/apis/g/v1/things", &rv, "a=b", 300)?;
//! let pager = Pager::new("/apis/g/v1/things", "a=b", ListLimits::default(), now);
//! ```
//!
//! Blocking helpers (`list`, `get`, `replace_status`, ...) run the same
//! machinery under their own poll until the call ends; they exist for
//! `routecfg once` and tests, never for the agent's loop.
//!
//! # The one call that may block: name resolution
//! A kubeconfig may name the server by host name. The system resolver has
//! no non-blocking interface, so [`Client::resolve`] blocks (bounded by
//! resolv.conf's timeouts and attempts, 5 s x 2 by default). It runs once,
//! and again only after connecting to every resolved address failed; the
//! agent calls it only when no kernel work is waiting. In-cluster the
//! server is an IP literal and nothing is ever resolved.
//!
//! Proxy variables are ignored on purpose (a node agent's credentials must
//! not go where the environment happens to point) and redirects are not
//! followed (they would carry the bearer token elsewhere): a 3xx is an
//! error like any other non-2xx.

use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::os::fd::RawFd;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::ClientConfig;
use rustls_pki_types::ServerName;
use serde_json::Value;

use super::call::{ApiRequest, ApiResponse, CallId, Completed};
use super::config::{KubeConfig, Server};
use super::conn::Conn;
use super::exchange::{Exchange, Progress};
use super::list::{ListLimits, Pager};
use super::requests;
use super::token::TokenSource;
use super::watch::{Watch, WatchTarget};
use super::{GROUP, KubeError, PLURAL, VERSION};

/// Most connections open at once for request calls (watches not counted).
pub const MAX_CONNECTIONS: usize = 4;
/// Most bytes read from one connection per [`Client::advance`].
pub const READ_BUDGET: usize = 256 * 1024;
/// An idle pooled connection is closed after this.
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// Severity of an Event, as `kubectl describe` shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    Normal,
    Warning,
}

impl EventType {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            EventType::Normal => "Normal",
            EventType::Warning => "Warning",
        }
    }
}

/// A call with a connection.
struct Active {
    id: CallId,
    request: ApiRequest,
    deadline: Instant,
    conn: Conn,
    exchange: Exchange,
    /// The request as sent, to send again on a fresh connection.
    wire: Vec<u8>,
    plain: Vec<u8>,
    body: Vec<u8>,
    /// The connection came from the pool (the server may have closed it).
    reused: bool,
    /// Connection attempts made (one per address at most).
    attempts: usize,
    retried_401: bool,
}

/// A call waiting for a connection slot (or for addresses).
struct Queued {
    id: CallId,
    request: ApiRequest,
    deadline: Instant,
    retried_401: bool,
}

struct Idle {
    conn: Conn,
    since: Instant,
}

/// A connection to one API server.
pub struct Client {
    server: Server,
    token: TokenSource,
    tls: Arc<ClientConfig>,
    server_name: ServerName<'static>,
    user_agent: String,
    component: String,
    host: String,
    addrs: Vec<SocketAddr>,
    /// Addresses must be (re-)resolved before the next connect.
    stale_addrs: bool,
    next_addr: usize,
    next_id: CallId,
    queued: VecDeque<Queued>,
    active: Vec<Active>,
    idle: Vec<Idle>,
    completed: Vec<Completed>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("server", &self.server.url())
            .field("in_flight", &self.in_flight())
            .finish()
    }
}

impl Client {
    /// Builds the client; no connection is made and nothing is resolved
    /// yet (an IP literal needs no resolving).
    pub fn new(config: &KubeConfig) -> Result<Client, KubeError> {
        let server_name = ServerName::try_from(config.server.host.clone()).map_err(|e| {
            KubeError::Config(format!(
                "server host {:?} is not a valid TLS name: {e}",
                config.server.host
            ))
        })?;
        let literal = config.server.host.parse::<IpAddr>().ok();
        Ok(Client {
            server: config.server.clone(),
            token: TokenSource::new(config.auth.clone()),
            tls: config.tls.rustls.clone(),
            server_name,
            user_agent: format!("routecfg/{}", env!("CARGO_PKG_VERSION")),
            component: "routecfg".to_string(),
            host: String::new(),
            addrs: literal
                .map(|ip| vec![SocketAddr::new(ip, config.server.port)])
                .unwrap_or_default(),
            stale_addrs: literal.is_none(),
            next_addr: 0,
            next_id: 1,
            queued: VecDeque::new(),
            active: Vec::new(),
            idle: Vec::new(),
            completed: Vec::new(),
        })
    }

    /// Names the reporter of the Events this client creates: the component
    /// (default "routecfg") and the node or pod it runs on.
    pub fn set_event_source(&mut self, component: &str, host: &str) {
        self.component = component.to_string();
        self.host = host.to_string();
    }

    /// `(component, host)` for Events.
    pub fn event_source(&self) -> (&str, &str) {
        (&self.component, &self.host)
    }

    /// True when [`Client::resolve`] must run before calls can connect.
    pub fn needs_resolve(&self) -> bool {
        self.stale_addrs
    }

    /// Resolves the server's host name. BLOCKS (system resolver); see the
    /// module documentation for when it runs.
    pub fn resolve(&mut self) -> Result<(), KubeError> {
        if let Ok(ip) = self.server.host.parse::<IpAddr>() {
            self.addrs = vec![SocketAddr::new(ip, self.server.port)];
            self.stale_addrs = false;
            return Ok(());
        }
        let addrs: Vec<SocketAddr> = (self.server.host.as_str(), self.server.port)
            .to_socket_addrs()
            .map_err(|e| KubeError::Transport {
                path: self.server.url(),
                message: format!("resolving {}: {e}", self.server.host),
            })?
            .take(16)
            .collect();
        if addrs.is_empty() {
            return Err(KubeError::Transport {
                path: self.server.url(),
                message: format!("{} has no addresses", self.server.host),
            });
        }
        log::debug!("kube: {} resolved to {addrs:?}", self.server.host);
        self.addrs = addrs;
        self.next_addr = 0;
        self.stale_addrs = false;
        Ok(())
    }

    /// Queues a call; never blocks. Its result comes out of
    /// [`Client::take_completed`] after later [`Client::advance`]s.
    pub fn start(&mut self, request: ApiRequest) -> CallId {
        let id = self.next_id;
        self.next_id += 1;
        let deadline = Instant::now() + request.timeout;
        self.queued.push_back(Queued {
            id,
            request,
            deadline,
            retried_401: false,
        });
        self.dispatch(Instant::now());
        id
    }

    /// Calls started and not yet handed out as completed.
    pub fn in_flight(&self) -> usize {
        self.queued.len() + self.active.len()
    }

    /// Adds the fds to poll (and the events wanted for each) to `out`.
    pub fn poll_fds(&self, out: &mut Vec<(RawFd, libc::c_short)>) {
        for a in &self.active {
            out.push((a.conn.fd(), a.conn.events()));
        }
        // Idle connections: readable means closed (or out of step).
        for i in &self.idle {
            out.push((i.conn.fd(), libc::POLLIN));
        }
    }

    /// The earliest moment [`Client::advance`] must run even if no fd is
    /// ready (a deadline passes). `Some(now)` when results are waiting.
    pub fn deadline(&self) -> Option<Instant> {
        if !self.completed.is_empty() {
            return Some(Instant::now());
        }
        let calls = self.active.iter().map(|a| a.deadline);
        let queued = self.queued.iter().map(|q| q.deadline);
        let idle = self.idle.iter().map(|i| i.since + IDLE_TIMEOUT);
        calls.chain(queued).chain(idle).min()
    }

    /// Moves every call as far as it goes without waiting.
    pub fn advance(&mut self) {
        let now = Instant::now();
        let mut i = 0;
        while i < self.active.len() {
            match self.drive(i, now) {
                Some(result) => {
                    let a = self.active.swap_remove(i);
                    self.finish(a, result);
                }
                None => i += 1,
            }
        }
        self.check_idle(now);
        // Calls still waiting for a slot (or addresses) time out too.
        while let Some(pos) = self.queued.iter().position(|q| q.deadline <= now) {
            if let Some(q) = self.queued.remove(pos) {
                let e = KubeError::Timeout {
                    path: q.request.path.clone(),
                    message: if self.stale_addrs {
                        "server address not resolved".to_string()
                    } else {
                        "no free connection".to_string()
                    },
                };
                self.completed.push(Completed {
                    id: q.id,
                    request: q.request,
                    result: Err(e),
                });
            }
        }
        self.dispatch(now);
    }

    /// Finished calls, in the order they finished.
    pub fn take_completed(&mut self) -> Vec<Completed> {
        std::mem::take(&mut self.completed)
    }

    /// Drops every connection and forgets every call (results included).
    pub fn reset(&mut self) {
        self.queued.clear();
        self.active.clear();
        self.idle.clear();
        self.completed.clear();
    }

    /// Gives queued calls a connection while there is room.
    fn dispatch(&mut self, now: Instant) {
        while self.active.len() < MAX_CONNECTIONS && !self.stale_addrs && !self.addrs.is_empty() {
            let Some(q) = self.queued.pop_front() else {
                return;
            };
            match self.open(q, now) {
                Ok(a) => self.active.push(a),
                Err(failed) => {
                    let (q, e) = *failed;
                    self.completed.push(Completed {
                        id: q.id,
                        request: q.request,
                        result: Err(e),
                    })
                }
            }
        }
    }

    /// Builds the exchange and finds it a connection: a pooled one, or a
    /// new one to the next address.
    fn open(&mut self, q: Queued, now: Instant) -> Result<Active, Box<(Queued, KubeError)>> {
        let token = if q.retried_401 {
            self.token.reload()
        } else {
            self.token.current()
        };
        let token = match token {
            Ok(t) => t,
            Err(e) => return Err(Box::new((q, e))),
        };
        let auth = token.map(|t| format!("Bearer {t}"));
        let mut headers = vec![
            ("user-agent", self.user_agent.as_str()),
            ("accept", "application/json"),
        ];
        if let Some(a) = &auth {
            headers.push(("authorization", a.as_str()));
        }
        if let Some((ct, _)) = &q.request.body {
            headers.push(("content-type", ct));
        }
        let path = format!("{}{}", self.server.base_path, q.request.path);
        let built = Exchange::new(
            q.request.method,
            &self.server.authority(),
            &path,
            &headers,
            q.request.body.as_ref().map(|(_, b)| b.clone()),
        );
        let mut exchange = match built {
            Ok(x) => x,
            Err(m) => {
                let e = KubeError::Request(format!("{} {}: {m}", q.request.method, path));
                return Err(Box::new((q, e)));
            }
        };
        let mut wire = Vec::new();
        if let Err(m) = exchange.output(&mut wire) {
            let e = KubeError::Request(format!("{} {}: {m}", q.request.method, path));
            return Err(Box::new((q, e)));
        }
        let (conn, reused, attempts) = match self.idle.pop() {
            Some(idle) => (idle.conn, true, 0),
            None => match self.connect_next() {
                Ok(c) => (c, false, 1),
                Err(e) => {
                    let e = KubeError::Transport {
                        path: q.request.path.clone(),
                        message: e,
                    };
                    return Err(Box::new((q, e)));
                }
            },
        };
        let mut a = Active {
            id: q.id,
            request: q.request,
            deadline: q.deadline.max(now),
            conn,
            exchange,
            wire,
            plain: Vec::new(),
            body: Vec::new(),
            reused,
            attempts,
            retried_401: q.retried_401,
        };
        if let Err(e) = a.conn.send(&a.wire) {
            let e = KubeError::Transport {
                path: a.request.path.clone(),
                message: format!("queueing request: {e}"),
            };
            return Err(Box::new((
                Queued {
                    id: a.id,
                    request: a.request,
                    deadline: a.deadline,
                    retried_401: a.retried_401,
                },
                e,
            )));
        }
        Ok(a)
    }

    fn connect_next(&mut self) -> Result<Conn, String> {
        let mut last = String::from("no address");
        for _ in 0..self.addrs.len() {
            let addr = self.addrs[self.next_addr % self.addrs.len()];
            match Conn::connect(addr, self.tls.clone(), self.server_name.clone()) {
                Ok(c) => return Ok(c),
                Err(e) => {
                    last = format!("connect {addr}: {e}");
                    self.next_addr += 1;
                }
            }
        }
        Err(last)
    }

    /// One non-blocking step of call `i`; `Some` once it is over.
    fn drive(&mut self, i: usize, now: Instant) -> Option<Result<ApiResponse, KubeError>> {
        let a = &mut self.active[i];
        let path = a.request.path.clone();
        let transport = |message: String| KubeError::Transport {
            path: path.clone(),
            message,
        };
        let pumped = a.conn.pump(&mut a.plain, READ_BUDGET);
        let failure = match pumped {
            Ok(p) => {
                let mut failure = None;
                if !a.plain.is_empty() {
                    let plain = std::mem::take(&mut a.plain);
                    let progress = a.exchange.input(&plain, &mut a.body);
                    if a.body.len() > a.request.max_response {
                        return Some(Err(transport(format!(
                            "response larger than {} bytes",
                            a.request.max_response
                        ))));
                    }
                    match progress {
                        Ok(Progress::Complete) => return Some(Ok(self.response(i))),
                        Ok(Progress::More) => {}
                        Err(m) => return Some(Err(transport(format!("bad response: {m}")))),
                    }
                }
                if p.eof {
                    match a.exchange.end_of_input() {
                        Ok(_) => return Some(Ok(self.response(i))),
                        Err(m) => failure = Some(m),
                    }
                }
                failure
            }
            Err(m) => Some(m),
        };
        if let Some(m) = failure {
            // A pooled connection the server had closed, or an address that
            // refused: try a fresh connection while the deadline allows.
            let a = &self.active[i];
            let retry = !a.exchange.answered()
                && (a.reused || (a.conn.is_connecting() && a.attempts < self.addrs.len()));
            if retry && now < a.deadline {
                if a.conn.is_connecting() {
                    self.next_addr += 1;
                }
                log::debug!("kube: {path}: {m}; trying a fresh connection");
                match self.connect_next() {
                    Ok(conn) => {
                        let a = &mut self.active[i];
                        a.conn = conn;
                        a.reused = false;
                        a.attempts += 1;
                        match a.conn.send(&a.wire) {
                            Ok(()) => return None,
                            Err(e) => return Some(Err(transport(format!("queueing: {e}")))),
                        }
                    }
                    Err(e) => {
                        self.connect_failed();
                        return Some(Err(transport(e)));
                    }
                }
            }
            if self.active[i].conn.is_connecting() {
                self.connect_failed();
            }
            return Some(Err(transport(m)));
        }
        if now >= self.active[i].deadline {
            if self.active[i].conn.is_connecting() {
                // A blackholed address: the next call tries another one
                // (and a host name is looked up again).
                self.next_addr += 1;
                self.connect_failed();
            }
            let a = &self.active[i];
            let what = if a.conn.is_connecting() {
                "connecting"
            } else if a.exchange.status().is_none() {
                "waiting for the response"
            } else {
                "reading the response"
            };
            return Some(Err(KubeError::Timeout {
                path,
                message: what.to_string(),
            }));
        }
        None
    }

    /// A watch could not connect to any address: treated like a call's
    /// connect failure (a host name is resolved again).
    pub fn addresses_failed(&mut self) {
        self.connect_failed();
    }

    /// Every address failed: a host name is resolved again before the
    /// next connect.
    fn connect_failed(&mut self) {
        if self.server.host.parse::<IpAddr>().is_err() {
            self.stale_addrs = true;
        }
    }

    fn response(&mut self, i: usize) -> ApiResponse {
        let a = &mut self.active[i];
        ApiResponse {
            status: a.exchange.status().unwrap_or(0),
            body: std::mem::take(&mut a.body),
        }
    }

    /// Hands the result out (or retries once after a 401 with a re-read
    /// token) and returns a reusable connection to the pool.
    fn finish(&mut self, a: Active, result: Result<ApiResponse, KubeError>) {
        let keep = result.is_ok() && !a.exchange.must_close();
        let result = result.and_then(|r| {
            if (200..300).contains(&r.status) {
                log::debug!(
                    "kube: {} {} -> {}",
                    a.request.method,
                    a.request.path,
                    r.status
                );
                Ok(r)
            } else {
                Err(KubeError::from_status(r.status, &r.body, &a.request.path))
            }
        });
        if keep && self.idle.len() < MAX_CONNECTIONS {
            self.idle.push(Idle {
                conn: a.conn,
                since: Instant::now(),
            });
        }
        let unauthorized = matches!(&result, Err(e) if e.status() == Some(401));
        if unauthorized && !a.retried_401 && self.token.can_reload() {
            log::info!(
                "kube: {} {}: 401, re-reading the token and retrying once",
                a.request.method,
                a.request.path
            );
            self.queued.push_front(Queued {
                id: a.id,
                request: a.request,
                deadline: a.deadline,
                retried_401: true,
            });
            return;
        }
        if let Err(e) = &result {
            log::debug!("kube: {} {e}", a.request.method);
        }
        self.completed.push(Completed {
            id: a.id,
            request: a.request,
            result,
        });
    }

    /// Closes pooled connections the server closed, or that sat idle too
    /// long.
    fn check_idle(&mut self, now: Instant) {
        self.idle.retain_mut(|i| {
            if now >= i.since + IDLE_TIMEOUT {
                return false;
            }
            let mut junk = Vec::new();
            match i.conn.pump(&mut junk, 4096) {
                Ok(p) => !p.eof && junk.is_empty(),
                Err(_) => false,
            }
        });
    }

    // ---------------------------------------------------------------
    // Watches.

    /// Opens a watch on RouteConfigurations in all namespaces from
    /// `resource_version`, with bookmarks, ended by the server after
    /// `timeout_seconds`. Returns at once; see [`Watch`] for driving it.
    pub fn watch(
        &self,
        resource_version: &str,
        label_selector: &str,
        timeout_seconds: u32,
    ) -> Result<Watch, KubeError> {
        self.watch_path(
            &format!("/apis/{GROUP}/{VERSION}/{PLURAL}"),
            resource_version,
            label_selector,
            timeout_seconds,
        )
    }

    /// Opens a watch on any collection path (e.g.
    /// `/apis/g/v1/namespaces/ns/things`) on its own connection. Needs
    /// resolved addresses (see [`Client::resolve`]); never blocks.
    pub fn watch_path(
        &self,
        collection: &str,
        resource_version: &str,
        label_selector: &str,
        timeout_seconds: u32,
    ) -> Result<Watch, KubeError> {
        let mut path = format!(
            "{}{collection}?watch=1&allowWatchBookmarks=true&timeoutSeconds={timeout_seconds}",
            self.server.base_path
        );
        if !resource_version.is_empty() {
            path.push_str(&format!(
                "&resourceVersion={}",
                requests::encode(resource_version)
            ));
        }
        if !label_selector.is_empty() {
            path.push_str(&format!(
                "&labelSelector={}",
                requests::encode(label_selector)
            ));
        }
        if self.stale_addrs || self.addrs.is_empty() {
            return Err(KubeError::Transport {
                path,
                message: "server address not resolved yet".to_string(),
            });
        }
        let token = self.token.current()?;
        Watch::start(WatchTarget {
            addrs: self.addrs.clone(),
            server_name: self.server_name.clone(),
            tls: self.tls.clone(),
            authority: self.server.authority(),
            path,
            token,
            user_agent: self.user_agent.clone(),
            timeout_seconds,
        })
    }

    // ---------------------------------------------------------------
    // Blocking helpers: `routecfg once` and tests only.

    /// Runs one call to its end under its own poll. BLOCKS up to the
    /// request's timeout (plus name resolution when needed).
    pub fn call(&mut self, request: ApiRequest) -> Result<ApiResponse, KubeError> {
        if self.stale_addrs {
            self.resolve()?;
        }
        let id = self.start(request);
        self.wait_for(id)
    }

    fn wait_for(&mut self, id: CallId) -> Result<ApiResponse, KubeError> {
        loop {
            self.advance();
            if let Some(pos) = self.completed.iter().position(|c| c.id == id) {
                return self.completed.remove(pos).result;
            }
            if self.stale_addrs && self.queued.iter().any(|q| q.id == id) {
                self.resolve()?;
                continue;
            }
            let mut fds = Vec::new();
            self.poll_fds(&mut fds);
            let now = Instant::now();
            let wait = self
                .deadline()
                .map_or(Duration::from_secs(1), |d| d.saturating_duration_since(now));
            crate::agent::poll::wait(&fds, Some(wait.min(Duration::from_secs(1)))).map_err(
                |e| KubeError::Transport {
                    path: String::new(),
                    message: format!("poll: {e}"),
                },
            )?;
        }
    }

    fn call_json(&mut self, request: ApiRequest) -> Result<Value, KubeError> {
        let path = request.path.clone();
        self.call(request)?.json(&path)
    }

    /// Every RouteConfiguration in every namespace matching the label
    /// selector (empty: all), and the list's resourceVersion to watch from.
    /// Pages of 500, within [`ListLimits::default`].
    pub fn list(&mut self, label_selector: &str) -> Result<(Vec<Value>, String), KubeError> {
        let mut pager = Pager::new(
            &requests::route_configurations_path(),
            label_selector,
            ListLimits::default(),
            Instant::now(),
        );
        loop {
            let request = pager.next_request(Instant::now())?;
            let path = request.path.clone();
            let result = self.call(request);
            if let Some(done) = pager.on_page(&path, result, Instant::now())? {
                return Ok(requests::with_kind(done));
            }
        }
    }

    /// One RouteConfiguration, `None` if it does not exist.
    pub fn get(&mut self, ns: &str, name: &str) -> Result<Option<Value>, KubeError> {
        match self.call_json(requests::get(ns, name)?) {
            Ok(v) => Ok(Some(v)),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// JSON merge patch of the status subresource, e.g.
    /// `{"status": {...}}`. Lists (like `status.conditions`) are replaced
    /// whole: when several hosts write conditions into one object, prefer
    /// [`Client::replace_status`] with its resourceVersion precondition.
    pub fn patch_status(&mut self, ns: &str, name: &str, body: &Value) -> Result<Value, KubeError> {
        self.call_json(requests::patch_status(ns, name, body)?)
    }

    /// Writes the whole status (PUT to /status) with the object's
    /// resourceVersion as precondition ([`KubeError::Conflict`] if stale).
    pub fn replace_status(
        &mut self,
        ns: &str,
        name: &str,
        object: &Value,
    ) -> Result<Value, KubeError> {
        self.call_json(requests::replace_status(ns, name, object)?)
    }

    /// Sets `metadata.finalizers` to exactly `finalizers`, only if the
    /// object is still at `resource_version` (else [`KubeError::Conflict`]).
    pub fn patch_metadata_finalizers(
        &mut self,
        ns: &str,
        name: &str,
        resource_version: &str,
        finalizers: &[String],
    ) -> Result<Value, KubeError> {
        self.call_json(requests::patch_finalizers(
            ns,
            name,
            resource_version,
            finalizers,
        )?)
    }

    /// Records a core/v1 Event about `involved` so `kubectl describe`
    /// shows what the agent did or why it could not.
    pub fn create_event(
        &mut self,
        ns: &str,
        involved: &Value,
        reason: &str,
        message: &str,
        event_type: EventType,
    ) -> Result<Value, KubeError> {
        let request = requests::event(
            (&self.component, &self.host),
            ns,
            involved,
            reason,
            message,
            event_type,
        )?;
        self.call_json(request)
    }
}

#[cfg(test)]
#[path = "client_tests.rs"]
mod wire_tests;
