//! client-go's leader election (`tryAcquireOrRenew`) as a state machine.
//!
//! Expiry is judged on the local clock: a lease counts as held while its
//! record was seen to change less than `leaseDurationSeconds` ago, never by
//! comparing `renewTime` with our wall clock, so clock skew between nodes
//! cannot make two leaders. Times are milliseconds of a monotonic clock
//! (`now`); `wall` is the RFC 3339 micro-time written into the record.

use super::record::LeaseRecord;
use serde_json::{Value, json};

/// Upstream's values (client-go defaults as Liqo's gateway sets them).
pub const LEASE_MS: u64 = 15_000;
pub const RENEW_DEADLINE_MS: u64 = 10_000;
pub const RETRY_MS: u64 = 2_000;

/// What the elector needs to know.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    pub namespace: String,
    pub name: String,
    /// Our `holderIdentity` (the pod's name).
    pub identity: String,
    /// `--leader-elect-follow`: only observe a lease another container of
    /// this pod holds; we "lead" while it does.
    pub follow: bool,
    pub lease_ms: u64,
    pub renew_deadline_ms: u64,
    pub retry_ms: u64,
}

impl Config {
    pub fn new(namespace: &str, name: &str, identity: &str, follow: bool) -> Config {
        Config {
            namespace: namespace.into(),
            name: name.into(),
            identity: identity.into(),
            follow,
            lease_ms: LEASE_MS,
            renew_deadline_ms: RENEW_DEADLINE_MS,
            retry_ms: RETRY_MS,
        }
    }

    /// Whether `holder` is us: our identity, or (as controller-runtime
    /// writes it) our identity followed by `_` and a uuid.
    fn is_us(&self, holder: &str) -> bool {
        holder == self.identity
            || holder
                .strip_prefix(self.identity.as_str())
                .is_some_and(|rest| rest.starts_with('_'))
    }
}

/// A call for the shell to make on the Lease (`namespace/name` of the config).
#[derive(Clone, Debug, PartialEq)]
pub enum Request {
    Get,
    /// POST this Lease.
    Create(Value),
    /// PUT this Lease (it carries the `resourceVersion` read).
    Update(Value),
}

/// What the API server answered.
#[derive(Clone, Debug, PartialEq)]
pub enum Response {
    /// GET found it, or a write stored it (the stored object).
    Lease(Value),
    NotFound,
    /// Someone else wrote first (409): read again.
    Conflict,
    Failed(String),
}

/// A change of leadership worth a log line, a metric and `/status`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// We became the leader.
    Acquired,
    /// Someone else leads (or nobody does yet, in follow mode): stand by.
    Standby { holder: String },
    /// We led and do not any more: stop applying now; routes stay.
    Lost { why: String },
}

/// The elector's memory.
#[derive(Debug)]
pub struct Elector {
    cfg: Config,
    leader: bool,
    /// Last Lease object seen (for updates: resourceVersion) and its record.
    seen: Option<(Value, LeaseRecord)>,
    /// When the record last changed, on our clock.
    seen_at: u64,
    /// Last successful renew (leader only).
    renewed_at: u64,
    next_try: u64,
    in_flight: bool,
    /// The request in flight is our Create or Update.
    pending_write: bool,
    /// Holder last reported in an event, to log each change once.
    reported: Option<String>,
}

impl Elector {
    pub fn new(cfg: Config, now: u64) -> Elector {
        Elector {
            cfg,
            leader: false,
            seen: None,
            seen_at: now,
            renewed_at: 0,
            next_try: now,
            in_flight: false,
            pending_write: false,
            reported: None,
        }
    }

    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// Whether this agent may apply routes and write bindings now.
    pub fn is_leader(&self) -> bool {
        self.leader
    }

    /// The current holder as last seen (`None` before the first answer).
    pub fn holder(&self) -> Option<&str> {
        self.seen.as_ref().map(|(_, r)| r.holder.as_str())
    }

    /// The request to send now, if one is due and none is in flight.
    pub fn due(&mut self, now: u64) -> Option<Request> {
        if self.in_flight || now < self.next_try {
            return None;
        }
        self.in_flight = true;
        Some(Request::Get)
    }

