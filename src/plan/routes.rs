//! Route diff: which desired routes must be (re)written, which kernel
//! routes are stale, and which desired routes must wait.

use super::{Pending, Prune, route_key};
use crate::routing::{Family, NextHop, Route, Snapshot, Table};
use ipnet::IpNet;
use std::collections::HashSet;

/// Route changes before ordering; routes are borrowed from the desired
/// tables (`replace`) and the snapshot (`del`) and only cloned into ops.
pub(super) struct RouteChanges<'a> {
    pub replace: Vec<&'a Route>,
    pub del: Vec<&'a Route>,
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
///
/// Both sides are sorted by (table, dst) and walked together, so the cost
/// is two sorts (of references, and usually of already sorted input)
/// rather than a map entry per route.
pub(super) fn diff<'a>(
    desired: &'a [Table],
    snapshot: &'a Snapshot,
    managed: &HashSet<u32>,
    prune: Prune,
) -> RouteChanges<'a> {
    let links: HashSet<&str> = snapshot.links.iter().map(String::as_str).collect();
    let dumped: HashSet<u32> = snapshot.dumped_tables.iter().copied().collect();

    // Stable sort: among routes to one dst, the first listed comes first.
    let mut listed: Vec<&Route> = desired.iter().flat_map(|t| &t.routes).collect();
    listed.sort_by_key(|r| route_key(r));
    let mut pending = Vec::new();
    let mut wanted: Vec<&Route> = Vec::with_capacity(listed.len());
    for route in listed {
        match wanted.last() {
            // The same route listed under two rules (the seed's milan
            // table does this) is one route. Two different routes to one
            // dst cannot both exist: the first wins, the other is reported.
            Some(&first) if route_key(first) == route_key(route) => {
                if first != route {
                    pending.push(Pending {
                        table: route.table,
                        route: route.clone(),
                        reason: format!("conflicts with another desired route to {}", route.dst),
                    });
                }
            }
            _ => wanted.push(route),
        }
    }

    // Routes of tables that were not dumped are unknown: never compared,
    // never deleted. A managed table that was not dumped is written as if
    // empty, which is safe because replace is idempotent.
    let mut dumped_table = TableTest::new(|t| dumped.contains(&t));
    let mut existing: Vec<&Route> = snapshot
        .routes
        .iter()
        .filter(|r| dumped_table.test(r.table))
        .collect();
    existing.sort_by_key(|r| route_key(r));

    let mut managed_table = TableTest::new(|t| managed.contains(&t));
    let mut stale = |route: &Route| {
        if managed_table.test(route.table) {
            // In a managed table and not wanted (wanted ones are matched
            // below, before they can get here).
            true
        } else {
            matches!(prune, Prune::Owned { protocol } if route.protocol == protocol)
        }
    };

    let mut replace = Vec::new();
    let mut del = Vec::new();
    let mut direct = Vec::new();
    let mut e = 0;
    for &want in &wanted {
        let key = route_key(want);
        while e < existing.len() && route_key(existing[e]) < key {
            if stale(existing[e]) {
                del.push(existing[e]);
            }
            e += 1;
        }
        let start = e;
        while e < existing.len() && route_key(existing[e]) == key {
            e += 1;
        }
        let same_dst = &existing[start..e];
        if let Some(dev) = want.devs().find(|dev| !links.contains(dev)) {
            // Its dst stays desired, so whatever the kernel has for it is
            // left alone until the link exists.
            pending.push(Pending {
                table: want.table,
                route: want.clone(),
                reason: format!("link {dev} not found"),
            });
            continue;
        }
        if want.gateways().next().is_none() {
            direct.push(want.dst);
        }
        let keep = match same_dst
            .iter()
            .copied()
            .filter(|k| satisfies(k, want))
            .min_by_key(|k| (!in_default_slot(k), k.metric))
        {
            Some(equal) => Some(equal),
            None => {
                replace.push(want);
                // A replace without metric overwrites the route in the
                // kernel's default-metric slot; that one is not stale.
                same_dst.iter().copied().find(|k| in_default_slot(k))
            }
        };
        del.extend(
            same_dst
                .iter()
                .copied()
                .filter(|&k| keep.is_none_or(|keep| !std::ptr::eq(k, keep))),
        );
    }
    for &route in &existing[e..] {
        if stale(route) {
            del.push(route);
        }
    }

    RouteChanges {
        replace,
        del,
        pending,
        direct,
    }
}

/// A per-table yes/no that remembers the last table asked about: routes
/// come grouped by table, so the set behind it is consulted once a group.
struct TableTest<F> {
    test: F,
    last: Option<(u32, bool)>,
}

impl<F: Fn(u32) -> bool> TableTest<F> {
    fn new(test: F) -> Self {
        TableTest { test, last: None }
    }

    fn test(&mut self, table: u32) -> bool {
        match self.last {
            Some((t, answer)) if t == table => answer,
            _ => {
                let answer = (self.test)(table);
                self.last = Some((table, answer));
                answer
            }
        }
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
        && same_next_hops(&kernel.nexthops, &want.nexthops)
}

/// Next hops compared as a multiset: their order never counts, and a
/// next hop listed twice must be there twice. Both sides normally arrive
/// sorted, so the copy is only made when they differ.
fn same_next_hops(kernel: &[NextHop], want: &[NextHop]) -> bool {
    if kernel == want {
        return true;
    }
    if kernel.len() != want.len() {
        return false;
    }
    let (mut a, mut b) = (kernel.to_vec(), want.to_vec());
    a.sort_unstable();
    b.sort_unstable();
    a == b
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
