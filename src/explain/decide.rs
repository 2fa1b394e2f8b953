//! Which rule sent a flow where, decided the way the kernel decides it.
//!
//! The kernel's own answer (a `route get` with `RTM_F_FIB_MATCH`) names
//! the routing entry and its table but not the rule. The rule is found by
//! walking the rules as `fib_rules_lookup` does: in priority order (ties
//! in list order, which is how dumps return them), a rule applies when
//! every selector it has matches the flow; a "lookup" rule whose table has
//! no route for the destination lets the walk go on. The first matching
//! rule that points at the table the kernel answered is the rule. Matching
//! rules before it must point at tables with no route for the destination;
//! if one has such a route, the kernel skipped it for a reason not visible
//! here (a selector routecfg does not read: tos, uid range, ports, l3mdev,
//! inverted), and the answer says so instead of guessing.
//!
//! Selectors as the kernel matches them: `iif` against the input device,
//! which is `lo` for locally generated traffic (no `iif` given); `oif`
//! against the output device asked for; `fwmark` against the mark with all
//! bits (routecfg never sets a mask; other masks are not read); `from` and
//! `to` as prefixes containing the source (unspecified when none is
//! given) and destination.

use super::origin::{Origins, RouteOrigin, RuleOrigin, TableOrigin};
use crate::demo::show;
use crate::kernel::RouteMatch;
use crate::model::api::ObjectReference;
use crate::routing::{Family, Rule, Scope};
use ipnet::IpNet;
use serde::Serialize;
use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// The packet asked about, in `ip route get` terms.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Flow {
    pub dst: Option<IpAddr>,
    pub src: Option<IpAddr>,
    pub iif: Option<String>,
    pub oif: Option<String>,
    pub mark: Option<u32>,
}

impl Flow {
    /// Parses `DST [from SRC] [iif DEV] [oif DEV] [mark N]` (`to DST` is
    /// accepted too); marks in decimal or `0x` hex.
    pub fn parse(words: &[String]) -> Result<Flow, String> {
        let mut flow = Flow::default();
        let mut it = words.iter();
        while let Some(w) = it.next() {
            let mut value = |what: &str| {
                it.next()
                    .map(String::as_str)
                    .ok_or_else(|| format!("{what} needs a value"))
            };
            match w.as_str() {
                "from" => flow.src = Some(address("from", value("from")?)?),
                "to" if flow.dst.is_none() => flow.dst = Some(address("to", value("to")?)?),
                "iif" => flow.iif = Some(value("iif")?.to_string()),
                "oif" => flow.oif = Some(value("oif")?.to_string()),
                "mark" | "fwmark" => flow.mark = Some(mark(value("mark")?)?),
                other if flow.dst.is_none() => flow.dst = Some(address("destination", other)?),
                other => return Err(format!("unexpected {other:?}")),
            }
        }
        let dst = flow.dst.ok_or("no destination given")?;
        if let Some(src) = flow.src {
            if src.is_ipv4() != dst.is_ipv4() {
                return Err(format!("from {src} and {dst} are of different families"));
            }
        }
        Ok(flow)
    }

    pub fn family(&self) -> Family {
        Family::of(self.dst.unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED)))
    }

    /// The flow as `ip route get` arguments.
    pub fn words(&self) -> String {
        let mut s = self.dst.map(|d| d.to_string()).unwrap_or_default();
        if let Some(src) = self.src {
            let _ = write!(s, " from {src}");
        }
        if let Some(iif) = &self.iif {
            let _ = write!(s, " iif {iif}");
        }
        if let Some(oif) = &self.oif {
            let _ = write!(s, " oif {oif}");
        }
        if let Some(mark) = self.mark {
            let _ = write!(s, " mark {mark:#x}");
        }
        s
    }
}

fn address(what: &str, s: &str) -> Result<IpAddr, String> {
    s.parse()
        .map_err(|_| format!("{what} {s:?} is not an IP address"))
}

fn mark(s: &str) -> Result<u32, String> {
    let parsed = match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(hex) => u32::from_str_radix(hex, 16),
        None => s.parse(),
    };
    parsed.map_err(|_| format!("mark {s:?} is not a 32-bit number"))
}

