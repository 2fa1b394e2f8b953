//! End-to-end tests of the `routecfg` CLI against a real kernel: the Rome
//! gateway of the seed, built from network namespaces (see
//! `common::netns::RomeTopology`), driven only through the binary.
//!
//! Needs root; every test except `table_id_*` fails loudly without it.
//! Every run passes `--rt-tables` with a file of the test's own, so the
//! host's /etc/iproute2/rt_tables is never touched. `ROUTECFG_BIN` runs
//! the same tests against another build of the binary.

mod common;

use common::netns::{KRoute, KRule, Netns, RomeTopology, describe, rome::*};
use ipnet::IpNet;
use routecfg::routing::Family;
use routecfg::table_id::table_id;
use serde_json::Value;
use serde_yaml_ng::Value as Yaml;
use std::collections::BTreeSet;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;

/// The binary under test: this crate's, unless `ROUTECFG_BIN` names
/// another build of it (e.g. the static release binary).
fn bin() -> String {
    std::env::var("ROUTECFG_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_routecfg").to_string())
}

/// The ownership mark of the CLI contract (rtm_protocol).
const OURS: u8 = 114;

/// What the tests put in the rt_tables file first: routecfg must keep it.
const FOREIGN_RT_TABLES: &str =
    "# written by the test; routecfg must keep these lines\n100\tforeign\n";

fn rome_gateway_dir() -> PathBuf {
    common::shared_dir().join("fixtures/rome/gateway")
}

fn fixture(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(relative)
}

// ---------------------------------------------------------------------------
// Test bed: topology + a private rt_tables file + the CLI.

static NEXT_TMP: AtomicUsize = AtomicUsize::new(0);

/// A scratch directory removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        let n = NEXT_TMP.fetch_add(1, Ordering::SeqCst);
        let path = std::env::temp_dir().join(format!("routecfg-{tag}-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&path)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", path.display()));
        TempDir(path)
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn write(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
}

struct Bed {
    topo: RomeTopology,
    tmp: TempDir,
    rt_tables: PathBuf,
}

impl Bed {
    fn new(tag: &str) -> Bed {
        let topo = RomeTopology::build();
        let tmp = TempDir::new(tag);
        let rt_tables = tmp.path().join("rt_tables");
        write(&rt_tables, FOREIGN_RT_TABLES);
        Bed {
            topo,
            tmp,
            rt_tables,
        }
    }

    fn gw(&self) -> &Netns {
        &self.topo.gateway
    }

    /// Runs the CLI inside the gateway namespace.
    fn routecfg(&self, args: &[&str]) -> Output {
        let bin = bin();
        let mut argv = vec![bin.as_str()];
        argv.extend_from_slice(args);
        self.gw().exec(&argv)
    }

    fn with_inputs<'a>(command: &'a str, paths: &'a [&'a Path], extra: &[&'a str]) -> Vec<&'a str> {
        let mut args = vec![command];
        for path in paths {
            let Some(path) = path.to_str() else {
                panic!("non-UTF-8 path {}", path.display());
            };
            args.extend_from_slice(&["-f", path]);
        }
        args.extend_from_slice(extra);
        args
    }

    fn rt_tables_arg(&self) -> &str {
        self.rt_tables
            .to_str()
            .unwrap_or_else(|| panic!("non-UTF-8 temp path"))
    }

    /// `routecfg apply -f ... --rt-tables <ours> extra...`
    fn apply(&self, paths: &[&Path], extra: &[&str]) -> Output {
        let mut args = Self::with_inputs("apply", paths, extra);
        args.extend_from_slice(&["--rt-tables", self.rt_tables_arg()]);
        self.routecfg(&args)
    }

    /// Applies with `--output json`, asserts exit 0, returns the report.
    fn apply_ok(&self, paths: &[&Path], extra: &[&str]) -> Report {
        let mut extra = extra.to_vec();
        extra.extend_from_slice(&["--output", "json"]);
        let out = self.apply(paths, &extra);
        assert!(out.status.success(), "apply failed:\n{}", describe(&out));
        Report::parse(&out)
    }

    fn diff(&self, paths: &[&Path], extra: &[&str]) -> Output {
        self.routecfg(&Self::with_inputs("diff", paths, extra))
    }

    fn cleanup(&self) -> Output {
        self.routecfg(&["cleanup", "--rt-tables", self.rt_tables_arg()])
    }

    fn rt_tables_text(&self) -> String {
        std::fs::read_to_string(&self.rt_tables)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", self.rt_tables.display()))
    }

    /// The (id, name) entries of the rt_tables file.
    fn rt_tables_entries(&self) -> BTreeSet<(u32, String)> {
        self.rt_tables_text()
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .map(|l| {
                // A trailing comment is allowed (iproute2 ignores it);
                // routecfg marks its own lines that way.
                let data = l.split('#').next().unwrap_or("");
                let mut words = data.split_whitespace();
                let id = words.next().and_then(|w| w.parse::<u32>().ok());
                match (id, words.next(), words.next()) {
                    (Some(id), Some(name), None) => (id, name.to_string()),
                    _ => panic!(
                        "malformed rt_tables line {l:?} in:\n{}",
                        self.rt_tables_text()
                    ),
                }
            })
            .collect()
    }
}

