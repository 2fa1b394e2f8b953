//! Binding mode in the agent loop (today's Liqo): API discovery decides the
//! mode (`--bindings auto`), a second list/watch follows the bindings bound
//! to us, `binding::decide` says what to create, repair, delete or clean up,
//! and each object's outcome is reported on its binding instead of on the
//! RouteConfiguration. All calls go through the same non-blocking client
//! and write queue as the rest of the agent.

use std::collections::BTreeSet;
use std::time::Instant;

use serde_json::Value;

use super::api::{Intent, Purpose, WriteKey, WriteKind};
use super::reconcile::split_key;
use super::runner::Agent;
use super::stream::{Paged, Phase, Polled, Started, Stream};
use super::writes::Done;
use crate::binding::{
    self, Action, BindingStore, BindingsFlag, Mode, Outcome, Target, decide, select_mode,
};
use crate::kube::binding_requests as req;
use crate::kube::{ApiRequest, Completed, KubeError, ListLimits, Pager, WatchEventKind};

/// Binding mode's part of the agent's state.
pub(super) struct Bindings {
    pub(super) flag: BindingsFlag,
    pub(super) mode: Mode,
    /// Why there is no identity, when there is none.
    pub(super) no_identity: Option<String>,
    pub(super) store: Option<BindingStore>,
    /// The bindings list/watch (off outside binding mode).
    pub(super) sync: Stream,
    /// A discovery call is in flight.
    pub(super) discovering: bool,
    /// Ask discovery before the next RouteConfiguration list.
    pub(super) discover_due: bool,
    /// A startup error that must stop `run` (auto found bindings, no identity).
    pub(super) fatal: Option<String>,
    /// Discovery has answered at least once (later errors do not stop us).
    pub(super) answered: bool,
}

impl Bindings {
    pub(super) fn new(flag: BindingsFlag, identity: Result<Target, String>) -> Bindings {
        let (store, no_identity) = match identity {
            Ok(t) => (Some(BindingStore::new(t)), None),
            Err(e) => (None, Some(e)),
        };
        let mode = if flag == BindingsFlag::On {
            Mode::Bindings
        } else {
            Mode::Conditions
        };
        Bindings {
            flag,
            mode,
            no_identity,
            sync: Stream::new(
                "bindings watch",
                req::bindings_path(),
                String::new(),
                if mode == Mode::Bindings && store.is_some() {
                    Phase::ListAt(Instant::now())
                } else {
                    Phase::Off
                },
            ),
            store,
            discovering: false,
            discover_due: flag.needs_discovery(),
            fatal: None,
            answered: false,
        }
    }

    pub(super) fn active(&self) -> bool {
        self.mode == Mode::Bindings && self.store.is_some()
    }

    pub(super) fn target(&self) -> Option<&Target> {
        self.store.as_ref().map(BindingStore::target)
    }
}

impl Agent {
    /// Whether this agent writes bindings and their status now.
    pub(super) fn binding_mode(&self) -> bool {
        self.bindings.active()
    }

    /// Starts discovery when one is due (`--bindings auto`: at start and
    /// before every RouteConfiguration list).
    pub(super) fn discovery_step(&mut self) {
        let b = &mut self.bindings;
        if !b.discover_due || b.discovering || self.client.needs_resolve() {
            return;
        }
        b.discover_due = false;
        b.discovering = true;
        let id = self.client.start(req::discovery());
        self.calls.insert(id, Purpose::Discovery);
    }

