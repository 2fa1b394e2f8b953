//! `ip` command rendering. Every expected line here was also run by hand
//! with iproute2 6.1 in a scratch network namespace.

use super::*;
use crate::plan::render;

fn no_names(_: u32) -> Option<String> {
    None
}

fn rome(id: u32) -> Option<String> {
    (id == 210_412_509).then(|| "rome-worker".to_string())
}

#[test]
fn rule_add_with_name_suffix() {
    let op = Op::AddRule(rule_iif(210_412_509, "liqo-tunnel"));
    assert_eq!(
        render(&op, &rome),
        "ip rule add iif liqo-tunnel lookup 210412509 proto 114  # table rome-worker"
    );
    assert_eq!(
        render(&op, &no_names),
        "ip rule add iif liqo-tunnel lookup 210412509 proto 114"
    );
}

#[test]
fn rule_del_with_every_field() {
    let r = Rule {
        priority: Some(100),
        src: Some(net("10.0.0.0/24")),
        dst: Some(net("10.1.0.0/16")),
        iif: Some("a".into()),
        oif: Some("b".into()),
        fwmark: Some(26),
        protocol: 3,
        ..rule(7)
    };
    assert_eq!(
        render(&Op::DelRule(r), &no_names),
        "ip rule del priority 100 from 10.0.0.0/24 to 10.1.0.0/16 fwmark 0x1a iif a oif b lookup 7 proto 3"
    );
}

#[test]
fn ipv6_rule() {
    let op = Op::AddRule(rule_dst(5, "fd00::/64"));
    assert_eq!(
        render(&op, &no_names),
        "ip -6 rule add to fd00::/64 lookup 5 proto 114"
    );
}

#[test]
fn route_replace_via_gateway() {
    let op = Op::ReplaceRoute(gw_route(123, "10.0.0.0/24", "1.2.3.4", Some("x")));
    assert_eq!(
        render(&op, &no_names),
        "ip route replace 10.0.0.0/24 via 1.2.3.4 dev x table 123 proto 114"
    );
}

#[test]
fn link_scope_route_needs_no_scope_word() {
    let op = Op::ReplaceRoute(link_route(210_412_509, "10.80.0.2/32", "liqo.zgdhd2x5fc"));
    assert_eq!(
        render(&op, &rome),
        "ip route replace 10.80.0.2/32 dev liqo.zgdhd2x5fc table 210412509 proto 114  # table rome-worker"
    );
}

#[test]
fn onlink_src_and_unusual_scope_are_spelled_out() {
    let r = Route {
        onlink: true,
        prefsrc: Some(ip("10.80.0.9")),
        ..gw_route(9, "10.0.0.0/24", "1.2.3.4", Some("x"))
    };
    assert_eq!(
        render(&Op::ReplaceRoute(r), &no_names),
        "ip route replace 10.0.0.0/24 via 1.2.3.4 dev x onlink src 10.80.0.9 table 9 proto 114"
    );
    let global_direct = Route {
        scope: Scope::Global,
        ..link_route(9, "10.0.1.0/24", "x")
    };
    assert_eq!(
        render(&Op::ReplaceRoute(global_direct), &no_names),
        "ip route replace 10.0.1.0/24 dev x table 9 proto 114 scope global"
    );
    let host = Route {
        scope: Scope::Host,
        ..link_route(9, "10.0.3.0/24", "x")
    };
    assert_eq!(
        render(&Op::DelRoute(host), &no_names),
        "ip route del 10.0.3.0/24 dev x table 9 proto 114 scope host"
    );
}

#[test]
fn ipv6_route_del_carries_the_dumped_metric() {
    let r = dumped(&gw_route(5, "fd02::/64", "fd09::2", None), "d0", Some(1024));
    assert_eq!(
        render(&Op::DelRoute(r), &no_names),
        "ip -6 route del fd02::/64 via fd09::2 dev d0 table 5 proto 114 metric 1024"
    );
    let direct = Route {
        scope: Scope::Global,
        ..dumped(&link_route(5, "fd00::/64", "d0"), "d0", Some(1024))
    };
    assert_eq!(
        render(&Op::DelRoute(direct), &no_names),
        "ip -6 route del fd00::/64 dev d0 table 5 proto 114 metric 1024"
    );
}

#[test]
fn gateway_of_the_other_family_names_its_family() {
    let r = Route {
        gateway: Some(ip("fd09::2")),
        ..gw_route(9, "10.0.4.0/24", "1.2.3.4", Some("x"))
    };
    assert_eq!(
        render(&Op::ReplaceRoute(r), &no_names),
        "ip route replace 10.0.4.0/24 via inet6 fd09::2 dev x table 9 proto 114"
    );
}
