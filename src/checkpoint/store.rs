//! The checkpoint directory: at most one pending checkpoint, claimed by
//! exactly one of `confirm`, `rollback` or the timer.
//!
//! - `pending.json` is the pending checkpoint. It is written to a
//!   temporary file, synced, then hard-linked into place: `link(2)` fails
//!   when the name exists, so two applies can never both have one
//!   pending, and a reader never sees a half-written file.
//! - Deciding is claiming: renaming `pending.json` to a name of the
//!   claimer's own is atomic, so of a `confirm` and a timeout racing, one
//!   wins and the other finds nothing pending.
//! - `last.json` records how the last checkpoint ended, for the waiting
//!   `apply --confirm` and for a late `confirm`.

use super::record::{Checkpoint, VERSION};
use serde::{Deserialize, Serialize};
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// Default directory: tmpfs, so a reboot (which loses the trial state
/// anyway) forgets the checkpoint too.
pub const DEFAULT_DIR: &str = "/run/routecfg";
/// Environment variable overriding [`DEFAULT_DIR`].
pub const DIR_ENV: &str = "ROUTECFG_CHECKPOINT_DIR";

const PENDING: &str = "pending.json";
const LAST: &str = "last.json";

/// How a checkpoint ended.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Outcome {
    pub id: String,
    /// `confirmed`, `rolled back` or `rollback failed`.
    pub result: String,
    /// `confirm`, `rollback`, `timeout`.
    pub by: String,
    pub at_unix: u64,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<String>,
}

/// A checkpoint directory.
pub struct Store {
    dir: PathBuf,
}

impl Store {
    pub fn new(dir: PathBuf) -> Store {
        Store { dir }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn pending_path(&self) -> PathBuf {
        self.dir.join(PENDING)
    }

    /// The pending checkpoint, if any.
    pub fn pending(&self) -> Result<Option<Checkpoint>, String> {
        read(&self.pending_path())
    }

    /// Makes `cp` the pending checkpoint; fails if one is pending already.
    pub fn create(&self, cp: &Checkpoint) -> Result<(), String> {
        fs::create_dir_all(&self.dir)
            .map_err(|e| format!("creating {}: {e}", self.dir.display()))?;
        let tmp = self.dir.join(format!(".{}.tmp", cp.id));
        let text = serde_json::to_vec(cp).map_err(|e| format!("encoding the checkpoint: {e}"))?;
        let written = (|| -> io::Result<()> {
            let mut f = fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&tmp)?;
            f.write_all(&text)?;
            f.sync_all()
        })();
        if let Err(e) = written {
            let _ = fs::remove_file(&tmp);
            return Err(format!("writing {}: {e}", tmp.display()));
        }
        let linked = fs::hard_link(&tmp, self.pending_path());
        let _ = fs::remove_file(&tmp);
        match linked {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Err(format!(
                "another checkpoint is pending ({}); confirm or roll it back first",
                self.pending_path().display()
            )),
            Err(e) => Err(format!("creating {}: {e}", self.pending_path().display())),
        }
    }

