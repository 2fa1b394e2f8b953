//! The agent's API side, all of it non-blocking: the RouteConfiguration
//! list/watch ([`super::stream::Stream`], shared with the bindings stream),
//! the write queue's intents rendered into calls, and the calls' results.
//! Everything goes through [`crate::kube::Client`] (calls) and
//! [`crate::kube::Watch`] (the stream), both driven by the loop's poll(2).
//!
//! Each wakeup handles at most [`WATCH_EVENTS_PER_TURN`] events or
//! [`WATCH_TIME_PER_TURN`] of watch work per stream, and stops as soon as
//! kernel repair is due, so an endless stream cannot starve the kernel,
//! the metrics server or signals.

use std::time::{Duration, Instant};

use serde_json::Value;

use super::reconcile::{has_finalizer, split_key};
use super::runner::{Agent, FINALIZER};
use super::state::key_of;
use super::status::updated_status;
use super::stream::{Paged, Phase, Polled, Started};
use super::writes::Done;
use crate::kube::{ApiRequest, Completed, EventType, KubeError, WatchEventKind, requests};

/// Most watch events handled in one wakeup.
pub const WATCH_EVENTS_PER_TURN: usize = 1000;
/// Most time spent on watch events in one wakeup.
pub const WATCH_TIME_PER_TURN: Duration = Duration::from_millis(20);
/// Most write calls in flight at once (the client has few connections; the
/// rest wait in the queue, where the latest intent wins).
const WRITES_IN_FLIGHT: usize = 16;

/// Which write a queue key holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum WriteKind {
    Status,
    Finalizer,
    Event,
    /// A binding's status (keyed by its RouteConfiguration).
    BindingStatus,
    /// Create, repair, delete or unfinalize a binding (keyed by the binding).
    Binding,
    /// Strip the pre-binding finalizer (keyed by the RouteConfiguration).
    Legacy,
}

/// A write-queue key: one kind of write for one object (`namespace/name`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct WriteKey {
    pub(super) kind: WriteKind,
    pub(super) object: String,
}

/// What an object should say; rendered into a request when sent.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Intent {
    /// This host's `Applied` condition.
    Status { applied: bool },
    /// Our finalizer present or absent.
    Finalizer { present: bool },
    /// An Event about the object.
    Event {
        reason: &'static str,
        message: String,
        kind: EventType,
        /// When it happened (RFC 3339): part of the Event's name, so a
        /// resend after a lost answer is not a second Event.
        at: String,
    },
    /// The binding's `Applied` condition and table name.
    BindingStatus {
        ok: bool,
        message: String,
        table: Option<String>,
    },
    /// One of `binding::decide`'s actions.
    Binding(crate::binding::Action),
}

/// What a call in flight is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Purpose {
    ListPage,
    Write(WriteKey),
    /// Re-read after a 409, for this key's next attempt.
    Reread(WriteKey),
    /// API discovery of the binding resource.
    Discovery,
    /// A page of the bindings list.
    BindingListPage,
    /// A Lease call of leader election.
    Lease,
}

impl Agent {
    /// True when list or watch wants to talk to the server now.
    pub(super) fn api_due(&self, now: Instant) -> bool {
        self.sync.due(now)
    }

    /// Starts a list or a watch when their time has come. Name resolution
    /// (the one blocking call) happens here, only when no kernel work is
    /// waiting.
    pub(super) fn sync_step(&mut self, now: Instant) {
        let wants_server =
            self.api_due(now) || self.client.in_flight() > 0 || !self.writes.ready(now).is_empty();
        if self.client.needs_resolve() && wants_server && self.due.is_none() {
            if let Err(e) = self.client.resolve() {
                self.metrics.error("api");
                let wait = self.sync.backoff.failed();
                log::warn!("{e}; retrying in {} ms", wait.as_millis());
                self.sync.postpone(now + wait);
                return;
            }
        }
        // `--bindings auto` asks discovery again on every list.
        if matches!(self.sync.phase, Phase::ListAt(t) if t <= now)
            && self.bindings.flag.needs_discovery()
        {
            self.bindings.discover_due = true;
        }
        match self
            .sync
            .start(&mut self.client, self.opts.watch_timeout, now)
        {
            Started::ListPage(call) => {
                self.calls.insert(call, Purpose::ListPage);
            }
            Started::Failed => self.metrics.error("api"),
            Started::Nothing | Started::Watching => {}
        }
    }

