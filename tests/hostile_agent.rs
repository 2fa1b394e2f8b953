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
//! Two objects whose table names map to one kernel id (issue 8 §6): the
//! older keeps the table, the other is refused naming both, and the
//! collision shows in `/status`, `routecfg status` and a metric.
//!
//! Needs root and the kube-apiserver built by .ci/setup-kube.sh.

mod common;

use common::agent::*;
use common::kube::KubeEnv;
use common::netns::{Netns, require_root};
use routecfg::table_id::table_id;
use serde_json::{Value, json};
use std::fs;
use std::process::Command;
use std::time::Duration;

/// Two table names with one table id. Found offline by a birthday search:
/// table_id() of "collide-0", "collide-1", ... until two agreed (the
/// second match came at i = 25220, as expected for 30 free bits).
const COLLIDING: (&str, &str) = ("collide-14868", "collide-25220");

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

#[test]
fn a_table_id_collision_is_refused_and_shown_in_status_and_metrics() {
    require_root();
    let (first, second) = COLLIDING;
    let id = table_id(first);
    assert_eq!(id, table_id(second), "the hard-coded pair must collide");
    let ns: Netns = dummy_node("collide");
    let mut env = KubeEnv::start();
    let ip = env.node_ip(12);
    env.attach(ns.name(), &ip);
    install_crd(&env, Crd::Upstream);
    create_namespaces(&env, &["liqo"]);
    let scratch = Scratch::new("collide");
    let fabric = [(CATEGORY, "fabric")];
    let table = |name: &str, dst: &str| {
        json!({"name": name, "rules": [
            {"iif": "dummy0", "routes": [{"dst": dst, "dev": "dummy0", "scope": "link"}]}
        ]})
    };
    // Created in this order: the first is older, or as old and first by
    // name, so it keeps the id.
    apply(
        &env,
        &route_config("liqo", "a-first", &fabric, table(first, "10.86.1.0/24")),
    );
    apply(
        &env,
        &route_config("liqo", "b-second", &fabric, table(second, "10.86.2.0/24")),
    );
    let port = 9441;
    let agent = Agent::start(&AgentConfig {
        netns: ns.name(),
        host: "collide-host",
        kubeconfig: env.kubeconfig(),
        select: &["--role", "fabric"],
        dir: scratch.path(),
        metrics_port: port,
    });
    agent.wait_ready();
    wait_for(
        "b-second's condition False",
        Duration::from_secs(30),
        || {
            let o = object(&env, "liqo", "b-second").ok_or("gone")?;
            check_condition(&o, "collide-host", "False")
        },
    );
    let id_text = id.to_string();
    wait_for(
        "an ApplyFailed Event naming both objects and the id",
        Duration::from_secs(30),
        || {
            let events = events_for(&env, "liqo", "b-second");
            events
                .iter()
                .any(|e| {
                    e["reason"] == "ApplyFailed"
                        && e["message"].as_str().is_some_and(|m| {
                            [second, first, "liqo/a-first", &id_text]
                                .iter()
                                .all(|w| m.contains(w))
                        })
                })
                .then_some(())
                .ok_or(format!("{events:#?}"))
        },
    );
    let o = object(&env, "liqo", "a-first").expect("a-first");
    check_condition(&o, "collide-host", "True").unwrap_or_else(|e| panic!("{e}"));
    let dsts: Vec<String> = ns.routes(id).iter().map(|r| r.dst.to_string()).collect();
    assert_eq!(
        dsts,
        ["10.86.1.0/24"],
        "table {id} holds a-first's route only"
    );

    assert_eq!(agent.metric("routecfg_table_id_collisions"), Ok(1.0));
    let (code, body) = agent.http_get("/status").unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(code, 200, "{body}");
    let status: Value = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body}"));
    assert_eq!(
        status["collisions"],
        json!([{"id": id,
                "kept": {"object": "liqo/a-first", "table": first},
                "refused": {"object": "liqo/b-second", "table": second}}]),
        "{body}"
    );
    let out = Command::new("ip")
        .args(["netns", "exec", ns.name(), ROUTECFG, "status"])
        .args(["--metrics-addr", &format!("127.0.0.1:{port}")])
        .output()
        .unwrap_or_else(|e| panic!("routecfg status: {e}"));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{out:?}");
    let line = format!(
        "table id collision: liqo/a-first {first:?} (kept) and liqo/b-second {second:?} \
         (not applied) both map to id {id}"
    );
    assert!(text.contains(&line), "routecfg status printed:\n{text}");

    // The owner goes: the other object gets the id, and the gauge falls.
    delete(&env, "liqo", "a-first");
    wait_for("b-second applied", Duration::from_secs(30), || {
        let o = object(&env, "liqo", "b-second").ok_or("gone")?;
        check_condition(&o, "collide-host", "True")?;
        let dsts: Vec<String> = ns.routes(id).iter().map(|r| r.dst.to_string()).collect();
        (dsts == ["10.86.2.0/24"])
            .then_some(())
            .ok_or(format!("table {id}: {dsts:?}"))
    });
    assert_eq!(agent.metric("routecfg_table_id_collisions"), Ok(0.0));
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