/// The JSON report of `apply --output json`.
struct Report {
    text: String,
    changes: u64,
}

impl Report {
    fn parse(out: &Output) -> Report {
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let json: Value = serde_json::from_str(&text).unwrap_or_else(|e| {
            panic!(
                "apply --output json printed no JSON ({e}):\n{}",
                describe(out)
            )
        });
        let Some(changes) = json.get("changes").and_then(Value::as_u64) else {
            panic!("report has no numeric top-level `changes`:\n{text}");
        };
        Report { text, changes }
    }
}

/// "rule" or "route" for a plan line of `diff` (`ip [-4|-6] rule ...`,
/// `ip [-6] route ...`), None for anything else.
fn plan_line_kind(line: &str) -> Option<&str> {
    let mut words = line.split_whitespace();
    if words.next() != Some("ip") {
        return None;
    }
    words
        .find(|w| !w.starts_with('-'))
        .filter(|w| *w == "rule" || *w == "route")
}

fn combined(out: &Output) -> String {
    format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

// ---------------------------------------------------------------------------
// What the kernel should hold, read independently from the YAML.

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct RuleKey {
    family: Family,
    src: Option<IpNet>,
    dst: Option<IpNet>,
    iif: Option<String>,
    oif: Option<String>,
    fwmark: Option<u32>,
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct RouteKey {
    dst: IpNet,
    gateway: Option<IpAddr>,
    dev: Option<String>,
    prefsrc: Option<IpAddr>,
    scope: u8,
    onlink: bool,
}

impl RuleKey {
    fn of(rule: &KRule) -> RuleKey {
        RuleKey {
            family: rule.family,
            src: rule.src,
            dst: rule.dst,
            iif: rule.iif.clone(),
            oif: rule.oif.clone(),
            fwmark: rule.fwmark,
        }
    }
}

impl RouteKey {
    fn of(route: &KRoute) -> RouteKey {
        RouteKey {
            dst: route.dst,
            gateway: route.gateway,
            dev: route.dev.clone(),
            prefsrc: route.prefsrc,
            scope: route.scope,
            onlink: route.onlink,
        }
    }
}

/// One RouteConfiguration as the kernel should show it.
#[derive(Clone, Debug)]
struct Expected {
    /// `namespace/name`
    object: String,
    table: String,
    id: u32,
    /// Sorted; the seed has no duplicates.
    rules: Vec<RuleKey>,
    /// Sorted and deduplicated: a table holds one route per dst, however
    /// many rules list it.
    routes: Vec<RouteKey>,
}

/// The link the kernel picks for a gateway of the test bed.
fn dev_via(gw: IpAddr) -> String {
    let link = match gw {
        IpAddr::V4(v4) if v4 == WORKER_GENEVE_IP => WORKER_LINK,
        IpAddr::V4(v4) if v4 == CONTROL_PLANE_GENEVE_IP => CONTROL_PLANE_LINK,
        IpAddr::V4(v4) if v4 == MILAN_TUNNEL_IP => TUNNEL,
        IpAddr::V6(v6) if v6 == MILAN_TUNNEL_IP6 => TUNNEL,
        other => panic!("the test bed has no link towards {other}"),
    };
    link.to_string()
}

fn scope_number(name: &str) -> u8 {
    match name {
        "global" => 0,
        "site" => 200,
        "link" => 253,
        "host" => 254,
        "nowhere" => 255,
        other => panic!("fixture scope {other:?}"),
    }
}

/// The YAML files of `path` (a file, or a directory's *.yaml sorted).
fn yaml_files(path: &Path) -> Vec<PathBuf> {
    if !path.is_dir() {
        return vec![path.to_path_buf()];
    }
    let entries =
        std::fs::read_dir(path).unwrap_or_else(|e| panic!("cannot list {}: {e}", path.display()));
    let mut files: Vec<PathBuf> = entries
        .map(|entry| {
            entry
                .unwrap_or_else(|e| panic!("cannot list {}: {e}", path.display()))
                .path()
        })
        .filter(|p| {
            p.extension()
                .is_some_and(|ext| ext == "yaml" || ext == "yml")
        })
        .collect();
    files.sort();
    files
}

fn expected_from(paths: &[&Path]) -> Vec<Expected> {
    paths
        .iter()
        .flat_map(|p| yaml_files(p))
        .map(|file| {
            let text = std::fs::read_to_string(&file)
                .unwrap_or_else(|e| panic!("cannot read {}: {e}", file.display()));
            let doc: Yaml = serde_yaml_ng::from_str(&text)
                .unwrap_or_else(|e| panic!("{} is not YAML: {e}", file.display()));
            expected_object(&file, &doc)
        })
        .collect()
}

fn expected_object(file: &Path, doc: &Yaml) -> Expected {
    let text = |v: &Yaml, what: &str| -> String {
        v.as_str()
            .unwrap_or_else(|| panic!("{}: {what} is not a string", file.display()))
            .to_string()
    };
    let net = |v: &Yaml| -> Option<IpNet> {
        v.as_str().map(|s| {
            s.parse::<IpNet>()
                .unwrap_or_else(|e| panic!("{}: bad CIDR {s}: {e}", file.display()))
        })
    };
    let addr = |v: &Yaml| -> Option<IpAddr> {
        v.as_str().map(|s| {
            s.parse::<IpAddr>()
                .unwrap_or_else(|e| panic!("{}: bad IP {s}: {e}", file.display()))
        })
    };
    let object = format!(
        "{}/{}",
        text(&doc["metadata"]["namespace"], "metadata.namespace"),
        text(&doc["metadata"]["name"], "metadata.name")
    );
    let table = text(&doc["spec"]["table"]["name"], "spec.table.name");
    let Some(rules_yaml) = doc["spec"]["table"]["rules"].as_sequence() else {
        panic!("{}: no spec.table.rules", file.display());
    };
    let mut rules = Vec::new();
    let mut routes = BTreeSet::new();
    for rule in rules_yaml {
        let Some(routes_yaml) = rule["routes"].as_sequence() else {
            panic!("{}: rule without routes", file.display());
        };
        let mut family = None;
        for route in routes_yaml {
            let Some(dst) = net(&route["dst"]) else {
                panic!("{}: route without dst", file.display());
            };
            let gateway = addr(&route["gw"]);
            let dev = match (route["dev"].as_str(), gateway) {
                (Some(dev), _) => Some(dev.to_string()),
                (None, Some(gw)) => Some(dev_via(gw)),
                (None, None) => None,
            };
            family = Some(Family::of_net(&dst));
            routes.insert(RouteKey {
                dst,
                gateway,
                dev,
                prefsrc: addr(&route["src"]),
                scope: route["scope"].as_str().map_or(0, scope_number),
                onlink: route["onlink"].as_bool().unwrap_or(false),
            });
        }
        let src = net(&rule["src"]);
        let dst = net(&rule["dst"]);
        let family = src
            .or(dst)
            .map(|n| Family::of_net(&n))
            .or(family)
            .unwrap_or_else(|| panic!("{}: rule of unknown family", file.display()));
        rules.push(RuleKey {
            family,
            src,
            dst,
            iif: rule["iif"].as_str().map(str::to_string),
            oif: rule["oif"].as_str().map(str::to_string),
            fwmark: rule["fwmark"].as_u64().map(|m| {
                u32::try_from(m).unwrap_or_else(|_| panic!("{}: fwmark {m}", file.display()))
            }),
        });
    }
    rules.sort();
    Expected {
        object,
        id: table_id(&table),
        table,
        rules,
        routes: routes.into_iter().collect(),
    }
}

/// Checks that each expected table holds exactly its rules and routes, all
/// carrying our mark, with no duplicates.
fn check_tables(gw: &Netns, expected: &[Expected]) -> Result<(), String> {
    let rules = gw.rules();
    let mut problems = Vec::new();
    for t in expected {
        let ours: Vec<&KRule> = rules.iter().filter(|r| r.table == t.id).collect();
        let mut keys: Vec<RuleKey> = ours.iter().map(|r| RuleKey::of(r)).collect();
        keys.sort();
        if keys != t.rules {
            problems.push(format!(
                "{} table {} ({}): rules\n  kernel:   {keys:?}\n  expected: {:?}",
                t.object, t.table, t.id, t.rules
            ));
        }
        if let Some(r) = ours.iter().find(|r| r.protocol != OURS) {
            problems.push(format!("{}: rule without our mark: {r:?}", t.object));
        }
        let routes = gw.routes(t.id);
        let mut keys: Vec<RouteKey> = routes.iter().map(RouteKey::of).collect();
        keys.sort();
        if keys != t.routes {
            problems.push(format!(
                "{} table {} ({}): routes\n  kernel:   {keys:?}\n  expected: {:?}",
                t.object, t.table, t.id, t.routes
            ));
        }
        if let Some(r) = routes
            .iter()
            .find(|r| r.protocol != OURS || r.kind != "unicast")
        {
            problems.push(format!(
                "{}: route not ours or not unicast: {r:?}",
                t.object
            ));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("\n"))
    }
}

fn assert_tables(gw: &Netns, expected: &[Expected]) {
    if let Err(problems) = check_tables(gw, expected) {
        panic!("kernel state differs from the input:\n{problems}");
    }
}

fn ids(expected: &[Expected]) -> Vec<u32> {
    expected.iter().map(|t| t.id).collect()
}

fn rt_entries(expected: &[Expected]) -> BTreeSet<(u32, String)> {
    expected.iter().map(|t| (t.id, t.table.clone())).collect()
}

fn foreign_rt_entries() -> BTreeSet<(u32, String)> {
    BTreeSet::from([(100, "foreign".to_string())])
}

/// Rules and routes routecfg does not own, in the gateway: a route in
/// main, a rule and routes of table 100, both families.
fn add_foreign_state(gw: &Netns) {
    gw.ip_line(&format!("route add 192.0.2.0/24 via {MILAN_TUNNEL_IP}"));
    gw.ip_line(&format!(
        "route add 198.51.100.0/24 via {MILAN_TUNNEL_IP} table 100"
    ));
    gw.ip_line("rule add to 198.51.100.0/24 table 100");
    gw.ip_line(&format!(
        "-6 route add fd00:99::/64 via {MILAN_TUNNEL_IP6} table 100"
    ));
    gw.ip_line("-6 rule add to fd00:99::/64 table 100");
}

fn assert_foreign_state(gw: &Netns) {
    let rules = gw.rules();
    let has_rule = |dst: &str| {
        rules
            .iter()
            .any(|r| r.table == 100 && r.dst.map(|d| d.to_string()).as_deref() == Some(dst))
    };
    assert!(
        has_rule("198.51.100.0/24"),
        "foreign IPv4 rule gone: {rules:#?}"
    );
    assert!(
        has_rule("fd00:99::/64"),
        "foreign IPv6 rule gone: {rules:#?}"
    );
    let table100: Vec<String> = gw.routes(100).iter().map(|r| r.dst.to_string()).collect();
    assert_eq!(
        table100,
        ["198.51.100.0/24", "fd00:99::/64"],
        "table 100 changed"
    );
    assert!(
        gw.routes(254)
            .iter()
            .any(|r| r.dst.to_string() == "192.0.2.0/24"),
        "foreign route in main gone"
    );
}

// ---------------------------------------------------------------------------
// Tests.

/// The seed's totals, so a broken oracle cannot make the tests vacuous.
const SEED_TABLES: usize = 7;
const SEED_RULES: usize = 12;
const SEED_ROUTES: usize = 20;

#[test]
fn apply_rome_gateway_in_one_call_matches_the_seed_and_carries_traffic() {
    let bed = Bed::new("seed");
    let dir = rome_gateway_dir();
    let expected = expected_from(&[&dir]);
    assert_eq!(expected.len(), SEED_TABLES);
    assert_eq!(
        expected.iter().map(|t| t.rules.len()).sum::<usize>(),
        SEED_RULES
    );
    assert_eq!(
        expected.iter().map(|t| t.routes.len()).sum::<usize>(),
        SEED_ROUTES
    );

    let worker_pod = WORKER_PODS[0];
    assert!(
        !bed.topo.milan.ping(worker_pod, 1),
        "reachable before apply"
    );
    assert!(
        !bed.topo.milan.ping(LIQO_PROXY_SERVICE_IP, 1),
        "reachable before apply"
    );
    assert!(
        !bed.topo.worker.ping(MILAN_POD, 1),
        "reachable before apply"
    );

    // One call: the extcidr and nodeport routes' gateways are reachable
    // only through the gw-node tables in the same input.
    let report = bed.apply_ok(&[&dir], &[]);
    assert_eq!(
        report.changes,
        (SEED_RULES + SEED_ROUTES) as u64,
        "one kernel change per rule and per distinct route:\n{}",
        report.text
    );
    for t in &expected {
        let name = t.object.rsplit('/').next().unwrap_or(&t.object);
        assert!(
            report.text.contains(name),
            "report does not mention {}:\n{}",
            t.object,
            report.text
        );
    }

    assert_tables(bed.gw(), &expected);
    let mut entries = foreign_rt_entries();
    entries.extend(rt_entries(&expected));
    assert_eq!(bed.rt_tables_entries(), entries);

    assert_eq!(
        bed.topo.route_from_milan(worker_pod),
        Some((
            210_412_509,
            Some(IpAddr::V4(WORKER_GENEVE_IP)),
            Some(WORKER_LINK.to_string())
        )),
        "a packet from Milan to {worker_pod} must take table rome-worker via 10.80.0.2"
    );
    for dst in [
        worker_pod,
        WORKER_PODS[3],
        CONTROL_PLANE_PODS[0],
        LIQO_PROXY_SERVICE_IP,
        KUBERNETES_SERVICE_IP,
    ] {
        assert!(
            bed.topo.milan.ping(dst, 3),
            "Milan cannot reach {dst} after apply"
        );
    }
    assert!(
        bed.topo.worker.ping(MILAN_POD, 3),
        "worker cannot reach Milan after apply"
    );
    assert!(
        bed.topo.control_plane.ping(MILAN_POD, 3),
        "control plane cannot reach Milan after apply"
    );
}

#[test]
fn diff_lists_the_plan_before_apply_and_is_clean_after() {
    let bed = Bed::new("diff");
    let dir = rome_gateway_dir();
    let before = bed.gw().state();

    let out = bed.diff(&[&dir], &[]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "diff with changes pending:\n{}",
        describe(&out)
    );
    let plan = String::from_utf8_lossy(&out.stdout);
    let count = |kind: &str| {
        plan.lines()
            .filter(|l| plan_line_kind(l) == Some(kind))
            .count()
    };
    assert_eq!(
        count("rule"),
        SEED_RULES,
        "one `ip rule` line per rule:\n{plan}"
    );
    assert_eq!(
        count("route"),
        SEED_ROUTES,
        "one `ip route` line per route:\n{plan}"
    );
    assert!(
        plan.lines().any(|l| plan_line_kind(l) == Some("route")
            && l.contains("10.200.1.3")
            && l.contains("210412509")),
        "the plan must show the route to 10.200.1.3 in table 210412509:\n{plan}"
    );
    assert_eq!(bed.gw().state(), before, "diff changed the kernel");

    bed.apply_ok(&[&dir], &[]);
    let out = bed.diff(&[&dir], &[]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "diff right after apply:\n{}",
        describe(&out)
    );
    let plan = String::from_utf8_lossy(&out.stdout);
    assert!(
        !plan.lines().any(|l| plan_line_kind(l).is_some()),
        "an in-sync diff lists no changes:\n{plan}"
    );

    let missing = bed.tmp.path().join("does-not-exist.yaml");
    let out = bed.diff(&[&missing], &[]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "diff of a missing file is an error:\n{}",
        describe(&out)
    );
}

#[test]
fn second_apply_changes_nothing() {
    let bed = Bed::new("idem");
    let dir = rome_gateway_dir();
    let first = bed.apply_ok(&[&dir], &[]);
    assert!(
        first.changes > 0,
        "first apply changed nothing:\n{}",
        first.text
    );
    let state = bed.gw().state();
    let rt_tables = bed.rt_tables_text();

    let second = bed.apply_ok(&[&dir], &[]);
    assert_eq!(
        second.changes, 0,
        "second apply made changes:\n{}",
        second.text
    );
    assert_eq!(bed.gw().state(), state, "second apply altered the kernel");
    assert_eq!(
        bed.rt_tables_text(),
        rt_tables,
        "second apply rewrote rt_tables"
    );
}

#[test]
fn apply_restores_exactly_what_was_deleted_by_hand() {
    let bed = Bed::new("drift");
    let dir = rome_gateway_dir();
    bed.apply_ok(&[&dir], &[]);
    let state = bed.gw().state();
    let worker = table_id("rome-worker").to_string();
    let pod = WORKER_PODS[0];

    bed.gw()
        .ip(&["route", "del", &format!("{pod}/32"), "table", &worker]);
    bed.gw()
        .ip(&["rule", "del", "iif", TUNNEL, "table", &worker]);
    assert!(!bed.topo.milan.ping(pod, 1), "drift did not break {pod}");

    let out = bed.diff(&[&dir], &[]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "diff after drift:\n{}",
        describe(&out)
    );
    let plan = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        plan.lines().filter(|l| plan_line_kind(l).is_some()).count(),
        2,
        "{plan}"
    );
    assert!(plan.contains(&pod.to_string()), "{plan}");

    let report = bed.apply_ok(&[&dir], &[]);
    assert_eq!(
        report.changes, 2,
        "exactly the two deleted objects:\n{}",
        report.text
    );
    // The kernel may pick a new priority for a re-added rule without one.
    assert_eq!(
        bed.gw().state().without_rule_priorities(),
        state.without_rule_priorities()
    );
    assert!(
        bed.topo.milan.ping(pod, 3),
        "{pod} unreachable after repair"
    );
}

#[test]
fn prune_removes_only_the_object_dropped_from_the_input() {
    let bed = Bed::new("prune");
    add_foreign_state(bed.gw());
    let dir = rome_gateway_dir();
    bed.apply_ok(&[&dir], &[]);
    let full_state = bed.gw().state();
    let full_entries = bed.rt_tables_entries();

    let dropped_file = "rome-worker-extcidr.yaml";
    let dropped = &expected_from(&[&dir.join(dropped_file)])[0];
    let subset = bed.tmp.path().join("subset");
    std::fs::create_dir_all(&subset).unwrap_or_else(|e| panic!("mkdir {}: {e}", subset.display()));
    for file in yaml_files(&dir) {
        let Some(name) = file.file_name() else {
            continue;
        };
        if name != dropped_file {
            std::fs::copy(&file, subset.join(name))
                .unwrap_or_else(|e| panic!("copy {}: {e}", file.display()));
        }
    }
    assert_eq!(yaml_files(&subset).len(), SEED_TABLES - 1);

    // Without --prune, an object missing from the input is left alone.
    let report = bed.apply_ok(&[&subset], &[]);
    assert_eq!(report.changes, 0, "{}", report.text);
    assert_eq!(bed.gw().state(), full_state);

    let report = bed.apply_ok(&[&subset], &["--prune"]);
    assert_eq!(
        report.changes,
        (dropped.rules.len() + dropped.routes.len()) as u64,
        "one delete per rule and route of {}:\n{}",
        dropped.object,
        report.text
    );
    assert!(
        bed.gw().rules().iter().all(|r| r.table != dropped.id),
        "rules of the pruned table left"
    );
    assert!(
        bed.gw().routes(dropped.id).is_empty(),
        "routes of the pruned table left"
    );
    assert_eq!(
        bed.gw().state(),
        full_state.without_tables(&[dropped.id]),
        "prune touched something besides table {}",
        dropped.table
    );
    let mut entries = full_entries.clone();
    entries.remove(&(dropped.id, dropped.table.clone()));
    assert_eq!(bed.rt_tables_entries(), entries);
    assert_foreign_state(bed.gw());
    // liqo-proxy stays reachable through the control plane's extcidr table.
    assert!(bed.topo.milan.ping(LIQO_PROXY_SERVICE_IP, 3));
}

/// One bad input: the file(s), the objects it must name, and what else the
/// message must mention (the field path).
struct BadCase {
    path: &'static str,
    objects: &'static [&'static str],
    mentions: &'static [&'static str],
}

