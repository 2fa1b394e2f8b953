//! End-to-end tests of `routecfg demo`, run on the built binary.
//!
//! NEEDS ROOT: the first tests run the demo as root; the last one switches
//! to uid/gid 65534 with `setpriv` (which needs root) to run it as an
//! ordinary user. Without root every test fails with a clear message.
//! The demo itself works in a private network namespace; these tests check
//! that the host's rules, routes and rt_tables are byte-for-byte the same
//! before and after.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_routecfg");

/// The seed document's Rome gateway tables.
const TABLES: &[&str] = &[
    "milan",
    "rome-control-plane",
    "rome-control-plane-extcidr",
    "rome-control-plane-service-nodeport-routing",
    "rome-worker",
    "rome-worker-extcidr",
    "rome-worker-service-nodeport-routing",
];

fn require_root() {
    let status = std::fs::read_to_string("/proc/self/status").expect("read /proc/self/status");
    let euid = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .unwrap_or("?");
    assert_eq!(
        euid, "0",
        "demo tests need root (the demo runs as root, and `setpriv` switches to an \
         unprivileged user for the user-namespace case); run `sudo -E cargo test --test demo`"
    );
}

fn run(cmd: &mut Command) -> Output {
    cmd.output().unwrap_or_else(|e| panic!("run {cmd:?}: {e}"))
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// `ip ARGS`, which must succeed; its stdout.
fn ip(args: &[&str]) -> String {
    let out = run(Command::new("ip").args(args));
    assert!(
        out.status.success(),
        "ip {args:?} failed: {}",
        text(&out.stderr)
    );
    text(&out.stdout)
}

/// Everything of the host's routing the demo must not touch.
fn host_routing() -> String {
    let rt_tables = std::fs::read_to_string("/etc/iproute2/rt_tables")
        .unwrap_or_else(|e| format!("(unreadable: {e})"));
    format!(
        "## ip rule\n{}\n## ip -6 rule\n{}\n## ip route show table all\n{}\n\
         ## ip -6 route show table all\n{}\n## rt_tables\n{rt_tables}",
        ip(&["rule"]),
        ip(&["-6", "rule"]),
        ip(&["route", "show", "table", "all"]),
        ip(&["-6", "route", "show", "table", "all"]),
    )
}

/// The `ip route get` answer the demo printed for a query starting with
/// `query` (e.g. "10.200.1.3 from").
fn answer<'a>(stdout: &'a str, query: &str) -> &'a str {
    let mut found = stdout
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with(query));
    let line = found
        .next()
        .unwrap_or_else(|| panic!("no answer for {query:?} in demo output:\n{stdout}"));
    assert!(
        found.next().is_none(),
        "several answers for {query:?}:\n{stdout}"
    );
    line
}

/// The priority of the one rule `lookup TABLE` (with `iif liqo-tunnel`)
/// that the demo printed for `table`.
fn tunnel_rule_priority(stdout: &str, table: &str) -> u32 {
    let suffix = format!(" iif liqo-tunnel lookup {table}");
    let rules: Vec<&str> = stdout
        .lines()
        .map(str::trim)
        .filter(|l| l.ends_with(&suffix))
        .collect();
    assert_eq!(rules.len(), 1, "rules for {table}: {rules:?}\n{stdout}");
    let (priority, _) = rules[0]
        .split_once(':')
        .unwrap_or_else(|| panic!("rule line without priority: {}", rules[0]));
    priority
        .parse()
        .unwrap_or_else(|e| panic!("rule priority {priority:?}: {e}"))
}

/// Runs `demo` and checks that the host did not change around it.
fn demo_leaving_host_alone(cmd: &mut Command) -> Output {
    let before = host_routing();
    let out = run(cmd);
    let after = host_routing();
    assert_eq!(
        before, after,
        "the host's rules, routes or rt_tables changed while the demo ran"
    );
    out
}

