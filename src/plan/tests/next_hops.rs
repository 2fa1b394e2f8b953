//! Multipath (ECMP) routes: multiset comparison, replacement in place,
//! pending next-hop links, ordering and rendering.

use super::*;
use crate::plan::render;
use crate::routing::NextHop;

const T: u32 = 4242;

fn hop(gw: &str, dev: &str, weight: u8) -> NextHop {
    NextHop {
        gateway: Some(ip(gw)),
        dev: Some(dev.to_string()),
        weight,
        onlink: false,
    }
}

/// A desired multipath route, next hops sorted as validation leaves them.
fn ecmp(dst: &str, mut hops: Vec<NextHop>) -> Route {
    hops.sort();
    Route {
        gateway: None,
        dev: None,
        nexthops: hops.into(),
        ..gw_route(T, dst, "10.1.0.2", None)
    }
}

/// The kernel's copy: same next hops in the order given, with the
/// metric the kernel reports.
fn in_kernel(route: &Route, hops: Vec<NextHop>, metric: Option<u32>) -> Route {
    Route {
        nexthops: hops.into(),
        metric,
        ..route.clone()
    }
}

fn links() -> Vec<&'static str> {
    vec!["a0", "a1"]
}

#[test]
fn the_same_next_hops_in_any_order_are_a_noop() {
    let hops = vec![
        hop("10.1.0.2", "a0", 0),
        hop("10.1.0.3", "a1", 4),
        hop("10.1.0.2", "a0", 0),
    ];
    let want = ecmp("10.8.0.0/16", hops.clone());
    let v6 = ecmp(
        "fd33::/64",
        vec![hop("fd01::2", "a0", 1), hop("fd02::2", "a1", 0)],
    );
    let desired = [table(T, vec![], vec![want.clone(), v6.clone()])];
    let mut reversed = hops.clone();
    reversed.reverse();
    for kernel_hops in [hops.clone(), reversed] {
        let kernel = vec![
            in_kernel(&want, kernel_hops, None),
            in_kernel(
                &v6,
                vec![hop("fd02::2", "a1", 0), hop("fd01::2", "a0", 1)],
                Some(1024),
            ),
        ];
        let p = plan_nothing(&desired, &snapshot(vec![], kernel, &[T], &links()));
        assert!(p.is_empty(), "{p:?}");
    }
}

#[test]
fn next_hops_are_a_multiset_not_a_set() {
    let want = ecmp(
        "10.8.0.0/16",
        vec![
            hop("10.1.0.2", "a0", 0),
            hop("10.1.0.2", "a0", 0),
            hop("10.1.0.3", "a1", 0),
        ],
    );
    let desired = [table(T, vec![], vec![want.clone()])];
    let missing_duplicate = in_kernel(
        &want,
        vec![hop("10.1.0.3", "a1", 0), hop("10.1.0.2", "a0", 0)],
        None,
    );
    let other_duplicate = in_kernel(
        &want,
        vec![
            hop("10.1.0.3", "a1", 0),
            hop("10.1.0.2", "a0", 0),
            hop("10.1.0.3", "a1", 0),
        ],
        None,
    );
    for kernel in [missing_duplicate, other_duplicate] {
        let p = plan_nothing(&desired, &snapshot(vec![], vec![kernel], &[T], &links()));
        // Replaced in place: one create-or-replace, no delete, no gap.
        assert_eq!(p.ops, vec![Op::ReplaceRoute(want.clone())]);
    }
}

#[test]
fn a_changed_weight_gateway_or_device_is_replaced_in_place() {
    let want = ecmp(
        "10.8.0.0/16",
        vec![hop("10.1.0.2", "a0", 0), hop("10.1.0.3", "a1", 2)],
    );
    let desired = [table(T, vec![], vec![want.clone()])];
    let drifts = [
        vec![hop("10.1.0.2", "a0", 1), hop("10.1.0.3", "a1", 2)],
        vec![hop("10.1.0.9", "a0", 0), hop("10.1.0.3", "a1", 2)],
        vec![hop("10.1.0.2", "a1", 0), hop("10.1.0.3", "a1", 2)],
        vec![
            NextHop {
                onlink: true,
                ..hop("10.1.0.2", "a0", 0)
            },
            hop("10.1.0.3", "a1", 2),
        ],
    ];
    for kernel_hops in drifts {
        let kernel = in_kernel(&want, kernel_hops, None);
        let p = plan_nothing(&desired, &snapshot(vec![], vec![kernel], &[T], &links()));
        assert_eq!(p.ops, vec![Op::ReplaceRoute(want.clone())], "{p:?}");
    }
    // A plain route to the same dst becomes multipath in place too, and
    // back again.
    let plain = gw_route(T, "10.8.0.0/16", "10.1.0.2", Some("a0"));
    let p = plan_nothing(
        &desired,
        &snapshot(vec![], vec![plain.clone()], &[T], &links()),
    );
    assert_eq!(p.ops, vec![Op::ReplaceRoute(want.clone())]);
    let back = [table(T, vec![], vec![plain.clone()])];
    let p = plan_nothing(&back, &snapshot(vec![], vec![want], &[T], &links()));
    assert_eq!(p.ops, vec![Op::ReplaceRoute(plain)]);
}

