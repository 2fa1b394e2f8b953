//! The open connections: at most [`MAX_OPEN`], each with its deadline,
//! served in fair turns. A flood of idle clients costs at most 64 slots,
//! 4 KiB each and 2 s each; it cannot hold the loop.

use super::connection::{Budget, Closed, Connection, Peer, Turn};
use super::protocol::{Page, Response};
use std::collections::BTreeMap;
use std::os::fd::RawFd;
use std::time::Instant;

/// Open connections at most. Beyond this, accepting one closes the oldest
/// idle one (one still waiting for its request).
pub const MAX_OPEN: usize = 64;

/// How connections ended since the start, by reason: the server's own
/// health, for `/metrics`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    pub accepted: u64,
    pub served: u64,
    pub expired: u64,
    pub evicted: u64,
    /// Closed by the peer early, or failed.
    pub dropped: u64,
}

impl Counts {
    /// Prometheus text for these counts and `open` connections now.
    pub fn render(&self, open: usize) -> String {
        let mut out = String::from(
            "# HELP routecfg_http_connections_total Metrics-port connections closed, by how.\n\
             # TYPE routecfg_http_connections_total counter\n",
        );
        for (how, n) in [
            ("served", self.served),
            ("expired", self.expired),
            ("evicted", self.evicted),
            ("dropped", self.dropped),
        ] {
            out.push_str(&format!(
                "routecfg_http_connections_total{{how=\"{how}\"}} {n}\n"
            ));
        }
        out.push_str(&format!(
            "# HELP routecfg_http_connections_open Metrics-port connections open now.\n\
             # TYPE routecfg_http_connections_open gauge\n\
             routecfg_http_connections_open {open}\n"
        ));
        out
    }
}

/// Connections keyed by accept order, so the smallest key is the oldest.
pub struct Connections<S> {
    open: BTreeMap<u64, Connection<S>>,
    next: u64,
    /// The key served last: the next wakeup starts after it.
    cursor: Option<u64>,
    limit: usize,
    counts: Counts,
}

impl<S: Peer> Connections<S> {
    pub fn new(limit: usize) -> Connections<S> {
        Connections {
            open: BTreeMap::new(),
            next: 0,
            cursor: None,
            limit: limit.max(1),
            counts: Counts::default(),
        }
    }

    pub fn len(&self) -> usize {
        self.open.len()
    }

    pub fn counts(&self) -> Counts {
        self.counts
    }

    /// Takes a new connection, first closing the oldest idle one if every
    /// slot is taken (the oldest of all if none is idle: the newcomer is
    /// likelier a live probe than the slowest reader).
    pub fn admit(&mut self, stream: S, now: Instant, serves_status: bool) {
        while self.open.len() >= self.limit {
            let victim = self
                .open
                .iter()
                .find(|(_, c)| c.is_idle())
                .or_else(|| self.open.iter().next())
                .map(|(k, _)| *k);
            let Some(key) = victim else { break };
            self.close(key, Closed::Evicted);
        }
        self.counts.accepted += 1;
        self.open
            .insert(self.next, Connection::new(stream, now, serves_status));
        self.next += 1;
    }

    /// Appends each connection's descriptor and the events it waits for.
    pub fn interest(&self, out: &mut Vec<(RawFd, libc::c_short)>) {
        out.extend(self.open.values().map(|c| (c.fd(), c.interest())));
    }

    /// The earliest connection deadline.
    pub fn deadline(&self) -> Option<Instant> {
        self.open.values().map(Connection::deadline).min()
    }

    /// Closes every connection whose deadline has passed.
    pub fn expire(&mut self, now: Instant) {
        let due: Vec<u64> = self
            .open
            .iter()
            .filter(|(_, c)| c.deadline() <= now)
            .map(|(k, _)| *k)
            .collect();
        for key in due {
            if let Some(c) = self.open.get_mut(&key) {
                c.expire();
            }
            self.close(key, Closed::Expired);
        }
    }

