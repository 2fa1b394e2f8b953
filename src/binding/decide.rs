//! What to do about bindings, given the RouteConfigurations that select
//! this agent, the bindings bound to it, and which of its tables the kernel
//! holds. Pure; the shell runs the actions in order and calls again on the
//! next change, so multi-step work (remove a table, then the finalizer)
//! happens over several passes, each gated on what is really there.
//!
//! Traffic never drops because of a binding: a table is removed only when
//! no live selected RouteConfiguration wants it, whatever happens to the
//! binding objects (deleted by hand, recreated, raced).

use super::object::{Owner, desired_binding, repaired_binding, without_finalizer};
use super::target::Target;
use super::{FINALIZER, LEGACY_FINALIZER, binding_name};
use crate::table_id::table_id;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};

/// One step for the shell. Patches are JSON merge patches carrying
/// `resourceVersion` (a conflict means "look again", never "overwrite").
#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    /// Create this binding (POST in `namespace`).
    Create { namespace: String, body: Value },
    /// Repair a live binding of ours (spec, owner, finalizer).
    Patch {
        namespace: String,
        name: String,
        patch: Value,
    },
    /// Strip the pre-binding finalizer from a RouteConfiguration.
    StripLegacyFinalizer {
        namespace: String,
        name: String,
        patch: Value,
    },
    /// Remove this table's rules and routes (those carrying our mark) and
    /// its rt_tables line: no live selected object wants it any more.
    RemoveTable { name: String, id: u32 },
    /// Delete a binding of ours whose object is gone or no longer selects
    /// us; its table is already gone. `uid` is the delete precondition.
    Delete {
        namespace: String,
        name: String,
        uid: Option<String>,
    },
    /// Remove our finalizer from a binding in deletion: its table is gone,
    /// or still wanted by a live object (so it must stay).
    RemoveFinalizer {
        namespace: String,
        name: String,
        patch: Value,
    },
    /// Something that cannot be done; the message names the object.
    Problem { object: String, message: String },
}

/// The inputs of one decision.
pub struct World<'a> {
    pub target: &'a Target,
    /// RouteConfigurations whose labels select this agent, including ones
    /// being deleted.
    pub objects: &'a [Value],
    /// Bindings whose `spec.targetRef` is this agent (all namespaces).
    pub bindings: &'a [Value],
    /// Ids of tables in which the kernel holds rules or routes with our mark.
    pub kernel_tables: &'a BTreeSet<u32>,
}

fn meta<'a>(v: &'a Value, field: &str) -> Option<&'a str> {
    v.get("metadata")?.get(field)?.as_str()
}

fn deleting(v: &Value) -> bool {
    meta(v, "deletionTimestamp").is_some_and(|t| !t.is_empty())
}

fn has_finalizer(v: &Value, f: &str) -> bool {
    v.pointer("/metadata/finalizers")
        .and_then(Value::as_array)
        .is_some_and(|l| l.iter().any(|x| x == f))
}

