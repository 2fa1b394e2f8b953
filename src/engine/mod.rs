//! The imperative shell around the pure planner: snapshot the kernel, plan,
//! execute the plan as one netlink batch, retry what only failed because of
//! ordering, and report per table.
//!
//! The engine holds no desired state of its own; callers (the CLI, the
//! agent's event loop) pass the full desired set every time, so a restart or
//! a resync can never leave the engine believing something stale.

mod report;

pub use report::{Report, TableReport};

use crate::kernel::{KernelError, Netlink, RouteFilter};
use crate::plan::{self, Plan, Prune};
use crate::routing::{Op, Snapshot, Table};
use std::borrow::Cow;
use std::collections::BTreeSet;

/// What to look at and what may be removed in one apply.
#[derive(Clone, Debug, Default)]
pub struct Scope {
    /// Tables whose routes are dumped and reconciled. Desired tables not
    /// listed here keep their routes as they are (the agent uses this to
    /// touch only tables that changed); `None` means every desired table.
    pub tables: Option<BTreeSet<u32>>,
    /// Extra tables to dump although not desired, so their marked leftovers
    /// can be removed (an object that was deleted).
    pub removed: BTreeSet<u32>,
    /// Also discover every table carrying our mark anywhere in the kernel
    /// and remove those that are not desired (`--prune`, `cleanup`, resync).
    pub discover_owned: bool,
    /// Tables never touched, whatever else says: those of objects that are
    /// invalid right now keep their last good kernel state (fail static).
    pub frozen: BTreeSet<u32>,
}

/// Kernel errors worth one more try within the same apply: a gateway that
/// becomes reachable once another op of the batch landed.
fn is_ordering_failure(err: &KernelError) -> bool {
    err.errno_name() == "ENETUNREACH"
}

/// Drives the kernel through one netlink socket.
pub struct Engine {
    netlink: Netlink,
    protocol: u8,
}

impl Engine {
    /// Opens the netlink socket; `protocol` is the ownership mark.
    pub fn new(protocol: u8) -> Result<Engine, KernelError> {
        Ok(Engine {
            netlink: Netlink::open()?,
            protocol,
        })
    }

    /// Direct access for callers that need kernel facts the engine does not
    /// model (the demo's `route get`, the status command).
    pub fn netlink(&mut self) -> &mut Netlink {
        &mut self.netlink
    }

    /// Reads what the kernel holds for the tables in scope.
    pub fn snapshot(&mut self, desired: &[Table], scope: &Scope) -> Result<Snapshot, KernelError> {
        let links = self.netlink.links()?;
        let rules = self.netlink.dump_rules()?;
        let mut tables: BTreeSet<u32> = match &scope.tables {
            Some(t) => t.clone(),
            None => desired.iter().map(|t| t.id).collect(),
        };
        tables.extend(scope.removed.iter().copied());
        if scope.discover_owned {
            let owned = self.netlink.dump_routes(RouteFilter {
                table: None,
                protocol: Some(self.protocol),
            })?;
            tables.extend(owned.iter().map(|r| r.table));
            tables.extend(
                rules
                    .iter()
                    .filter(|r| r.protocol == self.protocol)
                    .map(|r| r.table),
            );
        }
        let mut routes = Vec::new();
        for &table in &tables {
            let mut dumped = self.netlink.dump_routes(RouteFilter {
                table: Some(table),
                protocol: None,
            })?;
            // Taking the first table's vector as is saves a copy of what
            // is usually the whole snapshot.
            if routes.is_empty() {
                routes = dumped;
            } else {
                routes.append(&mut dumped);
            }
        }
        Ok(Snapshot {
            rules,
            routes,
            dumped_tables: tables.into_iter().collect(),
            links: links.into_iter().map(|l| l.name).collect(),
        })
    }

    /// Computes what `apply` would do, without changing anything.
    pub fn plan(&mut self, desired: &[Table], scope: &Scope) -> Result<Plan, KernelError> {
        let (plan, _) = self.scoped_plan(desired, scope)?;
        Ok(plan)
    }

    /// Plans within `scope` and returns the desired tables the plan covers:
    /// only those may be reported on.
    fn scoped_plan<'a>(
        &mut self,
        desired: &'a [Table],
        scope: &Scope,
    ) -> Result<(Plan, Cow<'a, [Table]>), KernelError> {
        let mut snapshot = self.snapshot(desired, scope)?;
        // The planner treats every desired table and every dumped rule as in
        // scope; narrow both to what this apply is about.
        let in_scope: Option<BTreeSet<u32>> = scope
            .tables
            .as_ref()
            .map(|t| t.union(&scope.removed).copied().collect());
        let keep = |table: u32| {
            !scope.frozen.contains(&table) && in_scope.as_ref().is_none_or(|s| s.contains(&table))
        };
        snapshot.rules.retain(|r| keep(r.table));
        snapshot.routes.retain(|r| keep(r.table));
        snapshot.dumped_tables.retain(|&t| keep(t));
        // Frozen tables are never desired (their object is invalid), so only
        // a narrowed scope needs a filtered copy.
        let desired: Cow<'a, [Table]> = match &in_scope {
            None => Cow::Borrowed(desired),
            Some(_) => Cow::Owned(desired.iter().filter(|t| keep(t.id)).cloned().collect()),
        };
        let plan = plan::plan(&desired, &snapshot, self.prune(scope));
        Ok((plan, desired))
    }

    fn prune(&self, scope: &Scope) -> Prune {
        if scope.discover_owned || !scope.removed.is_empty() {
            Prune::Owned {
                protocol: self.protocol,
            }
        } else {
            Prune::Nothing
        }
    }

    /// Makes the kernel match `desired` within `scope` and reports, per
    /// table, what changed, what is pending and what failed.
    /// Tables outside the scope get no entry in the report: nothing was
    /// learnt about them.
    pub fn apply(&mut self, desired: &[Table], scope: &Scope) -> Result<Report, KernelError> {
        let (plan, covered) = self.scoped_plan(desired, scope)?;
        Ok(self.execute(&covered, plan))
    }

    /// Executes a plan computed earlier (by [`Engine::plan`]).
    pub fn execute(&mut self, desired: &[Table], plan: Plan) -> Report {
        let mut report = Report::new(desired);
        for p in plan.pending {
            report.table(p.table).pending.push(p.reason);
        }
        let mut todo = plan.ops;
        let mut first_round = true;
        loop {
            let results = self.netlink.execute(&todo);
            let mut retry = Vec::new();
            let mut progressed = false;
            for (op, result) in todo.into_iter().zip(results) {
                match result {
                    Ok(()) => {
                        progressed = true;
                        report.table(op.table()).changes += 1;
                    }
                    Err(e) if is_ordering_failure(&e) && matches!(op, Op::ReplaceRoute(_)) => {
                        retry.push((op, e));
                    }
                    Err(e) if e.is_pending() => {
                        report.table(op.table()).pending.push(e.to_string())
                    }
                    Err(e) => report.table(op.table()).errors.push(e.to_string()),
                }
            }
            if retry.is_empty() {
                break;
            }
            if !progressed && !first_round {
                for (op, e) in retry {
                    report.table(op.table()).pending.push(e.to_string());
                }
                break;
            }
            log::debug!(
                "retrying {} routes whose gateway was unreachable",
                retry.len()
            );
            todo = retry.into_iter().map(|(op, _)| op).collect();
            first_round = false;
        }
        report.finish();
        report
    }
}
