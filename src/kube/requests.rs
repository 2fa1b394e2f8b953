//! Requests for RouteConfigurations and Events, as [`ApiRequest`] values:
//! built here (names checked, preconditions required), run by the client
//! either from the agent's loop or by a blocking helper.

use serde_json::{Value, json};

use super::call::ApiRequest;
use super::client::EventType;
use super::{API_VERSION, GROUP, KIND, KubeError, PLURAL, VERSION};

/// Percent-encodes a query value (everything but RFC 3986 unreserved).
pub fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Refuses names that could change the request path; Kubernetes names are
/// DNS subdomains, so this rejects nothing valid.
pub fn check_name(what: &str, name: &str) -> Result<(), KubeError> {
    let ok = !name.is_empty()
        && name.len() <= 253
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.');
    if ok {
        Ok(())
    } else {
        Err(KubeError::Request(format!(
            "{what} {name:?} is not a valid name"
        )))
    }
}

/// The cluster-wide RouteConfiguration collection.
pub fn route_configurations_path() -> String {
    format!("/apis/{GROUP}/{VERSION}/{PLURAL}")
}

/// One RouteConfiguration's path.
pub fn object_path(ns: &str, name: &str) -> Result<String, KubeError> {
    check_name("namespace", ns)?;
    check_name("name", name)?;
    Ok(format!(
        "/apis/{GROUP}/{VERSION}/namespaces/{ns}/{PLURAL}/{name}"
    ))
}

/// Fills in `apiVersion`/`kind`, which the API leaves out of list items.
pub fn with_kind((mut items, rv): (Vec<Value>, String)) -> (Vec<Value>, String) {
    for item in &mut items {
        if let Value::Object(o) = item {
            o.entry("apiVersion")
                .or_insert_with(|| Value::from(API_VERSION));
            o.entry("kind").or_insert_with(|| Value::from(KIND));
        }
    }
    (items, rv)
}

/// GET one RouteConfiguration.
pub fn get(ns: &str, name: &str) -> Result<ApiRequest, KubeError> {
    Ok(ApiRequest::get(object_path(ns, name)?))
}

/// JSON merge patch of the status subresource.
pub fn patch_status(ns: &str, name: &str, body: &Value) -> Result<ApiRequest, KubeError> {
    let path = format!("{}/status", object_path(ns, name)?);
    ApiRequest::json("PATCH", path, "application/merge-patch+json", body)
}

/// PUT of the whole status; the object must carry its resourceVersion so
/// the write only succeeds if nobody changed it since it was read.
pub fn replace_status(ns: &str, name: &str, object: &Value) -> Result<ApiRequest, KubeError> {
    let path = format!("{}/status", object_path(ns, name)?);
    let meta = object.get("metadata");
    let rv = meta
        .and_then(|m| m.get("resourceVersion"))
        .and_then(Value::as_str);
    if rv.is_none_or(str::is_empty) {
        return Err(KubeError::Request(format!(
            "{path}: status replace without metadata.resourceVersion would overwrite other writers"
        )));
    }
    let same = |field: &str, want: &str| {
        meta.and_then(|m| m.get(field)).and_then(Value::as_str) == Some(want)
    };
    if !same("name", name)
        || !meta
            .and_then(|m| m.get("namespace"))
            .is_none_or(|_| same("namespace", ns))
    {
        return Err(KubeError::Request(format!(
            "{path}: object metadata names another object"
        )));
    }
    ApiRequest::json("PUT", path, "application/json", object)
}

/// Merge patch setting `metadata.finalizers` to exactly `finalizers`,
/// checked against `resource_version` like an update.
pub fn patch_finalizers(
    ns: &str,
    name: &str,
    resource_version: &str,
    finalizers: &[String],
) -> Result<ApiRequest, KubeError> {
    let path = object_path(ns, name)?;
    if resource_version.is_empty() {
        return Err(KubeError::Request(format!(
            "{path}: finalizer patch without resourceVersion"
        )));
    }
    let body = json!({"metadata": {"resourceVersion": resource_version, "finalizers": finalizers}});
    ApiRequest::json("PATCH", path, "application/merge-patch+json", &body)
}

/// POST of a core/v1 Event about `involved` (an object as the API returned
/// it), reported by `(component, host)`, with a server-generated name.
pub fn event(
    source: (&str, &str),
    ns: &str,
    involved: &Value,
    reason: &str,
    message: &str,
    event_type: EventType,
) -> Result<ApiRequest, KubeError> {
    let now = crate::time::now_rfc3339();
    event_at(
        source,
        ns,
        involved,
        (reason, message, event_type),
        &now,
        false,
    )
}

/// Like [`event`], for a queued write: the Event's time is when it
/// happened (`at`), and its name is derived from what it says, so sending
/// it again after a lost answer gets 409 instead of a second Event.
pub fn event_once(
    source: (&str, &str),
    ns: &str,
    involved: &Value,
    what: (&str, &str, EventType),
    at: &str,
) -> Result<ApiRequest, KubeError> {
    event_at(source, ns, involved, what, at, true)
}