    /// True when this turn's watch work is over: the budget is spent, or
    /// kernel repair has come due (it always goes first).
    pub(super) fn watch_turn_over(&self, started: Instant, handled: usize) -> bool {
        self.due.is_some_and(|d| d <= Instant::now())
            || handled >= WATCH_EVENTS_PER_TURN
            || started.elapsed() >= WATCH_TIME_PER_TURN
    }

    /// Handles watch events within this turn's budget; true when the
    /// budget ran out with more to do.
    pub(super) fn drain_watch(&mut self, started: Instant) -> bool {
        let mut changed = false;
        let mut handled = 0;
        let more = loop {
            if self.watch_turn_over(started, handled) {
                break self.sync.watch().is_some();
            }
            match self.sync.next(&mut self.client, Instant::now()) {
                Polled::Idle => break false,
                Polled::Restarted { failed } => {
                    self.metrics.watch_restarts += 1;
                    if failed {
                        self.metrics.error("api");
                    }
                }
                Polled::Event(ev) => {
                    handled += 1;
                    match ev.kind {
                        WatchEventKind::Added | WatchEventKind::Modified => {
                            log::debug!("{:?} {}", ev.kind, key_of(&ev.object));
                            changed |= self.state.upsert(ev.object);
                        }
                        WatchEventKind::Deleted => {
                            let key = key_of(&ev.object);
                            log::info!("{key}: deleted");
                            changed |= self.state.remove(&key);
                            self.reported.remove(&key);
                        }
                        WatchEventKind::Bookmark | WatchEventKind::Error => {}
                    }
                }
            }
        };
        if changed {
            self.absorb_changes();
        }
        // Metadata-only changes (a finalizer, a new uid) matter to bindings.
        if handled > 0 {
            self.queue_binding_work();
        }
        more
    }

    /// Sends the writes whose turn it is, rendered from the objects as
    /// they are now.
    pub(super) fn dispatch_writes(&mut self, now: Instant) {
        // A standby writes nothing; what it queued waits for leadership.
        if !self.leading() {
            return;
        }
        for key in self.writes.ready(now) {
            if self.writes.in_flight() >= WRITES_IN_FLIGHT {
                break;
            }
            match self.render(&key) {
                Ok(Some(request)) => {
                    let id = self.client.start(request);
                    self.writes.started(&key, id);
                    self.calls.insert(id, Purpose::Write(key));
                }
                Ok(None) => self.writes.skipped(&key),
                Err(e) => {
                    // Refused locally (bad name, no resourceVersion): retrying
                    // cannot help until the object changes.
                    self.metrics.error("status");
                    log::warn!("{}: {e}", key.object);
                    self.writes.skipped(&key);
                }
            }
        }
        self.metrics.write_queue = self.writes.depth() as u64;
    }

    /// The request carrying `key`'s intent, or `None` when the object
    /// already says it (or is gone).
    fn render(&self, key: &WriteKey) -> Result<Option<ApiRequest>, KubeError> {
        if matches!(
            key.kind,
            WriteKind::BindingStatus | WriteKind::Binding | WriteKind::Legacy
        ) {
            return match self.writes.intent(key) {
                Some(intent) => self.render_binding(key, intent),
                None => Ok(None),
            };
        }
        let (Some(intent), Some(raw)) = (self.writes.intent(key), self.state.raw(&key.object))
        else {
            return Ok(None);
        };
        let now = crate::time::now_rfc3339();
        render(
            intent,
            &key.object,
            raw,
            &self.opts.host,
            self.client.event_source(),
            &now,
        )
    }

    /// Takes the client's finished calls.
    pub(super) fn on_completed(&mut self, done: Vec<Completed>) {
        for c in done {
            let Some(purpose) = self.calls.remove(&c.id) else {
                continue;
            };
            let now = Instant::now();
            match purpose {
                Purpose::ListPage => self.on_list_page(c, now),
                Purpose::Write(key) => self.on_write(key, c, now),
                Purpose::Reread(key) => self.on_reread(key, c, now),
                Purpose::Discovery => self.on_discovery(c),
                Purpose::BindingListPage => self.on_binding_list_page(c, now),
                Purpose::Lease => self.on_lease(c),
            }
        }
        self.metrics.write_queue = self.writes.depth() as u64;
    }

