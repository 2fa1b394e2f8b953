//! One client connection as a state machine: read the request head while
//! poll says it is readable, build the answer once, write it while poll says
//! it is writable, close. It never blocks: every read and write is on a
//! non-blocking stream and stops at `WouldBlock`, and nothing survives the
//! connection's deadline.

use super::protocol::{self, MAX_HEAD, Page, Response};
use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::os::fd::{AsRawFd, RawFd};
use std::time::{Duration, Instant};

/// A connection's whole life, from accept to the last byte written: a
/// scraper needs milliseconds, and a client that needs more only holds a
/// slot someone else may need.
pub const LIFETIME: Duration = Duration::from_secs(2);

/// What a connection reads and writes: a non-blocking socket, or scripted
/// bytes in tests.
pub trait Peer: Read + Write {
    /// The descriptor poll watches for this peer.
    fn fd(&self) -> RawFd;
}

impl Peer for TcpStream {
    fn fd(&self) -> RawFd {
        self.as_raw_fd()
    }
}

/// How much one wakeup may spend on the metrics server, so that the other
/// sources (kernel events first) get their turn whatever the clients do.
#[derive(Clone, Copy, Debug)]
pub struct Budget {
    /// Stop starting new work after this instant.
    pub until: Instant,
    /// Bytes that may still be written.
    pub bytes: usize,
    /// Connections that may still be accepted.
    pub accepts: usize,
}

impl Budget {
    /// One wakeup's share: 5 ms, 256 KiB written, 64 accepts.
    pub fn per_wakeup(now: Instant) -> Budget {
        Budget {
            until: now + Duration::from_millis(5),
            bytes: 256 * 1024,
            accepts: 64,
        }
    }

    /// Whether another connection may get a turn.
    pub fn spent(&self) -> bool {
        self.bytes == 0 || Instant::now() >= self.until
    }
}

/// Why a connection ended, for the debug log and counters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Closed {
    /// The whole answer was written.
    Served,
    /// The peer closed before sending a complete request head.
    PeerLeft,
    /// A read or write failed (reset, broken pipe).
    Failed(ErrorKind),
    /// [`LIFETIME`] passed.
    Expired,
    /// Closed to make room for a newer connection.
    Evicted,
}

/// What a turn left the connection in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Turn {
    Open,
    Closed(Closed),
}

enum Phase {
    /// Collecting the request head (at most [`MAX_HEAD`] bytes).
    Reading(Vec<u8>),
    /// Writing the answer, built once, from `sent` on.
    Writing { out: Vec<u8>, sent: usize },
}

/// One accepted client.
pub struct Connection<S> {
    stream: S,
    deadline: Instant,
    /// Whether this listener may show `/status`.
    serves_status: bool,
    phase: Phase,
}

impl<S: Peer> Connection<S> {
    pub fn new(stream: S, now: Instant, serves_status: bool) -> Connection<S> {
        Connection {
            stream,
            deadline: now + LIFETIME,
            serves_status,
            phase: Phase::Reading(Vec::new()),
        }
    }

    pub fn fd(&self) -> RawFd {
        self.stream.fd()
    }

    pub fn deadline(&self) -> Instant {
        self.deadline
    }

    /// The poll events this connection waits for.
    pub fn interest(&self) -> libc::c_short {
        match self.phase {
            Phase::Reading(_) => libc::POLLIN,
            Phase::Writing { .. } => libc::POLLOUT,
        }
    }

    /// Still waiting for its request: the first to go when slots run out
    /// (a connection being answered is nearly done).
    pub fn is_idle(&self) -> bool {
        matches!(self.phase, Phase::Reading(_))
    }

    /// Ends a connection whose deadline passed. A client that sent part of
    /// a request gets a best-effort 408 (one non-blocking write) so it
    /// learns why; one that sent nothing just sees the close.
    pub fn expire(&mut self) {
        if let Phase::Reading(buf) = &self.phase {
            if !buf.is_empty() {
                let r = Response::text("408 Request Timeout", "request not complete in 2 s\n");
                let _ = self.stream.write(&r.encode(false));
            }
        }
    }

