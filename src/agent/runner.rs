//! `routecfg run` and `routecfg once`: the event loop that owns all agent
//! state, and the one-shot reconcile.

use super::http::{HttpServer, Response};
use super::metrics::Metrics;
use super::poll;
use super::signals::Signals;
use super::state::{State, key_of};
use super::status::updated_status;
use crate::checkpoint::pause::{Pause, paused_tables};
use crate::engine::{Engine, Report, Scope, TableReport};
use crate::kernel::{Event, Monitor};
use crate::kube::{
    Backoff, Client, ConnectOptions, EventType, KubeConfig, KubeError, Watch, WatchEventKind,
    WatchPoll,
};
use crate::model::selector::SelectorSet;
use crate::rt_tables::RtTables;
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

/// Upstream's finalizer name, shared by every host (see README).
pub const FINALIZER: &str = "routeconfiguration-controller.liqo.io/finalizer";

/// Quiet time after an event before reconciling, so a burst (a kubectl
/// apply of many objects, a flurry of route deletions) becomes one apply.
const DEBOUNCE: Duration = Duration::from_millis(3);

/// How an agent runs; filled from the command line.
pub struct Options {
    pub connect: ConnectOptions,
    pub selectors: SelectorSet,
    /// Name written as `host` in status conditions.
    pub host: String,
    pub finalizer: bool,
    pub metrics_addr: Option<String>,
    pub resync: Duration,
    pub protocol: u8,
    pub rt_tables: Option<RtTables>,
    /// Server-side watch timeout (the stream is renewed after it).
    pub watch_timeout: u32,
    /// Where `apply --confirm` keeps its pending checkpoint.
    pub checkpoint_dir: std::path::PathBuf,
}

/// What the last apply said about each object.
type Outcome = Option<String>;

struct Agent {
    opts: Options,
    /// Label selector sent to the API server (terms all sets share).
    server_selector: String,
    client: Client,
    engine: Engine,
    state: State,
    metrics: Metrics,
    /// Last outcome reported (logged, Event sent) per object.
    reported: BTreeMap<String, Outcome>,
    /// Last apply result per table, for status and `/status`.
    tables: BTreeMap<u32, TableReport>,
    /// Tables not fully applied (pending or refused routes), tried again
    /// when links or other writers' routes change.
    pending: BTreeSet<u32>,
    dirty: BTreeSet<u32>,
    removed: BTreeSet<u32>,
    full: bool,
    /// Set when the last dirty marks came from kernel events.
    kernel_triggered: bool,
    due: Option<Instant>,
    ready: bool,
    resource_version: String,
    watch: Option<Watch>,
    need_list: bool,
    /// When the next list/watch attempt may start.
    retry_at: Option<Instant>,
    backoff: Backoff,
    next_resync: Instant,
    /// A pending `apply --confirm` with our mark: its tables are left alone.
    pause: Pause,
}

/// Builds the API client and the engine; errors are printed by the caller.
fn connect(opts: &Options) -> Result<(Client, Engine), String> {
    let config = KubeConfig::load(&opts.connect).map_err(|e| format!("kubeconfig: {e}"))?;
    let mut client = Client::new(&config).map_err(|e| format!("API client: {e}"))?;
    client.set_event_source("routecfg", &opts.host);
    let engine = Engine::new(opts.protocol).map_err(|e| format!("netlink: {e}"))?;
    Ok((client, engine))
}

impl Agent {
    fn new(opts: Options, client: Client, engine: Engine) -> Agent {
        let server_selector = opts.selectors.common_terms().to_string();
        let state = State::new(opts.selectors.clone(), opts.protocol);
        let resync = opts.resync;
        let pause = Pause::new(opts.checkpoint_dir.clone());
        Agent {
            opts,
            server_selector,
            client,
            engine,
            state,
            metrics: Metrics::default(),
            reported: BTreeMap::new(),
            tables: BTreeMap::new(),
            pending: BTreeSet::new(),
            dirty: BTreeSet::new(),
            removed: BTreeSet::new(),
            full: true,
            kernel_triggered: false,
            due: None,
            ready: false,
            resource_version: String::new(),
            watch: None,
            need_list: true,
            retry_at: None,
            backoff: Backoff::new(Duration::from_millis(500), Duration::from_secs(30)),
            next_resync: Instant::now() + resync,
            pause,
        }
    }

    /// Lists every selected object and replaces what we knew: objects
    /// deleted while we were not watching disappear here.
    fn relist(&mut self) -> Result<(), KubeError> {
        let (items, rv) = self.client.list(&self.server_selector)?;
        log::info!("listed {} object(s) at resourceVersion {rv}", items.len());
        self.state.replace_all(items);
        self.resource_version = rv;
        self.absorb_changes();
        self.full = true;
        self.due = Some(Instant::now());
        Ok(())
    }

