//! Reconcile: kernel events mark tables dirty, dirty tables are planned and
//! applied, and the outcome of each object becomes writes for the queue
//! (status condition, Event, finalizer). Nothing here talks to the API
//! server: writes are queued and sent by `api.rs` when their turn comes.

use super::api::{Intent, WriteKey, WriteKind};
use super::runner::{Agent, FINALIZER, Outcome};
use crate::checkpoint::pause::paused_tables;
use crate::engine::{Report, Scope};
use crate::kernel::Event;
use crate::kube::EventType;
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

/// Quiet time after an event before reconciling, so a burst (a kubectl
/// apply of many objects, a flurry of route deletions) becomes one apply.
pub(super) const DEBOUNCE: Duration = Duration::from_millis(3);

impl Agent {
    /// Replaces what we knew with a complete list: objects deleted while we
    /// were not watching disappear here.
    pub(super) fn listed(&mut self, (items, rv): (Vec<Value>, String)) {
        log::info!("listed {} object(s) at resourceVersion {rv}", items.len());
        self.state.replace_all(items);
        self.absorb_changes();
        self.full = true;
        self.due = Some(Instant::now());
    }

    /// Rebuilds desired tables and marks what changed.
    pub(super) fn absorb_changes(&mut self) {
        let changes = self.state.rebuild();
        if changes.is_empty() {
            return;
        }
        self.dirty.extend(changes.dirty);
        self.removed.extend(changes.removed);
        self.kernel_triggered = false;
        self.schedule();
    }

    pub(super) fn schedule(&mut self) {
        if self.due.is_none() {
            self.due = Some(Instant::now() + DEBOUNCE);
        }
    }

    pub(super) fn managed(&self, table: u32) -> bool {
        self.state.desired().tables.iter().any(|t| t.id == table)
    }

    pub(super) fn kernel_events(&mut self, events: Vec<Event>) {
        for ev in events {
            match ev {
                Event::Overrun => {
                    log::warn!("netlink events lost (ENOBUFS); full resync");
                    self.full = true;
                    self.schedule();
                }
                Event::LinkAdded(_) | Event::LinkRemoved(_) => {
                    // A new link can unblock pending routes; a removed one
                    // takes routes with it without route events (IPv4).
                    let ids: Vec<u32> = if matches!(ev, Event::LinkAdded(_)) {
                        self.pending.iter().copied().collect()
                    } else {
                        self.state.desired().tables.iter().map(|t| t.id).collect()
                    };
                    if !ids.is_empty() {
                        self.dirty.extend(ids);
                        self.schedule();
                    }
                }
                Event::RouteAdded { table } | Event::RuleAdded { table } => {
                    // Someone else's (our own events are filtered out): a
                    // managed table only holds what we say, and a new route
                    // elsewhere may make a pending gateway reachable.
                    if self.managed(table) {
                        self.dirty.insert(table);
                        self.kernel_triggered = true;
                        self.schedule();
                    }
                    if !self.pending.is_empty() {
                        self.dirty.extend(self.pending.iter().copied());
                        self.schedule();
                    }
                }
                Event::RouteRemoved { table, .. } | Event::RuleRemoved { table, .. } => {
                    if self.managed(table) {
                        self.dirty.insert(table);
                        self.kernel_triggered = true;
                        self.schedule();
                    }
                }
            }
        }
    }

