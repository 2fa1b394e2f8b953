//! Rules and routes in `ip` words, for error contexts and log lines: what an
//! operator would type to reproduce the operation.

use crate::routing::{DEFAULT_PROTOCOL, Family, Op, Route, Rule, Scope};
use std::fmt;

/// An operation in `ip` words: adds and replaces read as the object,
/// deletes get a `delete ` prefix.
pub fn op_words(op: &Op) -> String {
    match op {
        Op::AddRule(r) => RuleWords(r).to_string(),
        Op::DelRule(r) => format!("delete {}", RuleWords(r)),
        Op::ReplaceRoute(r) => RouteWords(r).to_string(),
        Op::DelRoute(r) => format!("delete {}", RouteWords(r)),
    }
}

/// `route 10.0.0.0/24 via 10.1.0.1 dev eth0 table 1234`.
pub struct RouteWords<'a>(pub &'a Route);

impl fmt::Display for RouteWords<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let r = self.0;
        write!(f, "route {}", r.dst)?;
        if let Some(gw) = r.gateway {
            write!(f, " via {gw}")?;
        }
        if let Some(dev) = &r.dev {
            write!(f, " dev {dev}")?;
        }
        for hop in r.nexthops.iter() {
            write!(f, " {hop}")?;
        }
        if let Some(src) = r.prefsrc {
            write!(f, " src {src}")?;
        }
        if r.scope != Scope::Global {
            write!(f, " scope {}", r.scope.name())?;
        }
        if r.onlink {
            f.write_str(" onlink")?;
        }
        if r.protocol != DEFAULT_PROTOCOL {
            write!(f, " proto {}", r.protocol)?;
        }
        if let Some(m) = r.metric {
            write!(f, " metric {m}")?;
        }
        write!(f, " table {}", r.table)
    }
}

/// `rule pref 100 from 10.0.0.0/8 iif eth0 lookup 1234` (`rule -6 ...` for
/// IPv6 rules, whose selectors may be all empty).
pub struct RuleWords<'a>(pub &'a Rule);

impl fmt::Display for RuleWords<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let r = self.0;
        f.write_str("rule")?;
        if r.family == Family::V6 {
            f.write_str(" -6")?;
        }
        if let Some(p) = r.priority {
            write!(f, " pref {p}")?;
        }
        match &r.src {
            Some(src) => write!(f, " from {src}")?,
            None => f.write_str(" from all")?,
        }
        if let Some(dst) = &r.dst {
            write!(f, " to {dst}")?;
        }
        if let Some(iif) = &r.iif {
            write!(f, " iif {iif}")?;
        }
        if let Some(oif) = &r.oif {
            write!(f, " oif {oif}")?;
        }
        if let Some(mark) = r.fwmark {
            write!(f, " fwmark {mark:#x}")?;
        }
        if r.protocol != DEFAULT_PROTOCOL {
            write!(f, " proto {}", r.protocol)?;
        }
        write!(f, " lookup {}", r.table)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn route_words_like_ip() {
        let r = Route {
            table: 123,
            dst: "10.60.0.1/32".parse().unwrap(),
            gateway: Some("10.80.0.2".parse().unwrap()),
            prefsrc: None,
            dev: Some("liqo.x".into()),
            onlink: false,
            scope: Scope::Global,
            protocol: DEFAULT_PROTOCOL,
            metric: None,
            nexthops: Default::default(),
        };
        assert_eq!(
            RouteWords(&r).to_string(),
            "route 10.60.0.1/32 via 10.80.0.2 dev liqo.x table 123"
        );
        let r = Route {
            scope: Scope::Link,
            onlink: true,
            protocol: 3,
            metric: Some(5),
            nexthops: Default::default(),
            prefsrc: Some("10.0.0.1".parse().unwrap()),
            ..r
        };
        assert_eq!(
            RouteWords(&r).to_string(),
            "route 10.60.0.1/32 via 10.80.0.2 dev liqo.x src 10.0.0.1 scope link onlink proto 3 metric 5 table 123"
        );
    }

    #[test]
    fn rule_words_like_ip() {
        let r = Rule {
            family: Family::V4,
            table: 1234,
            priority: Some(100),
            src: Some("10.0.0.0/8".parse().unwrap()),
            dst: None,
            iif: Some("eth0".into()),
            oif: None,
            fwmark: Some(0x10),
            protocol: DEFAULT_PROTOCOL,
        };
        assert_eq!(
            RuleWords(&r).to_string(),
            "rule pref 100 from 10.0.0.0/8 iif eth0 fwmark 0x10 lookup 1234"
        );
        let r = Rule {
            family: Family::V6,
            priority: None,
            src: None,
            iif: None,
            fwmark: None,
            ..r
        };
        assert_eq!(RuleWords(&r).to_string(), "rule -6 from all lookup 1234");
        assert_eq!(
            op_words(&Op::DelRule(r)),
            "delete rule -6 from all lookup 1234"
        );
    }
}