const BAD_CASES: &[BadCase] = &[
    BadCase {
        path: "invalid/bad-gw-ip.yaml",
        objects: &["liqo/bad-gw-ip"],
        mentions: &["rules[0].routes[0].gw"],
    },
    BadCase {
        path: "invalid/missing-dst.yaml",
        objects: &["liqo/missing-dst"],
        mentions: &["rules[0].routes[0]", "dst"],
    },
    BadCase {
        path: "invalid/fwmark-out-of-range.yaml",
        objects: &["liqo/fwmark-out-of-range"],
        mentions: &["rules[0].fwmark"],
    },
    BadCase {
        path: "invalid/bad-scope.yaml",
        objects: &["liqo/bad-scope"],
        mentions: &["rules[0].routes[0].scope"],
    },
    BadCase {
        path: "invalid/iif-too-long.yaml",
        objects: &["liqo/iif-too-long"],
        mentions: &["rules[0].iif"],
    },
    BadCase {
        path: "invalid/duplicate-rule-selector.yaml",
        objects: &["liqo/duplicate-rule-selector"],
        mentions: &["rules[1]"],
    },
    BadCase {
        path: "invalid/conflicting-routes.yaml",
        objects: &["liqo/conflicting-routes"],
        mentions: &["rules[1].routes[0]", "dst"],
    },
    BadCase {
        path: "invalid/same-table-name",
        objects: &["liqo/same-table-a", "liqo/same-table-b"],
        mentions: &["shared-table"],
    },
];