    /// Rebuilds desired tables and marks what changed.
    fn absorb_changes(&mut self) {
        let changes = self.state.rebuild();
        if changes.is_empty() {
            return;
        }
        self.dirty.extend(changes.dirty);
        self.removed.extend(changes.removed);
        self.kernel_triggered = false;
        self.schedule();
    }

    fn schedule(&mut self) {
        if self.due.is_none() {
            self.due = Some(Instant::now() + DEBOUNCE);
        }
    }

    fn start_watch(&mut self) {
        match self.client.watch(
            &self.resource_version,
            &self.server_selector,
            self.opts.watch_timeout,
        ) {
            Ok(w) => self.watch = Some(w),
            Err(e) => self.api_failed("watch", &e),
        }
    }

    fn api_failed(&mut self, what: &str, e: &KubeError) {
        self.metrics.error("api");
        self.watch = None;
        if e.is_gone() {
            log::info!("{what}: resourceVersion too old, listing again");
            self.need_list = true;
            self.retry_at = None;
            return;
        }
        let wait = self.backoff.failed();
        log::warn!("{what}: {e}; retrying in {} ms", wait.as_millis());
        self.retry_at = Some(Instant::now() + wait);
    }

    /// Drains the watch without blocking.
    fn drain_watch(&mut self) {
        let mut changed = false;
        while let Some(w) = self.watch.as_mut() {
            match w.try_next() {
                Ok(WatchPoll::Event(ev)) => {
                    self.backoff.succeeded();
                    if let Some(rv) = ev.resource_version() {
                        if ev.kind != WatchEventKind::Error {
                            self.resource_version = rv.to_string();
                        }
                    }
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
                        WatchEventKind::Bookmark => {}
                        WatchEventKind::Error => {
                            let gone = ev.is_gone();
                            let msg = ev.error_message().unwrap_or("").to_string();
                            self.watch = None;
                            self.metrics.watch_restarts += 1;
                            if gone {
                                log::info!("watch: {msg}; listing again");
                                self.need_list = true;
                            } else {
                                let wait = self.backoff.failed();
                                log::warn!(
                                    "watch error: {msg}; retrying in {} ms",
                                    wait.as_millis()
                                );
                                self.retry_at = Some(Instant::now() + wait);
                            }
                        }
                    }
                }
                Ok(WatchPoll::Pending) => break,
                Ok(WatchPoll::Ended) => {
                    log::debug!("watch ended; renewing from {}", self.resource_version);
                    self.metrics.watch_restarts += 1;
                    self.watch = None;
                }
                Err(e) => {
                    self.metrics.watch_restarts += 1;
                    self.api_failed("watch", &e);
                }
            }
        }
        if changed {
            self.absorb_changes();
        }
    }

    fn managed(&self, table: u32) -> bool {
        self.state.desired().tables.iter().any(|t| t.id == table)
    }

    fn kernel_events(&mut self, events: Vec<Event>) {
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
    fn reconcile(&mut self) {
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
        self.write_statuses();
        if self.opts.finalizer || !scope.removed.is_empty() {
            self.finalizers(&report);
        }
    }

    fn record(&mut self, report: &Report, scope: &Scope) {
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
        self.metrics.rules = desired.tables.iter().map(|t| t.rules.len() as u64).sum();
        self.metrics.routes = desired.tables.iter().map(|t| t.routes.len() as u64).sum();
        self.metrics.pending_routes = self.tables.values().map(|t| t.pending.len() as u64).sum();
    }

    fn sync_rt_tables(&mut self, report: &Report) {
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
    fn outcomes(&self) -> BTreeMap<String, Outcome> {
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

    fn write_statuses(&mut self) {
        for (key, outcome) in self.outcomes() {
            // Failures are always announced; success only as a transition,
            // so a restart does not flood the namespace with Events.
            let previous = self.reported.get(&key);
            if previous != Some(&outcome) && (outcome.is_some() || previous.is_some()) {
                self.announce(&key, &outcome);
            }
            match self.write_status(&key, outcome.is_none()) {
                Ok(()) => {
                    self.reported.insert(key, outcome);
                }
                Err(e) => {
                    self.metrics.error("status");
                    log::warn!("{key}: writing status: {e}");
                }
            }
        }
    }

    /// Logs a changed outcome and records it as a Kubernetes Event.
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
        let Some(raw) = self.state.raw(key) else {
            return;
        };
        let ns = raw
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .unwrap_or("default");
        if let Err(e) = self.client.create_event(ns, raw, reason, &message, kind) {
            log::warn!("{key}: recording event: {e}");
        }
    }

    /// Writes this host's condition with a resourceVersion precondition;
    /// on conflict re-reads the object and tries again.
    fn write_status(&mut self, key: &str, applied: bool) -> Result<(), KubeError> {
        for _ in 0..5 {
            let Some(raw) = self.state.raw(key) else {
                return Ok(());
            };
            let now = crate::time::now_rfc3339();
            let Some(status) = updated_status(raw, &self.opts.host, applied, &now) else {
                return Ok(());
            };
            let mut object = raw.clone();
            object["status"] = status;
            let (ns, name) = split_key(key);
            match self.client.replace_status(ns, name, &object) {
                Ok(written) => {
                    self.state.refresh_raw(written);
                    return Ok(());
                }
                Err(e) if e.is_conflict() => match self.client.get(ns, name)? {
                    Some(fresh) => self.state.refresh_raw(fresh),
                    None => return Ok(()),
                },
                Err(e) if e.is_not_found() => return Ok(()),
                Err(e) => return Err(e),
            }
        }
        Err(KubeError::Request(format!(
            "{key}: status kept conflicting with other writers"
        )))
    }

    /// Adds our finalizer to live objects (with `--finalizer`) and removes
    /// it from objects being deleted once their table is gone.
    fn finalizers(&mut self, report: &Report) {
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
            let finalizers: Vec<String> = raw
                .pointer("/metadata/finalizers")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(|v| v.as_str().map(String::from))
                        .collect()
                })
                .unwrap_or_default();
            let has = finalizers.iter().any(|f| f == FINALIZER);
            let deleting = raw.pointer("/metadata/deletionTimestamp").is_some();
            let table = raw
                .pointer("/spec/table/name")
                .and_then(Value::as_str)
                .map(crate::table_id::table_id);
            let wanted: Vec<String> =
                if deleting && has && !table.is_some_and(|t| failed.contains(&t)) {
                    finalizers.into_iter().filter(|f| f != FINALIZER).collect()
                } else if !deleting && !has && self.opts.finalizer {
                    finalizers
                        .into_iter()
                        .chain([FINALIZER.to_string()])
                        .collect()
                } else {
                    continue;
                };
            let rv = raw
                .pointer("/metadata/resourceVersion")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string();
            let (ns, name) = split_key(&key);
            match self
                .client
                .patch_metadata_finalizers(ns, name, &rv, &wanted)
            {
                Ok(obj) => {
                    log::info!(
                        "{key}: finalizer {}",
                        if deleting { "removed" } else { "added" }
                    );
                    self.state.refresh_raw(obj);
                }
                // A newer version is on its way through the watch; the next
                // reconcile tries again.
                Err(e) if e.is_conflict() || e.is_not_found() => {}
                Err(e) => log::warn!("{key}: finalizer: {e}"),
            }
        }
    }

    /// `/status`: per table, desired vs kernel counts, pending, last error.
    fn status_json(&mut self) -> String {
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
        // Where each table, rule and route came from: what `explain` reads.
        let origins = crate::explain::origin::build(self.state.objects(), &desired);
        let now_ms = crate::checkpoint::store::now_unix_ms();
        let protocol = self.opts.protocol;
        let paused = self
            .pause
            .pending()
            .filter(|h| !paused_tables(Some(h), protocol, now_ms).is_empty());
        json!({
            "host": self.opts.host,
            "protocol": self.opts.protocol,
            "origins": origins,
            "paused": paused.map(|h| json!({"checkpoint": h.id, "tables": h.tables})),
            "ready": self.ready,
            "tables": tables,
            "invalid": invalid,
            "kernel_error": snapshot.err().map(|e| e.to_string()),
        })
        .to_string()
    }
}