/// Decides every binding action for the current state, in a stable order.
pub fn decide(w: &World) -> Vec<Action> {
    let mut out = Vec::new();
    // Live selected objects by (namespace, binding name), and the tables they want.
    let mut wanted: BTreeMap<(String, String), &Value> = BTreeMap::new();
    let mut wanted_tables: BTreeSet<u32> = BTreeSet::new();
    for rc in w.objects.iter().filter(|o| !deleting(o)) {
        let (Some(ns), Some(name)) = (meta(rc, "namespace"), meta(rc, "name")) else {
            continue;
        };
        if let Some(t) = rc.pointer("/spec/table/name").and_then(Value::as_str) {
            wanted_tables.insert(table_id(t));
        }
        wanted.insert((ns.into(), binding_name(name, &w.target.name)), rc);
    }
    let existing: BTreeMap<(String, String), &Value> = w
        .bindings
        .iter()
        .filter(|b| w.target.owns(b))
        .filter_map(|b| Some(((meta(b, "namespace")?.into(), meta(b, "name")?.into()), b)))
        .collect();

    // Objects: migrate, then make sure each live one has its binding.
    for rc in w.objects {
        let key = format!(
            "{}/{}",
            meta(rc, "namespace").unwrap_or(""),
            meta(rc, "name").unwrap_or("")
        );
        // A deleting object keeps the legacy finalizer until its table is
        // gone: it is the pre-binding promise that cleanup happens first.
        let table_gone = rc
            .pointer("/spec/table/name")
            .and_then(Value::as_str)
            .is_none_or(|t| {
                !w.kernel_tables.contains(&table_id(t)) || wanted_tables.contains(&table_id(t))
            });
        if !deleting(rc) || table_gone {
            if let Some(patch) = without_finalizer(rc, LEGACY_FINALIZER) {
                out.push(Action::StripLegacyFinalizer {
                    namespace: meta(rc, "namespace").unwrap_or("").into(),
                    name: meta(rc, "name").unwrap_or("").into(),
                    patch,
                });
            }
        }
        if deleting(rc) {
            continue;
        }
        let owner = match Owner::of(rc) {
            Ok(o) => o,
            Err(message) => {
                out.push(Action::Problem {
                    object: key,
                    message,
                });
                continue;
            }
        };
        let bkey = (
            owner.namespace.to_string(),
            binding_name(owner.name, &w.target.name),
        );
        match existing.get(&bkey) {
            // Recreated once the old one has finished going.
            Some(b) if deleting(b) => {}
            Some(b) => match repaired_binding(b, rc, w.target) {
                Ok(None) => {}
                Ok(Some(patch)) => out.push(Action::Patch {
                    namespace: bkey.0,
                    name: bkey.1,
                    patch,
                }),
                Err(message) => out.push(Action::Problem {
                    object: key,
                    message,
                }),
            },
            None => match desired_binding(rc, w.target) {
                Ok(body) => out.push(Action::Create {
                    namespace: bkey.0,
                    body,
                }),
                Err(message) => out.push(Action::Problem {
                    object: key,
                    message,
                }),
            },
        }
    }

    // Bindings: clean up what no live object wants.
    let mut removing: BTreeSet<u32> = BTreeSet::new();
    for ((ns, name), b) in &existing {
        let table = b
            .pointer("/status/tableName")
            .and_then(Value::as_str)
            .filter(|t| !t.is_empty());
        let id = table.map(table_id);
        let must_remove =
            id.filter(|id| w.kernel_tables.contains(id) && !wanted_tables.contains(id));
        let ours = b
            .pointer("/spec/routeConfigurationRef/name")
            .and_then(Value::as_str)
            .is_some_and(|rc| binding_name(rc, &w.target.name) == *name);
        let is_wanted = wanted.contains_key(&(ns.clone(), name.clone()));
        // Any binding bound to us and in deletion carries our finalizer's
        // promise, ours by name or not: we are its target's agent.
        let act = if deleting(b) {
            has_finalizer(b, FINALIZER)
        } else {
            ours && !is_wanted
        };
        if !act {
            continue;
        }
        if let (Some(id), Some(t)) = (must_remove, table) {
            if removing.insert(id) {
                out.push(Action::RemoveTable {
                    name: t.to_string(),
                    id,
                });
            }
            continue;
        }
        if deleting(b) {
            if let Some(patch) = without_finalizer(b, FINALIZER) {
                out.push(Action::RemoveFinalizer {
                    namespace: ns.clone(),
                    name: name.clone(),
                    patch,
                });
            }
        } else {
            out.push(Action::Delete {
                namespace: ns.clone(),
                name: name.clone(),
                uid: meta(b, "uid").map(String::from),
            });
        }
    }
    out
}

#[cfg(test)]
// Tests build each world inline from copies; `from_ref` would hide which
// objects a case contains.
#[allow(clippy::cloned_ref_to_slice_refs)]
mod tests {
    use super::*;
    use serde_json::json;

    const T: &str = "2026-01-01T00:00:00Z";

    fn rc(name: &str, table: &str) -> Value {
        json!({"metadata": {"name": name, "namespace": "liqo", "uid": format!("u-{name}"),
                            "resourceVersion": "1"},
               "spec": {"table": {"name": table}}})
    }

    fn node() -> Target {
        Target::node("n1")
    }