/// Whether the kernel would apply `rule` to `flow` (see the module doc).
pub fn rule_matches(rule: &Rule, flow: &Flow) -> bool {
    let Some(dst) = flow.dst else { return false };
    if rule.family != flow.family() {
        return false;
    }
    let src = flow.src.unwrap_or(match dst {
        IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
    });
    let iif = flow.iif.as_deref().unwrap_or("lo");
    rule.src.is_none_or(|n| n.contains(&src))
        && rule.dst.is_none_or(|n| n.contains(&dst))
        && rule.iif.as_deref().is_none_or(|i| i == iif)
        && rule
            .oif
            .as_deref()
            .is_none_or(|o| flow.oif.as_deref() == Some(o))
        && rule.fwmark.is_none_or(|m| flow.mark.unwrap_or(0) == m)
}

/// The rules that apply to `flow`, in the order the kernel tries them.
pub fn matching_rules<'a>(rules: &'a [Rule], flow: &Flow) -> Vec<&'a Rule> {
    let mut m: Vec<&Rule> = rules.iter().filter(|r| rule_matches(r, flow)).collect();
    // Stable: equal priorities keep the dump's (the kernel's) order.
    m.sort_by_key(|r| r.priority.unwrap_or(0));
    m
}

/// Who decided where the flow goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Decider {
    /// A table of a RouteConfiguration.
    Routecfg,
    Local,
    Main,
    Default,
    /// A table no RouteConfiguration here names.
    Foreign,
    /// The kernel has no route for the flow.
    None,
}

/// A rule or route and where the spec has it.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Place {
    pub index: usize,
    /// `spec.table.rules[1]` / `spec.table.rules[1].routes[3]`.
    pub field: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target_ref: Option<ObjectReference>,
}

/// The whole answer for one flow.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Explanation {
    /// The question, as `ip route get` arguments.
    pub query: String,
    /// The kernel's answer in `ip route get` words, or its refusal.
    pub answer: String,
    pub decided_by: Decider,
    /// One line: who decided, in words.
    pub summary: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub table_id: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub table: Option<String>,
    /// The matched rule as `ip rule` prints it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
    /// The matched routing entry as `ip route show table T` prints it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub route: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub route_protocol: Option<u8>,
    /// The next hop and device of the answer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub via: Option<IpAddr>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dev: Option<String>,
    /// Matching rules tried first whose tables have no route for the
    /// destination (the kernel goes on past them).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub passed: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub object: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub table_target_ref: Option<ObjectReference>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub spec_rule: Option<Place>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub spec_route: Option<Place>,
    /// Anything that does not add up, one line each.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

/// What [`explain`] needs besides the kernel's answer.
pub struct Context<'a> {
    pub flow: &'a Flow,
    /// Every rule as dumped (any order; dump order breaks ties).
    pub rules: &'a [Rule],
    pub origins: &'a Origins,
    /// routecfg's ownership mark.
    pub protocol: u8,
    /// Table names for output (ids the map does not know).
    pub names: &'a dyn Fn(u32) -> Option<String>,
}