    pub(super) fn on_discovery(&mut self, c: Completed) {
        self.bindings.discovering = false;
        let served = match c.result.and_then(|r| r.json(&c.request.path)) {
            Ok(list) => Some(binding::mode::discovery_serves_bindings(&list)),
            // No RouteConfiguration CRD at all in this group version.
            Err(e) if e.is_not_found() => Some(false),
            Err(e) => {
                log::warn!(
                    "discovery of {}: {e}; keeping {} mode",
                    binding::CRD_NAME,
                    self.bindings.mode.as_str()
                );
                None
            }
        };
        let identity = match &self.bindings.no_identity {
            None => Ok(()),
            Some(why) => Err(why.as_str()),
        };
        let first = served.is_some() && !self.bindings.answered;
        let result = select_mode(self.bindings.flag, served, self.bindings.mode, identity);
        if first && result.is_ok() {
            self.bindings.answered = true;
            // Statuses waited for the mode: report now wherever it says.
            self.reported.clear();
            self.full = true;
            self.schedule();
        }
        match result {
            Ok(mode) => self.set_mode(mode),
            Err(e) => {
                if !self.bindings.answered {
                    // Still starting: stop with the reason.
                    self.bindings.fatal = Some(e);
                } else {
                    self.metrics.error("api");
                    log::error!("{e}");
                }
            }
        }
    }

    /// Switches between conditions and binding mode.
    pub(super) fn set_mode(&mut self, mode: Mode) {
        if mode == self.bindings.mode && !(mode == Mode::Bindings && self.bindings.sync.is_off()) {
            return;
        }
        log::info!(
            "mode: {} (target {})",
            mode.as_str(),
            self.bindings
                .target()
                .map_or("none".to_string(), Target::describe)
        );
        self.bindings.mode = mode;
        self.metrics.binding_mode = u64::from(self.bindings.active());
        let follow = mode == Mode::Bindings;
        self.bindings.sync.set_following(follow, Instant::now());
        if !follow {
            if let Some(s) = &mut self.bindings.store {
                s.replace_all(Vec::new());
            }
        }
        // Report everything again where it now belongs.
        self.reported.clear();
        self.full = true;
        self.schedule();
    }
}

impl Agent {
    /// Starts the bindings list or watch when due (binding mode only).
    pub(super) fn binding_sync_step(&mut self, now: Instant) {
        if self.client.needs_resolve() {
            return;
        }
        match self
            .bindings
            .sync
            .start(&mut self.client, self.opts.watch_timeout, now)
        {
            Started::ListPage(call) => {
                self.calls.insert(call, Purpose::BindingListPage);
            }
            Started::Failed => self.metrics.error("api"),
            Started::Nothing | Started::Watching => {}
        }
    }

    pub(super) fn on_binding_list_page(&mut self, c: Completed, now: Instant) {
        match self.bindings.sync.on_page(&mut self.client, c, now) {
            Paged::NextPage(id) => {
                self.calls.insert(id, Purpose::BindingListPage);
            }
            Paged::Listed(items, rv) => {
                log::info!("listed {} binding(s) at resourceVersion {rv}", items.len());
                if let Some(s) = &mut self.bindings.store {
                    s.replace_all(items);
                }
                self.queue_binding_work();
                // Statuses now have bindings to land on.
                self.queue_statuses();
            }
            Paged::Failed => self.metrics.error("api"),
            Paged::NotOurs => {}
        }
    }

    /// Bindings watch events within the turn's budget; true when more wait.
    pub(super) fn drain_binding_watch(&mut self, started: Instant) -> bool {
        let mut changed = false;
        let mut handled = 0;
        let more = loop {
            if self.watch_turn_over(started, handled) {
                break self.bindings.sync.watch().is_some();
            }
            match self.bindings.sync.next(&mut self.client, Instant::now()) {
                Polled::Idle => break false,
                Polled::Restarted { failed } => {
                    if failed {
                        self.metrics.error("api");
                    }
                }
                Polled::Event(ev) => {
                    handled += 1;
                    let Some(store) = &mut self.bindings.store else {
                        continue;
                    };
                    match ev.kind {
                        WatchEventKind::Added | WatchEventKind::Modified => {
                            changed |= store.upsert(ev.object)
                        }
                        WatchEventKind::Deleted => changed |= store.remove(&ev.object),
                        WatchEventKind::Bookmark | WatchEventKind::Error => {}
                    }
                }
            }
        };
        // Any event may unblock a decision (a Deleted event after we
        // released a binding is when it can be created again).
        if handled > 0 {
            self.queue_binding_work();
        }
        if changed {
            self.queue_statuses();
        }
        more
    }
}