    /// Plans and applies the dirty (or all) tables, then reports.
    pub(super) fn reconcile(&mut self) {
        if !self.leading() {
            // Standby: the kernel stays as it is; what changed meanwhile is
            // applied in full once we lead.
            self.due = None;
            self.full = true;
            self.ready = true;
            return;
        }
        self.due = None;
        let full = std::mem::take(&mut self.full);
        let dirty = std::mem::take(&mut self.dirty);
        let removed = std::mem::take(&mut self.removed);
        let kernel_triggered = std::mem::take(&mut self.kernel_triggered);
        let desired = self.state.desired();
        // Tables on trial are frozen until the checkpoint ends; looked at
        // again twice a second, so they are reconciled once it has.
        let now_ms = crate::checkpoint::store::now_unix_ms();
        let paused = paused_tables(self.pause.pending(), self.opts.protocol, now_ms);
        if !paused.is_empty() {
            self.dirty.extend(paused.iter().copied());
            self.due = Some(Instant::now() + Duration::from_millis(500));
        }
        let scope = Scope {
            tables: if full { None } else { Some(dirty.clone()) },
            removed,
            discover_owned: full,
            frozen: desired.frozen.iter().chain(&paused).copied().collect(),
        };
        let started = Instant::now();
        let report = match self.engine.apply(&desired.tables, &scope) {
            Ok(r) => r,
            Err(e) => {
                log::error!("reading kernel state: {e}; retrying");
                self.metrics.error("kernel");
                self.full |= full;
                self.dirty.extend(dirty);
                self.removed.extend(scope.removed);
                self.due = Some(Instant::now() + Duration::from_secs(1));
                return;
            }
        };
        self.metrics.apply_latency.observe(started.elapsed());
        self.metrics.reconciles += 1;
        self.metrics.kernel_changes += report.changes as u64;
        if kernel_triggered && report.changes > 0 {
            self.metrics.drift_repairs += 1;
            log::info!(
                "repaired {} kernel change(s) made by others",
                report.changes
            );
        }
        self.record(&report, &scope);
        // Routes we just added may make a pending gateway reachable; our own
        // changes raise no events, so look again at pending tables.
        if report.changes > 0 {
            let waiting: Vec<u32> = self
                .pending
                .iter()
                .copied()
                .filter(|t| !dirty.contains(t))
                .collect();
            if !waiting.is_empty() {
                self.dirty.extend(waiting);
                self.schedule();
            }
        }
        self.sync_rt_tables(&report);
        self.ready = true;
        self.queue_statuses();
        if self.binding_mode() {
            // The legacy finalizer is migration's business (decide).
            self.queue_binding_work();
        } else if self.opts.finalizer || !scope.removed.is_empty() {
            self.queue_finalizers(&report);
        }
    }

    pub(super) fn record(&mut self, report: &Report, scope: &Scope) {
        let removed = &scope.removed;
        for t in &report.tables {
            if t.name.is_empty() {
                if t.errors.is_empty() {
                    log::info!("table {}: removed ({} change(s))", t.id, t.changes);
                } else {
                    self.metrics.error("kernel");
                    log::warn!("table {}: removal failed: {}", t.id, t.errors.join("; "));
                }
                self.tables.remove(&t.id);
                continue;
            }
            if t.changes > 0 {
                log::info!(
                    "{}: table {} ({}): {} change(s)",
                    t.owner,
                    t.name,
                    t.id,
                    t.changes
                );
            }
            if !t.errors.is_empty() {
                self.metrics.error("kernel");
            }
            // Retried on link and route events, whatever kept it from being
            // applied: the cause may be gone by then.
            if t.applied() {
                self.pending.remove(&t.id);
            } else {
                self.pending.insert(t.id);
            }
            self.tables.insert(t.id, t.clone());
        }
        for id in removed {
            self.tables.remove(id);
            self.pending.remove(id);
        }
        let desired = self.state.desired();
        self.tables
            .retain(|id, _| desired.tables.iter().any(|t| t.id == *id));
        self.metrics.tables = desired.tables.len() as u64;
        self.metrics.table_id_collisions = desired.collisions.len() as u64;
        self.metrics.rules = desired.tables.iter().map(|t| t.rules.len() as u64).sum();
        self.metrics.routes = desired.tables.iter().map(|t| t.routes.len() as u64).sum();
        self.metrics.pending_routes = self.tables.values().map(|t| t.pending.len() as u64).sum();
    }

    pub(super) fn sync_rt_tables(&mut self, report: &Report) {
        let Some(rt) = &self.opts.rt_tables else {
            return;
        };
        match rt.sync_tables(&self.state.desired().tables, &report.removed()) {
            Ok(r) => {
                for w in r.warnings {
                    log::warn!("rt_tables {}: {w}", rt.path().display());
                }
            }
            Err(e) => log::warn!("rt_tables {}: {e}", rt.path().display()),
        }
    }

