//! `routecfg run` and `routecfg once`: the agent's state and its two entry
//! points. The parts live beside this file:
//! * `reconcile.rs`: kernel events, plan and apply, outcomes, and the
//!   writes they call for;
//! * `api.rs`: list and watch as state machines, and the write queue's
//!   calls through the non-blocking client;
//! * `writes.rs`: the write queue (keyed by object, latest wins);
//! * `event_loop.rs`: the poll(2) loop, its fair turns and budgets.

use super::api::{Intent, Purpose, WriteKey};
use super::event_loop;
use super::http::Server;
use super::metrics::Metrics;
use super::signals::Signals;
use super::state::State;
use super::stream::{Phase, Stream};
use super::writes::{CAPACITY, WriteQueue};
use crate::checkpoint::pause::Pause;
use crate::engine::{Engine, TableReport};
use crate::kernel::Monitor;
use crate::kube::{CallId, Client, ConnectOptions, KubeConfig, requests};
use crate::model::selector::SelectorSet;
use crate::model::validate::Policy;
use crate::rt_tables::RtTables;
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

/// Upstream's finalizer name, shared by every host (see README).
pub const FINALIZER: &str = "routeconfiguration-controller.liqo.io/finalizer";

/// How long `routecfg once` waits for its status and Event writes.
const ONCE_WRITE_DEADLINE: Duration = Duration::from_secs(30);

/// How an agent runs; filled from the command line.
pub struct Options {
    pub connect: ConnectOptions,
    pub selectors: SelectorSet,
    /// Name written as `host` in status conditions.
    pub host: String,
    pub finalizer: bool,
    pub metrics_addr: Option<String>,
    /// Where `/status` is served instead of `metrics_addr`, if given.
    pub status_addr: Option<String>,
    pub resync: Duration,
    pub protocol: u8,
    /// Accept rules with no selector (they capture all traffic), each
    /// warned every time its table is applied; as `apply --allow-match-all`.
    pub allow_match_all: bool,
    pub rt_tables: Option<RtTables>,
    /// Server-side watch timeout (the stream is renewed after it).
    pub watch_timeout: u32,
    /// Where `apply --confirm` keeps its pending checkpoint.
    pub checkpoint_dir: std::path::PathBuf,
    /// `--bindings`: conditions, bindings, or as discovery says.
    pub bindings: crate::binding::BindingsFlag,
    /// Who we are in binding mode, or why that is not known.
    pub identity: Result<crate::binding::Target, String>,
    /// `--leader-elect`: only the Lease holder applies and writes.
    pub leader: Option<crate::leader::Config>,
}

/// What the last apply said about each object.
pub(super) type Outcome = Option<String>;

