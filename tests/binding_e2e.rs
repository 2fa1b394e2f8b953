//! End-to-end: binding mode (today's Liqo) against a real kube-apiserver
//! 1.20 and real network namespaces: bindings created as upstream names and
//! owns them, status on success and failure, a binding deleted by hand
//! recreated without a lost ping, deselection and deletion cleaned up
//! without a controller-manager, the legacy finalizer stripped, `auto`
//! switching when the CRD appears.
//! Needs root and `.ci/setup-kube.sh`; fails loudly otherwise.

mod common;

use common::agent::*;
use common::kube::KubeEnv;
use common::netns::{Netns, require_root, veth};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::Path;
use std::time::Duration;

const BINDINGS: &str = "routeconfigurationbindings.networking.liqo.io";
const NODE: &str = "bnode-1";

#[derive(Clone, Copy, Debug)]
enum BindingCrd {
    /// Liqo's, minus the `default: ""` kube-apiserver 1.20 refuses.
    Upstream,
    Project,
}

fn install_binding_crd(env: &KubeEnv, which: BindingCrd) {
    let text = match which {
        BindingCrd::Upstream => {
            let p = common::shared_dir()
                .join("upstream/routeconfigurationbindings.networking.liqo.io.yaml");
            std::fs::read_to_string(&p)
                .unwrap_or_else(|e| panic!("reading {}: {e}", p.display()))
                .lines()
                .filter(|l| l.trim() != "default: \"\"")
                .map(|l| format!("{l}\n"))
                .collect::<String>()
        }
        BindingCrd::Project => {
            let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("static/crd-bindings.yaml");
            std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("reading {}: {e}", p.display()))
        }
    };
    env.kubectl_stdin(&["apply", "-f", "-"], &text);
    env.kubectl_ok(&[
        "wait",
        "--for=condition=Established",
        "--timeout=60s",
        &format!("crd/{BINDINGS}"),
    ]);
    wait_for("the API to serve bindings", CONVERGE, || {
        let out = env.kubectl(&["get", BINDINGS, "-A", "-o", "name"]);
        if out.status.success() {
            Ok(())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    });
}

/// Every binding by `namespace/name`.
fn bindings(env: &KubeEnv) -> BTreeMap<String, Value> {
    let list = kubectl_json(env, &["get", BINDINGS, "-A", "-o", "json"]);
    list["items"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|b| {
            let key = format!(
                "{}/{}",
                b["metadata"]["namespace"].as_str().unwrap_or_default(),
                b["metadata"]["name"].as_str().unwrap_or_default()
            );
            (key, b.clone())
        })
        .collect()
}

