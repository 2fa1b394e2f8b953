//! The Lease object's spec, and the lease's name.

use serde_json::{Value, json};

/// `spec` of a `coordination.k8s.io/v1` Lease, as leader election uses it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LeaseRecord {
    pub holder: String,
    pub duration_secs: i64,
    pub acquire_time: String,
    pub renew_time: String,
    pub transitions: i64,
}

impl LeaseRecord {
    /// Reads a Lease's spec; absent fields read as empty or zero, as
    /// client-go reads them.
    pub fn of(lease: &Value) -> LeaseRecord {
        let spec = lease.get("spec");
        let s = |f: &str| {
            spec.and_then(|s| s.get(f))
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string()
        };
        let i = |f: &str| {
            spec.and_then(|s| s.get(f))
                .and_then(Value::as_i64)
                .unwrap_or(0)
        };
        LeaseRecord {
            holder: s("holderIdentity"),
            duration_secs: i("leaseDurationSeconds"),
            acquire_time: s("acquireTime"),
            renew_time: s("renewTime"),
            transitions: i("leaseTransitions"),
        }
    }

    /// The spec JSON (empty times are left out: the API refuses "").
    pub fn to_spec(&self) -> Value {
        let mut v = json!({
            "holderIdentity": self.holder,
            "leaseDurationSeconds": self.duration_secs,
            "leaseTransitions": self.transitions,
        });
        if !self.acquire_time.is_empty() {
            v["acquireTime"] = json!(self.acquire_time);
        }
        if !self.renew_time.is_empty() {
            v["renewTime"] = json!(self.renew_time);
        }
        v
    }
}

/// Upstream gateway's lease name: `<gateway-name>.<namespace>.<mode>.connections.liqo.io`,
/// in the gateway's namespace. `mode` is `server` or `client`.
pub fn default_lease_name(gateway: &str, namespace: &str, mode: &str) -> Result<String, String> {
    if mode != "server" && mode != "client" {
        return Err(format!("gateway mode {mode:?}: expected server or client"));
    }
    let name = format!("{gateway}.{namespace}.{mode}.connections.liqo.io");
    if !crate::binding::target::is_dns_subdomain(&name) {
        return Err(format!("lease name {name:?} is not a valid object name"));
    }
    Ok(name)
}

/// Parses `--leader-lease NAMESPACE/NAME`.
pub fn parse_lease_ref(s: &str) -> Result<(String, String), String> {
    use crate::binding::target::{is_dns_label, is_dns_subdomain};
    match s.split_once('/') {
        Some((ns, name)) if is_dns_label(ns) && is_dns_subdomain(name) => {
            Ok((ns.to_string(), name.to_string()))
        }
        _ => Err(format!("--leader-lease {s:?}: expected NAMESPACE/NAME")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_round_trip_and_defaults() {
        let r = LeaseRecord {
            holder: "gw-a".into(),
            duration_secs: 15,
            acquire_time: "2026-01-01T00:00:00.000000Z".into(),
            renew_time: "2026-01-01T00:00:02.000000Z".into(),
            transitions: 3,
        };
        assert_eq!(LeaseRecord::of(&json!({"spec": r.to_spec()})), r);
        assert_eq!(LeaseRecord::of(&json!({})), LeaseRecord::default());
        assert_eq!(
            LeaseRecord::default().to_spec(),
            json!({"holderIdentity": "", "leaseDurationSeconds": 0, "leaseTransitions": 0})
        );
    }

    #[test]
    fn upstream_default_name() {
        assert_eq!(
            default_lease_name("gw-milan", "liqo-tenant-milan", "server").unwrap(),
            "gw-milan.liqo-tenant-milan.server.connections.liqo.io"
        );
        assert!(default_lease_name("gw", "ns", "both").is_err());
        assert!(default_lease_name("GW", "ns", "client").is_err());
    }

    #[test]
    fn lease_ref() {
        assert_eq!(
            parse_lease_ref("liqo/my.lease").unwrap(),
            ("liqo".to_string(), "my.lease".to_string())
        );
        for bad in ["", "name", "/name", "ns/", "NS/x", "ns/a/b"] {
            assert!(parse_lease_ref(bad).is_err(), "{bad:?}");
        }
    }
}