    /// Takes the pending checkpoint for the caller to decide on; `None`
    /// when nothing is pending (or someone else took it first). With `id`,
    /// only that checkpoint is taken.
    pub fn claim(&self, id: Option<&str>) -> Result<Option<Claimed>, String> {
        let claimed = self
            .dir
            .join(format!(".claimed-{}-{}", std::process::id(), unique()));
        match fs::rename(self.pending_path(), &claimed) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(format!("claiming {}: {e}", self.pending_path().display())),
        }
        let cp = match read(&claimed) {
            Ok(Some(cp)) => cp,
            Ok(None) => return Ok(None),
            Err(e) => {
                let _ = fs::rename(&claimed, self.pending_path());
                return Err(e);
            }
        };
        if id.is_some_and(|id| id != cp.id) {
            // Not ours to decide: put it back (nobody else can have
            // created a new one meanwhile, the name was free only to us).
            let _ = fs::hard_link(&claimed, self.pending_path());
            let _ = fs::remove_file(&claimed);
            return Ok(None);
        }
        Ok(Some(Claimed { path: claimed, cp }))
    }

    /// Records how a checkpoint ended (atomically replacing the previous
    /// record).
    pub fn finish(&self, claimed: Claimed, outcome: &Outcome) -> Result<(), String> {
        let tmp = self.dir.join(format!(".last-{}.tmp", unique()));
        let text = serde_json::to_vec(outcome).map_err(|e| format!("encoding the outcome: {e}"))?;
        fs::write(&tmp, text)
            .and_then(|()| fs::rename(&tmp, self.dir.join(LAST)))
            .map_err(|e| format!("writing {}: {e}", self.dir.join(LAST).display()))?;
        fs::remove_file(&claimed.path)
            .map_err(|e| format!("removing {}: {e}", claimed.path.display()))
    }

    /// How the last checkpoint ended, if recorded.
    pub fn last(&self) -> Result<Option<Outcome>, String> {
        let path = self.dir.join(LAST);
        match fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| format!("{}: {e}", path.display())),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(format!("reading {}: {e}", path.display())),
        }
    }
}

/// A checkpoint taken from `pending.json`, owned by the caller.
pub struct Claimed {
    path: PathBuf,
    pub cp: Checkpoint,
}

fn read(path: &Path) -> Result<Option<Checkpoint>, String> {
    let bytes = match fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("reading {}: {e}", path.display())),
    };
    let cp: Checkpoint =
        serde_json::from_slice(&bytes).map_err(|e| format!("{}: {e}", path.display()))?;
    if cp.version != VERSION {
        return Err(format!(
            "{}: checkpoint version {} (this routecfg reads {VERSION})",
            path.display(),
            cp.version
        ));
    }
    Ok(Some(cp))
}

/// Nanoseconds of the wall clock: unique enough within one process id.
pub fn unique() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0)
}

/// Seconds of the wall clock.
pub fn now_unix() -> u64 {
    now_unix_ms() / 1000
}

/// Milliseconds of the wall clock.
pub fn now_unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cp(id: &str) -> Checkpoint {
        Checkpoint {
            version: VERSION,
            id: id.into(),
            protocol: 114,
            created_unix_ms: 1,
            deadline_unix_ms: 2,
            tables: vec![7],
            rules: vec![],
            routes: vec![],
        }
    }

    fn temp() -> PathBuf {
        let d = std::env::temp_dir().join(format!(
            "routecfg-store-{}-{}",
            std::process::id(),
            unique()
        ));
        fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn one_pending_claimed_once() {
        let dir = temp();
        let store = Store::new(dir.clone());
        assert_eq!(store.pending().unwrap(), None);
        store.create(&cp("a")).unwrap();
        let err = store.create(&cp("b")).unwrap_err();
        assert!(err.contains("another checkpoint is pending"), "{err}");
        assert_eq!(store.pending().unwrap(), Some(cp("a")));
        // Only the named checkpoint is taken.
        assert!(store.claim(Some("b")).unwrap().is_none());
        assert_eq!(store.pending().unwrap(), Some(cp("a")));
        let claimed = store.claim(Some("a")).unwrap().unwrap();
        assert_eq!(claimed.cp, cp("a"));
        assert!(store.claim(None).unwrap().is_none(), "claimed twice");
        assert_eq!(store.pending().unwrap(), None);
        let outcome = Outcome {
            id: "a".into(),
            result: "confirmed".into(),
            by: "confirm".into(),
            at_unix: 3,
            errors: vec![],
        };
        store.finish(claimed, &outcome).unwrap();
        assert_eq!(store.last().unwrap(), Some(outcome));
        // Nothing but the record is left behind.
        let names: Vec<String> = fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["last.json"]);
        store.create(&cp("c")).unwrap();
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn other_versions_are_refused() {
        let dir = temp();
        let store = Store::new(dir.clone());
        let mut old = cp("a");
        old.version = 99;
        store.create(&old).unwrap();
        let err = store.pending().unwrap_err();
        assert!(err.contains("checkpoint version 99"), "{err}");
        fs::remove_dir_all(&dir).unwrap();
    }
}
