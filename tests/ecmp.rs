//! ECMP (`routes[].nextHops`) in real network namespaces: objects go
//! through validation, the engine and netlink, and come back through a
//! kernel dump, so every assertion is about what the kernel really holds.
//!
//! NEEDS ROOT: each test creates its own namespace with `ip netns add` and
//! veth pairs inside it; the host's routing is never touched. Without root
//! the tests fail with a clear message.

mod common;

use common::netns::{Netns, require_root};
use routecfg::engine::{Engine, Report, Scope};
use routecfg::kernel::RouteFilter;
use routecfg::model::{RouteConfiguration, validate};
use routecfg::plan::{self, Prune};
use routecfg::routing::{DEFAULT_PROTOCOL, Route, Snapshot, Table};
use serde_json::{Value, json};

/// One object with one rule and the given routes, validated.
fn table(name: &str, routes: Value) -> Table {
    let obj: RouteConfiguration = serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": "liqo"},
        "spec": {"table": {"name": name, "rules": [{"iif": "in0", "routes": routes}]}}
    }))
    .expect("test object");
    validate(&obj, DEFAULT_PROTOCOL)
        .unwrap_or_else(|e| panic!("{e}"))
        .table
}

/// A namespace with two veth pairs: a0 (10.1.0.1/24, fd01::1/64) and a1
/// (10.2.0.1/24, fd02::1/64), peers b0 and b1, all up.
fn two_links() -> Netns {
    require_root();
    let ns = Netns::new("ecmp");
    for (a, b, v4, v6) in [
        ("a0", "b0", "10.1.0.1/24", "fd01::1/64"),
        ("a1", "b1", "10.2.0.1/24", "fd02::1/64"),
    ] {
        ns.ip(&["link", "add", a, "type", "veth", "peer", "name", b]);
        ns.ip(&["addr", "add", v4, "dev", a]);
        ns.ip(&["addr", "add", v6, "dev", a, "nodad"]);
        ns.ip(&["link", "set", a, "up"]);
        ns.ip(&["link", "set", b, "up"]);
    }
    ns
}

fn apply(ns: &Netns, desired: &[Table]) -> Report {
    ns.in_netns(|| {
        let mut engine = Engine::new(DEFAULT_PROTOCOL).expect("netlink");
        engine.apply(desired, &Scope::default()).expect("apply")
    })
}

/// What a fresh plan would do now: empty when the kernel matches.
fn replan(ns: &Netns, desired: &[Table]) -> plan::Plan {
    ns.in_netns(|| {
        let mut engine = Engine::new(DEFAULT_PROTOCOL).expect("netlink");
        engine.plan(desired, &Scope::default()).expect("plan")
    })
}

fn dump(ns: &Netns, table: u32) -> Vec<Route> {
    ns.in_netns(|| {
        let mut engine = Engine::new(DEFAULT_PROTOCOL).expect("netlink");
        engine
            .netlink()
            .dump_routes(RouteFilter {
                table: Some(table),
                protocol: None,
            })
            .expect("dump")
    })
}

/// `ip -j route show table T` for one family, as `ip` reports it.
fn ip_routes(ns: &Netns, family: &str, table: u32) -> Vec<Value> {
    ns.ip_json(&[family, "route", "show", "table", &table.to_string()])
}

/// (gateway, dev, weight) of each next hop `ip` shows, sorted.
fn ip_next_hops(route: &Value) -> Vec<(String, String, u64)> {
    let mut hops: Vec<_> = route["nexthops"]
        .as_array()
        .unwrap_or_else(|| panic!("no nexthops in {route}"))
        .iter()
        .map(|h| {
            (
                h["gateway"].as_str().unwrap_or("?").to_string(),
                h["dev"].as_str().unwrap_or("?").to_string(),
                h["weight"].as_u64().unwrap_or(0),
            )
        })
        .collect();
    hops.sort();
    hops
}

fn hop(gw: &str, dev: &str, weight: u64) -> (String, String, u64) {
    (gw.to_string(), dev.to_string(), weight)
}

fn assert_applied(report: &Report) {
    for t in &report.tables {
        assert!(t.applied(), "{t:?}");
    }
}

