//! The agent's memory of the API: the selected objects as last seen, and
//! the desired tables built from them. Pure: events go in, the set of tables
//! that need work comes out.

use crate::model::desired::build_with;
use crate::model::selector::SelectorSet;
use crate::model::validate::Policy;
use crate::model::{Desired, RouteConfiguration};
use crate::routing::Table;
use serde::Deserialize;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};

/// `namespace/name` of a raw API object.
pub fn key_of(object: &Value) -> String {
    let meta = object.get("metadata");
    let get = |f: &str| {
        meta.and_then(|m| m.get(f))
            .and_then(Value::as_str)
            .unwrap_or("")
    };
    match get("namespace") {
        "" => get("name").to_string(),
        ns => format!("{ns}/{}", get("name")),
    }
}

/// Labels of a raw API object (non-string values are ignored).
pub fn labels_of(object: &Value) -> BTreeMap<String, String> {
    object
        .pointer("/metadata/labels")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_string())))
                .collect()
        })
        .unwrap_or_default()
}

/// One selected object: what status writes and Events need of the raw
/// form (see [`slim`]) and its typed form, or why it could not be read.
struct Entry {
    raw: Value,
    typed: Result<RouteConfiguration, String>,
}

/// The parts of an object the agent writes back or refers to: identity,
/// metadata, status and the table name. The spec's routes live only in the
/// typed form; keeping them twice would double the agent's memory. A status
/// write carries only these parts: the API server keeps the stored spec
/// for status-subresource updates.
fn slim(object: &Value) -> Value {
    let mut out = serde_json::Map::new();
    for field in ["apiVersion", "kind", "metadata", "status"] {
        if let Some(v) = object.get(field) {
            out.insert(field.to_string(), v.clone());
        }
    }
    if let Some(name) = object.pointer("/spec/table/name") {
        out.insert(
            "spec".to_string(),
            serde_json::json!({ "table": { "name": name } }),
        );
    }
    Value::Object(out)
}

/// Tables that need kernel work after a change of objects.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Changes {
    /// Desired tables that are new or whose content changed.
    pub dirty: BTreeSet<u32>,
    /// Tables no valid object wants any more.
    pub removed: BTreeSet<u32>,
    /// Warnings of the objects whose tables are dirty (for example a rule
    /// accepted by `--allow-match-all`): repeated each time such a table
    /// is rebuilt for applying, not only the first time.
    pub warnings: Vec<String>,
}

impl Changes {
    pub fn is_empty(&self) -> bool {
        self.dirty.is_empty() && self.removed.is_empty()
    }
}

/// The warnings of `desired` that belong to the owners of `dirty` tables
/// (every warning starts with its object's `namespace/name`).
pub fn warnings_of_dirty(desired: &Desired, dirty: &BTreeSet<u32>) -> Vec<String> {
    let owners: Vec<String> = desired
        .tables
        .iter()
        .filter(|t| dirty.contains(&t.id))
        .map(|t| format!("{}: ", t.owner))
        .collect();
    desired
        .warnings
        .iter()
        .filter(|w| owners.iter().any(|o| w.starts_with(o.as_str())))
        .cloned()
        .collect()
}

/// Selected objects and the desired state derived from them.
pub struct State {
    selectors: SelectorSet,
    policy: Policy,
    objects: BTreeMap<String, Entry>,
    desired: Desired,
    /// Objects that could not even be read as RouteConfigurations.
    unreadable: Vec<(String, String)>,
}

impl State {
    pub fn new(selectors: SelectorSet, policy: Policy) -> State {
        State {
            selectors,
            policy,
            objects: BTreeMap::new(),
            desired: Desired::default(),
            unreadable: Vec::new(),
        }
    }

    /// Whether an object is one this agent manages.
    pub fn selects(&self, object: &Value) -> bool {
        self.selectors.matches(&labels_of(object))
    }

