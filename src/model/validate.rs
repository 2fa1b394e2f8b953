//! Turns one API object into the kernel terms of [`crate::routing`], or
//! into one precise error naming the object and the field.
//!
//! Validation is stricter than the CRD where the kernel would refuse (or
//! silently misread) what the object asks for: failing here, with a field
//! path, beats a reconcile loop that retries a doomed netlink request.

use super::api::{RawInt, RouteConfiguration, RouteSpec, RuleSpec};
use crate::routing::{Family, Route, Rule, Scope, Table};
use crate::table_id::table_id;
use ipnet::IpNet;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::net::IpAddr;

/// Longest interface name the kernel accepts (IFNAMSIZ - 1).
const IFNAME_MAX: usize = 15;

/// A valid object in kernel terms, plus what was accepted but deserves a
/// look (normalized CIDRs, ignored duplicates...), one line each.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Validated {
    pub table: Table,
    pub warnings: Vec<String>,
}

/// Why an object cannot be applied: which object, which field (a path such
/// as `spec.table.rules[1].routes[3].gw`) and what is wrong with it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObjectError {
    pub object: String,
    pub field: String,
    pub message: String,
}

impl fmt::Display for ObjectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}: {}", self.object, self.field, self.message)
    }
}

impl std::error::Error for ObjectError {}

/// Validates `obj` and builds its table, stamping `protocol` on every rule
/// and route (what routecfg later recognizes as its own).
pub fn validate(obj: &RouteConfiguration, protocol: u8) -> Result<Validated, ObjectError> {
    let mut cx = Cx {
        object: obj.key(),
        warnings: Vec::new(),
    };
    let table = cx.table(obj, protocol)?;
    Ok(Validated {
        table,
        warnings: cx.warnings,
    })
}

struct Cx {
    object: String,
    warnings: Vec<String>,
}

/// A spec rule after field validation, before its family is known.
struct RuleDraft {
    src: Option<IpNet>,
    dst: Option<IpNet>,
    iif: Option<String>,
    oif: Option<String>,
    fwmark: Option<u32>,
    priority: Option<u32>,
    route_families: BTreeSet<Family>,
}

impl Cx {
    fn err(&self, field: impl Into<String>, message: impl Into<String>) -> ObjectError {
        ObjectError {
            object: self.object.clone(),
            field: field.into(),
            message: message.into(),
        }
    }

    fn warn(&mut self, field: &str, message: impl fmt::Display) {
        self.warnings
            .push(format!("{}: {}: {}", self.object, field, message));
    }

    fn table(&mut self, obj: &RouteConfiguration, protocol: u8) -> Result<Table, ObjectError> {
        if obj.metadata.name.as_deref().unwrap_or("").is_empty() {
            return Err(self.err("metadata.name", "is required"));
        }
        let spec = &obj.spec.table;
        let name =
            check_table_name(spec.name.as_deref()).map_err(|m| self.err("spec.table.name", m))?;
        let id = table_id(name);
        let rules = match spec.rules.as_deref() {
            None | Some([]) => {
                return Err(self.err("spec.table.rules", "at least one rule is required"));
            }
            Some(r) => r,
        };

        let mut drafts = Vec::with_capacity(rules.len());
        let mut selectors: HashMap<SelectorKey, usize> = HashMap::new();
        // dst -> (field path, rule index, route) of its first definition.
        let mut routes: BTreeMap<IpNet, (String, usize, Route)> = BTreeMap::new();
        for (i, rule) in rules.iter().enumerate() {
            let path = format!("spec.table.rules[{i}]");
            let mut draft = self.rule(&path, rule)?;
            let key = (
                draft.src,
                draft.dst,
                draft.iif.clone(),
                draft.oif.clone(),
                draft.fwmark,
            );
            if let Some(first) = selectors.get(&key) {
                return Err(self.err(
                    path,
                    format!(
                        "same src, dst, iif, oif and fwmark as spec.table.rules[{first}] \
                         (merge their routes into one rule)"
                    ),
                ));
            }
            selectors.insert(key, i);
            let Some(specs) = rule.routes.as_deref() else {
                return Err(self.err(
                    format!("{path}.routes"),
                    "is required (an empty list is allowed)",
                ));
            };
            for (j, r) in specs.iter().enumerate() {
                let rpath = format!("{path}.routes[{j}]");
                let route = self.route(&rpath, r, id, protocol)?;
                draft.route_families.insert(route.family());
                match routes.get(&route.dst) {
                    None => {
                        routes.insert(route.dst, (rpath, i, route));
                    }
                    Some((first, _, existing)) if *existing != route => {
                        let diff = differences(existing, &route).join(", ");
                        return Err(self.err(
                            rpath,
                            format!(
                                "dst {} is also routed by {first} with a different {diff}; \
                                 a table holds one route per dst",
                                route.dst
                            ),
                        ));
                    }
                    Some((first, first_rule, _)) => {
                        if *first_rule == i {
                            let msg = format!("repeats {first} (same dst, same route); ignored");
                            self.warn(&rpath, msg);
                        }
                    }
                }
            }
            drafts.push(draft);
        }

        let table_families: BTreeSet<Family> = routes.keys().map(Family::of_net).collect();
        let mut kernel_rules = Vec::new();
        for d in drafts {
            let families: BTreeSet<Family> = match d.src.or(d.dst) {
                Some(net) => [Family::of_net(&net)].into(),
                None if !d.route_families.is_empty() => d.route_families,
                None if !table_families.is_empty() => table_families.clone(),
                None => [Family::V4].into(),
            };
            for family in families {
                kernel_rules.push(Rule {
                    family,
                    table: id,
                    priority: d.priority,
                    src: d.src,
                    dst: d.dst,
                    iif: d.iif.clone(),
                    oif: d.oif.clone(),
                    fwmark: d.fwmark,
                    protocol,
                });
            }
        }

        Ok(Table {
            id,
            name: name.to_string(),
            owner: self.object.clone(),
            rules: kernel_rules,
            routes: routes.into_values().map(|(_, _, r)| r).collect(),
        })
    }

