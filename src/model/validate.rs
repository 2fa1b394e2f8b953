//! Turns one API object into the kernel terms of [`crate::routing`], or
//! into one precise error naming the object and the field.
//!
//! Validation is stricter than the CRD where the kernel would refuse (or
//! silently misread) what the object asks for: failing here, with a field
//! path, beats a reconcile loop that retries a doomed netlink request.

use super::api::{NextHopSpec, RawInt, RouteConfiguration, RouteSpec, RuleSpec};
use crate::routing::{Family, NextHop, Route, Rule, Scope, Table};
use crate::table_id::table_id;
use index::DstIndex;
use ipnet::IpNet;
use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;

mod index;
mod parse;
use parse::{has_host_bits, parse_ip, parse_net};

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

/// Default for [`Policy::max_rules`].
pub const MAX_RULES: usize = 10_000;
/// Default for [`Policy::max_routes`].
pub const MAX_ROUTES: usize = 200_000;

/// What validation accepts beyond the object itself: the ownership mark
/// to stamp, and the limits that keep one object from costing minutes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Policy {
    pub protocol: u8,
    /// Accept a rule with no src, dst, iif, oif or fwmark (it captures all
    /// traffic; upstream accepts it, Liqo never writes one). Refused by
    /// default because such a rule is far more often a lost selector than
    /// a wish.
    pub allow_match_all: bool,
    /// Most rules in one object.
    pub max_rules: usize,
    /// Most routes in one object, over all its rules.
    pub max_routes: usize,
}

impl Policy {
    /// The defaults, with this ownership mark.
    pub fn new(protocol: u8) -> Policy {
        Policy {
            protocol,
            allow_match_all: false,
            max_rules: MAX_RULES,
            max_routes: MAX_ROUTES,
        }
    }
}

/// Validates `obj` and builds its table, stamping `protocol` on every rule
/// and route (what routecfg later recognizes as its own), with the
/// default [`Policy`].
pub fn validate(obj: &RouteConfiguration, protocol: u8) -> Result<Validated, ObjectError> {
    validate_with(obj, &Policy::new(protocol))
}

/// [`validate`] under an explicit policy.
pub fn validate_with(obj: &RouteConfiguration, policy: &Policy) -> Result<Validated, ObjectError> {
    let mut v = Validator::with_policy(*policy);
    for rule in obj.spec.table.rules.iter().flatten() {
        for route in rule.routes.iter().flatten() {
            v.route(&RouteFields::of(route));
        }
        v.end_rule(rule, rule.routes.is_some());
    }
    v.finish(obj)
}

/// The fields of a `spec.table.rules[].routes[]` entry that validation
/// reads, borrowed, so a loader can validate a route straight from its
/// input text without building a [`RouteSpec`] that outlives it.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct RouteFields<'a> {
    pub dst: Option<&'a str>,
    pub gw: Option<&'a str>,
    pub src: Option<&'a str>,
    pub dev: Option<&'a str>,
    pub onlink: Option<bool>,
    pub scope: Option<&'a str>,
    pub next_hops: Option<&'a [NextHopSpec]>,
}

impl<'a> RouteFields<'a> {
    pub fn of(r: &'a RouteSpec) -> Self {
        RouteFields {
            dst: r.dst.as_deref(),
            gw: r.gw.as_deref(),
            src: r.src.as_deref(),
            dev: r.dev.as_deref(),
            onlink: r.onlink,
            scope: r.scope.as_deref(),
            next_hops: r.next_hops.as_deref(),
        }
    }
}

/// Validation fed one route at a time, so an object with a hundred
/// thousand routes never has to exist as [`RouteSpec`]s: the loader feeds
/// routes as it parses them (possibly before the rule's own fields or the
/// object's name, as JSON keys come in any order). The result is exactly
/// [`validate`]'s: the first error in the order `metadata.name`,
/// `spec.table.name`, `spec.table.rules`, then rule by rule (the rule's own
/// fields, its selector, its `routes`, then its routes in order).
///
/// Feed every route of rule 0 with [`Validator::route`], then
/// [`Validator::end_rule`] with rule 0's fields, then rule 1, and so on,
/// then [`Validator::finish`]. Field paths are only formatted for errors
/// and warnings.
pub(crate) struct Validator {
    protocol: u8,
    policy: Policy,
    /// Routes fed so far, over all rules.
    routes_seen: usize,
    /// First definition of every dst, in input order; `table` is filled in
    /// by `finish` (the table name may come after the rules).
    routes: Vec<Route>,
    /// (rule, position in rule) of `routes[k]`, for messages.
    origin: Vec<(u32, u32)>,
    by_dst: DstIndex,
    drafts: Vec<RuleDraft>,
    selectors: HashMap<SelectorKey, usize>,
    /// (field path, message) of the rules ended so far.
    warnings: Vec<(String, String)>,
    /// The first error, in [`validate`]'s order; nothing after it matters.
    error: Option<(String, String)>,
    /// Rules ended so far, i.e. the index of the rule being fed.
    rules: usize,
    current: CurrentRule,
}

