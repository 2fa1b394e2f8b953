use super::*;
use crate::explain::origin;
use crate::model::desired;

fn words(s: &str) -> Vec<String> {
    s.split_whitespace().map(String::from).collect()
}

fn flow(s: &str) -> Flow {
    Flow::parse(&words(s)).unwrap()
}

fn rule(table: u32, priority: u32, f: impl FnOnce(&mut Rule)) -> Rule {
    let mut r = Rule {
        family: Family::V4,
        table,
        priority: Some(priority),
        src: None,
        dst: None,
        iif: None,
        oif: None,
        fwmark: None,
        protocol: 114,
    };
    f(&mut r);
    r
}

#[test]
fn parses_ip_route_get_words() {
    let f = flow("10.0.0.1 from 10.1.0.1 iif eth0 oif eth1 mark 0x2");
    assert_eq!(f.dst, Some("10.0.0.1".parse().unwrap()));
    assert_eq!(f.src, Some("10.1.0.1".parse().unwrap()));
    assert_eq!(f.iif.as_deref(), Some("eth0"));
    assert_eq!(f.oif.as_deref(), Some("eth1"));
    assert_eq!(f.mark, Some(2));
    assert_eq!(
        f.words(),
        "10.0.0.1 from 10.1.0.1 iif eth0 oif eth1 mark 0x2"
    );
    assert_eq!(flow("to fd00::1 mark 7").mark, Some(7));
    let err = |s: &str| Flow::parse(&words(s)).unwrap_err();
    assert_eq!(err(""), "no destination given");
    assert_eq!(
        err("10.0.0.1 from fd00::1"),
        "from fd00::1 and 10.0.0.1 are of different families"
    );
    assert_eq!(err("10.0.0.1 mark x"), "mark \"x\" is not a 32-bit number");
    assert_eq!(err("10.0.0.1 iif"), "iif needs a value");
    assert_eq!(err("10.0.0.1 10.0.0.2"), "unexpected \"10.0.0.2\"");
    assert_eq!(err("10.0.0.1 to 10.0.0.2"), "unexpected \"to\"");
    assert_eq!(err("nope"), "destination \"nope\" is not an IP address");
}

#[test]
fn rules_match_as_the_kernel_matches_them() {
    let f = flow("10.200.1.3 from 10.61.0.5 iif liqo-tunnel mark 2");
    let yes = |r: Rule| assert!(rule_matches(&r, &f), "{r:?}");
    let no = |r: Rule| assert!(!rule_matches(&r, &f), "{r:?}");
    yes(rule(1, 1, |_| {}));
    yes(rule(1, 1, |r| r.iif = Some("liqo-tunnel".into())));
    no(rule(1, 1, |r| r.iif = Some("eth0".into())));
    yes(rule(1, 1, |r| {
        r.dst = Some("10.200.0.0/16".parse().unwrap())
    }));
    no(rule(1, 1, |r| {
        r.dst = Some("10.201.0.0/16".parse().unwrap())
    }));
    yes(rule(1, 1, |r| {
        r.src = Some("10.61.0.0/16".parse().unwrap())
    }));
    no(rule(1, 1, |r| {
        r.src = Some("10.62.0.0/16".parse().unwrap())
    }));
    yes(rule(1, 1, |r| r.fwmark = Some(2)));
    no(rule(1, 1, |r| r.fwmark = Some(1)));
    no(rule(1, 1, |r| r.oif = Some("eth1".into())));
    no(rule(1, 1, |r| r.family = Family::V6));
    // Locally generated traffic comes in on lo, has no mark and no source.
    let local = flow("10.200.1.3");
    assert!(rule_matches(
        &rule(1, 1, |r| r.iif = Some("lo".into())),
        &local
    ));
    assert!(!rule_matches(&rule(1, 1, |r| r.fwmark = Some(2)), &local));
    assert!(!rule_matches(
        &rule(1, 1, |r| r.src = Some("10.0.0.0/8".parse().unwrap())),
        &local
    ));
    assert!(rule_matches(
        &rule(1, 1, |r| r.src = Some("0.0.0.0/0".parse().unwrap())),
        &local
    ));
    let with_oif = flow("10.200.1.3 oif eth1");
    assert!(rule_matches(
        &rule(1, 1, |r| r.oif = Some("eth1".into())),
        &with_oif
    ));
}