    /// What each selected object's condition should say now; `None` for
    /// objects whose table has not been applied yet.
    pub(super) fn outcomes(&self) -> BTreeMap<String, Outcome> {
        let errors = self.state.object_errors();
        let mut out = BTreeMap::new();
        for key in self.state.keys() {
            if let Some(e) = errors.get(key) {
                out.insert(key.clone(), Some(e.clone()));
            } else if let Some(t) = self.state.table_of(key) {
                if let Some(r) = self.tables.get(&t.id) {
                    out.insert(key.clone(), r.reason());
                }
            }
        }
        out
    }

    /// Queues this host's condition for every object whose table was
    /// applied (or refused), and an Event for every changed outcome.
    pub(super) fn queue_statuses(&mut self) {
        // A standby writes nothing; with `--bindings auto` nothing is
        // reported before discovery said where (conditions or bindings).
        if !self.leading() || (self.bindings.flag.needs_discovery() && !self.bindings.answered) {
            return;
        }
        let binding_mode = self.binding_mode();
        for (key, outcome) in self.outcomes() {
            // Failures are always announced; success only as a transition,
            // so a restart does not flood the namespace with Events.
            let previous = self.reported.get(&key);
            if previous != Some(&outcome) && (outcome.is_some() || previous.is_some()) {
                self.announce(&key, &outcome);
            }
            let applied = outcome.is_none();
            if binding_mode {
                // In binding mode RouteConfiguration.status is never written.
                let table = self
                    .state
                    .table_of(&key)
                    .map(|t| t.name.clone())
                    .or_else(|| {
                        self.state
                            .raw(&key)
                            .and_then(|r| r.pointer("/spec/table/name"))
                            .and_then(Value::as_str)
                            .map(String::from)
                    });
                let message = match &outcome {
                    Some(why) => why.clone(),
                    None => self.applied_message(&key),
                };
                self.reported.insert(key.clone(), outcome);
                self.queue(
                    WriteKind::BindingStatus,
                    key,
                    Intent::BindingStatus {
                        ok: applied,
                        message,
                        table,
                    },
                );
                continue;
            }
            self.reported.insert(key.clone(), outcome);
            self.queue(WriteKind::Status, key, Intent::Status { applied });
        }
        self.metrics.write_queue = self.writes.depth() as u64;
    }

    pub(super) fn queue(&mut self, kind: WriteKind, object: String, intent: Intent) {
        if self.writes.put(WriteKey { kind, object }, intent).is_err() {
            self.metrics.error("status");
            log::warn!(
                "write queue full ({} objects); dropping a write",
                self.writes.depth()
            );
        }
    }

    /// Logs a changed outcome and queues it as a Kubernetes Event.
    fn announce(&mut self, key: &str, outcome: &Outcome) {
        let (reason, message, kind) = match outcome {
            None => (
                "Applied",
                format!("applied on {}", self.opts.host),
                EventType::Normal,
            ),
            Some(why) => {
                if self.state.object_errors().contains_key(key) {
                    self.metrics.error("invalid_object");
                }
                (
                    "ApplyFailed",
                    format!("{}: {why}", self.opts.host),
                    EventType::Warning,
                )
            }
        };
        match outcome {
            None => log::info!("{key}: applied"),
            Some(why) => log::warn!("{key}: not applied: {why}"),
        }
        self.queue(
            WriteKind::Event,
            key.to_string(),
            Intent::Event {
                reason,
                message,
                kind,
                at: crate::time::now_rfc3339(),
            },
        );
    }

    /// Queues our finalizer on live objects (with `--finalizer`) and its
    /// removal from objects being deleted once their table is gone.
    pub(super) fn queue_finalizers(&mut self, report: &Report) {
        let failed: BTreeSet<u32> = report
            .tables
            .iter()
            .filter(|t| t.name.is_empty() && !t.errors.is_empty())
            .map(|t| t.id)
            .collect();
        let keys: Vec<String> = self.state.keys().cloned().collect();
        for key in keys {
            let Some(raw) = self.state.raw(&key) else {
                continue;
            };
            let has = has_finalizer(raw);
            let deleting = raw.pointer("/metadata/deletionTimestamp").is_some();
            let table = raw
                .pointer("/spec/table/name")
                .and_then(Value::as_str)
                .map(crate::table_id::table_id);
            let present = if deleting && has && !table.is_some_and(|t| failed.contains(&t)) {
                false
            } else if !deleting && !has && self.opts.finalizer {
                true
            } else {
                continue;
            };
            self.queue(WriteKind::Finalizer, key, Intent::Finalizer { present });
        }
        self.metrics.write_queue = self.writes.depth() as u64;
    }

