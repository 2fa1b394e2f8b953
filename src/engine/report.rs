//! The outcome of one apply, per table, in a shape that serves both the
//! human-readable CLI output and `--output json`.

use crate::routing::Table;
use serde::Serialize;

/// What happened to one table.
#[derive(Clone, Debug, Default, Serialize, PartialEq, Eq)]
pub struct TableReport {
    pub id: u32,
    /// Empty for tables that were only garbage-collected (no object names
    /// them any more).
    pub name: String,
    pub owner: String,
    /// Kernel changes that succeeded.
    pub changes: usize,
    /// Routes waiting for a link or a reachable gateway; retried later.
    pub pending: Vec<String>,
    /// Changes the kernel refused for another reason.
    pub errors: Vec<String>,
}

impl TableReport {
    /// Applied means: everything desired is in the kernel.
    pub fn applied(&self) -> bool {
        self.pending.is_empty() && self.errors.is_empty()
    }

    /// One-line reason for a not-applied table (status messages, Events).
    pub fn reason(&self) -> Option<String> {
        let mut parts: Vec<&str> = self.errors.iter().map(String::as_str).collect();
        parts.extend(self.pending.iter().map(|p| p.as_str()));
        match parts.len() {
            0 => None,
            1 => Some(parts[0].to_string()),
            n => Some(format!("{} (and {} more)", parts[0], n - 1)),
        }
    }
}

/// Outcome of one apply over many tables.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Report {
    pub tables: Vec<TableReport>,
    /// Total kernel changes made.
    pub changes: usize,
}

impl Report {
    /// Starts a report with one (empty) entry per desired table.
    pub fn new(desired: &[Table]) -> Report {
        Report {
            tables: desired
                .iter()
                .map(|t| TableReport {
                    id: t.id,
                    name: t.name.clone(),
                    owner: t.owner.clone(),
                    ..TableReport::default()
                })
                .collect(),
            changes: 0,
        }
    }

    /// The entry for `id`, created for tables that are not desired (ones
    /// being removed).
    pub fn table(&mut self, id: u32) -> &mut TableReport {
        match self.tables.iter().position(|t| t.id == id) {
            Some(i) => &mut self.tables[i],
            None => {
                self.tables.push(TableReport {
                    id,
                    ..TableReport::default()
                });
                let last = self.tables.len() - 1;
                &mut self.tables[last]
            }
        }
    }

    /// Looks up a table's entry without creating one.
    pub fn get(&self, id: u32) -> Option<&TableReport> {
        self.tables.iter().find(|t| t.id == id)
    }

    /// Totals the per-table counts.
    pub fn finish(&mut self) {
        self.changes = self.tables.iter().map(|t| t.changes).sum();
    }

    /// Tables that were garbage-collected (no object names them).
    pub fn removed(&self) -> Vec<u32> {
        self.tables
            .iter()
            .filter(|t| t.name.is_empty())
            .map(|t| t.id)
            .collect()
    }

    /// True when every table is fully applied.
    pub fn all_applied(&self) -> bool {
        self.tables.iter().all(TableReport::applied)
    }
}