    fn binding_of(rc: &Value, table: Option<&str>) -> Value {
        let mut b = desired_binding(rc, &node()).unwrap();
        b["metadata"]["uid"] = json!(format!("b-{}", rc["metadata"]["name"].as_str().unwrap()));
        b["metadata"]["resourceVersion"] = json!("5");
        if let Some(t) = table {
            b["status"] = json!({"tableName": t});
        }
        b
    }

    fn run(objects: &[Value], bindings: &[Value], kernel: &[&str]) -> Vec<Action> {
        let kernel: BTreeSet<u32> = kernel.iter().map(|t| table_id(t)).collect();
        decide(&World {
            target: &node(),
            objects,
            bindings,
            kernel_tables: &kernel,
        })
    }

    fn deleting_copy(v: &Value) -> Value {
        let mut v = v.clone();
        v["metadata"]["deletionTimestamp"] = json!(T);
        v
    }

    #[test]
    fn steady_state_does_nothing() {
        let a = rc("a", "ta");
        assert_eq!(
            run(&[a.clone()], &[binding_of(&a, Some("ta"))], &["ta"]),
            vec![]
        );
    }

    #[test]
    fn missing_binding_is_created() {
        let a = rc("a", "ta");
        let acts = run(&[a.clone()], &[], &["ta"]);
        assert_eq!(
            acts,
            vec![Action::Create {
                namespace: "liqo".into(),
                body: desired_binding(&a, &node()).unwrap()
            }]
        );
    }

    #[test]
    fn binding_deleted_by_hand_keeps_routes_then_is_recreated() {
        let a = rc("a", "ta");
        let gone = deleting_copy(&binding_of(&a, Some("ta")));
        // Table still wanted: only the finalizer goes, no RemoveTable.
        let acts = run(&[a.clone()], &[gone], &["ta"]);
        assert_eq!(
            acts,
            vec![Action::RemoveFinalizer {
                namespace: "liqo".into(),
                name: "a-n1".into(),
                patch: json!({"metadata": {"finalizers": [], "resourceVersion": "5"}})
            }]
        );
        // Once it is gone, it is created again.
        assert!(matches!(
            run(&[a], &[], &["ta"])[..],
            [Action::Create { .. }]
        ));
    }

    #[test]
    fn deselected_object_removes_table_then_deletes_then_unfinalizes() {
        let a = rc("a", "ta");
        let b = binding_of(&a, Some("ta"));
        assert_eq!(
            run(&[], &[b.clone()], &["ta"]),
            vec![Action::RemoveTable {
                name: "ta".into(),
                id: table_id("ta")
            }]
        );
        assert_eq!(
            run(&[], &[b.clone()], &[]),
            vec![Action::Delete {
                namespace: "liqo".into(),
                name: "a-n1".into(),
                uid: Some("b-a".into())
            }]
        );
        assert!(matches!(
            run(&[], &[deleting_copy(&b)], &[])[..],
            [Action::RemoveFinalizer { .. }]
        ));
    }

    #[test]
    fn deleted_object_is_cleaned_without_a_garbage_collector() {
        let a = rc("a", "ta");
        let b = binding_of(&a, Some("ta"));
        let dying = deleting_copy(&a);
        assert_eq!(
            run(&[dying.clone()], &[b.clone()], &["ta"]),
            vec![Action::RemoveTable {
                name: "ta".into(),
                id: table_id("ta")
            }]
        );
        assert!(matches!(
            run(&[dying], &[b], &[])[..],
            [Action::Delete { .. }]
        ));
    }

    #[test]
    fn table_shared_with_a_live_object_is_never_removed() {
        let a = rc("a", "shared");
        let b = rc("b", "shared");
        let bb = binding_of(&b, Some("shared"));
        // b stops selecting us, a still wants the same table.
        let acts = run(
            &[a.clone()],
            &[binding_of(&a, Some("shared")), bb],
            &["shared"],
        );
        assert_eq!(
            acts,
            vec![Action::Delete {
                namespace: "liqo".into(),
                name: "b-n1".into(),
                uid: Some("b-b".into())
            }]
        );
    }