#[test]
fn ipv4_and_ipv6_weights_round_trip_as_the_kernel_reports_them() {
    let ns = two_links();
    let t = table(
        "ecmp-weights",
        json!([
            {"dst": "10.8.0.0/16", "nextHops": [
                {"gw": "10.2.0.2", "dev": "a1", "weight": 4},
                {"gw": "10.1.0.2", "dev": "a0"},
                {"gw": "10.1.0.2", "dev": "a0"}]},
            {"dst": "fd33::/64", "nextHops": [
                {"gw": "fd02::2", "dev": "a1", "weight": 255},
                {"gw": "fd01::2", "dev": "a0", "weight": 0}]}
        ]),
    );
    let report = apply(&ns, std::slice::from_ref(&t));
    assert_applied(&report);
    // A rule per family and the two routes.
    assert_eq!(report.tables[0].changes, 4);

    // The kernel weight is the API weight + 1; duplicates are kept.
    let v4 = ip_routes(&ns, "-4", t.id);
    assert_eq!(v4.len(), 1, "{v4:?}");
    assert!(v4[0].get("gateway").is_none() && v4[0].get("dev").is_none());
    assert_eq!(
        ip_next_hops(&v4[0]),
        vec![
            hop("10.1.0.2", "a0", 1),
            hop("10.1.0.2", "a0", 1),
            hop("10.2.0.2", "a1", 5)
        ]
    );
    // IPv6 multipath comes back as one route with RTA_MULTIPATH.
    let v6 = ip_routes(&ns, "-6", t.id);
    assert_eq!(v6.len(), 1, "{v6:?}");
    assert_eq!(
        ip_next_hops(&v6[0]),
        vec![hop("fd01::2", "a0", 1), hop("fd02::2", "a1", 256)]
    );

    // Our dump reads the same next hops, so a second pass is a no-op.
    let dumped = dump(&ns, t.id);
    assert_eq!(dumped.len(), 2, "{dumped:?}");
    for (got, want) in dumped.iter().zip(&t.routes) {
        assert_eq!(got.nexthops, want.nexthops, "{got:?}");
        assert_eq!((got.gateway, got.dev.as_deref()), (None, None));
    }
    let p = replan(&ns, std::slice::from_ref(&t));
    assert!(p.is_empty(), "{p:?}");
}

#[test]
fn next_hops_added_in_another_order_by_hand_are_already_right() {
    let ns = two_links();
    let t = table(
        "ecmp-order",
        json!([
            {"dst": "10.8.0.0/16", "nextHops": [
                {"gw": "10.1.0.2", "dev": "a0", "weight": 2},
                {"gw": "10.2.0.2", "dev": "a1"}]},
            {"dst": "fd33::/64", "nextHops": [
                {"gw": "fd01::2", "dev": "a0"},
                {"gw": "fd02::2", "dev": "a1", "weight": 9}]}
        ]),
    );
    let id = t.id.to_string();
    ns.ip_line(&format!(
        "route add 10.8.0.0/16 table {id} proto 114 \
         nexthop via 10.2.0.2 dev a1 weight 1 nexthop via 10.1.0.2 dev a0 weight 3"
    ));
    ns.ip_line(&format!(
        "-6 route add fd33::/64 table {id} proto 114 \
         nexthop via fd02::2 dev a1 weight 10 nexthop via fd01::2 dev a0 weight 1"
    ));
    let p = replan(&ns, std::slice::from_ref(&t));
    // Only the rules are missing: the routes are already right.
    assert!(p.pending.is_empty(), "{p:?}");
    assert!(
        p.ops
            .iter()
            .all(|op| matches!(op, routecfg::routing::Op::AddRule(_))),
        "{p:?}"
    );
}