    fn on_list_page(&mut self, c: Completed, now: Instant) {
        match self.sync.on_page(&mut self.client, c, now) {
            Paged::NextPage(id) => {
                self.calls.insert(id, Purpose::ListPage);
            }
            Paged::Listed(items, rv) => self.listed(requests::with_kind((items, rv))),
            Paged::Failed => self.metrics.error("api"),
            Paged::NotOurs => {}
        }
    }

    fn on_write(&mut self, key: WriteKey, c: Completed, now: Instant) {
        if matches!(
            key.kind,
            WriteKind::BindingStatus | WriteKind::Binding | WriteKind::Legacy
        ) {
            return self.on_binding_write(key, c, now);
        }
        match c.result {
            Ok(response) => {
                if key.kind != WriteKind::Event {
                    match response.json(&c.request.path) {
                        Ok(written) => self.state.refresh_raw(written),
                        Err(e) => log::warn!("{}: {e}", key.object),
                    }
                }
                if key.kind == WriteKind::Finalizer {
                    log::info!("{}: finalizer updated", key.object);
                }
                self.writes.finished(&key, c.id, Done::Written, now);
            }
            Err(e) if e.is_conflict() && key.kind != WriteKind::Event => {
                // Someone else wrote first: re-read, then try again.
                let (ns, name) = split_key(&key.object);
                match requests::get(ns, name) {
                    Ok(request) => {
                        let id = self.client.start(request);
                        self.writes.started(&key, id);
                        self.calls.insert(id, Purpose::Reread(key));
                    }
                    Err(_) => self.writes.finished(&key, c.id, Done::Written, now),
                }
            }
            // 404: the object is gone. 409 on an Event: an earlier send
            // of the same Event got through.
            Err(e) if e.is_not_found() || e.is_conflict() => {
                self.writes.finished(&key, c.id, Done::Written, now);
            }
            Err(e) => {
                self.metrics.error("status");
                if self.writes.failures(&key) == 0 {
                    log::warn!("{}: writing {:?}: {e}; retrying", key.object, key.kind);
                } else {
                    log::debug!("{}: writing {:?}: {e}; retrying", key.object, key.kind);
                }
                self.writes.finished(&key, c.id, Done::Failed, now);
            }
        }
    }

    fn on_reread(&mut self, key: WriteKey, c: Completed, now: Instant) {
        match c.result.and_then(|r| r.json(&c.request.path)) {
            Ok(fresh) => {
                self.state.refresh_raw(fresh);
                self.writes.finished(&key, c.id, Done::Again, now);
            }
            Err(e) if e.is_not_found() => self.writes.finished(&key, c.id, Done::Written, now),
            Err(e) => {
                self.metrics.error("status");
                log::warn!("{}: re-reading after a conflict: {e}", key.object);
                self.writes.finished(&key, c.id, Done::Failed, now);
            }
        }
    }

    /// `routecfg once`: drives queued writes to the server until none is
    /// left or `deadline` passes; true when all were written.
    pub(super) fn flush_writes(&mut self, deadline: Instant) -> bool {
        loop {
            let now = Instant::now();
            if self.client.needs_resolve() {
                if let Err(e) = self.client.resolve() {
                    log::warn!("{e}");
                    return false;
                }
            }
            self.dispatch_writes(now);
            self.client.advance();
            let done = self.client.take_completed();
            self.on_completed(done);
            if self.writes.is_empty() {
                return true;
            }
            if now >= deadline {
                return false;
            }
            let mut fds = Vec::new();
            self.client.poll_fds(&mut fds);
            let mut until = deadline;
            for t in [self.client.deadline(), self.writes.next_retry()]
                .into_iter()
                .flatten()
            {
                until = until.min(t);
            }
            let wait = until
                .saturating_duration_since(Instant::now())
                .min(Duration::from_secs(1));
            if let Err(e) = super::poll::wait(&fds, Some(wait)) {
                log::warn!("poll: {e}");
                return false;
            }
        }
    }
}