/// What the routes of the rule being fed left behind.
#[derive(Default)]
struct CurrentRule {
    routes: usize,
    families: Families,
    warnings: Vec<(String, String)>,
    error: Option<(String, String)>,
}

/// A spec rule after field validation, before its family is known.
struct RuleDraft {
    src: Option<IpNet>,
    dst: Option<IpNet>,
    iif: Option<String>,
    oif: Option<String>,
    fwmark: Option<u32>,
    priority: Option<u32>,
    route_families: Families,
}

/// A set of families (at most two), in `Family` order.
#[derive(Clone, Copy, Default)]
struct Families {
    v4: bool,
    v6: bool,
}

impl Families {
    fn one(family: Family) -> Families {
        let mut f = Families::default();
        f.insert(family);
        f
    }

    fn insert(&mut self, family: Family) {
        match family {
            Family::V4 => self.v4 = true,
            Family::V6 => self.v6 = true,
        }
    }

    fn is_empty(&self) -> bool {
        !self.v4 && !self.v6
    }

    fn iter(self) -> impl Iterator<Item = Family> {
        [(self.v4, Family::V4), (self.v6, Family::V6)]
            .into_iter()
            .filter_map(|(present, f)| present.then_some(f))
    }
}

/// A problem with one field of a rule or route, before the path to the
/// rule or route is known; `field` is empty for the whole rule or route.
struct Issue {
    field: Cow<'static, str>,
    message: String,
}

fn issue(field: impl Into<Cow<'static, str>>, message: impl Into<String>) -> Issue {
    Issue {
        field: field.into(),
        message: message.into(),
    }
}

impl Issue {
    fn at(self, base: &str) -> (String, String) {
        (join(base, &self.field), self.message)
    }

    /// The same problem one level down, e.g. `gw` of `nextHops[1]`.
    fn under(self, parent: &str) -> Issue {
        let field = join(parent, &self.field);
        Issue {
            field: field.into(),
            message: self.message,
        }
    }
}

fn join(base: &str, field: &str) -> String {
    if field.is_empty() {
        base.to_string()
    } else {
        format!("{base}.{field}")
    }
}

fn route_path(rule: usize, route: usize) -> String {
    format!("spec.table.rules[{rule}].routes[{route}]")
}

impl Validator {
    pub fn with_policy(policy: Policy) -> Validator {
        Validator {
            protocol: policy.protocol,
            policy,
            routes_seen: 0,
            routes: Vec::new(),
            origin: Vec::new(),
            by_dst: DstIndex::default(),
            drafts: Vec::new(),
            selectors: HashMap::new(),
            warnings: Vec::new(),
            error: None,
            rules: 0,
            current: CurrentRule::default(),
        }
    }

    /// The next route of the current rule.
    pub fn route(&mut self, r: &RouteFields<'_>) {
        let i = self.rules;
        let j = self.current.routes;
        self.current.routes += 1;
        self.routes_seen += 1;
        if self.error.is_some() || self.current.error.is_some() {
            return;
        }
        if self.routes_seen > self.policy.max_routes {
            self.current.error = Some((
                route_path(i, j),
                format!(
                    "more than {} routes in one object (the limit; see --max-routes)",
                    self.policy.max_routes
                ),
            ));
            return;
        }
        let mut warnings = Vec::new();
        let checked = check_route(r, self.protocol, &mut warnings);
        if !warnings.is_empty() {
            let path = route_path(i, j);
            self.current
                .warnings
                .extend(warnings.into_iter().map(|w| w.at(&path)));
        }
        let route = match checked {
            Ok(route) => route,
            Err(e) => {
                self.current.error = Some(e.at(&route_path(i, j)));
                return;
            }
        };
        self.current.families.insert(route.family());
        match self.by_dst.get_or_insert(&self.routes, route.dst) {
            None => {
                self.routes.push(route);
                self.origin.push((i as u32, j as u32));
            }
            Some(k) => {
                let (first_rule, first_route) = self.origin[k];
                let first = route_path(first_rule as usize, first_route as usize);
                let existing = &self.routes[k];
                if *existing != route {
                    let diff = differences(existing, &route).join(", ");
                    self.current.error = Some((
                        route_path(i, j),
                        format!(
                            "dst {} is also routed by {first} with a different {diff}; \
                             a table holds one route per dst",
                            route.dst
                        ),
                    ));
                } else if first_rule as usize == i {
                    self.current.warnings.push((
                        route_path(i, j),
                        format!("repeats {first} (same dst, same route); ignored"),
                    ));
                }
            }
        }
    }

