//! Puts the diffed changes into the five phases documented on
//! [`super::plan`].

use super::routes::RouteChanges;
use super::rules::RuleChanges;
use super::{Plan, net_key, route_key};
use crate::routing::{Family, Op, Route, Rule};
use ipnet::IpNet;
use std::collections::{BTreeSet, HashMap, HashSet};
use std::net::IpAddr;

pub(super) fn assemble(rules: RuleChanges, routes: RouteChanges<'_>) -> Plan {
    let RuleChanges {
        add: mut rule_adds,
        del: mut rule_dels,
    } = rules;
    let RouteChanges {
        replace,
        del: mut route_dels,
        mut pending,
        direct,
    } = routes;

    sort_rules(&mut rule_adds);
    sort_rules(&mut rule_dels);

    let (mut without_gateway, with_gateway): (Vec<&Route>, Vec<&Route>) = replace
        .into_iter()
        .partition(|r| r.gateways().next().is_none());
    sort_routes(&mut without_gateway);

    let mut reachable = Reachable::new(&direct);
    let (mut resolvable, mut others): (Vec<&Route>, Vec<&Route>) = with_gateway
        .into_iter()
        .partition(|r| r.gateways().all(|gw| reachable.covers(gw)));
    sort_routes(&mut resolvable);
    sort_routes(&mut others);
    sort_routes(&mut route_dels);
    pending.sort_by_key(|p| (p.table, net_key(&p.route.dst)));

    let mut ops = Vec::with_capacity(
        rule_adds.len()
            + without_gateway.len()
            + resolvable.len()
            + others.len()
            + route_dels.len()
            + rule_dels.len(),
    );
    let replace = |r: &Route| Op::ReplaceRoute(r.clone());
    ops.extend(rule_adds.into_iter().map(Op::AddRule));
    ops.extend(without_gateway.into_iter().map(replace));
    ops.extend(resolvable.into_iter().map(replace));
    ops.extend(others.into_iter().map(replace));
    ops.extend(route_dels.into_iter().map(|r| Op::DelRoute(r.clone())));
    ops.extend(rule_dels.into_iter().map(Op::DelRule));
    Plan { ops, pending }
}

fn sort_rules(rules: &mut [Rule]) {
    rules.sort_by_cached_key(|r| (r.table, r.selector(), r.priority, r.protocol));
}

/// By (table, dst, metric), stable.
fn sort_routes(routes: &mut [&Route]) {
    routes.sort_by_key(|r| (route_key(r), r.metric));
}

/// The prefixes of desired gateway-less routes, for "does some direct
/// route cover this gateway". Looked up once per prefix length present,
/// so the cost stays bounded by 33 (IPv4) or 129 (IPv6) hash lookups per
/// distinct gateway however many routes there are.
struct Reachable {
    prefixes: HashSet<IpNet>,
    lengths: BTreeSet<(Family, u8)>,
    memo: HashMap<IpAddr, bool>,
    /// The last answer: routes come sorted, so runs share a gateway.
    last: Option<(IpAddr, bool)>,
}

impl Reachable {
    fn new(direct: &[IpNet]) -> Self {
        Reachable {
            prefixes: direct.iter().map(IpNet::trunc).collect(),
            lengths: direct
                .iter()
                .map(|n| (Family::of_net(n), n.prefix_len()))
                .collect(),
            memo: Default::default(),
            last: None,
        }
    }

    fn covers(&mut self, gateway: IpAddr) -> bool {
        if let Some((last, known)) = self.last {
            if last == gateway {
                return known;
            }
        }
        if let Some(&known) = self.memo.get(&gateway) {
            self.last = Some((gateway, known));
            return known;
        }
        let family = Family::of(gateway);
        let covered = self
            .lengths
            .range((family, 0)..=(family, u8::MAX))
            .filter_map(|&(_, len)| IpNet::new(gateway, len).ok())
            .any(|net| self.prefixes.contains(&net.trunc()));
        self.memo.insert(gateway, covered);
        self.last = Some((gateway, covered));
        covered
    }
}