/// Everything the loop owns.
pub(super) struct Agent {
    pub(super) opts: Options,
    /// Label selector sent to the API server (terms all sets share).
    pub(super) server_selector: String,
    pub(super) client: Client,
    pub(super) engine: Engine,
    pub(super) state: State,
    pub(super) metrics: Metrics,
    /// Last outcome announced (logged, Event queued) per object.
    pub(super) reported: BTreeMap<String, Outcome>,
    /// Last apply result per table, for status and `/status`.
    pub(super) tables: BTreeMap<u32, TableReport>,
    /// Tables not fully applied (pending or refused routes), tried again
    /// when links or other writers' routes change.
    pub(super) pending: BTreeSet<u32>,
    pub(super) dirty: BTreeSet<u32>,
    pub(super) removed: BTreeSet<u32>,
    pub(super) full: bool,
    /// Set when the last dirty marks came from kernel events.
    pub(super) kernel_triggered: bool,
    /// When the next reconcile is due: kernel work waiting.
    pub(super) due: Option<Instant>,
    pub(super) ready: bool,
    /// The RouteConfiguration list/watch.
    pub(super) sync: Stream,
    pub(super) next_resync: Instant,
    pub(super) writes: WriteQueue<WriteKey, Intent>,
    /// What each call in flight is for.
    pub(super) calls: BTreeMap<CallId, Purpose>,
    /// A pending `apply --confirm` with our mark: its tables are left alone.
    pub(super) pause: Pause,
    /// Binding mode: discovery, our bindings, their stream.
    pub(super) bindings: super::bindings::Bindings,
    /// Problems `binding::decide` reported, logged once each.
    pub(super) binding_problems: BTreeSet<String>,
    /// Leader election, with `--leader-elect`.
    pub(super) elector: Option<crate::leader::Elector>,
    /// The elector's clock starts here.
    pub(super) started: Instant,
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
    pub(super) fn new(opts: Options, client: Client, engine: Engine) -> Agent {
        let server_selector = opts.selectors.common_terms().to_string();
        let policy = Policy {
            allow_match_all: opts.allow_match_all,
            ..Policy::new(opts.protocol)
        };
        let state = State::new(opts.selectors.clone(), policy);
        let resync = opts.resync;
        let pause = Pause::new(opts.checkpoint_dir.clone());
        let now = Instant::now();
        let bindings = super::bindings::Bindings::new(opts.bindings, opts.identity.clone());
        let elector = opts
            .leader
            .clone()
            .map(|cfg| crate::leader::Elector::new(cfg, 0));
        let mut agent = Agent {
            opts,
            server_selector: server_selector.clone(),
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
            sync: Stream::new(
                "watch",
                requests::route_configurations_path(),
                server_selector,
                Phase::ListAt(now),
            ),
            next_resync: now + resync,
            writes: WriteQueue::new(CAPACITY),
            calls: BTreeMap::new(),
            pause,
            bindings,
            binding_problems: BTreeSet::new(),
            elector,
            started: now,
        };
        agent.metrics.leader = u64::from(agent.elector.is_none());
        agent.metrics.binding_mode = u64::from(agent.bindings.active());
        agent
    }
}

/// `routecfg run`: returns the exit status.
pub fn run(opts: Options) -> i32 {
    let (client, mut engine) = match connect(&opts) {
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
    let mut http = match Server::bind(opts.metrics_addr.as_deref(), opts.status_addr.as_deref()) {
        Ok(h) => h,
        Err(e) => {
            eprintln!("routecfg: {e}");
            return 2;
        }
    };
    for line in http.iter().flat_map(Server::describe) {
        log::info!("{line}");
    }
    log::info!(
        "routecfg {} on host {}: selecting {} (server-side: {:?})",
        env!("CARGO_PKG_VERSION"),
        opts.host,
        opts.selectors,
        opts.selectors.common_terms().to_string()
    );
    // Our own changes come back as events too; the engine already knows
    // their outcome, so only other writers' changes should wake us.
    monitor.ignore_port(Some(engine.netlink().port_id()));
    let agent = Agent::new(opts, client, engine);
    event_loop::run(agent, &signals, &mut monitor, http.as_mut())
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
    // One pass: no leader election (a Job is one process).
    agent.elector = None;
    agent.metrics.leader = 1;
    if let Err(e) = agent.once_bindings_setup() {
        eprintln!("routecfg: {e}");
        return 2;
    }
    let listed = agent.client.list(&agent.server_selector);
    match listed {
        Ok(list) => agent.listed(list),
        Err(e) => {
            eprintln!("routecfg: listing RouteConfigurations: {e}");
            return 2;
        }
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
    let deadline = Instant::now() + ONCE_WRITE_DEADLINE;
    let mut written = agent.flush_writes(deadline);
    // Binding mode takes a few rounds: bindings are created, then their
    // status written; deleted ones are released after their table went.
    for _ in 0..3 {
        if !agent.binding_mode() || !written {
            break;
        }
        agent.queue_binding_work();
        agent.queue_statuses();
        if agent.writes.is_empty() {
            break;
        }
        written = agent.flush_writes(deadline);
    }
    if !written {
        eprintln!("routecfg: some status updates failed (see log)");
        ok = false;
    }
    if ok { 0 } else { 1 }
}