    /// Records an added or modified object. An object that no longer
    /// matches the selectors is dropped, exactly like a deletion. Returns
    /// whether the desired state may have changed (a new object, another
    /// spec, labels or deletion mark); a status-only change (our own
    /// writes echoing back) returns false and needs no rebuild.
    pub fn upsert(&mut self, object: Value) -> bool {
        let key = key_of(&object);
        if !self.selects(&object) {
            return self.objects.remove(&key).is_some();
        }
        let typed = RouteConfiguration::deserialize(&object).map_err(|e| e.to_string());
        let raw = slim(&object);
        drop(object);
        let same = match (self.objects.get(&key).map(|e| &e.typed), &typed) {
            (Some(Ok(old)), Ok(new)) => {
                old.spec == new.spec
                    && old.metadata.labels == new.metadata.labels
                    && old.metadata.deletion_timestamp == new.metadata.deletion_timestamp
                    && old.metadata.creation_timestamp == new.metadata.creation_timestamp
            }
            _ => false,
        };
        self.objects.insert(key, Entry { raw, typed });
        !same
    }

    /// Records a deletion.
    pub fn remove(&mut self, key: &str) -> bool {
        self.objects.remove(key).is_some()
    }

    /// Replaces every object (after a re-list), so objects deleted while
    /// the watch was down are noticed.
    pub fn replace_all(&mut self, objects: Vec<Value>) {
        self.objects.clear();
        for o in objects {
            self.upsert(o);
        }
    }

    /// Rebuilds the desired tables and says which tables changed since the
    /// previous build.
    pub fn rebuild(&mut self) -> Changes {
        self.unreadable = self
            .objects
            .iter()
            .filter_map(|(key, e)| e.typed.as_ref().err().map(|err| (key.clone(), err.clone())))
            .collect();
        let typed = self.objects.values().filter_map(|e| e.typed.as_ref().ok());
        let mut next = build_with(typed, &self.policy);
        let unreadable_tables = self.objects.values().filter(|e| e.typed.is_err());
        let unreadable_tables = unreadable_tables
            .filter_map(|e| e.raw.pointer("/spec/table/name").and_then(Value::as_str));
        crate::model::desired::freeze_unreadable(&mut next, unreadable_tables);
        let mut changes = diff_tables(&self.desired.tables, &next.tables, &next.frozen);
        changes.warnings = warnings_of_dirty(&next, &changes.dirty);
        for w in &changes.warnings {
            log::warn!("{w}");
        }
        self.desired = next;
        changes
    }

    pub fn desired(&self) -> &Desired {
        &self.desired
    }

    /// Raw objects by key, for status writes.
    pub fn raw(&self, key: &str) -> Option<&Value> {
        self.objects.get(key).map(|e| &e.raw)
    }

    /// Stores the object the API returned after our own write, so the next
    /// write carries its new resourceVersion.
    pub fn refresh_raw(&mut self, object: Value) {
        let key = key_of(&object);
        if let Some(e) = self.objects.get_mut(&key) {
            e.raw = slim(&object);
        }
    }

    pub fn keys(&self) -> impl Iterator<Item = &String> {
        self.objects.keys()
    }

    /// Every object's problem, if it has one that is not the kernel's:
    /// unreadable or invalid.
    pub fn object_errors(&self) -> BTreeMap<String, String> {
        let mut m: BTreeMap<String, String> = self
            .desired
            .failures
            .iter()
            .map(|f| (f.object.clone(), f.to_string()))
            .collect();
        for (key, e) in &self.unreadable {
            m.insert(key.clone(), format!("{key}: {e}"));
        }
        m
    }

    /// Every readable object, for mapping kernel state back to specs
    /// (`/status` origins).
    pub fn objects(&self) -> impl Iterator<Item = &RouteConfiguration> {
        self.objects.values().filter_map(|e| e.typed.as_ref().ok())
    }

    /// The table an object's spec produced, if valid.
    pub fn table_of(&self, key: &str) -> Option<&Table> {
        self.desired.tables.iter().find(|t| t.owner == key)
    }
}