#[test]
fn changed_next_hops_are_replaced_in_place_without_a_gap() {
    let ns = two_links();
    let before = table(
        "ecmp-replace",
        json!([
            {"dst": "10.8.0.0/16", "nextHops": [
                {"gw": "10.1.0.2", "dev": "a0"}, {"gw": "10.2.0.2", "dev": "a1"}]},
            {"dst": "fd33::/64", "nextHops": [
                {"gw": "fd01::2", "dev": "a0"}, {"gw": "fd02::2", "dev": "a1"}]}
        ]),
    );
    assert_applied(&apply(&ns, std::slice::from_ref(&before)));
    let id = before.id;

    let mut monitor = ns.monitor_routes();
    // A changed weight, gateway and device, each in turn, then back to a
    // plain route and to multipath again.
    let steps = [
        json!([
            {"dst": "10.8.0.0/16", "nextHops": [
                {"gw": "10.1.0.2", "dev": "a0", "weight": 7}, {"gw": "10.2.0.2", "dev": "a1"}]},
            {"dst": "fd33::/64", "nextHops": [
                {"gw": "fd01::2", "dev": "a0", "weight": 7}, {"gw": "fd02::2", "dev": "a1"}]}
        ]),
        json!([
            {"dst": "10.8.0.0/16", "nextHops": [
                {"gw": "10.1.0.3", "dev": "a0", "weight": 7}, {"gw": "10.2.0.2", "dev": "a1"}]},
            {"dst": "fd33::/64", "nextHops": [
                {"gw": "fd01::3", "dev": "a0", "weight": 7}, {"gw": "fd02::2", "dev": "a1"}]}
        ]),
        json!([
            {"dst": "10.8.0.0/16", "nextHops": [
                {"gw": "10.1.0.3", "dev": "a0", "weight": 7}, {"gw": "10.2.0.2", "dev": "a1"},
                {"gw": "10.2.0.3", "dev": "a1"}]},
            {"dst": "fd33::/64", "nextHops": [
                {"gw": "fd01::3", "dev": "a0", "weight": 7}, {"gw": "fd02::2", "dev": "a1"},
                {"gw": "fd02::3", "dev": "a1"}]}
        ]),
        json!([
            {"dst": "10.8.0.0/16", "gw": "10.1.0.2", "dev": "a0"},
            {"dst": "fd33::/64", "gw": "fd01::2", "dev": "a0"}
        ]),
        json!([
            {"dst": "10.8.0.0/16", "nextHops": [
                {"gw": "10.1.0.2", "dev": "a0"}, {"gw": "10.2.0.2", "dev": "a1", "weight": 1}]},
            {"dst": "fd33::/64", "nextHops": [
                {"gw": "fd01::2", "dev": "a0"}, {"gw": "fd02::2", "dev": "a1", "weight": 1}]}
        ]),
    ];
    for routes in steps {
        let t = table("ecmp-replace", routes.clone());
        let p = replan(&ns, std::slice::from_ref(&t));
        // Two create-or-replace ops, no delete.
        assert_eq!(p.ops.len(), 2, "{routes}: {p:?}");
        assert!(
            p.ops
                .iter()
                .all(|op| matches!(op, routecfg::routing::Op::ReplaceRoute(_))),
            "{p:?}"
        );
        monitor.sync(&ns);
        assert_applied(&apply(&ns, std::slice::from_ref(&t)));
        let events = monitor.sync(&ns);
        assert!(
            !events.iter().any(|e| e.starts_with("Deleted")),
            "{routes}: the kernel reported a deletion: {events:#?}"
        );
        assert!(!events.is_empty(), "no route events for {routes}");
        let p = replan(&ns, std::slice::from_ref(&t));
        assert!(p.is_empty(), "{routes}: not converged: {p:?}");
        assert_eq!(dump(&ns, id).len(), 2);
    }
}

#[test]
fn a_missing_next_hop_link_waits_and_is_applied_when_it_appears() {
    let ns = two_links();
    let t = table(
        "ecmp-late",
        json!([
            // The route-level dev names a link that never exists: ignored.
            {"dst": "10.8.0.0/16", "dev": "never0", "nextHops": [
                {"gw": "10.1.0.2", "dev": "a0"}, {"gw": "10.9.0.2", "dev": "late0", "weight": 3}]},
            {"dst": "10.7.0.0/16", "dev": "never0", "nextHops": [
                {"gw": "10.1.0.2", "dev": "a0"}, {"gw": "10.2.0.2", "dev": "a1"}]}
        ]),
    );
    let report = apply(&ns, std::slice::from_ref(&t));
    let r = &report.tables[0];
    assert_eq!(r.pending, vec!["link late0 not found".to_string()], "{r:?}");
    assert!(r.errors.is_empty(), "{r:?}");
    // The rule and the other route are applied.
    assert_eq!(r.changes, 2, "{r:?}");
    assert_eq!(dump(&ns, t.id).len(), 1);

    ns.ip(&[
        "link", "add", "late0", "type", "veth", "peer", "name", "late1",
    ]);
    ns.ip(&["addr", "add", "10.9.0.1/24", "dev", "late0"]);
    ns.ip(&["link", "set", "late0", "up"]);
    ns.ip(&["link", "set", "late1", "up"]);
    let report = apply(&ns, std::slice::from_ref(&t));
    assert_applied(&report);
    assert_eq!(report.tables[0].changes, 1);
    let v4 = ip_routes(&ns, "-4", t.id);
    let late = v4
        .iter()
        .find(|r| r["dst"] == "10.8.0.0/16")
        .unwrap_or_else(|| panic!("{v4:?}"));
    assert_eq!(
        ip_next_hops(late),
        vec![hop("10.1.0.2", "a0", 1), hop("10.9.0.2", "late0", 4)]
    );
    assert!(replan(&ns, std::slice::from_ref(&t)).is_empty());
}