#[test]
fn a_missing_next_hop_link_makes_the_route_pending() {
    let want = ecmp(
        "10.8.0.0/16",
        vec![hop("10.1.0.2", "a0", 0), hop("10.1.0.3", "late0", 0)],
    );
    let old = in_kernel(&want, vec![hop("10.1.0.2", "a0", 0)], None);
    let desired = [table(T, vec![], vec![want.clone()])];
    let p = plan_nothing(
        &desired,
        &snapshot(vec![], vec![old.clone()], &[T], &links()),
    );
    // Nothing is written and the kernel's current route stays.
    assert!(p.ops.is_empty(), "{p:?}");
    assert_eq!(
        pending_reasons(&p),
        vec![(T, net("10.8.0.0/16"), "link late0 not found")]
    );
    // Once the link exists, it is written.
    let p = plan_nothing(
        &desired,
        &snapshot(vec![], vec![old], &[T], &["a0", "a1", "late0"]),
    );
    assert_eq!(p.ops, vec![Op::ReplaceRoute(want)]);
    assert!(p.pending.is_empty());
}

#[test]
fn multipath_routes_wait_for_the_direct_routes_their_gateways_use() {
    let direct_a = link_route(T, "10.1.0.0/24", "a0");
    let direct_b = link_route(T, "10.2.0.0/24", "a1");
    let want = ecmp(
        "10.0.0.0/16",
        vec![hop("10.1.0.2", "a0", 0), hop("10.2.0.2", "a1", 0)],
    );
    let half = ecmp(
        "10.0.0.0/24",
        vec![hop("10.1.0.2", "a0", 0), hop("10.9.0.2", "a1", 0)],
    );
    let desired = [table(
        T,
        vec![],
        vec![
            half.clone(),
            want.clone(),
            direct_b.clone(),
            direct_a.clone(),
        ],
    )];
    let p = plan_nothing(&desired, &snapshot(vec![], vec![], &[T], &links()));
    // Direct routes first; then multipath routes all of whose gateways
    // they cover; then the rest.
    assert_eq!(
        p.ops,
        vec![
            Op::ReplaceRoute(direct_a),
            Op::ReplaceRoute(direct_b),
            Op::ReplaceRoute(want),
            Op::ReplaceRoute(half),
        ]
    );
}

#[test]
fn next_hops_render_as_ip_route_reads_them() {
    let want = ecmp(
        "10.8.0.0/16",
        vec![hop("10.1.0.3", "a1", 4), hop("10.1.0.2", "a0", 0)],
    );
    // Accepted by iproute2 as is; `weight` is the kernel's (API + 1).
    assert_eq!(
        render(&Op::ReplaceRoute(want.clone()), &|_| None),
        "ip route replace 10.8.0.0/16 table 4242 proto 114 \
         nexthop via 10.1.0.2 dev a0 weight 1 nexthop via 10.1.0.3 dev a1 weight 5"
    );
    let v6 = Route {
        metric: Some(1024),
        ..ecmp(
            "fd33::/64",
            vec![hop("fd01::2", "a0", 255), hop("fd02::2", "a1", 0)],
        )
    };
    assert_eq!(
        render(&Op::DelRoute(v6), &|_| None),
        "ip -6 route del fd33::/64 table 4242 proto 114 metric 1024 \
         nexthop via fd01::2 dev a0 weight 256 nexthop via fd02::2 dev a1 weight 1"
    );
    assert_eq!(
        crate::kernel::op_words(&Op::ReplaceRoute(want)),
        "route 10.8.0.0/16 nexthop via 10.1.0.2 dev a0 weight 1 \
         nexthop via 10.1.0.3 dev a1 weight 5 table 4242"
    );
}