/// Tables that differ between two builds. Frozen tables (owned by an
/// object that is now invalid) are neither dirty nor removed: their kernel
/// state stays as it was.
pub fn diff_tables(old: &[Table], new: &[Table], frozen: &[u32]) -> Changes {
    let old_by_id: BTreeMap<u32, &Table> = old.iter().map(|t| (t.id, t)).collect();
    let new_by_id: BTreeMap<u32, &Table> = new.iter().map(|t| (t.id, t)).collect();
    let mut changes = Changes::default();
    for (id, t) in &new_by_id {
        if old_by_id.get(id) != Some(t) {
            changes.dirty.insert(*id);
        }
    }
    for id in old_by_id.keys() {
        if !new_by_id.contains_key(id) && !frozen.contains(id) {
            changes.removed.insert(*id);
        }
    }
    changes
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn object(name: &str, table: &str, gw: &str, labels: Value) -> Value {
        json!({
            "apiVersion": "networking.liqo.io/v1beta1",
            "kind": "RouteConfiguration",
            "metadata": {"name": name, "namespace": "liqo", "labels": labels,
                         "creationTimestamp": "2024-01-01T00:00:00Z"},
            "spec": {"table": {"name": table, "rules": [
                {"dst": "10.1.0.0/16", "routes": [{"dst": "10.1.0.0/16", "gw": gw}]}
            ]}}
        })
    }

    fn fabric() -> Value {
        json!({"networking.liqo.io/route-category": "fabric"})
    }

    fn state() -> State {
        State::new(SelectorSet::fabric(), Policy::new(114))
    }

    #[test]
    fn new_object_makes_its_table_dirty() {
        let mut s = state();
        assert!(s.upsert(object("a", "ta", "10.9.0.1", fabric())));
        let c = s.rebuild();
        assert_eq!(c.dirty.len(), 1);
        assert!(c.removed.is_empty());
        assert_eq!(s.table_of("liqo/a").map(|t| t.name.as_str()), Some("ta"));
    }

    #[test]
    fn unchanged_spec_changes_nothing_and_edit_is_dirty() {
        let mut s = state();
        s.upsert(object("a", "ta", "10.9.0.1", fabric()));
        s.upsert(object("b", "tb", "10.9.0.1", fabric()));
        s.rebuild();
        s.upsert(object("a", "ta", "10.9.0.1", fabric()));
        assert!(s.rebuild().is_empty());
        s.upsert(object("a", "ta", "10.9.0.2", fabric()));
        let c = s.rebuild();
        let id = s.table_of("liqo/a").map(|t| t.id);
        assert_eq!(
            c.dirty.into_iter().collect::<Vec<_>>(),
            id.into_iter().collect::<Vec<_>>()
        );
    }

    #[test]
    fn an_object_that_stops_decoding_freezes_its_table() {
        let mut s = state();
        s.upsert(object("a", "ta", "10.9.0.1", fabric()));
        s.rebuild();
        let mut broken = object("a", "ta", "10.9.0.1", fabric());
        broken["spec"]["table"]["rules"] = json!(5);
        assert!(s.upsert(broken));
        let c = s.rebuild();
        assert!(c.is_empty(), "{c:?}");
        assert!(s.object_errors().contains_key("liqo/a"));
    }

    #[test]
    fn deletion_and_label_change_remove_the_table() {
        let mut s = state();
        s.upsert(object("a", "ta", "10.9.0.1", fabric()));
        s.upsert(object("b", "tb", "10.9.0.1", fabric()));
        s.rebuild();
        let ida = s.table_of("liqo/a").map(|t| t.id).unwrap();
        let idb = s.table_of("liqo/b").map(|t| t.id).unwrap();
        assert!(s.remove("liqo/a"));
        assert_eq!(s.rebuild().removed, BTreeSet::from([ida]));
        // b stops matching the selectors: same as deleted.
        assert!(s.upsert(object("b", "tb", "10.9.0.1", json!({"other": "x"}))));
        assert_eq!(s.rebuild().removed, BTreeSet::from([idb]));
        assert_eq!(s.keys().count(), 0);
    }

    #[test]
    fn status_only_change_needs_no_rebuild_and_raw_is_slim() {
        let mut s = state();
        assert!(s.upsert(object("a", "ta", "10.9.0.1", fabric())));
        s.rebuild();
        let mut o = object("a", "ta", "10.9.0.1", fabric());
        o["status"] = json!({"conditions": [{"host": "h", "type": "Applied", "status": "True"}]});
        o["metadata"]["resourceVersion"] = json!("7");
        assert!(!s.upsert(o));
        let raw = s.raw("liqo/a").unwrap();
        assert_eq!(raw["metadata"]["resourceVersion"], "7");
        assert_eq!(raw["status"]["conditions"][0]["host"], "h");
        assert_eq!(raw["spec"], json!({"table": {"name": "ta"}}));
        // A label change is a change.
        let relabelled = object(
            "a",
            "ta",
            "10.9.0.1",
            json!({"networking.liqo.io/route-category": "fabric", "x": "y"}),
        );
        assert!(s.upsert(relabelled));
    }

    #[test]
    fn match_all_is_refused_unless_allowed_and_then_warned_on_each_rebuild() {
        let match_all = |gw: &str| {
            let mut o = object("m", "tm", gw, fabric());
            o["spec"]["table"]["rules"][0]
                .as_object_mut()
                .map(|r| r.remove("dst"));
            o
        };
        let mut refusing = state();
        refusing.upsert(match_all("10.9.0.1"));
        assert!(refusing.rebuild().is_empty());
        assert!(
            refusing.object_errors()["liqo/m"].contains("has no src, dst, iif, oif or fwmark"),
            "{:?}",
            refusing.object_errors()
        );

        let allow = Policy {
            allow_match_all: true,
            ..Policy::new(114)
        };
        let mut s = State::new(SelectorSet::fabric(), allow);
        s.upsert(match_all("10.9.0.1"));
        s.upsert(object("b", "tb", "10.9.0.1", fabric()));
        let c = s.rebuild();
        assert_eq!(c.dirty.len(), 2);
        let warning = "liqo/m: spec.table.rules[0]: has no src, dst, iif, oif or fwmark: it \
                       sends all traffic to this table (accepted by --allow-match-all)";
        assert_eq!(c.warnings, [warning]);
        assert!(s.object_errors().is_empty());
        assert_eq!(s.table_of("liqo/m").map(|t| t.rules.len()), Some(1));
        // An edit of another object does not repeat m's warning ...
        s.upsert(object("b", "tb", "10.9.0.2", fabric()));
        assert!(s.rebuild().warnings.is_empty());
        // ... an edit of m, applied again, does.
        s.upsert(match_all("10.9.0.2"));
        assert_eq!(s.rebuild().warnings, [warning]);
    }

    #[test]
    fn unselected_object_is_ignored() {
        let mut s = state();
        assert!(!s.upsert(object("a", "ta", "10.9.0.1", json!({}))));
        assert!(s.rebuild().is_empty());
    }

    #[test]
    fn invalid_edit_freezes_the_table() {
        let mut s = state();
        s.upsert(object("a", "ta", "10.9.0.1", fabric()));
        s.rebuild();
        s.upsert(object("a", "ta", "10.9.0", fabric()));
        let c = s.rebuild();
        assert!(c.is_empty(), "{c:?}");
        let errors = s.object_errors();
        assert!(
            errors["liqo/a"].contains("spec.table.rules[0].routes[0].gw"),
            "{errors:?}"
        );
    }

    #[test]
    fn unreadable_object_reports_error() {
        let mut s = state();
        let mut o = object("a", "ta", "10.9.0.1", fabric());
        o["spec"]["table"]["rules"] = json!("not a list");
        s.upsert(o);
        s.rebuild();
        assert!(s.object_errors().contains_key("liqo/a"));
    }

    #[test]
    fn relist_drops_objects_deleted_meanwhile() {
        let mut s = state();
        s.upsert(object("a", "ta", "10.9.0.1", fabric()));
        s.upsert(object("b", "tb", "10.9.0.1", fabric()));
        s.rebuild();
        let ida = s.table_of("liqo/a").map(|t| t.id).unwrap();
        s.replace_all(vec![object("b", "tb", "10.9.0.1", fabric())]);
        assert_eq!(s.rebuild().removed, BTreeSet::from([ida]));
    }
}