/// The request that makes `raw` (the object `key` as we know it) say
/// `intent`, or `None` when it already does. Pure: tested below.
pub(super) fn render(
    intent: &Intent,
    key: &str,
    raw: &Value,
    host: &str,
    event_source: (&str, &str),
    now: &str,
) -> Result<Option<ApiRequest>, KubeError> {
    let (ns, name) = split_key(key);
    match intent {
        Intent::Status { applied } => {
            let Some(status) = updated_status(raw, host, *applied, now) else {
                return Ok(None);
            };
            let mut object = raw.clone();
            object["status"] = status;
            requests::replace_status(ns, name, &object).map(Some)
        }
        Intent::Finalizer { present } => {
            let has = has_finalizer(raw);
            let deleting = raw.pointer("/metadata/deletionTimestamp").is_some();
            if has == *present || (*present && deleting) {
                return Ok(None);
            }
            let mut finalizers: Vec<String> = raw
                .pointer("/metadata/finalizers")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(|v| v.as_str().map(String::from))
                        .filter(|f| f != FINALIZER)
                        .collect()
                })
                .unwrap_or_default();
            if *present {
                finalizers.push(FINALIZER.to_string());
            }
            let rv = raw
                .pointer("/metadata/resourceVersion")
                .and_then(Value::as_str)
                .unwrap_or("");
            requests::patch_finalizers(ns, name, rv, &finalizers).map(Some)
        }
        Intent::Event {
            reason,
            message,
            kind,
            at,
        } => {
            let ns = raw
                .pointer("/metadata/namespace")
                .and_then(Value::as_str)
                .unwrap_or("default");
            let what = (*reason, message.as_str(), *kind);
            requests::event_once(event_source, ns, raw, what, at).map(Some)
        }
        // Binding-mode intents are rendered from the bindings, not here.
        Intent::BindingStatus { .. } | Intent::Binding(_) => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const NOW: &str = "2026-01-01T00:00:00Z";

    fn object(conditions: Value, finalizers: Value) -> Value {
        json!({
            "apiVersion": "networking.liqo.io/v1beta1", "kind": "RouteConfiguration",
            "metadata": {"name": "a", "namespace": "n", "uid": "u", "resourceVersion": "5",
                         "finalizers": finalizers},
            "status": {"conditions": conditions}
        })
    }

    fn body(r: &ApiRequest) -> Value {
        serde_json::from_slice(&r.body.as_ref().expect("body").1).expect("json")
    }

    fn go(intent: Intent, raw: &Value) -> Option<ApiRequest> {
        render(&intent, "n/a", raw, "h1", ("routecfg", "h1"), NOW).expect("renders")
    }

    #[test]
    fn status_is_written_only_when_it_changes() {
        let raw = object(json!([]), json!([]));
        let r = go(Intent::Status { applied: true }, &raw).expect("a write");
        assert_eq!(r.method, "PUT");
        assert!(
            r.path
                .ends_with("/namespaces/n/routeconfigurations/a/status")
        );
        let sent = body(&r);
        assert_eq!(sent["metadata"]["resourceVersion"], "5");
        assert_eq!(sent["status"]["conditions"][0]["host"], "h1");
        assert_eq!(sent["status"]["conditions"][0]["status"], "True");
        // The object as the server returned it: nothing more to write.
        assert_eq!(go(Intent::Status { applied: true }, &sent), None);
        assert!(go(Intent::Status { applied: false }, &sent).is_some());
    }

    #[test]
    fn finalizer_added_and_removed_only_when_needed() {
        let without = object(json!([]), json!(["other/keep"]));
        let r = go(Intent::Finalizer { present: true }, &without).expect("add");
        assert_eq!(r.method, "PATCH");
        assert_eq!(
            body(&r)["metadata"],
            json!({"resourceVersion": "5", "finalizers": ["other/keep", FINALIZER]})
        );
        assert_eq!(go(Intent::Finalizer { present: false }, &without), None);
        let mut with = object(json!([]), json!([FINALIZER, "other/keep"]));
        assert_eq!(go(Intent::Finalizer { present: true }, &with), None);
        let r = go(Intent::Finalizer { present: false }, &with).expect("remove");
        assert_eq!(body(&r)["metadata"]["finalizers"], json!(["other/keep"]));
        // Never added to an object being deleted.
        with["metadata"]["deletionTimestamp"] = json!(NOW);
        let mut deleting = with.clone();
        deleting["metadata"]["finalizers"] = json!([]);
        assert_eq!(go(Intent::Finalizer { present: true }, &deleting), None);
    }

    #[test]
    fn events_carry_their_time_and_a_stable_name() {
        let raw = object(json!([]), json!([]));
        let intent = Intent::Event {
            reason: "ApplyFailed",
            message: "h1: link down".to_string(),
            kind: EventType::Warning,
            at: NOW.to_string(),
        };
        let one = go(intent.clone(), &raw).expect("event");
        let two = go(intent, &raw).expect("event");
        assert_eq!(one, two);
        assert_eq!(one.path, "/api/v1/namespaces/n/events");
        assert_eq!(body(&one)["lastTimestamp"], NOW);
    }
}

