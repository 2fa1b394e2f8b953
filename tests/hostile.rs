//! Hostile input changes nothing (issue 8): the real binary, in throwaway
//! network namespaces, over inputs that once made routecfg do more than
//! they say. After every run the kernel's rules are read back: no rule
//! carrying routecfg's mark may match all traffic, and the well-formed
//! input next to the hostile one must still be applied.
//!
//! Needs root (network namespaces); fails loudly without it. Every run
//! passes `--rt-tables none`, so no rt_tables file is touched.

mod common;

use common::netns::{KRule, Netns, describe, require_root};
use std::io::Read;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_routecfg");
const OURS: u8 = 114;

fn crate_dir() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// A scratch directory removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        static N: AtomicUsize = AtomicUsize::new(0);
        let n = N.fetch_add(1, Ordering::SeqCst);
        let p =
            std::env::temp_dir().join(format!("routecfg-hostile-{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap_or_else(|e| panic!("mkdir {}: {e}", p.display()));
        TempDir(p)
    }

    fn write(&self, name: &str, text: &[u8]) -> PathBuf {
        let p = self.0.join(name);
        std::fs::write(&p, text).unwrap_or_else(|e| panic!("write {}: {e}", p.display()));
        p
    }

    fn path(&self) -> &str {
        self.0.to_str().expect("UTF-8 temp path")
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A well-formed object that must be applied whatever lies next to it.
const GOOD: &str = "\
apiVersion: networking.liqo.io/v1beta1
kind: RouteConfiguration
metadata: {name: hostile-good, namespace: liqo}
spec:
  table:
    name: hostile-good
    rules:
    - iif: lo
      routes:
      - {dst: 10.98.0.0/24, dev: lo}
";

/// Runs the binary in `ns` (bounded by `timeout`, so a hang fails the
/// test instead of stalling it) and checks what every run must satisfy:
/// no death by signal, exit status at most 2.
fn routecfg(ns: &Netns, args: &[&str]) -> Output {
    let mut argv = vec!["timeout", "60", BIN];
    argv.extend_from_slice(args);
    let out = ns.exec(&argv);
    let code = out.status.code();
    assert!(
        code.is_some_and(|c| c <= 2),
        "routecfg {} ended badly (timeout gives 124):\n{}",
        args.join(" "),
        describe(&out)
    );
    out
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn marked_rules(ns: &Netns) -> Vec<KRule> {
    ns.rules()
        .into_iter()
        .filter(|r| r.protocol == OURS)
        .collect()
}

/// A rule that matches every packet: no src, dst, iif, oif or fwmark.
fn matches_all(r: &KRule) -> bool {
    r.src.is_none() && r.dst.is_none() && r.iif.is_none() && r.oif.is_none() && r.fwmark.is_none()
}

fn assert_no_match_all(ns: &Netns, after: &str) {
    let bad: Vec<KRule> = marked_rules(ns).into_iter().filter(matches_all).collect();
    assert!(
        bad.is_empty(),
        "{after}: rules matching all traffic: {bad:?}"
    );
}

fn hostile_fixtures() -> Vec<PathBuf> {
    let dir = crate_dir().join("tests/fixtures/hostile");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml" || e == "json"))
        .collect();
    files.sort();
    assert!(files.len() >= 10, "hostile fixtures missing: {files:?}");
    files
}

#[test]
fn each_hostile_input_is_refused_by_name_and_the_rest_applies() {
    require_root();
    let ns = Netns::new("hostile");
    let baseline = ns.rules().len();
    for file in hostile_fixtures() {
        let name = file.file_name().and_then(|n| n.to_str()).expect("name");
        let dir = TempDir::new("each");
        dir.write("good.yaml", GOOD.as_bytes());
        let bytes = std::fs::read(&file).expect("read fixture");
        let hostile = dir.write(name, &bytes);
        let out = routecfg(&ns, &["apply", "-f", dir.path(), "--rt-tables", "none"]);
        let all = text(&out);
        assert_eq!(out.status.code(), Some(1), "{name}:\n{all}");
        assert!(
            all.contains("applied  liqo/hostile-good"),
            "{name}: the good object was not applied:\n{all}"
        );
        // The error names the file (unreadable) or the object (invalid).
        let object = format!("liqo/hostile-{}", name.split('.').next().unwrap_or(""));
        assert!(
            all.contains(&format!("error: {}", hostile.display())) || all.contains(&object),
            "{name}: no error naming the file or {object}:\n{all}"
        );
        assert_no_match_all(&ns, name);
        let ours = marked_rules(&ns);
        assert_eq!(ours.len(), 1, "{name}: only the good rule: {ours:?}");
        assert_eq!(ns.rules().len(), baseline + 1, "{name}");

        // diff prints the same errors and has nothing left to change.
        let out = routecfg(&ns, &["diff", "-f", dir.path()]);
        assert_eq!(out.status.code(), Some(2), "{name}:\n{}", describe(&out));
        assert!(
            out.stdout.is_empty(),
            "{name}: diff not in sync:\n{}",
            describe(&out)
        );
    }
    let out = routecfg(&ns, &["cleanup", "--rt-tables", "none"]);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    assert!(marked_rules(&ns).is_empty());
}

#[test]
fn match_all_is_accepted_only_when_asked_and_warned_by_apply_and_diff() {
    require_root();
    let ns = Netns::new("matchall");
    let dir = TempDir::new("matchall");
    let fixture = crate_dir().join("tests/fixtures/hostile/no-selector.yaml");
    dir.write("m.yaml", &std::fs::read(fixture).expect("fixture"));
    let warning = "has no src, dst, iif, oif or fwmark: it sends all traffic to this table \
                   (accepted by --allow-match-all)";

    let out = routecfg(&ns, &["diff", "-f", dir.path()]);
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
    assert!(
        text(&out).contains("give it a selector"),
        "{}",
        describe(&out)
    );

    let allow = ["-f", dir.path(), "--allow-match-all", "--rt-tables", "none"];
    let out = routecfg(&ns, &[&["diff"], &allow[..2], &allow[2..3]].concat());
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains(warning),
        "{}",
        describe(&out)
    );

    let out = routecfg(&ns, &[&["apply"], &allow[..]].concat());
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains(warning),
        "{}",
        describe(&out)
    );
    let ours = marked_rules(&ns);
    assert!(ours.len() == 1 && matches_all(&ours[0]), "{ours:?}");
    // Warned again on every apply, and by diff once in sync.
    let out = routecfg(&ns, &[&["apply"], &allow[..]].concat());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains(warning),
        "{}",
        describe(&out)
    );
    let out = routecfg(&ns, &[&["diff"], &allow[..3]].concat());
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains(warning),
        "{}",
        describe(&out)
    );

    routecfg(&ns, &["cleanup", "--rt-tables", "none"]);
    assert!(marked_rules(&ns).is_empty());
}