#[test]
fn a_single_next_hop_is_stored_and_compared_as_a_plain_route() {
    let ns = two_links();
    let t = table(
        "ecmp-single",
        json!([
            {"dst": "10.8.0.0/16", "nextHops": [{"gw": "10.1.0.2", "dev": "a0", "weight": 3}]},
            {"dst": "fd33::/64", "nextHops": [{"gw": "fd02::2", "dev": "a1"}]}
        ]),
    );
    assert_applied(&apply(&ns, std::slice::from_ref(&t)));
    let v4 = ip_routes(&ns, "-4", t.id);
    assert_eq!(
        (v4[0]["gateway"].as_str(), v4[0]["dev"].as_str()),
        (Some("10.1.0.2"), Some("a0")),
        "{v4:?}"
    );
    assert!(v4[0].get("nexthops").is_none(), "{v4:?}");
    let v6 = ip_routes(&ns, "-6", t.id);
    assert_eq!(
        (v6[0]["gateway"].as_str(), v6[0]["dev"].as_str()),
        (Some("fd02::2"), Some("a1")),
        "{v6:?}"
    );
    assert!(replan(&ns, std::slice::from_ref(&t)).is_empty());
}

#[test]
fn multipath_routes_of_a_removed_table_are_deleted_whole() {
    let ns = two_links();
    let t = table(
        "ecmp-gone",
        json!([
            {"dst": "10.8.0.0/16", "nextHops": [
                {"gw": "10.1.0.2", "dev": "a0"}, {"gw": "10.2.0.2", "dev": "a1"}]},
            {"dst": "fd33::/64", "nextHops": [
                {"gw": "fd01::2", "dev": "a0"}, {"gw": "fd02::2", "dev": "a1"},
                {"gw": "fd02::3", "dev": "a1"}]}
        ]),
    );
    assert_applied(&apply(&ns, std::slice::from_ref(&t)));
    assert_eq!(dump(&ns, t.id).len(), 2);
    // The object is gone: prune what carries our mark.
    let snapshot = Snapshot {
        routes: dump(&ns, t.id),
        dumped_tables: vec![t.id],
        ..Snapshot::default()
    };
    let p = plan::plan(
        &[],
        &snapshot,
        Prune::Owned {
            protocol: DEFAULT_PROTOCOL,
        },
    );
    assert_eq!(p.ops.len(), 2, "{p:?}");
    let results = ns.in_netns(|| {
        let mut engine = Engine::new(DEFAULT_PROTOCOL).expect("netlink");
        engine.netlink().execute(&p.ops)
    });
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    assert!(ip_routes(&ns, "-4", t.id).is_empty());
    assert!(ip_routes(&ns, "-6", t.id).is_empty());
}

#[test]
fn the_kernel_refuses_duplicate_ipv6_next_hops_which_validation_catches() {
    let ns = two_links();
    // Why validation refuses what IPv4 accepts: the kernel says EEXIST.
    let out = ns.try_ip(&[
        "-6",
        "route",
        "add",
        "fd33::/64",
        "table",
        "77",
        "nexthop",
        "via",
        "fd01::2",
        "dev",
        "a0",
        "nexthop",
        "via",
        "fd01::2",
        "dev",
        "a0",
    ]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("File exists"),
        "{out:?}"
    );
    let obj: RouteConfiguration = serde_json::from_value(json!({
        "metadata": {"name": "dup", "namespace": "liqo"},
        "spec": {"table": {"name": "dup", "rules": [{"iif": "a0", "routes": [
            {"dst": "fd33::/64", "nextHops": [
                {"gw": "fd01::2", "dev": "a0"}, {"gw": "fd01::2", "dev": "a0", "weight": 1}]}]}]}}
    }))
    .expect("object");
    let e = validate(&obj, DEFAULT_PROTOCOL).expect_err("duplicate IPv6 next hop");
    assert_eq!(e.field, "spec.table.rules[0].routes[0].nextHops[1]");
}

