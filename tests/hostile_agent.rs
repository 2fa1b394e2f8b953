//! Hostile input for the agent (issue 8), against a real kube-apiserver:
//! only what the API server can deliver. A rule with no selector is
//! accepted by the CRD, so it reaches the agent, which must refuse it
//! (condition False, an ApplyFailed Event naming the field) while the
//! other objects still apply, and install no rule matching all traffic.
//! (Repeated keys, `.inf` and merge keys never get past kubectl and the
//! API server; unknown fields are pruned by it.)
//!
//! With `--allow-match-all` (upstream's behaviour) the same rule is
//! applied, and the agent logs a warning saying it captures all traffic.
//!
//! Needs root and the kube-apiserver built by .ci/setup-kube.sh.

mod common;

use common::agent::*;
use common::kube::KubeEnv;
use common::netns::{Netns, require_root};
use routecfg::table_id::table_id;
use serde_json::{Value, json};
use std::fs;

#[test]
fn once_refuses_a_match_all_rule_and_applies_the_rest() {
    require_root();
    let ns: Netns = dummy_node("matchall");
    let mut env = KubeEnv::start();
    let ip = env.node_ip(10);
    env.attach(ns.name(), &ip);
    install_crd(&env, Crd::Upstream);
    create_namespaces(&env, &["liqo"]);
    let scratch = Scratch::new("matchall");
    let home = scratch.path().join("home");
    fs::create_dir_all(&home).unwrap_or_else(|e| panic!("{e}"));
    let rt_tables = scratch.path().join("rt_tables").display().to_string();
    let kubeconfig = env.kubeconfig().display().to_string();
    let args = [
        "--kubeconfig",
        &kubeconfig,
        "--role",
        "fabric",
        "--host-name",
        "matchall-host",
        "--rt-tables",
        &rt_tables,
    ];
    let fabric = [(CATEGORY, "fabric")];
    apply(
        &env,
        &route_config(
            "liqo",
            "valid",
            &fabric,
            json!({"name": "valid", "rules": [
                {"iif": "dummy0", "routes": [{"dst": "10.89.0.0/24", "dev": "dummy0", "scope": "link"}]}
            ]}),
        ),
    );
    apply(
        &env,
        &route_config(
            "liqo",
            "match-all",
            &fabric,
            json!({"name": "match-all", "rules": [
                {"priority": 100, "routes": [{"dst": "10.87.0.0/24", "dev": "dummy0", "scope": "link"}]}
            ]}),
        ),
    );
    let out = run_once(ns.name(), &args, &[], &home);
    let text = format!(
        "exit {}\n--- stdout\n{}--- stderr\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.status.code(), Some(1), "{text}");
    check_object_applied(&env, &ns, "liqo/valid").unwrap_or_else(|e| panic!("{e}\n{text}"));
    check_absent(&ns, table_id("match-all")).unwrap_or_else(|e| panic!("{e}\n{text}"));
    let ours: Vec<_> = ns
        .rules()
        .into_iter()
        .filter(|r| r.protocol == PROTOCOL)
        .collect();
    assert!(
        ours.iter().all(|r| r.src.is_some()
            || r.dst.is_some()
            || r.iif.is_some()
            || r.oif.is_some()
            || r.fwmark.is_some()),
        "a rule matching all traffic reached the kernel: {ours:?}"
    );
    let object = object(&env, "liqo", "match-all").expect("object");
    check_condition(&object, "matchall-host", "False").unwrap_or_else(|e| panic!("{e}"));
    let events = events_for(&env, "liqo", "match-all");
    assert!(
        events.iter().any(|e: &Value| e["reason"] == "ApplyFailed"
            && e["message"].as_str().is_some_and(
                |m| m.contains("rules[0]") && m.contains("has no src, dst, iif, oif or fwmark")
            )),
        "no ApplyFailed event naming the rule: {events:#?}"
    );
}

#[test]
fn once_with_allow_match_all_applies_the_rule_and_warns() {
    require_root();
    let ns: Netns = dummy_node("allowall");
    let mut env = KubeEnv::start();
    let ip = env.node_ip(11);
    env.attach(ns.name(), &ip);
    install_crd(&env, Crd::Upstream);
    create_namespaces(&env, &["liqo"]);
    let scratch = Scratch::new("allowall");
    let home = scratch.path().join("home");
    fs::create_dir_all(&home).unwrap_or_else(|e| panic!("{e}"));
    let rt_tables = scratch.path().join("rt_tables").display().to_string();
    let kubeconfig = env.kubeconfig().display().to_string();
    let args = [
        "--kubeconfig",
        &kubeconfig,
        "--role",
        "fabric",
        "--host-name",
        "matchall-host",
        "--rt-tables",
        &rt_tables,
        "--allow-match-all",
    ];
    apply(
        &env,
        &route_config(
            "liqo",
            "match-all",
            &[(CATEGORY, "fabric")],
            json!({"name": "match-all", "rules": [
                {"priority": 100, "routes": [{"dst": "10.87.0.0/24", "dev": "dummy0", "scope": "link"}]}
            ]}),
        ),
    );
    let out = run_once(ns.name(), &args, &[], &home);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let text = format!(
        "exit {}\n--- stdout\n{}--- stderr\n{stderr}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
    );
    assert_eq!(out.status.code(), Some(0), "{text}");
    check_object_applied(&env, &ns, "liqo/match-all").unwrap_or_else(|e| panic!("{e}\n{text}"));
    let id = table_id("match-all");
    let installed: Vec<_> = ns
        .rules()
        .into_iter()
        .filter(|r| r.protocol == PROTOCOL && r.table == id)
        .collect();
    assert!(
        !installed.is_empty()
            && installed.iter().all(|r| r.priority == 100
                && r.src.is_none()
                && r.dst.is_none()
                && r.iif.is_none()
                && r.oif.is_none()
                && r.fwmark.is_none()),
        "expected the match-all rule at priority 100 into table {id}: {installed:?}\n{text}"
    );
    let warning = "liqo/match-all: spec.table.rules[0]: has no src, dst, iif, oif or fwmark: \
                   it sends all traffic to this table (accepted by --allow-match-all)";
    assert!(
        stderr
            .lines()
            .any(|l| l.contains("WARN") && l.contains(warning)),
        "no warning logged for the match-all rule\n{text}"
    );
}

fn check_object_applied(env: &KubeEnv, ns: &Netns, key: &str) -> Result<(), String> {
    let (namespace, name) = key.split_once('/').ok_or("key")?;
    let o = object(env, namespace, name).ok_or(format!("{key}: gone"))?;
    check_condition(&o, "matchall-host", "True")?;
    let id = table_id(name);
    if ns.routes(id).is_empty() {
        return Err(format!("{key}: table {id} has no routes"));
    }
    Ok(())
}
