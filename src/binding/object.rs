//! The binding object routecfg writes for one selected RouteConfiguration,
//! and the repair of an existing one. Upstream re-sets both spec fields on
//! every pass and owns each binding by its RouteConfiguration; routecfg
//! writes the same fields, as a merge patch guarded by `resourceVersion`.

use super::target::Target;
use super::{API_VERSION, FINALIZER, KIND, binding_name};
use serde_json::{Value, json};

/// What a binding needs of its RouteConfiguration, read once.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Owner<'a> {
    pub namespace: &'a str,
    pub name: &'a str,
    pub uid: &'a str,
}

impl<'a> Owner<'a> {
    /// Reads namespace, name and uid; each is needed and each is named when
    /// missing (a list item from the API server always has them).
    pub fn of(rc: &'a Value) -> Result<Owner<'a>, String> {
        let get = |f: &str| {
            rc.pointer(&format!("/metadata/{f}"))
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
        };
        let name = get("name").ok_or("RouteConfiguration without metadata.name")?;
        let namespace = get("namespace")
            .ok_or_else(|| format!("RouteConfiguration {name}: no metadata.namespace"))?;
        let uid = get("uid")
            .ok_or_else(|| format!("RouteConfiguration {namespace}/{name}: no metadata.uid"))?;
        Ok(Owner {
            namespace,
            name,
            uid,
        })
    }

    /// The controller ownerReference upstream's SetControllerReference writes.
    pub fn reference(&self) -> Value {
        json!({
            "apiVersion": crate::model::api::API_VERSION,
            "kind": crate::model::api::KIND,
            "name": self.name,
            "uid": self.uid,
            "controller": true,
            "blockOwnerDeletion": true,
        })
    }
}

/// The binding to create for `rc` and this target: upstream's name, in the
/// RouteConfiguration's namespace, owned by it, carrying upstream's
/// finalizer so the table is cleaned before the binding goes.
pub fn desired_binding(rc: &Value, target: &Target) -> Result<Value, String> {
    let owner = Owner::of(rc)?;
    Ok(json!({
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": {
            "name": binding_name(owner.name, &target.name),
            "namespace": owner.namespace,
            "ownerReferences": [owner.reference()],
            "finalizers": [FINALIZER],
        },
        "spec": {
            "routeConfigurationRef": {"name": owner.name},
            "targetRef": target.to_json(),
        },
    }))
}

/// The merge patch that makes an existing live binding what
/// [`desired_binding`] would create, or `None` when it already is. The
/// patch carries `resourceVersion`, so a concurrent change makes it fail
/// with a conflict instead of being overwritten.
///
/// A binding under that name for another target is not ours to change
/// (upstream would overwrite it and two agents would fight): an error.
/// So is a binding controlled by something other than a RouteConfiguration.
pub fn repaired_binding(
    existing: &Value,
    rc: &Value,
    target: &Target,
) -> Result<Option<Value>, String> {
    let owner = Owner::of(rc)?;
    let name = existing
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("");
    let here = format!("RouteConfigurationBinding {}/{name}", owner.namespace);
    if let Some(t) = existing.pointer("/spec/targetRef") {
        if !target.matches(t) {
            return Err(format!(
                "{here} exists for another target ({t}); not changing it (name clash with {})",
                target.describe()
            ));
        }
    }
    let mut metadata = serde_json::Map::new();
    let mut spec = serde_json::Map::new();

    let finalizers: Vec<Value> = existing
        .pointer("/metadata/finalizers")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if !finalizers.iter().any(|f| f == FINALIZER) {
        let mut f = finalizers;
        f.push(json!(FINALIZER));
        metadata.insert("finalizers".into(), Value::Array(f));
    }

    let refs: Vec<Value> = existing
        .pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let wanted = owner.reference();
    let is_controller = |r: &Value| r.get("controller").and_then(Value::as_bool) == Some(true);
    match refs.iter().find(|r| is_controller(r)) {
        Some(r) if *r == wanted => {}
        Some(r) if r.get("kind").and_then(Value::as_str) != Some(crate::model::api::KIND) => {
            return Err(format!("{here} is controlled by {r}; not changing it"));
        }
        _ => {
            // No controller, or a RouteConfiguration controller that is not
            // this one (an object recreated under the same name): replace it,
            // keeping every non-controller reference.
            let mut r: Vec<Value> = refs
                .into_iter()
                .filter(|r| !is_controller(r) && r.get("uid") != wanted.get("uid"))
                .collect();
            r.push(wanted);
            metadata.insert("ownerReferences".into(), Value::Array(r));
        }
    }

    let ref_name = existing
        .pointer("/spec/routeConfigurationRef/name")
        .and_then(Value::as_str);
    if ref_name != Some(owner.name) {
        spec.insert("routeConfigurationRef".into(), json!({"name": owner.name}));
    }
    if existing.pointer("/spec/targetRef") != Some(&target.to_json()) {
        spec.insert("targetRef".into(), target.to_json());
    }

    if metadata.is_empty() && spec.is_empty() {
        return Ok(None);
    }
    if let Some(rv) = existing.pointer("/metadata/resourceVersion") {
        metadata.insert("resourceVersion".into(), rv.clone());
    }
    let mut patch = json!({"metadata": metadata});
    if !spec.is_empty() {
        patch["spec"] = Value::Object(spec);
    }
    Ok(Some(patch))
}