fn split_key(key: &str) -> (&str, &str) {
    key.split_once('/').unwrap_or(("", key))
}

/// `routecfg run`: returns the exit status.
pub fn run(opts: Options) -> i32 {
    let (client, engine) = match connect(&opts) {
        Ok(x) => x,
        Err(e) => {
            eprintln!("routecfg: {e}");
            return 2;
        }
    };
    let signals = match Signals::open() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("routecfg: signalfd: {e}");
            return 2;
        }
    };
    let mut monitor = match Monitor::open() {
        Ok(m) => m,
        Err(e) => {
            eprintln!("routecfg: netlink monitor: {e}");
            return 2;
        }
    };
    let http = match opts
        .metrics_addr
        .as_deref()
        .map(HttpServer::bind)
        .transpose()
    {
        Ok(h) => h,
        Err(e) => {
            eprintln!("routecfg: {e}");
            return 2;
        }
    };
    if let Some(addr) = http.as_ref().and_then(HttpServer::local_addr) {
        log::info!("serving /metrics, /healthz, /readyz, /status on {addr}");
    }
    log::info!(
        "routecfg {} on host {}: selecting {} (server-side: {:?})",
        env!("CARGO_PKG_VERSION"),
        opts.host,
        opts.selectors,
        opts.selectors.common_terms().to_string()
    );
    let mut engine = engine;
    // Our own changes come back as events too; the engine already knows
    // their outcome, so only other writers' changes should wake us.
    monitor.ignore_port(Some(engine.netlink().port_id()));
    let mut agent = Agent::new(opts, client, engine);
    loop {
        let now = Instant::now();
        let may_retry = agent.retry_at.is_none_or(|t| t <= now);
        if agent.need_list && may_retry {
            match agent.relist() {
                Ok(()) => {
                    agent.need_list = false;
                    agent.backoff.succeeded();
                    agent.start_watch();
                }
                Err(e) => agent.api_failed("list", &e),
            }
        } else if !agent.need_list && agent.watch.is_none() && may_retry {
            agent.retry_at = None;
            agent.start_watch();
        }
        if Instant::now() >= agent.next_resync {
            agent.next_resync = Instant::now() + agent.opts.resync;
            agent.full = true;
            agent.schedule();
        }
        if agent.due.is_some_and(|d| d <= Instant::now()) {
            agent.reconcile();
        }

        let now = Instant::now();
        let mut deadline = agent.next_resync;
        for t in [agent.due, agent.retry_at].into_iter().flatten() {
            deadline = deadline.min(t);
        }
        if let Some(w) = &agent.watch {
            deadline = deadline.min(now + w.timeout());
        }
        let watch_fd = agent
            .watch
            .as_ref()
            .map_or((-1, 0), |w| (w.raw_fd(), w.poll_events()));
        let http_fd = http.as_ref().map_or(-1, HttpServer::fd);
        let ready = match poll::wait(
            &[
                (signals.fd(), libc::POLLIN),
                (monitor.fd(), libc::POLLIN),
                watch_fd,
                (http_fd, libc::POLLIN),
            ],
            Some(deadline.saturating_duration_since(now)),
        ) {
            Ok(r) => r,
            Err(e) => {
                log::error!("poll: {e}");
                return 2;
            }
        };
        if ready[0] {
            if let Some(sig) = signals.take() {
                log::info!("signal {sig}: exiting, routes stay in place");
                return 0;
            }
        }
        if ready[1] {
            match monitor.read_events() {
                Ok(events) => agent.kernel_events(events),
                Err(e) => {
                    log::warn!("netlink monitor: {e}; full resync");
                    agent.full = true;
                    agent.schedule();
                }
            }
        }
        if agent.watch.is_some() {
            agent.drain_watch();
        }
        if ready[3] {
            if let Some(h) = &http {
                h.serve_pending(&mut |path| match path {
                    "/metrics" => Response::ok("text/plain; version=0.0.4", agent.metrics.render()),
                    "/healthz" => Response::text("200 OK", "ok\n"),
                    "/readyz" if agent.ready => Response::text("200 OK", "ok\n"),
                    "/readyz" => Response::text("503 Service Unavailable", "not ready\n"),
                    "/status" => Response::ok("application/json", agent.status_json()),
                    _ => Response::text("404 Not Found", "not found\n"),
                });
            }
        }
    }
}

