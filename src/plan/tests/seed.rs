//! The seed's Rome gateway (after peering with Milan) end to end against
//! the toy kernel: one batch, no ENETUNREACH, and a second pass is a no-op.

use super::sim::Kernel;
use super::*;
use crate::table_id::table_id;

const WORKER_DEV: &str = "liqo.zgdhd2x5fc";
const CP_DEV: &str = "liqo.zqzt5nqktn";
const TUNNEL: &str = "liqo-tunnel";

fn named(name: &str, rules: Vec<Rule>, routes: Vec<Route>) -> Table {
    Table {
        id: table_id(name),
        name: name.to_string(),
        owner: format!("liqo/{name}"),
        rules,
        routes,
    }
}

fn fwmark_rule(t: u32, dst: &str, mark: u32) -> Rule {
    Rule {
        fwmark: Some(mark),
        ..rule_dst(t, dst)
    }
}

fn extcidr(name: &str, gw: &str, dev: &str) -> Table {
    let t = table_id(name);
    named(
        name,
        vec![rule_iif(t, TUNNEL)],
        vec![
            gw_route(t, "10.60.0.1/32", gw, Some(dev)),
            gw_route(t, "10.60.167.119/32", gw, Some(dev)),
        ],
    )
}

fn nodeport(name: &str, mark: u32, gw: &str, dev: &str) -> Table {
    let t = table_id(name);
    named(
        name,
        vec![fwmark_rule(t, "10.70.0.0/32", mark)],
        vec![gw_route(t, "10.70.0.0/32", gw, Some(dev))],
    )
}

fn gw_node(name: &str, node_ip: &str, dev: &str, pods: &[&str]) -> Table {
    let t = table_id(name);
    let mut routes = vec![link_route(t, &format!("{node_ip}/32"), dev)];
    routes.extend(
        pods.iter()
            .map(|p| gw_route(t, &format!("{p}/32"), node_ip, None)),
    );
    named(
        name,
        vec![rule_dst(t, &format!("{node_ip}/32")), rule_iif(t, TUNNEL)],
        routes,
    )
}

fn milan() -> Table {
    let t = table_id("milan");
    let mut rules = Vec::new();
    let mut routes = Vec::new();
    for dev in [CP_DEV, WORKER_DEV] {
        for dst in ["10.200.0.0/16", "10.70.0.0/16"] {
            rules.push(Rule {
                iif: Some(dev.to_string()),
                ..rule_dst(t, dst)
            });
            routes.push(gw_route(t, dst, "169.254.18.1", None));
        }
    }
    named("milan", rules, routes)
}

/// Listed extcidr first, the order most likely to break a naive planner.
pub(super) fn rome_gateway() -> Vec<Table> {
    vec![
        extcidr("rome-worker-extcidr", "10.80.0.2", WORKER_DEV),
        extcidr("rome-control-plane-extcidr", "10.80.0.1", CP_DEV),
        milan(),
        nodeport(
            "rome-control-plane-service-nodeport-routing",
            1,
            "10.80.0.1",
            CP_DEV,
        ),
        nodeport(
            "rome-worker-service-nodeport-routing",
            2,
            "10.80.0.2",
            WORKER_DEV,
        ),
        gw_node(
            "rome-worker",
            "10.80.0.2",
            WORKER_DEV,
            &[
                "10.200.1.3",
                "10.200.1.6",
                "10.200.1.4",
                "10.200.1.2",
                "10.200.1.5",
                "10.200.1.7",
                "10.200.1.11",
            ],
        ),
        gw_node(
            "rome-control-plane",
            "10.80.0.1",
            CP_DEV,
            &["10.200.0.2", "10.200.0.4", "10.200.0.3"],
        ),
    ]
}

fn rome_kernel() -> Kernel {
    // The tunnel's own connected route is what makes Milan's gateway
    // reachable; the Geneve peers are reachable only through routecfg.
    let tunnel_net = Route {
        table: 254,
        protocol: 2,
        ..link_route(254, "169.254.18.0/30", TUNNEL)
    };
    Kernel::new(&[TUNNEL, WORKER_DEV, CP_DEV, "eth0"], vec![tunnel_net])
}

fn ids(desired: &[Table]) -> Vec<u32> {
    desired.iter().map(|t| t.id).collect()
}