#[test]
fn matching_rules_come_in_priority_order_ties_in_dump_order() {
    let rules = vec![
        rule(3, 200, |_| {}),
        rule(1, 100, |_| {}),
        rule(2, 100, |_| {}),
        rule(4, 50, |r| r.fwmark = Some(9)),
    ];
    let order: Vec<u32> = matching_rules(&rules, &flow("10.0.0.1"))
        .iter()
        .map(|r| r.table)
        .collect();
    assert_eq!(order, [1, 2, 3]);
}

const OBJECT: &str = r#"
apiVersion: networking.liqo.io/v1beta1
kind: RouteConfiguration
metadata: {name: rome-worker-gw-node, namespace: tenant}
spec:
  table:
    name: rome-worker
    rules:
    - dst: 10.80.0.2/32
      routes:
      - {dst: 10.80.0.2/32, dev: eth1, scope: link}
    - iif: liqo-tunnel
      routes:
      - {dst: 10.200.1.3/32, gw: 10.80.0.2, targetRef: {kind: Pod, namespace: liqo, name: crd-replicator}}
"#;

struct Bed {
    origins: Origins,
    id: u32,
    rules: Vec<Rule>,
}

fn bed() -> Bed {
    let (objects, errors) = crate::model::parse_documents(OBJECT, "test");
    assert!(errors.is_empty(), "{errors:?}");
    let d = desired::build(&objects, 114);
    assert_eq!(d.tables.len(), 1, "{:?}", d.failures);
    let origins = origin::build(&objects, &d.tables);
    let id = crate::table_id::table_id("rome-worker");
    let rules = vec![
        rule(255, 0, |_| {}),
        rule(id, 32764, |r| r.dst = Some("10.80.0.2/32".parse().unwrap())),
        rule(id, 32765, |r| r.iif = Some("liqo-tunnel".into())),
        rule(254, 32766, |r| r.protocol = 2),
        rule(253, 32767, |r| r.protocol = 2),
    ];
    Bed { origins, id, rules }
}

fn found(table: u32, dst: &str, gw: Option<&str>, protocol: u8) -> RouteMatch {
    RouteMatch {
        table,
        dst: dst.parse().unwrap(),
        kind: "unicast",
        gateway: gw.map(|g| g.parse().unwrap()),
        dev: Some("eth1".into()),
        scope: 0,
        protocol,
        prefsrc: None,
        metric: None,
    }
}

fn run(
    bed: &Bed,
    f: &Flow,
    answer: Result<&RouteMatch, String>,
    with_routes: &[u32],
) -> (Explanation, Vec<u32>) {
    let names = |_: u32| None;
    let cx = Context {
        flow: f,
        rules: &bed.rules,
        origins: &bed.origins,
        protocol: 114,
        names: &names,
    };
    let mut asked = Vec::new();
    let mut routes_for = |t: u32| {
        asked.push(t);
        Ok(with_routes.contains(&t))
    };
    let e = explain(&cx, answer, &mut routes_for);
    (e, asked)
}

#[test]
fn our_table_names_object_rule_route_and_target() {
    let b = bed();
    let f = flow("10.200.1.3 from 10.61.0.5 iif liqo-tunnel");
    let got = found(b.id, "10.200.1.3/32", Some("10.80.0.2"), 114);
    let (e, asked) = run(&b, &f, Ok(&got), &[]);
    assert_eq!(e.decided_by, Decider::Routecfg);
    // The local table comes first and has no route for it: passed.
    assert_eq!(asked, [255]);
    assert_eq!(e.passed.len(), 1, "{e:?}");
    assert_eq!(
        e.rule.as_deref(),
        Some("32765:\tfrom all iif liqo-tunnel lookup rome-worker")
    );
    assert_eq!(e.object.as_deref(), Some("tenant/rome-worker-gw-node"));
    assert_eq!(e.spec_rule.as_ref().unwrap().index, 1);
    let route = e.spec_route.as_ref().unwrap();
    assert_eq!(route.field, "spec.table.rules[1].routes[0]");
    assert_eq!(
        route.target_ref.as_ref().unwrap().name.as_deref(),
        Some("crd-replicator")
    );
    assert_eq!(
        e.answer,
        "10.200.1.3 from 10.61.0.5 via 10.80.0.2 dev eth1 table rome-worker iif liqo-tunnel"
    );
    assert_eq!(
        e.summary,
        format!(
            "tenant/rome-worker-gw-node, table rome-worker ({}): rules[1].routes[0], targetRef Pod liqo/crd-replicator",
            b.id
        )
    );
    assert!(e.notes.is_empty(), "{:?}", e.notes);
    let text = render(&e);
    assert!(text.contains("    rule    32765:"), "{text}");
    assert!(
        text.contains("    decided tenant/rome-worker-gw-node"),
        "{text}"
    );
}

