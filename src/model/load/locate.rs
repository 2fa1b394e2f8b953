//! Finds the field that makes a raw object fail to deserialize.
//!
//! serde_json reports *what* is wrong with a `Value` but not *where*; the
//! YAML deserializer knows where but coerces scalars into strings (so it
//! accepts `liqo.io/managed: true`, which Kubernetes refuses). This walks
//! the object along the API's shape and deserializes field by field, so the
//! error names the path, e.g. `metadata.labels: invalid type: boolean ...`.
//! It only enriches a message: a field missing here just means a shorter
//! path.

use crate::model::api::{
    Condition, ObjectMeta, ObjectReference, RouteConfigurationSpec, RouteSpec, RuleSpec, Status,
    TableSpec,
};
use serde::de::DeserializeOwned;
use serde_json::Value;
use std::collections::BTreeMap;

type Check = fn(&Value, &str) -> Option<String>;

/// `path: message` for the first field of `v` (a RouteConfiguration) that
/// does not deserialize, if one can be singled out.
pub(super) fn locate(v: &Value) -> Option<String> {
    fields::<Value>(
        v,
        "",
        &[
            ("apiVersion", leaf::<String>),
            ("kind", leaf::<String>),
            ("metadata", meta),
            ("spec", spec),
            ("status", status),
        ],
    )
}