    /// Does what readiness allows: reads until the head is complete (then
    /// builds the answer with `pages` and starts writing it), writes while
    /// the stream takes bytes and `budget` has some. Stops at `WouldBlock`.
    pub fn turn(&mut self, budget: &mut Budget, pages: &mut dyn FnMut(Page) -> Response) -> Turn {
        if let Phase::Reading(buf) = &mut self.phase {
            match read_head(&mut self.stream, buf) {
                Reading::Pending => return Turn::Open,
                Reading::Closed(why) => return Turn::Closed(why),
                Reading::Head(end) => {
                    let answer = match protocol::parse(&buf[..end], self.serves_status) {
                        Ok(req) => pages(req.page).encode(req.head_only),
                        Err(refusal) => refusal.response().encode(false),
                    };
                    self.phase = Phase::Writing {
                        out: answer,
                        sent: 0,
                    };
                }
                Reading::TooLarge => {
                    self.phase = Phase::Writing {
                        out: protocol::oversized(buf).response().encode(false),
                        sent: 0,
                    };
                }
            }
        }
        let Phase::Writing { out, sent } = &mut self.phase else {
            return Turn::Open;
        };
        loop {
            if *sent == out.len() {
                return Turn::Closed(Closed::Served);
            }
            if budget.bytes == 0 {
                return Turn::Open;
            }
            let end = *sent + budget.bytes.min(out.len() - *sent);
            match self.stream.write(&out[*sent..end]) {
                Ok(0) => return Turn::Closed(Closed::Failed(ErrorKind::WriteZero)),
                Ok(n) => {
                    *sent += n;
                    budget.bytes -= n;
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => return Turn::Open,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Turn::Closed(Closed::Failed(e.kind())),
            }
        }
    }
}

enum Reading {
    Pending,
    /// The head is complete and ends at this index.
    Head(usize),
    TooLarge,
    Closed(Closed),
}

/// Reads what is there, never more than [`MAX_HEAD`] bytes in all.
fn read_head(stream: &mut impl Read, buf: &mut Vec<u8>) -> Reading {
    let mut chunk = [0u8; 1024];
    loop {
        let room = MAX_HEAD - buf.len();
        if room == 0 {
            return Reading::TooLarge;
        }
        let want = room.min(chunk.len());
        match stream.read(&mut chunk[..want]) {
            Ok(0) => return Reading::Closed(Closed::PeerLeft),
            Ok(n) => {
                // The blank line may straddle two reads.
                let from = buf.len().saturating_sub(3);
                buf.extend_from_slice(&chunk[..n]);
                if let Some(end) = protocol::head_end(&buf[from..]) {
                    return Reading::Head(from + end);
                }
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => return Reading::Pending,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Reading::Closed(Closed::Failed(e.kind())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::script::{In, Scripted, Wire};
    use super::*;
    use std::cell::RefCell;
    use std::rc::Rc;

    fn budget() -> Budget {
        Budget {
            until: Instant::now() + Duration::from_secs(3600),
            bytes: usize::MAX,
            accepts: 64,
        }
    }

    /// The loop's side: counts how many bodies were built.
    fn pages(built: &mut Vec<Page>) -> impl FnMut(Page) -> Response + '_ {
        move |page| {
            built.push(page);
            match page {
                Page::Metrics => Response::ok("text/plain", "m 1\n".repeat(1000)),
                _ => Response::text("200 OK", "ok\n"),
            }
        }
    }

    fn connection(input: Vec<In>) -> (Connection<Scripted>, Rc<RefCell<Wire>>) {
        let (peer, wire) = Scripted::new(7, input);
        (Connection::new(peer, Instant::now(), true), wire)
    }

    fn bytes(s: &str) -> In {
        In::Bytes(s.as_bytes().to_vec())
    }

    fn written(wire: &Rc<RefCell<Wire>>) -> String {
        String::from_utf8_lossy(&wire.borrow().written).into_owned()
    }

    #[test]
    fn request_line_in_pieces_is_answered_once_complete() {
        let (mut c, wire) = connection(vec![bytes("GE"), In::Wait]);
        let mut built = Vec::new();
        let mut b = budget();
        assert_eq!(c.turn(&mut b, &mut pages(&mut built)), Turn::Open);
        assert_eq!(c.interest(), libc::POLLIN);
        assert!(c.is_idle());
        wire.borrow_mut().input.extend([
            bytes("T /healthz HTTP/1.1\r"),
            In::Wait,
            bytes("\nHost: a\r\n\r"),
            In::Wait,
        ]);
        assert_eq!(c.turn(&mut b, &mut pages(&mut built)), Turn::Open);
        assert_eq!(c.turn(&mut b, &mut pages(&mut built)), Turn::Open);
        assert!(built.is_empty(), "answered before the head ended");
        assert!(wire.borrow().written.is_empty());
        wire.borrow_mut().input.push_back(bytes("\n"));
        assert_eq!(
            c.turn(&mut b, &mut pages(&mut built)),
            Turn::Closed(Closed::Served)
        );
        assert_eq!(built, [Page::Health]);
        assert!(written(&wire).starts_with("HTTP/1.1 200 OK\r\n"));
        assert!(written(&wire).ends_with("\r\n\r\nok\n"));
    }

    #[test]
    fn oversized_heads_get_431_or_400_and_are_read_no_further() {
        let mut headers = "GET /metrics HTTP/1.1\r\n".to_string();
        while headers.len() <= MAX_HEAD {
            headers.push_str("X-Padding: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n");
        }
        let (mut c, wire) = connection(vec![bytes(&headers), bytes("\r\n")]);
        let mut built = Vec::new();
        assert_eq!(
            c.turn(&mut budget(), &mut pages(&mut built)),
            Turn::Closed(Closed::Served)
        );
        assert!(built.is_empty());
        assert!(written(&wire).starts_with("HTTP/1.1 431 "));
        // What lies beyond 4096 bytes was never read.
        assert_eq!(wire.borrow().input.len(), 2);

        let (mut c, wire) = connection(vec![bytes(&"A".repeat(MAX_HEAD + 10))]);
        assert_eq!(
            c.turn(&mut budget(), &mut pages(&mut built)),
            Turn::Closed(Closed::Served)
        );
        assert!(
            written(&wire).starts_with("HTTP/1.1 400 "),
            "{}",
            written(&wire)
        );
    }

    #[test]
    fn a_head_of_exactly_the_limit_is_served() {
        let mut head = "GET /healthz HTTP/1.1\r\nX: ".to_string();
        head.push_str(&"a".repeat(MAX_HEAD - head.len() - 4));
        head.push_str("\r\n\r\n");
        assert_eq!(head.len(), MAX_HEAD);
        let (mut c, wire) = connection(vec![bytes(&head)]);
        let mut built = Vec::new();
        assert_eq!(
            c.turn(&mut budget(), &mut pages(&mut built)),
            Turn::Closed(Closed::Served)
        );
        assert!(written(&wire).starts_with("HTTP/1.1 200 OK"));
    }

    #[test]
    fn slow_reader_gets_the_body_built_once_in_pieces() {
        let (mut c, wire) = connection(vec![bytes("GET /metrics HTTP/1.1\r\n\r\n")]);
        wire.borrow_mut().window = Some(100);
        let mut built = Vec::new();
        let mut b = budget();
        assert_eq!(c.turn(&mut b, &mut pages(&mut built)), Turn::Open);
        assert_eq!(c.interest(), libc::POLLOUT);
        assert!(!c.is_idle());
        assert_eq!(wire.borrow().written.len(), 100);
        let mut turns = 1;
        loop {
            wire.borrow_mut().window = Some(1000);
            turns += 1;
            match c.turn(&mut b, &mut pages(&mut built)) {
                Turn::Open => assert!(turns < 100, "never finished"),
                Turn::Closed(why) => {
                    assert_eq!(why, Closed::Served);
                    break;
                }
            }
        }
        assert_eq!(built, [Page::Metrics], "the body was built more than once");
        let text = written(&wire);
        let (head, body) = text.split_once("\r\n\r\n").unwrap_or_default();
        assert!(head.contains("Content-Length: 4000"), "{head}");
        assert_eq!(body, "m 1\n".repeat(1000));
        assert!(
            turns >= 5,
            "{turns} turns for 4 KB through a 1000-byte window"
        );
    }

    #[test]
    fn the_byte_budget_stops_a_write_and_the_next_turn_resumes() {
        let (mut c, wire) = connection(vec![bytes("GET /metrics HTTP/1.1\r\n\r\n")]);
        let mut built = Vec::new();
        let mut b = Budget {
            bytes: 1500,
            ..budget()
        };
        assert_eq!(c.turn(&mut b, &mut pages(&mut built)), Turn::Open);
        assert_eq!(b.bytes, 0);
        assert!(b.spent());
        assert_eq!(wire.borrow().written.len(), 1500);
        assert_eq!(
            c.turn(&mut budget(), &mut pages(&mut built)),
            Turn::Closed(Closed::Served)
        );
        assert_eq!(built.len(), 1);
        assert!(written(&wire).ends_with("m 1\n"));
    }

    #[test]
    fn head_requests_get_no_body() {
        let (mut c, wire) = connection(vec![bytes("HEAD /metrics HTTP/1.1\r\n\r\n")]);
        let mut built = Vec::new();
        assert_eq!(
            c.turn(&mut budget(), &mut pages(&mut built)),
            Turn::Closed(Closed::Served)
        );
        let text = written(&wire);
        assert!(text.contains("Content-Length: 4000\r\n"));
        assert!(text.ends_with("\r\n\r\n"));
    }

    #[test]
    fn peers_that_leave_or_fail() {
        let mut built = Vec::new();
        let (mut c, _) = connection(vec![bytes("GET /met"), In::Eof]);
        assert_eq!(
            c.turn(&mut budget(), &mut pages(&mut built)),
            Turn::Closed(Closed::PeerLeft)
        );
        let (mut c, _) = connection(vec![In::Reset]);
        assert_eq!(
            c.turn(&mut budget(), &mut pages(&mut built)),
            Turn::Closed(Closed::Failed(ErrorKind::ConnectionReset))
        );
        assert!(built.is_empty());
    }

    #[test]
    fn status_is_refused_where_not_served() {
        let (peer, wire) = Scripted::new(3, vec![bytes("GET /status HTTP/1.1\r\n\r\n")]);
        let mut c = Connection::new(peer, Instant::now(), false);
        let mut built = Vec::new();
        assert_eq!(
            c.turn(&mut budget(), &mut pages(&mut built)),
            Turn::Closed(Closed::Served)
        );
        assert!(built.is_empty());
        assert!(written(&wire).starts_with("HTTP/1.1 404 "));
    }

    #[test]
    fn expiry_tells_a_half_sent_request_why() {
        let start = Instant::now();
        let (peer, wire) = Scripted::new(3, vec![bytes("GET /metr"), In::Wait]);
        let mut c = Connection::new(peer, start, true);
        assert_eq!(c.deadline(), start + LIFETIME);
        let mut built = Vec::new();
        assert_eq!(c.turn(&mut budget(), &mut pages(&mut built)), Turn::Open);
        c.expire();
        assert!(written(&wire).starts_with("HTTP/1.1 408 "));

        let (mut silent, wire) = connection(vec![]);
        silent.expire();
        assert!(wire.borrow().written.is_empty());
    }
}