impl Agent {
    /// Runs `binding::decide` on what we know and queues its actions.
    pub(super) fn queue_binding_work(&mut self) {
        if !self.binding_mode() || !self.leading() || !self.bindings.sync.is_listed() {
            return;
        }
        let Some(store) = &self.bindings.store else {
            return;
        };
        let objects: Vec<Value> = self
            .state
            .keys()
            .filter_map(|k| self.state.raw(k).cloned())
            .collect();
        let bindings = store.all();
        // Tables that may still hold our rules and routes: applied ones, and
        // ones whose removal is queued or failed.
        let mut kernel: BTreeSet<u32> = self.tables.keys().copied().collect();
        kernel.extend(self.removed.iter().copied());
        let actions = decide(&binding::decide::World {
            target: store.target(),
            objects: &objects,
            bindings: &bindings,
            kernel_tables: &kernel,
        });
        for action in actions {
            match action {
                Action::RemoveTable { name, id } => {
                    log::info!("table {name} ({id}): no live object wants it; removing");
                    self.removed.insert(id);
                    self.schedule();
                }
                Action::Problem { object, message } => {
                    if self.binding_problems.insert(message.clone()) {
                        self.metrics.error("binding");
                        log::warn!("{object}: {message}");
                    }
                }
                Action::StripLegacyFinalizer {
                    ref namespace,
                    ref name,
                    ..
                } => {
                    let key = format!("{namespace}/{name}");
                    self.queue(WriteKind::Legacy, key, Intent::Binding(action));
                }
                Action::Create {
                    ref namespace,
                    ref body,
                } => {
                    let name = body
                        .pointer("/metadata/name")
                        .and_then(Value::as_str)
                        .unwrap_or("");
                    let key = format!("{namespace}/{name}");
                    self.queue(WriteKind::Binding, key, Intent::Binding(action));
                }
                Action::Patch {
                    ref namespace,
                    ref name,
                    ..
                }
                | Action::Delete {
                    ref namespace,
                    ref name,
                    ..
                }
                | Action::RemoveFinalizer {
                    ref namespace,
                    ref name,
                    ..
                } => {
                    let key = format!("{namespace}/{name}");
                    self.queue(WriteKind::Binding, key, Intent::Binding(action));
                }
            }
        }
    }

    /// The request for a binding-mode write, or `None` when nothing is left
    /// to do.
    pub(super) fn render_binding(
        &self,
        key: &WriteKey,
        intent: &Intent,
    ) -> Result<Option<ApiRequest>, KubeError> {
        let Some(store) = &self.bindings.store else {
            return Ok(None);
        };
        let (ns, name) = split_key(&key.object);
        match intent {
            Intent::BindingStatus { ok, message, table } => {
                let outcome = if *ok {
                    Outcome::Applied(message)
                } else {
                    Outcome::Failed(message)
                };
                let now = crate::time::now_rfc3339();
                let mut writes =
                    store.status_writes([(key.object.as_str(), outcome, table.as_deref())], &now);
                match writes.pop() {
                    Some(obj) => {
                        let bname = obj
                            .pointer("/metadata/name")
                            .and_then(Value::as_str)
                            .unwrap_or("")
                            .to_string();
                        req::replace_binding_status(ns, &bname, &obj).map(Some)
                    }
                    None => Ok(None),
                }
            }
            Intent::Binding(Action::Create { namespace, body }) => {
                if store.all().iter().any(|b| {
                    b.pointer("/metadata/name") == body.pointer("/metadata/name")
                        && b.pointer("/metadata/namespace").and_then(Value::as_str)
                            == Some(namespace)
                }) {
                    return Ok(None);
                }
                req::create_binding(namespace, body).map(Some)
            }
            Intent::Binding(Action::Patch { patch, .. })
            | Intent::Binding(Action::RemoveFinalizer { patch, .. }) => {
                req::patch_binding(ns, name, patch).map(Some)
            }
            Intent::Binding(Action::Delete { uid, .. }) => {
                req::delete_binding(ns, name, uid.as_deref()).map(Some)
            }
            Intent::Binding(Action::StripLegacyFinalizer { patch, .. }) => {
                req::patch_route_configuration(ns, name, patch).map(Some)
            }
            _ => Ok(None),
        }
    }

