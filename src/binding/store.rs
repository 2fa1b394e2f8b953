//! The agent's memory of the bindings bound to it, fed by the bindings
//! watch stream (already filtered to our target on the server where the
//! API allows, and here always), and the status writes that follow from
//! the last apply. Pure: events in, objects to write out.

use super::status::{Outcome, updated_binding_status};
use super::target::Target;
use serde_json::Value;
use std::collections::BTreeMap;

/// Bindings whose `spec.targetRef` is us, by `namespace/name`.
#[derive(Debug)]
pub struct BindingStore {
    target: Target,
    bindings: BTreeMap<String, Value>,
}

fn key(b: &Value) -> Option<String> {
    let ns = b.pointer("/metadata/namespace")?.as_str()?;
    let name = b.pointer("/metadata/name")?.as_str()?;
    Some(format!("{ns}/{name}"))
}

impl BindingStore {
    pub fn new(target: Target) -> BindingStore {
        BindingStore {
            target,
            bindings: BTreeMap::new(),
        }
    }

    pub fn target(&self) -> &Target {
        &self.target
    }

    /// An added or modified binding. One that is not (or no longer) bound
    /// to us is dropped: someone re-targeted it, it is not ours to act on.
    /// Returns whether anything changed.
    pub fn upsert(&mut self, binding: Value) -> bool {
        let Some(k) = key(&binding) else {
            return false;
        };
        if !self.target.owns(&binding) {
            return self.bindings.remove(&k).is_some();
        }
        if self.bindings.get(&k) == Some(&binding) {
            return false;
        }
        self.bindings.insert(k, binding);
        true
    }

    /// A deleted binding.
    pub fn remove(&mut self, binding: &Value) -> bool {
        key(binding).is_some_and(|k| self.bindings.remove(&k).is_some())
    }

    /// A full list: whatever is not in it was deleted meanwhile.
    pub fn replace_all(&mut self, items: Vec<Value>) {
        self.bindings.clear();
        for b in items {
            self.upsert(b);
        }
    }

    /// All of ours, for [`super::decide`].
    pub fn all(&self) -> Vec<Value> {
        self.bindings.values().cloned().collect()
    }

    pub fn len(&self) -> usize {
        self.bindings.len()
    }

    pub fn is_empty(&self) -> bool {
        self.bindings.is_empty()
    }

    /// The live binding of ours that reports on RouteConfiguration
    /// `namespace/name` (named as we name it; one in deletion reports nothing).
    pub fn for_object(&self, namespace: &str, name: &str) -> Option<&Value> {
        let k = format!(
            "{namespace}/{}",
            super::binding_name(name, &self.target.name)
        );
        self.bindings.get(&k).filter(|b| {
            b.pointer("/metadata/deletionTimestamp").is_none()
                && b.pointer("/spec/routeConfigurationRef/name")
                    .and_then(Value::as_str)
                    == Some(name)
        })
    }

    /// The status writes the last apply calls for: for each RouteConfiguration
    /// (`namespace/name`, outcome, its table name), the whole binding with its
    /// new status, ready for a PUT to `/status` guarded by its
    /// `resourceVersion`. Objects without a binding yet get none: the binding
    /// is created first and reported on when the watch brings it back.
    pub fn status_writes<'a>(
        &self,
        results: impl IntoIterator<Item = (&'a str, Outcome<'a>, Option<&'a str>)>,
        now: &str,
    ) -> Vec<Value> {
        let mut out = Vec::new();
        for (rc, outcome, table) in results {
            let Some((ns, name)) = rc.split_once('/') else {
                continue;
            };
            let Some(b) = self.for_object(ns, name) else {
                continue;
            };
            if let Some(status) = updated_binding_status(b, outcome, table, now) {
                let mut obj = b.clone();
                obj["status"] = status;
                out.push(obj);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::binding::desired_binding;
    use serde_json::json;

    fn rc(name: &str) -> Value {
        json!({"metadata": {"name": name, "namespace": "liqo", "uid": "u"}})
    }

    fn stored(name: &str, target: &Target) -> Value {
        let mut b = desired_binding(&rc(name), target).unwrap();
        b["metadata"]["resourceVersion"] = json!("4");
        b["metadata"]["generation"] = json!(1);
        b
    }

    #[test]
    fn keeps_only_our_bindings() {
        let me = Target::node("n1");
        let mut s = BindingStore::new(me.clone());
        assert!(s.upsert(stored("a", &me)));
        assert!(!s.upsert(stored("a", &me)), "same object is no change");
        assert!(!s.upsert(stored("a", &Target::node("n2"))));
        assert_eq!(s.len(), 1);
        // Re-targeted to someone else: forgotten.
        let mut moved = stored("a", &me);
        moved["spec"]["targetRef"]["name"] = json!("n2");
        assert!(s.upsert(moved));
        assert!(s.is_empty());
        s.replace_all(vec![
            stored("a", &me),
            stored("b", &me),
            stored("c", &Target::node("x")),
        ]);
        assert_eq!(s.len(), 2);
        assert!(s.remove(&stored("a", &me)));
        assert!(!s.remove(&stored("a", &me)));
        assert_eq!(s.all().len(), 1);
        assert!(!s.upsert(json!({"metadata": {}})));
    }

    #[test]
    fn status_writes_only_what_changes() {
        let me = Target::pod("gw-ns", "gw-0");
        let mut s = BindingStore::new(me.clone());
        s.upsert(stored("a", &me));
        s.upsert(stored("b", &me));
        let writes = s.status_writes(
            [
                ("liqo/a", Outcome::Applied("1 rule, 2 routes"), Some("ta")),
                ("liqo/b", Outcome::Failed("link eth9 not found"), Some("tb")),
                ("liqo/c", Outcome::Applied("x"), Some("tc")),
                ("bad-key", Outcome::Applied("x"), None),
            ],
            "T0",
        );
        assert_eq!(writes.len(), 2, "no binding for c yet");
        assert_eq!(writes[0]["metadata"]["name"], "a-gw-0");
        assert_eq!(writes[0]["metadata"]["resourceVersion"], "4");
        assert_eq!(writes[0]["status"]["tableName"], "ta");
        assert_eq!(
            writes[1]["status"]["conditions"][0]["message"],
            "link eth9 not found"
        );
        // Stored back (as the watch would bring it): nothing more to write.
        for w in writes {
            s.upsert(w);
        }
        let again = s.status_writes(
            [
                ("liqo/a", Outcome::Applied("1 rule, 2 routes"), Some("ta")),
                ("liqo/b", Outcome::Failed("link eth9 not found"), Some("tb")),
            ],
            "T1",
        );
        assert!(again.is_empty());
    }

    #[test]
    fn deleting_or_foreign_named_bindings_get_no_status() {
        let me = Target::node("n1");
        let mut s = BindingStore::new(me.clone());
        let mut b = stored("a", &me);
        b["metadata"]["deletionTimestamp"] = json!("T");
        s.upsert(b);
        assert!(s.for_object("liqo", "a").is_none());
        let mut other = stored("a", &me);
        other["spec"]["routeConfigurationRef"]["name"] = json!("zzz");
        s.upsert(other);
        assert!(s.for_object("liqo", "a").is_none());
        assert!(
            s.status_writes([("liqo/a", Outcome::Applied("x"), None)], "T")
                .is_empty()
        );
    }
}
