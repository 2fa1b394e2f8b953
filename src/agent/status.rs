//! Per-host `Applied` conditions in `status.conditions`: the pure decision
//! of what an object's status should become. Writing it (with optimistic
//! concurrency) is the caller's job.
//!
//! Several hosts share one object's condition list, each owning the entry
//! whose `host` is its own name. An entry's `lastTransitionTime` changes only
//! when its status flips, and nothing is written when nothing changed, so a
//! steady cluster causes no API traffic.

use crate::model::desired::Collision;
use serde_json::{Value, json};

/// `/status`'s `collisions`: each table-id collision with both objects,
/// so an operator sees why a table is missing without reading Events.
pub fn collisions_json(collisions: &[Collision]) -> Value {
    collisions
        .iter()
        .map(|c| {
            json!({
                "id": c.id,
                "kept": {"object": c.owner, "table": c.owner_table},
                "refused": {"object": c.loser, "table": c.loser_table},
            })
        })
        .collect()
}

/// Condition type written by routecfg (as upstream).
pub const APPLIED: &str = "Applied";

/// Returns the object's new `status` if this host's condition must change,
/// or `None` when it already says `applied`. Other hosts' entries and any
/// unknown fields are preserved as they are.
pub fn updated_status(object: &Value, host: &str, applied: bool, now: &str) -> Option<Value> {
    let want = if applied { "True" } else { "False" };
    let mut status = object
        .get("status")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let mut conditions: Vec<Value> = status
        .get("conditions")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let mine = |c: &Value| {
        c.get("host").and_then(Value::as_str) == Some(host)
            && c.get("type").and_then(Value::as_str) == Some(APPLIED)
    };
    let mut found = false;
    let mut changed = false;
    conditions.retain(|c| {
        if !mine(c) {
            return true;
        }
        // Keep only the first entry of ours: duplicates are an earlier bug's
        // or another writer's leftovers and would confuse readers.
        let keep = !found;
        changed |= found;
        found = true;
        keep
    });
    match conditions.iter_mut().find(|c| mine(c)) {
        Some(c) if c.get("status").and_then(Value::as_str) == Some(want) => {}
        Some(c) => {
            if let Some(m) = c.as_object_mut() {
                m.insert("status".into(), json!(want));
                m.insert("lastTransitionTime".into(), json!(now));
            }
            changed = true;
        }
        None => {
            conditions.push(json!({
                "host": host,
                "type": APPLIED,
                "status": want,
                "lastTransitionTime": now,
            }));
            changed = true;
        }
    }
    if !changed {
        return None;
    }
    status.insert("conditions".into(), Value::Array(conditions));
    Some(Value::Object(status))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obj(conditions: Value) -> Value {
        json!({"metadata": {"name": "x"}, "status": {"conditions": conditions}})
    }

    #[test]
    fn collisions_name_both_objects_and_the_id() {
        let c = Collision {
            id: 1_463_302_529,
            owner: "liqo/a".into(),
            owner_table: "collide-14868".into(),
            loser: "liqo/b".into(),
            loser_table: "collide-25220".into(),
        };
        assert_eq!(
            collisions_json(&[c]),
            json!([{"id": 1_463_302_529u32,
                    "kept": {"object": "liqo/a", "table": "collide-14868"},
                    "refused": {"object": "liqo/b", "table": "collide-25220"}}])
        );
        assert_eq!(collisions_json(&[]), json!([]));
    }

    #[test]
    fn adds_entry_for_new_host_keeping_others() {
        let o = obj(
            json!([{"host": "a", "type": "Applied", "status": "True", "lastTransitionTime": "t0"}]),
        );
        let s = updated_status(&o, "b", false, "t1").unwrap();
        assert_eq!(
            s["conditions"],
            json!([
                {"host": "a", "type": "Applied", "status": "True", "lastTransitionTime": "t0"},
                {"host": "b", "type": "Applied", "status": "False", "lastTransitionTime": "t1"}
            ])
        );
    }

    #[test]
    fn unchanged_status_writes_nothing() {
        let o = obj(
            json!([{"host": "a", "type": "Applied", "status": "True", "lastTransitionTime": "t0"}]),
        );
        assert_eq!(updated_status(&o, "a", true, "t9"), None);
    }

    #[test]
    fn transition_updates_time_only_on_flip() {
        let o = obj(
            json!([{"host": "a", "type": "Applied", "status": "True", "lastTransitionTime": "t0", "extra": 1}]),
        );
        let s = updated_status(&o, "a", false, "t1").unwrap();
        assert_eq!(
            s["conditions"],
            json!([{"host": "a", "type": "Applied", "status": "False", "lastTransitionTime": "t1", "extra": 1}])
        );
    }

    #[test]
    fn object_without_status_gets_one() {
        let o = json!({"metadata": {"name": "x"}});
        let s = updated_status(&o, "h", true, "t").unwrap();
        assert_eq!(
            s,
            json!({"conditions": [{"host": "h", "type": "Applied", "status": "True", "lastTransitionTime": "t"}]})
        );
    }

    #[test]
    fn duplicate_own_entries_are_collapsed() {
        let o = obj(json!([
            {"host": "a", "type": "Applied", "status": "True", "lastTransitionTime": "t0"},
            {"host": "a", "type": "Applied", "status": "False", "lastTransitionTime": "t1"}
        ]));
        let s = updated_status(&o, "a", true, "t2").unwrap();
        assert_eq!(
            s["conditions"],
            json!([{"host": "a", "type": "Applied", "status": "True", "lastTransitionTime": "t0"}])
        );
    }
}