/// The agent's API side driven by scripted call results, with no server:
/// the client points at a closed loopback port and is never advanced; the
/// results are handed in as the client would hand them out.
#[cfg(test)]
mod agent_tests {
    use super::*;
    use crate::engine::Engine;
    use crate::kube::{ApiResponse, Client, ConnectOptions, config::from_kubeconfig_str};
    use crate::model::selector::SelectorSet;
    use serde_json::json;

    fn agent() -> Agent {
        let text = "clusters: [{name: c, cluster: {server: 'https://127.0.0.1:1', insecure-skip-tls-verify: true}}]
users: [{name: u, user: {token: t}}]
contexts: [{name: x, context: {cluster: c, user: u}}]
current-context: x
";
        let config = from_kubeconfig_str(text, std::path::Path::new("/"), None).expect("config");
        let client = Client::new(&config).expect("client");
        // Opening a NETLINK_ROUTE socket needs no privilege; nothing is
        // applied by these tests.
        let engine = Engine::new(114).expect("netlink socket");
        let opts = super::super::runner::Options {
            connect: ConnectOptions::default(),
            selectors: SelectorSet::fabric(),
            host: "h1".to_string(),
            finalizer: false,
            metrics_addr: None,
            status_addr: None,
            resync: Duration::from_secs(300),
            protocol: 114,
            allow_match_all: false,
            rt_tables: None,
            watch_timeout: 300,
            checkpoint_dir: std::env::temp_dir().join("routecfg-api-tests-no-checkpoint"),
            bindings: crate::binding::BindingsFlag::Off,
            identity: Err("tests".to_string()),
            leader: None,
        };
        Agent::new(opts, client, engine)
    }

    fn rc(name: &str, rv: &str) -> Value {
        json!({
            "apiVersion": "networking.liqo.io/v1beta1", "kind": "RouteConfiguration",
            "metadata": {"name": name, "namespace": "liqo", "uid": format!("u-{name}"),
                         "resourceVersion": rv,
                         "labels": {"networking.liqo.io/route-category": "fabric"}},
            "spec": {"table": {"name": name, "rules": [
                {"dst": "10.70.0.0/16", "routes": [{"dst": "10.70.0.0/16", "gw": "10.90.0.2"}]}]}}
        })
    }

    fn ok(body: &Value) -> Result<ApiResponse, KubeError> {
        Ok(ApiResponse {
            status: 200,
            body: serde_json::to_vec(body).expect("json"),
        })
    }

    fn conflict() -> Result<ApiResponse, KubeError> {
        Err(KubeError::Conflict {
            path: "/x".to_string(),
            message: "modified".to_string(),
        })
    }

    /// The call in flight for `purpose`, handed back with `result`.
    fn complete(a: &mut Agent, purpose: &Purpose, result: Result<ApiResponse, KubeError>) {
        let id = a
            .calls
            .iter()
            .find(|(_, p)| *p == purpose)
            .map(|(id, _)| *id)
            .unwrap_or_else(|| panic!("no call for {purpose:?} in {:?}", a.calls));
        let request = ApiRequest::get("/scripted");
        a.on_completed(vec![Completed {
            id,
            request,
            result,
        }]);
    }