/// A valid object given alongside each bad one: it must still be applied.
fn write_companion(dir: &Path, k: usize) -> Expected {
    let name = format!("companion-{k}");
    let path = dir.join(format!("{name}.yaml"));
    write(
        &path,
        &format!(
            "apiVersion: networking.liqo.io/v1beta1\n\
             kind: RouteConfiguration\n\
             metadata:\n  name: {name}\n  namespace: liqo\n  labels:\n    \
             networking.liqo.io/route-category: gateway\n    \
             networking.liqo.io/route-unique: milan\n\
             spec:\n  table:\n    name: {name}\n    rules:\n      \
             - dst: 10.99.{k}.0/24\n        iif: {WORKER_LINK}\n        routes:\n          \
             - dst: 10.99.{k}.0/24\n            gw: {MILAN_TUNNEL_IP}\n"
        ),
    );
    expected_from(&[&path]).remove(0)
}

fn check_bad_case(bed: &Bed, k: usize, case: &BadCase) -> Result<(), String> {
    let bad = fixture(case.path);
    let companion_dir = bed.tmp.path().join(format!("companion-{k}"));
    std::fs::create_dir_all(&companion_dir).map_err(|e| format!("mkdir: {e}"))?;
    let companion = write_companion(&companion_dir, k);
    let before = bed.gw().state();
    let entries_before = bed.rt_tables_entries();

    let out = bed.apply(&[&bad, &companion_dir], &[]);
    let text = combined(&out);
    let mut problems = Vec::new();
    if out.status.success() {
        problems.push("exit status 0 for an invalid object".to_string());
    }
    for needle in case.objects.iter().chain(case.mentions) {
        if !text.contains(needle) {
            problems.push(format!("output does not mention {needle:?}"));
        }
    }
    if let Err(e) = check_tables(bed.gw(), std::slice::from_ref(&companion)) {
        problems.push(format!("valid object in the same input not applied: {e}"));
    }

    // Two objects claiming one table: neither, or exactly one of them, may
    // own it; never a mixture.
    let claimed = if case.objects.len() > 1 {
        expected_from(&[&bad])
    } else {
        Vec::new()
    };
    let shared = ids(&claimed);
    let mut allowed_entries = entries_before.clone();
    allowed_entries.insert((companion.id, companion.table.clone()));
    if let Some(&id) = shared.first() {
        let untouched =
            bed.gw().rules().iter().all(|r| r.table != id) && bed.gw().routes(id).is_empty();
        let one_owner = claimed
            .iter()
            .any(|c| check_tables(bed.gw(), std::slice::from_ref(c)).is_ok());
        if !untouched && !one_owner {
            problems.push(format!(
                "table {id} holds a mixture of the conflicting objects"
            ));
        }
        if !untouched {
            allowed_entries.insert((id, claimed[0].table.clone()));
        }
    }
    let mut excluded = shared.clone();
    excluded.push(companion.id);
    if bed.gw().state().without_tables(&excluded) != before.without_tables(&excluded) {
        problems.push(format!(
            "kernel state outside table {} changed:\n  before: {:#?}\n  after:  {:#?}",
            companion.table,
            before.without_tables(&excluded),
            bed.gw().state().without_tables(&excluded)
        ));
    }
    let entries_after = bed.rt_tables_entries();
    if !entries_after.is_superset(&entries_before) || !entries_after.is_subset(&allowed_entries) {
        problems.push(format!(
            "rt_tables: before {entries_before:?}, after {entries_after:?}"
        ));
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "{}:\n  {}\n{}",
            case.path,
            problems.join("\n  "),
            describe(&out)
        ))
    }
}

