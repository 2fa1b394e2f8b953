//! What restoring a checkpoint changes: the pure diff between the saved
//! rules and routes of the affected tables and what the kernel holds now.
//!
//! Restoring is exact: a rule is kept only if every field (selector,
//! table, priority, protocol) is as saved; a route only if it is identical
//! to the saved one with the same (table, dst, metric), which is the
//! kernel's identity of a route. Saved routes are written with
//! `NLM_F_REPLACE`, so a route that exists in both states never
//! disappears; saved rules are added before stale rules are removed, so
//! no packet falls through to a broader rule in between. One batch:
//! rule adds, routes without gateway, routes with one, route deletes,
//! rule deletes.

use crate::routing::{Op, Route, Rule};
use std::collections::BTreeSet;

/// The ops that turn `now_rules`/`now_routes` into the saved state for
/// the saved `tables`. `now_routes` may hold routes of other tables too;
/// they are ignored, as are rules pointing elsewhere.
pub fn restore_ops(
    tables: &[u32],
    saved_rules: &[Rule],
    saved_routes: &[Route],
    now_rules: &[Rule],
    now_routes: &[Route],
) -> Vec<Op> {
    let tables: BTreeSet<u32> = tables.iter().copied().collect();
    let now_rules: Vec<&Rule> = now_rules
        .iter()
        .filter(|r| tables.contains(&r.table))
        .collect();
    let now_routes: Vec<&Route> = now_routes
        .iter()
        .filter(|r| tables.contains(&r.table))
        .collect();
    let key = |r: &Route| (r.table, r.dst, r.metric);

    let mut add_rules: Vec<Rule> = saved_rules
        .iter()
        .filter(|r| tables.contains(&r.table) && !now_rules.contains(r))
        .cloned()
        .collect();
    let mut del_rules: Vec<Rule> = now_rules
        .iter()
        .filter(|r| !saved_rules.contains(r))
        .map(|r| (*r).clone())
        .collect();
    let mut replace: Vec<Route> = saved_routes
        .iter()
        .filter(|r| tables.contains(&r.table) && !now_routes.contains(r))
        .cloned()
        .collect();
    let saved_keys: BTreeSet<_> = saved_routes.iter().map(key).collect();
    let mut del_routes: Vec<Route> = now_routes
        .iter()
        .filter(|r| !saved_keys.contains(&key(r)))
        .map(|r| (*r).clone())
        .collect();

    add_rules.sort();
    del_rules.sort();
    // Routes a gateway route may resolve through go first.
    replace.sort_by_key(|r| (r.gateways().next().is_some(), r.table, r.dst));
    del_routes.sort_by_key(|r| (r.table, r.dst));

    let mut ops =
        Vec::with_capacity(add_rules.len() + replace.len() + del_routes.len() + del_rules.len());
    ops.extend(add_rules.into_iter().map(Op::AddRule));
    ops.extend(replace.into_iter().map(Op::ReplaceRoute));
    ops.extend(del_routes.into_iter().map(Op::DelRoute));
    ops.extend(del_rules.into_iter().map(Op::DelRule));
    ops
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::routing::{Family, Scope};

    fn rule(table: u32, priority: u32, iif: &str, protocol: u8) -> Rule {
        Rule {
            family: Family::V4,
            table,
            priority: Some(priority),
            src: None,
            dst: None,
            iif: Some(iif.into()),
            oif: None,
            fwmark: None,
            protocol,
        }
    }

    fn route(table: u32, dst: &str, gw: Option<&str>) -> Route {
        Route {
            table,
            dst: dst.parse().unwrap(),
            gateway: gw.map(|g| g.parse().unwrap()),
            prefsrc: None,
            dev: Some("eth0".into()),
            onlink: false,
            scope: if gw.is_some() {
                Scope::Global
            } else {
                Scope::Link
            },
            protocol: 114,
            metric: Some(0),
            nexthops: Default::default(),
        }
    }

    #[test]
    fn nothing_changed_nothing_to_do() {
        let rules = [rule(1, 100, "a", 114)];
        let routes = [route(1, "10.0.0.0/24", None)];
        assert!(restore_ops(&[1], &rules, &routes, &rules, &routes).is_empty());
    }

    #[test]
    fn restores_rules_and_routes_in_a_safe_order() {
        let saved_rules = [rule(1, 100, "a", 114), rule(2, 200, "b", 3)];
        let saved_routes = [
            route(1, "10.0.0.0/24", Some("10.9.0.1")),
            route(1, "10.9.0.1/32", None),
            route(2, "10.2.0.0/16", Some("10.9.0.1")),
        ];
        // The trial: rule 1 moved to another priority, a new rule and a
        // new table 3 (saved as empty), a route changed, one deleted, one
        // added; rules of table 99 are not ours to touch.
        let now_rules = [
            rule(1, 50, "a", 114),
            rule(2, 200, "b", 3),
            rule(3, 10, "c", 114),
            rule(99, 1, "z", 4),
        ];
        let now_routes = [
            route(1, "10.0.0.0/24", Some("10.9.0.2")),
            route(1, "10.9.0.1/32", None),
            route(3, "10.3.0.0/16", None),
            route(99, "10.99.0.0/16", None),
        ];
        let ops = restore_ops(
            &[1, 2, 3],
            &saved_rules,
            &saved_routes,
            &now_rules,
            &now_routes,
        );
        assert_eq!(
            ops,
            vec![
                Op::AddRule(rule(1, 100, "a", 114)),
                Op::ReplaceRoute(route(1, "10.0.0.0/24", Some("10.9.0.1"))),
                Op::ReplaceRoute(route(2, "10.2.0.0/16", Some("10.9.0.1"))),
                Op::DelRoute(route(3, "10.3.0.0/16", None)),
                Op::DelRule(rule(1, 50, "a", 114)),
                Op::DelRule(rule(3, 10, "c", 114)),
            ]
        );
    }

    #[test]
    fn a_route_with_another_metric_is_another_route() {
        let saved = [route(1, "10.0.0.0/24", None)];
        let now = [Route {
            metric: Some(5),
            ..route(1, "10.0.0.0/24", None)
        }];
        let ops = restore_ops(&[1], &[], &saved, &[], &now);
        assert_eq!(
            ops,
            vec![
                Op::ReplaceRoute(saved[0].clone()),
                Op::DelRoute(now[0].clone())
            ]
        );
    }
}