/// An object with its own table `name`, one rule and one route.
fn object(name: &str, octet: u8) -> String {
    format!(
        "apiVersion: networking.liqo.io/v1beta1\nkind: RouteConfiguration\n\
         metadata: {{name: {name}, namespace: liqo}}\n\
         spec:\n  table:\n    name: {name}\n    rules:\n    - fwmark: {octet}\n      routes:\n      \
         - {{dst: 10.97.{octet}.0/24, dev: lo}}\n"
    )
}

#[test]
fn prune_is_refused_when_any_document_fails_to_load() {
    require_root();
    let ns = Netns::new("prune");
    let dir = TempDir::new("prune");
    dir.write("a.yaml", object("prune-a", 1).as_bytes());
    dir.write("b.yaml", object("prune-b", 2).as_bytes());
    let out = routecfg(
        &ns,
        &["apply", "--prune", "-f", dir.path(), "--rt-tables", "none"],
    );
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let before = (
        ns.rules(),
        ns.ip(&["route", "show", "table", "all", "proto", "114"]),
    );
    assert_eq!(marked_rules(&ns).len(), 2);

    let broken = [
        object("prune-b", 2).replace("routes:\n", "routes: [\n"),
        object("prune-b", 2).replace(
            "    - fwmark: 2\n      routes:\n      - {dst: 10.97.2.0/24, dev: lo}\n",
            "    - fwmark: 2\n      routes: 5\n",
        ),
        object("prune-b", 2) + "    rules: []\n",
    ];
    for b in &broken {
        assert_ne!(b, &object("prune-b", 2));
        dir.write("b.yaml", b.as_bytes());
        let out = routecfg(
            &ns,
            &["apply", "--prune", "-f", dir.path(), "--rt-tables", "none"],
        );
        assert_eq!(out.status.code(), Some(2), "{b}\n{}", describe(&out));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("--prune refused") && err.contains("b.yaml"),
            "{err}"
        );
        let after = (
            ns.rules(),
            ns.ip(&["route", "show", "table", "all", "proto", "114"]),
        );
        assert_eq!(after, before, "prune changed the kernel for:\n{b}");
    }
    routecfg(&ns, &["cleanup", "--rt-tables", "none"]);
}

