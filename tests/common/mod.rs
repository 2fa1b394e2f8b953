//! Helpers shared by the integration tests.
#![allow(dead_code)]

pub mod agent;
pub mod cluster;
pub mod kube;
pub mod netns;
pub mod podman;

use std::path::{Path, PathBuf};

/// The team's shared material (seed, fixtures, upstream CRD) lives next to
/// the checkout, not in it, and the checkout's own location differs between
/// CI (`/work/main`) and worktrees (`/work/wt/<name>`): honour
/// `ROUTECFG_SHARED`, else take the first ancestor of the crate that has a
/// `shared/fixtures/` directory beside it.
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
        .skip(1)
        .map(|dir| dir.join("shared"))
        .find(|candidate| candidate.join("fixtures").is_dir())
        .unwrap_or_else(|| {
            panic!(
                "no shared/ directory with fixtures/ beside {} or its ancestors; \
                 set ROUTECFG_SHARED to its path",
                manifest.display()
            )
        })
}
