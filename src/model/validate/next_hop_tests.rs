//! `routes[].nextHops`: ECMP routes in kernel terms, and every way a next
//! hop can be wrong, each refused naming its field.

use super::*;
use crate::routing::DEFAULT_PROTOCOL;
use serde_json::{Value, json};

fn object(route: Value) -> RouteConfiguration {
    serde_json::from_value(json!({
        "metadata": {"name": "o", "namespace": "ns"},
        "spec": {"table": {"name": "t", "rules": [{"iif": "in0", "routes": [route]}]}}
    }))
    .unwrap()
}

fn ok(route: Value) -> Validated {
    validate(&object(route), DEFAULT_PROTOCOL).unwrap_or_else(|e| panic!("{e}"))
}

fn error(route: Value) -> String {
    match validate(&object(route), DEFAULT_PROTOCOL) {
        Ok(v) => panic!("expected an error, got {v:?}"),
        Err(e) => e.to_string(),
    }
}

fn hop(gw: &str, dev: &str, weight: u8) -> NextHop {
    NextHop {
        gateway: Some(gw.parse().unwrap()),
        dev: Some(dev.to_string()),
        weight,
        onlink: false,
    }
}

#[test]
fn next_hops_become_one_sorted_multipath_route() {
    let v = ok(
        json!({"dst": "10.8.0.0/16", "src": "10.1.0.1", "nextHops": [
            {"gw": "10.1.0.3", "dev": "a1", "weight": 255},
            {"gw": "10.1.0.2", "dev": "a0"},
            {"gw": "10.1.0.2", "dev": "a0", "weight": 0},
        ]}),
    );
    assert!(v.warnings.is_empty(), "{:?}", v.warnings);
    let r = &v.table.routes[0];
    assert_eq!((r.gateway, r.dev.as_deref()), (None, None));
    assert_eq!(r.prefsrc, Some("10.1.0.1".parse().unwrap()));
    assert_eq!(r.scope, Scope::Global);
    // Duplicates are kept (a multiset); the weight defaults to 0.
    assert_eq!(
        *r.nexthops,
        [
            hop("10.1.0.2", "a0", 0),
            hop("10.1.0.2", "a0", 0),
            hop("10.1.0.3", "a1", 255)
        ]
    );
}

#[test]
fn next_hop_order_does_not_change_the_route() {
    let a = ok(json!({"dst": "10.8.0.0/16", "nextHops": [
        {"gw": "10.1.0.2", "dev": "a0", "weight": 1}, {"gw": "10.1.0.3", "dev": "a1"}]}));
    let b = ok(json!({"dst": "10.8.0.0/16", "nextHops": [
        {"gw": "10.1.0.3", "dev": "a1"}, {"gw": "10.1.0.2", "dev": "a0", "weight": 1}]}));
    assert_eq!(a.table, b.table);
}

#[test]
fn a_single_next_hop_is_a_plain_route() {
    let v = ok(json!({"dst": "fd33::/64", "nextHops": [{"gw": "fd01::2", "dev": "a0"}]}));
    assert!(v.warnings.is_empty(), "{:?}", v.warnings);
    let r = &v.table.routes[0];
    assert_eq!(r.gateway, Some("fd01::2".parse().unwrap()));
    assert_eq!(r.dev.as_deref(), Some("a0"));
    assert!(r.nexthops.is_empty());
    // Its weight cannot reach the kernel: said, not hidden.
    let v = ok(
        json!({"dst": "10.8.0.0/16", "nextHops": [{"gw": "10.1.0.2", "dev": "a0", "weight": 4}]}),
    );
    assert_eq!(
        v.warnings,
        vec![
            "ns/o: spec.table.rules[0].routes[0].nextHops[0].weight: has no effect on a single \
             next hop (the kernel stores it as a plain route)"
        ]
    );
    assert!(v.table.routes[0].nexthops.is_empty());
}

#[test]
fn a_route_level_dev_is_ignored_with_a_warning() {
    let v = ok(json!({"dst": "10.8.0.0/16", "dev": "gone0", "nextHops": [
        {"gw": "10.1.0.2", "dev": "a0"}, {"gw": "10.1.0.3", "dev": "a0"}]}));
    assert_eq!(
        v.warnings,
        vec![
            "ns/o: spec.table.rules[0].routes[0].dev: \"gone0\" is ignored: the route has \
             nextHops, each with its own dev"
        ]
    );
    let r = &v.table.routes[0];
    assert_eq!(r.dev, None);
    assert!(r.devs().all(|d| d == "a0"));
    // With a single next hop, the next hop's dev is the route's.
    let v = ok(json!({"dst": "10.8.0.0/16", "dev": "gone0", "nextHops": [
        {"gw": "10.1.0.2", "dev": "a0"}]}));
    assert_eq!(v.table.routes[0].dev.as_deref(), Some("a0"));
    assert_eq!(v.warnings.len(), 1);
}

#[test]
fn a_route_level_onlink_is_ignored_with_a_warning() {
    for hops in [
        json!([{"gw": "10.1.0.2", "dev": "a0"}]),
        json!([{"gw": "10.1.0.2", "dev": "a0"}, {"gw": "10.1.0.3", "dev": "a0"}]),
    ] {
        let v = ok(json!({"dst": "10.8.0.0/16", "onlink": true, "nextHops": hops}));
        assert_eq!(
            v.warnings,
            vec![
                "ns/o: spec.table.rules[0].routes[0].onlink: is ignored with nextHops (the \
                 kernel ignores a route-level onlink on a multipath route)"
            ]
        );
        assert!(!v.table.routes[0].onlink);
    }
}

