//! The listening sockets (`--metrics-addr`, and `--status-addr` when
//! given) and their connections, as the event loop sees them: descriptors
//! to poll, a deadline, and one bounded turn per wakeup.

use super::connection::Budget;
use super::connections::{Connections, Counts, MAX_OPEN};
use super::protocol::{Page, Response};
use std::io::ErrorKind;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::{AsRawFd, RawFd};
use std::time::{Duration, Instant};

/// How long a listener rests after accept fails for another reason than
/// an empty queue (out of descriptors or memory): poll would report it
/// ready again at once, and the loop would spin.
const ACCEPT_REST: Duration = Duration::from_millis(100);

struct Listener {
    socket: TcpListener,
    /// The flag that named the address, for messages.
    flag: &'static str,
    serves_status: bool,
    /// Not polled until then, after a failed accept.
    resting_until: Option<Instant>,
}

impl Listener {
    fn bind(flag: &'static str, addr: &str, serves_status: bool) -> Result<Listener, String> {
        let parsed: SocketAddr = addr
            .parse()
            .map_err(|_| format!("--{flag} {addr:?}: expected IP:PORT"))?;
        let socket = TcpListener::bind(parsed).map_err(|e| format!("--{flag} {addr}: {e}"))?;
        socket
            .set_nonblocking(true)
            .map_err(|e| format!("--{flag} {addr}: {e}"))?;
        Ok(Listener {
            socket,
            flag,
            serves_status,
            resting_until: None,
        })
    }
}

/// `/metrics`, `/healthz`, `/readyz` and `/status` over plain HTTP/1.1,
/// one request per connection, never blocking the loop.
///
/// `/status` names every managed table and object, so it is served on
/// `--status-addr` when one is given (typically loopback) and then no
/// longer on `--metrics-addr` (typically the node IP, for Prometheus and
/// the kubelet's probes).
pub struct Server {
    listeners: Vec<Listener>,
    conns: Connections<TcpStream>,
}

impl Server {
    /// Binds the addresses given; `None` when there are none.
    pub fn bind(
        metrics_addr: Option<&str>,
        status_addr: Option<&str>,
    ) -> Result<Option<Server>, String> {
        let mut listeners = Vec::new();
        if let Some(addr) = metrics_addr {
            listeners.push(Listener::bind("metrics-addr", addr, status_addr.is_none())?);
        }
        if let Some(addr) = status_addr {
            listeners.push(Listener::bind("status-addr", addr, true)?);
        }
        if listeners.is_empty() {
            return Ok(None);
        }
        Ok(Some(Server {
            listeners,
            conns: Connections::new(MAX_OPEN),
        }))
    }

    /// What is served where, for the start-up log line.
    pub fn describe(&self) -> Vec<String> {
        self.listeners
            .iter()
            .map(|l| {
                let addr = l
                    .socket
                    .local_addr()
                    .map_or_else(|e| format!("? ({e})"), |a| a.to_string());
                let pages = if l.serves_status {
                    "/metrics, /healthz, /readyz, /status, /origins"
                } else {
                    "/metrics, /healthz, /readyz"
                };
                format!("serving {pages} on {addr} (--{})", l.flag)
            })
            .collect()
    }

    /// The descriptors to poll and the events wanted: every listener, and
    /// every open connection (readable while its request comes in, writable
    /// while its answer goes out).
    pub fn interest(&self) -> Vec<(RawFd, libc::c_short)> {
        let mut out: Vec<(RawFd, libc::c_short)> = self
            .listeners
            .iter()
            .filter(|l| l.resting_until.is_none())
            .map(|l| (l.socket.as_raw_fd(), libc::POLLIN))
            .collect();
        self.conns.interest(&mut out);
        out
    }

    /// When the loop must wake even if nothing is ready: the earliest
    /// connection deadline, or the end of a listener's rest.
    pub fn deadline(&self) -> Option<Instant> {
        self.listeners
            .iter()
            .filter_map(|l| l.resting_until)
            .chain(self.conns.deadline())
            .min()
    }

    /// Connection counts since start.
    pub fn counts(&self) -> Counts {
        self.conns.counts()
    }

    /// Open connections now.
    pub fn open(&self) -> usize {
        self.conns.len()
    }

    /// One wakeup's work, to be called after every poll (also when none of
    /// its descriptors is ready: deadlines expire here). `ready` holds the
    /// descriptors poll reported among those of [`Server::interest`];
    /// `pages` builds an answer, once per request. Accepts, reads and writes
    /// stop when `budget` is spent; what is left stays ready for the next
    /// poll.
    pub fn turn(
        &mut self,
        ready: &[RawFd],
        mut budget: Budget,
        pages: &mut dyn FnMut(Page) -> Response,
    ) {
        let now = Instant::now();
        self.conns.expire(now);
        let mut ready = ready.to_vec();
        // Each listener gets its share, so a flood on one does not keep the
        // other from being accepted.
        let share = (budget.accepts / self.listeners.len()).max(1);
        for l in &mut self.listeners {
            if l.resting_until.is_some_and(|t| t <= now) {
                l.resting_until = None;
                // Polled again from the next wakeup; try it now as well.
                ready.push(l.socket.as_raw_fd());
            }
            if l.resting_until.is_some() || !ready.contains(&l.socket.as_raw_fd()) {
                continue;
            }
            for _ in 0..share {
                match l.socket.accept() {
                    Ok((stream, peer)) => {
                        if let Err(e) = stream.set_nonblocking(true) {
                            log::warn!("--{}: connection from {peer}: {e}", l.flag);
                            continue;
                        }
                        // Its request is usually there already: read it
                        // in this same turn.
                        ready.push(stream.as_raw_fd());
                        self.conns.admit(stream, now, l.serves_status);
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    // The peer gave up while queued: take the next one.
                    Err(e)
                        if matches!(
                            e.kind(),
                            ErrorKind::Interrupted | ErrorKind::ConnectionAborted
                        ) => {}
                    Err(e) => {
                        log::warn!(
                            "--{}: accept: {e}; not accepting for {} ms",
                            l.flag,
                            ACCEPT_REST.as_millis()
                        );
                        l.resting_until = Some(now + ACCEPT_REST);
                        break;
                    }
                }
            }
        }
        self.conns.serve(&ready, &mut budget, pages);
    }
}

#[cfg(test)]
mod tests {
    //! The server on real loopback sockets (port 0), driven by poll as the
    //! loop drives it.

