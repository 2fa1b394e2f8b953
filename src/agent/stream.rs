//! One list-then-watch stream of one resource, as a state machine the loop
//! drives: RouteConfigurations and, in binding mode, our bindings. Both
//! keep the same contract, so it lives here once:
//!
//! * A list runs page by page within [`ListLimits`]; when it fails, what
//!   the caller knows stays (fail static) and the list is retried after
//!   the backoff.
//! * The watch starts from the list's resourceVersion; bookmarks move it
//!   on. A 410 re-lists, after the backoff when the watch was young, so a
//!   server answering every watch with 410 gets no list storm.
//! * A watch that ends less than [`SHORT_WATCH`] after it started counts as
//!   a failure, so a server that answers with an empty 200 is not hammered.
//!   An event after that, or a watch that lived [`HEALTHY_WATCH`], resets
//!   the backoff.
//!
//! The stream never blocks: it starts calls on the client and polls the
//! watch. What the objects mean is the caller's business: it gets pages
//! and events, and files the page calls under its own purpose.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::kube::{
    Backoff, CallId, Client, Completed, KubeError, ListLimits, Pager, Watch, WatchEvent,
    WatchEventKind, WatchPoll,
};

/// A watch that ends sooner than this after it started is a failure.
pub const SHORT_WATCH: Duration = Duration::from_secs(1);
/// A watch that lived this long resets the backoff before its failure
/// counts (as does an event after [`SHORT_WATCH`]).
const HEALTHY_WATCH: Duration = Duration::from_secs(60);

/// Where the stream stands.
pub(super) enum Phase {
    /// Not followed (binding mode off).
    Off,
    /// List when this time comes (at start, after a 410, after a failure).
    ListAt(Instant),
    /// A list in progress: its pager and the page call in flight.
    Listing {
        pager: Box<Pager>,
        call: CallId,
    },
    /// Start a watch from the last resourceVersion when this time comes.
    WatchAt(Instant),
    Watching {
        watch: Box<Watch>,
        since: Instant,
    },
}

/// What [`Stream::start`] did.
pub(super) enum Started {
    Nothing,
    /// A list began: the caller files this page call.
    ListPage(CallId),
    Watching,
    /// The list or watch could not start; it is retried after the backoff.
    Failed,
}

/// What a completed page call meant.
pub(super) enum Paged {
    /// Not this stream's page (a stale call).
    NotOurs,
    /// More pages: the caller files this call.
    NextPage(CallId),
    /// The list is complete; the watch follows.
    Listed(Vec<Value>, String),
    /// The list failed; it is retried after the backoff.
    Failed,
}

/// What [`Stream::next`] found.
pub(super) enum Polled {
    /// Not watching, or nothing to read now.
    Idle,
    Event(WatchEvent),
    /// The watch ended or failed and is restarted (list or watch) later;
    /// `failed` when it counts as an API error.
    Restarted {
        failed: bool,
    },
}

pub(super) struct Stream {
    /// Names the stream in logs and errors (`watch`, `bindings watch`).
    name: &'static str,
    collection: String,
    selector: String,
    pub(super) phase: Phase,
    pub(super) resource_version: String,
    pub(super) backoff: Backoff,
}

impl Stream {
    pub(super) fn new(
        name: &'static str,
        collection: String,
        selector: String,
        phase: Phase,
    ) -> Self {
        Stream {
            name,
            collection,
            selector,
            phase,
            resource_version: String::new(),
            backoff: Backoff::new(Duration::from_millis(500), Duration::from_secs(30)),
        }
    }

    /// True when a list or watch wants to start now.
    pub(super) fn due(&self, now: Instant) -> bool {
        matches!(self.phase, Phase::ListAt(t) | Phase::WatchAt(t) if t <= now)
    }

    /// When the loop must wake up for this stream.
    pub(super) fn wake_at(&self, now: Instant) -> Option<Instant> {
        match &self.phase {
            Phase::ListAt(t) | Phase::WatchAt(t) => Some(*t),
            Phase::Watching { watch, .. } => Some(now + watch.timeout()),
            Phase::Listing { .. } | Phase::Off => None,
        }
    }

    /// The open watch, for the poll set.
    pub(super) fn watch(&self) -> Option<&Watch> {
        match &self.phase {
            Phase::Watching { watch, .. } => Some(watch),
            _ => None,
        }
    }

    pub(super) fn is_off(&self) -> bool {
        matches!(self.phase, Phase::Off)
    }

    /// A complete list has been seen and the stream follows on from it.
    pub(super) fn is_listed(&self) -> bool {
        matches!(self.phase, Phase::Watching { .. } | Phase::WatchAt(_))
    }

