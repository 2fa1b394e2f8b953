//! Who this agent is, as a binding's `spec.targetRef`: the fabric role is
//! its `v1/Node`, the gateway role its `v1/Pod`. Upstream matches targets by
//! exact string equality of all four fields, so they are built here once
//! and compared here only.

use serde_json::{Value, json};

/// A binding's `spec.targetRef`. `namespace` is empty for cluster-scoped
/// targets (a Node), as upstream writes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    pub api_version: String,
    pub kind: String,
    pub name: String,
    pub namespace: String,
}

/// Where the pieces of an identity come from; gathered by the CLI so that
/// the choice itself stays pure.
#[derive(Clone, Debug, Default)]
pub struct IdentityInputs<'a> {
    /// `--role`.
    pub role: Option<&'a str>,
    /// `--node-name`, then `$NODE_NAME`.
    pub node_name: Option<&'a str>,
    /// `--host-name`, then `$POD_NAME`, then the hostname.
    pub host_name: &'a str,
    /// `--pod-namespace`.
    pub pod_namespace_flag: Option<&'a str>,
    /// `$POD_NAMESPACE`.
    pub pod_namespace_env: Option<&'a str>,
    /// Content of the in-cluster namespace file, if it could be read.
    pub namespace_file: Option<&'a str>,
    /// `--binding-target`.
    pub binding_target: Option<&'a str>,
}

impl Target {
    /// The fabric agent's target: its Node, without namespace.
    pub fn node(name: &str) -> Target {
        Target {
            api_version: "v1".into(),
            kind: "Node".into(),
            name: name.into(),
            namespace: String::new(),
        }
    }

    /// The gateway agent's target: its Pod.
    pub fn pod(namespace: &str, name: &str) -> Target {
        Target {
            api_version: "v1".into(),
            kind: "Pod".into(),
            name: name.into(),
            namespace: namespace.into(),
        }
    }

    /// Parses `--binding-target KIND/[NAMESPACE/]NAME`. `KIND` is a core
    /// kind (`Node`, `Pod`: apiVersion `v1`) or `Kind.VERSION.GROUP` as
    /// kubectl spells it (`InternalNode.v1beta1.networking.liqo.io`).
    pub fn parse(s: &str) -> Result<Target, String> {
        let parts: Vec<&str> = s.split('/').collect();
        let (kind, namespace, name) = match parts.as_slice() {
            [k, n] => (*k, "", *n),
            [k, ns, n] => (*k, *ns, *n),
            _ => return Err(format!("{s:?}: expected KIND/[NAMESPACE/]NAME")),
        };
        let (kind, api_version) = match kind.split_once('.') {
            None => (kind, "v1".to_string()),
            Some((k, vg)) => match vg.split_once('.') {
                Some((version, group)) if !version.is_empty() && !group.is_empty() => {
                    (k, format!("{group}/{version}"))
                }
                _ => {
                    return Err(format!(
                        "{s:?}: kind {kind:?} is not Kind or Kind.VERSION.GROUP"
                    ));
                }
            },
        };
        if kind.is_empty() || !kind.chars().all(|c| c.is_ascii_alphanumeric()) {
            return Err(format!("{s:?}: kind {kind:?} is not a Kubernetes kind"));
        }
        if !is_dns_subdomain(name) {
            return Err(format!("{s:?}: name {name:?} is not a valid object name"));
        }
        if !namespace.is_empty() && !is_dns_label(namespace) {
            return Err(format!(
                "{s:?}: namespace {namespace:?} is not a valid namespace"
            ));
        }
        match (api_version.as_str(), kind) {
            ("v1", "Pod") if namespace.is_empty() => {
                return Err(format!("{s:?}: a Pod target needs Pod/NAMESPACE/NAME"));
            }
            ("v1", "Node") if !namespace.is_empty() => {
                return Err(format!("{s:?}: a Node is cluster-scoped: use Node/NAME"));
            }
            _ => {}
        }
        Ok(Target {
            api_version,
            kind: kind.into(),
            name: name.into(),
            namespace: namespace.into(),
        })
    }