    /// Gives each connection whose descriptor is in `ready` a turn, in
    /// round-robin order from where the last wakeup stopped, until `budget`
    /// is spent; the rest stay ready and poll reports them again.
    pub fn serve(
        &mut self,
        ready: &[RawFd],
        budget: &mut Budget,
        pages: &mut dyn FnMut(Page) -> Response,
    ) {
        let start = self.cursor.map_or(0, |c| c + 1);
        let order: Vec<u64> = self
            .open
            .range(start..)
            .chain(self.open.range(..start))
            .filter(|(_, c)| ready.contains(&c.fd()))
            .map(|(k, _)| *k)
            .collect();
        for key in order {
            if budget.spent() {
                return;
            }
            self.cursor = Some(key);
            let Some(c) = self.open.get_mut(&key) else {
                continue;
            };
            if let Turn::Closed(why) = c.turn(budget, pages) {
                self.close(key, why);
            }
        }
    }

    fn close(&mut self, key: u64, why: Closed) {
        if self.open.remove(&key).is_none() {
            return;
        }
        log::debug!("metrics connection {key}: closed ({why:?})");
        let counter = match why {
            Closed::Served => &mut self.counts.served,
            Closed::Expired => &mut self.counts.expired,
            Closed::Evicted => &mut self.counts.evicted,
            Closed::PeerLeft | Closed::Failed(_) => &mut self.counts.dropped,
        };
        *counter += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::super::connection::LIFETIME;
    use super::super::script::{In, Scripted, Wire};
    use super::*;
    use std::cell::RefCell;
    use std::rc::Rc;
    use std::time::Duration;

    fn budget() -> Budget {
        Budget {
            until: Instant::now() + Duration::from_secs(3600),
            bytes: usize::MAX,
            accepts: 64,
        }
    }

    fn health(_: Page) -> Response {
        Response::text("200 OK", "ok\n")
    }

    fn request(path: &str) -> In {
        In::Bytes(format!("GET {path} HTTP/1.1\r\n\r\n").into_bytes())
    }

    type Wires = Vec<Rc<RefCell<Wire>>>;

    /// `n` connections with fds 100.., each with its scripted input.
    fn admit_all(conns: &mut Connections<Scripted>, now: Instant, inputs: Vec<Vec<In>>) -> Wires {
        let mut wires = Vec::new();
        for input in inputs {
            let fd = 100 + conns.counts().accepted as RawFd;
            let (peer, wire) = Scripted::new(fd, input);
            conns.admit(peer, now, true);
            wires.push(wire);
        }
        wires
    }

    fn answered(wire: &Rc<RefCell<Wire>>) -> bool {
        wire.borrow().written.starts_with(b"HTTP/1.1 200 OK")
    }

    #[test]
    fn the_oldest_idle_connection_makes_room() {
        let now = Instant::now();
        let mut conns = Connections::new(3);
        // 100 has its request answered but its reader is slow (writing);
        // 101 and 102 sit idle.
        let wires = admit_all(
            &mut conns,
            now,
            vec![vec![request("/healthz")], vec![], vec![]],
        );
        wires[0].borrow_mut().window = Some(10);
        conns.serve(&[100, 101, 102], &mut budget(), &mut health);
        assert_eq!(conns.len(), 3);
        let more = admit_all(&mut conns, now, vec![vec![request("/healthz")]]);
        assert_eq!(conns.len(), 3);
        assert!(!wires[0].borrow().dropped, "the writing one was evicted");
        assert!(wires[1].borrow().dropped, "the oldest idle one stayed");
        assert!(!wires[2].borrow().dropped);
        conns.serve(&[103], &mut budget(), &mut health);
        assert!(answered(&more[0]));
        assert_eq!(conns.counts().evicted, 1);
        assert_eq!(conns.counts().served, 1);

        // Nobody idle: the oldest goes.
        let mut busy = Connections::new(2);
        let wires = admit_all(
            &mut busy,
            now,
            vec![vec![request("/healthz")], vec![request("/healthz")]],
        );
        for w in &wires {
            w.borrow_mut().window = Some(0);
        }
        busy.serve(&[100, 101], &mut budget(), &mut health);
        admit_all(&mut busy, now, vec![vec![]]);
        assert!(wires[0].borrow().dropped);
        assert!(!wires[1].borrow().dropped);
        assert_eq!(busy.len(), 2);
    }

    #[test]
    fn a_flood_of_idle_clients_leaves_room_for_a_probe() {
        let now = Instant::now();
        let mut conns = Connections::new(MAX_OPEN);
        let idle = admit_all(&mut conns, now, (0..300).map(|_| vec![In::Wait]).collect());
        assert_eq!(conns.len(), MAX_OPEN);
        assert_eq!(idle.iter().filter(|w| w.borrow().dropped).count(), 300 - 64);
        let probe = admit_all(&mut conns, now, vec![vec![request("/healthz")]]);
        let ready: Vec<RawFd> = (100..401).collect();
        conns.serve(&ready, &mut budget(), &mut health);
        assert!(answered(&probe[0]));
        assert_eq!(conns.len(), MAX_OPEN - 1);
    }

    #[test]
    fn deadlines_close_idle_and_slow_connections() {
        let start = Instant::now();
        let mut conns = Connections::new(8);
        let wires = admit_all(
            &mut conns,
            start,
            vec![vec![], vec![request("/healthz")], vec![request("/healthz")]],
        );
        wires[1].borrow_mut().window = Some(5);
        conns.serve(&[100, 101, 102], &mut budget(), &mut health);
        // 102 was served; 100 idle, 101 reading slowly.
        assert_eq!(conns.len(), 2);
        assert_eq!(conns.deadline(), Some(start + LIFETIME));
        conns.expire(start + LIFETIME - Duration::from_millis(1));
        assert_eq!(conns.len(), 2);
        conns.expire(start + LIFETIME);
        assert_eq!(conns.len(), 0);
        assert_eq!(conns.deadline(), None);
        assert!(wires[0].borrow().dropped && wires[1].borrow().dropped);
        assert_eq!(conns.counts().expired, 2);
        assert_eq!(conns.counts().served, 1);
        let text = conns.counts().render(conns.len());
        assert!(text.contains("routecfg_http_connections_total{how=\"expired\"} 2\n"));
        assert!(text.contains("routecfg_http_connections_total{how=\"served\"} 1\n"));
        assert!(text.contains("routecfg_http_connections_open 0\n"));
    }

    #[test]
    fn interest_follows_the_phase() {
        let now = Instant::now();
        let mut conns = Connections::new(8);
        let wires = admit_all(&mut conns, now, vec![vec![], vec![request("/healthz")]]);
        wires[1].borrow_mut().window = Some(0);
        conns.serve(&[100, 101], &mut budget(), &mut health);
        let mut fds = Vec::new();
        conns.interest(&mut fds);
        assert_eq!(fds, [(100, libc::POLLIN), (101, libc::POLLOUT)]);
    }

    #[test]
    fn a_spent_time_budget_serves_nobody_until_the_next_wakeup() {
        let now = Instant::now();
        let mut conns = Connections::new(8);
        let wires = admit_all(&mut conns, now, vec![vec![request("/healthz")]]);
        let mut late = Budget {
            until: now,
            ..budget()
        };
        conns.serve(&[100], &mut late, &mut health);
        assert!(wires[0].borrow().written.is_empty());
        assert_eq!(conns.len(), 1);
        conns.serve(&[100], &mut budget(), &mut health);
        assert!(answered(&wires[0]));
        assert_eq!(conns.len(), 0);
    }

    #[test]
    fn turns_are_fair_when_the_budget_runs_out() {
        let now = Instant::now();
        let mut conns = Connections::new(8);
        let wires = admit_all(
            &mut conns,
            now,
            (0..4).map(|_| vec![request("/metrics")]).collect(),
        );
        let mut big = |_: Page| Response::ok("text/plain", "x".repeat(10_000));
        let ready = [100, 101, 102, 103];
        let mut turns = Vec::new();
        for _ in 0..8 {
            // Enough for one answer and a bit per wakeup.
            let mut b = Budget {
                bytes: 12_000,
                ..budget()
            };
            conns.serve(&ready, &mut b, &mut big);
            turns.push(
                wires
                    .iter()
                    .map(|w| w.borrow().written.len())
                    .collect::<Vec<_>>(),
            );
        }
        // After two wakeups every connection has had bytes.
        assert!(turns[1].iter().all(|&n| n > 0), "{turns:?}");
        assert_eq!(conns.len(), 0, "{turns:?}");
        assert_eq!(conns.counts().served, 4);
    }
}
