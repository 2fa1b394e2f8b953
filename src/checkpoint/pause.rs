//! A running agent and a pending `apply --confirm`: while the trial runs,
//! an agent with the same ownership mark leaves the checkpoint's tables
//! alone (they are treated as frozen), so it neither repairs the trial
//! away nor gets its own changes rolled back. When the checkpoint ends,
//! the agent reconciles those tables again.
//!
//! [`paused_tables`] is the pure decision; [`Pause`] reads the pending
//! checkpoint's head (not its rules and routes) only when the file
//! changed, so the loop can ask on every reconcile.

use super::store::Store;
use serde::Deserialize;
use std::collections::BTreeSet;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;

/// What an agent needs to know of a pending checkpoint.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Head {
    pub id: String,
    pub protocol: u8,
    pub deadline_unix_ms: u64,
    pub tables: Vec<u32>,
    // The rules and routes are unknown fields here: serde skips them
    // without building them.
}

#[cfg(test)]
impl Head {
    pub fn new(id: &str, protocol: u8, deadline_unix_ms: u64, tables: Vec<u32>) -> Head {
        Head {
            id: id.into(),
            protocol,
            deadline_unix_ms,
            tables,
        }
    }
}

/// How long past its deadline a checkpoint still pauses: its timer and
/// the waiting `apply` decide within seconds; one left behind by a crash
/// must not stop the agent for good.
pub const STALE_AFTER_MS: u64 = 60_000;

/// The tables an agent with mark `protocol` must leave alone at `now_ms`:
/// all the checkpoint's when it was made with the same mark and is not
/// stale, none otherwise (an agent with another mark owns other tables).
pub fn paused_tables(pending: Option<&Head>, protocol: u8, now_ms: u64) -> BTreeSet<u32> {
    match pending {
        Some(h) if h.protocol == protocol && now_ms <= h.deadline_unix_ms + STALE_AFTER_MS => {
            h.tables.iter().copied().collect()
        }
        _ => BTreeSet::new(),
    }
}

/// The pending checkpoint's head, re-read when the file changes.
pub struct Pause {
    store: Store,
    /// (device, inode, size, mtime in ns) of the file last read.
    seen: Option<(u64, u64, u64, i64)>,
    head: Option<Head>,
}

impl Pause {
    pub fn new(dir: PathBuf) -> Pause {
        Pause {
            store: Store::new(dir),
            seen: None,
            head: None,
        }
    }

    /// The pending checkpoint, if any (an unreadable one counts as none,
    /// with a warning: the agent must not stop for a broken file).
    pub fn pending(&mut self) -> Option<&Head> {
        let path = self.store.pending_path();
        let meta = match std::fs::metadata(&path) {
            Ok(m) => m,
            Err(_) => {
                if let Some(h) = self.head.take() {
                    log::info!(
                        "checkpoint {}: ended; its tables are reconciled again",
                        h.id
                    );
                }
                self.seen = None;
                return None;
            }
        };
        let key = (
            meta.dev(),
            meta.ino(),
            meta.size(),
            meta.mtime() * 1_000_000_000 + meta.mtime_nsec(),
        );
        if self.seen != Some(key) {
            self.seen = Some(key);
            self.head = match std::fs::read(&path)
                .map_err(|e| e.to_string())
                .and_then(|b| serde_json::from_slice::<Head>(&b).map_err(|e| e.to_string()))
            {
                Ok(h) => {
                    log::info!(
                        "checkpoint {} pending (proto {}): {} table(s) on trial",
                        h.id,
                        h.protocol,
                        h.tables.len()
                    );
                    Some(h)
                }
                Err(e) => {
                    log::warn!("{}: {e}; not pausing", path.display());
                    None
                }
            };
        }
        self.head.as_ref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkpoint::record::{Checkpoint, VERSION};

    #[test]
    fn same_mark_pauses_the_checkpoint_tables_only() {
        let h = Head::new("a", 114, 1_000, vec![3, 1]);
        assert_eq!(paused_tables(Some(&h), 114, 500), BTreeSet::from([1, 3]));
        assert!(paused_tables(Some(&h), 115, 500).is_empty());
        assert!(paused_tables(None, 114, 500).is_empty());
        // Past the deadline the timer decides within seconds; a checkpoint
        // left long after it (a crash) no longer pauses.
        let last = 1_000 + STALE_AFTER_MS;
        assert_eq!(paused_tables(Some(&h), 114, last), BTreeSet::from([1, 3]));
        assert!(paused_tables(Some(&h), 114, last + 1).is_empty());
    }

    #[test]
    fn reads_the_head_of_a_pending_checkpoint_and_notices_its_end() {
        let dir = std::env::temp_dir().join(format!(
            "routecfg-pause-{}-{}",
            std::process::id(),
            super::super::store::unique()
        ));
        let store = Store::new(dir.clone());
        let mut pause = Pause::new(dir.clone());
        assert!(pause.pending().is_none());
        let cp = Checkpoint {
            version: VERSION,
            id: "x".into(),
            protocol: 114,
            created_unix_ms: 1,
            deadline_unix_ms: 2,
            tables: vec![7, 9],
            rules: vec![],
            routes: vec![],
        };
        store.create(&cp).unwrap();
        assert_eq!(pause.pending(), Some(&Head::new("x", 114, 2, vec![7, 9])));
        let claimed = store.claim(None).unwrap().unwrap();
        assert!(pause.pending().is_none());
        drop(claimed);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