    use super::*;
    use crate::agent::poll;
    use std::io::{Read, Write};
    use std::time::Duration;

    fn addr(server: &Server, i: usize) -> SocketAddr {
        server.listeners[i]
            .socket
            .local_addr()
            .unwrap_or_else(|e| panic!("local_addr: {e}"))
    }

    fn pages(page: Page) -> Response {
        Response::text("200 OK", &format!("{page:?}\n"))
    }

    /// Sends `path` from a non-blocking client and turns the server until
    /// the answer is complete (or 5 s pass, which fails the test).
    fn get(server: &mut Server, to: SocketAddr, path: &str) -> String {
        let mut client =
            TcpStream::connect(to).unwrap_or_else(|e| panic!("connecting to {to}: {e}"));
        client
            .write_all(format!("GET {path} HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes())
            .unwrap_or_else(|e| panic!("sending: {e}"));
        client
            .set_nonblocking(true)
            .unwrap_or_else(|e| panic!("{e}"));
        let give_up = Instant::now() + Duration::from_secs(5);
        let mut answer = Vec::new();
        while Instant::now() < give_up {
            let fds = server.interest();
            let ready = poll::wait(&fds, Some(Duration::from_millis(10)))
                .unwrap_or_else(|e| panic!("poll: {e}"));
            let ready: Vec<RawFd> = fds
                .iter()
                .zip(ready)
                .filter(|(_, r)| *r)
                .map(|((fd, _), _)| *fd)
                .collect();
            server.turn(&ready, Budget::per_wakeup(Instant::now()), &mut pages);
            let mut buf = [0u8; 4096];
            match client.read(&mut buf) {
                Ok(0) => return String::from_utf8_lossy(&answer).into_owned(),
                Ok(n) => answer.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                Err(e) => panic!("reading the answer to {path}: {e}"),
            }
        }
        panic!(
            "no complete answer to {path} in 5 s; got {:?}",
            String::from_utf8_lossy(&answer)
        );
    }

    #[test]
    fn health_answers_past_a_crowd_of_idle_clients() {
        let mut server = Server::bind(Some("127.0.0.1:0"), None)
            .ok()
            .flatten()
            .unwrap_or_else(|| panic!("binding 127.0.0.1:0"));
        let to = addr(&server, 0);
        // 100 clients that connect and never send: the listen backlog (128)
        // holds them until the server accepts, then 36 are evicted.
        let idle: Vec<TcpStream> = (0..100)
            .map(|_| TcpStream::connect(to).unwrap_or_else(|e| panic!("idle client: {e}")))
            .collect();
        let answer = get(&mut server, to, "/healthz");
        assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
        assert!(answer.ends_with("\r\n\r\nHealth\n"), "{answer}");
        assert!(server.open() <= MAX_OPEN);
        assert!(server.counts().evicted > 0, "{:?}", server.counts());
        drop(idle);
    }

    #[test]
    fn status_moves_to_its_own_address() {
        let mut server = Server::bind(Some("127.0.0.1:0"), Some("127.0.0.1:0"))
            .ok()
            .flatten()
            .unwrap_or_else(|| panic!("binding two loopback ports"));
        let (metrics, status) = (addr(&server, 0), addr(&server, 1));
        assert!(get(&mut server, metrics, "/status").starts_with("HTTP/1.1 404 "));
        assert!(get(&mut server, metrics, "/metrics").ends_with("\r\n\r\nMetrics\n"));
        assert!(get(&mut server, status, "/status").ends_with("\r\n\r\nStatus\n"));
        assert!(get(&mut server, metrics, "/origins").starts_with("HTTP/1.1 404 "));
        assert!(get(&mut server, status, "/origins").ends_with("\r\n\r\nOrigins\n"));
        let lines = server.describe();
        assert!(lines[0].contains("/readyz on 127.0.0.1:") && lines[0].contains("--metrics-addr"));
        assert!(
            lines[1].contains("/status, /origins on 127.0.0.1:")
                && lines[1].contains("--status-addr")
        );
    }

    #[test]
    fn addresses_are_checked() {
        assert!(matches!(Server::bind(None, None), Ok(None)));
        let e = Server::bind(Some("localhost:80"), None).err();
        assert_eq!(
            e.as_deref(),
            Some("--metrics-addr \"localhost:80\": expected IP:PORT")
        );
        let e = Server::bind(None, Some("1.2.3.4")).err();
        assert_eq!(
            e.as_deref(),
            Some("--status-addr \"1.2.3.4\": expected IP:PORT")
        );
    }
}
