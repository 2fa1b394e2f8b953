//! The README's command list is `routecfg --help`, verbatim: this keeps the
//! two from drifting apart.

use std::process::Command;

#[test]
fn readme_shows_the_current_help() {
    let out = Command::new(env!("CARGO_BIN_EXE_routecfg"))
        .arg("--help")
        .output()
        .expect("running routecfg --help");
    assert!(out.status.success(), "routecfg --help failed: {out:?}");
    let help = String::from_utf8_lossy(&out.stdout);
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"))
        .expect("reading README.md");
    assert!(
        readme.contains(help.as_ref()),
        "README.md does not contain the output of `routecfg --help`:\n{help}"
    );
}

#[test]
fn every_command_has_help() {
    for cmd in [
        "apply", "diff", "cleanup", "run", "once", "status", "demo", "table-id", "explain",
        "confirm", "rollback",
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_routecfg"))
            .args([cmd, "--help"])
            .output()
            .expect("running routecfg");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{cmd} --help exited {:?}", out.status);
        assert!(
            text.starts_with("Usage: routecfg"),
            "{cmd} --help printed:\n{text}"
        );
    }
}