#[test]
fn route_listed_under_another_rule_is_found_and_noted() {
    let b = bed();
    // Locally generated traffic to the node: rule 0 (to 10.80.0.2).
    let f = flow("10.80.0.2");
    let got = found(b.id, "10.80.0.2/32", None, 114);
    let (e, _) = run(&b, &f, Ok(&got), &[]);
    assert_eq!(e.spec_rule.as_ref().unwrap().index, 0);
    assert_eq!(
        e.spec_route.as_ref().unwrap().field,
        "spec.table.rules[0].routes[0]"
    );
    assert!(e.notes.is_empty(), "{:?}", e.notes);
}

#[test]
fn main_local_foreign_and_no_route_are_not_ours() {
    let b = bed();
    let f = flow("192.168.1.1");
    let (e, _) = run(
        &b,
        &f,
        Ok(&found(254, "0.0.0.0/0", Some("10.0.0.1"), 4)),
        &[],
    );
    assert_eq!(e.decided_by, Decider::Main);
    assert_eq!(
        e.summary,
        "not routecfg's decision: the kernel's main table"
    );
    assert_eq!(e.rule.as_deref(), Some("32766:\tfrom all lookup main"));
    assert_eq!(
        e.route.as_deref(),
        Some("default via 10.0.0.1 dev eth1 proto 4")
    );
    assert!(e.object.is_none());

    let (e, _) = run(&b, &f, Ok(&found(255, "192.168.1.1/32", None, 2)), &[]);
    assert_eq!(e.decided_by, Decider::Local);

    let foreign = Rule {
        table: 100,
        priority: Some(10),
        protocol: 4,
        ..b.rules[0].clone()
    };
    let mut b2 = bed();
    b2.rules.push(foreign);
    let (e, _) = run(&b2, &f, Ok(&found(100, "192.168.0.0/16", None, 4)), &[]);
    assert_eq!(e.decided_by, Decider::Foreign);
    assert_eq!(
        e.summary,
        "not routecfg's decision: table 100 belongs to no RouteConfiguration here"
    );
    assert_eq!(e.rule.as_deref(), Some("10:\tfrom all lookup 100"));

    let (e, _) = run(
        &b,
        &f,
        Err("route get fibmatch 192.168.1.1: ENETUNREACH".into()),
        &[],
    );
    assert_eq!(e.decided_by, Decider::None);
    assert_eq!(
        e.summary,
        "no route: route get fibmatch 192.168.1.1: ENETUNREACH"
    );
}

#[test]
fn a_skipped_table_with_a_route_is_reported_not_guessed() {
    let b = bed();
    let f = flow("10.200.1.3 iif liqo-tunnel");
    // The kernel answered main although our rule matches first and our
    // table has the route: something we cannot see decided.
    let (e, _) = run(&b, &f, Ok(&found(254, "0.0.0.0/0", None, 4)), &[b.id]);
    assert!(
        e.notes
            .iter()
            .any(|n| n.contains("a selector routecfg does not read")),
        "{:?}",
        e.notes
    );
}

#[test]
fn stray_rule_and_route_in_our_table_are_named() {
    let mut b = bed();
    b.rules.push(rule(b.id, 100, |r| {
        r.fwmark = Some(7);
        r.protocol = 4;
    }));
    let f = flow("10.9.9.9 mark 7");
    let (e, _) = run(&b, &f, Ok(&found(b.id, "10.9.9.0/24", None, 4)), &[]);
    assert_eq!(e.decided_by, Decider::Routecfg);
    assert!(e.spec_rule.is_none() && e.spec_route.is_none());
    assert!(
        e.notes
            .iter()
            .any(|n| n.contains("rule is not in") && n.contains("proto 4")),
        "{:?}",
        e.notes
    );
    assert!(
        e.notes
            .iter()
            .any(|n| n.contains("route 10.9.9.0/24 is not in")),
        "{:?}",
        e.notes
    );
}