    #[test]
    fn list_pages_then_watch_and_a_failed_list_keeps_the_last_state() {
        let mut a = agent();
        let now = Instant::now();
        a.sync_step(now);
        assert!(matches!(a.sync.phase, Phase::Listing { .. }));
        let page1 = json!({"metadata": {"resourceVersion": "7", "continue": "c1"},
                           "items": [rc("a", "5")]});
        complete(&mut a, &Purpose::ListPage, ok(&page1));
        assert!(
            matches!(a.sync.phase, Phase::Listing { .. }),
            "second page asked"
        );
        let page2 = json!({"metadata": {"resourceVersion": "7"}, "items": [rc("b", "6")]});
        complete(&mut a, &Purpose::ListPage, ok(&page2));
        assert!(matches!(a.sync.phase, Phase::WatchAt(_)));
        assert_eq!(a.sync.resource_version, "7");
        assert_eq!(a.state.keys().count(), 2);

        // A later list that fails: nothing known is dropped, and the next
        // attempt waits for the backoff.
        a.sync.phase = Phase::ListAt(now);
        a.sync_step(now);
        complete(
            &mut a,
            &Purpose::ListPage,
            Err(KubeError::Transport {
                path: "/l".to_string(),
                message: "reset".to_string(),
            }),
        );
        assert_eq!(a.state.keys().count(), 2, "fail static");
        match a.sync.phase {
            Phase::ListAt(t) => assert!(t > Instant::now(), "backoff"),
            _ => panic!("expected a later list"),
        }
    }

    #[test]
    fn status_conflict_rereads_then_writes_once() {
        let mut a = agent();
        a.listed((vec![rc("a", "5")], "5".to_string()));
        let key = WriteKey {
            kind: WriteKind::Status,
            object: "liqo/a".to_string(),
        };
        a.queue(
            WriteKind::Status,
            "liqo/a".to_string(),
            Intent::Status { applied: true },
        );
        a.dispatch_writes(Instant::now());
        let write = Purpose::Write(key.clone());
        assert!(a.calls.values().any(|p| *p == write));
        assert_eq!(a.metrics.write_queue, 1);
        // Someone else wrote first: the agent re-reads the object.
        complete(&mut a, &write, conflict());
        let reread = Purpose::Reread(key.clone());
        assert!(a.calls.values().any(|p| *p == reread), "{:?}", a.calls);
        let mut fresh = rc("a", "9");
        fresh["status"] =
            json!({"conditions": [{"host": "h2", "type": "Applied", "status": "True"}]});
        complete(&mut a, &reread, ok(&fresh));
        // And writes again, on top of the fresh version.
        a.dispatch_writes(Instant::now());
        assert!(a.calls.values().any(|p| *p == write));
        let mut written = fresh.clone();
        written["metadata"]["resourceVersion"] = json!("10");
        written["status"]["conditions"] = json!([
            {"host": "h2", "type": "Applied", "status": "True"},
            {"host": "h1", "type": "Applied", "status": "True", "lastTransitionTime": "t"}
        ]);
        complete(&mut a, &write, ok(&written));
        assert!(a.writes.is_empty());
        // Nothing changed since: the same intent renders to no call.
        a.queue(
            WriteKind::Status,
            "liqo/a".to_string(),
            Intent::Status { applied: true },
        );
        a.dispatch_writes(Instant::now());
        assert!(a.calls.is_empty(), "written twice: {:?}", a.calls);
        assert!(a.writes.is_empty());
    }

    #[test]
    fn failed_writes_wait_for_their_backoff_and_events_are_sent_once() {
        let mut a = agent();
        a.listed((vec![rc("a", "5")], "5".to_string()));
        let key = WriteKey {
            kind: WriteKind::Event,
            object: "liqo/a".to_string(),
        };
        a.queue(
            WriteKind::Event,
            "liqo/a".to_string(),
            Intent::Event {
                reason: "ApplyFailed",
                message: "h1: no link".to_string(),
                kind: EventType::Warning,
                at: "2026-01-01T00:00:00Z".to_string(),
            },
        );
        a.dispatch_writes(Instant::now());
        let write = Purpose::Write(key);
        complete(
            &mut a,
            &write,
            Err(KubeError::Timeout {
                path: "/e".to_string(),
                message: "waiting for the response".to_string(),
            }),
        );
        a.dispatch_writes(Instant::now());
        assert!(a.calls.is_empty(), "retried before its backoff");
        assert_eq!(a.writes.depth(), 1, "not lost");
        let retry = a.writes.next_retry().expect("retry time");
        a.dispatch_writes(retry);
        assert!(a.calls.values().any(|p| *p == write));
        // The first send got through after all: 409 AlreadyExists.
        complete(&mut a, &write, conflict());
        assert!(a.writes.is_empty());
        assert!(a.calls.is_empty(), "no second Event");
    }
}