#[test]
fn invalid_objects_are_named_refused_and_isolated() {
    let bed = Bed::new("invalid");
    bed.apply_ok(&[&rome_gateway_dir()], &[]);
    let failures: Vec<String> = BAD_CASES
        .iter()
        .enumerate()
        .filter_map(|(k, case)| check_bad_case(&bed, k, case).err())
        .collect();
    assert!(
        failures.is_empty(),
        "{} of {} bad inputs mishandled:\n\n{}",
        failures.len(),
        BAD_CASES.len(),
        failures.join("\n\n")
    );
}

#[test]
fn host_bits_in_a_route_dst_warn_and_apply_the_network() {
    let bed = Bed::new("hostbits");
    let path = fixture("warn/host-bits.yaml");
    let out = bed.apply(&[&path], &[]);
    assert!(
        out.status.success(),
        "host bits are a warning, not an error:\n{}",
        describe(&out)
    );
    let text = combined(&out);
    for needle in ["liqo/host-bits", "rules[0].routes[0].dst"] {
        assert!(
            text.contains(needle),
            "warning does not mention {needle}:\n{text}"
        );
    }
    let table = table_id("host-bits");
    let routes: Vec<(String, Option<IpAddr>, u8)> = bed
        .gw()
        .routes(table)
        .iter()
        .map(|r| (r.dst.to_string(), r.gateway, r.protocol))
        .collect();
    assert_eq!(
        routes,
        [(
            "10.98.1.0/24".to_string(),
            Some(IpAddr::V4(MILAN_TUNNEL_IP)),
            OURS
        )]
    );
    assert_eq!(
        bed.gw().rules().iter().filter(|r| r.table == table).count(),
        1
    );
    let out = bed.diff(&[&path], &[]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "masked route must count as in sync:\n{}",
        describe(&out)
    );
}

