//! Access to the team's shared fixtures (`/work/shared` next to the
//! checkout, or `$ROUTECFG_SHARED`), for tests only.

use std::path::PathBuf;

/// The shared directory; panics with directions when it cannot be found,
/// because a test that silently skipped its fixtures would prove nothing.
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
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    for dir in manifest.ancestors() {
        let candidate = dir.join("shared");
        if candidate.join("fixtures").is_dir() {
            return candidate;
        }
    }
    panic!(
        "no shared/ directory with fixtures/ above {}; set ROUTECFG_SHARED",
        manifest.display()
    );
}

/// `shared/fixtures/rome`.
pub fn rome_dir() -> PathBuf {
    shared_dir().join("fixtures").join("rome")
}
