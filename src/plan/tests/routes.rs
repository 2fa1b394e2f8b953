//! Route identity, drift, duplicates, adoption, ownership, pending.

use super::*;
use crate::routing::PROTOCOL_BOOT;

const T: u32 = 210_412_509;
const DEV: &str = "liqo.zgdhd2x5fc";

fn links() -> Vec<&'static str> {
    vec![DEV, "liqo-tunnel", "eth0"]
}

#[test]
fn missing_routes_are_replaced() {
    let direct = link_route(T, "10.80.0.2/32", DEV);
    let via = gw_route(T, "10.200.1.3/32", "10.80.0.2", None);
    let desired = [table(T, vec![], vec![via.clone(), direct.clone()])];
    let p = plan_nothing(&desired, &snapshot(vec![], vec![], &[T], &links()));
    assert_eq!(p.ops, vec![Op::ReplaceRoute(direct), Op::ReplaceRoute(via)]);
}

#[test]
fn routes_as_the_kernel_reports_them_are_a_noop() {
    let direct = link_route(T, "10.80.0.2/32", DEV);
    let via_no_dev = gw_route(T, "10.200.1.3/32", "10.80.0.2", None);
    let via_dev = gw_route(T, "10.60.0.1/32", "10.80.0.2", Some(DEV));
    let v6 = gw_route(T, "fd00:200::/64", "fd00:80::2", None);
    let v6_direct = Route {
        scope: Scope::Global,
        ..link_route(T, "fd00:80::2/128", DEV)
    };
    let desired = [table(
        T,
        vec![],
        vec![
            direct.clone(),
            via_no_dev.clone(),
            via_dev.clone(),
            v6.clone(),
            v6_direct.clone(),
        ],
    )];
    let kernel = vec![
        dumped(&direct, DEV, None),
        dumped(&via_no_dev, DEV, None),
        dumped(&via_dev, DEV, Some(0)),
        dumped(&v6, DEV, Some(1024)),
        dumped(&v6_direct, DEV, Some(1024)),
    ];
    let p = plan_nothing(&desired, &snapshot(vec![], kernel, &[T], &links()));
    assert!(p.is_empty(), "{:?}", p);
}

#[test]
fn every_attribute_drift_is_replaced_in_place() {
    let want = Route {
        prefsrc: Some(ip("10.80.0.9")),
        ..gw_route(T, "10.60.0.1/32", "10.80.0.2", Some(DEV))
    };
    let drifts = [
        Route {
            gateway: Some(ip("10.80.0.3")),
            ..want.clone()
        },
        Route {
            gateway: None,
            scope: Scope::Link,
            ..want.clone()
        },
        Route {
            prefsrc: None,
            ..want.clone()
        },
        Route {
            onlink: true,
            ..want.clone()
        },
        Route {
            scope: Scope::Link,
            ..want.clone()
        },
        Route {
            protocol: 4,
            ..want.clone()
        },
        Route {
            dev: Some("eth0".into()),
            ..want.clone()
        },
        Route {
            dev: None,
            ..want.clone()
        },
    ];
    let desired = [table(T, vec![], vec![want.clone()])];
    for drift in drifts {
        let p = plan_nothing(
            &desired,
            &snapshot(vec![], vec![drift.clone()], &[T], &links()),
        );
        assert_eq!(
            p.ops,
            vec![Op::ReplaceRoute(want.clone())],
            "drift {drift:?}"
        );
    }
}

#[test]
fn stale_routes_of_managed_table_are_deleted_as_dumped() {
    let want = link_route(T, "10.80.0.2/32", DEV);
    let stale_ours = dumped(&gw_route(T, "10.200.1.99/32", "10.80.0.2", None), DEV, None);
    let stale_foreign = Route {
        protocol: 2,
        metric: Some(7),
        nexthops: Default::default(),
        ..link_route(T, "10.99.0.0/16", "eth0")
    };
    let desired = [table(T, vec![], vec![want.clone()])];
    let snap = snapshot(
        vec![],
        vec![
            stale_foreign.clone(),
            dumped(&want, DEV, None),
            stale_ours.clone(),
        ],
        &[T],
        &links(),
    );
    let p = plan_nothing(&desired, &snap);
    assert_eq!(
        p.ops,
        vec![Op::DelRoute(stale_foreign), Op::DelRoute(stale_ours)]
    );
}

#[test]
fn duplicate_dst_keeps_the_equal_route_and_deletes_the_others() {
    let want = gw_route(T, "10.200.1.3/32", "10.80.0.2", None);
    let equal_metric_50 = dumped(&want, DEV, Some(50));
    let other_default = Route {
        gateway: Some(ip("10.80.0.7")),
        ..dumped(&want, DEV, None)
    };
    let other_100 = Route {
        protocol: PROTOCOL_BOOT,
        ..dumped(&want, DEV, Some(100))
    };
    let desired = [table(T, vec![], vec![want])];
    let snap = snapshot(
        vec![],
        vec![other_100.clone(), equal_metric_50, other_default.clone()],
        &[T],
        &links(),
    );
    let p = plan_nothing(&desired, &snap);
    assert_eq!(
        p.ops,
        vec![Op::DelRoute(other_default), Op::DelRoute(other_100)]
    );
}

