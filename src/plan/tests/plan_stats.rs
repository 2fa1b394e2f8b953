//! `Plan::is_empty` and `Plan::count_by_table`.

use super::*;
use std::collections::BTreeMap;

#[test]
fn empty_plan_is_empty() {
    let p = plan_nothing(&[], &Snapshot::default());
    assert!(p.is_empty());
    assert!(p.count_by_table().is_empty());
}

#[test]
fn pending_alone_makes_a_plan_non_empty() {
    let desired = [table(
        5,
        vec![],
        vec![link_route(5, "10.0.0.0/24", "gone0")],
    )];
    let p = plan_nothing(&desired, &snapshot(vec![], vec![], &[5], &[]));
    assert!(p.ops.is_empty());
    assert!(!p.is_empty());
    assert!(p.count_by_table().is_empty(), "pending routes are not ops");
}

#[test]
fn ops_are_counted_per_table() {
    let desired = [
        table(
            5,
            vec![rule_iif(5, "a")],
            vec![link_route(5, "10.0.0.0/24", "eth0")],
        ),
        table(7, vec![rule_iif(7, "a")], vec![]),
    ];
    let stale = in_kernel(&rule_iif(7, "b"), 10);
    let p = plan_nothing(&desired, &snapshot(vec![stale], vec![], &[5, 7], &["eth0"]));
    assert_eq!(p.count_by_table(), BTreeMap::from([(5, 2), (7, 2)]));
}