/// What the upstream controller leaves behind for rome-worker: the same
/// routes, stamped `proto boot`. Returns the table id and its dsts.
fn fill_rome_worker_with_boot_routes(gw: &Netns) -> (u32, BTreeSet<IpNet>) {
    let table = table_id("rome-worker");
    let node = WORKER_GENEVE_IP;
    gw.ip_line(&format!(
        "route add {node}/32 dev {WORKER_LINK} scope link table {table} proto boot"
    ));
    for pod in WORKER_PODS {
        gw.ip_line(&format!(
            "route add {pod}/32 via {node} table {table} proto boot"
        ));
    }
    let dsts = route_dsts(gw.routes(table));
    assert_eq!(dsts.len(), 1 + WORKER_PODS.len());
    (table, dsts)
}

fn route_dsts(routes: Vec<KRoute>) -> BTreeSet<IpNet> {
    routes.into_iter().map(|r| r.dst).collect()
}

/// What happened to a table while something took it over.
struct Witness {
    /// `ip monitor` lines reporting a deleted route of the table.
    deletions: Vec<String>,
    /// The table's dsts, dumped over and over while `act` ran.
    samples: Vec<BTreeSet<IpNet>>,
}

/// Runs `act` while watching `table` two ways: `ip monitor route` reports
/// every route deletion in the namespace (bracketed by marker routes, so
/// none is missed: deterministic), and a sampler dumps the table in a
/// loop, starting before `act` and taking a last dump after it.
fn watch_table(gw: &Netns, table: u32, act: impl FnOnce() -> Output) -> (Output, Witness) {
    let id = table.to_string();
    let mut monitor = gw.monitor_routes();
    monitor.sync(gw);
    let stop = AtomicBool::new(false);
    let (started_tx, started_rx) = mpsc::channel();
    let (out, samples) = std::thread::scope(|scope| {
        let sampler = scope.spawn(|| {
            let mut samples = Vec::new();
            loop {
                let stopping = stop.load(Ordering::SeqCst);
                samples.push(route_dsts(gw.routes(table)));
                if samples.len() == 1 {
                    let _ = started_tx.send(());
                }
                if stopping {
                    return samples;
                }
            }
        });
        let _ = started_rx.recv();
        let out = act();
        stop.store(true, Ordering::SeqCst);
        let samples = sampler
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        (out, samples)
    });
    let deletions = monitor
        .sync(gw)
        .into_iter()
        .filter(|l| l.starts_with("Deleted") && l.split_whitespace().any(|w| w == id))
        .collect();
    (out, Witness { deletions, samples })
}

