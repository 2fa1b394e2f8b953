use super::*;
use crate::model::load::load_paths;
use crate::model::testdata::rome_dir;
use crate::routing::DEFAULT_PROTOCOL;
use serde_json::{Value, json};

fn object(rules: Value) -> RouteConfiguration {
    serde_json::from_value(json!({
        "metadata": {"name": "o", "namespace": "ns"},
        "spec": {"table": {"name": "t", "rules": rules}}
    }))
    .unwrap()
}

fn ok(rules: Value) -> Validated {
    validate(&object(rules), DEFAULT_PROTOCOL).unwrap_or_else(|e| panic!("{e}"))
}

fn error(rules: Value) -> String {
    match validate(&object(rules), DEFAULT_PROTOCOL) {
        Ok(v) => panic!("expected an error, got {v:?}"),
        Err(e) => e.to_string(),
    }
}

/// One rule `{iif: in0}` holding the given route.
fn one_route(route: Value) -> Value {
    json!([{"iif": "in0", "routes": [route]}])
}

fn net(s: &str) -> IpNet {
    s.parse().unwrap()
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn fixtures() -> Vec<RouteConfiguration> {
    let (objects, errors) = load_paths(&[rome_dir()]);
    assert!(errors.is_empty(), "{errors:?}");
    objects
}

fn fixture(name: &str) -> RouteConfiguration {
    fixtures()
        .into_iter()
        .find(|o| o.metadata.name.as_deref() == Some(name))
        .unwrap_or_else(|| panic!("fixture {name} not found"))
}

#[test]
fn every_rome_fixture_validates_without_warnings() {
    let objects = fixtures();
    assert_eq!(objects.len(), 8);
    for o in &objects {
        let v = validate(o, DEFAULT_PROTOCOL).unwrap_or_else(|e| panic!("{e}"));
        assert!(v.warnings.is_empty(), "{}: {:?}", o.key(), v.warnings);
        assert_eq!(v.table.owner, o.key());
        assert_eq!(Some(v.table.name.as_str()), o.spec.table.name.as_deref());
        assert_eq!(v.table.id, table_id(&v.table.name));
        assert!(!v.table.rules.is_empty());
    }
}

#[test]
fn rome_worker_gw_node_in_kernel_terms() {
    let v = validate(&fixture("rome-worker-gw-node"), DEFAULT_PROTOCOL).unwrap();
    let t = v.table;
    assert_eq!(
        (t.id, t.name.as_str(), t.owner.as_str()),
        (210412509, "rome-worker", "liqo/rome-worker-gw-node")
    );
    let rule = |dst: Option<&str>, iif: Option<&str>| Rule {
        family: Family::V4,
        table: 210412509,
        priority: None,
        src: None,
        dst: dst.map(net),
        iif: iif.map(str::to_string),
        oif: None,
        fwmark: None,
        protocol: DEFAULT_PROTOCOL,
    };
    assert_eq!(
        t.rules,
        vec![
            rule(Some("10.80.0.2/32"), None),
            rule(None, Some("liqo-tunnel"))
        ]
    );
    let geneve = Route {
        table: 210412509,
        dst: net("10.80.0.2/32"),
        gateway: None,
        prefsrc: None,
        dev: Some("liqo.zgdhd2x5fc".into()),
        onlink: false,
        scope: Scope::Link,
        protocol: DEFAULT_PROTOCOL,
        metric: None,
        nexthops: Default::default(),
    };
    let pod = |dst: &str| Route {
        dst: net(dst),
        gateway: Some(ip("10.80.0.2")),
        dev: None,
        scope: Scope::Global,
        ..geneve.clone()
    };
    // Sorted by dst (numerically), whatever the order in the object.
    let want = vec![
        geneve.clone(),
        pod("10.200.1.2/32"),
        pod("10.200.1.3/32"),
        pod("10.200.1.4/32"),
        pod("10.200.1.5/32"),
        pod("10.200.1.6/32"),
        pod("10.200.1.7/32"),
        pod("10.200.1.11/32"),
    ];
    assert_eq!(t.routes, want);
}

#[test]
fn milan_shares_one_route_per_dst_across_rules() {
    let v = validate(&fixture("milan-gw-ext"), DEFAULT_PROTOCOL).unwrap();
    let t = v.table;
    assert_eq!(t.id, 576843759);
    assert_eq!(t.rules.len(), 4);
    assert_eq!(
        t.rules
            .iter()
            .map(|r| (r.dst.unwrap().to_string(), r.iif.clone().unwrap()))
            .collect::<Vec<_>>(),
        [
            ("10.200.0.0/16".to_string(), "liqo.zqzt5nqktn".to_string()),
            ("10.70.0.0/16".to_string(), "liqo.zqzt5nqktn".to_string()),
            ("10.200.0.0/16".to_string(), "liqo.zgdhd2x5fc".to_string()),
            ("10.70.0.0/16".to_string(), "liqo.zgdhd2x5fc".to_string()),
        ]
    );
    let dsts: Vec<String> = t.routes.iter().map(|r| r.dst.to_string()).collect();
    assert_eq!(dsts, ["10.70.0.0/16", "10.200.0.0/16"]);
    assert!(
        t.routes
            .iter()
            .all(|r| r.gateway == Some(ip("169.254.18.1")) && r.scope == Scope::Global)
    );
}

#[test]
fn fwmark_rule_of_nodeport_fixture() {
    let v = validate(
        &fixture("rome-worker-service-nodeport-routing"),
        DEFAULT_PROTOCOL,
    )
    .unwrap();
    assert_eq!(v.table.rules.len(), 1);
    assert_eq!(v.table.rules[0].fwmark, Some(2));
    assert_eq!(v.table.rules[0].dst, Some(net("10.70.0.0/32")));
}

#[test]
fn protocol_is_stamped_everywhere() {
    let v = validate(&fixture("milan-gw-ext"), 3).unwrap();
    assert!(v.table.rules.iter().all(|r| r.protocol == 3));
    assert!(
        v.table
            .routes
            .iter()
            .all(|r| r.protocol == 3 && r.metric.is_none())
    );
}

#[test]
fn exact_error_for_a_bad_gateway_deep_in_the_object() {
    let mut o = object(json!([
        {"dst": "10.80.0.2/32", "routes": [{"dst": "10.80.0.2/32", "dev": "geneve0"}]},
        {"iif": "liqo-tunnel", "routes": [
            {"dst": "10.200.1.3/32", "gw": "10.80.0.2"},
            {"dst": "10.200.1.4/32", "gw": "10.80.0.2"},
            {"dst": "10.200.1.5/32", "gw": "10.80.0.2"},
            {"dst": "10.200.1.6/32", "gw": "10.80.0"}
        ]}
    ]));
    o.metadata.name = Some("rome-worker-gw-node".into());
    o.metadata.namespace = Some("liqo".into());
    let e = validate(&o, DEFAULT_PROTOCOL).unwrap_err();
    assert_eq!(
        e,
        ObjectError {
            object: "liqo/rome-worker-gw-node".into(),
            field: "spec.table.rules[1].routes[3].gw".into(),
            message: "\"10.80.0\" is not an IP address".into(),
        }
    );
    assert_eq!(
        e.to_string(),
        "liqo/rome-worker-gw-node: spec.table.rules[1].routes[3].gw: \"10.80.0\" is not an IP address"
    );
}

#[test]
fn object_and_table_names_are_required() {
    let mut o = object(json!([{"routes": []}]));
    o.metadata.name = None;
    assert_eq!(
        validate(&o, 114).unwrap_err().to_string(),
        "ns/: metadata.name: is required"
    );
    o.metadata.namespace = None;
    o.metadata.name = Some("o".into());
    o.spec.table.name = None;
    assert_eq!(
        validate(&o, 114).unwrap_err().to_string(),
        "o: spec.table.name: is required"
    );
    o.spec.table.name = Some(String::new());
    assert_eq!(
        validate(&o, 114).unwrap_err().to_string(),
        "o: spec.table.name: must not be empty"
    );
    o.spec.table.name = Some("my table".into());
    assert_eq!(
        validate(&o, 114).unwrap_err().to_string(),
        "o: spec.table.name: \"my table\" must not contain whitespace or control characters"
    );
    o.spec.table.name = Some("t\n".into());
    assert_eq!(
        validate(&o, 114).unwrap_err().to_string(),
        "o: spec.table.name: \"t\\n\" must not contain whitespace or control characters"
    );
}

#[test]
fn at_least_one_rule() {
    assert_eq!(
        error(json!([])),
        "ns/o: spec.table.rules: at least one rule is required"
    );
    let mut o = object(json!([]));
    o.spec.table.rules = None;
    assert_eq!(
        validate(&o, 114).unwrap_err().to_string(),
        "ns/o: spec.table.rules: at least one rule is required"
    );
}

#[test]
fn routes_must_be_present_but_may_be_empty() {
    assert_eq!(
        error(json!([{"iif": "a", "routes": []}, {"iif": "b"}])),
        "ns/o: spec.table.rules[1].routes: is required (an empty list is allowed)"
    );
    let v = ok(json!([{"iif": "a", "routes": []}]));
    assert!(v.table.routes.is_empty());
    assert_eq!(v.table.rules.len(), 1);
}

#[test]
fn route_dst_is_required() {
    assert_eq!(
        error(one_route(json!({"gw": "10.0.0.1"}))),
        "ns/o: spec.table.rules[0].routes[0].dst: is required"
    );
}

#[test]
fn cidr_fields_reject_bare_addresses_and_garbage() {
    let cases = [
        (
            json!([{"dst": "10.1.2.3", "routes": []}]),
            "ns/o: spec.table.rules[0].dst: \"10.1.2.3\" is not a CIDR: the /prefix is missing (write 10.1.2.3/32)",
        ),
        (
            json!([{"src": "2001:db8::1", "routes": []}]),
            "ns/o: spec.table.rules[0].src: \"2001:db8::1\" is not a CIDR: the /prefix is missing (write 2001:db8::1/128)",
        ),
        (
            one_route(json!({"dst": "10.0.0.1", "dev": "e"})),
            "ns/o: spec.table.rules[0].routes[0].dst: \"10.0.0.1\" is not a CIDR: the /prefix is missing (write 10.0.0.1/32)",
        ),
        (
            one_route(json!({"dst": "10.0.0.0/33", "dev": "e"})),
            "ns/o: spec.table.rules[0].routes[0].dst: \"10.0.0.0/33\" is not a CIDR",
        ),
        (
            one_route(json!({"dst": "2001:db8::/129", "dev": "e"})),
            "ns/o: spec.table.rules[0].routes[0].dst: \"2001:db8::/129\" is not a CIDR",
        ),
        (
            one_route(json!({"dst": "default", "dev": "e"})),
            "ns/o: spec.table.rules[0].routes[0].dst: \"default\" is not a CIDR",
        ),
        (
            one_route(json!({"dst": " 10.0.0.0/8", "dev": "e"})),
            "ns/o: spec.table.rules[0].routes[0].dst: \" 10.0.0.0/8\" is not a CIDR",
        ),
        (
            one_route(json!({"dst": "", "dev": "e"})),
            "ns/o: spec.table.rules[0].routes[0].dst: \"\" is not a CIDR",
        ),
    ];
    for (rules, want) in cases {
        assert_eq!(error(rules), want);
    }
}

#[test]
fn ip_fields_reject_cidrs_and_garbage() {
    let cases = [
        (
            one_route(json!({"dst": "10.0.0.0/8", "gw": "10.0.0.1/32"})),
            "ns/o: spec.table.rules[0].routes[0].gw: \"10.0.0.1/32\" is not an IP address",
        ),
        (
            one_route(json!({"dst": "10.0.0.0/8", "gw": "010.0.0.1"})),
            "ns/o: spec.table.rules[0].routes[0].gw: \"010.0.0.1\" is not an IP address",
        ),
        (
            one_route(json!({"dst": "10.0.0.0/8", "dev": "e", "src": "host"})),
            "ns/o: spec.table.rules[0].routes[0].src: \"host\" is not an IP address",
        ),
        (
            one_route(json!({"dst": "fe80::/64", "gw": "fe80::1%eth0"})),
            "ns/o: spec.table.rules[0].routes[0].gw: \"fe80::1%eth0\" is not an IP address",
        ),
    ];
    for (rules, want) in cases {
        assert_eq!(error(rules), want);
    }
}

#[test]
fn host_bits_are_cleared_with_a_warning() {
    let v = ok(
        json!([{"dst": "10.70.0.5/16", "routes": [{"dst": "10.70.0.5/16", "gw": "10.80.0.1"}]},
                      {"src": "2001:db8::1/32", "routes": []}]),
    );
    assert_eq!(v.table.rules[0].dst, Some(net("10.70.0.0/16")));
    assert_eq!(v.table.rules[1].src, Some(net("2001:db8::/32")));
    assert_eq!(v.table.rules[1].family, Family::V6);
    assert_eq!(v.table.routes[0].dst, net("10.70.0.0/16"));
    assert_eq!(
        v.warnings,
        [
            "ns/o: spec.table.rules[0].dst: \"10.70.0.5/16\" has host bits set; using 10.70.0.0/16",
            "ns/o: spec.table.rules[0].routes[0].dst: \"10.70.0.5/16\" has host bits set; using 10.70.0.0/16",
            "ns/o: spec.table.rules[1].src: \"2001:db8::1/32\" has host bits set; using 2001:db8::/32",
        ]
    );
}

#[test]
fn families_must_agree() {
    let cases = [
        (
            one_route(json!({"dst": "10.0.0.0/8", "gw": "2001:db8::1"})),
            "ns/o: spec.table.rules[0].routes[0].gw: 2001:db8::1 is IPv6 but dst 10.0.0.0/8 is IPv4",
        ),
        (
            one_route(json!({"dst": "2001:db8::/32", "gw": "10.0.0.1"})),
            "ns/o: spec.table.rules[0].routes[0].gw: 10.0.0.1 is IPv4 but dst 2001:db8::/32 is IPv6",
        ),
        (
            one_route(json!({"dst": "10.0.0.0/8", "dev": "e", "src": "::1"})),
            "ns/o: spec.table.rules[0].routes[0].src: ::1 is IPv6 but dst 10.0.0.0/8 is IPv4",
        ),
        (
            json!([{"src": "10.0.0.0/8", "dst": "2001:db8::/32", "routes": []}]),
            "ns/o: spec.table.rules[0].dst: 2001:db8::/32 is IPv6 but src 10.0.0.0/8 is IPv4; a rule has one address family",
        ),
    ];
    for (rules, want) in cases {
        assert_eq!(error(rules), want);
    }
}

#[test]
fn fwmark_and_priority_ranges() {
    for field in ["fwmark", "priority"] {
        let cases = [
            (json!(-1), "-1 is out of range 0..=4294967295"),
            (
                json!(4294967296u64),
                "4294967296 is out of range 0..=4294967295",
            ),
            (json!(1.5), "1.5 is not an integer"),
            (json!("7"), "\"7\" is not an integer"),
            (json!(true), "true is not an integer"),
        ];
        for (value, msg) in cases {
            let rules = json!([{"iif": "a", field: value, "routes": []}]);
            assert_eq!(
                error(rules),
                format!("ns/o: spec.table.rules[0].{field}: {msg}")
            );
        }
    }
    let v = ok(
        json!([{"fwmark": 4294967295u64, "priority": 4294967295u64, "routes": []},
                      {"fwmark": 1, "priority": 0, "routes": []},
                      {"iif": "a", "routes": []}]),
    );
    assert_eq!(v.table.rules[0].fwmark, Some(u32::MAX));
    assert_eq!(v.table.rules[0].priority, Some(u32::MAX));
    assert_eq!(
        (v.table.rules[1].fwmark, v.table.rules[1].priority),
        (Some(1), Some(0))
    );
    assert_eq!(
        (v.table.rules[2].fwmark, v.table.rules[2].priority),
        (None, None)
    );
}

#[test]
fn zero_fwmark_is_treated_as_absent() {
    let v = ok(json!([{"iif": "a", "fwmark": 0, "routes": []}]));
    assert_eq!(v.table.rules[0].fwmark, None);
    assert_eq!(
        v.warnings,
        [
            "ns/o: spec.table.rules[0].fwmark: 0 matches every packet (the kernel ignores a zero mark); treated as absent"
        ]
    );
}

#[test]
fn scope_names() {
    for (name, scope) in [
        ("global", Scope::Global),
        ("link", Scope::Link),
        ("host", Scope::Host),
        ("site", Scope::Site),
        ("nowhere", Scope::Nowhere),
    ] {
        let v = ok(one_route(
            json!({"dst": "10.0.0.0/8", "dev": "e", "scope": name}),
        ));
        assert_eq!(v.table.routes[0].scope, scope);
    }
    for bad in ["universe", "Link", ""] {
        assert_eq!(
            error(one_route(
                json!({"dst": "10.0.0.0/8", "dev": "e", "scope": bad})
            )),
            format!(
                "ns/o: spec.table.rules[0].routes[0].scope: {bad:?} is not one of global, link, host, site, nowhere"
            )
        );
    }
}

#[test]
fn defaults_follow_iproute2() {
    let v = ok(json!([{"iif": "a", "routes": [
        {"dst": "10.1.0.0/16", "dev": "e"},
        {"dst": "10.2.0.0/16", "gw": "10.1.0.1"},
        {"dst": "10.3.0.0/16", "gw": "10.1.0.1", "dev": "e"},
        {"dst": "10.4.0.0/16", "gw": "10.1.0.1", "dev": "e", "onlink": true, "scope": "link"}
    ]}]));
    let got: Vec<(Scope, bool)> = v.table.routes.iter().map(|r| (r.scope, r.onlink)).collect();
    assert_eq!(
        got,
        [
            (Scope::Link, false),
            (Scope::Global, false),
            (Scope::Global, false),
            (Scope::Link, true)
        ]
    );
}

#[test]
fn interface_names_follow_the_kernel() {
    let long = "a".repeat(16);
    let cases = [
        (
            "",
            "\"\" is not a valid interface name: it is empty".to_string(),
        ),
        (
            long.as_str(),
            format!("{long:?} is not a valid interface name: 16 bytes, at most 15 allowed"),
        ),
        (
            "a/b",
            "\"a/b\" is not a valid interface name: it contains '/'".to_string(),
        ),
        (
            "a b",
            "\"a b\" is not a valid interface name: it contains ' '".to_string(),
        ),
        (
            "a\tb",
            "\"a\\tb\" is not a valid interface name: it contains '\\t'".to_string(),
        ),
        (
            "a\0",
            "\"a\\0\" is not a valid interface name: it contains '\\0'".to_string(),
        ),
        (
            "eth0:1",
            "\"eth0:1\" is not a valid interface name: it contains ':'".to_string(),
        ),
        (
            ".",
            "\".\" is not a valid interface name: '.' and '..' are reserved".to_string(),
        ),
        (
            "..",
            "\"..\" is not a valid interface name: '.' and '..' are reserved".to_string(),
        ),
        (
            "ééééééé\u{e9}é",
            "\"ééééééééé\" is not a valid interface name: 18 bytes, at most 15 allowed".to_string(),
        ),
    ];
    for (name, msg) in &cases {
        assert_eq!(
            error(json!([{"iif": name, "routes": []}])),
            format!("ns/o: spec.table.rules[0].iif: {msg}")
        );
        assert_eq!(
            error(json!([{"oif": name, "routes": []}])),
            format!("ns/o: spec.table.rules[0].oif: {msg}")
        );
        assert_eq!(
            error(one_route(json!({"dst": "10.0.0.0/8", "dev": name}))),
            format!("ns/o: spec.table.rules[0].routes[0].dev: {msg}")
        );
    }
    let fifteen = "b".repeat(15);
    let v = ok(
        json!([{"iif": fifteen, "oif": "liqo.zgdhd2x5fc", "routes": [{"dst": "10.0.0.0/8", "dev": "veth-1_x.2"}]}]),
    );
    assert_eq!(v.table.rules[0].iif.as_deref(), Some(fifteen.as_str()));
    assert_eq!(v.table.routes[0].dev.as_deref(), Some("veth-1_x.2"));
}

#[test]
fn a_route_needs_a_gateway_or_a_device() {
    assert_eq!(
        error(one_route(json!({"dst": "10.0.0.0/8", "scope": "link"}))),
        "ns/o: spec.table.rules[0].routes[0]: needs gw or dev (the kernel cannot install a route with neither)"
    );
}

#[test]
fn onlink_needs_gateway_and_device() {
    assert_eq!(
        error(one_route(
            json!({"dst": "10.0.0.0/8", "gw": "10.0.0.1", "onlink": true})
        )),
        "ns/o: spec.table.rules[0].routes[0].onlink: needs dev (the kernel requires an output device for onlink)"
    );
    assert_eq!(
        error(one_route(
            json!({"dst": "10.0.0.0/8", "dev": "e", "onlink": true})
        )),
        "ns/o: spec.table.rules[0].routes[0].onlink: needs gw (onlink applies to a gateway)"
    );
    let v = ok(one_route(
        json!({"dst": "10.0.0.0/8", "dev": "e", "gw": "192.168.1.1", "onlink": true}),
    ));
    assert!(v.table.routes[0].onlink);
    let v = ok(one_route(
        json!({"dst": "10.0.0.0/8", "dev": "e", "onlink": false}),
    ));
    assert!(!v.table.routes[0].onlink);
}

#[test]
fn host_scope_cannot_have_a_gateway() {
    assert_eq!(
        error(one_route(
            json!({"dst": "10.0.0.0/8", "gw": "10.0.0.1", "scope": "host"})
        )),
        "ns/o: spec.table.rules[0].routes[0].scope: host scope cannot be used with a gateway (the kernel refuses it)"
    );
    let v = ok(one_route(
        json!({"dst": "10.0.0.1/32", "dev": "lo", "scope": "host"}),
    ));
    assert_eq!(v.table.routes[0].scope, Scope::Host);
}

#[test]
fn duplicate_rule_selectors_are_refused() {
    assert_eq!(
        error(json!([
            {"dst": "10.0.0.0/8", "iif": "a", "routes": []},
            {"dst": "10.1.0.0/16", "iif": "a", "routes": []},
            {"dst": "10.0.0.5/8", "iif": "a", "priority": 7, "routes": [{"dst": "10.9.0.0/16", "dev": "e"}]}
        ])),
        "ns/o: spec.table.rules[2]: same src, dst, iif, oif and fwmark as spec.table.rules[0] (merge their routes into one rule)"
    );
    // Differing in any one selector field is fine.
    let v = ok(json!([
        {"iif": "a", "routes": []},
        {"iif": "a", "oif": "b", "routes": []},
        {"iif": "a", "fwmark": 1, "routes": []},
        {"iif": "a", "src": "10.0.0.0/8", "routes": []},
        {"iif": "a", "dst": "10.0.0.0/8", "routes": []},
        {"iif": "b", "routes": []}
    ]));
    assert_eq!(v.table.rules.len(), 6);
}

#[test]
fn identical_routes_are_merged() {
    let v = ok(json!([
        {"iif": "a", "routes": [{"dst": "10.0.0.0/8", "gw": "10.1.1.1"}, {"dst": "10.2.0.0/16", "dev": "e"}]},
        {"iif": "b", "routes": [{"dst": "10.0.0.5/8", "gw": "10.1.1.1", "scope": "global", "onlink": false,
                                 "targetRef": {"kind": "Pod", "name": "p"}}]}
    ]));
    assert_eq!(v.table.routes.len(), 2);
    // Across rules it is the normal pattern (milan-gw-ext): only the host-bits warning.
    assert_eq!(
        v.warnings,
        [
            "ns/o: spec.table.rules[1].routes[0].dst: \"10.0.0.5/8\" has host bits set; using 10.0.0.0/8"
        ]
    );

    let v = ok(
        json!([{"iif": "a", "routes": [{"dst": "10.0.0.0/8", "dev": "e"}, {"dst": "10.0.0.0/8", "dev": "e"}]}]),
    );
    assert_eq!(v.table.routes.len(), 1);
    assert_eq!(
        v.warnings,
        [
            "ns/o: spec.table.rules[0].routes[1]: repeats spec.table.rules[0].routes[0] (same dst, same route); ignored"
        ]
    );
}

#[test]
fn conflicting_routes_for_one_dst_are_refused() {
    assert_eq!(
        error(json!([
            {"iif": "a", "routes": [{"dst": "10.9.0.0/16", "dev": "e"}, {"dst": "10.0.0.0/8", "gw": "10.1.1.1", "dev": "e"}]},
            {"iif": "b", "routes": [{"dst": "10.0.0.0/8", "gw": "10.1.1.2", "dev": "f"}]}
        ])),
        "ns/o: spec.table.rules[1].routes[0]: dst 10.0.0.0/8 is also routed by spec.table.rules[0].routes[1] \
         with a different gw, dev; a table holds one route per dst"
    );
    assert_eq!(
        error(json!([{"iif": "a", "routes": [
            {"dst": "10.0.0.0/8", "dev": "e"},
            {"dst": "10.0.0.0/8", "dev": "e", "scope": "global"}
        ]}])),
        "ns/o: spec.table.rules[0].routes[1]: dst 10.0.0.0/8 is also routed by spec.table.rules[0].routes[0] \
         with a different scope; a table holds one route per dst"
    );
}

#[test]
fn rule_family_follows_src_dst_then_routes() {
    let v = ok(json!([
        {"iif": "v6only", "routes": [{"dst": "2001:db8:1::/48", "gw": "fe80::1", "dev": "e"}]},
        {"iif": "mixed", "routes": [{"dst": "10.0.0.0/8", "dev": "e"}, {"dst": "2001:db8:2::/48", "dev": "e"}]},
        {"dst": "2001:db8::/32", "routes": [{"dst": "10.1.0.0/16", "dev": "e"}]},
        {"src": "10.5.0.0/16", "routes": []}
    ]));
    let got: Vec<(Option<&str>, Family)> = v
        .table
        .rules
        .iter()
        .map(|r| (r.iif.as_deref(), r.family))
        .collect();
    assert_eq!(
        got,
        [
            (Some("v6only"), Family::V6),
            (Some("mixed"), Family::V4),
            (Some("mixed"), Family::V6),
            (None, Family::V6),
            (None, Family::V4),
        ]
    );
}

#[test]
fn rules_without_routes_or_addresses_take_the_table_families() {
    let v = ok(json!([
        {"iif": "a", "routes": []},
        {"iif": "b", "routes": [{"dst": "2001:db8::/32", "dev": "e"}]}
    ]));
    assert_eq!(
        v.table.rules.iter().map(|r| r.family).collect::<Vec<_>>(),
        [Family::V6, Family::V6]
    );
    let v = ok(json!([{"iif": "a", "routes": []}]));
    assert_eq!(v.table.rules[0].family, Family::V4);
}

#[test]
fn ipv6_end_to_end() {
    let v = ok(json!([{
        "src": "fd00:10::/64", "iif": "liqo-tunnel", "fwmark": 16, "priority": 1000,
        "routes": [
            {"dst": "fd00:200::/48", "gw": "fe80::1", "dev": "liqo.gnv0", "onlink": true, "src": "fd00:10::1"},
            {"dst": "fd00:80::2/128", "dev": "liqo.gnv0", "scope": "link"},
            {"dst": "::/0", "gw": "fd00:80::2"}
        ]
    }]));
    let t = &v.table;
    assert_eq!(
        t.rules,
        [Rule {
            family: Family::V6,
            table: table_id("t"),
            priority: Some(1000),
            src: Some(net("fd00:10::/64")),
            dst: None,
            iif: Some("liqo-tunnel".into()),
            oif: None,
            fwmark: Some(16),
            protocol: DEFAULT_PROTOCOL,
        }]
    );
    let dsts: Vec<String> = t.routes.iter().map(|r| r.dst.to_string()).collect();
    assert_eq!(dsts, ["::/0", "fd00:80::2/128", "fd00:200::/48"]);
    assert_eq!(t.routes[2].gateway, Some(ip("fe80::1")));
    assert_eq!(t.routes[2].prefsrc, Some(ip("fd00:10::1")));
    assert!(t.routes[2].onlink);
    // IPv6 routes have no scope in the kernel (it reports universe for
    // all), so a gateway-less IPv6 route is global too.
    assert_eq!(
        (t.routes[0].scope, t.routes[1].scope),
        (Scope::Global, Scope::Global)
    );
    assert!(v.warnings.is_empty(), "{:?}", v.warnings);
}

#[test]
fn a_rule_matching_everything_is_refused_unless_allowed() {
    let rules = json!([{"priority": 5, "routes": [{"dst": "10.0.0.0/8", "dev": "e"}]}]);
    assert_eq!(
        error(rules.clone()),
        "ns/o: spec.table.rules[0]: has no src, dst, iif, oif or fwmark: it would send all \
         traffic to this table; give it a selector (or accept it with --allow-match-all)"
    );
    // A zero fwmark is no selector either.
    let zero = json!([{"fwmark": 0, "routes": []}]);
    assert!(error(zero).contains("has no src, dst, iif, oif or fwmark"));
    let policy = Policy {
        allow_match_all: true,
        ..Policy::new(DEFAULT_PROTOCOL)
    };
    let v = validate_with(&object(rules), &policy).unwrap();
    assert_eq!(v.table.rules.len(), 1);
    assert_eq!(
        v.warnings,
        [
            "ns/o: spec.table.rules[0]: has no src, dst, iif, oif or fwmark: it sends all \
             traffic to this table (accepted by --allow-match-all)"
        ]
    );
}

#[test]
fn rules_and_routes_per_object_are_limited() {
    let policy = Policy {
        max_rules: 2,
        max_routes: 3,
        ..Policy::new(DEFAULT_PROTOCOL)
    };
    let route = |i: u32| json!({"dst": format!("10.0.0.{i}/32"), "dev": "e"});
    let rules = json!([{"iif": "a", "routes": [route(1), route(2)]},
                       {"iif": "b", "routes": [route(3)]},
                       {"iif": "c", "routes": []}]);
    assert_eq!(
        validate_with(&object(rules), &policy)
            .unwrap_err()
            .to_string(),
        "ns/o: spec.table.rules[2]: more than 2 rules in one object (the limit; see --max-rules)"
    );
    let rules = json!([{"iif": "a", "routes": [route(1), route(2)]},
                       {"iif": "b", "routes": [route(3), route(4)]}]);
    assert_eq!(
        validate_with(&object(rules), &policy)
            .unwrap_err()
            .to_string(),
        "ns/o: spec.table.rules[1].routes[1]: more than 3 routes in one object (the limit; see --max-routes)"
    );
    assert_eq!((MAX_RULES, MAX_ROUTES), (10_000, 200_000));
}

#[test]
fn first_error_in_document_order_wins() {
    assert_eq!(
        error(json!([
            {"dst": "bad", "iif": "also/bad", "routes": [{"gw": "nope"}]}
        ])),
        "ns/o: spec.table.rules[0].dst: \"bad\" is not a CIDR"
    );
}
