//! Renders ops as `ip` commands, so dry runs and logs speak the language
//! operators already use and a printed plan can be replayed by hand.

use crate::routing::{Family, Op, Route, Rule, Scope};
use std::fmt::Write;
use std::net::IpAddr;

/// Renders one op as an iproute2 command line that has the same effect.
///
/// Table ids stay numeric (the rt_tables file may not name them on the
/// host where the command is replayed); a known name is appended as a
/// comment. Deletes render the dumped object including its priority or
/// metric, so the replayed command removes exactly that object.
pub fn render(op: &Op, names: &impl Fn(u32) -> Option<String>) -> String {
    let mut line = match op {
        Op::AddRule(rule) => render_rule("add", rule),
        Op::DelRule(rule) => render_rule("del", rule),
        Op::ReplaceRoute(route) => render_route("replace", route),
        Op::DelRoute(route) => render_route("del", route),
    };
    if let Some(name) = names(op.table()) {
        // Writing to a String cannot fail.
        let _ = write!(line, "  # table {name}");
    }
    line
}

fn family_flag(family: Family) -> &'static str {
    match family {
        Family::V4 => "ip",
        Family::V6 => "ip -6",
    }
}

fn render_rule(verb: &str, rule: &Rule) -> String {
    let mut s = format!("{} rule {verb}", family_flag(rule.family));
    if let Some(priority) = rule.priority {
        let _ = write!(s, " priority {priority}");
    }
    if let Some(src) = &rule.src {
        let _ = write!(s, " from {src}");
    }
    if let Some(dst) = &rule.dst {
        let _ = write!(s, " to {dst}");
    }
    if let Some(mark) = rule.fwmark {
        let _ = write!(s, " fwmark {mark:#x}");
    }
    if let Some(iif) = &rule.iif {
        let _ = write!(s, " iif {iif}");
    }
    if let Some(oif) = &rule.oif {
        let _ = write!(s, " oif {oif}");
    }
    let _ = write!(s, " lookup {} proto {}", rule.table, rule.protocol);
    s
}

fn render_route(verb: &str, route: &Route) -> String {
    let family = route.family();
    let mut s = format!("{} route {verb} {}", family_flag(family), route.dst);
    if let Some(gateway) = route.gateway {
        if Family::of(gateway) == family {
            let _ = write!(s, " via {gateway}");
        } else {
            // A gateway of the other family needs its family spelled out.
            let _ = write!(s, " via {} {gateway}", Family::of(gateway));
        }
    }
    if let Some(dev) = &route.dev {
        let _ = write!(s, " dev {dev}");
    }
    if route.onlink {
        s.push_str(" onlink");
    }
    if let Some(prefsrc) = route.prefsrc {
        let _ = write!(s, " src {prefsrc}");
    }
    let _ = write!(s, " table {} proto {}", route.table, route.protocol);
    if route.scope != implied_scope(family, route.gateways().next()) {
        let _ = write!(s, " scope {}", route.scope.name());
    }
    if let Some(metric) = route.metric {
        let _ = write!(s, " metric {metric}");
    }
    // Last: `ip` reads everything after the first `nexthop` as next hops.
    for hop in route.nexthops.iter() {
        let _ = write!(s, " {hop}");
    }
    s
}

/// The scope `ip route add` picks when none is given: link for an IPv4
/// route without gateway, global otherwise. Printing the scope only when
/// it differs keeps the common commands short and still exact.
fn implied_scope(family: Family, gateway: Option<IpAddr>) -> Scope {
    match (family, gateway) {
        (Family::V4, None) => Scope::Link,
        _ => Scope::Global,
    }
}