    /// Ends the current rule, whose routes were all fed; `has_routes`
    /// says whether its `routes` field was present (its value in `rule`
    /// is not looked at).
    pub fn end_rule(&mut self, rule: &RuleSpec, has_routes: bool) {
        let i = self.rules;
        self.rules += 1;
        let current = std::mem::take(&mut self.current);
        if self.error.is_some() {
            return;
        }
        let path = format!("spec.table.rules[{i}]");
        if i >= self.policy.max_rules {
            self.error = Some((
                path,
                format!(
                    "more than {} rules in one object (the limit; see --max-rules)",
                    self.policy.max_rules
                ),
            ));
            return;
        }
        let mut warnings = Vec::new();
        let draft = match check_rule(rule, self.policy.allow_match_all, &mut warnings) {
            Ok(d) => d,
            Err(e) => {
                self.error = Some(e.at(&path));
                return;
            }
        };
        let key = (
            draft.src,
            draft.dst,
            draft.iif.clone(),
            draft.oif.clone(),
            draft.fwmark,
        );
        if let Some(first) = self.selectors.get(&key) {
            self.error = Some((
                path,
                format!(
                    "same src, dst, iif, oif and fwmark as spec.table.rules[{first}] \
                     (merge their routes into one rule)"
                ),
            ));
            return;
        }
        if !has_routes {
            self.error = Some((
                format!("{path}.routes"),
                "is required (an empty list is allowed)".to_string(),
            ));
            return;
        }
        if let Some(e) = current.error {
            self.error = Some(e);
            return;
        }
        self.selectors.insert(key, i);
        self.warnings
            .extend(warnings.into_iter().map(|w| w.at(&path)));
        self.warnings.extend(current.warnings);
        self.drafts.push(RuleDraft {
            route_families: current.families,
            ..draft
        });
    }

