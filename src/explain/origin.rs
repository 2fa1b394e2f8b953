//! Where each kernel rule and route of a managed table came from: the
//! object, the index in `spec.table.rules[]`, the index in
//! `rules[i].routes[]`, and the `targetRef`s the object carries there.
//!
//! Built from the same validated tables the engine applies, so the map
//! can never name a rule or route routecfg would not write. It is plain
//! data (serde) because the running agent publishes it on `/status` and
//! `routecfg explain` reads it back from there.

use crate::model::api::{ObjectReference, RouteConfiguration};
use crate::routing::{Rule, Table};
use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// Every managed table's origin.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Origins {
    pub tables: Vec<TableOrigin>,
}

/// One table and the object that owns it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TableOrigin {
    pub id: u32,
    pub name: String,
    /// `namespace/name`.
    pub object: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_ref: Option<ObjectReference>,
    pub rules: Vec<RuleOrigin>,
}

/// `spec.table.rules[index]` in kernel terms (networks normalized as the
/// kernel holds them).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RuleOrigin {
    pub index: usize,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub src: Option<IpNet>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dst: Option<IpNet>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iif: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oif: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fwmark: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_ref: Option<ObjectReference>,
    pub routes: Vec<RouteOrigin>,
}

/// `spec.table.rules[i].routes[index]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RouteOrigin {
    pub index: usize,
    pub dst: IpNet,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_ref: Option<ObjectReference>,
}

/// Builds the map of `tables` (valid, as [`crate::model::desired`] built
/// them) from the objects they came from. A table whose object is not
/// among `objects` keeps its name and owner with no rules.
pub fn build<'a>(
    objects: impl IntoIterator<Item = &'a RouteConfiguration>,
    tables: &[Table],
) -> Origins {
    let by_key: HashMap<String, &RouteConfiguration> =
        objects.into_iter().map(|o| (o.key(), o)).collect();
    let tables = tables
        .iter()
        .map(|t| {
            let object = by_key.get(&t.owner).copied();
            TableOrigin {
                id: t.id,
                name: t.name.clone(),
                object: t.owner.clone(),
                target_ref: object.and_then(|o| o.spec.table.target_ref.clone()),
                rules: object.map(|o| rules_of(o, t)).unwrap_or_default(),
            }
        })
        .collect();
    Origins { tables }
}

/// The spec's rules paired with the kernel rules validation made of them.
/// Validation emits one kernel rule per family for each spec rule, in
/// order, and no two spec rules share a selector, so consecutive kernel
/// rules with the same selector belong to one spec rule.
fn rules_of(object: &RouteConfiguration, table: &Table) -> Vec<RuleOrigin> {
    let mut groups: Vec<&Rule> = Vec::new();
    for r in &table.rules {
        let same = groups.last().is_some_and(|g| same_selector(g, r));
        if !same {
            groups.push(r);
        }
    }
    let specs = object.spec.table.rules.as_deref().unwrap_or(&[]);
    if specs.len() != groups.len() {
        log::debug!(
            "{}: {} spec rules but {} kernel rule groups; rule origins left out",
            table.owner,
            specs.len(),
            groups.len()
        );
        return Vec::new();
    }
    specs
        .iter()
        .zip(groups)
        .enumerate()
        .map(|(index, (spec, kernel))| RuleOrigin {
            index,
            src: kernel.src,
            dst: kernel.dst,
            iif: kernel.iif.clone(),
            oif: kernel.oif.clone(),
            fwmark: kernel.fwmark,
            priority: kernel.priority,
            target_ref: spec.target_ref.clone(),
            routes: spec
                .routes
                .iter()
                .flatten()
                .enumerate()
                .filter_map(|(j, r)| {
                    // Validation read `dst` the same way and cleared host
                    // bits; the table is valid, so every dst parses.
                    let dst = r.dst.as_deref()?.parse::<IpNet>().ok()?.trunc();
                    Some(RouteOrigin {
                        index: j,
                        dst,
                        target_ref: r.target_ref.clone(),
                    })
                })
                .collect(),
        })
        .collect()
}

fn same_selector(a: &Rule, b: &Rule) -> bool {
    (a.src, a.dst, &a.iif, &a.oif, a.fwmark, a.priority)
        == (b.src, b.dst, &b.iif, &b.oif, b.fwmark, b.priority)
}

impl Origins {
    pub fn table(&self, id: u32) -> Option<&TableOrigin> {
        self.tables.iter().find(|t| t.id == id)
    }
}

impl TableOrigin {
    /// The spec rule a kernel rule of this table stands for: same
    /// selector, and the same priority when the spec sets one.
    pub fn rule_for(&self, rule: &Rule) -> Option<&RuleOrigin> {
        self.rules.iter().find(|o| {
            (o.src, o.dst, &o.iif, &o.oif, o.fwmark)
                == (rule.src, rule.dst, &rule.iif, &rule.oif, rule.fwmark)
                && o.priority.is_none_or(|p| Some(p) == rule.priority)
        })
    }