    fn rule(&mut self, path: &str, rule: &RuleSpec) -> Result<RuleDraft, ObjectError> {
        let src = self.cidr(&format!("{path}.src"), rule.src.as_deref())?;
        let dst = self.cidr(&format!("{path}.dst"), rule.dst.as_deref())?;
        if let (Some(s), Some(d)) = (src, dst) {
            if Family::of_net(&s) != Family::of_net(&d) {
                return Err(self.err(
                    format!("{path}.dst"),
                    format!(
                        "{d} is {} but src {s} is {}; a rule has one address family",
                        family_name(&d),
                        family_name(&s)
                    ),
                ));
            }
        }
        let iif = self.ifname(&format!("{path}.iif"), rule.iif.as_deref())?;
        let oif = self.ifname(&format!("{path}.oif"), rule.oif.as_deref())?;
        let fwmark = match self.uint(&format!("{path}.fwmark"), rule.fwmark.as_ref())? {
            Some(0) => {
                self.warn(
                    &format!("{path}.fwmark"),
                    "0 matches every packet (the kernel ignores a zero mark); treated as absent",
                );
                None
            }
            m => m,
        };
        let priority = self.uint(&format!("{path}.priority"), rule.priority.as_ref())?;
        if src.is_none() && dst.is_none() && iif.is_none() && oif.is_none() && fwmark.is_none() {
            self.warn(
                path,
                "has no src, dst, iif, oif or fwmark: it sends all traffic to this table",
            );
        }
        Ok(RuleDraft {
            src,
            dst,
            iif,
            oif,
            fwmark,
            priority,
            route_families: BTreeSet::new(),
        })
    }

    fn route(
        &mut self,
        path: &str,
        r: &RouteSpec,
        table: u32,
        protocol: u8,
    ) -> Result<Route, ObjectError> {
        let Some(dst) = self.cidr(&format!("{path}.dst"), r.dst.as_deref())? else {
            return Err(self.err(format!("{path}.dst"), "is required"));
        };
        let gateway = self.ip_like(path, "gw", r.gw.as_deref(), &dst)?;
        let prefsrc = self.ip_like(path, "src", r.src.as_deref(), &dst)?;
        let dev = self.ifname(&format!("{path}.dev"), r.dev.as_deref())?;
        let onlink = r.onlink.unwrap_or(false);
        let scope = match r.scope.as_deref() {
            None if gateway.is_some() => Scope::Global,
            None => Scope::Link,
            Some("global") => Scope::Global,
            Some("link") => Scope::Link,
            Some("host") => Scope::Host,
            Some("site") => Scope::Site,
            Some("nowhere") => Scope::Nowhere,
            Some(s) => {
                return Err(self.err(
                    format!("{path}.scope"),
                    format!("{s:?} is not one of global, link, host, site, nowhere"),
                ));
            }
        };
        // IPv6 routes have no scope in the kernel: it always reports
        // universe, so anything else would be rewritten on every pass.
        let scope = if matches!(dst, IpNet::V6(_)) {
            Scope::Global
        } else {
            scope
        };
        if gateway.is_none() && dev.is_none() {
            return Err(self.err(
                path,
                "needs gw or dev (the kernel cannot install a route with neither)",
            ));
        }
        if onlink && dev.is_none() {
            return Err(self.err(
                format!("{path}.onlink"),
                "needs dev (the kernel requires an output device for onlink)",
            ));
        }
        if onlink && gateway.is_none() {
            return Err(self.err(
                format!("{path}.onlink"),
                "needs gw (onlink applies to a gateway)",
            ));
        }
        if scope == Scope::Host && gateway.is_some() {
            return Err(self.err(
                format!("{path}.scope"),
                "host scope cannot be used with a gateway (the kernel refuses it)",
            ));
        }
        Ok(Route {
            table,
            dst,
            gateway,
            prefsrc,
            dev,
            onlink,
            scope,
            protocol,
            metric: None,
        })
    }

