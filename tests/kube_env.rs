//! The end-to-end harness itself: a real kube-apiserver accepts the upstream
//! CRD and the seed's Rome objects unchanged, and node namespaces reach it
//! only once attached. Needs root and `.ci/setup-kube.sh`; fails loudly
//! otherwise.

mod common;

use common::kube::KubeEnv;
use common::netns::Netns;
use serde_json::Value;
use std::collections::BTreeMap;
use std::fs;
use std::path::Path;
use std::process::Command;

const CRD_NAME: &str = "routeconfigurations.networking.liqo.io";

/// `(namespace, name) -> spec` of every fixture in `dir`.
fn fixture_specs(dir: &Path) -> BTreeMap<(String, String), Value> {
    let mut specs = BTreeMap::new();
    let entries = fs::read_dir(dir).unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()));
    for entry in entries {
        let path = entry
            .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
            .path();
        let text =
            fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
        let obj: Value = serde_yaml_ng::from_str(&text)
            .unwrap_or_else(|e| panic!("parsing {}: {e}", path.display()));
        let meta = &obj["metadata"];
        let key = (
            meta["namespace"].as_str().unwrap_or_default().to_string(),
            meta["name"].as_str().unwrap_or_default().to_string(),
        );
        specs.insert(key, obj["spec"].clone());
    }
    specs
}

#[test]
fn upstream_crd_and_rome_gateway_fixtures_round_trip() {
    let env = KubeEnv::start();
    let shared = common::shared_dir();
    let crd = shared.join("upstream/routeconfigurations.networking.liqo.io.yaml");
    let gateway = shared.join("fixtures/rome/gateway");
    let expected = fixture_specs(&gateway);
    assert_eq!(expected.len(), 7, "fixture count in {}", gateway.display());

    env.kubectl_ok(&["apply", "-f", &crd.display().to_string()]);
    env.kubectl_ok(&[
        "wait",
        "--for=condition=Established",
        "--timeout=60s",
        &format!("crd/{CRD_NAME}"),
    ]);
    env.kubectl_ok(&["create", "namespace", "liqo"]);
    env.kubectl_stdin(
        &["apply", "-f", "-"],
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: liqo-tenant-milan\n",
    );
    env.kubectl_ok(&["apply", "-f", &gateway.display().to_string()]);

    let listed: Value =
        serde_json::from_str(&env.kubectl_ok(&["get", "routeconfigurations", "-A", "-o", "json"]))
            .expect("kubectl -o json output is JSON");
    let items = listed["items"].as_array().expect("list has items");
    assert_eq!(items.len(), 7, "RouteConfigurations listed: {listed}");
    let mut got = BTreeMap::new();
    for item in items {
        let meta = &item["metadata"];
        got.insert(
            (
                meta["namespace"].as_str().unwrap_or_default().to_string(),
                meta["name"].as_str().unwrap_or_default().to_string(),
            ),
            item["spec"].clone(),
        );
    }
    // Equal specs mean the CRD's schema neither pruned nor defaulted any
    // field the seed uses.
    assert_eq!(got, expected);
}

#[test]
fn attached_node_reaches_the_api_with_verified_tls_and_after_a_restart() {
    let mut env = KubeEnv::start();
    let node = Netns::new("node");

    // Isolation: the node namespace has no path to the API until attached.
    let before = env.kubectl_in(
        node.name(),
        &["--request-timeout=5s", "get", "--raw", "/readyz"],
    );
    assert!(
        !before.status.success(),
        "API reachable from {} before attach",
        node.name()
    );

    let node_ip = env.node_ip(10);
    env.attach(node.name(), &node_ip);
    // The admin kubeconfig names https://198.18.X.1 and the generated CA:
    // success means routing, TLS verification and token auth all work.
    let readyz = env.kubectl_in(node.name(), &["get", "--raw", "/readyz"]);
    assert!(
        readyz.status.success(),
        "readyz from {}: {}",
        node.name(),
        String::from_utf8_lossy(&readyz.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&readyz.stdout).trim(), "ok");

    // A real ServiceAccount token is authenticated but, without a binding,
    // forbidden by RBAC.
    env.kubectl_ok(&["create", "serviceaccount", "agent", "-n", "default"]);
    let token = env.create_service_account_token("default", "agent");
    let sa_config = env.write_kubeconfig("agent", &token);
    let denied = Command::new("ip")
        .args(["netns", "exec", node.name(), "/usr/bin/kubectl"])
        .arg(format!("--kubeconfig={}", sa_config.display()))
        .arg(format!(
            "--cache-dir={}",
            env.dir().join("agent-cache").display()
        ))
        .args(["get", "namespaces"])
        .output()
        .expect("running kubectl as the agent");
    let stderr = String::from_utf8_lossy(&denied.stderr);
    assert!(
        !denied.status.success() && stderr.contains("Forbidden"),
        "expected RBAC denial, got {}: {stderr}",
        denied.status
    );
    assert!(
        stderr.contains("system:serviceaccount:default:agent"),
        "denial names the ServiceAccount: {stderr}"
    );

    // Outage and recovery: same certificates, same etcd data.
    env.stop_apiserver();
    let down = env.kubectl_in(
        node.name(),
        &["--request-timeout=5s", "get", "--raw", "/readyz"],
    );
    assert!(!down.status.success(), "API answered while stopped");
    env.restart_apiserver();
    let sa = env.kubectl_in(
        node.name(),
        &["get", "serviceaccount", "agent", "-n", "default"],
    );
    assert!(
        sa.status.success(),
        "after restart: {}",
        String::from_utf8_lossy(&sa.stderr)
    );
}
