//! The binding objects and statuses routecfg computes (`routecfg::binding`)
//! against a real kube-apiserver 1.20, with Liqo's binding CRD (minus the
//! `default: ""` line 1.20 refuses, which is checked too) and with ours:
//! what the agent would create and write is stored exactly as computed,
//! and a write guarded by a stale resourceVersion is refused.
//! Needs root and `.ci/setup-kube.sh`; fails loudly otherwise.

mod common;

use common::kube::KubeEnv;
use routecfg::binding::{Outcome, Target, desired_binding, updated_binding_status};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};

const BINDINGS: &str = "routeconfigurationbindings.networking.liqo.io";

fn upstream_binding_crd() -> PathBuf {
    common::shared_dir().join("upstream/routeconfigurationbindings.networking.liqo.io.yaml")
}

fn install(env: &KubeEnv, path: &Path, resource: &str) {
    env.kubectl_ok(&["apply", "-f", &path.display().to_string()]);
    env.kubectl_ok(&[
        "wait",
        "--for=condition=Established",
        "--timeout=60s",
        &format!("crd/{resource}"),
    ]);
    for _ in 0..60 {
        if env.kubectl(&["get", resource, "-A"]).status.success() {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(500));
    }
    panic!("{resource} not served 30 s after its CRD was established");
}

fn get(env: &KubeEnv, what: &str, ns: &str, name: &str) -> Value {
    let out = env.kubectl_ok(&["get", what, "-n", ns, name, "-o", "json"]);
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("kubectl get {what} {name}: {e}"))
}

/// Creates what `desired_binding` computes for a RouteConfiguration read
/// back from the server, writes two computed statuses, and checks each is
/// stored as computed.
fn round_trip(env: &KubeEnv, target: &Target) {
    let rc = get(
        env,
        "routeconfigurations.networking.liqo.io",
        "liqo",
        "rome-worker",
    );
    let binding = desired_binding(&rc, target).unwrap();
    let name = binding["metadata"]["name"].as_str().unwrap().to_string();
    env.kubectl_stdin(&["create", "-f", "-"], &binding.to_string());
    let stored = get(env, BINDINGS, "liqo", &name);
    for field in ["name", "namespace", "ownerReferences", "finalizers"] {
        assert_eq!(
            stored["metadata"][field], binding["metadata"][field],
            "metadata.{field} stored as computed"
        );
    }
    assert_eq!(stored["spec"], binding["spec"]);

    let status = updated_binding_status(
        &stored,
        Outcome::Applied("1 rule, 1 route"),
        Some("rome-worker"),
        "2026-12-01T00:00:00Z",
    )
    .unwrap();
    let mut object = stored.clone();
    object["status"] = status.clone();
    env.kubectl_stdin(
        &["replace", "--subresource=status", "-f", "-"],
        &object.to_string(),
    );
    let stored2 = get(env, BINDINGS, "liqo", &name);
    assert_eq!(stored2["status"], status);
    assert_eq!(
        updated_binding_status(
            &stored2,
            Outcome::Applied("1 rule, 1 route"),
            Some("rome-worker"),
            "2026-12-01T00:00:09Z"
        ),
        None,
        "what the server stored is what we would write again: no second write"
    );

    let failed = updated_binding_status(
        &stored2,
        Outcome::Failed("link eth9 not found"),
        None,
        "2026-12-01T00:00:05Z",
    )
    .unwrap();
    let mut object = stored2.clone();
    object["status"] = failed.clone();
    env.kubectl_stdin(
        &["replace", "--subresource=status", "-f", "-"],
        &object.to_string(),
    );
    assert_eq!(get(env, BINDINGS, "liqo", &name)["status"], failed);

    // The first object's resourceVersion is stale now: the write must fail.
    let mut stale = stored.clone();
    stale["status"] = status;
    let out = env.kubectl_stdin_status(
        &["replace", "--subresource=status", "-f", "-"],
        &stale.to_string(),
    );
    assert!(
        !out.status.success() && String::from_utf8_lossy(&out.stderr).contains("modified"),
        "stale status write: {out:?}"
    );
}

fn setup(env: &KubeEnv) {
    let crd = Path::new(env!("CARGO_MANIFEST_DIR")).join("static/crd.yaml");
    install(env, &crd, "routeconfigurations.networking.liqo.io");
    env.kubectl_ok(&["create", "namespace", "liqo"]);
    let rc = json!({
        "apiVersion": "networking.liqo.io/v1beta1", "kind": "RouteConfiguration",
        "metadata": {"name": "rome-worker", "namespace": "liqo"},
        "spec": {"table": {"name": "rome-worker", "rules": [{"dst": "10.0.0.0/8",
                 "routes": [{"dst": "10.0.0.0/8", "dev": "eth0"}]}]}}
    });
    env.kubectl_stdin(&["create", "-f", "-"], &rc.to_string());
}

#[test]
fn upstream_binding_crd_without_its_default_stores_what_routecfg_writes() {
    let env = KubeEnv::start();
    setup(&env);
    let upstream = upstream_binding_crd();
    let text = std::fs::read_to_string(&upstream)
        .unwrap_or_else(|e| panic!("reading {}: {e}", upstream.display()));
    // kube-apiserver 1.20 refuses Liqo's CRD as published.
    let out = env.kubectl_stdin_status(&["apply", "-f", "-"], &text);
    assert!(
        !out.status.success() && String::from_utf8_lossy(&out.stderr).contains("default"),
        "1.20 accepted the CRD with `default: \"\"`: {out:?}"
    );
    let without: String = text
        .lines()
        .filter(|l| l.trim() != "default: \"\"")
        .map(|l| format!("{l}\n"))
        .collect();
    assert_eq!(text.lines().count(), without.lines().count() + 1);
    let copy = env.dir().join("upstream-bindings.yaml");
    std::fs::write(&copy, without).unwrap();
    install(&env, &copy, BINDINGS);
    round_trip(&env, &Target::node("rome-worker"));
    round_trip(&env, &Target::pod("liqo-tenant-milan", "gw-milan-0"));
}

#[test]
fn our_binding_crd_stores_what_routecfg_writes() {
    let env = KubeEnv::start();
    setup(&env);
    let ours = Path::new(env!("CARGO_MANIFEST_DIR")).join("static/crd-bindings.yaml");
    install(&env, &ours, BINDINGS);
    round_trip(&env, &Target::node("rome-worker"));
    round_trip(&env, &Target::pod("liqo-tenant-milan", "gw-milan-0"));
}