    /// Parses an optional CIDR; host bits are cleared with a warning, as
    /// upstream (Go's ParseCIDR) does implicitly.
    fn cidr(&mut self, field: &str, value: Option<&str>) -> Result<Option<IpNet>, ObjectError> {
        let Some(s) = value else { return Ok(None) };
        let net: IpNet = match s.parse() {
            Ok(n) => n,
            Err(_) => {
                let message = match s.parse::<IpAddr>() {
                    Ok(ip) => {
                        let bits = if ip.is_ipv4() { 32 } else { 128 };
                        format!("{s:?} is not a CIDR: the /prefix is missing (write {ip}/{bits})")
                    }
                    Err(_) => format!("{s:?} is not a CIDR"),
                };
                return Err(self.err(field, message));
            }
        };
        let trunc = net.trunc();
        if trunc != net {
            self.warn(field, format!("{s:?} has host bits set; using {trunc}"));
        }
        Ok(Some(trunc))
    }

    /// Parses a route's `gw` or `src`, which must share `dst`'s family.
    fn ip_like(
        &self,
        path: &str,
        name: &str,
        value: Option<&str>,
        dst: &IpNet,
    ) -> Result<Option<IpAddr>, ObjectError> {
        let Some(s) = value else { return Ok(None) };
        let field = format!("{path}.{name}");
        let ip: IpAddr = s
            .parse()
            .map_err(|_| self.err(&field, format!("{s:?} is not an IP address")))?;
        if Family::of(ip) != Family::of_net(dst) {
            return Err(self.err(
                field,
                format!(
                    "{ip} is {} but dst {dst} is {}",
                    if ip.is_ipv4() { "IPv4" } else { "IPv6" },
                    family_name(dst)
                ),
            ));
        }
        Ok(Some(ip))
    }

    /// Checks an interface name the way the kernel's `dev_valid_name` does.
    fn ifname(&self, field: &str, value: Option<&str>) -> Result<Option<String>, ObjectError> {
        let Some(s) = value else { return Ok(None) };
        let reason = if s.is_empty() {
            Some("it is empty".to_string())
        } else if s.len() > IFNAME_MAX {
            Some(format!("{} bytes, at most {IFNAME_MAX} allowed", s.len()))
        } else if s == "." || s == ".." {
            Some("'.' and '..' are reserved".to_string())
        } else {
            s.chars()
                .find(|&c| c == '/' || c == ':' || c == '\0' || c.is_whitespace())
                .map(|c| format!("it contains {c:?}"))
        };
        match reason {
            Some(r) => Err(self.err(field, format!("{s:?} is not a valid interface name: {r}"))),
            None => Ok(Some(s.to_string())),
        }
    }

    fn uint(&self, field: &str, value: Option<&RawInt>) -> Result<Option<u32>, ObjectError> {
        match value {
            None => Ok(None),
            Some(v) => v.to_u32().map(Some).map_err(|m| self.err(field, m)),
        }
    }
}

/// The table name if usable: present, non-empty, and free of whitespace
/// and control characters (it ends up in whitespace-separated
/// `/etc/iproute2/rt_tables` lines).
pub(super) fn check_table_name(name: Option<&str>) -> Result<&str, String> {
    match name {
        None => Err("is required".to_string()),
        Some("") => Err("must not be empty".to_string()),
        Some(n) if n.chars().any(|c| c.is_whitespace() || c.is_control()) => Err(format!(
            "{n:?} must not contain whitespace or control characters"
        )),
        Some(n) => Ok(n),
    }
}

type SelectorKey = (
    Option<IpNet>,
    Option<IpNet>,
    Option<String>,
    Option<String>,
    Option<u32>,
);

fn family_name(net: &IpNet) -> &'static str {
    match net {
        IpNet::V4(_) => "IPv4",
        IpNet::V6(_) => "IPv6",
    }
}

/// Names of the route attributes that differ, for the conflict message.
fn differences(a: &Route, b: &Route) -> Vec<&'static str> {
    let mut d = Vec::new();
    if a.gateway != b.gateway {
        d.push("gw");
    }
    if a.prefsrc != b.prefsrc {
        d.push("src");
    }
    if a.dev != b.dev {
        d.push("dev");
    }
    if a.onlink != b.onlink {
        d.push("onlink");
    }
    if a.scope != b.scope {
        d.push("scope");
    }
    d
}

#[cfg(test)]
mod tests;
