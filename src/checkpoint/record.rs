//! The checkpoint as stored: every rule and route an apply could change,
//! in a JSON file of its own shape (the kernel vocabulary in
//! [`crate::routing`] stays free of serde).

use crate::routing::{Family, NextHop, Route, Rule, Scope};
use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use std::net::IpAddr;

/// File format version; a reader refuses other versions rather than
/// restoring something it misreads.
pub const VERSION: u32 = 1;

/// A pending trial: what to restore, and until when it may run.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Checkpoint {
    pub version: u32,
    /// Unique per checkpoint: `pid-nanoseconds`.
    pub id: String,
    /// Ownership mark of the apply that made it.
    pub protocol: u8,
    pub created_unix_ms: u64,
    pub deadline_unix_ms: u64,
    /// Every table whose rules and routes are saved: the apply's tables
    /// and every table holding anything with the mark.
    pub tables: Vec<u32>,
    pub rules: Vec<RuleRecord>,
    pub routes: Vec<RouteRecord>,
}

impl Checkpoint {
    pub fn kernel_rules(&self) -> Result<Vec<Rule>, String> {
        self.rules.iter().map(RuleRecord::to_rule).collect()
    }

    pub fn kernel_routes(&self) -> Result<Vec<Route>, String> {
        self.routes.iter().map(RouteRecord::to_route).collect()
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleRecord {
    pub family: String,
    pub table: u32,
    pub priority: Option<u32>,
    pub src: Option<IpNet>,
    pub dst: Option<IpNet>,
    pub iif: Option<String>,
    pub oif: Option<String>,
    pub fwmark: Option<u32>,
    pub protocol: u8,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RouteRecord {
    pub table: u32,
    pub dst: IpNet,
    pub gateway: Option<IpAddr>,
    pub prefsrc: Option<IpAddr>,
    pub dev: Option<String>,
    pub onlink: bool,
    /// The kernel's `rtm_scope`.
    pub scope: u8,
    pub protocol: u8,
    pub metric: Option<u32>,
    /// Absent for a plain route, so files without the field (written
    /// before multipath support) read the same.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub next_hops: Vec<NextHopRecord>,
}

/// One next hop of a saved multipath route; `weight` is `rtnh_hops`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NextHopRecord {
    pub gateway: Option<IpAddr>,
    pub dev: Option<String>,
    pub weight: u8,
    pub onlink: bool,
}

impl RuleRecord {
    pub fn of(r: &Rule) -> RuleRecord {
        RuleRecord {
            family: r.family.to_string(),
            table: r.table,
            priority: r.priority,
            src: r.src,
            dst: r.dst,
            iif: r.iif.clone(),
            oif: r.oif.clone(),
            fwmark: r.fwmark,
            protocol: r.protocol,
        }
    }

    pub fn to_rule(&self) -> Result<Rule, String> {
        let family = match self.family.as_str() {
            "inet" => Family::V4,
            "inet6" => Family::V6,
            other => return Err(format!("rule family {other:?}")),
        };
        Ok(Rule {
            family,
            table: self.table,
            priority: self.priority,
            src: self.src,
            dst: self.dst,
            iif: self.iif.clone(),
            oif: self.oif.clone(),
            fwmark: self.fwmark,
            protocol: self.protocol,
        })
    }
}

impl RouteRecord {
    pub fn of(r: &Route) -> RouteRecord {
        RouteRecord {
            table: r.table,
            dst: r.dst,
            gateway: r.gateway,
            prefsrc: r.prefsrc,
            dev: r.dev.clone(),
            onlink: r.onlink,
            scope: r.scope.to_kernel(),
            protocol: r.protocol,
            metric: r.metric,
            next_hops: r
                .nexthops
                .iter()
                .map(|h| NextHopRecord {
                    gateway: h.gateway,
                    dev: h.dev.clone(),
                    weight: h.weight,
                    onlink: h.onlink,
                })
                .collect(),
        }
    }

    pub fn to_route(&self) -> Result<Route, String> {
        Ok(Route {
            table: self.table,
            dst: self.dst,
            gateway: self.gateway,
            prefsrc: self.prefsrc,
            dev: self.dev.clone(),
            onlink: self.onlink,
            scope: Scope::from_kernel(self.scope)
                .ok_or_else(|| format!("route {}: scope {}", self.dst, self.scope))?,
            protocol: self.protocol,
            metric: self.metric,
            nexthops: self
                .next_hops
                .iter()
                .map(|h| NextHop {
                    gateway: h.gateway,
                    dev: h.dev.clone(),
                    weight: h.weight,
                    onlink: h.onlink,
                })
                .collect::<Vec<_>>()
                .into(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(nexthops: Vec<NextHop>) -> Route {
        Route {
            table: 7,
            dst: "10.8.0.0/16".parse().unwrap(),
            gateway: None,
            prefsrc: None,
            dev: None,
            onlink: false,
            scope: Scope::Global,
            protocol: 114,
            metric: Some(0),
            nexthops: nexthops.into(),
        }
    }

    #[test]
    fn multipath_routes_are_saved_and_restored_exactly() {
        let r = route(vec![
            NextHop {
                gateway: Some("10.1.0.2".parse().unwrap()),
                dev: Some("a0".into()),
                weight: 0,
                onlink: false,
            },
            NextHop {
                gateway: Some("10.2.0.2".parse().unwrap()),
                dev: Some("a1".into()),
                weight: 255,
                onlink: true,
            },
        ]);
        let text = serde_json::to_string(&RouteRecord::of(&r)).unwrap();
        let back: RouteRecord = serde_json::from_str(&text).unwrap();
        assert_eq!(back.to_route(), Ok(r));
    }

    #[test]
    fn a_plain_route_is_saved_without_next_hops_as_before() {
        let r = Route {
            gateway: Some("10.1.0.2".parse().unwrap()),
            ..route(Vec::new())
        };
        let v = serde_json::to_value(RouteRecord::of(&r)).unwrap();
        assert!(v.get("next_hops").is_none(), "{v}");
        let back: RouteRecord = serde_json::from_value(v).unwrap();
        assert_eq!(back.to_route(), Ok(r));
    }
}