    /// The message of `Applied=True` on a binding: what is in the kernel
    /// for it (never empty: kube-apiserver 1.20 refuses an empty message).
    pub(super) fn applied_message(&self, key: &str) -> String {
        match self.state.table_of(key) {
            Some(t) => format!(
                "table {} ({}): {} rule(s), {} route(s) applied",
                t.name,
                t.id,
                t.rules.len(),
                t.routes.len()
            ),
            None => "applied".to_string(),
        }
    }

    /// `/status`: per table, desired vs kernel counts, pending, last error.
    pub(super) fn status_json(&mut self) -> String {
        let desired = self.state.desired().tables.clone();
        let snapshot = self.engine.snapshot(&desired, &Scope::default());
        let mut tables = Vec::new();
        for t in &desired {
            let (kernel_rules, kernel_routes) = match &snapshot {
                Ok(s) => (
                    s.rules.iter().filter(|r| r.table == t.id).count(),
                    s.routes.iter().filter(|r| r.table == t.id).count(),
                ),
                Err(_) => (0, 0),
            };
            let r = self.tables.get(&t.id);
            tables.push(json!({
                "table": t.name, "id": t.id, "object": t.owner,
                "desired": {"rules": t.rules.len(), "routes": t.routes.len()},
                "kernel": {"rules": kernel_rules, "routes": kernel_routes},
                "pending": r.map(|r| r.pending.clone()).unwrap_or_default(),
                "errors": r.map(|r| r.errors.clone()).unwrap_or_default(),
            }));
        }
        let invalid: Vec<String> = self.state.object_errors().into_values().collect();
        let now_ms = crate::checkpoint::store::now_unix_ms();
        let protocol = self.opts.protocol;
        let paused = self
            .pause
            .pending()
            .filter(|h| !paused_tables(Some(h), protocol, now_ms).is_empty());
        json!({
            "host": self.opts.host,
            "mode": self.bindings.mode.as_str(),
            "target": self.bindings.target().map(|t| t.describe()),
            "leader": self.elector.as_ref().map(|e| json!({
                "lease": format!("{}/{}", e.config().namespace, e.config().name),
                "identity": e.config().identity,
                "follow": e.config().follow,
                "holder": e.holder(),
                "leading": e.is_leader(),
            })),
            "protocol": self.opts.protocol,
            "paused": paused.map(|h| json!({"checkpoint": h.id, "tables": h.tables})),
            "ready": self.ready,
            "tables": tables,
            "invalid": invalid,
            "collisions": super::status::collisions_json(&self.state.desired().collisions),
            "kernel_error": snapshot.err().map(|e| e.to_string()),
        })
        .to_string()
    }
}

impl Agent {
    /// `/origins`: where each table, rule and route came from, what
    /// `routecfg explain` maps the kernel's answer back with. Its own page
    /// because it grows with every route; `/status` stays small.
    pub(super) fn origins_json(&self) -> String {
        let desired = &self.state.desired().tables;
        let origins = crate::explain::origin::build(self.state.objects(), desired);
        json!({"protocol": self.opts.protocol, "origins": origins}).to_string()
    }
}

/// True when the object carries our finalizer.
pub(super) fn has_finalizer(raw: &Value) -> bool {
    raw.pointer("/metadata/finalizers")
        .and_then(Value::as_array)
        .is_some_and(|a| a.iter().any(|f| f.as_str() == Some(FINALIZER)))
}

/// `namespace/name` split in two.
pub(super) fn split_key(key: &str) -> (&str, &str) {
    key.split_once('/').unwrap_or(("", key))
}
