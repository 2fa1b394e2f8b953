//! Serde mirror of the `RouteConfiguration` API object
//! (`networking.liqo.io/v1beta1`).
//!
//! Everything is optional or defaulted so that partial objects (a file
//! with only `spec`, an apiserver list item without `kind`) still parse;
//! addresses stay strings and integers stay raw values so that mistakes
//! reach [`super::validate`], which names the exact field, instead of
//! failing the whole document inside serde. The same types serialize back
//! to the API's JSON shape (absent fields stay absent) so the Kubernetes
//! client can reuse them.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

/// `apiVersion` routecfg reads and writes.
pub const API_VERSION: &str = "networking.liqo.io/v1beta1";
/// API group of the resource, for accepting any served version.
pub const API_GROUP: &str = "networking.liqo.io";
/// `kind` of the resource.
pub const KIND: &str = "RouteConfiguration";

/// One `RouteConfiguration` object as stored by the apiserver.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RouteConfiguration {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub api_version: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub kind: String,
    #[serde(default)]
    pub metadata: ObjectMeta,
    #[serde(default)]
    pub spec: RouteConfigurationSpec,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<Status>,
}

impl RouteConfiguration {
    /// `namespace/name` (just `name` for an object without namespace): the
    /// identity used in every message, map and ownership decision.
    pub fn key(&self) -> String {
        let name = self.metadata.name.as_deref().unwrap_or("");
        match self.metadata.namespace.as_deref() {
            Some(ns) if !ns.is_empty() => format!("{ns}/{name}"),
            _ => name.to_string(),
        }
    }
}

/// The subset of Kubernetes `ObjectMeta` routecfg needs. Unknown fields
/// (managedFields, ownerReferences, ...) are ignored: the client patches
/// objects rather than replacing them, so it never needs to echo them.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectMeta {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Absent and empty mean the same to Kubernetes; empty is not written.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generation: Option<i64>,
    /// RFC 3339 as the apiserver writes it (`2024-05-01T10:00:00Z`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub creation_timestamp: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deletion_timestamp: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub finalizers: Vec<String>,
}

/// `spec` of a RouteConfiguration.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RouteConfigurationSpec {
    #[serde(default)]
    pub table: TableSpec,
}

/// `spec.table`: one kernel routing table and the rules pointing at it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TableSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rules: Option<Vec<RuleSpec>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_ref: Option<ObjectReference>,
}

/// `spec.table.rules[]`: a policy rule and the routes it leads to.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RuleSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dst: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub src: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iif: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oif: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fwmark: Option<RawInt>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<RawInt>,
    /// Required by the CRD (may be empty); `None` means the field is absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub routes: Option<Vec<RouteSpec>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_ref: Option<ObjectReference>,
}

/// `spec.table.rules[].routes[]`: one route of the table.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RouteSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dst: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gw: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub src: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dev: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub onlink: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// ECMP next hops, instead of `gw` (upstream's newer CRD).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_hops: Option<Vec<NextHopSpec>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_ref: Option<ObjectReference>,
}

/// `routes[].nextHops[]`: one path of a multipath route. Kept as raw as
/// the route's own fields so validation names the bad one.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NextHopSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gw: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dev: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<RawInt>,
}

/// Informational reference carried by tables, rules and routes; routecfg
/// never acts on it but keeps it so objects round-trip.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectReference {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field_path: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<String>,
}

/// `status`: one condition per host that applied (or failed to apply) the
/// object, since several gateway/fabric processes share one object.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Status {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
}

/// One host's view of the object (`type: Applied`, `status: True|False`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    #[serde(default)]
    pub host: String,
    #[serde(rename = "type", default)]
    pub type_: String,
    #[serde(default)]
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_transition_time: Option<String>,
}

/// An integer field exactly as written (any JSON/YAML value), so that
/// `-1`, `1.5`, `"7"` or `2^40` become a validation error naming the field
/// rather than a serde error that loses the whole document.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct RawInt(pub serde_json::Value);

impl RawInt {
    /// Wraps a value that is known to be valid, for building objects.
    pub fn from_u32(v: u32) -> RawInt {
        RawInt(serde_json::Value::from(v))
    }

    /// The value as a `u32`, or a message saying why it is not one.
    pub fn to_u32(&self) -> Result<u32, String> {
        match &self.0 {
            serde_json::Value::Number(n) => {
                if let Some(u) = n.as_u64() {
                    u32::try_from(u).map_err(|_| format!("{n} is out of range 0..=4294967295"))
                } else if n.is_i64() {
                    Err(format!("{n} is out of range 0..=4294967295"))
                } else {
                    Err(format!("{n} is not an integer"))
                }
            }
            other => Err(format!("{other} is not an integer")),
        }
    }
}