#[test]
fn adopting_a_table_of_boot_routes_never_removes_a_route() {
    let bed = Bed::new("adopt");
    let gw = bed.gw();
    let path = rome_gateway_dir().join("rome-worker-gw-node.yaml");
    let expected = expected_from(&[&path]);
    let (table, all) = fill_rome_worker_with_boot_routes(gw);
    assert_eq!(expected[0].id, table);

    let (out, witness) = watch_table(gw, table, || bed.apply(&[&path], &[]));
    assert!(
        out.status.success(),
        "adoption apply failed:\n{}",
        describe(&out)
    );
    assert!(
        witness.deletions.is_empty(),
        "routes of table {table} were deleted during adoption: {:#?}",
        witness.deletions
    );
    eprintln!(
        "adoption: {} samples of table {table} taken while applying",
        witness.samples.len()
    );
    for (i, sample) in witness.samples.iter().enumerate() {
        assert_eq!(
            sample,
            &all,
            "sample {i} of {} misses routes",
            witness.samples.len()
        );
    }
    assert_tables(gw, &expected);
}

#[test]
fn adoption_witness_tells_replace_from_delete_and_add() {
    // Validates the witness above without routecfg: an in-place replace
    // leaves no trace, a delete-then-add takeover is caught.
    let topo = RomeTopology::build();
    let gw = &topo.gateway;
    let (table, all) = fill_rome_worker_with_boot_routes(gw);
    let id = table.to_string();
    let via = WORKER_GENEVE_IP.to_string();
    let batch = |lines: Vec<String>| {
        let file = TempDir::new("batch");
        let path = file.path().join("batch");
        write(&path, &lines.join("\n"));
        let out = gw.try_ip(&["-batch", &path.to_string_lossy()]);
        assert!(out.status.success(), "{}", describe(&out));
        out
    };
    let pods = |verb: &str| -> Vec<String> {
        WORKER_PODS
            .iter()
            .map(|pod| format!("route {verb} {pod}/32 via {via} table {id} proto 114"))
            .collect()
    };

    let (_, witness) = watch_table(gw, table, || batch(pods("replace")));
    assert!(witness.deletions.is_empty(), "{:#?}", witness.deletions);
    assert!(witness.samples.iter().all(|s| s == &all));

    let del_add: Vec<String> = WORKER_PODS
        .iter()
        .flat_map(|pod| {
            [
                format!("route del {pod}/32 table {id}"),
                format!("route add {pod}/32 via {via} table {id} proto 114"),
            ]
        })
        .collect();
    let (_, witness) = watch_table(gw, table, || batch(del_add));
    assert_eq!(
        witness.deletions.len(),
        WORKER_PODS.len(),
        "{:#?}",
        witness.deletions
    );
    assert_eq!(route_dsts(gw.routes(table)), all);
}