    /// Chooses the identity for binding mode: `--binding-target` if given,
    /// else the role's Node or Pod. Every missing piece is named.
    pub fn resolve(i: &IdentityInputs) -> Result<Target, String> {
        if let Some(t) = i.binding_target {
            return Target::parse(t).map_err(|e| format!("--binding-target {e}"));
        }
        match i.role {
            Some("fabric") => {
                let node = i.node_name.filter(|n| !n.is_empty()).ok_or(
                    "binding mode: --role fabric binds to its Node and needs --node-name (or $NODE_NAME)",
                )?;
                if !is_dns_subdomain(node) {
                    return Err(format!("--node-name {node:?} is not a valid Node name"));
                }
                Ok(Target::node(node))
            }
            Some("gateway") => {
                let ns = [i.pod_namespace_flag, i.pod_namespace_env, i.namespace_file]
                    .into_iter()
                    .flatten()
                    .map(str::trim)
                    .find(|s| !s.is_empty())
                    .ok_or(
                        "binding mode: --role gateway binds to its Pod and needs --pod-namespace \
                         (or $POD_NAMESPACE, or the in-cluster namespace file)",
                    )?;
                if !is_dns_label(ns) {
                    return Err(format!("pod namespace {ns:?} is not a valid namespace"));
                }
                if !is_dns_subdomain(i.host_name) {
                    return Err(format!(
                        "binding mode: the gateway's Pod name (--host-name, $POD_NAME) {:?} is not a valid Pod name",
                        i.host_name
                    ));
                }
                Ok(Target::pod(ns, i.host_name))
            }
            _ => Err(
                "binding mode needs to know who this agent is: use --role fabric|gateway, \
                 or --binding-target KIND/[NAMESPACE/]NAME with -l selectors"
                    .into(),
            ),
        }
    }

    /// The JSON form written into `spec.targetRef` (no `namespace` key when
    /// cluster-scoped, as upstream's `omitempty`).
    pub fn to_json(&self) -> Value {
        let mut v = json!({
            "apiVersion": self.api_version,
            "kind": self.kind,
            "name": self.name,
        });
        if !self.namespace.is_empty() {
            v["namespace"] = json!(self.namespace);
        }
        v
    }

    /// Whether a `spec.targetRef` is this target: exact equality of the four
    /// fields, an absent namespace equal to an empty one (upstream's rule).
    pub fn matches(&self, target_ref: &Value) -> bool {
        let f = |k: &str| target_ref.get(k).and_then(Value::as_str).unwrap_or("");
        f("apiVersion") == self.api_version
            && f("kind") == self.kind
            && f("name") == self.name
            && f("namespace") == self.namespace
    }

    /// Whether this binding object (`spec.targetRef`) is bound to us.
    pub fn owns(&self, binding: &Value) -> bool {
        binding
            .pointer("/spec/targetRef")
            .is_some_and(|t| self.matches(t))
    }

    /// `Kind namespace/name` for logs and `/status`.
    pub fn describe(&self) -> String {
        if self.namespace.is_empty() {
            format!("{} {}", self.kind, self.name)
        } else {
            format!("{} {}/{}", self.kind, self.namespace, self.name)
        }
    }
}