impl fmt::Display for RawInt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn key_with_and_without_namespace() {
        let mut o = RouteConfiguration::default();
        o.metadata.name = Some("milan-gw-ext".into());
        assert_eq!(o.key(), "milan-gw-ext");
        o.metadata.namespace = Some("liqo-tenant-milan".into());
        assert_eq!(o.key(), "liqo-tenant-milan/milan-gw-ext");
        o.metadata.namespace = Some(String::new());
        assert_eq!(o.key(), "milan-gw-ext");
    }

    #[test]
    fn full_object_round_trips_to_the_same_json() {
        let v = json!({
            "apiVersion": "networking.liqo.io/v1beta1",
            "kind": "RouteConfiguration",
            "metadata": {
                "name": "x", "namespace": "liqo",
                "labels": {"a": "b"}, "annotations": {"c": "d"},
                "uid": "u-1", "resourceVersion": "42", "generation": 3,
                "creationTimestamp": "2024-05-01T10:00:00Z",
                "deletionTimestamp": "2024-05-02T10:00:00Z",
                "finalizers": ["routeconfiguration-controller.liqo.io/finalizer"]
            },
            "spec": {"table": {
                "name": "t",
                "targetRef": {"kind": "Node", "name": "n"},
                "rules": [{
                    "dst": "10.0.0.0/8", "src": "10.1.0.0/16", "iif": "a", "oif": "b",
                    "fwmark": 7, "priority": 100,
                    "targetRef": {"apiVersion": "v1", "fieldPath": "f", "kind": "Pod",
                                  "name": "p", "namespace": "ns", "resourceVersion": "1", "uid": "u"},
                    "routes": [{"dst": "10.0.0.0/8", "gw": "10.1.1.1", "src": "10.1.1.2",
                                "dev": "eth0", "onlink": true, "scope": "global",
                                "targetRef": {"kind": "Pod"}}]
                }, {"routes": []}]
            }},
            "status": {"conditions": [
                {"host": "gw-0", "type": "Applied", "status": "True",
                 "lastTransitionTime": "2024-05-01T10:00:01Z"}
            ]}
        });
        let o: RouteConfiguration = serde_json::from_value(v.clone()).unwrap();
        assert_eq!(o.metadata.generation, Some(3));
        assert_eq!(
            o.spec.table.rules.as_ref().unwrap()[0]
                .fwmark
                .as_ref()
                .unwrap()
                .to_u32(),
            Ok(7)
        );
        assert_eq!(serde_json::to_value(&o).unwrap(), v);
    }

    #[test]
    fn partial_object_parses_and_serializes_without_invented_fields() {
        let v = json!({"metadata": {"name": "x"},
                       "spec": {"table": {"name": "t", "rules": [{"routes": [{"dst": "10.0.0.0/8"}]}]}}});
        let o: RouteConfiguration = serde_json::from_value(v.clone()).unwrap();
        assert_eq!(serde_json::to_value(&o).unwrap(), v);
        let empty: RouteConfiguration = serde_json::from_value(json!({})).unwrap();
        assert_eq!(
            serde_json::to_value(&empty).unwrap(),
            json!({"metadata": {}, "spec": {"table": {}}})
        );
    }

    #[test]
    fn unknown_fields_are_ignored() {
        let v = json!({"metadata": {"name": "x", "managedFields": [{"manager": "m"}],
                                     "ownerReferences": []},
                       "spec": {"table": {"name": "t", "future": 1}}, "extra": true});
        let o: RouteConfiguration = serde_json::from_value(v).unwrap();
        assert_eq!(o.metadata.name.as_deref(), Some("x"));
        assert_eq!(o.spec.table.name.as_deref(), Some("t"));
    }

    #[test]
    fn raw_int_accepts_anything_and_explains_bad_values() {
        let cases = [
            (json!(0), Ok(0)),
            (json!(4294967295u64), Ok(u32::MAX)),
            (
                json!(4294967296u64),
                Err("4294967296 is out of range 0..=4294967295".to_string()),
            ),
            (
                json!(-1),
                Err("-1 is out of range 0..=4294967295".to_string()),
            ),
            (json!(1.5), Err("1.5 is not an integer".to_string())),
            (json!("7"), Err("\"7\" is not an integer".to_string())),
            (json!(null), Err("null is not an integer".to_string())),
        ];
        for (v, want) in cases {
            assert_eq!(RawInt(v.clone()).to_u32(), want, "{v}");
        }
        assert_eq!(RawInt::from_u32(9).to_u32(), Ok(9));
    }

    /// An object with every property the upstream CRD defines, built from
    /// the CRD's schema, so a field added upstream is noticed here.
    fn crd_example(schema: &serde_json::Value) -> serde_json::Value {
        if let Some(first) = schema["enum"].as_array().and_then(|e| e.first()) {
            return first.clone();
        }
        match schema["type"].as_str() {
            Some("object") => serde_json::Value::Object(
                schema["properties"]
                    .as_object()
                    .map(|p| p.iter().map(|(k, v)| (k.clone(), crd_example(v))).collect())
                    .unwrap_or_default(),
            ),
            Some("array") => json!([crd_example(&schema["items"])]),
            Some("string") => match schema["format"].as_str() {
                Some("cidr") => json!("10.0.0.0/8"),
                Some("ipv4") => json!("10.0.0.1"),
                Some("date-time") => json!("2024-05-01T10:00:00Z"),
                _ => json!("x"),
            },
            Some("integer") => json!(1),
            Some("boolean") => json!(true),
            other => panic!("CRD schema type {other:?} not handled"),
        }
    }

    #[test]
    fn every_upstream_crd_field_round_trips_and_validates() {
        let path = crate::model::testdata::shared_dir()
            .join("upstream/routeconfigurations.networking.liqo.io.yaml");
        let text =
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let crd: serde_json::Value = serde_yaml_ng::from_str(&text).unwrap();
        let version = &crd["spec"]["versions"][0];
        assert_eq!(version["name"], "v1beta1");
        let mut example = crd_example(&version["schema"]["openAPIV3Schema"]);
        example["metadata"] = json!({"name": "x", "namespace": "liqo"});
        // Sanity: the walk really reached the leaves.
        assert_eq!(
            example["spec"]["table"]["rules"][0]["routes"][0]["targetRef"]["fieldPath"],
            "x"
        );
        assert_eq!(
            example["status"]["conditions"][0]["lastTransitionTime"],
            "2024-05-01T10:00:00Z"
        );

        let obj: RouteConfiguration = serde_json::from_value(example.clone()).unwrap();
        assert_eq!(serde_json::to_value(&obj).unwrap(), example);
        let v = crate::model::validate(&obj, crate::routing::DEFAULT_PROTOCOL)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(v.table.rules.len(), 1);
        assert_eq!(v.table.routes.len(), 1);
    }

    fn crd_version(path: &std::path::Path) -> serde_json::Value {
        let text =
            std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let crd: serde_json::Value = serde_yaml_ng::from_str(&text).unwrap();
        crd["spec"]["versions"][0].clone()
    }

    #[test]
    fn upstream_ecmp_crd_round_trips_and_validates() {
        let path = crate::model::testdata::shared_dir()
            .join("upstream/routeconfigurations-ecmp.networking.liqo.io.yaml");
        let version = crd_version(&path);
        let mut example = crd_example(&version["schema"]["openAPIV3Schema"]);
        example["metadata"] = json!({"name": "x", "namespace": "liqo"});
        let route = &mut example["spec"]["table"]["rules"][0]["routes"][0];
        assert_eq!(
            route["nextHops"],
            json!([{"gw": "10.0.0.1", "dev": "x", "weight": 1}])
        );
        // Upstream's rule: gw or nextHops, not both.
        route.as_object_mut().unwrap().remove("gw");
        let obj: RouteConfiguration = serde_json::from_value(example.clone()).unwrap();
        assert_eq!(serde_json::to_value(&obj).unwrap(), example);
        let v = crate::model::validate(&obj, crate::routing::DEFAULT_PROTOCOL)
            .unwrap_or_else(|e| panic!("{e}"));
        // One next hop is a plain route; the route-level dev is ignored.
        let r = &v.table.routes[0];
        assert_eq!(r.gateway, Some("10.0.0.1".parse().unwrap()));
        assert_eq!(r.dev.as_deref(), Some("x"));
    }

    /// Every route and next-hop field of upstream's newest CRD exists in
    /// ours, so the API server never prunes one of them.
    #[test]
    fn our_crd_carries_every_upstream_route_field() {
        let ours =
            crd_version(&std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("static/crd.yaml"));
        let upstream = crd_version(
            &crate::model::testdata::shared_dir()
                .join("upstream/routeconfigurations-ecmp.networking.liqo.io.yaml"),
        );
        let route = |v: &serde_json::Value| {
            v["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]["table"]
                ["properties"]["rules"]["items"]["properties"]["routes"]["items"]
                .clone()
        };
        let keys = |v: &serde_json::Value| -> Vec<String> {
            let mut k: Vec<String> = v["properties"]
                .as_object()
                .map(|p| p.keys().cloned().collect())
                .unwrap_or_default();
            k.sort();
            k
        };
        let (ours, upstream) = (route(&ours), route(&upstream));
        assert_eq!(keys(&ours), keys(&upstream));
        let hops = |v: &serde_json::Value| v["properties"]["nextHops"]["items"].clone();
        assert_eq!(keys(&hops(&ours)), vec!["dev", "gw", "weight"]);
        assert_eq!(keys(&hops(&ours)), keys(&hops(&upstream)));
        let weight = &hops(&ours)["properties"]["weight"];
        assert_eq!(
            (&weight["minimum"], &weight["maximum"], &weight["default"]),
            (&json!(0), &json!(255), &json!(0))
        );
        assert_eq!(hops(&ours)["required"], json!(["gw", "dev"]));
    }
}
