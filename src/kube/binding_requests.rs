//! Requests for RouteConfigurationBindings, the legacy-finalizer patch on
//! RouteConfigurations, API discovery, and Leases, as [`ApiRequest`] values.
//! Paths are built from checked names only; every write that could lose
//! another writer's change carries a precondition.

use serde_json::{Value, json};

use super::call::ApiRequest;
use super::requests::{check_name, object_path};
use super::{GROUP, KubeError, VERSION};
use crate::binding::PLURAL as BINDINGS;

const MERGE: &str = "application/merge-patch+json";
const JSON: &str = "application/json";

/// The cluster-wide binding collection (list and watch).
pub fn bindings_path() -> String {
    format!("/apis/{GROUP}/{VERSION}/{BINDINGS}")
}

fn namespaced_bindings(ns: &str) -> Result<String, KubeError> {
    check_name("namespace", ns)?;
    Ok(format!(
        "/apis/{GROUP}/{VERSION}/namespaces/{ns}/{BINDINGS}"
    ))
}

/// One binding's path.
pub fn binding_path(ns: &str, name: &str) -> Result<String, KubeError> {
    check_name("name", name)?;
    Ok(format!("{}/{name}", namespaced_bindings(ns)?))
}

/// Discovery of the group version: its answer lists the binding resource
/// when the CRD is installed (404 when the group has no CRD at all).
pub fn discovery() -> ApiRequest {
    ApiRequest::get(format!("/apis/{GROUP}/{VERSION}"))
}

/// POST a new binding into `ns`.
pub fn create_binding(ns: &str, body: &Value) -> Result<ApiRequest, KubeError> {
    ApiRequest::json("POST", namespaced_bindings(ns)?, JSON, body)
}

/// Merge patch of a binding; the patch carries `metadata.resourceVersion`.
pub fn patch_binding(ns: &str, name: &str, patch: &Value) -> Result<ApiRequest, KubeError> {
    require_rv(patch)?;
    ApiRequest::json("PATCH", binding_path(ns, name)?, MERGE, patch)
}

/// DELETE a binding, only if it is still the object we decided about.
pub fn delete_binding(ns: &str, name: &str, uid: Option<&str>) -> Result<ApiRequest, KubeError> {
    let mut opts = json!({"apiVersion": "v1", "kind": "DeleteOptions"});
    if let Some(uid) = uid {
        opts["preconditions"] = json!({"uid": uid});
    }
    ApiRequest::json("DELETE", binding_path(ns, name)?, JSON, &opts)
}

/// PUT of a binding's whole status, guarded by its resourceVersion.
pub fn replace_binding_status(
    ns: &str,
    name: &str,
    object: &Value,
) -> Result<ApiRequest, KubeError> {
    require_rv(object)?;
    let path = format!("{}/status", binding_path(ns, name)?);
    ApiRequest::json("PUT", path, JSON, object)
}

/// Merge patch of a RouteConfiguration (stripping the legacy finalizer).
pub fn patch_route_configuration(
    ns: &str,
    name: &str,
    patch: &Value,
) -> Result<ApiRequest, KubeError> {
    require_rv(patch)?;
    ApiRequest::json("PATCH", object_path(ns, name)?, MERGE, patch)
}

fn leases(ns: &str) -> Result<String, KubeError> {
    check_name("namespace", ns)?;
    Ok(format!(
        "/apis/coordination.k8s.io/v1/namespaces/{ns}/leases"
    ))
}

/// GET the Lease.
pub fn get_lease(ns: &str, name: &str) -> Result<ApiRequest, KubeError> {
    check_name("lease", name)?;
    Ok(ApiRequest::get(format!("{}/{name}", leases(ns)?)))
}

/// POST a new Lease.
pub fn create_lease(ns: &str, body: &Value) -> Result<ApiRequest, KubeError> {
    ApiRequest::json("POST", leases(ns)?, JSON, body)
}

/// PUT the Lease (it carries the resourceVersion read).
pub fn update_lease(ns: &str, name: &str, body: &Value) -> Result<ApiRequest, KubeError> {
    check_name("lease", name)?;
    require_rv(body)?;
    ApiRequest::json("PUT", format!("{}/{name}", leases(ns)?), JSON, body)
}

fn require_rv(v: &Value) -> Result<(), KubeError> {
    match v
        .pointer("/metadata/resourceVersion")
        .and_then(Value::as_str)
    {
        Some(rv) if !rv.is_empty() => Ok(()),
        _ => Err(KubeError::Request(
            "write without metadata.resourceVersion would overwrite other writers".into(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(r: &ApiRequest) -> Value {
        serde_json::from_slice(&r.body.as_ref().unwrap().1).unwrap()
    }

    #[test]
    fn paths_and_methods() {
        assert_eq!(
            bindings_path(),
            "/apis/networking.liqo.io/v1beta1/routeconfigurationbindings"
        );
        assert_eq!(discovery().path, "/apis/networking.liqo.io/v1beta1");
        let r = create_binding("liqo", &json!({})).unwrap();
        assert_eq!(
            (r.method, r.path.as_str()),
            (
                "POST",
                "/apis/networking.liqo.io/v1beta1/namespaces/liqo/routeconfigurationbindings"
            )
        );
        let r = delete_binding("liqo", "a-n1", Some("u1")).unwrap();
        assert_eq!(r.method, "DELETE");
        assert_eq!(body(&r)["preconditions"]["uid"], "u1");
        let rv = json!({"metadata": {"resourceVersion": "3"}});
        let r = replace_binding_status("liqo", "a-n1", &rv).unwrap();
        assert_eq!((r.method, r.path.ends_with("/a-n1/status")), ("PUT", true));
        assert_eq!(
            patch_binding("liqo", "a", &rv).unwrap().body.unwrap().0,
            MERGE
        );
        let r = patch_route_configuration("liqo", "a", &rv).unwrap();
        assert_eq!(
            r.path,
            "/apis/networking.liqo.io/v1beta1/namespaces/liqo/routeconfigurations/a"
        );
        assert_eq!(
            get_lease("liqo", "gw.liqo.server.connections.liqo.io")
                .unwrap()
                .path,
            "/apis/coordination.k8s.io/v1/namespaces/liqo/leases/gw.liqo.server.connections.liqo.io"
        );
        assert_eq!(create_lease("liqo", &json!({})).unwrap().method, "POST");
        assert_eq!(update_lease("liqo", "l", &rv).unwrap().method, "PUT");
    }

    #[test]
    fn unguarded_writes_and_bad_names_are_refused() {
        let none = json!({"metadata": {}});
        assert!(patch_binding("liqo", "a", &none).is_err());
        assert!(replace_binding_status("liqo", "a", &none).is_err());
        assert!(patch_route_configuration("liqo", "a", &none).is_err());
        assert!(update_lease("liqo", "l", &none).is_err());
        assert!(binding_path("../x", "a").is_err());
        assert!(binding_path("liqo", "a/b").is_err());
        assert!(get_lease("liqo", "").is_err());
    }
}