/// Explains the kernel's `answer` for the flow. `routes_for(table)` says
/// whether `table` has a route for the flow's destination (asked only for
/// tables of matching rules tried before the answer's table).
pub fn explain(
    cx: &Context<'_>,
    answer: Result<&RouteMatch, String>,
    routes_for: &mut dyn FnMut(u32) -> Result<bool, String>,
) -> Explanation {
    let flow = cx.flow;
    let name = |id: u32| -> String {
        cx.origins
            .table(id)
            .map(|t| t.name.clone())
            .or_else(|| (cx.names)(id))
            .or_else(|| kernel_table_name(id).map(String::from))
            .unwrap_or_else(|| id.to_string())
    };
    let mut e = Explanation {
        query: flow.words(),
        answer: String::new(),
        decided_by: Decider::None,
        summary: String::new(),
        table_id: None,
        table: None,
        rule: None,
        route: None,
        route_protocol: None,
        via: None,
        dev: None,
        passed: Vec::new(),
        object: None,
        table_target_ref: None,
        spec_rule: None,
        spec_route: None,
        notes: Vec::new(),
    };
    let got = match answer {
        Ok(got) => got,
        Err(refusal) => {
            e.summary = format!("no route: {refusal}");
            e.answer = refusal;
            return e;
        }
    };
    e.answer = answer_words(flow, got, &name(got.table));
    e.table_id = Some(got.table);
    e.table = Some(name(got.table));
    e.route = Some(route_words(got));
    e.route_protocol = Some(got.protocol);
    e.via = got.gateway;
    e.dev = got.dev.clone();

    let mut chosen = None;
    for rule in matching_rules(cx.rules, flow) {
        let line = show::rule_line(rule, &name(rule.table));
        if rule.table == got.table {
            chosen = Some(rule);
            break;
        }
        match routes_for(rule.table) {
            Ok(false) => e.passed.push(format!(
                "{line}  (no route for {} there)",
                flow.dst.map(|d| d.to_string()).unwrap_or_default()
            )),
            Ok(true) => e.notes.push(format!(
                "{line} matches first and its table has a route, yet the kernel used table {}: \
                 a selector routecfg does not read decided",
                name(got.table)
            )),
            Err(err) => e
                .notes
                .push(format!("{line}: cannot read its table: {err}")),
        }
    }
    match chosen {
        Some(rule) => e.rule = Some(show::rule_line(rule, &name(got.table))),
        None => e.notes.push(format!(
            "no rule routecfg can read sends this flow to table {}; \
             a rule with other selectors (tos, uid range, ports, l3mdev, inverted, mask) did",
            name(got.table)
        )),
    }

    let Some(table) = cx.origins.table(got.table) else {
        e.decided_by = match got.table {
            255 => Decider::Local,
            254 => Decider::Main,
            253 => Decider::Default,
            _ => Decider::Foreign,
        };
        e.summary = match e.decided_by {
            Decider::Foreign => format!(
                "not routecfg's decision: table {} belongs to no RouteConfiguration here",
                name(got.table)
            ),
            _ => format!(
                "not routecfg's decision: the kernel's {} table",
                name(got.table)
            ),
        };
        return e;
    };
    e.decided_by = Decider::Routecfg;
    e.object = Some(table.object.clone());
    e.table_target_ref = table.target_ref.clone();
    let rule_origin = chosen.and_then(|r| {
        let o = table.rule_for(r);
        if o.is_none() {
            e.notes.push(format!(
                "the rule is not in {}'s spec{}",
                table.object,
                protocol_note(r.protocol, cx.protocol)
            ));
        } else if r.protocol != cx.protocol {
            e.notes.push(format!(
                "the rule carries proto {}, not routecfg's {}",
                r.protocol, cx.protocol
            ));
        }
        o
    });
    e.spec_rule = rule_origin.map(|r| Place {
        index: r.index,
        field: format!("spec.table.rules[{}]", r.index),
        target_ref: r.target_ref.clone(),
    });
    match table.route_for(&got.dst, rule_origin.map(|r| r.index)) {
        Some((rule, route)) => {
            if rule_origin.is_some_and(|r| r.index != rule.index) {
                e.notes.push(format!(
                    "the route is listed under spec.table.rules[{}], not under the matched rule \
                     (a table holds one route per dst)",
                    rule.index
                ));
            }
            e.spec_route = Some(route_place(rule, route));
        }
        None => e.notes.push(format!(
            "route {} is not in {}'s spec{}",
            got.dst,
            table.object,
            protocol_note(got.protocol, cx.protocol)
        )),
    }
    if got.protocol != cx.protocol && e.spec_route.is_some() {
        e.notes.push(format!(
            "the route carries proto {}, not routecfg's {} (not applied by routecfg yet?)",
            got.protocol, cx.protocol
        ));
    }
    e.summary = summary(table, &e);
    e
}

fn protocol_note(found: u8, ours: u8) -> String {
    if found == ours {
        " (it carries routecfg's mark: left from an earlier spec?)".into()
    } else {
        format!(" (proto {found}: not written by routecfg)")
    }
}

fn route_place(rule: &RuleOrigin, route: &RouteOrigin) -> Place {
    Place {
        index: route.index,
        field: format!("spec.table.rules[{}].routes[{}]", rule.index, route.index),
        target_ref: route.target_ref.clone(),
    }
}