    #[test]
    fn binding_without_table_name_is_deleted_at_once() {
        let a = rc("a", "ta");
        let b = binding_of(&a, None);
        assert!(matches!(
            run(&[], &[b.clone()], &["ta"])[..],
            [Action::Delete { .. }]
        ));
        assert!(matches!(
            run(&[], &[deleting_copy(&b)], &["ta"])[..],
            [Action::RemoveFinalizer { .. }]
        ));
    }

    #[test]
    fn one_remove_per_table() {
        let a = rc("a", "t");
        let b = rc("b", "t");
        let acts = run(
            &[],
            &[binding_of(&a, Some("t")), binding_of(&b, Some("t"))],
            &["t"],
        );
        assert_eq!(
            acts,
            vec![Action::RemoveTable {
                name: "t".into(),
                id: table_id("t")
            }]
        );
    }

    #[test]
    fn foreign_bindings_for_us_are_left_alone_unless_deleting() {
        let a = rc("a", "ta");
        let mut foreign = binding_of(&a, Some("tx"));
        foreign["metadata"]["name"] = json!("hand-made");
        assert_eq!(
            run(
                &[a.clone()],
                &[binding_of(&a, Some("ta")), foreign.clone()],
                &["ta", "tx"]
            ),
            vec![]
        );
        let acts = run(
            &[a.clone()],
            &[binding_of(&a, Some("ta")), deleting_copy(&foreign)],
            &["ta", "tx"],
        );
        assert_eq!(
            acts,
            vec![Action::RemoveTable {
                name: "tx".into(),
                id: table_id("tx")
            }]
        );
        let acts = run(
            &[a.clone()],
            &[binding_of(&a, Some("ta")), deleting_copy(&foreign)],
            &["ta"],
        );
        assert!(
            matches!(acts[..], [Action::RemoveFinalizer { ref name, .. }] if name == "hand-made")
        );
    }

    #[test]
    fn other_targets_bindings_are_invisible() {
        let a = rc("a", "ta");
        let theirs = desired_binding(&a, &Target::node("n2")).unwrap();
        assert_eq!(
            run(&[], &[theirs.clone(), deleting_copy(&theirs)], &["ta"]),
            vec![]
        );
    }

    #[test]
    fn legacy_finalizer_is_stripped_from_live_objects_at_once() {
        let mut a = rc("a", "ta");
        a["metadata"]["finalizers"] = json!([LEGACY_FINALIZER, "x/y"]);
        let acts = run(&[a.clone()], &[binding_of(&a, Some("ta"))], &["ta"]);
        assert_eq!(
            acts,
            vec![Action::StripLegacyFinalizer {
                namespace: "liqo".into(),
                name: "a".into(),
                patch: json!({"metadata": {"finalizers": ["x/y"], "resourceVersion": "1"}})
            }]
        );
    }

    #[test]
    fn legacy_finalizer_of_a_deleting_object_waits_for_its_table() {
        let mut a = rc("a", "ta");
        a["metadata"]["finalizers"] = json!([LEGACY_FINALIZER]);
        let dying = deleting_copy(&a);
        let acts = run(&[dying.clone()], &[], &["ta"]);
        assert_eq!(acts, vec![]);
        let acts = run(&[dying], &[], &[]);
        assert!(matches!(acts[..], [Action::StripLegacyFinalizer { .. }]));
    }

    #[test]
    fn repairs_and_problems() {
        let a = rc("a", "ta");
        let mut b = binding_of(&a, Some("ta"));
        b["metadata"]["finalizers"] = json!([]);
        assert!(matches!(
            run(&[a.clone()], &[b], &["ta"])[..],
            [Action::Patch { .. }]
        ));
        let no_uid = json!({"metadata": {"name": "z", "namespace": "liqo"}});
        assert_eq!(
            run(&[no_uid], &[], &[]),
            vec![Action::Problem {
                object: "liqo/z".into(),
                message: "RouteConfiguration liqo/z: no metadata.uid".into()
            }]
        );
    }

    #[test]
    fn binding_in_deletion_for_a_live_object_is_not_recreated_yet() {
        let a = rc("a", "ta");
        let mut gone = deleting_copy(&binding_of(&a, Some("ta")));
        gone["metadata"]["finalizers"] = json!(["someone/else"]);
        assert_eq!(run(&[a], &[gone], &["ta"]), vec![]);
    }
}
