//! Gateway HA in the agent loop: the Lease calls `leader::Elector` asks
//! for, through the same non-blocking client; its transitions gate
//! applying and writing.

use std::time::{Duration, Instant};

use super::api::Purpose;
use super::runner::Agent;
use crate::kube::binding_requests as req;
use crate::kube::{ApiRequest, Completed};
use crate::leader::{Event, Request, Response};

impl Agent {
    /// Milliseconds on the elector's clock.
    fn lease_clock(&self, now: Instant) -> u64 {
        now.saturating_duration_since(self.started).as_millis() as u64
    }

    /// Whether this agent may apply and write now (always without
    /// `--leader-elect`).
    pub(super) fn leading(&self) -> bool {
        self.elector.as_ref().is_none_or(|e| e.is_leader())
    }

    /// Ticks the elector and starts its next call when due.
    pub(super) fn lease_step(&mut self, now: Instant) {
        let t = self.lease_clock(now);
        let Some(e) = &mut self.elector else { return };
        let ev = e.tick(t);
        let request = e.due(t);
        if let Some(ev) = ev {
            self.leader_event(ev);
        }
        if let Some(r) = request {
            self.start_lease_call(r);
        }
    }

    /// When the elector needs the loop to wake up.
    pub(super) fn lease_deadline(&self) -> Option<Instant> {
        let e = self.elector.as_ref()?;
        let at = e.next_wakeup();
        (at != u64::MAX).then(|| self.started + Duration::from_millis(at))
    }

    fn lease_request(&self, r: &Request) -> Option<ApiRequest> {
        let cfg = self.elector.as_ref()?.config();
        let built = match r {
            Request::Get => req::get_lease(&cfg.namespace, &cfg.name),
            Request::Create(body) => req::create_lease(&cfg.namespace, body),
            Request::Update(body) => req::update_lease(&cfg.namespace, &cfg.name, body),
        };
        match built {
            Ok(r) => Some(r),
            Err(e) => {
                log::error!("lease {}/{}: {e}", cfg.namespace, cfg.name);
                None
            }
        }
    }

    fn start_lease_call(&mut self, r: Request) {
        match self.lease_request(&r) {
            Some(mut request) => {
                // A renewal that cannot finish within the retry period is
                // as good as failed.
                request.timeout = Duration::from_secs(2);
                let id = self.client.start(request);
                self.calls.insert(id, Purpose::Lease);
            }
            None => {
                let t = self.lease_clock(Instant::now());
                if let Some(e) = &mut self.elector {
                    let (_, ev) = e.on_response(t, "", Response::Failed("bad lease name".into()));
                    if let Some(ev) = ev {
                        self.leader_event(ev);
                    }
                }
            }
        }
    }

    pub(super) fn on_lease(&mut self, c: Completed) {
        let path = c.request.path.clone();
        let resp = match c.result.and_then(|r| r.json(&path)) {
            Ok(lease) => Response::Lease(lease),
            Err(e) if e.is_not_found() => Response::NotFound,
            Err(e) if e.is_conflict() => Response::Conflict,
            Err(e) => {
                log::warn!("lease: {e}");
                self.metrics.error("api");
                Response::Failed(e.to_string())
            }
        };
        let now = Instant::now();
        let t = self.lease_clock(now);
        let wall = crate::time::now_rfc3339_micro();
        let Some(e) = &mut self.elector else { return };
        let (next, ev) = e.on_response(t, &wall, resp);
        if let Some(ev) = ev {
            self.leader_event(ev);
        }
        if let Some(r) = next {
            self.start_lease_call(r);
        }
    }

    fn leader_event(&mut self, ev: Event) {
        let lease = self
            .elector
            .as_ref()
            .map(|e| format!("{}/{}", e.config().namespace, e.config().name))
            .unwrap_or_default();
        match ev {
            Event::Acquired => {
                log::info!("lease {lease}: leading; applying");
                self.metrics.leader = 1;
                self.reported.clear();
                self.full = true;
                self.schedule();
            }
            Event::Standby { holder } => {
                let who = if holder.is_empty() {
                    "nobody".to_string()
                } else {
                    holder
                };
                log::info!("lease {lease}: held by {who}; standing by, routes stay");
                self.metrics.leader = 0;
            }
            Event::Lost { why } => {
                log::warn!("lease {lease}: lost ({why}); stopped applying, routes stay");
                self.metrics.leader = 0;
            }
        }
    }

    /// On SIGTERM: hand the lease over at once (best effort, 1 s).
    pub(super) fn release_lease(&mut self) {
        let wall = crate::time::now_rfc3339_micro();
        let Some(r) = self.elector.as_ref().and_then(|e| e.release(&wall)) else {
            return;
        };
        if let Some(mut request) = self.lease_request(&r) {
            request.timeout = Duration::from_secs(1);
            match self.client.call(request) {
                Ok(_) => log::info!("lease released"),
                Err(e) => log::warn!("lease release: {e}"),
            }
        }
    }
}