#[test]
fn expectations_match_a_hand_installed_seed_and_catch_differences() {
    // Validates the tests' reading of the YAML without routecfg: the seed
    // installed by hand with our mark satisfies it, and a missing route, a
    // duplicate rule or a foreign mark each break it.
    let topo = RomeTopology::build();
    let gw = &topo.gateway;
    let expected = expected_from(&[&rome_gateway_dir()]);
    topo.install_seed_by_hand("114");
    assert_tables(gw, &expected);

    let worker = table_id("rome-worker").to_string();
    gw.ip(&["route", "del", "10.200.1.3/32", "table", &worker]);
    let err = check_tables(gw, &expected).err();
    assert!(
        err.as_deref()
            .is_some_and(|e| e.contains("rome-worker-gw-node")),
        "{err:?}"
    );
    gw.ip_line(&format!(
        "route add 10.200.1.3/32 via 10.80.0.2 table {worker} proto 114"
    ));
    assert_tables(gw, &expected);

    gw.ip_line(&format!("rule add iif {TUNNEL} table {worker} proto 114"));
    assert!(
        check_tables(gw, &expected).is_err(),
        "duplicate rule not noticed"
    );
    gw.ip_line(&format!("rule del iif {TUNNEL} table {worker}"));
    assert_tables(gw, &expected);

    gw.ip_line(&format!(
        "route replace 10.200.1.3/32 via 10.80.0.2 table {worker} proto boot"
    ));
    assert!(
        check_tables(gw, &expected).is_err(),
        "foreign mark not noticed"
    );
}

#[test]
fn ipv6_table_applies_is_in_sync_and_cleanup_removes_all_ours() {
    let bed = Bed::new("ipv6");
    add_foreign_state(bed.gw());
    let before = bed.gw().state();
    let rome = rome_gateway_dir();
    let v6 = fixture("ipv6/milan-gw-ext-v6.yaml");
    let expected = expected_from(&[&rome, &v6]);
    let v6_table = expected.iter().find(|t| t.table == "milan-v6").cloned();
    let Some(v6_table) = v6_table else {
        panic!("fixture lost its table")
    };
    assert!(v6_table.rules.iter().all(|r| r.family == Family::V6));
    assert_eq!((v6_table.rules.len(), v6_table.routes.len()), (3, 3));

    let report = bed.apply_ok(&[&rome, &v6], &[]);
    assert!(report.changes > 0, "{}", report.text);
    assert_tables(bed.gw(), &expected);
    assert!(
        bed.rt_tables_entries()
            .contains(&(v6_table.id, v6_table.table.clone()))
    );

    let out = bed.diff(&[&v6], &[]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "IPv6 table not in sync after apply:\n{}",
        describe(&out)
    );

    let out = bed.cleanup();
    assert!(out.status.success(), "cleanup failed:\n{}", describe(&out));
    let after = bed.gw().state();
    assert!(
        after.rules.iter().all(|r| r.protocol != OURS),
        "marked rules left: {:#?}",
        after.rules
    );
    assert!(
        after.routes.iter().all(|r| r.protocol != OURS),
        "marked routes left: {:#?}",
        after.routes
    );
    assert_eq!(
        after, before,
        "cleanup must restore exactly the state before apply"
    );
    assert_eq!(bed.rt_tables_entries(), foreign_rt_entries());
    assert_foreign_state(bed.gw());
}

#[test]
fn table_id_prints_upstream_ids() {
    // Pure computation: no namespace or root needed.
    let out = common::netns::run(
        Command::new(bin()).args(["table-id", "rome-worker", "milan", "rome-control-plane"]),
        "routecfg table-id",
    );
    assert!(out.status.success(), "{}", describe(&out));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!(
            "210412509\trome-worker\n576843759\tmilan\n{}\trome-control-plane\n",
            table_id("rome-control-plane")
        )
    );
}