#[test]
fn bad_next_hops_are_refused_naming_the_field() {
    let p = "ns/o: spec.table.rules[0].routes[0]";
    let cases = [
        (
            json!({"dst": "10.8.0.0/16", "gw": "10.1.0.1", "nextHops": [{"gw": "10.1.0.2", "dev": "a0"}]}),
            format!(
                "{p}.nextHops: cannot be used together with gw (a route has either gw or nextHops)"
            ),
        ),
        (
            json!({"dst": "10.8.0.0/16", "nextHops": []}),
            format!("{p}.nextHops: needs at least one next hop"),
        ),
        (
            json!({"dst": "10.8.0.0/16", "nextHops": [{"gw": "10.1.0.2", "dev": "a0"}, {"dev": "a0"}]}),
            format!("{p}.nextHops[1].gw: is required in each next hop"),
        ),
        (
            json!({"dst": "10.8.0.0/16", "nextHops": [{"gw": "10.1.0.2"}]}),
            format!("{p}.nextHops[0].dev: is required in each next hop"),
        ),
        (
            json!({"dst": "10.8.0.0/16", "nextHops": [{"gw": "fd01::2", "dev": "a0"}]}),
            format!("{p}.nextHops[0].gw: fd01::2 is IPv6 but dst 10.8.0.0/16 is IPv4"),
        ),
        (
            json!({"dst": "fd33::/64", "nextHops": [{"gw": "fd01::2", "dev": "a0"}, {"gw": "10.1.0.2", "dev": "a0"}]}),
            format!("{p}.nextHops[1].gw: 10.1.0.2 is IPv4 but dst fd33::/64 is IPv6"),
        ),
        (
            json!({"dst": "10.8.0.0/16", "nextHops": [{"gw": "x", "dev": "a0"}]}),
            format!("{p}.nextHops[0].gw: \"x\" is not an IP address"),
        ),
        (
            json!({"dst": "10.8.0.0/16", "nextHops": [{"gw": "10.1.0.2", "dev": "a/b"}]}),
            format!("{p}.nextHops[0].dev: \"a/b\" is not a valid interface name: it contains '/'"),
        ),
        (
            json!({"dst": "10.8.0.0/16", "nextHops": [{"gw": "10.1.0.2", "dev": "a0", "weight": 256}]}),
            format!("{p}.nextHops[0].weight: 256 is out of range 0..=255"),
        ),
        (
            json!({"dst": "10.8.0.0/16", "nextHops": [{"gw": "10.1.0.2", "dev": "a0", "weight": -1}]}),
            format!("{p}.nextHops[0].weight: -1 is out of range 0..=255"),
        ),
        (
            json!({"dst": "10.8.0.0/16", "nextHops": [{"gw": "10.1.0.2", "dev": "a0", "weight": 1.5}]}),
            format!("{p}.nextHops[0].weight: 1.5 is not an integer"),
        ),
        (
            json!({"dst": "10.8.0.0/16", "nextHops": [{"gw": "10.1.0.2", "dev": "a0", "weight": "2"}]}),
            format!("{p}.nextHops[0].weight: \"2\" is not an integer"),
        ),
        (
            json!({"dst": "10.8.0.0/16", "scope": "host", "nextHops": [
                {"gw": "10.1.0.2", "dev": "a0"}, {"gw": "10.1.0.3", "dev": "a0"}]}),
            format!("{p}.scope: host scope cannot be used with a gateway (the kernel refuses it)"),
        ),
        (
            json!({"dst": "fd33::/64", "nextHops": [
                {"gw": "fd01::2", "dev": "a0"}, {"gw": "fd01::3", "dev": "a0"},
                {"gw": "fd01::2", "dev": "a0", "weight": 3}]}),
            format!(
                "{p}.nextHops[2]: repeats the gw and dev of nextHops[0]; the kernel refuses \
                 duplicate IPv6 next hops (EEXIST)"
            ),
        ),
    ];
    for (route, want) in cases {
        assert_eq!(error(route.clone()), want, "{route}");
    }
}

#[test]
fn nexthops_that_are_not_a_list_fail_the_document_in_serde() {
    // A type error in the document: the loader reports it for the file.
    let v = json!({"metadata": {"name": "o"}, "spec": {"table": {"name": "t", "rules": [
        {"routes": [{"dst": "10.8.0.0/16", "nextHops": {"gw": "10.1.0.2"}}]}]}}});
    assert!(serde_json::from_value::<RouteConfiguration>(v).is_err());
}

#[test]
fn two_routes_to_one_dst_differing_in_next_hops_conflict() {
    let obj: RouteConfiguration = serde_json::from_value(json!({
        "metadata": {"name": "o", "namespace": "ns"},
        "spec": {"table": {"name": "t", "rules": [
            {"iif": "in0", "routes": [{"dst": "10.8.0.0/16", "nextHops": [
                {"gw": "10.1.0.2", "dev": "a0"}, {"gw": "10.1.0.3", "dev": "a0"}]}]},
            {"iif": "in1", "routes": [{"dst": "10.8.0.0/16", "nextHops": [
                {"gw": "10.1.0.2", "dev": "a0"}, {"gw": "10.1.0.3", "dev": "a0", "weight": 1}]}]}
        ]}}
    }))
    .unwrap();
    let e = validate(&obj, DEFAULT_PROTOCOL).unwrap_err().to_string();
    assert_eq!(
        e,
        "ns/o: spec.table.rules[1].routes[0]: dst 10.8.0.0/16 is also routed by \
         spec.table.rules[0].routes[0] with a different nextHops; a table holds one route per dst"
    );
}