fn summary(table: &TableOrigin, e: &Explanation) -> String {
    let mut s = format!("{}, table {} ({})", table.object, table.name, table.id);
    match (&e.spec_rule, &e.spec_route) {
        (Some(rule), Some(route)) => {
            let _ = write!(s, ": rules[{}].routes[{}]", rule.index, route.index);
        }
        (Some(rule), None) => {
            let _ = write!(s, ": rules[{}]", rule.index);
        }
        (None, Some(route)) => {
            let _ = write!(s, ": {}", route.field.trim_start_matches("spec.table."));
        }
        (None, None) => {}
    }
    if let Some(r) = e.spec_route.as_ref().and_then(|p| p.target_ref.as_ref()) {
        let _ = write!(s, ", targetRef {}", reference(r));
    }
    s
}

/// `Pod liqo/nginx` for a targetRef.
pub fn reference(r: &ObjectReference) -> String {
    let name = match (&r.namespace, &r.name) {
        (Some(ns), Some(n)) => format!("{ns}/{n}"),
        (None, Some(n)) => n.clone(),
        _ => "?".into(),
    };
    match &r.kind {
        Some(kind) => format!("{kind} {name}"),
        None => name,
    }
}

/// Names of the kernel's own tables.
pub fn kernel_table_name(id: u32) -> Option<&'static str> {
    match id {
        253 => Some("default"),
        254 => Some("main"),
        255 => Some("local"),
        _ => None,
    }
}

/// `10.200.1.3 from 10.61.0.5 via 10.80.0.2 dev liqo.zgdhd2x5fc table
/// rome-worker iif liqo-tunnel`, as `ip route get` words it.
pub fn answer_words(flow: &Flow, got: &RouteMatch, table: &str) -> String {
    let mut s = String::new();
    if got.kind != "unicast" {
        let _ = write!(s, "{} ", got.kind);
    }
    s.push_str(&flow.dst.map(|d| d.to_string()).unwrap_or_default());
    if let Some(src) = flow.src {
        let _ = write!(s, " from {src}");
    }
    if let Some(gw) = got.gateway {
        let _ = write!(s, " via {gw}");
    }
    if let Some(dev) = &got.dev {
        let _ = write!(s, " dev {dev}");
    }
    let _ = write!(s, " table {table}");
    if let Some(iif) = &flow.iif {
        let _ = write!(s, " iif {iif}");
    }
    if let Some(mark) = flow.mark {
        let _ = write!(s, " mark {mark:#x}");
    }
    s
}

/// The matched entry as `ip route show table T` prints it.
fn route_words(got: &RouteMatch) -> String {
    let mut s = String::new();
    if got.kind != "unicast" {
        let _ = write!(s, "{} ", got.kind);
    }
    s.push_str(&net(&got.dst));
    if let Some(gw) = got.gateway {
        let _ = write!(s, " via {gw}");
    }
    if let Some(dev) = &got.dev {
        let _ = write!(s, " dev {dev}");
    }
    let _ = write!(s, " proto {}", got.protocol);
    match Scope::from_kernel(got.scope) {
        Some(Scope::Global) => {}
        Some(scope) => {
            let _ = write!(s, " scope {}", scope.name());
        }
        None => {
            let _ = write!(s, " scope {}", got.scope);
        }
    }
    if let Some(src) = got.prefsrc {
        let _ = write!(s, " src {src}");
    }
    s
}

fn net(n: &IpNet) -> String {
    if n.prefix_len() == 0 {
        "default".into()
    } else if n.prefix_len() == n.max_prefix_len() {
        n.addr().to_string()
    } else {
        n.to_string()
    }
}

/// The explanation as text: the question, the kernel's answer, then who
/// decided and why, indented like the demo's "what traffic takes".
pub fn render(e: &Explanation) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "{}", e.query);
    let _ = writeln!(s, "    {}", e.answer);
    for p in &e.passed {
        let _ = writeln!(s, "    passed  {p}");
    }
    if let Some(rule) = &e.rule {
        let _ = writeln!(s, "    rule    {rule}");
    }
    if let Some(route) = &e.route {
        let _ = writeln!(s, "    route   {route}");
    }
    let _ = writeln!(s, "    decided {}", e.summary);
    if let Some(r) = &e.table_target_ref {
        let _ = writeln!(s, "            table targetRef {}", reference(r));
    }
    if let Some(r) = e.spec_rule.as_ref().and_then(|p| p.target_ref.as_ref()) {
        let _ = writeln!(s, "            rule targetRef {}", reference(r));
    }
    for n in &e.notes {
        let _ = writeln!(s, "    note    {n}");
    }
    s
}

#[cfg(test)]
mod tests;
