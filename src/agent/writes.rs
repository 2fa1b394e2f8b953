//! Writes to the API server (status, finalizers, Events; later bindings and
//! leases) as a queue keyed by object, so a slow or stopped API server never
//! holds the loop and nothing is lost or written twice.
//!
//! The queue holds *intents* (what the object should say), not requests:
//! the owner renders an intent into a request only when the key's turn
//! comes, from the object as it is then. So:
//! * the latest intent for a key wins ([`WriteQueue::put`] replaces it);
//! * each key has at most one call in flight ([`WriteQueue::ready`] skips
//!   keys in flight; an intent changed meanwhile is sent after);
//! * a failed write is retried with jittered backoff per key;
//! * when the server comes back, every pending key is written once, and an
//!   intent the object already satisfies renders to nothing
//!   ([`WriteQueue::skipped`]), so nothing is written twice;
//! * the queue is bounded ([`WriteQueue::put`] refuses new keys when
//!   full) and its depth is a metric.
//!
//! A 409 is handled by the owner with [`WriteQueue::started`] again for the
//! re-read (the key stays in flight), then [`Done::Again`].

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::kube::{Backoff, CallId};

/// Keys (objects) the queue holds at most.
pub const CAPACITY: usize = 65_536;

/// How a call for a key ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Done {
    /// Written (or no longer needed): forget the intent unless it changed
    /// while the call was in flight.
    Written,
    /// Render and send again now (after a re-read).
    Again,
    /// Failed: try again after the key's backoff.
    Failed,
}

/// The queue was full; the intent was not recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Full;

#[derive(Debug)]
struct Entry<I> {
    intent: I,
    /// The intent was replaced after the call in flight was rendered.
    changed: bool,
    in_flight: Option<CallId>,
    retry_at: Option<Instant>,
    backoff: Backoff,
}

/// Pending writes by key.
#[derive(Debug)]
pub struct WriteQueue<K, I> {
    entries: BTreeMap<K, Entry<I>>,
    capacity: usize,
}

impl<K: Ord + Clone, I: PartialEq> WriteQueue<K, I> {
    pub fn new(capacity: usize) -> WriteQueue<K, I> {
        WriteQueue {
            entries: BTreeMap::new(),
            capacity,
        }
    }

    /// Records the latest intent for `key`. An equal intent already queued
    /// changes nothing (no second write).
    pub fn put(&mut self, key: K, intent: I) -> Result<(), Full> {
        if let Some(e) = self.entries.get_mut(&key) {
            if e.intent != intent {
                e.intent = intent;
                e.changed = e.in_flight.is_some();
                // A new intent is worth trying at once.
                e.retry_at = None;
                e.backoff.succeeded();
            }
            return Ok(());
        }
        if self.entries.len() >= self.capacity {
            return Err(Full);
        }
        self.entries.insert(
            key,
            Entry {
                intent,
                changed: false,
                in_flight: None,
                retry_at: None,
                backoff: Backoff::new(Duration::from_millis(500), Duration::from_secs(30)),
            },
        );
        Ok(())
    }

    /// Forgets `key` (its object is gone). A call in flight still ends in
    /// [`WriteQueue::finished`], which then finds nothing.
    pub fn remove(&mut self, key: &K) {
        self.entries.remove(key);
    }

    /// Keys whose turn it is: not in flight, backoff passed.
    pub fn ready(&self, now: Instant) -> Vec<K> {
        self.entries
            .iter()
            .filter(|(_, e)| e.in_flight.is_none() && e.retry_at.is_none_or(|t| t <= now))
            .map(|(k, _)| k.clone())
            .collect()
    }

    pub fn intent(&self, key: &K) -> Option<&I> {
        self.entries.get(key).map(|e| &e.intent)
    }

    /// A call for `key` was started (the intent as it is now is what it
    /// carries).
    pub fn started(&mut self, key: &K, id: CallId) {
        if let Some(e) = self.entries.get_mut(key) {
            e.in_flight = Some(id);
            e.changed = false;
        }
    }

    /// The intent rendered to nothing: the object already says it.
    pub fn skipped(&mut self, key: &K) {
        self.entries.remove(key);
    }

    /// Call `id` for `key` ended.
    pub fn finished(&mut self, key: &K, id: CallId, done: Done, now: Instant) {
        let Some(e) = self.entries.get_mut(key) else {
            return;
        };
        if e.in_flight != Some(id) {
            return;
        }
        e.in_flight = None;
        match done {
            Done::Written if e.changed => e.retry_at = None,
            Done::Written => {
                self.entries.remove(key);
            }
            Done::Again => e.retry_at = None,
            Done::Failed => {
                let wait = e.backoff.failed();
                e.retry_at = Some(now + wait);
            }
        }
    }