    /// A binding-mode write finished.
    pub(super) fn on_binding_write(&mut self, key: WriteKey, c: Completed, now: Instant) {
        let path = c.request.path.clone();
        match c.result {
            Ok(response) => {
                if let Ok(written) = response.json(&path) {
                    match key.kind {
                        WriteKind::Legacy => {
                            log::info!("{}: legacy finalizer removed", key.object);
                            self.state.refresh_raw(written);
                        }
                        // A binding whose last finalizer we just removed is
                        // gone (its Deleted event may already have come):
                        // never bring it back into the store.
                        _ if written.pointer("/metadata/deletionTimestamp").is_some()
                            && written
                                .pointer("/metadata/finalizers")
                                .and_then(Value::as_array)
                                .is_none_or(|f| f.is_empty()) =>
                        {
                            log::info!("{}: binding released", key.object);
                            if let Some(s) = &mut self.bindings.store {
                                s.remove(&written);
                            }
                        }
                        _ if written.get("kind").and_then(Value::as_str) == Some(binding::KIND) => {
                            if c.request.method == "POST" {
                                log::info!("{}: binding created", key.object);
                            }
                            let changed = self
                                .bindings
                                .store
                                .as_mut()
                                .is_some_and(|s| s.upsert(written));
                            // A new binding is where the status goes now; a
                            // deleted one needs its finalizer released next.
                            if changed {
                                self.queue_statuses();
                                self.queue_binding_work();
                            }
                        }
                        _ => {}
                    }
                }
                self.writes.finished(&key, c.id, Done::Written, now);
            }
            Err(e) if e.is_not_found() => self.writes.finished(&key, c.id, Done::Written, now),
            Err(e) if e.is_conflict() => {
                // Someone wrote first (or the name is taken by another
                // target's binding): look again at the next decision.
                log::info!("{}: {e}; deciding again", key.object);
                self.writes.finished(&key, c.id, Done::Written, now);
            }
            Err(e) => {
                self.metrics.error("binding");
                log::warn!("{}: {e}", key.object);
                self.writes.finished(&key, c.id, Done::Failed, now);
            }
        }
    }
}

impl Agent {
    /// `routecfg once`: the mode from discovery and, in binding mode, the
    /// bindings bound to us, each with one blocking call sequence.
    pub(super) fn once_bindings_setup(&mut self) -> Result<(), String> {
        if self.bindings.flag.needs_discovery() {
            let request = req::discovery();
            let path = request.path.clone();
            let served = match self.client.call(request).and_then(|r| r.json(&path)) {
                Ok(list) => Some(binding::mode::discovery_serves_bindings(&list)),
                Err(e) if e.is_not_found() => Some(false),
                Err(e) => return Err(format!("discovery of {}: {e}", binding::CRD_NAME)),
            };
            let identity = match &self.bindings.no_identity {
                None => Ok(()),
                Some(why) => Err(why.as_str()),
            };
            let mode = select_mode(self.bindings.flag, served, self.bindings.mode, identity)?;
            self.bindings.mode = mode;
        }
        self.bindings.answered = true;
        if !self.binding_mode() {
            self.bindings.sync.set_following(false, Instant::now());
            return Ok(());
        }
        log::info!(
            "mode: bindings (target {})",
            self.bindings
                .target()
                .map_or("none".to_string(), Target::describe)
        );
        let now = Instant::now();
        let mut pager = Pager::new(&req::bindings_path(), "", ListLimits::default(), now);
        let (items, rv) = loop {
            let request = pager
                .next_request(Instant::now())
                .map_err(|e| e.to_string())?;
            let path = request.path.clone();
            let result = self.client.call(request);
            if let Some(done) = pager
                .on_page(&path, result, Instant::now())
                .map_err(|e| format!("listing bindings: {e}"))?
            {
                break done;
            }
        };
        if let Some(s) = &mut self.bindings.store {
            s.replace_all(items);
        }
        // Listed: decisions may be made (no watch follows in `once`).
        self.bindings
            .sync
            .listed_by_hand(rv, now + std::time::Duration::from_secs(3600));
        Ok(())
    }
}