/// RFC 1123 label: what a namespace name must be.
pub fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// RFC 1123 subdomain: what most object names (Node, Pod) must be.
pub fn is_dns_subdomain(s: &str) -> bool {
    s.len() <= 253 && s.split('.').all(is_dns_label)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_core_and_grouped_kinds() {
        assert_eq!(
            Target::parse("Node/worker-1").unwrap(),
            Target::node("worker-1")
        );
        assert_eq!(
            Target::parse("Pod/liqo-tenant-x/gw-abc").unwrap(),
            Target::pod("liqo-tenant-x", "gw-abc")
        );
        let t = Target::parse("InternalNode.v1beta1.networking.liqo.io/worker-1").unwrap();
        assert_eq!(t.api_version, "networking.liqo.io/v1beta1");
        assert_eq!(t.kind, "InternalNode");
        assert_eq!(t.namespace, "");
    }

    #[test]
    fn refuses_malformed_targets() {
        for bad in [
            "",
            "Node",
            "Node/",
            "Pod/gw",
            "Node/ns/worker",
            "Pod/ns/gw/extra",
            "Node/Worker",
            "Pod/NS/gw",
            "No de/x",
            "Kind.v1/x",
            "Kind..g/x",
            "/x",
        ] {
            assert!(Target::parse(bad).is_err(), "{bad:?} accepted");
        }
        assert_eq!(
            Target::parse("Pod/gw").unwrap_err(),
            "\"Pod/gw\": a Pod target needs Pod/NAMESPACE/NAME"
        );
    }

    fn inputs<'a>() -> IdentityInputs<'a> {
        IdentityInputs {
            host_name: "gw-7d9f-abcde",
            ..Default::default()
        }
    }

    #[test]
    fn fabric_is_its_node() {
        let i = IdentityInputs {
            role: Some("fabric"),
            node_name: Some("worker-1"),
            ..inputs()
        };
        assert_eq!(Target::resolve(&i).unwrap(), Target::node("worker-1"));
        let i = IdentityInputs {
            role: Some("fabric"),
            ..inputs()
        };
        assert!(Target::resolve(&i).unwrap_err().contains("--node-name"));
    }

    #[test]
    fn gateway_namespace_flag_then_env_then_file() {
        let mut i = IdentityInputs {
            role: Some("gateway"),
            pod_namespace_flag: Some("flag-ns"),
            pod_namespace_env: Some("env-ns"),
            namespace_file: Some("file-ns\n"),
            ..inputs()
        };
        assert_eq!(
            Target::resolve(&i).unwrap(),
            Target::pod("flag-ns", "gw-7d9f-abcde")
        );
        i.pod_namespace_flag = None;
        assert_eq!(Target::resolve(&i).unwrap().namespace, "env-ns");
        i.pod_namespace_env = Some("");
        assert_eq!(Target::resolve(&i).unwrap().namespace, "file-ns");
        i.namespace_file = None;
        let e = Target::resolve(&i).unwrap_err();
        assert!(
            e.contains("--pod-namespace") && e.contains("$POD_NAMESPACE"),
            "{e}"
        );
        i.pod_namespace_flag = Some("Bad_NS");
        assert!(Target::resolve(&i).unwrap_err().contains("Bad_NS"));
    }

    #[test]
    fn gateway_pod_name_must_be_valid() {
        let i = IdentityInputs {
            role: Some("gateway"),
            pod_namespace_flag: Some("ns"),
            host_name: "My_Host",
            ..Default::default()
        };
        assert!(Target::resolve(&i).unwrap_err().contains("My_Host"));
    }

    #[test]
    fn binding_target_wins_and_no_identity_is_an_error() {
        let i = IdentityInputs {
            role: Some("fabric"),
            node_name: Some("w"),
            binding_target: Some("Pod/ns/me"),
            ..inputs()
        };
        assert_eq!(Target::resolve(&i).unwrap(), Target::pod("ns", "me"));
        let i = IdentityInputs {
            binding_target: Some("Pod/me"),
            ..inputs()
        };
        assert!(
            Target::resolve(&i)
                .unwrap_err()
                .starts_with("--binding-target")
        );
        let e = Target::resolve(&inputs()).unwrap_err();
        assert!(
            e.contains("--binding-target") && e.contains("--role"),
            "{e}"
        );
    }

    #[test]
    fn json_and_matching_follow_upstream_equality() {
        let node = Target::node("w1");
        assert_eq!(
            node.to_json(),
            json!({"apiVersion": "v1", "kind": "Node", "name": "w1"})
        );
        assert!(node.matches(&json!({"apiVersion": "v1", "kind": "Node", "name": "w1"})));
        assert!(
            node.matches(
                &json!({"apiVersion": "v1", "kind": "Node", "name": "w1", "namespace": ""})
            )
        );
        assert!(!node.matches(&json!({"apiVersion": "v1", "kind": "Node", "name": "w2"})));
        assert!(!node.matches(&json!({"apiVersion": "v1", "kind": "node", "name": "w1"})));
        assert!(!node.matches(&json!({"kind": "Node", "name": "w1"})));
        let pod = Target::pod("ns", "p");
        assert_eq!(
            pod.to_json(),
            json!({"apiVersion": "v1", "kind": "Pod", "name": "p", "namespace": "ns"})
        );
        assert!(!pod.matches(&json!({"apiVersion": "v1", "kind": "Pod", "name": "p"})));
        assert!(pod.owns(&json!({"spec": {"targetRef": pod.to_json()}})));
        assert!(!pod.owns(&json!({"spec": {}})));
        assert_eq!(pod.describe(), "Pod ns/p");
        assert_eq!(node.describe(), "Node w1");
    }

    #[test]
    fn dns_names() {
        assert!(is_dns_label("a-1"));
        assert!(!is_dns_label("-a") && !is_dns_label("a-") && !is_dns_label("A"));
        assert!(!is_dns_label(&"a".repeat(64)));
        assert!(is_dns_subdomain("a.b-c.d"));
        assert!(!is_dns_subdomain("a..b") && !is_dns_subdomain(""));
    }
}