#[test]
fn seed_applies_in_one_batch_and_then_is_a_noop() {
    let desired = rome_gateway();
    let mut kernel = rome_kernel();
    let first = plan(
        &desired,
        &kernel.snapshot(ids(&desired)),
        Prune::Owned { protocol: OWN },
    );
    assert!(first.pending.is_empty(), "{:?}", first.pending);
    let failures = kernel.apply_batch(&first.ops);
    assert!(
        failures.is_empty(),
        "one batch must apply cleanly: {failures:?}"
    );

    // 4 extcidr + 2 nodeport + 10 pod/link + 2 link... count every route.
    let routes: usize = replaces(&first).len();
    assert_eq!(routes, 4 + 2 + (1 + 7) + (1 + 3) + 2);
    assert_eq!(adds(&first).len(), 1 + 1 + 4 + 1 + 1 + 2 + 2);

    let second = plan(
        &desired,
        &kernel.snapshot(ids(&desired)),
        Prune::Owned { protocol: OWN },
    );
    assert!(
        second.is_empty(),
        "second pass must be a no-op: {:?}",
        second
    );
}

#[test]
fn seed_ops_come_in_phases() {
    let desired = rome_gateway();
    let p = plan(
        &desired,
        &rome_kernel().snapshot(ids(&desired)),
        Prune::Nothing,
    );
    let phase = |op: &Op| match op {
        Op::AddRule(_) => 1,
        Op::ReplaceRoute(r) if r.gateway.is_none() => 2,
        Op::ReplaceRoute(_) => 3,
        Op::DelRoute(_) => 4,
        Op::DelRule(_) => 5,
    };
    let phases: Vec<u8> = p.ops.iter().map(phase).collect();
    assert!(phases.is_sorted(), "{phases:?}");
    assert!(phases.contains(&1) && phases.contains(&2) && phases.contains(&3));

    // Milan's gateway is covered by no desired route: its routes go last.
    let gateways: Vec<String> = replaces(&p)
        .iter()
        .filter_map(|r| r.gateway.map(|g| g.to_string()))
        .collect();
    let first_milan = gateways.iter().position(|g| g == "169.254.18.1");
    assert_eq!(first_milan, Some(gateways.len() - 2), "{gateways:?}");
}

#[test]
fn toy_kernel_rejects_the_naive_order() {
    // Guard against a toy kernel that accepts anything: table by table,
    // extcidr first, the batch hits ENETUNREACH like upstream's first pass.
    let desired = rome_gateway();
    let mut naive = Vec::new();
    for t in &desired {
        naive.extend(t.rules.iter().cloned().map(Op::AddRule));
        naive.extend(t.routes.iter().cloned().map(Op::ReplaceRoute));
    }
    let failures = rome_kernel().apply_batch(&naive);
    let unreachable: Vec<_> = failures
        .iter()
        .filter(|(_, e)| *e == "ENETUNREACH")
        .collect();
    assert_eq!(
        unreachable.len(),
        6,
        "the extcidr and nodeport routes: {failures:?}"
    );
}

#[test]
fn seed_plan_does_not_depend_on_input_order() {
    let desired = rome_gateway();
    let mut reversed = desired.clone();
    reversed.reverse();
    for t in &mut reversed {
        t.rules.reverse();
        t.routes.reverse();
    }
    let snap = rome_kernel().snapshot(ids(&desired));
    assert_eq!(
        plan(&desired, &snap, Prune::Nothing),
        plan(&reversed, &snap, Prune::Nothing)
    );
}

#[test]
fn removing_a_table_with_prune_cleans_it_in_one_batch() {
    let desired = rome_gateway();
    let mut kernel = rome_kernel();
    let all = ids(&desired);
    let failures =
        kernel.apply_batch(&plan(&desired, &kernel.snapshot(all.clone()), Prune::Nothing).ops);
    assert!(failures.is_empty(), "{failures:?}");

    let remaining: Vec<Table> = desired
        .iter()
        .filter(|t| t.name != "milan")
        .cloned()
        .collect();
    let p = plan(
        &remaining,
        &kernel.snapshot(all.clone()),
        Prune::Owned { protocol: OWN },
    );
    assert!(
        p.ops.iter().all(|op| op.table() == table_id("milan")),
        "{:?}",
        p.ops
    );
    assert_eq!((route_dels(&p).len(), rule_dels(&p).len()), (2, 4));
    let failures = kernel.apply_batch(&p.ops);
    assert!(failures.is_empty(), "{failures:?}");
    assert!(
        plan(
            &remaining,
            &kernel.snapshot(all),
            Prune::Owned { protocol: OWN }
        )
        .is_empty()
    );
}
