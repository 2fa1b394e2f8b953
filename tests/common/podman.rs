//! The project's container image, built by `deploy/build-image.sh` and run
//! with podman the way a cluster would run it.
//!
//! The image is what ships, so the tests run the archive the build script
//! wrote, not the host binary. podman is pointed at the private
//! `containers.conf`, `storage.conf` and signature policy the script writes
//! next to the archive: the host's `/etc/containers` and
//! `/var/lib/containers` are neither read for settings nor written, and the
//! settings this machine needs (runc, cgroupfs, ulimits at the shell's hard
//! limits) come from one place.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

use super::netns::describe;

static NEXT_CONTAINER: AtomicU32 = AtomicU32::new(0);

/// Variables cargo sets for the crate under test (besides `CARGO_PKG_*`
/// and `CARGO_BIN_EXE_*`); they mean nothing to a nested build.
const CARGO_CRATE_ENV: &[&str] = &[
    "CARGO",
    "CARGO_MANIFEST_DIR",
    "CARGO_MANIFEST_PATH",
    "CARGO_CRATE_NAME",
    "CARGO_BIN_NAME",
    "CARGO_PRIMARY_PACKAGE",
    "CARGO_TARGET_TMPDIR",
    "CARGO_RUSTC_CURRENT_DIR",
];

/// Runs `deploy/build-image.sh` and returns the archive path it prints last.
/// The script is cheap when the static binary is current (cargo only checks
/// freshness, the image build takes about a second), and running it here
/// means the test never runs a stale archive. Panics with the script's
/// output when it fails.
pub fn build_image() -> PathBuf {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/build-image.sh");
    let mut cmd = Command::new(&script);
    // `cargo test` describes this crate to the test in CARGO_MANIFEST_DIR,
    // CARGO_PKG_* etc. The static build's cargo compares such variables
    // against what build scripts (ring's) declared with
    // rerun-if-env-changed, so inheriting them would rebuild ring, rustls,
    // ureq and routecfg on every run after a build from a shell.
    for (key, _) in std::env::vars_os() {
        let key = key.to_string_lossy();
        if CARGO_CRATE_ENV.contains(&key.as_ref())
            || key.starts_with("CARGO_PKG_")
            || key.starts_with("CARGO_BIN_EXE_")
        {
            cmd.env_remove(key.as_ref());
        }
    }
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", script.display()));
    assert!(
        out.status.success(),
        "{} failed, so there is no image to test:\n{}",
        script.display(),
        describe(&out)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let Some(last) = stdout.lines().rev().find(|l| !l.trim().is_empty()) else {
        panic!(
            "{} printed no archive path:\n{}",
            script.display(),
            describe(&out)
        );
    };
    let archive = PathBuf::from(last.trim());
    assert!(
        archive.is_file(),
        "{} printed {}, which is not a file",
        script.display(),
        archive.display()
    );
    archive
}

/// podman with the configuration `deploy/build-image.sh` wrote beside the
/// archive.
pub struct Podman {
    dir: PathBuf,
    archive: PathBuf,
}

impl Podman {
    /// Uses the private configuration in the archive's directory (the
    /// script's `ROUTECFG_IMAGE_DIR`).
    pub fn for_archive(archive: &Path) -> Podman {
        let Some(dir) = archive.parent() else {
            panic!("image archive {} has no directory", archive.display());
        };
        for file in ["containers.conf", "storage.conf", "policy.json"] {
            let path = dir.join(file);
            assert!(
                path.is_file(),
                "{} missing: deploy/build-image.sh writes it next to the archive",
                path.display()
            );
        }
        Podman {
            dir: dir.to_path_buf(),
            archive: archive.to_path_buf(),
        }
    }

    /// The image as podman names it: the archive itself, so every run
    /// uses exactly what the build script wrote.
    pub fn image_ref(&self) -> String {
        format!("oci-archive:{}", self.archive.display())
    }

    /// `podman` with the private configuration in its environment.
    pub fn command(&self) -> Command {
        let mut cmd = Command::new("podman");
        cmd.env("CONTAINERS_CONF", self.dir.join("containers.conf"))
            .env("CONTAINERS_STORAGE_CONF", self.dir.join("storage.conf"))
            .env("TMPDIR", self.dir.join("tmp"))
            .stdin(Stdio::null());
        cmd
    }

    /// `--signature-policy <private policy>`, for commands that read an
    /// image from a transport (`run` of an `oci-archive:`).
    pub fn policy_args(&self) -> [String; 2] {
        [
            "--signature-policy".to_string(),
            self.dir.join("policy.json").display().to_string(),
        ]
    }

    /// Runs `podman args...` and returns its output, success or not.
    pub fn output(&self, args: &[&str]) -> Output {
        self.command()
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("cannot run `podman {}`: {e}", args.join(" ")))
    }

    /// Runs `podman args...`, asserting success; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.output(args);
        assert!(
            out.status.success(),
            "`podman {}` failed:\n{}",
            args.join(" "),
            describe(&out)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// A container name unique to this process, for [`Container`].
    pub fn unique_name(tag: &str) -> String {
        format!(
            "rcfg-{tag}-{}-{}",
            std::process::id(),
            NEXT_CONTAINER.fetch_add(1, Ordering::Relaxed)
        )
    }
}

/// A named container this test created; force-removed on drop, by name,
/// so a failing test leaves nothing running in the private store.
pub struct Container<'a> {
    podman: &'a Podman,
    name: String,
}

impl<'a> Container<'a> {
    /// Takes ownership of the container called `name` (created or about to
    /// be created by the caller).
    pub fn adopt(podman: &'a Podman, name: String) -> Container<'a> {
        Container { podman, name }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// `podman inspect --format FORMAT NAME`, trimmed.
    pub fn inspect(&self, format: &str) -> String {
        self.podman
            .ok(&["inspect", "--format", format, &self.name])
            .trim()
            .to_string()
    }

    /// Whether the container's process is still running.
    pub fn running(&self) -> bool {
        self.inspect("{{.State.Running}}") == "true"
    }

    /// What the container printed (stdout and stderr), for failure messages.
    pub fn logs(&self) -> String {
        let out = self.podman.output(&["logs", &self.name]);
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    }
}

impl Drop for Container<'_> {
    fn drop(&mut self) {
        let out = self
            .podman
            .command()
            .args(["rm", "--force", "--time", "0", &self.name])
            .output();
        match out {
            Ok(out) if out.status.success() => {}
            Ok(out) => eprintln!(
                "warning: could not remove container {}:\n{}",
                self.name,
                describe(&out)
            ),
            Err(e) => eprintln!("warning: could not remove container {}: {e}", self.name),
        }
    }
}