    /// When the loop must wake up next for the elector (ms, same clock).
    pub fn next_wakeup(&self) -> u64 {
        let retry = if self.in_flight {
            u64::MAX
        } else {
            self.next_try
        };
        if !self.leader {
            retry
        } else if self.cfg.follow {
            retry.min(self.seen_at + self.lease_ms())
        } else {
            retry.min(self.renewed_at + self.cfg.renew_deadline_ms)
        }
    }

    /// Time passing: a leader that could not renew within the renew
    /// deadline steps down at once; a follower's holder that stopped
    /// renewing for a lease duration is gone.
    pub fn tick(&mut self, now: u64) -> Option<Event> {
        if !self.leader {
            return None;
        }
        let deadline = if self.cfg.follow {
            self.seen_at + self.lease_ms()
        } else {
            self.renewed_at + self.cfg.renew_deadline_ms
        };
        if now >= deadline {
            self.leader = false;
            let why = if self.cfg.follow {
                "the lease holder stopped renewing".to_string()
            } else {
                format!("not renewed for {} ms", now - self.renewed_at)
            };
            return Some(Event::Lost { why });
        }
        None
    }

    /// Feeds the answer to the last request; returns a follow-up request
    /// (a write after a read) and any leadership change.
    pub fn on_response(
        &mut self,
        now: u64,
        wall: &str,
        resp: Response,
    ) -> (Option<Request>, Option<Event>) {
        match resp {
            Response::Lease(obj) => {
                let record = LeaseRecord::of(&obj);
                let changed = self.seen.as_ref().is_none_or(|(o, r)| {
                    *r != record
                        || o.pointer("/metadata/resourceVersion")
                            != obj.pointer("/metadata/resourceVersion")
                });
                if changed {
                    self.seen_at = now;
                }
                let ours = self.cfg.is_us(&record.holder);
                let wrote = self.pending_write;
                self.seen = Some((obj.clone(), record.clone()));
                if self.cfg.follow {
                    self.in_flight = false;
                    self.next_try = now + self.cfg.retry_ms;
                    let expired = now >= self.seen_at + self.lease_ms();
                    let lead = ours && !expired;
                    return (None, self.set_leader(lead, &record.holder));
                }
                if wrote {
                    // Our write was stored: we lead (again).
                    self.pending_write = false;
                    self.in_flight = false;
                    self.renewed_at = now;
                    self.next_try = now + self.cfg.retry_ms;
                    return (None, self.set_leader(true, &record.holder));
                }
                let held_by_other =
                    !record.holder.is_empty() && !ours && now < self.seen_at + self.lease_ms();
                if held_by_other {
                    self.in_flight = false;
                    self.next_try = now + self.cfg.retry_ms;
                    return (None, self.set_leader(false, &record.holder));
                }
                // Free, expired, or ours: write ourselves in.
                let mut next = LeaseRecord {
                    holder: self.cfg.identity.clone(),
                    duration_secs: (self.cfg.lease_ms / 1000) as i64,
                    acquire_time: wall.to_string(),
                    renew_time: wall.to_string(),
                    transitions: record.transitions,
                };
                if ours && !record.acquire_time.is_empty() {
                    next.acquire_time = record.acquire_time.clone();
                } else if !ours {
                    next.transitions = record.transitions + 1;
                }
                let mut body = obj;
                body["spec"] = next.to_spec();
                self.pending_write = true;
                (Some(Request::Update(body)), None)
            }
            Response::NotFound => {
                if self.cfg.follow {
                    self.in_flight = false;
                    self.next_try = now + self.cfg.retry_ms;
                    self.seen = None;
                    return (None, self.set_leader(false, ""));
                }
                let record = LeaseRecord {
                    holder: self.cfg.identity.clone(),
                    duration_secs: (self.cfg.lease_ms / 1000) as i64,
                    acquire_time: wall.to_string(),
                    renew_time: wall.to_string(),
                    transitions: 0,
                };
                self.pending_write = true;
                (
                    Some(Request::Create(json!({
                        "apiVersion": "coordination.k8s.io/v1",
                        "kind": "Lease",
                        "metadata": {"name": self.cfg.name, "namespace": self.cfg.namespace},
                        "spec": record.to_spec(),
                    }))),
                    None,
                )
            }
            Response::Conflict | Response::Failed(_) => {
                self.in_flight = false;
                self.pending_write = false;
                self.next_try = now + self.cfg.retry_ms;
                (None, self.tick(now))
            }
        }
    }