    /// Pushes back a list or watch waiting to start; one in progress keeps
    /// its connection.
    pub(super) fn postpone(&mut self, until: Instant) {
        if let Phase::ListAt(t) | Phase::WatchAt(t) = &mut self.phase {
            *t = until;
        }
    }

    /// Stops following (closing the watch), or starts over with a list.
    pub(super) fn set_following(&mut self, follow: bool, now: Instant) {
        if let Phase::Watching { watch, .. } = &mut self.phase {
            watch.close();
        }
        self.phase = if follow {
            Phase::ListAt(now)
        } else {
            Phase::Off
        };
    }

    /// A list done outside the loop (`once`): the stream counts as listed
    /// at `rv`, with its watch not before `watch_at`.
    pub(super) fn listed_by_hand(&mut self, rv: String, watch_at: Instant) {
        self.resource_version = rv;
        self.phase = Phase::WatchAt(watch_at);
    }

    /// Starts a list or watch whose time has come.
    pub(super) fn start(
        &mut self,
        client: &mut Client,
        watch_timeout: u32,
        now: Instant,
    ) -> Started {
        match &self.phase {
            Phase::ListAt(t) if *t <= now => {
                let pager =
                    Pager::new(&self.collection, &self.selector, ListLimits::default(), now);
                match pager.next_request(now) {
                    Ok(request) => {
                        let call = client.start(request);
                        self.phase = Phase::Listing {
                            pager: Box::new(pager),
                            call,
                        };
                        Started::ListPage(call)
                    }
                    Err(e) => {
                        self.failed(true, &e, now);
                        Started::Failed
                    }
                }
            }
            Phase::WatchAt(t) if *t <= now => {
                match client.watch_path(
                    &self.collection,
                    &self.resource_version,
                    &self.selector,
                    watch_timeout,
                ) {
                    Ok(watch) => {
                        self.phase = Phase::Watching {
                            watch: Box::new(watch),
                            since: now,
                        };
                        Started::Watching
                    }
                    Err(e) => {
                        self.failed(false, &e, now);
                        Started::Failed
                    }
                }
            }
            _ => Started::Nothing,
        }
    }

    /// A page call completed.
    pub(super) fn on_page(&mut self, client: &mut Client, c: Completed, now: Instant) -> Paged {
        let Phase::Listing { pager, call } = &mut self.phase else {
            return Paged::NotOurs;
        };
        if *call != c.id {
            return Paged::NotOurs;
        }
        let failed = match pager.on_page(&c.request.path, c.result, now) {
            Ok(None) => match pager.next_request(now) {
                Ok(request) => {
                    let id = client.start(request);
                    *call = id;
                    return Paged::NextPage(id);
                }
                Err(e) => e,
            },
            Ok(Some((items, rv))) => {
                self.backoff.succeeded();
                self.resource_version = rv.clone();
                self.phase = Phase::WatchAt(now);
                return Paged::Listed(items, rv);
            }
            Err(e) => e,
        };
        self.failed(true, &failed, now);
        Paged::Failed
    }

    /// The next watch event, if one is there; an ended or failed watch is
    /// scheduled again here.
    pub(super) fn next(&mut self, client: &mut Client, now: Instant) -> Polled {
        let Phase::Watching { watch, since } = &mut self.phase else {
            return Polled::Idle;
        };
        let lived = now.duration_since(*since);
        let polled = watch.try_next();
        if polled.is_err() && !watch.ever_connected() {
            client.addresses_failed();
        }
        match polled {
            Ok(WatchPoll::Pending) => Polled::Idle,
            Ok(WatchPoll::Event(ev)) => {
                if lived >= SHORT_WATCH {
                    self.backoff.succeeded();
                }
                if ev.kind != WatchEventKind::Error {
                    if let Some(rv) = ev.resource_version() {
                        self.resource_version = rv.to_string();
                    }
                    return Polled::Event(ev);
                }
                let message = ev.error_message().unwrap_or("").to_string();
                let path = self.name.to_string();
                let e = if ev.is_gone() {
                    KubeError::Gone { path, message }
                } else {
                    KubeError::Api {
                        status: 0,
                        reason: "watch ERROR event".to_string(),
                        message,
                        path,
                    }
                };
                self.watch_failed(&e, lived, now);
                Polled::Restarted { failed: true }
            }
            Ok(WatchPoll::Ended) if lived < SHORT_WATCH => {
                let wait = self.backoff.failed();
                log::warn!(
                    "{} ended {} ms after it started; retrying in {} ms",
                    self.name,
                    lived.as_millis(),
                    wait.as_millis()
                );
                self.phase = Phase::WatchAt(now + wait);
                Polled::Restarted { failed: true }
            }
            Ok(WatchPoll::Ended) => {
                log::debug!(
                    "{} ended; renewing from {}",
                    self.name,
                    self.resource_version
                );
                self.backoff.succeeded();
                self.phase = Phase::WatchAt(now);
                Polled::Restarted { failed: false }
            }
            Err(e) => {
                self.watch_failed(&e, lived, now);
                Polled::Restarted { failed: true }
            }
        }
    }

