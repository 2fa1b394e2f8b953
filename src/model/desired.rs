//! From every selected object to the set of tables routecfg should hold:
//! validation per object, then table ownership across objects.
//!
//! One broken or conflicting object never stops the others: it is
//! reported in `failures` and every other object still yields its table.

use super::api::RouteConfiguration;
use super::load::Loaded;
use super::validate::{ObjectError, Policy, Validated, check_table_name, validate_with};
use crate::routing::Table;
use crate::table_id::table_id;
use std::collections::{BTreeSet, HashMap};

/// The desired state of the host, plus everything worth telling the user.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Desired {
    /// One table per valid, non-conflicting object, sorted by name.
    pub tables: Vec<Table>,
    /// Invalid objects and losers of table-name conflicts, in input order
    /// (conflicts after validation errors).
    pub failures: Vec<ObjectError>,
    pub warnings: Vec<String>,
    /// Table ids named by objects that failed validation and are owned by
    /// no valid object. The planner should leave these tables as they are
    /// in the kernel rather than garbage-collect them: a typo in an object
    /// must not tear down routes that work.
    pub frozen: Vec<u32>,
    /// Tables refused because their name maps to the id of another
    /// object's table (30-bit ids, as upstream): the loser is also in
    /// `failures`; these are kept apart so metrics and `/status` can list
    /// them without parsing messages.
    pub collisions: Vec<Collision>,
}

/// Two table names with one kernel id: `owner` keeps it, `loser` is not
/// applied.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Collision {
    pub id: u32,
    pub owner: String,
    pub owner_table: String,
    pub loser: String,
    pub loser_table: String,
}

/// Builds the desired state of `objects`, stamping `protocol` on every rule
/// and route.
///
/// - The same object (`namespace/name`) given twice: the last one wins, as
///   when applying the inputs in order; a warning says so.
/// - Objects with a `deletionTimestamp` are on their way out: they want
///   nothing, claim no table and are not validated.
/// - Two objects naming the same table (or names hashing to the same id):
///   the older one (`creationTimestamp`, compared as the apiserver's
///   RFC 3339 `...Z` text; objects without one count as newest) keeps it,
///   ties broken by `namespace/name`; the other fails naming the owner.
pub fn build<'a>(
    objects: impl IntoIterator<Item = &'a RouteConfiguration>,
    protocol: u8,
) -> Desired {
    build_with(objects, &Policy::new(protocol))
}

/// [`build`] under an explicit validation policy (the agent's
/// `--allow-match-all` and limits).
pub fn build_with<'a>(
    objects: impl IntoIterator<Item = &'a RouteConfiguration>,
    policy: &Policy,
) -> Desired {
    let items = objects.into_iter().map(|o| (o, None)).collect();
    build_from(items, policy)
}

/// [`build`] for objects from [`super::load::load_paths_validated`]: the
/// validation results the loader computed are used as they are (they are
/// what [`validate`] returns for the objects as they were read).
pub fn build_loaded(mut objects: Vec<Loaded>, policy: &Policy) -> Desired {
    let items = objects
        .iter_mut()
        .map(|l| (&l.object, l.validated.take()))
        .collect();
    build_from(items, policy)
}

type Item<'a> = (
    &'a RouteConfiguration,
    Option<Result<Validated, ObjectError>>,
);

fn build_from(objects: Vec<Item<'_>>, policy: &Policy) -> Desired {
    let mut desired = Desired::default();

    let mut index: HashMap<String, usize> = HashMap::new();
    let mut unique: Vec<Item<'_>> = Vec::with_capacity(objects.len());
    for item in objects {
        let key = item.0.key();
        match index.get(&key) {
            Some(&i) => {
                desired.warnings.push(format!(
                    "{key}: appears more than once in the input; the last definition wins"
                ));
                unique[i] = item;
            }
            None => {
                index.insert(key, unique.len());
                unique.push(item);
            }
        }
    }

    let mut valid = Vec::new();
    let mut broken_tables = Vec::new();
    for (obj, validated) in unique {
        if obj.metadata.deletion_timestamp.is_some() {
            log::debug!("{}: being deleted; it wants no table", obj.key());
            continue;
        }
        match validated.unwrap_or_else(|| validate_with(obj, policy)) {
            Ok(v) => {
                desired.warnings.extend(v.warnings);
                valid.push((obj, v.table));
            }
            Err(e) => {
                if let Ok(name) = check_table_name(obj.spec.table.name.as_deref()) {
                    broken_tables.push(table_id(name));
                }
                desired.failures.push(e);
            }
        }
    }

    valid.sort_by(|(a, _), (b, _)| {
        let age = |o: &RouteConfiguration| {
            let ts = o.metadata.creation_timestamp.clone();
            (ts.is_none(), ts, o.key())
        };
        age(a).cmp(&age(b))
    });
    let mut by_name: HashMap<String, String> = HashMap::new();
    let mut by_id: HashMap<u32, (String, String)> = HashMap::new();
    for (obj, table) in valid {
        let key = obj.key();
        if let Some(owner) = by_name.get(&table.name) {
            desired.failures.push(ObjectError {
                object: key,
                field: "spec.table.name".to_string(),
                message: format!("table {:?} is already owned by {owner}", table.name),
            });
            continue;
        }
        if let Some((name, owner)) = by_id.get(&table.id) {
            desired.collisions.push(Collision {
                id: table.id,
                owner: owner.clone(),
                owner_table: name.clone(),
                loser: key.clone(),
                loser_table: table.name.clone(),
            });
            desired.failures.push(ObjectError {
                object: key,
                field: "spec.table.name".to_string(),
                message: format!(
                    "table {:?} has id {}, the same as table {name:?} owned by {owner}; rename one",
                    table.name, table.id
                ),
            });
            continue;
        }
        by_name.insert(table.name.clone(), key.clone());
        by_id.insert(table.id, (table.name.clone(), key));
        desired.tables.push(table);
    }
    desired.tables.sort_by(|a, b| a.name.cmp(&b.name));

    let frozen: BTreeSet<u32> = broken_tables
        .into_iter()
        .filter(|id| !by_id.contains_key(id))
        .collect();
    desired.frozen = frozen.into_iter().collect();
    desired
}

/// Freezes the tables named by objects that could not even be decoded
/// (their raw `spec.table.name`), unless a valid object owns them: an
/// object that cannot be read must not tear down its working table, just
/// as an invalid one does not (see [`Desired::frozen`]).
pub fn freeze_unreadable<'a>(
    desired: &mut Desired,
    table_names: impl IntoIterator<Item = &'a str>,
) {
    let owned: BTreeSet<u32> = desired.tables.iter().map(|t| t.id).collect();
    let mut frozen: BTreeSet<u32> = desired.frozen.iter().copied().collect();
    for name in table_names {
        if let Ok(name) = check_table_name(Some(name)) {
            let id = table_id(name);
            if !owned.contains(&id) {
                frozen.insert(id);
            }
        }
    }
    desired.frozen = frozen.into_iter().collect();
}

#[cfg(test)]
mod tests;
