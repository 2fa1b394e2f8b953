//! Helpers shared by the integration tests.
#![allow(dead_code)]

pub mod agent;
pub mod kube;
pub mod netns;

use std::path::{Path, PathBuf};

/// The team's `shared/` directory (seed, fixtures, notes), found next to
/// one of the crate's ancestors so tests work from any worktree; the
/// `ROUTECFG_SHARED` environment variable overrides the search.
pub fn shared_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("ROUTECFG_SHARED") {
        let dir = PathBuf::from(dir);
        assert!(
            dir.is_dir(),
            "ROUTECFG_SHARED={} is not a directory",
            dir.display()
        );
        return dir;
    }
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest
        .ancestors()
        .map(|dir| dir.join("shared"))
        .find(|candidate| candidate.join("fixtures").is_dir())
        .unwrap_or_else(|| {
            panic!(
                "no shared/ directory with fixtures/ next to {} or its ancestors; \
                 set ROUTECFG_SHARED to its path",
                manifest.display()
            )
        })
}
