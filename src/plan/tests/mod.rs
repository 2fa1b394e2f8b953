//! Planner tests. Fixtures build desired and kernel objects the way the
//! model and the kernel module will: desired rules without priority,
//! kernel rules with the priority the kernel picked, kernel routes with
//! the dev the kernel chose and the metric it reports.

mod next_hops;
mod order;
mod plan_stats;
mod render;
mod routes;
mod rules;
mod seed;
mod sim;

use crate::plan::{Pending, Plan, Prune, plan};
use crate::routing::{DEFAULT_PROTOCOL, Family, Op, Route, Rule, Scope, Snapshot, Table};
use ipnet::IpNet;
use std::net::IpAddr;

pub(super) const OWN: u8 = DEFAULT_PROTOCOL;

pub(super) fn net(s: &str) -> IpNet {
    s.parse()
        .unwrap_or_else(|e| panic!("bad test prefix {s}: {e}"))
}

pub(super) fn ip(s: &str) -> IpAddr {
    s.parse()
        .unwrap_or_else(|e| panic!("bad test address {s}: {e}"))
}

/// A desired IPv4 rule with nothing but a table.
pub(super) fn rule(table: u32) -> Rule {
    Rule {
        family: Family::V4,
        table,
        priority: None,
        src: None,
        dst: None,
        iif: None,
        oif: None,
        fwmark: None,
        protocol: OWN,
    }
}

pub(super) fn rule_iif(table: u32, iif: &str) -> Rule {
    Rule {
        iif: Some(iif.to_string()),
        ..rule(table)
    }
}

pub(super) fn rule_dst(table: u32, dst: &str) -> Rule {
    let dst = net(dst);
    Rule {
        family: Family::of_net(&dst),
        dst: Some(dst),
        ..rule(table)
    }
}

/// The same rule as the kernel reports it once added.
pub(super) fn in_kernel(rule: &Rule, priority: u32) -> Rule {
    Rule {
        priority: Some(priority),
        ..rule.clone()
    }
}

/// A desired link-scope route (`dst dev X scope link`).
pub(super) fn link_route(table: u32, dst: &str, dev: &str) -> Route {
    Route {
        table,
        dst: net(dst),
        gateway: None,
        prefsrc: None,
        dev: Some(dev.to_string()),
        onlink: false,
        scope: Scope::Link,
        protocol: OWN,
        metric: None,
        nexthops: Default::default(),
    }
}

/// A desired route via a gateway, with or without an explicit dev.
pub(super) fn gw_route(table: u32, dst: &str, gw: &str, dev: Option<&str>) -> Route {
    Route {
        table,
        dst: net(dst),
        gateway: Some(ip(gw)),
        prefsrc: None,
        dev: dev.map(str::to_string),
        onlink: false,
        scope: Scope::Global,
        protocol: OWN,
        metric: None,
        nexthops: Default::default(),
    }
}

/// The route as the kernel dumps it: with the dev it resolved and the
/// metric it reports.
pub(super) fn dumped(route: &Route, dev: &str, metric: Option<u32>) -> Route {
    Route {
        dev: Some(dev.to_string()),
        metric,
        ..route.clone()
    }
}

pub(super) fn table(id: u32, rules: Vec<Rule>, routes: Vec<Route>) -> Table {
    Table {
        id,
        name: format!("t{id}"),
        owner: format!("liqo/t{id}"),
        rules,
        routes,
    }
}

pub(super) fn snapshot(
    rules: Vec<Rule>,
    routes: Vec<Route>,
    dumped: &[u32],
    links: &[&str],
) -> Snapshot {
    Snapshot {
        rules,
        routes,
        dumped_tables: dumped.to_vec(),
        links: links.iter().map(|l| l.to_string()).collect(),
    }
}

pub(super) fn plan_nothing(desired: &[Table], snap: &Snapshot) -> Plan {
    plan(desired, snap, Prune::Nothing)
}

pub(super) fn adds(p: &Plan) -> Vec<&Rule> {
    p.ops
        .iter()
        .filter_map(|op| match op {
            Op::AddRule(r) => Some(r),
            _ => None,
        })
        .collect()
}

pub(super) fn rule_dels(p: &Plan) -> Vec<&Rule> {
    p.ops
        .iter()
        .filter_map(|op| match op {
            Op::DelRule(r) => Some(r),
            _ => None,
        })
        .collect()
}

pub(super) fn replaces(p: &Plan) -> Vec<&Route> {
    p.ops
        .iter()
        .filter_map(|op| match op {
            Op::ReplaceRoute(r) => Some(r),
            _ => None,
        })
        .collect()
}

pub(super) fn route_dels(p: &Plan) -> Vec<&Route> {
    p.ops
        .iter()
        .filter_map(|op| match op {
            Op::DelRoute(r) => Some(r),
            _ => None,
        })
        .collect()
}

pub(super) fn pending_reasons(p: &Plan) -> Vec<(u32, IpNet, &str)> {
    p.pending
        .iter()
        .map(
            |Pending {
                 table,
                 route,
                 reason,
             }| (*table, route.dst, reason.as_str()),
        )
        .collect()
}