    /// Where the spec lists the route for `dst`: under rule `prefer` if it
    /// lists it there (the rule the traffic matched), else its first
    /// listing. A table holds one route per dst, so several rules may list
    /// the same route.
    pub fn route_for(
        &self,
        dst: &IpNet,
        prefer: Option<usize>,
    ) -> Option<(&RuleOrigin, &RouteOrigin)> {
        fn listed<'a>(
            rule: &'a RuleOrigin,
            dst: &IpNet,
        ) -> Option<(&'a RuleOrigin, &'a RouteOrigin)> {
            rule.routes
                .iter()
                .find(|r| r.dst == *dst)
                .map(|route| (rule, route))
        }
        let preferred = prefer
            .and_then(|i| self.rules.iter().find(|r| r.index == i))
            .and_then(|rule| listed(rule, dst));
        preferred.or_else(|| self.rules.iter().find_map(|rule| listed(rule, dst)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::desired;

    const OBJECT: &str = r#"
apiVersion: networking.liqo.io/v1beta1
kind: RouteConfiguration
metadata: {name: gw-node, namespace: tenant}
spec:
  table:
    name: rome-worker
    targetRef: {kind: Node, name: rome-worker}
    rules:
    - dst: 10.80.0.2/32
      routes:
      - {dst: 10.80.0.2/32, dev: eth1, scope: link}
    - iif: liqo-tunnel
      targetRef: {kind: Service, name: tunnel}
      routes:
      - {dst: 10.200.1.3/32, gw: 10.80.0.2, targetRef: {kind: Pod, namespace: liqo, name: a}}
      - {dst: 10.200.1.4/31, gw: 10.80.0.2}
      - {dst: 10.80.0.2/32, dev: eth1, scope: link}
    - src: fd00::/64
      routes:
      - {dst: "fd01::/64", gw: "fd00::1"}
"#;

    fn origins() -> Origins {
        let (objects, errors) = crate::model::parse_documents(OBJECT, "test");
        assert!(errors.is_empty(), "{errors:?}");
        let d = desired::build(&objects, 114);
        assert!(d.failures.is_empty(), "{:?}", d.failures);
        build(&objects, &d.tables)
    }

    #[test]
    fn maps_rules_and_routes_to_their_spec_indices() {
        let o = origins();
        let t = o.table(crate::table_id::table_id("rome-worker")).unwrap();
        assert_eq!(t.object, "tenant/gw-node");
        assert_eq!(t.target_ref.as_ref().unwrap().kind.as_deref(), Some("Node"));
        assert_eq!(t.rules.len(), 3);
        let tunnel = Rule {
            family: crate::routing::Family::V4,
            table: t.id,
            priority: Some(32765),
            src: None,
            dst: None,
            iif: Some("liqo-tunnel".into()),
            oif: None,
            fwmark: None,
            protocol: 114,
        };
        let rule = t.rule_for(&tunnel).unwrap();
        assert_eq!(rule.index, 1);
        assert_eq!(
            rule.target_ref.as_ref().unwrap().name.as_deref(),
            Some("tunnel")
        );
        let (r, route) = t
            .route_for(&"10.200.1.3/32".parse().unwrap(), Some(1))
            .unwrap();
        assert_eq!((r.index, route.index), (1, 0));
        assert_eq!(
            route.target_ref.as_ref().unwrap().name.as_deref(),
            Some("a")
        );
        // Host bits cleared as validation does.
        let (_, route) = t
            .route_for(&"10.200.1.4/31".parse().unwrap(), Some(1))
            .unwrap();
        assert_eq!(route.index, 1);
        // Listed by two rules: the matched rule's listing wins, else the first.
        let node: IpNet = "10.80.0.2/32".parse().unwrap();
        let (r, route) = t.route_for(&node, Some(1)).unwrap();
        assert_eq!((r.index, route.index), (1, 2));
        let (r, route) = t.route_for(&node, None).unwrap();
        assert_eq!((r.index, route.index), (0, 0));
        assert!(t.route_for(&"10.9.9.9/32".parse().unwrap(), None).is_none());
        // The IPv6 rule.
        assert_eq!(t.rules[2].src, Some("fd00::/64".parse().unwrap()));
        let other = Rule {
            fwmark: Some(1),
            ..tunnel
        };
        assert!(t.rule_for(&other).is_none());
    }

    #[test]
    fn round_trips_as_json() {
        let o = origins();
        let text = serde_json::to_string(&o).unwrap();
        assert!(text.contains("\"targetRef\""), "{text}");
        let back: Origins = serde_json::from_str(&text).unwrap();
        assert_eq!(back, o);
    }
}
