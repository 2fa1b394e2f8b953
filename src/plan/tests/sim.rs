//! A toy kernel for ordering tests: just enough of Linux's behaviour to
//! tell whether a batch applies in one pass. It checks what the real
//! kernel checks when a route is added: the dev exists, and a gateway
//! (unless onlink) resolves through a gateway-less route, first in the
//! route's own table and then by a full policy lookup for the gateway
//! (local lookup: iif is `lo`, mark 0, oif is the route's dev). Missing
//! rule priorities are picked like the kernel does: one below the lowest
//! non-zero priority in use.

use crate::routing::{Family, Op, Route, Rule, Snapshot};
use std::net::IpAddr;

pub(super) struct Kernel {
    pub rules: Vec<Rule>,
    pub routes: Vec<Route>,
    pub links: Vec<String>,
    /// Routes of the main table (connected routes), consulted by the
    /// `lookup main` rule at priority 32766.
    pub main: Vec<Route>,
}

impl Kernel {
    pub fn new(links: &[&str], main: Vec<Route>) -> Self {
        Kernel {
            rules: Vec::new(),
            routes: Vec::new(),
            links: links.iter().map(|l| l.to_string()).collect(),
            main,
        }
    }

    /// Applies every op, like a netlink batch: each op succeeds or fails
    /// on its own. Returns the failures.
    pub fn apply_batch(&mut self, ops: &[Op]) -> Vec<(Op, &'static str)> {
        ops.iter()
            .filter_map(|op| self.apply(op).err().map(|e| (op.clone(), e)))
            .collect()
    }

    pub fn apply(&mut self, op: &Op) -> Result<(), &'static str> {
        match op {
            Op::AddRule(rule) => {
                let mut rule = rule.clone();
                if rule.priority.is_none() {
                    let lowest = self
                        .rules
                        .iter()
                        .filter(|r| r.family == rule.family)
                        .filter_map(|r| r.priority)
                        .filter(|&p| p > 0)
                        .min()
                        .unwrap_or(32766);
                    rule.priority = Some(lowest - 1);
                }
                self.rules.push(rule);
                Ok(())
            }
            Op::DelRule(rule) => {
                let at = self.rules.iter().position(|r| r == rule).ok_or("ENOENT")?;
                self.rules.remove(at);
                Ok(())
            }
            Op::ReplaceRoute(route) => {
                if let Some(dev) = &route.dev
                    && !self.links.contains(dev)
                {
                    return Err("ENODEV");
                }
                let mut route = route.clone();
                if let Some(gw) = route.gateway
                    && !route.onlink
                {
                    let dev = self
                        .resolve(route.table, gw, route.dev.as_deref())
                        .ok_or("ENETUNREACH")?;
                    route.dev = Some(dev);
                }
                let default = if route.family() == Family::V4 {
                    None
                } else {
                    Some(1024)
                };
                route.metric = default;
                self.routes.retain(|r| {
                    !(r.table == route.table && r.dst == route.dst && r.metric == default)
                });
                self.routes.push(route);
                Ok(())
            }
            Op::DelRoute(route) => {
                let at = self.routes.iter().position(|r| r == route).ok_or("ESRCH")?;
                self.routes.remove(at);
                Ok(())
            }
        }
    }

    /// The dev through which `gw` is reached from `table`, if any.
    fn resolve(&self, table: u32, gw: IpAddr, dev: Option<&str>) -> Option<String> {
        if let Some(found) = direct_in(self.routes.iter().filter(|r| r.table == table), gw, dev) {
            return Some(found);
        }
        let mut rules: Vec<&Rule> = self
            .rules
            .iter()
            .filter(|r| r.family == Family::of(gw))
            .collect();
        rules.sort_by_key(|r| r.priority);
        for rule in rules {
            let matches = rule.src.is_none()
                && rule.dst.is_none_or(|d| d.contains(&gw))
                && rule.iif.as_deref().is_none_or(|i| i == "lo")
                && rule.oif.as_deref().is_none_or(|o| Some(o) == dev)
                && rule.fwmark.is_none_or(|m| m == 0);
            if !matches {
                continue;
            }
            let found = direct_in(
                self.routes.iter().filter(|r| r.table == rule.table),
                gw,
                dev,
            );
            if found.is_some() {
                return found;
            }
        }
        direct_in(self.main.iter(), gw, dev)
    }

    /// What a routecfg kernel module would dump.
    pub fn snapshot(&self, dumped: Vec<u32>) -> Snapshot {
        Snapshot {
            rules: self.rules.clone(),
            routes: self.routes.clone(),
            dumped_tables: dumped,
            links: self.links.clone(),
        }
    }
}

fn direct_in<'a>(
    routes: impl Iterator<Item = &'a Route>,
    gw: IpAddr,
    dev: Option<&str>,
) -> Option<String> {
    routes
        .filter(|r| r.gateway.is_none())
        .filter(|r| r.dst.contains(&gw))
        .filter(|r| dev.is_none() || r.dev.as_deref() == dev)
        .max_by_key(|r| r.dst.prefix_len())
        .and_then(|r| r.dev.clone())
}