    fn watch_failed(&mut self, e: &KubeError, lived: Duration, now: Instant) {
        if lived >= HEALTHY_WATCH {
            self.backoff.succeeded();
        }
        if e.is_gone() && lived < SHORT_WATCH {
            // Usual after a long disconnection, but a server answering
            // every watch with 410 must not get a list storm either.
            let wait = self.backoff.failed();
            log::info!(
                "{}: resourceVersion too old, listing again in {} ms",
                self.name,
                wait.as_millis()
            );
            self.phase = Phase::ListAt(now + wait);
            return;
        }
        self.failed(false, e, now);
    }

    /// A list or watch failed: 410 re-lists at once, anything else waits
    /// for the backoff.
    fn failed(&mut self, listing: bool, e: &KubeError, now: Instant) {
        if e.is_gone() {
            log::info!("{}: resourceVersion too old, listing again", self.name);
            self.phase = Phase::ListAt(now);
            return;
        }
        let wait = self.backoff.failed();
        let what = if listing { "list" } else { self.name };
        log::warn!(
            "{what} {}: {e}; retrying in {} ms",
            self.collection,
            wait.as_millis()
        );
        self.phase = if listing || self.resource_version.is_empty() {
            Phase::ListAt(now + wait)
        } else {
            Phase::WatchAt(now + wait)
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stream(phase: Phase) -> Stream {
        Stream::new("watch", "/apis/x/v1/things".into(), String::new(), phase)
    }

    fn transport() -> KubeError {
        KubeError::Transport {
            path: "/apis/x/v1/things".into(),
            message: "reset".into(),
        }
    }

    fn gone() -> KubeError {
        KubeError::Gone {
            path: "watch".into(),
            message: "too old".into(),
        }
    }

    #[test]
    fn due_only_when_waiting_and_its_time_has_come() {
        let now = Instant::now();
        let later = now + Duration::from_secs(5);
        assert!(stream(Phase::ListAt(now)).due(now));
        assert!(stream(Phase::WatchAt(now)).due(now));
        assert!(!stream(Phase::ListAt(later)).due(now));
        assert!(!stream(Phase::Off).due(now));
        let mut s = stream(Phase::WatchAt(now));
        s.postpone(later);
        assert!(!s.due(now));
        assert_eq!(s.wake_at(now), Some(later));
        let mut off = stream(Phase::Off);
        off.postpone(later);
        assert!(off.is_off(), "postpone never starts a stream");
    }

    #[test]
    fn a_failed_list_or_a_watch_without_a_version_lists_again_after_the_backoff() {
        let now = Instant::now();
        let mut s = stream(Phase::Off);
        s.failed(true, &transport(), now);
        assert!(matches!(s.phase, Phase::ListAt(t) if t > now));
        s.failed(false, &transport(), now);
        assert!(
            matches!(s.phase, Phase::ListAt(t) if t > now),
            "no version to watch from"
        );
    }

    #[test]
    fn a_failed_watch_with_a_version_watches_again_after_the_backoff() {
        let now = Instant::now();
        let mut s = stream(Phase::Off);
        s.resource_version = "7".into();
        s.failed(false, &transport(), now);
        assert!(matches!(s.phase, Phase::WatchAt(t) if t > now));
    }

    #[test]
    fn gone_lists_at_once_unless_the_watch_was_young() {
        let now = Instant::now();
        let mut s = stream(Phase::Off);
        s.resource_version = "7".into();
        s.watch_failed(&gone(), Duration::from_secs(5), now);
        assert!(matches!(s.phase, Phase::ListAt(t) if t == now));
        // A server that answers every watch with 410 gets no list storm.
        s.watch_failed(&gone(), Duration::from_millis(10), now);
        assert!(matches!(s.phase, Phase::ListAt(t) if t > now));
    }

    #[test]
    fn listed_by_hand_counts_as_listed_and_following_can_stop() {
        let now = Instant::now();
        let mut s = stream(Phase::Off);
        assert!(!s.is_listed());
        s.listed_by_hand("9".into(), now + Duration::from_secs(3600));
        assert!(s.is_listed());
        assert_eq!(s.resource_version, "9");
        s.set_following(false, now);
        assert!(s.is_off() && !s.is_listed());
        s.set_following(true, now);
        assert!(s.due(now));
    }
}