#[test]
fn duplicate_dst_without_equal_route_replaces_default_slot_and_deletes_extras() {
    let want = gw_route(T, "10.200.1.3/32", "10.80.0.2", None);
    let default_slot = Route {
        protocol: PROTOCOL_BOOT,
        ..dumped(&want, DEV, Some(0))
    };
    let extra = Route {
        protocol: PROTOCOL_BOOT,
        ..dumped(&want, DEV, Some(100))
    };
    let desired = [table(T, vec![], vec![want.clone()])];
    let p = plan_nothing(
        &desired,
        &snapshot(vec![], vec![extra.clone(), default_slot], &[T], &links()),
    );
    assert_eq!(p.ops, vec![Op::ReplaceRoute(want), Op::DelRoute(extra)]);
}

#[test]
fn ipv6_default_slot_is_metric_1024() {
    let want = gw_route(T, "fd00:200::/64", "fd00:80::2", None);
    let default_slot = Route {
        protocol: PROTOCOL_BOOT,
        ..dumped(&want, DEV, Some(1024))
    };
    let extra = Route {
        protocol: PROTOCOL_BOOT,
        ..dumped(&want, DEV, Some(0))
    };
    let desired = [table(T, vec![], vec![want.clone()])];
    let p = plan_nothing(
        &desired,
        &snapshot(vec![], vec![default_slot, extra.clone()], &[T], &links()),
    );
    assert_eq!(p.ops, vec![Op::ReplaceRoute(want), Op::DelRoute(extra)]);
}

#[test]
fn only_non_default_metric_routes_are_all_deleted_after_replace() {
    let want = gw_route(T, "10.200.1.3/32", "10.80.0.2", None);
    let a = Route {
        protocol: PROTOCOL_BOOT,
        ..dumped(&want, DEV, Some(10))
    };
    let b = Route {
        protocol: PROTOCOL_BOOT,
        ..dumped(&want, DEV, Some(20))
    };
    let desired = [table(T, vec![], vec![want.clone()])];
    let p = plan_nothing(
        &desired,
        &snapshot(vec![], vec![b.clone(), a.clone()], &[T], &links()),
    );
    assert_eq!(
        p.ops,
        vec![Op::ReplaceRoute(want), Op::DelRoute(a), Op::DelRoute(b)]
    );
}

#[test]
fn upstream_table_is_adopted_by_in_place_replacement_with_zero_deletes() {
    let r1 = rule_dst(T, "10.80.0.2/32");
    let r2 = rule_iif(T, "liqo-tunnel");
    let direct = link_route(T, "10.80.0.2/32", DEV);
    let pods: Vec<Route> = (2..8)
        .map(|i| gw_route(T, &format!("10.200.1.{i}/32"), "10.80.0.2", None))
        .collect();
    let mut routes = vec![direct.clone()];
    routes.extend(pods.iter().cloned());
    let desired = [table(T, vec![r1.clone(), r2.clone()], routes.clone())];
    let upstream_rules = vec![
        Rule {
            protocol: PROTOCOL_BOOT,
            ..in_kernel(&r1, 32764)
        },
        Rule {
            protocol: PROTOCOL_BOOT,
            ..in_kernel(&r2, 32765)
        },
    ];
    let upstream_routes: Vec<Route> = routes
        .iter()
        .map(|r| Route {
            protocol: PROTOCOL_BOOT,
            ..dumped(r, DEV, None)
        })
        .collect();
    let p = plan_nothing(
        &desired,
        &snapshot(upstream_rules, upstream_routes, &[T], &links()),
    );
    assert!(
        adds(&p).is_empty() && rule_dels(&p).is_empty() && route_dels(&p).is_empty(),
        "{:?}",
        p.ops
    );
    assert_eq!(replaces(&p), routes.iter().collect::<Vec<_>>());
}

#[test]
fn managed_table_not_dumped_is_written_but_never_deleted_from() {
    let want = link_route(T, "10.80.0.2/32", DEV);
    let unknown = dumped(&gw_route(T, "10.200.1.99/32", "10.80.0.2", None), DEV, None);
    let desired = [table(T, vec![], vec![want.clone()])];
    // The snapshot carries a route of T although T was not dumped: it must
    // not be trusted either way.
    let p = plan_nothing(
        &desired,
        &snapshot(
            vec![],
            vec![unknown, dumped(&want, DEV, None)],
            &[],
            &links(),
        ),
    );
    assert_eq!(p.ops, vec![Op::ReplaceRoute(want)]);
}

#[test]
fn routes_of_other_tables_are_untouched_without_prune() {
    let want = link_route(T, "10.80.0.2/32", DEV);
    let main = Route {
        protocol: 2,
        ..link_route(254, "10.0.0.0/24", "eth0")
    };
    let marked_elsewhere = dumped(&gw_route(77, "10.9.0.0/16", "10.0.0.1", None), "eth0", None);
    let desired = [table(T, vec![], vec![want.clone()])];
    let snap = snapshot(
        vec![],
        vec![main, marked_elsewhere, dumped(&want, DEV, None)],
        &[T, 77, 254],
        &links(),
    );
    assert!(plan_nothing(&desired, &snap).is_empty());
}