#[test]
fn special_files_huge_files_and_deep_nesting_are_refused_quickly() {
    require_root();
    let ns = Netns::new("limits");
    let dir = TempDir::new("limits");
    dir.write("good.yaml", GOOD.as_bytes());
    let fifo = dir.0.join("trap.yaml");
    let c = std::ffi::CString::new(fifo.to_str().expect("path")).expect("no NUL");
    // SAFETY: a valid NUL-terminated path; mkfifo has no other preconditions.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0, "mkfifo");
    dir.write(
        "deep.yaml",
        format!("a: {}{}\n", "[".repeat(100_000), "]".repeat(100_000)).as_bytes(),
    );

    let out = routecfg(
        &ns,
        &[
            "apply",
            "-f",
            dir.path(),
            "-f",
            "/dev/zero",
            "--rt-tables",
            "none",
        ],
    );
    let all = text(&out);
    assert_eq!(out.status.code(), Some(1), "{all}");
    assert!(all.contains("applied  liqo/hostile-good"), "{all}");
    assert!(all.contains("trap.yaml: not a regular file"), "{all}");
    assert!(all.contains("/dev/zero: not a regular file"), "{all}");
    assert!(
        all.contains("deep.yaml: document 1: invalid YAML: line 1: nested more than 64"),
        "{all}"
    );

    let out = routecfg(
        &ns,
        &[
            "diff",
            "-f",
            dir.0.join("good.yaml").to_str().expect("path"),
            "--max-file-size",
            "100",
        ],
    );
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
    assert!(
        text(&out).contains("larger than 100 bytes, the limit"),
        "{}",
        describe(&out)
    );
    for bad in [
        ["--max-file-size", "0"],
        ["--max-rules", "99999999999"],
        ["--max-routes", "-1"],
    ] {
        let out = routecfg(&ns, &[&["diff", "-f", dir.path()], &bad[..]].concat());
        assert_eq!(out.status.code(), Some(2), "{bad:?}: {}", describe(&out));
        assert!(text(&out).contains(bad[0]), "{bad:?}: {}", describe(&out));
    }
    // A trial window that would overflow the deadline is refused, and
    // nothing is applied.
    let before = marked_rules(&ns);
    let checkpoints = TempDir::new("checkpoints");
    let good = dir.0.join("good.yaml");
    let out = routecfg(
        &ns,
        &[
            "apply",
            "-f",
            good.to_str().expect("path"),
            "--rt-tables",
            "none",
            "--checkpoint-dir",
            checkpoints.path(),
            "--confirm",
            "18446744073709551615",
        ],
    );
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
    assert!(
        text(&out).contains("expected 1 to 86400 seconds"),
        "{}",
        describe(&out)
    );
    assert_eq!(marked_rules(&ns), before);
    routecfg(&ns, &["cleanup", "--rt-tables", "none"]);
}

/// Files in `dir`, sorted.
fn files_in(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = match std::fs::read_dir(dir) {
        Ok(rd) => rd
            .map(|e| e.expect("dir entry").path())
            .filter(|p| p.is_file())
            .collect(),
        Err(_) => Vec::new(),
    };
    v.sort();
    v
}

