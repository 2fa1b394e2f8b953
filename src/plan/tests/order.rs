//! Phase order and determinism on small inputs.

use super::*;

const A: u32 = 1000;
const B: u32 = 2000;

#[test]
fn gateway_routes_covered_by_a_direct_route_come_first() {
    // B's route via 10.1.0.9 is covered by A's direct 10.1.0.0/24; A's own
    // route via 192.0.2.1 is covered by nothing, so it goes after it
    // despite its lower table id.
    let direct = link_route(A, "10.1.0.0/24", "eth0");
    let uncovered = gw_route(A, "10.50.0.0/16", "192.0.2.1", None);
    let covered = gw_route(B, "10.60.0.0/16", "10.1.0.9", None);
    let desired = [
        table(A, vec![], vec![uncovered.clone(), direct.clone()]),
        table(B, vec![], vec![covered.clone()]),
    ];
    let p = plan_nothing(&desired, &snapshot(vec![], vec![], &[A, B], &["eth0"]));
    assert_eq!(
        p.ops,
        vec![
            Op::ReplaceRoute(direct),
            Op::ReplaceRoute(covered),
            Op::ReplaceRoute(uncovered)
        ]
    );
}

#[test]
fn a_direct_route_already_in_the_kernel_still_covers() {
    let direct = link_route(A, "10.1.0.0/24", "eth0");
    let uncovered = gw_route(A, "10.50.0.0/16", "192.0.2.1", None);
    let covered = gw_route(B, "10.60.0.0/16", "10.1.0.9", None);
    let desired = [
        table(A, vec![], vec![uncovered.clone(), direct.clone()]),
        table(B, vec![], vec![covered.clone()]),
    ];
    let snap = snapshot(
        vec![],
        vec![dumped(&direct, "eth0", None)],
        &[A, B],
        &["eth0"],
    );
    let p = plan_nothing(&desired, &snap);
    assert_eq!(
        p.ops,
        vec![Op::ReplaceRoute(covered), Op::ReplaceRoute(uncovered)]
    );
}

#[test]
fn a_pending_direct_route_does_not_cover() {
    let direct = link_route(A, "10.1.0.0/24", "missing0");
    let g1 = gw_route(A, "10.50.0.0/16", "10.1.0.9", None);
    let g2 = gw_route(B, "10.40.0.0/16", "192.0.2.1", None);
    let desired = [
        table(A, vec![], vec![direct, g1.clone()]),
        table(B, vec![], vec![g2.clone()]),
    ];
    let p = plan_nothing(&desired, &snapshot(vec![], vec![], &[A, B], &["eth0"]));
    // Neither is covered: plain (table, dst) order.
    assert_eq!(p.ops, vec![Op::ReplaceRoute(g1), Op::ReplaceRoute(g2)]);
    assert_eq!(p.pending.len(), 1);
}

#[test]
fn ipv6_gateways_are_covered_by_ipv6_prefixes_only() {
    let direct6 = Route {
        scope: Scope::Global,
        ..link_route(A, "fd00:1::/64", "eth0")
    };
    let direct4 = link_route(A, "0.0.0.0/0", "eth0");
    let covered6 = gw_route(B, "fd00:60::/48", "fd00:1::9", None);
    let uncovered6 = gw_route(A, "fd00:50::/48", "fd00:2::1", None);
    let desired = [
        table(
            A,
            vec![],
            vec![direct6.clone(), direct4.clone(), uncovered6.clone()],
        ),
        table(B, vec![], vec![covered6.clone()]),
    ];
    let p = plan_nothing(&desired, &snapshot(vec![], vec![], &[A, B], &["eth0"]));
    assert_eq!(
        p.ops,
        vec![
            Op::ReplaceRoute(direct4),
            Op::ReplaceRoute(direct6),
            Op::ReplaceRoute(covered6),
            Op::ReplaceRoute(uncovered6),
        ]
    );
}

#[test]
fn all_five_phases_in_order_with_table_then_key_inside() {
    let rule_a = rule_iif(A, "x");
    let rule_b = rule_iif(B, "x");
    let stale_rule_a = in_kernel(&rule_iif(A, "y"), 100);
    let stale_rule_b = in_kernel(&rule_iif(B, "y"), 99);
    let direct_b = link_route(B, "10.2.0.0/24", "eth0");
    let via_a = gw_route(A, "10.70.0.0/16", "10.2.0.1", None);
    let stale_route_a = dumped(&gw_route(A, "10.9.0.0/16", "10.2.0.1", None), "eth0", None);
    let stale_route_b = dumped(&gw_route(B, "10.8.0.0/16", "10.2.0.1", None), "eth0", None);
    let desired = [
        table(B, vec![rule_b.clone()], vec![direct_b.clone()]),
        table(A, vec![rule_a.clone()], vec![via_a.clone()]),
    ];
    let snap = snapshot(
        vec![stale_rule_b.clone(), stale_rule_a.clone()],
        vec![stale_route_b.clone(), stale_route_a.clone()],
        &[A, B],
        &["eth0"],
    );
    let p = plan_nothing(&desired, &snap);
    assert_eq!(
        p.ops,
        vec![
            Op::AddRule(rule_a),
            Op::AddRule(rule_b),
            Op::ReplaceRoute(direct_b),
            Op::ReplaceRoute(via_a),
            Op::DelRoute(stale_route_a),
            Op::DelRoute(stale_route_b),
            Op::DelRule(stale_rule_a),
            Op::DelRule(stale_rule_b),
        ]
    );
}

#[test]
fn many_routes_plan_in_table_then_dst_order() {
    // Desired order is scrambled; ops come out sorted numerically by dst.
    let mut routes: Vec<Route> = (0..300u32)
        .map(|i| (i * 7919) % 300)
        .map(|i| {
            gw_route(
                A,
                &format!("10.{}.{}.0/24", i / 256, i % 256),
                "192.0.2.1",
                None,
            )
        })
        .collect();
    let desired = [table(A, vec![], routes.clone())];
    let p = plan_nothing(&desired, &snapshot(vec![], vec![], &[A], &[]));
    routes.sort_by_key(|r| r.dst);
    assert_eq!(replaces(&p), routes.iter().collect::<Vec<_>>());
}