/// The answers every successful demo must give, whoever runs it.
fn assert_seed_answers(stdout: &str) {
    for table in TABLES {
        assert!(
            stdout.contains(&format!("\ntable {table} (")),
            "table {table} missing from demo output:\n{stdout}"
        );
    }
    // The seed's rome-worker-gw-node: Milan's traffic to a rome-worker pod
    // goes to that node's Geneve gateway.
    assert_eq!(
        answer(stdout, "10.200.1.3 from"),
        "10.200.1.3 from 10.61.0.5 via 10.80.0.2 dev liqo.zgdhd2x5fc table rome-worker iif liqo-tunnel"
    );
    assert_eq!(
        answer(stdout, "10.200.0.2 from"),
        "10.200.0.2 from 10.61.0.5 via 10.80.0.1 dev liqo.zqzt5nqktn table rome-control-plane iif liqo-tunnel"
    );
    // fwmark 2 marks NodePort replies for rome-worker.
    assert_eq!(
        answer(stdout, "10.70.0.0 from"),
        "10.70.0.0 from 10.61.0.5 via 10.80.0.2 dev liqo.zgdhd2x5fc table rome-worker-service-nodeport-routing iif liqo-tunnel mark 0x2"
    );
    // Traffic from a Rome node's Geneve interface to Milan's pod CIDR
    // leaves through the tunnel, to Milan's gateway.
    assert_eq!(
        answer(stdout, "10.200.2.10 from"),
        "10.200.2.10 from 10.200.1.11 via 169.254.18.1 dev liqo-tunnel table milan iif liqo.zgdhd2x5fc"
    );

    // Services: both extcidr tables hold 10.60.0.1 and 10.60.167.119 and
    // both select the same traffic (`iif liqo-tunnel`, no priority), so the
    // rule the kernel evaluates first wins. A rule added without priority
    // gets the number just below the first rule after `local` (0), i.e.
    // each later add is evaluated earlier. routecfg adds the rules of one
    // apply sorted by table id, and `routecfg table-id` gives
    // rome-worker-extcidr 56556319 and rome-control-plane-extcidr
    // 1203050351: the control-plane rule is added later, gets the smaller
    // number (32755 vs 32765 in a fresh namespace) and wins. The test reads
    // the priorities the kernel gave, requires the answer to come from the
    // rule with the smaller number, and pins the predicted winner.
    let worker = tunnel_rule_priority(stdout, "rome-worker-extcidr");
    let cplane = tunnel_rule_priority(stdout, "rome-control-plane-extcidr");
    assert!(
        cplane < worker,
        "expected rome-control-plane-extcidr's rule ({cplane}) before rome-worker-extcidr's ({worker})"
    );
    for service in ["10.60.167.119", "10.60.0.1"] {
        assert_eq!(
            answer(stdout, &format!("{service} from")),
            format!(
                "{service} from 10.61.0.5 via 10.80.0.1 dev liqo.zqzt5nqktn \
                 table rome-control-plane-extcidr iif liqo-tunnel"
            )
        );
    }
    // The same code as `routecfg explain` names who decided.
    assert!(
        stdout.contains(
            "decided by liqo/rome-worker-gw-node, table rome-worker (210412509): \
             rules[1].routes[0], targetRef Pod liqo/liqo-crd-replicator-6b9444849f-lk4f2"
        ),
        "{stdout}"
    );
    assert!(stdout.contains("routecfg apply -f"), "{stdout}");
    assert!(stdout.contains("routecfg run"), "{stdout}");
}

#[test]
fn demo_as_root_applies_the_seed_and_leaves_the_host_alone() {
    require_root();
    let out = demo_leaving_host_alone(Command::new(BIN).arg("demo"));
    let stdout = text(&out.stdout);
    assert!(
        out.status.success(),
        "demo failed ({:?}):\n{stdout}\n{}",
        out.status,
        text(&out.stderr)
    );
    assert!(
        stdout.contains("in a private network namespace:"),
        "{stdout}"
    );
    assert_seed_answers(&stdout);
}

