//! The planner: the one place that decides what to change in the kernel.
//!
//! It is pure (no I/O, no clock, no logging) so every decision about
//! ownership, adoption and ordering can be tested exhaustively without a
//! kernel, and so a dry run shows exactly what an apply would do.
//!
//! Ownership model:
//! - A desired table is *managed*: routecfg owns it wholly. Any route in it
//!   whose dst is not desired, and any rule pointing at it whose selector
//!   (or explicit priority) is not desired, is stale and deleted, whatever
//!   its protocol.
//! - Outside managed tables nothing is touched, except that
//!   [`Prune::Owned`] garbage-collects rules and routes carrying routecfg's
//!   protocol mark (leftovers of tables that are no longer desired).
//! - Routes of a table that was not dumped are unknown, never deleted.
//!
//! Adoption of what the upstream controller left behind needs no special
//! case: a matching rule is kept whatever its protocol (deleting and
//! re-adding it would open a gap), and a route with another protocol
//! differs, so it is replaced in place.

mod order;
mod render;
mod routes;
mod rules;
#[cfg(test)]
mod tests;

pub use render::render;

use crate::routing::{Op, Route, Snapshot, Table};
use ipnet::IpNet;
use std::collections::{BTreeMap, HashSet};

/// The kernel changes that make a snapshot equal to the desired tables,
/// in an order that can be sent as one batch (see [`plan`]), plus the
/// desired routes that cannot be written yet.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Plan {
    pub ops: Vec<Op>,
    pub pending: Vec<Pending>,
}

/// A desired route held back because writing it now would fail for a
/// reason only time can fix (a link not created yet), so the caller can
/// report it and retry when links change instead of failing the table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pending {
    pub table: u32,
    pub route: Route,
    /// Human-readable cause, e.g. `link liqo.abc not found`.
    pub reason: String,
}

/// Whether to garbage-collect marked rules and routes outside the desired
/// tables. Only a process that knows it sees *all* desired tables of its
/// protocol mark may prune; a partial view would delete live tables.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Prune {
    Nothing,
    /// Delete every rule and dumped route carrying `protocol` whose table
    /// is not desired. Nothing without the mark is ever deleted.
    Owned {
        protocol: u8,
    },
}

impl Plan {
    /// True when the kernel already matches and nothing waits: a plan with
    /// only pending routes is not empty, so callers do not mistake a
    /// blocked table for an applied one.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty() && self.pending.is_empty()
    }

    /// Number of ops per table, for one log line per table instead of one
    /// per route.
    pub fn count_by_table(&self) -> BTreeMap<u32, usize> {
        let mut counts = BTreeMap::new();
        for op in &self.ops {
            *counts.entry(op.table()).or_insert(0) += 1;
        }
        counts
    }
}

/// Computes the ops that turn `snapshot` into `desired`.
///
/// Ops come in five phases so that the whole plan can go to the kernel in
/// one batch without waiting and without ever removing something that is
/// still needed:
/// 1. add missing rules (all tables): a gateway route in one table may be
///    resolvable only through another table's rule (the seed's extcidr
///    routes reach their gateway via the gw-node table's `to <gw>` rule),
///    and the kernel checks gateway reachability when the route is added;
/// 2. replace gateway-less (link-scope) routes: they are what gateways
///    resolve through;
/// 3. replace gateway routes, those whose gateway lies inside a desired
///    gateway-less route first;
/// 4. delete stale routes;
/// 5. delete stale rules: last, so a rule whose priority changed is added
///    (phase 1) before its old copy goes and traffic never misses it.
///
/// Within a phase ops are sorted by table id, then dst or selector, so the
/// same inputs always give the same plan.
pub fn plan(desired: &[Table], snapshot: &Snapshot, prune: Prune) -> Plan {
    let managed = managed_tables(desired);
    let rules = rules::diff(desired, &snapshot.rules, &managed, prune);
    let routes = routes::diff(desired, snapshot, &managed, prune);
    order::assemble(rules, routes)
}

/// Every table a desired object names is managed, including the tables
/// its rules and routes point at (normally the same id).
fn managed_tables(desired: &[Table]) -> HashSet<u32> {
    let mut managed = HashSet::new();
    for table in desired {
        managed.insert(table.id);
        let ids = table.rules.iter().map(|r| r.table);
        let mut last = table.id;
        // Consecutive repeats (every route of a table) are looked up once.
        for id in ids.chain(table.routes.iter().map(|r| r.table)) {
            if id != last {
                managed.insert(id);
                last = id;
            }
        }
    }
    managed
}

/// Orders networks as `IpNet`'s `Ord` does (family, address, prefix
/// length), at the cost of a few integer compares.
type NetKey = (u8, u128, u8);

fn net_key(net: &IpNet) -> NetKey {
    match net {
        IpNet::V4(n) => (0, u128::from(n.addr().to_bits()), n.prefix_len()),
        IpNet::V6(n) => (1, n.addr().to_bits(), n.prefix_len()),
    }
}

/// A route's identity within the kernel as the planner sorts it: (table,
/// dst), in the order of the derived `Ord` on those fields.
fn route_key(route: &Route) -> (u32, NetKey) {
    (route.table, net_key(&route.dst))
}