#[test]
fn prune_deletes_only_marked_routes_of_dumped_tables_not_desired() {
    let want = link_route(T, "10.80.0.2/32", DEV);
    let main_system = Route {
        protocol: 2,
        ..link_route(254, "10.0.0.0/24", "eth0")
    };
    let main_marked = dumped(
        &gw_route(254, "10.10.0.0/16", "10.0.0.1", None),
        "eth0",
        None,
    );
    let leftover = dumped(&gw_route(77, "10.9.0.0/16", "10.0.0.1", None), "eth0", None);
    let leftover_upstream = Route {
        protocol: PROTOCOL_BOOT,
        ..dumped(&gw_route(77, "10.8.0.0/16", "10.0.0.1", None), "eth0", None)
    };
    let not_dumped = dumped(&gw_route(78, "10.7.0.0/16", "10.0.0.1", None), "eth0", None);
    let desired = [table(T, vec![], vec![want.clone()])];
    let snap = snapshot(
        vec![],
        vec![
            main_system,
            main_marked.clone(),
            leftover.clone(),
            leftover_upstream,
            not_dumped,
            dumped(&want, DEV, None),
        ],
        &[T, 77, 254],
        &links(),
    );
    let p = plan(&desired, &snap, Prune::Owned { protocol: OWN });
    assert_eq!(
        p.ops,
        vec![Op::DelRoute(leftover), Op::DelRoute(main_marked)]
    );
}

#[test]
fn prune_of_a_whole_leftover_table_deletes_routes_then_rules() {
    let old_rule = in_kernel(&rule_iif(77, "liqo-tunnel"), 32000);
    let old_route = dumped(&gw_route(77, "10.9.0.0/16", "10.0.0.1", None), "eth0", None);
    let snap = snapshot(
        vec![old_rule.clone()],
        vec![old_route.clone()],
        &[77],
        &links(),
    );
    let p = plan(&[], &snap, Prune::Owned { protocol: OWN });
    assert_eq!(p.ops, vec![Op::DelRoute(old_route), Op::DelRule(old_rule)]);
}

#[test]
fn route_with_missing_link_is_pending_and_the_rest_proceeds() {
    let blocked = gw_route(T, "10.60.0.1/32", "10.80.0.2", Some("liqo.abc"));
    let blocked_present = gw_route(T, "10.60.167.119/32", "10.80.0.2", Some("liqo.abc"));
    let fine = gw_route(T, "10.70.0.0/32", "10.80.0.2", Some(DEV));
    let desired = [table(
        T,
        vec![],
        vec![blocked.clone(), fine.clone(), blocked_present.clone()],
    )];
    // The kernel still has an old route for one pending dst: it is kept
    // until the link exists rather than deleted as stale.
    let old = dumped(
        &Route {
            dev: Some("old0".into()),
            ..blocked_present.clone()
        },
        "old0",
        None,
    );
    let p = plan_nothing(&desired, &snapshot(vec![], vec![old], &[T], &links()));
    assert_eq!(p.ops, vec![Op::ReplaceRoute(fine)]);
    assert_eq!(
        pending_reasons(&p),
        vec![
            (T, net("10.60.0.1/32"), "link liqo.abc not found"),
            (T, net("10.60.167.119/32"), "link liqo.abc not found"),
        ]
    );
    assert_eq!(p.pending[0].route, blocked);
    assert!(!p.is_empty());
}

#[test]
fn identical_desired_routes_are_one_and_conflicting_ones_are_pending() {
    let via = gw_route(T, "10.200.0.0/16", "169.254.18.1", None);
    let other = gw_route(T, "10.70.0.0/16", "169.254.18.1", None);
    let conflicting = gw_route(T, "10.70.0.0/16", "169.254.18.2", None);
    let desired = [table(
        T,
        vec![],
        vec![via.clone(), other.clone(), via.clone(), conflicting.clone()],
    )];
    let p = plan_nothing(&desired, &snapshot(vec![], vec![], &[T], &links()));
    assert_eq!(p.ops, vec![Op::ReplaceRoute(other), Op::ReplaceRoute(via)]);
    assert_eq!(p.pending.len(), 1);
    assert_eq!(p.pending[0].route, conflicting);
    assert_eq!(
        p.pending[0].reason,
        "conflicts with another desired route to 10.70.0.0/16"
    );
}

#[test]
fn same_dst_in_two_tables_are_two_routes() {
    let a = gw_route(1000, "10.60.0.1/32", "10.80.0.2", Some(DEV));
    let b = gw_route(2000, "10.60.0.1/32", "10.80.0.1", Some(DEV));
    let desired = [
        table(1000, vec![], vec![a.clone()]),
        table(2000, vec![], vec![b.clone()]),
    ];
    let p = plan_nothing(
        &desired,
        &snapshot(vec![], vec![dumped(&a, DEV, None)], &[1000, 2000], &links()),
    );
    assert_eq!(p.ops, vec![Op::ReplaceRoute(b)]);
}