    /// Failures of `key`'s writes since it last succeeded or changed (to
    /// log the first failure loudly and the retries quietly).
    pub fn failures(&self, key: &K) -> u32 {
        self.entries.get(key).map_or(0, |e| e.backoff.failures())
    }

    /// Keys waiting or in flight: the `write_queue_depth` metric.
    pub fn depth(&self) -> usize {
        self.entries.len()
    }

    pub fn in_flight(&self) -> usize {
        self.entries
            .values()
            .filter(|e| e.in_flight.is_some())
            .count()
    }

    /// The earliest backoff that ends, to bound the loop's poll timeout.
    pub fn next_retry(&self) -> Option<Instant> {
        self.entries
            .values()
            .filter(|e| e.in_flight.is_none())
            .filter_map(|e| e.retry_at)
            .min()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn queue() -> WriteQueue<&'static str, u32> {
        WriteQueue::new(3)
    }

    #[test]
    fn latest_intent_wins_and_one_call_per_key() {
        let now = Instant::now();
        let mut q = queue();
        q.put("a", 1).expect("room");
        q.put("a", 2).expect("room");
        q.put("b", 7).expect("room");
        assert_eq!(q.depth(), 2);
        assert_eq!(q.intent(&"a"), Some(&2));
        assert_eq!(q.ready(now), ["a", "b"]);
        q.started(&"a", 10);
        assert_eq!(q.ready(now), ["b"], "a is in flight");
        // Changed while in flight: sent again after the call ends.
        q.put("a", 3).expect("room");
        assert_eq!(q.ready(now), ["b"]);
        q.finished(&"a", 10, Done::Written, now);
        assert_eq!(q.ready(now), ["a", "b"]);
        assert_eq!(q.intent(&"a"), Some(&3));
        q.started(&"a", 11);
        q.finished(&"a", 11, Done::Written, now);
        assert_eq!(q.intent(&"a"), None, "written: forgotten");
    }

    #[test]
    fn same_intent_while_in_flight_is_not_written_twice() {
        let now = Instant::now();
        let mut q = queue();
        q.put("a", 1).expect("room");
        q.started(&"a", 1);
        q.put("a", 1).expect("room");
        q.finished(&"a", 1, Done::Written, now);
        assert!(q.is_empty());
    }

    #[test]
    fn failures_back_off_and_new_intents_skip_the_wait() {
        let now = Instant::now();
        let mut q = queue();
        q.put("a", 1).expect("room");
        q.started(&"a", 1);
        q.finished(&"a", 1, Done::Failed, now);
        assert!(q.ready(now).is_empty());
        let retry = q.next_retry().expect("retry time");
        assert!(
            retry > now && retry <= now + Duration::from_secs(1),
            "{retry:?}"
        );
        assert_eq!(q.ready(retry), ["a"]);
        // Backoff grows with repeated failures.
        q.started(&"a", 2);
        q.finished(&"a", 2, Done::Failed, now);
        let second = q.next_retry().expect("retry");
        assert!(second > retry);
        assert_eq!(q.failures(&"a"), 2);
        q.put("a", 2).expect("room");
        assert_eq!(q.failures(&"a"), 0);
        assert_eq!(q.ready(now), ["a"], "a new intent goes at once");
    }

    #[test]
    fn again_means_now_and_stale_completions_are_ignored() {
        let now = Instant::now();
        let mut q = queue();
        q.put("a", 1).expect("room");
        q.started(&"a", 1);
        // 409: the owner re-reads on the same key.
        q.started(&"a", 2);
        q.finished(&"a", 1, Done::Written, now);
        assert_eq!(q.depth(), 1, "completion of an older call ignored");
        q.finished(&"a", 2, Done::Again, now);
        assert_eq!(q.ready(now), ["a"]);
        q.remove(&"a");
        q.finished(&"a", 3, Done::Written, now);
        assert!(q.is_empty());
    }

    #[test]
    fn bounded() {
        let mut q = queue();
        for k in ["a", "b", "c"] {
            q.put(k, 1).expect("room");
        }
        assert_eq!(q.put("d", 1), Err(Full));
        assert_eq!(q.put("a", 5), Ok(()), "existing keys still update");
        q.skipped(&"b");
        assert_eq!(q.put("d", 1), Ok(()));
        assert_eq!(q.depth(), 3);
    }
}
