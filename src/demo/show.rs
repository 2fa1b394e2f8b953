//! Kernel rules and routes as `ip rule` and `ip route show table T` print
//! them, so the demo's output reads like what operators see on a real
//! gateway. Table ids are shown by name (the demo knows every name), and
//! the protocol mark is left out (the demo states it once).

use crate::routing::{Family, Route, Rule, Scope};
use ipnet::IpNet;
use std::fmt::Write;

/// `32765:<TAB>from all iif liqo-tunnel lookup rome-worker` (a tab after
/// the priority, as `ip rule` prints it).
pub fn rule_line(rule: &Rule, table: &str) -> String {
    let mut s = match rule.priority {
        Some(p) => format!("{p}:\t"),
        None => String::from("?:\t"),
    };
    match &rule.src {
        Some(src) => s.push_str(&format!("from {}", net(src))),
        None => s.push_str("from all"),
    }
    if let Some(dst) = &rule.dst {
        let _ = write!(s, " to {}", net(dst));
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
    let _ = write!(s, " lookup {table}");
    s
}

/// `10.200.1.3 via 10.80.0.2 dev liqo.zgdhd2x5fc`, `10.80.0.2 dev
/// liqo.zgdhd2x5fc scope link`.
pub fn route_line(route: &Route) -> String {
    let mut s = net(&route.dst);
    if let Some(gw) = route.gateway {
        let _ = write!(s, " via {gw}");
    }
    if let Some(dev) = &route.dev {
        let _ = write!(s, " dev {dev}");
    }
    if route.scope != Scope::Global {
        let _ = write!(s, " scope {}", route.scope.name());
    }
    if let Some(src) = route.prefsrc {
        let _ = write!(s, " src {src}");
    }
    if route.onlink {
        s.push_str(" onlink");
    }
    if let Some(metric) = route
        .metric
        .filter(|&m| m != 0 || route.family() == Family::V6)
    {
        let _ = write!(s, " metric {metric}");
    }
    s
}

/// Host prefixes without their length, as iproute2 prints them.
fn net(n: &IpNet) -> String {
    if n.prefix_len() == n.max_prefix_len() {
        n.addr().to_string()
    } else {
        n.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::routing::DEFAULT_PROTOCOL;

    fn route(dst: &str, gw: Option<&str>, dev: Option<&str>, scope: Scope) -> Route {
        Route {
            table: 1000,
            dst: dst.parse().unwrap(),
            gateway: gw.map(|g| g.parse().unwrap()),
            prefsrc: None,
            dev: dev.map(String::from),
            onlink: false,
            scope,
            protocol: DEFAULT_PROTOCOL,
            metric: Some(0),
            nexthops: Default::default(),
        }
    }

    #[test]
    fn routes_read_like_ip_route_show() {
        assert_eq!(
            route_line(&route(
                "10.80.0.2/32",
                None,
                Some("liqo.zgdhd2x5fc"),
                Scope::Link
            )),
            "10.80.0.2 dev liqo.zgdhd2x5fc scope link"
        );
        assert_eq!(
            route_line(&route(
                "10.200.0.0/16",
                Some("169.254.18.1"),
                Some("liqo-tunnel"),
                Scope::Global
            )),
            "10.200.0.0/16 via 169.254.18.1 dev liqo-tunnel"
        );
    }

    #[test]
    fn rules_read_like_ip_rule() {
        let rule = Rule {
            family: Family::V4,
            table: 1000,
            priority: Some(32765),
            src: None,
            dst: Some("10.70.0.0/32".parse().unwrap()),
            iif: Some("liqo-tunnel".into()),
            oif: None,
            fwmark: Some(2),
            protocol: DEFAULT_PROTOCOL,
        };
        assert_eq!(
            rule_line(&rule, "rome-worker-service-nodeport-routing"),
            "32765:\tfrom all to 10.70.0.0 fwmark 0x2 iif liqo-tunnel lookup rome-worker-service-nodeport-routing"
        );
    }
}