    /// The result for `obj`, whose rules were all fed (their `routes` are
    /// not looked at here).
    pub fn finish(self, obj: &RouteConfiguration) -> Result<Validated, ObjectError> {
        let object = obj.key();
        let fail = |field: &str, message: &str| ObjectError {
            object: object.clone(),
            field: field.to_string(),
            message: message.to_string(),
        };
        if obj.metadata.name.as_deref().unwrap_or("").is_empty() {
            return Err(fail("metadata.name", "is required"));
        }
        let name = check_table_name(obj.spec.table.name.as_deref())
            .map_err(|m| fail("spec.table.name", &m))?;
        if self.rules == 0 {
            return Err(fail("spec.table.rules", "at least one rule is required"));
        }
        if let Some((field, message)) = self.error {
            return Err(fail(&field, &message));
        }
        let id = table_id(name);
        let protocol = self.protocol;

        let mut routes = self.routes;
        let mut table_families = Families::default();
        for r in &mut routes {
            r.table = id;
            table_families.insert(r.family());
        }
        // Dsts are unique here, so an unstable sort is deterministic.
        routes.sort_unstable_by_key(|r| net_key(&r.dst));

        let mut kernel_rules = Vec::new();
        for d in self.drafts {
            let families = match d.src.or(d.dst) {
                Some(net) => Families::one(Family::of_net(&net)),
                None if !d.route_families.is_empty() => d.route_families,
                None if !table_families.is_empty() => table_families,
                None => Families::one(Family::V4),
            };
            for family in families.iter() {
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

        let warnings = self
            .warnings
            .into_iter()
            .map(|(field, message)| format!("{object}: {field}: {message}"))
            .collect();
        Ok(Validated {
            table: Table {
                id,
                name: name.to_string(),
                owner: object,
                rules: kernel_rules,
                routes,
            },
            warnings,
        })
    }
}

/// A key ordering networks exactly as `IpNet`'s `Ord` does (family, then
/// address, then prefix length), cheap to compare.
pub(crate) fn net_key(net: &IpNet) -> (u8, u128, u8) {
    match net {
        IpNet::V4(n) => (0, u128::from(n.addr().to_bits()), n.prefix_len()),
        IpNet::V6(n) => (1, n.addr().to_bits(), n.prefix_len()),
    }
}

fn check_rule(
    rule: &RuleSpec,
    allow_match_all: bool,
    warnings: &mut Vec<Issue>,
) -> Result<RuleDraft, Issue> {
    let src = cidr("src", rule.src.as_deref(), warnings)?;
    let dst = cidr("dst", rule.dst.as_deref(), warnings)?;
    if let (Some(s), Some(d)) = (src, dst) {
        if Family::of_net(&s) != Family::of_net(&d) {
            return Err(issue(
                "dst",
                format!(
                    "{d} is {} but src {s} is {}; a rule has one address family",
                    family_name(&d),
                    family_name(&s)
                ),
            ));
        }
    }
    let iif = ifname("iif", rule.iif.as_deref())?.map(str::to_string);
    let oif = ifname("oif", rule.oif.as_deref())?.map(str::to_string);
    let fwmark = match uint("fwmark", rule.fwmark.as_ref())? {
        Some(0) => {
            warnings.push(issue(
                "fwmark",
                "0 matches every packet (the kernel ignores a zero mark); treated as absent",
            ));
            None
        }
        m => m,
    };
    let priority = uint("priority", rule.priority.as_ref())?;
    if src.is_none() && dst.is_none() && iif.is_none() && oif.is_none() && fwmark.is_none() {
        if !allow_match_all {
            return Err(issue(
                "",
                "has no src, dst, iif, oif or fwmark: it would send all traffic to this \
                 table; give it a selector (or accept it with --allow-match-all)",
            ));
        }
        warnings.push(issue(
            "",
            "has no src, dst, iif, oif or fwmark: it sends all traffic to this table \
             (accepted by --allow-match-all)",
        ));
    }
    Ok(RuleDraft {
        src,
        dst,
        iif,
        oif,
        fwmark,
        priority,
        route_families: Families::default(),
    })
}

fn check_route(
    r: &RouteFields<'_>,
    protocol: u8,
    warnings: &mut Vec<Issue>,
) -> Result<Route, Issue> {
    let Some(dst) = cidr("dst", r.dst, warnings)? else {
        return Err(issue("dst", "is required"));
    };
    let mut gateway = ip_like("gw", r.gw, &dst)?;
    let prefsrc = ip_like("src", r.src, &dst)?;
    let mut dev = ifname("dev", r.dev)?.map(str::to_string);
    let mut onlink = r.onlink.unwrap_or(false);
    let mut nexthops = Vec::new();
    if let Some(hops) = r.next_hops {
        if gateway.is_some() {
            return Err(issue(
                "nextHops",
                "cannot be used together with gw (a route has either gw or nextHops)",
            ));
        }
        if onlink {
            // Upstream sends it as rtm_flags, which the kernel ignores for
            // next hops given in RTA_MULTIPATH (even a single one): the
            // same kernel state is a route without it.
            warnings.push(issue(
                "onlink",
                "is ignored with nextHops (the kernel ignores a route-level onlink \
                 on a multipath route)",
            ));
            onlink = false;
        }
        nexthops = check_next_hops(hops, &dst, warnings)?;
        if let Some(d) = dev {
            warnings.push(issue(
                "dev",
                format!("{d:?} is ignored: the route has nextHops, each with its own dev"),
            ));
        }
        dev = None;
        if nexthops.len() == 1 {
            // The kernel stores one next hop as a plain route; modelling
            // it that way makes it compare equal to what a dump returns.
            if let Some(single) = nexthops.pop() {
                gateway = single.gateway;
                dev = single.dev;
            }
        }
    }
    let scope = match r.scope {
        None if gateway.is_some() || !nexthops.is_empty() => Scope::Global,
        None => Scope::Link,
        Some("global") => Scope::Global,
        Some("link") => Scope::Link,
        Some("host") => Scope::Host,
        Some("site") => Scope::Site,
        Some("nowhere") => Scope::Nowhere,
        Some(s) => {
            return Err(issue(
                "scope",
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
    if gateway.is_none() && dev.is_none() && nexthops.is_empty() {
        return Err(issue(
            "",
            "needs gw or dev (the kernel cannot install a route with neither)",
        ));
    }
    if onlink && dev.is_none() {
        return Err(issue(
            "onlink",
            "needs dev (the kernel requires an output device for onlink)",
        ));
    }
    if onlink && gateway.is_none() {
        return Err(issue("onlink", "needs gw (onlink applies to a gateway)"));
    }
    if scope == Scope::Host && (gateway.is_some() || !nexthops.is_empty()) {
        return Err(issue(
            "scope",
            "host scope cannot be used with a gateway (the kernel refuses it)",
        ));
    }
    Ok(Route {
        table: 0,
        dst,
        gateway,
        prefsrc,
        dev,
        onlink,
        scope,
        protocol,
        metric: None,
        nexthops: nexthops.into(),
    })
}

/// Checks `nextHops` and returns them sorted (their order never matters).
/// Borrowed names become owned only here, once per next hop.
fn check_next_hops(
    hops: &[NextHopSpec],
    dst: &IpNet,
    warnings: &mut Vec<Issue>,
) -> Result<Vec<NextHop>, Issue> {
    if hops.is_empty() {
        return Err(issue("nextHops", "needs at least one next hop"));
    }
    let mut out: Vec<NextHop> = Vec::with_capacity(hops.len());
    for (k, h) in hops.iter().enumerate() {
        let at = |e: Issue| e.under(&format!("nextHops[{k}]"));
        let Some(gateway) = ip_like("gw", h.gw.as_deref(), dst).map_err(at)? else {
            return Err(at(issue("gw", "is required in each next hop")));
        };
        let Some(dev) = ifname("dev", h.dev.as_deref()).map_err(at)? else {
            return Err(at(issue("dev", "is required in each next hop")));
        };
        let weight = match &h.weight {
            None => 0,
            Some(w) => weight(w).map_err(|m| at(issue("weight", m)))?,
        };
        if hops.len() == 1 && weight != 0 {
            warnings.push(at(issue(
                "weight",
                "has no effect on a single next hop (the kernel stores it as a plain route)",
            )));
        }
        if dst.addr().is_ipv6() {
            if let Some(first) = out
                .iter()
                .position(|o| o.gateway == Some(gateway) && o.dev.as_deref() == Some(dev))
            {
                return Err(at(issue(
                    "",
                    format!(
                        "repeats the gw and dev of nextHops[{first}]; the kernel refuses \
                         duplicate IPv6 next hops (EEXIST)"
                    ),
                )));
            }
        }
        out.push(NextHop {
            gateway: Some(gateway),
            dev: Some(dev.to_string()),
            weight,
            onlink: false,
        });
    }
    out.sort_unstable();
    Ok(out)
}

/// A next hop's weight: an integer 0..=255, as the CRD says.
fn weight(w: &RawInt) -> Result<u8, String> {
    let out_of_range = || format!("{w} is out of range 0..=255");
    match w.to_u32() {
        Ok(v) => u8::try_from(v).map_err(|_| out_of_range()),
        Err(_) if w.0.as_i64().is_some() || w.0.as_u64().is_some() => Err(out_of_range()),
        Err(m) => Err(m),
    }
}

/// Parses an optional CIDR; host bits are cleared with a warning, as
/// upstream (Go's ParseCIDR) does implicitly.
fn cidr(
    field: &'static str,
    value: Option<&str>,
    warnings: &mut Vec<Issue>,
) -> Result<Option<IpNet>, Issue> {
    let Some(s) = value else { return Ok(None) };
    let net: IpNet = match parse_net(s) {
        Some(n) => n,
        None => {
            let message = match s.parse::<IpAddr>() {
                Ok(ip) => {
                    let bits = if ip.is_ipv4() { 32 } else { 128 };
                    format!("{s:?} is not a CIDR: the /prefix is missing (write {ip}/{bits})")
                }
                Err(_) => format!("{s:?} is not a CIDR"),
            };
            return Err(issue(field, message));
        }
    };
    if !has_host_bits(&net) {
        return Ok(Some(net));
    }
    let trunc = net.trunc();
    warnings.push(issue(
        field,
        format!("{s:?} has host bits set; using {trunc}"),
    ));
    Ok(Some(trunc))
}

/// Parses a route's `gw` or `src`, which must share `dst`'s family.
fn ip_like(name: &'static str, value: Option<&str>, dst: &IpNet) -> Result<Option<IpAddr>, Issue> {
    let Some(s) = value else { return Ok(None) };
    let ip = parse_ip(s).ok_or_else(|| issue(name, format!("{s:?} is not an IP address")))?;
    if Family::of(ip) != Family::of_net(dst) {
        return Err(issue(
            name,
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
fn ifname<'s>(field: &'static str, value: Option<&'s str>) -> Result<Option<&'s str>, Issue> {
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
        Some(r) => Err(issue(
            field,
            format!("{s:?} is not a valid interface name: {r}"),
        )),
        None => Ok(Some(s)),
    }
}

fn uint(field: &'static str, value: Option<&RawInt>) -> Result<Option<u32>, Issue> {
    match value {
        None => Ok(None),
        Some(v) => v.to_u32().map(Some).map_err(|m| issue(field, m)),
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
    if a.nexthops != b.nexthops {
        d.push("nextHops");
    }
    d
}

#[cfg(test)]
mod next_hop_tests;
#[cfg(test)]
mod tests;