/// Merge patch removing `finalizer` from an object's list, guarded by its
/// `resourceVersion`; `None` when the object does not carry it.
pub fn without_finalizer(object: &Value, finalizer: &str) -> Option<Value> {
    let list = object.pointer("/metadata/finalizers")?.as_array()?;
    if !list.iter().any(|f| f == finalizer) {
        return None;
    }
    let rest: Vec<Value> = list.iter().filter(|f| *f != finalizer).cloned().collect();
    let mut meta = json!({ "finalizers": rest });
    if let Some(rv) = object.pointer("/metadata/resourceVersion") {
        meta["resourceVersion"] = rv.clone();
    }
    Some(json!({ "metadata": meta }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rc() -> Value {
        json!({"metadata": {"name": "cfg", "namespace": "liqo", "uid": "u-1", "resourceVersion": "7"}})
    }

    fn created() -> Value {
        desired_binding(&rc(), &Target::node("node1")).unwrap()
    }

    #[test]
    fn new_binding_is_upstreams_shape() {
        assert_eq!(
            created(),
            json!({
                "apiVersion": "networking.liqo.io/v1beta1",
                "kind": "RouteConfigurationBinding",
                "metadata": {
                    "name": "cfg-node1",
                    "namespace": "liqo",
                    "ownerReferences": [{
                        "apiVersion": "networking.liqo.io/v1beta1",
                        "kind": "RouteConfiguration",
                        "name": "cfg",
                        "uid": "u-1",
                        "controller": true,
                        "blockOwnerDeletion": true
                    }],
                    "finalizers": ["routeconfigurationbinding-controller.liqo.io/finalizer"]
                },
                "spec": {
                    "routeConfigurationRef": {"name": "cfg"},
                    "targetRef": {"apiVersion": "v1", "kind": "Node", "name": "node1"}
                }
            })
        );
        let gw = desired_binding(&rc(), &Target::pod("liqo-tenant", "gw-1")).unwrap();
        assert_eq!(gw["metadata"]["name"], "cfg-gw-1");
        assert_eq!(gw["metadata"]["namespace"], "liqo");
        assert_eq!(gw["spec"]["targetRef"]["namespace"], "liqo-tenant");
    }

    #[test]
    fn owner_fields_are_required_and_named() {
        let t = Target::node("n");
        assert!(
            desired_binding(&json!({}), &t)
                .unwrap_err()
                .contains("metadata.name")
        );
        assert!(
            desired_binding(&json!({"metadata": {"name": "a", "uid": "u"}}), &t)
                .unwrap_err()
                .contains("metadata.namespace")
        );
        assert_eq!(
            desired_binding(&json!({"metadata": {"name": "a", "namespace": "n"}}), &t).unwrap_err(),
            "RouteConfiguration n/a: no metadata.uid"
        );
    }

    #[test]
    fn created_binding_needs_no_repair() {
        let mut b = created();
        b["metadata"]["resourceVersion"] = json!("9");
        b["metadata"]["uid"] = json!("b-1");
        assert_eq!(
            repaired_binding(&b, &rc(), &Target::node("node1")).unwrap(),
            None
        );
    }

    #[test]
    fn missing_finalizer_owner_and_ref_are_patched_with_resource_version() {
        let b = json!({
            "metadata": {"name": "cfg-node1", "namespace": "liqo", "resourceVersion": "9",
                         "finalizers": ["other/f"]},
            "spec": {"routeConfigurationRef": {"name": "elsewhere"},
                     "targetRef": {"apiVersion": "v1", "kind": "Node", "name": "node1", "namespace": ""}}
        });
        let p = repaired_binding(&b, &rc(), &Target::node("node1"))
            .unwrap()
            .unwrap();
        assert_eq!(
            p,
            json!({
                "metadata": {
                    "resourceVersion": "9",
                    "finalizers": ["other/f", FINALIZER],
                    "ownerReferences": [Owner::of(&rc()).unwrap().reference()]
                },
                "spec": {
                    "routeConfigurationRef": {"name": "cfg"},
                    "targetRef": {"apiVersion": "v1", "kind": "Node", "name": "node1"}
                }
            })
        );
    }

    #[test]
    fn stale_rc_owner_is_replaced_and_other_owners_kept() {
        let mut b = created();
        b["metadata"]["ownerReferences"] = json!([
            {"apiVersion": "v1", "kind": "ConfigMap", "name": "x", "uid": "cm"},
            {"apiVersion": API_VERSION, "kind": "RouteConfiguration", "name": "cfg", "uid": "old",
             "controller": true, "blockOwnerDeletion": true}
        ]);
        let p = repaired_binding(&b, &rc(), &Target::node("node1"))
            .unwrap()
            .unwrap();
        assert_eq!(
            p["metadata"]["ownerReferences"],
            json!([
                {"apiVersion": "v1", "kind": "ConfigMap", "name": "x", "uid": "cm"},
                Owner::of(&rc()).unwrap().reference()
            ])
        );
        assert!(p.get("spec").is_none());
    }

    #[test]
    fn foreign_target_or_controller_is_refused() {
        let b = created();
        let e = repaired_binding(&b, &rc(), &Target::node("node2")).unwrap_err();
        assert!(
            e.contains("another target") && e.contains("liqo/cfg-node1"),
            "{e}"
        );
        let mut b = created();
        b["metadata"]["ownerReferences"] = json!([{"apiVersion": "apps/v1", "kind": "Deployment", "name": "d", "uid": "d", "controller": true}]);
        assert!(
            repaired_binding(&b, &rc(), &Target::node("node1"))
                .unwrap_err()
                .contains("controlled by")
        );
    }

    #[test]
    fn finalizer_removal_patch() {
        let o = json!({"metadata": {"resourceVersion": "3", "finalizers": ["a", "b", "a"]}});
        assert_eq!(
            without_finalizer(&o, "a"),
            Some(json!({"metadata": {"finalizers": ["b"], "resourceVersion": "3"}}))
        );
        assert_eq!(without_finalizer(&o, "c"), None);
        assert_eq!(without_finalizer(&json!({"metadata": {}}), "a"), None);
    }
}
