//! The agent's one loop over poll(2): signals, the netlink monitor, the
//! watch stream, API calls and the metrics server.
//!
//! # Fair turns
//! Each turn runs kernel repair first (a due reconcile), then starts API
//! work (list, watch, queued writes), then waits in poll, then gives every
//! ready source a bounded turn: signals; kernel events (at most 256 KiB);
//! at most [`super::api::WATCH_EVENTS_PER_TURN`] watch events per stream or
//! [`super::api::WATCH_TIME_PER_TURN`], ended early when a reconcile comes
//! due (the stream reads at most 256 KiB per step); one non-blocking step of
//! each API connection (at most 256 KiB read each); metrics clients, within
//! the server's own budget. A source with work left over makes the next
//! poll return at once, after the others had their turn. Signals are in the
//! poll set, so SIGTERM is seen as soon as the current turn ends.
//!
//! # What may still block, and for how long
//! Every socket is non-blocking. The remaining blocking calls from the loop:
//! * Kernel work: `Engine::apply` (netlink dumps and the batch) and the
//!   kernel snapshot for `/status`. It takes what the kernel needs for the
//!   tables involved (100,000 routes take the time they take); it never
//!   waits for anything outside the host.
//! * `Client::resolve`: resolving a kubeconfig host name with the system
//!   resolver, bounded by resolv.conf (`timeout` x `attempts`, 10 s by
//!   default). Runs once, again only after connecting to every address
//!   failed, and never while a reconcile is due. In-cluster (IP literal):
//!   never.
//! * Reading the token file (stat, and a small read when it changed) per
//!   API call, the pending `apply --confirm` checkpoint (stat, and a read
//!   when it changed) per reconcile, and writing `rt_tables` after an apply:
//!   local files, bounded by the local filesystem.
//! * Log lines to stderr: bounded by whoever reads it (journald, kubelet).
//! * Reading netlink events: non-blocking, at most 256 KiB per turn
//!   (`Monitor::read_events`); beyond the socket's receive buffer the
//!   kernel reports ENOBUFS and we resync.
//! * The metrics server: non-blocking connection state machines with a
//!   budget per wakeup (see `http/`).

use std::os::fd::RawFd;
use std::time::{Duration, Instant};

use super::http::{Budget, Page, Response, Server};
use super::poll;
use super::runner::Agent;
use super::signals::Signals;
use crate::kernel::Monitor;

/// Runs until a signal; returns the exit status.
pub(super) fn run(
    mut agent: Agent,
    signals: &Signals,
    monitor: &mut Monitor,
    mut http: Option<&mut Server>,
) -> i32 {
    let mut watch_more = false;
    loop {
        let now = Instant::now();
        if now >= agent.next_resync {
            agent.next_resync = now + agent.opts.resync;
            agent.full = true;
            agent.schedule();
            // `--bindings auto`: a binding CRD installed meanwhile switches
            // us even without a re-list.
            if agent.bindings.flag.needs_discovery() {
                agent.bindings.discover_due = true;
            }
        }
        agent.lease_step(Instant::now());
        // Kernel repair first.
        if agent.due.is_some_and(|d| d <= Instant::now()) {
            agent.reconcile();
        }
        agent.sync_step(Instant::now());
        agent.discovery_step();
        agent.binding_sync_step(Instant::now());
        agent.dispatch_writes(Instant::now());
        if let Some(e) = agent.bindings.fatal.take() {
            log::error!("{e}");
            return 2;
        }

        let now = Instant::now();
        let mut deadline = next_deadline(&agent, now);
        if let Some(t) = http.as_deref().and_then(Server::deadline) {
            deadline = deadline.min(t);
        }
        let timeout = if watch_more {
            Duration::ZERO
        } else {
            deadline.saturating_duration_since(now)
        };
        // Signals and the monitor first, then the metrics server's
        // descriptors (from HTTP_FDS), then the API's.
        const HTTP_FDS: usize = 2;
        let mut fds: Vec<(RawFd, libc::c_short)> =
            vec![(signals.fd(), libc::POLLIN), (monitor.fd(), libc::POLLIN)];
        fds.extend(http.iter().flat_map(|h| h.interest()));
        let api_fds = fds.len();
        for watch in [agent.sync.watch(), agent.bindings.sync.watch()]
            .into_iter()
            .flatten()
        {
            fds.push((watch.raw_fd(), watch.poll_events()));
        }
        agent.client.poll_fds(&mut fds);
        let ready = match poll::wait(&fds, Some(timeout)) {
            Ok(r) => r,
            Err(e) => {
                log::error!("poll: {e}");
                return 2;
            }
        };
        if ready[0] {
            if let Some(sig) = signals.take() {
                log::info!("signal {sig}: exiting, routes stay in place");
                agent.release_lease();
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
        watch_more = agent.drain_watch(Instant::now());
        watch_more |= agent.drain_binding_watch(Instant::now());
        agent.client.advance();
        let done = agent.client.take_completed();
        agent.on_completed(done);
        if let Some(h) = http.as_deref_mut() {
            let ready_fds: Vec<RawFd> = fds[HTTP_FDS..api_fds]
                .iter()
                .zip(&ready[HTTP_FDS..api_fds])
                .filter(|(_, r)| **r)
                .map(|((fd, _), _)| *fd)
                .collect();
            serve(&mut agent, h, &ready_fds);
        }
    }
}

/// When the loop must wake up even if no fd is ready.
fn next_deadline(agent: &Agent, now: Instant) -> Instant {
    let mut deadline = agent.next_resync;
    let sync = agent.sync.wake_at(now);
    let binding_sync = agent.bindings.sync.wake_at(now);
    let discovery = (agent.bindings.discover_due && !agent.bindings.discovering).then_some(now);
    for t in [
        agent.due,
        sync,
        binding_sync,
        discovery,
        agent.lease_deadline(),
        agent.client.deadline(),
        agent.writes.next_retry(),
    ]
    .into_iter()
    .flatten()
    {
        deadline = deadline.min(t);
    }
    deadline
}

/// Answers metrics clients, within the server's own budget per wakeup
/// (called every turn: its deadlines expire here too).
fn serve(agent: &mut Agent, http: &mut Server, ready: &[RawFd]) {
    let (counts, open) = (http.counts(), http.open());
    http.turn(
        ready,
        Budget::per_wakeup(Instant::now()),
        &mut |page| match page {
            Page::Metrics => Response::ok(
                "text/plain; version=0.0.4",
                agent.metrics.render() + &counts.render(open),
            ),
            Page::Health => Response::text("200 OK", "ok\n"),
            Page::Ready if agent.ready => Response::text("200 OK", "ok\n"),
            Page::Ready => Response::text("503 Service Unavailable", "not ready\n"),
            Page::Status => Response::ok("application/json", agent.status_json()),
            Page::Origins => Response::ok("application/json", agent.origins_json()),
        },
    );
}
