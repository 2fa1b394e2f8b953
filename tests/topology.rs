//! Validates the namespace test bed itself, without routecfg: the Rome
//! topology must carry traffic exactly when the seed's rules and routes are
//! installed on the gateway, otherwise the engine tests built on it would
//! prove nothing. Needs root; fails loudly without it.

mod common;

use common::netns::{Netns, RomeTopology, require_root, rome::*};
use routecfg::table_id::table_id;
use std::net::{IpAddr, Ipv4Addr};
use std::process::Command;

fn listed_namespaces() -> String {
    let out = common::netns::run(Command::new("ip").args(["netns", "list"]), "ip netns list");
    assert!(out.status.success(), "{}", common::netns::describe(&out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn namespace_guard_deletes_its_namespace_on_drop() {
    require_root();
    let ns = Netns::new("guard");
    let name = ns.name().to_string();
    assert!(name.starts_with("rcfg-guard-"), "{name}");
    let is_listed = |list: &str| {
        list.lines()
            .any(|l| l.split_whitespace().next() == Some(&name))
    };
    assert!(is_listed(&listed_namespaces()), "{name} not created");
    let lo = ns.ip(&["-br", "link", "show", "lo"]);
    assert!(
        lo.contains("UP") || lo.contains("UNKNOWN"),
        "lo not up in {name}: {lo}"
    );
    drop(ns);
    assert!(
        !is_listed(&listed_namespaces()),
        "{name} still exists after drop"
    );
}

#[test]
fn rome_test_bed_carries_traffic_only_with_the_seed_tables() {
    let topo = RomeTopology::build();
    let worker_pod = WORKER_PODS[0];
    let cp_pod = CONTROL_PLANE_PODS[0];

    // Without policy routing nothing crosses the gateway, and the gateway
    // has no connected route to the nodes' Geneve ends.
    assert!(
        !topo.milan.ping(worker_pod, 1),
        "Milan reached {worker_pod} without any rule"
    );
    assert!(
        !topo.milan.ping(cp_pod, 1),
        "Milan reached {cp_pod} without any rule"
    );
    assert!(
        !topo.milan.ping(LIQO_PROXY_SERVICE_IP, 1),
        "Milan reached liqo-proxy without any rule"
    );
    assert!(
        !topo.worker.ping(MILAN_POD, 1),
        "worker reached Milan without any rule"
    );
    assert_eq!(
        topo.route_from_milan(worker_pod),
        None,
        "gateway already routes {worker_pod}"
    );
    assert!(
        !topo
            .gateway
            .try_ip(&["route", "get", &WORKER_GENEVE_IP.to_string()])
            .status
            .success(),
        "gateway has a route to {WORKER_GENEVE_IP} of its own: tests would pass without routecfg"
    );
    // The tunnel itself works.
    assert!(topo.milan.ping(GATEWAY_TUNNEL_IP, 3), "tunnel link is down");

    topo.install_seed_by_hand("boot");

    let worker_table = table_id("rome-worker");
    assert_eq!(
        topo.route_from_milan(worker_pod),
        Some((
            worker_table,
            Some(IpAddr::V4(WORKER_GENEVE_IP)),
            Some(WORKER_LINK.to_string())
        ))
    );
    assert_eq!(
        topo.route_from_milan(cp_pod),
        Some((
            table_id("rome-control-plane"),
            Some(IpAddr::V4(CONTROL_PLANE_GENEVE_IP)),
            Some(CONTROL_PLANE_LINK.to_string())
        ))
    );
    for dst in [
        worker_pod,
        WORKER_PODS[3],
        cp_pod,
        LIQO_PROXY_SERVICE_IP,
        KUBERNETES_SERVICE_IP,
    ] {
        assert!(
            topo.milan.ping(dst, 3),
            "Milan cannot reach {dst} with the seed installed"
        );
    }
    assert!(
        topo.worker.ping(MILAN_POD, 3),
        "worker cannot reach Milan through table milan"
    );
    assert!(
        topo.control_plane.ping(MILAN_POD, 3),
        "control plane cannot reach Milan"
    );

    // Negative control: the `iif liqo-tunnel` rule is what carries Milan's
    // traffic to the worker's pods, nothing else in the bed.
    topo.gateway.ip(&[
        "rule",
        "del",
        "iif",
        TUNNEL,
        "table",
        &worker_table.to_string(),
    ]);
    assert!(
        !topo.milan.ping(worker_pod, 1),
        "Milan still reaches {worker_pod} without the seed's rule"
    );
    assert!(
        topo.milan.ping(cp_pod, 3),
        "control plane pods must be unaffected"
    );
}

#[test]
fn ping_helper_reports_unanswered_echo_as_failure() {
    require_root();
    let a = Netns::new("pinga");
    let b = Netns::new("pingb");
    common::netns::veth(&a, "left", &b, "right");
    a.ip(&["addr", "add", "192.0.2.1/24", "dev", "left"]);
    b.ip(&["addr", "add", "192.0.2.2/24", "dev", "right"]);
    let peer = Ipv4Addr::new(192, 0, 2, 2);
    assert!(a.ping(peer, 3), "directly connected peer must answer");
    b.ip(&["link", "set", "right", "down"]);
    assert!(
        !a.ping(peer, 1),
        "a peer whose link is down must not answer"
    );
}

#[test]
fn kernel_state_snapshot_sees_what_it_compares() {
    // Guards the engine tests' comparisons: a snapshot must change when a rule or
    // route changes, or `assert_eq!(state, before)` would prove nothing.
    let topo = RomeTopology::build();
    let gw = &topo.gateway;
    let before = gw.state();
    gw.ip(&[
        "route",
        "add",
        "203.0.113.0/24",
        "via",
        &MILAN_TUNNEL_IP.to_string(),
        "table",
        "7",
    ]);
    let with_route = gw.state();
    assert_ne!(with_route, before);
    assert_eq!(with_route.without_tables(&[7]), before);
    gw.ip(&[
        "rule",
        "add",
        "to",
        "203.0.113.0/24",
        "table",
        "7",
        "proto",
        "114",
    ]);
    let with_rule = gw.state();
    assert_ne!(with_rule, with_route);
    let rule = with_rule.rules.iter().find(|r| r.table == 7).cloned();
    assert_eq!(
        rule.map(|r| (r.protocol, r.dst.map(|d| d.to_string()))),
        Some((114, Some("203.0.113.0/24".to_string())))
    );
    assert_eq!(with_rule.without_tables(&[7]), before);
}