/// `routecfg once`: list, apply, remove owned tables whose objects are
/// gone, write status; exit 0 only if every selected object is applied.
pub fn once(opts: Options) -> i32 {
    let (client, engine) = match connect(&opts) {
        Ok(x) => x,
        Err(e) => {
            eprintln!("routecfg: {e}");
            return 2;
        }
    };
    let mut agent = Agent::new(opts, client, engine);
    if let Err(e) = agent.relist() {
        eprintln!("routecfg: listing RouteConfigurations: {e}");
        return 2;
    }
    agent.reconcile();
    let outcomes = agent.outcomes();
    let mut ok = true;
    for key in agent.state.keys() {
        match outcomes.get(key) {
            Some(None) => println!("applied  {key}"),
            Some(Some(why)) => {
                ok = false;
                println!("failed   {key}: {why}");
            }
            // Being deleted: its table is removed, there is nothing to apply.
            None if agent
                .state
                .raw(key)
                .is_some_and(|r| r.pointer("/metadata/deletionTimestamp").is_some()) =>
            {
                println!("removed  {key}");
            }
            None => {
                ok = false;
                println!("skipped  {key}");
            }
        }
    }
    if agent.metrics.errors.get("status").copied().unwrap_or(0) > 0 {
        eprintln!("routecfg: some status updates failed (see log)");
        ok = false;
    }
    if ok { 0 } else { 1 }
}