fn applied(b: &Value) -> Option<&Value> {
    b["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == "Applied")
}

/// A node namespace with `eth1` towards a peer at 10.70.0.2, and the
/// peer's way back; only table `fab-ok` (installed by the agent) routes
/// 10.70.0.0/16 to eth1.
fn node_and_peer() -> (Netns, Netns) {
    let node = Netns::new("bnode");
    let peer = Netns::new("bpeer");
    veth(&node, "eth1", &peer, "p1");
    node.ip(&["addr", "add", "10.69.0.1/32", "dev", "eth1"]);
    peer.ip(&["addr", "add", "10.70.0.2/16", "dev", "p1"]);
    peer.ip(&["route", "add", "10.69.0.1/32", "dev", "p1"]);
    (node, peer)
}

fn ok_object(labels: &[(&str, &str)]) -> Value {
    route_config(
        "liqo",
        "fab-ok",
        labels,
        json!({"name": "fab-ok", "rules": [{"dst": "10.70.0.0/16",
               "routes": [{"dst": "10.70.0.0/16", "dev": "eth1", "scope": "link"}]}]}),
    )
}

fn fabric_scenario(crd: Crd, binding_crd: BindingCrd) {
    require_root();
    let (node, _peer) = node_and_peer();
    let mut env = KubeEnv::start();
    let ip = env.node_ip(10);
    env.attach(node.name(), &ip);
    install_crd(&env, crd);
    install_binding_crd(&env, binding_crd);
    create_namespaces(&env, &["liqo", "liqo-tenant-milan"]);
    let scratch = Scratch::new("bindings");
    let fabric = [(CATEGORY, "fabric")];
    apply(&env, &ok_object(&fabric));
    // The seed's node object routes through a link this node lacks.
    let failing = common::shared_dir().join("fixtures/rome/node/milan-node-gw.yaml");
    env.kubectl_ok(&["apply", "-f", &failing.display().to_string()]);

    let agent = Agent::start(&AgentConfig {
        netns: node.name(),
        host: NODE,
        kubeconfig: env.kubeconfig(),
        select: &["--role", "fabric", "--node-name", NODE],
        dir: scratch.path(),
        metrics_port: 9434,
    });
    agent.wait_ready();

    // Created as upstream names, owns and finalizes them.
    let rc = object(&env, "liqo", "fab-ok").unwrap();
    let b = wait_for("binding liqo/fab-ok-bnode-1 applied", CONVERGE, || {
        agent.check_alive()?;
        let all = bindings(&env);
        let b = all
            .get("liqo/fab-ok-bnode-1")
            .ok_or_else(|| format!("no binding yet: {:?}", all.keys()))?;
        match applied(b) {
            Some(c) if c["status"] == "True" => Ok(b.clone()),
            other => Err(format!("Applied: {other:?}")),
        }
    });
    assert_eq!(
        b["metadata"]["ownerReferences"],
        json!([{"apiVersion": "networking.liqo.io/v1beta1", "kind": "RouteConfiguration",
                "name": "fab-ok", "uid": rc["metadata"]["uid"], "controller": true,
                "blockOwnerDeletion": true}])
    );
    assert_eq!(
        b["metadata"]["finalizers"],
        json!(["routeconfigurationbinding-controller.liqo.io/finalizer"])
    );
    assert_eq!(
        b["spec"],
        json!({"routeConfigurationRef": {"name": "fab-ok"},
               "targetRef": {"apiVersion": "v1", "kind": "Node", "name": NODE}})
    );
    let c = applied(&b).unwrap();
    assert_eq!(c["reason"], "ApplySucceeded");
    assert_eq!(c["observedGeneration"], b["metadata"]["generation"]);
    assert_eq!(b["status"]["tableName"], "fab-ok");
    assert!(
        node.ping(Ipv4Addr::new(10, 70, 0, 2), 3),
        "10.70.0.2 through table fab-ok"
    );

    let bad = wait_for("the failing object's binding says why", CONVERGE, || {
        let all = bindings(&env);
        let b = all
            .get("liqo-tenant-milan/milan-node-gw-bnode-1")
            .ok_or("no binding yet")?;
        match applied(b) {
            Some(c) if c["status"] == "False" => Ok(c.clone()),
            other => Err(format!("Applied: {other:?}")),
        }
    });
    assert_eq!(bad["reason"], "ApplyFailed");
    assert!(
        bad["message"]
            .as_str()
            .unwrap_or("")
            .contains("liqo.qvqc52kfnb"),
        "{bad}"
    );
    // Never the seed's conditions in binding mode.
    for (ns, name) in [("liqo", "fab-ok"), ("liqo-tenant-milan", "milan-node-gw")] {
        let o = object(&env, ns, name).unwrap();
        assert!(
            conditions(&o).is_empty(),
            "{ns}/{name} got conditions: {:?}",
            o["status"]
        );
    }

    // A binding deleted by hand: recreated, and not one ping lost meanwhile.
    let old_uid = b["metadata"]["uid"].clone();
    let pinger = std::thread::scope(|s| {
        let h = s.spawn(|| {
            let mut lost = 0;
            for _ in 0..150 {
                if !node.ping(Ipv4Addr::new(10, 70, 0, 2), 1) {
                    lost += 1;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            lost
        });
        env.kubectl_ok(&[
            "delete",
            BINDINGS,
            "-n",
            "liqo",
            "fab-ok-bnode-1",
            "--wait=false",
        ]);
        wait_for("the binding to be recreated", CONVERGE, || {
            let all = bindings(&env);
            let b = all
                .get("liqo/fab-ok-bnode-1")
                .ok_or("gone, not yet recreated")?;
            if b["metadata"]["uid"] == old_uid {
                return Err("still the old one".into());
            }
            applied(b)
                .filter(|c| c["status"] == "True")
                .map(|_| ())
                .ok_or_else(|| "not reported yet".to_string())
        });
        h.join().unwrap()
    });
    assert_eq!(pinger, 0, "pings lost while the binding was recreated");

    // Legacy finalizer stripped from a live object.
    json_patch(
        &env,
        "liqo",
        "fab-ok",
        json!([{"op": "add", "path": "/metadata/finalizers",
        "value": ["routeconfiguration-controller.liqo.io/finalizer"]}]),
    );
    wait_for("the legacy finalizer stripped", CONVERGE, || {
        let o = object(&env, "liqo", "fab-ok").unwrap();
        if o["metadata"]["finalizers"]
            .as_array()
            .is_none_or(|a| a.is_empty())
        {
            Ok(())
        } else {
            Err(format!("{}", o["metadata"]["finalizers"]))
        }
    });

    // Deselected: table removed, binding deleted by the agent.
    json_patch(
        &env,
        "liqo",
        "fab-ok",
        json!([{"op": "replace",
        "path": "/metadata/labels/networking.liqo.io~1route-category", "value": "other"}]),
    );
    wait_for("deselection cleaned up", CONVERGE, || {
        if bindings(&env).contains_key("liqo/fab-ok-bnode-1") {
            return Err("binding still there".into());
        }
        check_absent(&node, routecfg::table_id::table_id("fab-ok"))
    });

    // Deleted object, no controller-manager: binding gone too.
    delete(&env, "liqo-tenant-milan", "milan-node-gw");
    wait_for("the deleted object's binding gone", CONVERGE, || {
        if bindings(&env).is_empty() {
            Ok(())
        } else {
            Err(format!("{:?}", bindings(&env).keys()))
        }
    });
    agent.check_alive().unwrap();
}

#[test]
fn fabric_binding_mode_with_upstream_crds() {
    fabric_scenario(Crd::Upstream, BindingCrd::Upstream);
}

#[test]
fn fabric_binding_mode_with_project_crds() {
    fabric_scenario(Crd::Project, BindingCrd::Project);
}

/// `--bindings auto` on a cluster of the seed's generation writes
/// conditions; installing the binding CRD switches the running agent.
#[test]
fn auto_switches_to_bindings_when_the_crd_appears() {
    require_root();
    let (node, _peer) = node_and_peer();
    let mut env = KubeEnv::start();
    let ip = env.node_ip(10);
    env.attach(node.name(), &ip);
    install_crd(&env, Crd::Project);
    create_namespaces(&env, &["liqo"]);
    apply(&env, &ok_object(&[(CATEGORY, "fabric")]));
    let scratch = Scratch::new("bindings-auto");
    let agent = Agent::start(&AgentConfig {
        netns: node.name(),
        host: NODE,
        kubeconfig: env.kubeconfig(),
        select: &["--role", "fabric", "--node-name", NODE, "--resync", "2"],
        dir: scratch.path(),
        metrics_port: 9435,
    });
    agent.wait_ready();
    wait_for(
        "the seed's condition (no binding CRD yet)",
        CONVERGE,
        || {
            agent.check_alive()?;
            check_condition(&object(&env, "liqo", "fab-ok").unwrap(), NODE, "True").map(|_| ())
        },
    );
    let (_, status) = agent.http_get("/status").unwrap();
    assert!(status.contains("\"mode\":\"conditions\""), "{status}");

    install_binding_crd(&env, BindingCrd::Project);
    wait_for("a binding once the CRD is served", CONVERGE, || {
        agent.check_alive()?;
        let all = bindings(&env);
        let b = all.get("liqo/fab-ok-bnode-1").ok_or("no binding yet")?;
        applied(b)
            .filter(|c| c["status"] == "True")
            .map(|_| ())
            .ok_or_else(|| format!("not reported yet: {}", b["status"]))
    });
    let (_, status) = agent.http_get("/status").unwrap();
    assert!(
        status.contains("\"mode\":\"bindings\"") && status.contains("\"target\":\"Node bnode-1\""),
        "{status}"
    );
    assert_eq!(agent.metric("routecfg_binding_mode").unwrap(), 1.0);
}

/// Two gateway agents on one Lease: exactly one applies; killing it
/// (SIGKILL: no release) hands over within the lease time, and the new
/// leader's kernel converges. Prints the handover time.
#[test]
fn two_gateways_on_one_lease_exactly_one_applies_and_hands_over() {
    require_root();
    let (gw_a, _peer_a) = node_and_peer();
    let (gw_b, _peer_b) = node_and_peer();
    let mut env = KubeEnv::start();
    let (ip_a, ip_b) = (env.node_ip(10), env.node_ip(11));
    env.attach(gw_a.name(), &ip_a);
    env.attach(gw_b.name(), &ip_b);
    install_crd(&env, Crd::Project);
    create_namespaces(&env, &["liqo"]);
    apply(&env, &ok_object(&[("app", "ha")]));
    let id = routecfg::table_id::table_id("fab-ok");
    let scratch = Scratch::new("bindings-ha");
    let select = [
        "-l",
        "app=ha",
        "--bindings",
        "off",
        "--leader-elect",
        "--leader-lease",
        "liqo/gw-ha",
    ];
    let start = |ns: &Netns, host: &str, port: u16| {
        Agent::start_with_env(
            &AgentConfig {
                netns: ns.name(),
                host,
                kubeconfig: env.kubeconfig(),
                select: &select,
                dir: scratch.path(),
                metrics_port: port,
            },
            &[("POD_NAME", host)],
        )
    };
    let a = start(&gw_a, "gw-a", 9436);
    a.wait_ready();
    wait_for("gw-a to lead and apply", CONVERGE, || {
        a.check_alive()?;
        if a.metric("routecfg_leader")? != 1.0 {
            return Err("not leading yet".into());
        }
        check_present(&gw_a, id)
    });
    let b = start(&gw_b, "gw-b", 9436);
    b.wait_ready();
    // A standby is ready, never applies, and says who leads.
    std::thread::sleep(Duration::from_secs(5));
    assert_eq!(b.metric("routecfg_leader").unwrap(), 0.0);
    check_absent(&gw_b, id).unwrap_or_else(|e| panic!("standby applied: {e}"));
    check_present(&gw_a, id).unwrap();
    let (_, status) = b.http_get("/status").unwrap();
    assert!(
        status.contains("\"holder\":\"gw-a\"") && status.contains("\"leading\":false"),
        "{status}"
    );
    let lease = kubectl_json(&env, &["get", "lease", "-n", "liqo", "gw-ha", "-o", "json"]);
    assert_eq!(lease["spec"]["holderIdentity"], "gw-a");
    assert_eq!(lease["spec"]["leaseDurationSeconds"], 15);

    // SIGKILL the leader: no release, so b waits for the lease to expire.
    let killed = std::time::Instant::now();
    // SAFETY: kill(2) on our own running child.
    unsafe {
        libc::kill(a.pid() as i32, libc::SIGKILL);
    }
    // Reap it (already dead: the SIGTERM this sends changes nothing).
    a.stop();
    wait_for(
        "gw-b to take over and apply",
        Duration::from_secs(30),
        || {
            b.check_alive()?;
            if b.metric("routecfg_leader")? != 1.0 {
                return Err("not leading yet".into());
            }
            check_present(&gw_b, id)
        },
    );
    let handover = killed.elapsed();
    println!(
        "lease handover after SIGKILL of the leader: {:.1} s (lease 15 s, retry 2 s)",
        handover.as_secs_f64()
    );
    assert!(node_reaches(&gw_b), "the new leader routes 10.70.0.0/16");

    // gw-a comes back as standby; SIGTERM of the leader releases the
    // lease, so the handover takes one retry period, not a lease time.
    a.restart();
    a.wait_ready();
    wait_for("gw-a standing by", CONVERGE, || {
        let (_, status) = a.http_get("/status")?;
        if status.contains("\"holder\":\"gw-b\"") {
            Ok(())
        } else {
            Err(status)
        }
    });
    assert_eq!(a.metric("routecfg_leader").unwrap(), 0.0);
    let stopped = std::time::Instant::now();
    b.stop();
    wait_for(
        "gw-a to take over after the release",
        Duration::from_secs(30),
        || {
            a.check_alive()?;
            if a.metric("routecfg_leader")? != 1.0 {
                return Err("not leading yet".into());
            }
            check_present(&gw_a, id)
        },
    );
    println!(
        "lease handover after SIGTERM of the leader (released): {:.1} s (retry 2 s)",
        stopped.elapsed().as_secs_f64()
    );
    // Routes stay in place on the stopped agent's node: never removed on stop.
    check_present(&gw_b, id).unwrap_or_else(|e| panic!("stopping removed routes: {e}"));
}

fn check_present(ns: &Netns, table: u32) -> Result<(), String> {
    if ns.routes(table).is_empty() {
        Err(format!("table {table} empty in {}", ns.name()))
    } else {
        Ok(())
    }
}

fn node_reaches(ns: &Netns) -> bool {
    ns.ping(Ipv4Addr::new(10, 70, 0, 2), 3)
}

/// `routecfg once` in binding mode: creates the binding and reports on it
/// in one pass; RouteConfiguration.status stays untouched.
#[test]
fn once_creates_and_reports_bindings() {
    require_root();
    let (node, _peer) = node_and_peer();
    let mut env = KubeEnv::start();
    let ip = env.node_ip(10);
    env.attach(node.name(), &ip);
    install_crd(&env, Crd::Upstream);
    install_binding_crd(&env, BindingCrd::Upstream);
    create_namespaces(&env, &["liqo"]);
    apply(&env, &ok_object(&[(CATEGORY, "fabric")]));
    let scratch = Scratch::new("bindings-once");
    let kubeconfig = env.kubeconfig().display().to_string();
    let out = run_once(
        node.name(),
        &[
            "--kubeconfig",
            &kubeconfig,
            "--role",
            "fabric",
            "--node-name",
            NODE,
            "--rt-tables",
            "none",
        ],
        &[],
        scratch.path(),
    );
    assert!(
        out.status.success(),
        "once: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let all = bindings(&env);
    let b = all
        .get("liqo/fab-ok-bnode-1")
        .unwrap_or_else(|| panic!("no binding: {:?}", all.keys()));
    let c = applied(b).unwrap_or_else(|| panic!("no Applied condition: {b}"));
    assert_eq!(
        (c["status"].as_str(), c["reason"].as_str()),
        (Some("True"), Some("ApplySucceeded"))
    );
    assert_eq!(b["status"]["tableName"], "fab-ok");
    assert!(conditions(&object(&env, "liqo", "fab-ok").unwrap()).is_empty());
    assert!(node.ping(Ipv4Addr::new(10, 70, 0, 2), 3));
}

/// The gateway role binds to its Pod: `--host-name` (the pod's name) in
/// `$POD_NAMESPACE`.
#[test]
fn gateway_binds_to_its_pod() {
    require_root();
    let (gw, _peer) = node_and_peer();
    let mut env = KubeEnv::start();
    let ip = env.node_ip(10);
    env.attach(gw.name(), &ip);
    install_crd(&env, Crd::Upstream);
    install_binding_crd(&env, BindingCrd::Upstream);
    create_namespaces(&env, &["liqo-tenant-milan"]);
    let mut rc = ok_object(&[(CATEGORY, "gateway"), (UNIQUE, "milan")]);
    rc["metadata"]["namespace"] = json!("liqo-tenant-milan");
    rc["metadata"]["name"] = json!("gw-ext");
    apply(&env, &rc);
    let scratch = Scratch::new("bindings-gw");
    let agent = Agent::start_with_env(
        &AgentConfig {
            netns: gw.name(),
            host: "gw-milan-0",
            kubeconfig: env.kubeconfig(),
            select: &[
                "--role",
                "gateway",
                "--remote-cluster-id",
                "milan",
                "--node-name",
                "rome-worker",
            ],
            dir: scratch.path(),
            metrics_port: 9437,
        },
        &[("POD_NAMESPACE", "liqo-tenant-milan")],
    );
    agent.wait_ready();
    let b = wait_for("the gateway's binding applied", CONVERGE, || {
        agent.check_alive()?;
        let all = bindings(&env);
        let b = all
            .get("liqo-tenant-milan/gw-ext-gw-milan-0")
            .ok_or_else(|| format!("no binding yet: {:?}", all.keys()))?;
        applied(b)
            .filter(|c| c["status"] == "True")
            .map(|_| b.clone())
            .ok_or_else(|| format!("not reported yet: {}", b["status"]))
    });
    assert_eq!(
        b["spec"]["targetRef"],
        json!({"apiVersion": "v1", "kind": "Pod", "name": "gw-milan-0", "namespace": "liqo-tenant-milan"})
    );
    let (_, status) = agent.http_get("/status").unwrap();
    assert!(
        status.contains("\"target\":\"Pod liqo-tenant-milan/gw-milan-0\""),
        "{status}"
    );
}

/// `--leader-elect-follow`: a sidecar follows the Lease another container
/// of its pod holds (`<pod>_<uuid>`), applies while it does, stops when
/// someone else holds it, and never writes the Lease.
#[test]
fn follower_applies_while_its_pod_holds_the_lease() {
    require_root();
    let (gw, _peer) = node_and_peer();
    let mut env = KubeEnv::start();
    let ip = env.node_ip(10);
    env.attach(gw.name(), &ip);
    install_crd(&env, Crd::Project);
    create_namespaces(&env, &["liqo"]);
    apply(&env, &ok_object(&[("app", "ha")]));
    let lease = |holder: &str| {
        json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
               "metadata": {"name": "gw-f", "namespace": "liqo"},
               "spec": {"holderIdentity": holder, "leaseDurationSeconds": 15,
                        "renewTime": "2026-12-01T00:00:00.000000Z"}})
    };
    apply(&env, &lease("gw-f-0_0b4c2f"));
    let id = routecfg::table_id::table_id("fab-ok");
    let scratch = Scratch::new("bindings-follow");
    let agent = Agent::start_with_env(
        &AgentConfig {
            netns: gw.name(),
            host: "gw-f-0",
            kubeconfig: env.kubeconfig(),
            select: &[
                "-l",
                "app=ha",
                "--bindings",
                "off",
                "--leader-elect-follow",
                "--leader-lease",
                "liqo/gw-f",
            ],
            dir: scratch.path(),
            metrics_port: 9438,
        },
        &[("POD_NAME", "gw-f-0")],
    );
    agent.wait_ready();
    wait_for(
        "the follower to apply while its pod holds the lease",
        CONVERGE,
        || {
            agent.check_alive()?;
            if agent.metric("routecfg_leader")? != 1.0 {
                return Err("not leading".into());
            }
            check_present(&gw, id)
        },
    );
    let rv = |env: &KubeEnv| {
        kubectl_json(env, &["get", "lease", "-n", "liqo", "gw-f", "-o", "json"])["metadata"]
            ["resourceVersion"]
            .clone()
    };
    let before = rv(&env);
    apply(&env, &lease("gw-f-1_77aa01"));
    let after_patch = rv(&env);
    assert_ne!(before, after_patch);
    wait_for("the follower to stand by", CONVERGE, || {
        agent.check_alive()?;
        if agent.metric("routecfg_leader")? == 0.0 {
            Ok(())
        } else {
            Err("still leading".into())
        }
    });
    std::thread::sleep(Duration::from_secs(5));
    assert_eq!(
        rv(&env),
        after_patch,
        "a follower must never write the Lease"
    );
    check_present(&gw, id).unwrap_or_else(|e| panic!("standing by removed routes: {e}"));
}