#[test]
fn the_kernel_ignores_a_route_level_onlink_on_next_hops_which_validation_mirrors() {
    let ns = two_links();
    // 192.168.9.1 is on no link: only onlink can make it a gateway.
    let plain = ns.try_ip(&[
        "route",
        "add",
        "10.11.0.0/16",
        "via",
        "192.168.9.1",
        "dev",
        "a0",
        "onlink",
        "table",
        "77",
    ]);
    assert!(plain.status.success(), "{plain:?}");
    for hops in [
        &["nexthop", "via", "192.168.9.1", "dev", "a0"][..],
        &[
            "nexthop",
            "via",
            "192.168.9.1",
            "dev",
            "a0",
            "nexthop",
            "via",
            "192.168.9.2",
            "dev",
            "a0",
        ][..],
    ] {
        let mut args = vec!["route", "add", "10.8.0.0/16", "table", "77", "onlink"];
        args.extend_from_slice(hops);
        let out = ns.try_ip(&args);
        assert!(!out.status.success(), "onlink was honoured: {out:?}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("Nexthop has invalid gateway"),
            "{out:?}"
        );
    }
    let t = table(
        "ecmp-onlink",
        json!([{"dst": "10.8.0.0/16", "onlink": true, "nextHops": [
            {"gw": "10.1.0.2", "dev": "a0"}, {"gw": "10.2.0.2", "dev": "a1"}]}]),
    );
    assert!(!t.routes[0].onlink);
    assert_applied(&apply(&ns, std::slice::from_ref(&t)));
    assert!(replan(&ns, std::slice::from_ref(&t)).is_empty());
}

#[test]
fn diff_prints_next_hops_as_ip_reads_them_and_apply_converges() {
    let ns = two_links();
    let dir = std::env::temp_dir().join(format!("routecfg-ecmp-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let file = dir.join("ecmp.yaml");
    std::fs::write(
        &file,
        "apiVersion: networking.liqo.io/v1beta1\n\
         kind: RouteConfiguration\n\
         metadata: {name: ecmp-cli, namespace: liqo}\n\
         spec:\n  table:\n    name: ecmp-cli\n    rules:\n    - iif: in0\n      routes:\n\
         \x20     - dst: 10.8.0.0/16\n        nextHops:\n\
         \x20       - {gw: 10.2.0.2, dev: a1, weight: 4}\n\
         \x20       - {gw: 10.1.0.2, dev: a0}\n",
    )
    .expect("write object");
    let file = file.display().to_string();
    let bin = env!("CARGO_BIN_EXE_routecfg");
    let routecfg = |cmd: &str| ns.exec(&[bin, cmd, "-f", &file]);

    let diff = routecfg("diff");
    let stdout = String::from_utf8_lossy(&diff.stdout).into_owned();
    let line = stdout
        .lines()
        .find(|l| l.contains("10.8.0.0/16"))
        .unwrap_or_else(|| panic!("no route line in {stdout}"));
    let command = line.split("  #").next().unwrap_or(line);
    assert!(
        command
            .ends_with("nexthop via 10.1.0.2 dev a0 weight 1 nexthop via 10.2.0.2 dev a1 weight 5"),
        "{line}"
    );
    // The printed command, run by hand, gives the kernel what apply would.
    let args: Vec<&str> = command.split_whitespace().skip(1).collect();
    ns.ip(&args);
    let t = table(
        "ecmp-cli",
        json!([{"dst": "10.8.0.0/16", "nextHops": [
            {"gw": "10.2.0.2", "dev": "a1", "weight": 4}, {"gw": "10.1.0.2", "dev": "a0"}]}]),
    );
    let p = replan(&ns, std::slice::from_ref(&t));
    assert!(
        p.ops
            .iter()
            .all(|op| matches!(op, routecfg::routing::Op::AddRule(_))),
        "{p:?}"
    );

    let apply = routecfg("apply");
    assert!(apply.status.success(), "{apply:?}");
    let diff = routecfg("diff");
    assert!(diff.status.success(), "still out of sync: {diff:?}");
    std::fs::remove_dir_all(&dir).ok();
}