    /// On shutdown: the Update that hands the lease over at once (empty
    /// holder, 1 s duration, as client-go's ReleaseOnCancel), if we lead.
    pub fn release(&self, wall: &str) -> Option<Request> {
        if !self.leader || self.cfg.follow {
            return None;
        }
        let (obj, record) = self.seen.as_ref()?;
        let mut body = obj.clone();
        body["spec"] = LeaseRecord {
            holder: String::new(),
            duration_secs: 1,
            acquire_time: wall.to_string(),
            renew_time: wall.to_string(),
            transitions: record.transitions,
        }
        .to_spec();
        Some(Request::Update(body))
    }

    fn lease_ms(&self) -> u64 {
        match self.seen.as_ref().map(|(_, r)| r.duration_secs) {
            Some(s) if s > 0 => s as u64 * 1000,
            _ => self.cfg.lease_ms,
        }
    }

    fn set_leader(&mut self, lead: bool, holder: &str) -> Option<Event> {
        let was = self.leader;
        self.leader = lead;
        match (was, lead) {
            (false, true) => {
                self.reported = Some(holder.to_string());
                Some(Event::Acquired)
            }
            (true, false) => {
                self.reported = Some(holder.to_string());
                Some(Event::Lost {
                    why: if holder.is_empty() {
                        "the lease is free".to_string()
                    } else {
                        format!("{holder} holds the lease")
                    },
                })
            }
            (false, false) if self.reported.as_deref() != Some(holder) => {
                self.reported = Some(holder.to_string());
                Some(Event::Standby {
                    holder: holder.to_string(),
                })
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const W: &str = "2026-12-01T00:00:00.000000Z";

    fn cfg(id: &str) -> Config {
        Config::new("liqo", "gw.liqo.server.connections.liqo.io", id, false)
    }

    fn lease(holder: &str, rv: &str, dur: i64) -> Value {
        json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
               "metadata": {"name": "l", "namespace": "liqo", "resourceVersion": rv},
               "spec": {"holderIdentity": holder, "leaseDurationSeconds": dur,
                        "acquireTime": "2026-11-30T00:00:00.000000Z",
                        "renewTime": "2026-11-30T00:00:00.000000Z", "leaseTransitions": 4}})
    }

    /// Plays the API server for one written body: stores it with a new version.
    fn stored(mut body: Value, rv: &str) -> Value {
        body["metadata"]["resourceVersion"] = json!(rv);
        body
    }

    #[test]
    fn creates_a_missing_lease_and_leads() {
        let mut e = Elector::new(cfg("gw-a"), 0);
        assert_eq!(e.due(0), Some(Request::Get));
        assert_eq!(e.due(0), None, "one request at a time");
        let (req, ev) = e.on_response(0, W, Response::NotFound);
        assert_eq!(ev, None);
        let Some(Request::Create(body)) = req else {
            panic!("{req:?}")
        };
        assert_eq!(
            body,
            json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                   "metadata": {"name": "gw.liqo.server.connections.liqo.io", "namespace": "liqo"},
                   "spec": {"holderIdentity": "gw-a", "leaseDurationSeconds": 15,
                            "acquireTime": W, "renewTime": W, "leaseTransitions": 0}})
        );
        let (req, ev) = e.on_response(10, W, Response::Lease(stored(body, "1")));
        assert_eq!((req, ev), (None, Some(Event::Acquired)));
        assert!(e.is_leader());
        assert_eq!(e.holder(), Some("gw-a"));
        assert_eq!(e.due(1000), None, "next try after the retry period");
        assert_eq!(e.next_wakeup(), 2010);
    }

    #[test]
    fn renews_keeping_acquire_time_and_transitions() {
        let mut e = Elector::new(cfg("gw-a"), 0);
        e.due(0);
        let (req, _) = e.on_response(0, W, Response::Lease(lease("gw-a", "3", 15)));
        let Some(Request::Update(body)) = req else {
            panic!()
        };
        assert_eq!(body["metadata"]["resourceVersion"], "3");
        assert_eq!(body["spec"]["acquireTime"], "2026-11-30T00:00:00.000000Z");
        assert_eq!(body["spec"]["renewTime"], W);
        assert_eq!(body["spec"]["leaseTransitions"], 4);
        let (_, ev) = e.on_response(5, W, Response::Lease(stored(body, "4")));
        assert_eq!(ev, Some(Event::Acquired));
        // A later renewal is silent.
        assert_eq!(e.due(2005), Some(Request::Get));
        let (req, _) = e.on_response(2005, W, Response::Lease(lease("gw-a", "4", 15)));
        let Some(Request::Update(body)) = req else {
            panic!()
        };
        assert_eq!(
            e.on_response(2010, W, Response::Lease(stored(body, "5"))).1,
            None
        );
        assert!(e.is_leader());
    }

    #[test]
    fn standby_while_another_holds_then_takes_over_after_expiry() {
        let mut e = Elector::new(cfg("gw-b"), 0);
        e.due(0);
        let (req, ev) = e.on_response(0, W, Response::Lease(lease("gw-a", "7", 15)));
        assert_eq!(req, None);
        assert_eq!(
            ev,
            Some(Event::Standby {
                holder: "gw-a".into()
            })
        );
        assert!(!e.is_leader());
        // Unchanged record: still held until 15 s after we first saw it.
        for t in [2000, 4000, 14_000] {
            assert_eq!(e.due(t), Some(Request::Get));
            assert_eq!(
                e.on_response(t, W, Response::Lease(lease("gw-a", "7", 15))),
                (None, None)
            );
        }
        e.due(15_000);
        let (req, _) = e.on_response(15_000, W, Response::Lease(lease("gw-a", "7", 15)));
        let Some(Request::Update(body)) = req else {
            panic!("{req:?}")
        };
        assert_eq!(body["spec"]["holderIdentity"], "gw-b");
        assert_eq!(body["spec"]["acquireTime"], W);
        assert_eq!(body["spec"]["leaseTransitions"], 5);
        let (_, ev) = e.on_response(15_010, W, Response::Lease(stored(body, "8")));
        assert_eq!(ev, Some(Event::Acquired));
    }

    #[test]
    fn a_renewing_holder_is_never_taken_over() {
        let mut e = Elector::new(cfg("gw-b"), 0);
        for (i, t) in (0..20u64).map(|i| (i, i * 2000)) {
            e.due(t);
            let (req, _) = e.on_response(t, W, Response::Lease(lease("gw-a", &i.to_string(), 15)));
            assert_eq!(req, None, "at {t} ms");
            assert!(!e.is_leader());
        }
    }

    #[test]
    fn released_lease_is_taken_after_its_one_second() {
        let mut e = Elector::new(cfg("gw-b"), 0);
        e.due(0);
        assert!(
            e.on_response(0, W, Response::Lease(lease("gw-a", "1", 15)))
                .1
                .is_some()
        );
        e.due(2000);
        // gw-a released: empty holder, duration 1.
        let (req, _) = e.on_response(2000, W, Response::Lease(lease("", "2", 1)));
        assert!(matches!(req, Some(Request::Update(_))));
    }

    #[test]
    fn conflict_on_write_retries_and_leader_loses_after_renew_deadline() {
        let mut e = Elector::new(cfg("gw-a"), 0);
        e.due(0);
        let (req, _) = e.on_response(0, W, Response::Lease(lease("gw-a", "1", 15)));
        let Some(Request::Update(body)) = req else {
            panic!()
        };
        e.on_response(0, W, Response::Lease(stored(body, "2")));
        assert!(e.is_leader());
        // Renewals fail from now on.
        for t in [2000, 4000, 6000, 8000] {
            assert_eq!(e.due(t), Some(Request::Get));
            assert_eq!(
                e.on_response(t, W, Response::Failed("timeout".into())),
                (None, None)
            );
            assert!(e.is_leader(), "still within the renew deadline at {t}");
        }
        assert_eq!(e.next_wakeup(), 10_000);
        assert_eq!(e.tick(9_999), None);
        assert_eq!(
            e.tick(10_000),
            Some(Event::Lost {
                why: "not renewed for 10000 ms".into()
            })
        );
        assert!(!e.is_leader());
        assert_eq!(e.tick(20_000), None);
        // A conflict is a failure too, not a takeover.
        e.due(10_000);
        assert_eq!(e.on_response(10_000, W, Response::Conflict), (None, None));
    }

    #[test]
    fn leader_seeing_another_holder_stops_at_once() {
        let mut e = Elector::new(cfg("gw-a"), 0);
        e.due(0);
        let (req, _) = e.on_response(0, W, Response::NotFound);
        let Some(Request::Create(body)) = req else {
            panic!()
        };
        e.on_response(0, W, Response::Lease(stored(body, "1")));
        e.due(2000);
        let (req, ev) = e.on_response(2000, W, Response::Lease(lease("gw-b", "9", 15)));
        assert_eq!(req, None);
        assert_eq!(
            ev,
            Some(Event::Lost {
                why: "gw-b holds the lease".into()
            })
        );
        assert!(!e.is_leader());
    }

    #[test]
    fn release_only_when_leading() {
        let mut e = Elector::new(cfg("gw-a"), 0);
        assert_eq!(e.release(W), None);
        e.due(0);
        let (req, _) = e.on_response(0, W, Response::Lease(lease("gw-a", "1", 15)));
        let Some(Request::Update(body)) = req else {
            panic!()
        };
        e.on_response(0, W, Response::Lease(stored(body, "2")));
        let Some(Request::Update(r)) = e.release(W) else {
            panic!()
        };
        assert_eq!(r["metadata"]["resourceVersion"], "2");
        assert_eq!(
            r["spec"],
            json!({"holderIdentity": "", "leaseDurationSeconds": 1, "acquireTime": W,
                   "renewTime": W, "leaseTransitions": 4})
        );
    }

    #[test]
    fn follower_leads_while_its_container_holds_and_renews() {
        let mut e = Elector::new(Config::new("liqo", "l", "gw-pod-1", true), 0);
        e.due(0);
        assert_eq!(
            e.on_response(0, W, Response::NotFound),
            (
                None,
                Some(Event::Standby {
                    holder: String::new()
                })
            )
        );
        e.due(2000);
        let (req, ev) = e.on_response(
            2000,
            W,
            Response::Lease(lease("gw-pod-1_3f2a-uuid", "1", 15)),
        );
        assert_eq!((req, ev), (None, Some(Event::Acquired)));
        assert!(e.is_leader());
        // Renewed by the holder: still leading past the first 15 s.
        for (i, t) in [4000u64, 8000, 12_000, 16_000, 20_000].iter().enumerate() {
            e.due(*t);
            e.on_response(
                *t,
                W,
                Response::Lease(lease("gw-pod-1_3f2a-uuid", &format!("r{i}"), 15)),
            );
            assert_eq!(e.tick(*t), None);
        }
        // It stops renewing: lost a lease duration after the last change,
        // and the loop is told to wake up then (not before, not busily).
        assert_eq!(e.due(20_001), None);
        e.due(22_000);
        e.on_response(
            22_000,
            W,
            Response::Lease(lease("gw-pod-1_3f2a-uuid", "r4", 15)),
        );
        assert_eq!(e.next_wakeup(), 24_000);
        e.due(34_000);
        e.on_response(
            34_000,
            W,
            Response::Lease(lease("gw-pod-1_3f2a-uuid", "r4", 15)),
        );
        assert_eq!(e.next_wakeup(), 35_000);
        assert_eq!(e.tick(34_999), None);
        assert!(matches!(e.tick(35_000), Some(Event::Lost { .. })));
        // Never writes.
        e.due(36_000);
        assert_eq!(
            e.on_response(
                36_000,
                W,
                Response::Lease(lease("gw-pod-1_3f2a-uuid", "r4", 15))
            )
            .0,
            None
        );
        assert_eq!(e.release(W), None);
    }

    #[test]
    fn follower_of_another_pod_stands_by() {
        let mut e = Elector::new(Config::new("liqo", "l", "gw-pod-1", true), 0);
        e.due(0);
        let (req, ev) = e.on_response(0, W, Response::Lease(lease("gw-pod-10_x", "1", 15)));
        assert_eq!(req, None);
        assert_eq!(
            ev,
            Some(Event::Standby {
                holder: "gw-pod-10_x".into()
            })
        );
    }

    #[test]
    fn identity_matching() {
        let c = cfg("gw");
        assert!(c.is_us("gw") && c.is_us("gw_abc"));
        assert!(!c.is_us("gw2") && !c.is_us("g") && !c.is_us(""));
    }
}