#[test]
fn demo_json_reports_every_table_and_answer() {
    require_root();
    let out = demo_leaving_host_alone(Command::new(BIN).args(["demo", "--output", "json"]));
    assert!(
        out.status.success(),
        "demo -o json failed: {}",
        text(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("demo -o json is not JSON ({e}): {}", text(&out.stdout)));
    assert_eq!(v["ok"], true);
    let tables = v["tables"].as_array().expect("tables array");
    let names: Vec<&str> = tables.iter().filter_map(|t| t["name"].as_str()).collect();
    assert_eq!(names, TABLES);
    for t in tables {
        assert!(
            t["rules"].as_array().is_some_and(|r| !r.is_empty())
                && t["routes"].as_array().is_some_and(|r| !r.is_empty()),
            "table without rules or routes in the kernel: {t}"
        );
    }
    let worker = v["lookups"]
        .as_array()
        .expect("lookups array")
        .iter()
        .find(|l| l["query"] == "10.200.1.3 from 10.61.0.5 iif liqo-tunnel")
        .expect("lookup of 10.200.1.3");
    assert_eq!(worker["table"], "rome-worker");
    assert_eq!(worker["via"], "10.80.0.2");
    assert_eq!(worker["dev"], "liqo.zgdhd2x5fc");
}

/// A sysctl's value, `None` when this kernel has no such setting.
fn sysctl(path: &str) -> Option<String> {
    std::fs::read_to_string(path)
        .ok()
        .map(|s| s.trim().to_string())
}

/// Whether this machine lets an unprivileged process create user
/// namespaces, from the settings known to forbid it.
fn unprivileged_userns_allowed() -> bool {
    let debian_switch = sysctl("/proc/sys/kernel/unprivileged_userns_clone");
    let max = sysctl("/proc/sys/user/max_user_namespaces");
    let apparmor = sysctl("/proc/sys/kernel/apparmor_restrict_unprivileged_userns");
    debian_switch.is_none_or(|v| v != "0")
        && max.is_some_and(|v| v != "0")
        && apparmor.is_none_or(|v| v == "0")
}

/// A copy of the binary that uid 65534 can surely execute, whatever the
/// permissions along the build directory's path.
/// `tag` keeps the copies of tests running in parallel apart.
fn world_executable_copy(tag: &str) -> (PathBuf, PathBuf) {
    use std::os::unix::fs::PermissionsExt;
    let dir = std::env::temp_dir().join(format!("routecfg-demo-test-{}-{tag}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("mkdir {}: {e}", dir.display()));
    let bin = dir.join("routecfg");
    std::fs::copy(BIN, &bin).unwrap_or_else(|e| panic!("copy {BIN}: {e}"));
    for (path, mode) in [(&dir, 0o755), (&bin, 0o755)] {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
            .unwrap_or_else(|e| panic!("chmod {}: {e}", path.display()));
    }
    (dir, bin)
}

fn remove_dir(dir: &Path) {
    if let Err(e) = std::fs::remove_dir_all(dir) {
        eprintln!("warning: could not remove {}: {e}", dir.display());
    }
}

#[test]
fn demo_as_unprivileged_user_runs_or_says_what_it_needs() {
    require_root();
    let (dir, bin) = world_executable_copy("unprivileged");
    let out = demo_leaving_host_alone(
        Command::new("setpriv")
            .args(["--reuid", "65534", "--regid", "65534", "--clear-groups"])
            .arg(&bin)
            .arg("demo"),
    );
    remove_dir(&dir);
    let stdout = text(&out.stdout);
    let stderr = text(&out.stderr);
    if unprivileged_userns_allowed() {
        assert!(
            out.status.success(),
            "this machine allows unprivileged user namespaces, yet demo as uid 65534 \
             failed ({:?}):\n{stdout}\n{stderr}",
            out.status
        );
        assert!(
            stdout.contains("private user + network namespace (uid 65534"),
            "{stdout}"
        );
        assert_seed_answers(&stdout);
    } else {
        assert_says_what_it_needs(&out);
    }
}

/// The message the demo gives when no namespace can be made at all.
fn assert_says_what_it_needs(out: &Output) {
    let stderr = text(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(2),
        "demo must exit 2 when it cannot make a namespace:\n{}\n{stderr}",
        text(&out.stdout)
    );
    assert!(
        stderr.contains("cannot make a private network namespace")
            && stderr.contains("needs root, or unprivileged user namespaces")
            && stderr.contains("kernel.unprivileged_userns_clone=1"),
        "demo must say what it needs:\n{stderr}"
    );
}

#[test]
fn demo_without_a_way_to_a_namespace_exits_2_saying_what_it_needs() {
    require_root();
    let (dir, bin) = world_executable_copy("no-namespace");
    let max = sysctl("/proc/sys/user/max_user_namespaces");
    let out = if max.is_some_and(|v| v != "0") {
        // Inside a user namespace without uid mapping the demo runs as the
        // overflow uid (not root), and the kernel refuses that unmapped uid
        // a user namespace of its own (EPERM): the failure path, forced.
        demo_leaving_host_alone(Command::new("unshare").arg("--user").arg(&bin).arg("demo"))
    } else {
        // No user namespaces at all: any ordinary user gets the refusal.
        demo_leaving_host_alone(
            Command::new("setpriv")
                .args(["--reuid", "65534", "--regid", "65534", "--clear-groups"])
                .arg(&bin)
                .arg("demo"),
        )
    };
    remove_dir(&dir);
    assert_says_what_it_needs(&out);
}

#[test]
fn crd_prints_the_embedded_manifest() {
    // No root needed: `crd` only prints.
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/static/crd.yaml");
    let file = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {path}: {e}"));
    let out = run(Command::new(BIN).arg("crd"));
    assert!(out.status.success(), "crd failed: {}", text(&out.stderr));
    assert_eq!(text(&out.stdout).trim_end(), file.trim_end());
    let out = run(Command::new(BIN).args(["crd", "extra"]));
    assert_eq!(out.status.code(), Some(2), "crd must refuse arguments");
}