fn leaf<T: DeserializeOwned>(v: &Value, path: &str) -> Option<String> {
    T::deserialize(v).err().map(|e| format!("{path}: {e}"))
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

/// Checks the listed fields of an object; anything else is judged whole
/// as `T`.
fn fields<T: DeserializeOwned>(v: &Value, path: &str, checks: &[(&str, Check)]) -> Option<String> {
    match v {
        Value::Object(m) => checks
            .iter()
            .find_map(|(k, check)| m.get(*k).and_then(|x| check(x, &join(path, k)))),
        _ => leaf::<T>(v, path),
    }
}

/// Checks every item of a list; `null` is fine when the field is optional.
fn items<T: DeserializeOwned>(v: &Value, path: &str, item: Check) -> Option<String> {
    match v {
        Value::Array(a) => a
            .iter()
            .enumerate()
            .find_map(|(i, x)| item(x, &format!("{path}[{i}]"))),
        _ => leaf::<T>(v, path),
    }
}

fn meta(v: &Value, path: &str) -> Option<String> {
    let s = leaf::<Option<String>>;
    fields::<ObjectMeta>(
        v,
        path,
        &[
            ("name", s),
            ("namespace", s),
            ("labels", leaf::<BTreeMap<String, String>>),
            ("annotations", leaf::<BTreeMap<String, String>>),
            ("uid", s),
            ("resourceVersion", s),
            ("generation", leaf::<Option<i64>>),
            ("creationTimestamp", s),
            ("deletionTimestamp", s),
            ("finalizers", leaf::<Vec<String>>),
        ],
    )
}

fn spec(v: &Value, path: &str) -> Option<String> {
    fields::<RouteConfigurationSpec>(v, path, &[("table", table)])
}

fn table(v: &Value, path: &str) -> Option<String> {
    fields::<TableSpec>(
        v,
        path,
        &[
            ("name", leaf::<Option<String>>),
            ("rules", rules),
            ("targetRef", target_ref),
        ],
    )
}

fn rules(v: &Value, path: &str) -> Option<String> {
    items::<Option<Vec<RuleSpec>>>(v, path, rule)
}

fn rule(v: &Value, path: &str) -> Option<String> {
    let s = leaf::<Option<String>>;
    fields::<RuleSpec>(
        v,
        path,
        &[
            ("dst", s),
            ("src", s),
            ("iif", s),
            ("oif", s),
            ("routes", routes),
            ("targetRef", target_ref),
        ],
    )
}

fn routes(v: &Value, path: &str) -> Option<String> {
    items::<Option<Vec<RouteSpec>>>(v, path, route)
}

fn route(v: &Value, path: &str) -> Option<String> {
    let s = leaf::<Option<String>>;
    fields::<RouteSpec>(
        v,
        path,
        &[
            ("dst", s),
            ("gw", s),
            ("src", s),
            ("dev", s),
            ("onlink", leaf::<Option<bool>>),
            ("scope", s),
            ("targetRef", target_ref),
        ],
    )
}

fn target_ref(v: &Value, path: &str) -> Option<String> {
    if v.is_null() {
        return None;
    }
    let s = leaf::<Option<String>>;
    fields::<ObjectReference>(
        v,
        path,
        &[
            ("apiVersion", s),
            ("fieldPath", s),
            ("kind", s),
            ("name", s),
            ("namespace", s),
            ("resourceVersion", s),
            ("uid", s),
        ],
    )
}

fn status(v: &Value, path: &str) -> Option<String> {
    if v.is_null() {
        return None;
    }
    fields::<Status>(v, path, &[("conditions", conditions)])
}

fn conditions(v: &Value, path: &str) -> Option<String> {
    items::<Vec<Condition>>(v, path, condition)
}

fn condition(v: &Value, path: &str) -> Option<String> {
    let s = leaf::<String>;
    fields::<Condition>(
        v,
        path,
        &[
            ("host", s),
            ("type", s),
            ("status", s),
            ("lastTransitionTime", leaf::<Option<String>>),
        ],
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::api::RouteConfiguration;
    use serde::Deserialize;
    use serde_json::json;

    /// Every case must really fail in serde, and be located at `want`.
    #[test]
    fn locates_the_broken_field_everywhere() {
        let route = |bad: Value| json!({"spec": {"table": {"rules": [{"routes": [{}, bad]}]}}});
        let cases = [
            (
                json!({"apiVersion": 1}),
                "apiVersion: invalid type: integer `1`, expected a string",
            ),
            (
                json!({"kind": null}),
                "kind: invalid type: null, expected a string",
            ),
            (
                json!({"metadata": "m"}),
                "metadata: invalid type: string \"m\", expected struct ObjectMeta",
            ),
            (
                json!({"metadata": {"name": 7}}),
                "metadata.name: invalid type: integer `7`, expected a string",
            ),
            (
                json!({"metadata": {"labels": {"a": true}}}),
                "metadata.labels: invalid type: boolean `true`, expected a string",
            ),
            (
                json!({"metadata": {"generation": "1"}}),
                "metadata.generation: invalid type: string \"1\", expected i64",
            ),
            (
                json!({"metadata": {"finalizers": "f"}}),
                "metadata.finalizers: invalid type: string \"f\", expected a sequence",
            ),
            (
                json!({"spec": {"table": {"name": ["t"]}}}),
                "spec.table.name: invalid type: sequence, expected a string",
            ),
            (
                json!({"spec": {"table": {"rules": {}}}}),
                "spec.table.rules: invalid type: map, expected a sequence",
            ),
            (
                json!({"spec": {"table": {"rules": [{}, {"iif": 3}]}}}),
                "spec.table.rules[1].iif: invalid type: integer `3`, expected a string",
            ),
            (
                route(json!({"onlink": "yes"})),
                "spec.table.rules[0].routes[1].onlink: invalid type: string \"yes\", expected a boolean",
            ),
            (
                route(json!({"gw": false})),
                "spec.table.rules[0].routes[1].gw: invalid type: boolean `false`, expected a string",
            ),
            (
                route(json!({"targetRef": {"uid": 1}})),
                "spec.table.rules[0].routes[1].targetRef.uid: invalid type: integer `1`, expected a string",
            ),
            (
                json!({"spec": {"table": {"targetRef": "x"}}}),
                "spec.table.targetRef: invalid type: string \"x\", expected struct ObjectReference",
            ),
            (
                json!({"status": {"conditions": [{"host": "h", "type": "Applied", "status": true}]}}),
                "status.conditions[0].status: invalid type: boolean `true`, expected a string",
            ),
        ];
        for (v, want) in cases {
            assert!(
                RouteConfiguration::deserialize(&v).is_err(),
                "{v} deserializes"
            );
            assert_eq!(locate(&v).as_deref(), Some(want), "{v}");
        }
    }

    #[test]
    fn nothing_to_locate_in_a_valid_object() {
        let v = json!({"metadata": {"name": "x", "labels": {"a": "b"}},
                       "spec": {"table": {"rules": [{"fwmark": "any", "routes": null}]}},
                       "status": null});
        assert!(RouteConfiguration::deserialize(&v).is_ok());
        assert_eq!(locate(&v), None);
    }
}