/// The whole fuzz corpus of the loader targets (seeds and regression
/// inputs), each through apply, diff and cleanup.
#[test]
fn the_fuzz_corpus_through_the_real_binary() {
    require_root();
    let ns = Netns::new("corpus");
    let fuzz = crate_dir().join("tests/fuzz");
    let mut inputs = Vec::new();
    for sub in [
        "seeds/loader",
        "seeds/desired",
        "regressions/loader",
        "regressions/desired",
    ] {
        inputs.extend(files_in(&fuzz.join(sub)));
    }
    assert!(inputs.len() > 40, "corpus too small: {}", inputs.len());
    for input in &inputs {
        let dir = TempDir::new("corpus");
        let file = dir.write(
            "input.yaml",
            &std::fs::read(input).expect("read corpus file"),
        );
        let f = file.to_str().expect("path");
        let what = input.display();
        let apply = routecfg(&ns, &["apply", "-f", f, "--rt-tables", "none"]);
        assert_no_match_all(&ns, &what.to_string());
        let diff = routecfg(&ns, &["diff", "-f", f]);
        // In sync whenever apply applied everything (routes to links this
        // namespace lacks stay pending or failed, and diff says so).
        if apply.status.code() == Some(0) {
            assert_eq!(diff.status.code(), Some(0), "{what}: {}", describe(&diff));
        }
        let out = routecfg(&ns, &["cleanup", "--rt-tables", "none"]);
        assert_eq!(out.status.code(), Some(0), "{what}: {}", describe(&out));
        assert!(marked_rules(&ns).is_empty(), "{what}: cleanup left rules");
        let routes = ns.ip(&["route", "show", "table", "all", "proto", "114"]);
        assert!(
            routes.trim().is_empty(),
            "{what}: cleanup left routes:\n{routes}"
        );
    }
}

/// Printing commands die quietly of SIGPIPE when their reader goes; the
/// daemon never does (its stderr reader may come and go).
#[test]
fn sigpipe_ends_printing_commands_but_never_the_daemon() {
    let names: Vec<String> = (0..30_000).map(|i| format!("t{i}")).collect();
    let mut child = Command::new(BIN)
        .arg("table-id")
        .args(&names)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn table-id");
    let mut first = [0u8; 16];
    let mut stdout = child.stdout.take().expect("stdout");
    stdout.read_exact(&mut first).expect("read some output");
    drop(stdout);
    let status = child.wait().expect("wait");
    assert_eq!(status.signal(), Some(libc::SIGPIPE), "table-id: {status:?}");

    // `run` against an API server that is not there: it keeps retrying
    // and logging (every second or so) to a stderr nobody reads any more.
    // In a namespace of its own, so nothing on the host is ever touched.
    require_root();
    let ns = Netns::new("sigpipe");
    let dir = TempDir::new("sigpipe");
    let kubeconfig = dir.write(
        "kubeconfig",
        b"clusters:\n- name: c\n  cluster: {server: 'https://127.0.0.1:1', insecure-skip-tls-verify: true}\n\
          users:\n- name: u\n  user: {token: t}\ncontexts:\n- name: x\n  context: {cluster: c, user: u}\n\
          current-context: x\n",
    );
    let mut child = Command::new("ip")
        .args(["netns", "exec", ns.name(), BIN])
        .args([
            "run",
            "--role",
            "fabric",
            "--rt-tables",
            "none",
            "--host-name",
            "h",
        ])
        .arg("--kubeconfig")
        .arg(&kubeconfig)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn run");
    let mut stderr = child.stderr.take().expect("stderr");
    let mut some = [0u8; 1];
    stderr.read_exact(&mut some).expect("the daemon logs");
    drop(stderr);
    // Several retries are logged in this time; each would have been a
    // SIGPIPE with the default action.
    std::thread::sleep(Duration::from_secs(5));
    let ended = child.try_wait().expect("try_wait");
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(
        ended, None,
        "the daemon ended once its stderr reader went away"
    );
}
