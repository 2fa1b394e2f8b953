//! Route diff: which desired routes must be (re)written, which kernel
//! routes are stale, and which desired routes must wait.

use super::{Pending, Prune};
use crate::routing::{Family, Route, Snapshot, Table};
use ipnet::IpNet;
use std::collections::btree_map::Entry;
use std::collections::{BTreeMap, HashMap, HashSet};

/// Route changes before ordering.
pub(super) struct RouteChanges {
    pub replace: Vec<Route>,
    pub del: Vec<Route>,
    pub pending: Vec<Pending>,
    /// Dsts of the desired gateway-less routes that are (or will be) in the
    /// kernel: what gateways can resolve through, for ordering.
    pub direct: Vec<IpNet>,
}

/// Diffs desired routes against the dumped ones, table by table.
///
/// Within a table a route is identified by its dst alone: routecfg never
/// sets a metric, and a kernel route with the same dst but another metric
/// is the same route to a reader of the table. A kernel route satisfies a
/// desired one when every attribute routecfg sets is equal; a desired
/// route without `dev` accepts whatever interface the kernel picked.
pub(super) fn diff(
    desired: &[Table],
    snapshot: &Snapshot,
    managed: &HashSet<u32>,
    prune: Prune,
) -> RouteChanges {
    let links: HashSet<&str> = snapshot.links.iter().map(String::as_str).collect();
    let dumped: HashSet<u32> = snapshot.dumped_tables.iter().copied().collect();

    let mut pending = Vec::new();
    let mut wanted: BTreeMap<(u32, IpNet), &Route> = BTreeMap::new();
    for route in desired.iter().flat_map(|t| &t.routes) {
        match wanted.entry((route.table, route.dst)) {
            Entry::Vacant(slot) => {
                slot.insert(route);
            }
            // The same route listed under two rules (the seed's milan
            // table does this) is one route. Two different routes to one
            // dst cannot both exist: the first wins, the other is reported.
            Entry::Occupied(slot) if *slot.get() != route => pending.push(Pending {
                table: route.table,
                route: route.clone(),
                reason: format!("conflicts with another desired route to {}", route.dst),
            }),
            Entry::Occupied(_) => {}
        }
    }

    // Routes of tables that were not dumped are unknown: never compared,
    // never deleted. A managed table that was not dumped is written as if
    // empty, which is safe because replace is idempotent.
    let mut existing: HashMap<(u32, IpNet), Vec<&Route>> = HashMap::new();
    for route in snapshot.routes.iter().filter(|r| dumped.contains(&r.table)) {
        existing
            .entry((route.table, route.dst))
            .or_default()
            .push(route);
    }

    let mut replace = Vec::new();
    let mut del = Vec::new();
    let mut direct = Vec::new();
    for (&key, &want) in &wanted {
        if let Some(dev) = want.dev.as_deref().filter(|dev| !links.contains(dev)) {
            // Its dst stays desired, so whatever the kernel has for it is
            // left alone until the link exists.
            pending.push(Pending {
                table: want.table,
                route: want.clone(),
                reason: format!("link {dev} not found"),
            });
            continue;
        }
        if want.gateway.is_none() {
            direct.push(want.dst);
        }
        let same_dst = existing.get(&key).map(Vec::as_slice).unwrap_or(&[]);
        let keep = match same_dst
            .iter()
            .copied()
            .filter(|k| satisfies(k, want))
            .min_by_key(|k| (!in_default_slot(k), k.metric))
        {
            Some(equal) => Some(equal),
            None => {
                replace.push(want.clone());
                // A replace without metric overwrites the route in the
                // kernel's default-metric slot; that one is not stale.
                same_dst.iter().copied().find(|k| in_default_slot(k))
            }
        };
        del.extend(
            same_dst
                .iter()
                .filter(|&&k| keep.is_none_or(|keep| !std::ptr::eq(k, keep)))
                .map(|k| (*k).clone()),
        );
    }

    for route in snapshot.routes.iter().filter(|r| dumped.contains(&r.table)) {
        let stale = if managed.contains(&route.table) {
            !wanted.contains_key(&(route.table, route.dst))
        } else {
            matches!(prune, Prune::Owned { protocol } if route.protocol == protocol)
        };
        if stale {
            del.push(route.clone());
        }
    }

    RouteChanges {
        replace,
        del,
        pending,
        direct,
    }
}

/// Whether a kernel route already is what routecfg wants for its dst.
/// Metric is ignored (see [`diff`]); `dev` only counts when desired.
fn satisfies(kernel: &Route, want: &Route) -> bool {
    kernel.gateway == want.gateway
        && kernel.prefsrc == want.prefsrc
        && kernel.onlink == want.onlink
        && kernel.scope == want.scope
        && kernel.protocol == want.protocol
        && (want.dev.is_none() || kernel.dev == want.dev)
}

/// Whether a kernel route sits at the metric a route written without one
/// gets (IPv4 0, often not reported at all; IPv6 1024), i.e. the route a
/// create-or-replace of a desired route overwrites.
fn in_default_slot(route: &Route) -> bool {
    let default = match route.family() {
        Family::V4 => 0,
        Family::V6 => 1024,
    };
    route.metric.unwrap_or(default) == default
}
