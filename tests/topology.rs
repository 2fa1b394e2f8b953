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
    let is_listed = |list: &str| list.lines().any(|l| l.split_whitespace().next() == Some(&name));
    assert!(is_listed(&listed_namespaces()), "{name} not created");
    let lo = ns.ip(&["-br", "link", "show", "lo"]);
    assert!(lo.contains("UP") || lo.contains("UNKNOWN"), "lo not up in {name}: {lo}");
    drop(ns);
    assert!(!is_listed(&listed_namespaces()), "{name} still exists after drop");
}

/// Installs the seed's gateway tables with plain `ip` commands, in an
/// order where every gateway is resolvable when its route is added: the
/// gw-node tables first (they make 10.80.0.x reachable), then the rest.
fn install_seed_by_hand(gw: &Netns) {
    let id = |name: &str| table_id(name).to_string();
    let add_rule = |args: &[&str], table: &str| {
        let mut full = vec!["rule", "add"];
        full.extend_from_slice(args);
        full.extend_from_slice(&["table", table]);
        gw.ip(&full);
    };
    let add_route = |args: &[&str], table: &str| {
        let mut full = vec!["route", "replace"];
        full.extend_from_slice(args);
        full.extend_from_slice(&["table", table]);
        gw.ip(&full);
    };

    for (name, link, node_ip, pods) in [
        ("rome-worker", WORKER_LINK, WORKER_GENEVE_IP, &WORKER_PODS[..]),
        ("rome-control-plane", CONTROL_PLANE_LINK, CONTROL_PLANE_GENEVE_IP, &CONTROL_PLANE_PODS[..]),
    ] {
        let table = id(name);
        let node = format!("{node_ip}/32");
        add_rule(&["to", &node], &table);
        add_route(&[&node, "dev", link, "scope", "link"], &table);
        add_rule(&["iif", TUNNEL], &table);
        for pod in pods {
            add_route(&[&format!("{pod}/32"), "via", &node_ip.to_string()], &table);
        }
    }
    for (name, link, node_ip) in [
        ("rome-worker-extcidr", WORKER_LINK, WORKER_GENEVE_IP),
        ("rome-control-plane-extcidr", CONTROL_PLANE_LINK, CONTROL_PLANE_GENEVE_IP),
    ] {
        let table = id(name);
        add_rule(&["iif", TUNNEL], &table);
        for svc in [KUBERNETES_SERVICE_IP, LIQO_PROXY_SERVICE_IP] {
            let dst = format!("{svc}/32");
            add_route(&[&dst, "via", &node_ip.to_string(), "dev", link], &table);
        }
    }
    for (name, mark, link, node_ip) in [
        ("rome-control-plane-service-nodeport-routing", "1", CONTROL_PLANE_LINK, CONTROL_PLANE_GENEVE_IP),
        ("rome-worker-service-nodeport-routing", "2", WORKER_LINK, WORKER_GENEVE_IP),
    ] {
        let table = id(name);
        add_rule(&["to", "10.70.0.0/32", "fwmark", mark], &table);
        add_route(&["10.70.0.0/32", "via", &node_ip.to_string(), "dev", link], &table);
    }
    let milan = id("milan");
    for link in [CONTROL_PLANE_LINK, WORKER_LINK] {
        for net in ["10.200.0.0/16", "10.70.0.0/16"] {
            add_rule(&["to", net, "iif", link], &milan);
            add_route(&[net, "via", &MILAN_TUNNEL_IP.to_string()], &milan);
        }
    }
}

#[test]
fn rome_test_bed_carries_traffic_only_with_the_seed_tables() {
    let topo = RomeTopology::build();
    let worker_pod = WORKER_PODS[0];
    let cp_pod = CONTROL_PLANE_PODS[0];

    // Without policy routing nothing crosses the gateway, and the gateway
    // has no connected route to the nodes' Geneve ends.
    assert!(!topo.milan.ping(worker_pod, 1), "Milan reached {worker_pod} without any rule");
    assert!(!topo.milan.ping(cp_pod, 1), "Milan reached {cp_pod} without any rule");
    assert!(!topo.milan.ping(LIQO_PROXY_SERVICE_IP, 1), "Milan reached liqo-proxy without any rule");
    assert!(!topo.worker.ping(MILAN_POD, 1), "worker reached Milan without any rule");
    assert_eq!(topo.route_from_milan(worker_pod), None, "gateway already routes {worker_pod}");
    assert!(
        !topo.gateway.try_ip(&["route", "get", &WORKER_GENEVE_IP.to_string()]).status.success(),
        "gateway has a route to {WORKER_GENEVE_IP} of its own: tests would pass without routecfg"
    );
    // The tunnel itself works.
    assert!(topo.milan.ping(GATEWAY_TUNNEL_IP, 3), "tunnel link is down");

    install_seed_by_hand(&topo.gateway);

    let worker_table = table_id("rome-worker");
    assert_eq!(
        topo.route_from_milan(worker_pod),
        Some((worker_table, Some(IpAddr::V4(WORKER_GENEVE_IP)), Some(WORKER_LINK.to_string())))
    );
    assert_eq!(
        topo.route_from_milan(cp_pod),
        Some((
            table_id("rome-control-plane"),
            Some(IpAddr::V4(CONTROL_PLANE_GENEVE_IP)),
            Some(CONTROL_PLANE_LINK.to_string())
        ))
    );
    for dst in [worker_pod, WORKER_PODS[3], cp_pod, LIQO_PROXY_SERVICE_IP, KUBERNETES_SERVICE_IP] {
        assert!(topo.milan.ping(dst, 3), "Milan cannot reach {dst} with the seed installed");
    }
    assert!(topo.worker.ping(MILAN_POD, 3), "worker cannot reach Milan through table milan");
    assert!(topo.control_plane.ping(MILAN_POD, 3), "control plane cannot reach Milan");

    // Negative control: the `iif liqo-tunnel` rule is what carries Milan's
    // traffic to the worker's pods, nothing else in the bed.
    topo.gateway.ip(&["rule", "del", "iif", TUNNEL, "table", &worker_table.to_string()]);
    assert!(
        !topo.milan.ping(worker_pod, 1),
        "Milan still reaches {worker_pod} without the seed's rule"
    );
    assert!(topo.milan.ping(cp_pod, 3), "control plane pods must be unaffected");
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
    assert!(!a.ping(peer, 1), "a peer whose link is down must not answer");
}