/// FNV-1a: a stable, dependency-free name suffix (not a security hash).
fn fnv64(parts: &[&str]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for p in parts {
        for b in p.bytes().chain([0]) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    h
}

fn event_at(
    (component, host): (&str, &str),
    ns: &str,
    involved: &Value,
    (reason, message, event_type): (&str, &str, EventType),
    now: &str,
    fixed_name: bool,
) -> Result<ApiRequest, KubeError> {
    check_name("namespace", ns)?;
    let meta = involved.get("metadata");
    let field = |f: &str| meta.and_then(|m| m.get(f)).cloned().unwrap_or(Value::Null);
    let name = field("name");
    let Some(name_str) = name.as_str() else {
        return Err(KubeError::Request(
            "event for an object without metadata.name".to_string(),
        ));
    };
    let mut source = json!({"component": component});
    if !host.is_empty() {
        source["host"] = Value::from(host);
    }
    let metadata = if fixed_name {
        let uid = meta
            .and_then(|m| m.get("uid"))
            .and_then(Value::as_str)
            .unwrap_or("");
        let hash = fnv64(&[uid, host, reason, message, now]);
        let prefix: String = name_str.chars().take(230).collect();
        json!({"name": format!("{prefix}.{hash:016x}"), "namespace": ns})
    } else {
        json!({"generateName": format!("{name_str}."), "namespace": ns})
    };
    let body = json!({
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": metadata,
        "involvedObject": {
            "apiVersion": involved.get("apiVersion").cloned().unwrap_or(Value::from(API_VERSION)),
            "kind": involved.get("kind").cloned().unwrap_or(Value::from(KIND)),
            "name": name,
            "namespace": ns,
            "uid": field("uid"),
            "resourceVersion": field("resourceVersion"),
        },
        "reason": reason,
        "message": message,
        "type": event_type.as_str(),
        "firstTimestamp": now,
        "lastTimestamp": now,
        "count": 1,
        "source": source,
        "reportingComponent": component,
        "reportingInstance": host,
    });
    ApiRequest::json(
        "POST",
        format!("/api/v1/namespaces/{ns}/events"),
        "application/json",
        &body,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_encoding() {
        assert_eq!(
            encode("networking.liqo.io/route-category=gateway,a!=b"),
            "networking.liqo.io%2Froute-category%3Dgateway%2Ca%21%3Db"
        );
        assert_eq!(encode("a b&c"), "a%20b%26c");
    }

    #[test]
    fn names_cannot_escape_the_path() {
        assert!(object_path("liqo", "rc-1.x").is_ok());
        for bad in ["", "../x", "a/b", "a?b", "A", "a b", "a%2f"] {
            assert!(object_path("ns", bad).is_err(), "{bad}");
            assert!(object_path(bad, "n").is_err(), "{bad}");
        }
    }

    #[test]
    fn status_replace_needs_a_precondition_and_the_right_object() {
        let obj = json!({"metadata": {"name": "a", "namespace": "n", "resourceVersion": "7"}});
        let r = replace_status("n", "a", &obj).expect("valid");
        assert_eq!(r.method, "PUT");
        assert!(
            r.path
                .ends_with("/namespaces/n/routeconfigurations/a/status")
        );
        assert_eq!(r.body.as_ref().map(|b| b.0), Some("application/json"));
        let no_rv = json!({"metadata": {"name": "a", "namespace": "n"}});
        assert!(replace_status("n", "a", &no_rv).is_err());
        assert!(replace_status("n", "b", &obj).is_err());
        assert!(patch_finalizers("n", "a", "", &[]).is_err());
    }

    #[test]
    fn queued_events_have_a_stable_name() {
        let obj = json!({"metadata": {"name": "a", "namespace": "n", "uid": "u-1"}});
        let what = ("ApplyFailed", "h: link down", EventType::Warning);
        let at = "2026-01-01T00:00:00Z";
        let body = |r: ApiRequest| -> Value {
            serde_json::from_slice(&r.body.expect("body").1).expect("json")
        };
        let one = body(event_once(("c", "h"), "n", &obj, what, at).expect("event"));
        let two = body(event_once(("c", "h"), "n", &obj, what, at).expect("event"));
        assert_eq!(one, two, "a resend is the same Event");
        let name = one["metadata"]["name"].as_str().expect("name");
        assert!(name.starts_with("a.") && name.len() == 2 + 16, "{name}");
        assert_eq!(one["firstTimestamp"], at);
        let later =
            body(event_once(("c", "h"), "n", &obj, what, "2026-01-01T00:00:01Z").expect("event"));
        assert_ne!(later["metadata"]["name"], one["metadata"]["name"]);
    }
}
