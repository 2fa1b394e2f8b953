//! End-to-end: `routecfg run` / `routecfg once` against a real
//! kube-apiserver + etcd (see `common/kube.rs`) and real network
//! namespaces. Each test starts its own API server and covers one scenario.
//!
//! Needs root (network namespaces) and `.ci/setup-kube.sh` (the API
//! server binary); every test fails loudly when either is missing.

mod common;

use common::agent::*;
use common::kube::KubeEnv;
use common::netns::{Netns, RomeTopology, require_root, rome};
use routecfg::table_id::table_id;
use serde_json::{Value, json};
use std::fs;
use std::path::Path;
use std::time::Duration;

const GATEWAY_HOST: &str = "rome-gateway";
const WORKER_HOST: &str = "rome-worker";

/// What the Rome gateway agent (`--role gateway --remote-cluster-id milan
/// --node-name rome-worker`) selects among the seed's gateway objects:
/// everything but the other node's extcidr table.
const GATEWAY_SELECTED: [&str; 6] = [
    "liqo-tenant-milan/milan-gw-ext",
    "liqo/rome-control-plane-gw-node",
    "liqo/rome-control-plane-service-nodeport-routing",
    "liqo/rome-worker-extcidr",
    "liqo/rome-worker-gw-node",
    "liqo/rome-worker-service-nodeport-routing",
];
const GATEWAY_IGNORED: &str = "liqo/rome-control-plane-extcidr";
const NODE_OBJECT: &str = "liqo-tenant-milan/milan-node-gw";
/// The link the seed's node object routes through; the worker namespace
/// does not have it until the test creates it.
const NODE_OBJECT_LINK: &str = "liqo.qvqc52kfnb";

fn start_env(nodes: &[&Netns]) -> (KubeEnv, Vec<String>) {
    require_root();
    let mut env = KubeEnv::start();
    let mut ips = Vec::new();
    for (i, ns) in nodes.iter().enumerate() {
        let ip = env.node_ip(10 + i as u8);
        env.attach(ns.name(), &ip);
        ips.push(ip);
    }
    (env, ips)
}

fn agent_config<'a>(
    ns: &'a Netns,
    host: &'a str,
    env: &'a KubeEnv,
    select: &'a [&'a str],
    dir: &'a Path,
) -> AgentConfig<'a> {
    AgentConfig {
        netns: ns.name(),
        host,
        kubeconfig: env.kubeconfig(),
        select,
        dir,
        metrics_port: 9433,
    }
}

fn split(key: &str) -> (&str, &str) {
    key.split_once('/')
        .unwrap_or_else(|| panic!("{key}: not namespace/name"))
}

/// `Ok` when the object's spec, as the API holds it now, is exactly what
/// the namespace's kernel has for its table.
fn check_object_applied(env: &KubeEnv, ns: &Netns, key: &str) -> Result<(), String> {
    let (n, name) = split(key);
    let obj = object(env, n, name).ok_or_else(|| format!("{key} does not exist"))?;
    Expected::from_spec(&obj["spec"]).check(ns)
}

fn check_conditions(env: &KubeEnv, keys: &[&str], host: &str, want: &str) -> Result<(), String> {
    let all = objects(env);
    for key in keys {
        let obj = all
            .get(*key)
            .ok_or_else(|| format!("{key} does not exist"))?;
        check_condition(obj, host, want)?;
    }
    Ok(())
}

fn table_of(env: &KubeEnv, key: &str) -> u32 {
    let (n, name) = split(key);
    let obj = object(env, n, name).unwrap_or_else(|| panic!("{key} does not exist"));
    Expected::from_spec(&obj["spec"]).id
}

// ---------------------------------------------------------------------
// Scenario: the Rome gateway and a Rome node, with either CRD.
// ---------------------------------------------------------------------

#[test]
fn rome_gateway_and_node_follow_their_objects_with_upstream_crd() {
    rome_scenario(Crd::Upstream);
}

#[test]
fn rome_gateway_and_node_follow_their_objects_with_project_crd() {
    rome_scenario(Crd::Project);
}

fn rome_scenario(crd: Crd) {
    let topo = RomeTopology::build();
    let (env, _) = start_env(&[&topo.gateway, &topo.worker]);
    install_crd(&env, crd);
    create_namespaces(&env, &["liqo", "liqo-tenant-milan"]);
    let scratch = Scratch::new("rome");
    let gateway_select = [
        "--role",
        "gateway",
        "--remote-cluster-id",
        "milan",
        "--node-name",
        "rome-worker",
    ];
    let gw = Agent::start(&agent_config(
        &topo.gateway,
        GATEWAY_HOST,
        &env,
        &gateway_select,
        scratch.path(),
    ));
    let node = Agent::start(&agent_config(
        &topo.worker,
        WORKER_HOST,
        &env,
        &["--role", "fabric"],
        scratch.path(),
    ));
    // Both have listed (nothing yet) and watch: the objects arrive as
    // watch events.
    gw.wait_ready();
    node.wait_ready();

    let fixtures = common::shared_dir().join("fixtures/rome");
    for dir in ["gateway", "node"] {
        env.kubectl_ok(&["apply", "-f", &fixtures.join(dir).display().to_string()]);
    }

    // The gateway's kernel follows its six objects, and only those.
    let gateway_tables: Vec<u32> = GATEWAY_SELECTED.iter().map(|k| table_of(&env, k)).collect();
    wait_for("the gateway's tables", CONVERGE, || {
        gw.check_alive()?;
        for key in GATEWAY_SELECTED {
            check_object_applied(&env, &topo.gateway, key)?;
        }
        Ok(())
    });
    let ignored_table = table_of(&env, GATEWAY_IGNORED);
    check_absent(&topo.gateway, ignored_table)
        .unwrap_or_else(|e| panic!("{GATEWAY_IGNORED} is for rome-control-plane: {e}"));
    check_owned_only(&topo.gateway, &gateway_tables).unwrap_or_else(|e| panic!("{e}"));
    wait_for("Applied=True on the gateway's objects", CONVERGE, || {
        check_conditions(&env, &GATEWAY_SELECTED, GATEWAY_HOST, "True")
    });

    // Traffic: a Milan client reaches a pod on rome-worker through the
    // gateway, which only the installed tables make possible.
    let pod = rome::WORKER_PODS[0];
    wait_for("Milan to reach a rome-worker pod", CONVERGE, || {
        if topo.milan.ping(pod, 1) {
            Ok(())
        } else {
            Err(format!(
                "no echo reply from {pod}; gateway says {:?}",
                topo.route_from_milan(pod)
            ))
        }
    });
    assert_eq!(
        topo.route_from_milan(pod).map(|(t, _, _)| t),
        Some(table_id("rome-worker")),
        "Milan's traffic to {pod} should use table rome-worker"
    );

    // The node agent: its object routes through a link the worker does not
    // have yet, so it is not applied and says why.
    wait_for("Applied=False on the node object", CONVERGE, || {
        node.check_alive()?;
        check_conditions(&env, &[NODE_OBJECT], WORKER_HOST, "False")
    });
    wait_for(
        "an ApplyFailed event naming the missing link",
        CONVERGE,
        || {
            let (n, name) = split(NODE_OBJECT);
            let events = events_for(&env, n, name);
            events
                .iter()
                .find(|e| {
                    e["reason"] == "ApplyFailed"
                        && e["message"].as_str().is_some_and(|m| {
                            m.contains(NODE_OBJECT_LINK) && m.contains(WORKER_HOST)
                        })
                })
                .map(|_| ())
                .ok_or_else(|| format!("events: {events:#?}"))
        },
    );
    add_link(&topo.worker, NODE_OBJECT_LINK);
    topo.worker
        .ip_line(&format!("link set {NODE_OBJECT_LINK} up"));
    let node_table = table_of(&env, NODE_OBJECT);
    wait_for("the node's table once its link exists", CONVERGE, || {
        node.check_alive()?;
        check_object_applied(&env, &topo.worker, NODE_OBJECT)
    });
    wait_for("Applied=True on the node object", CONVERGE, || {
        check_conditions(&env, &[NODE_OBJECT], WORKER_HOST, "True")
    });
    check_owned_only(&topo.worker, &[node_table]).unwrap_or_else(|e| panic!("{e}"));

    // An object for another remote cluster: created first, so once a later
    // change is applied, the agent has certainly seen it (watch order).
    let paris = route_config(
        "liqo",
        "paris-gw-ext",
        &[(CATEGORY, "gateway"), (UNIQUE, "paris")],
        json!({"name": "paris", "rules": [
            {"dst": "10.210.0.0/16", "iif": rome::WORKER_LINK,
             "routes": [{"dst": "10.210.0.0/16", "gw": rome::MILAN_TUNNEL_IP.to_string()}]}
        ]}),
    );
    apply(&env, &paris);

    // Edit: a new pod on rome-worker gets a route (and becomes reachable).
    let new_pod = "10.200.1.20";
    topo.worker
        .ip_line(&format!("addr add {new_pod}/32 dev lo"));
    json_patch(
        &env,
        "liqo",
        "rome-worker-gw-node",
        json!([{"op": "add", "path": "/spec/table/rules/1/routes/-",
                "value": {"dst": format!("{new_pod}/32"), "gw": rome::WORKER_GENEVE_IP.to_string()}}]),
    );
    wait_for("the added pod route", CONVERGE, || {
        check_object_applied(&env, &topo.gateway, "liqo/rome-worker-gw-node")?;
        let routes = topo.gateway.routes(table_id("rome-worker"));
        if routes
            .iter()
            .any(|r| r.dst.to_string() == format!("{new_pod}/32"))
        {
            Ok(())
        } else {
            Err(format!("no route to {new_pod}: {routes:?}"))
        }
    });
    let new_pod_ip = new_pod.parse().expect("literal address");
    wait_for("Milan to reach the new pod", CONVERGE, || {
        if topo.milan.ping(new_pod_ip, 1) {
            Ok(())
        } else {
            Err(format!("no echo reply from {new_pod}"))
        }
    });

    // The paris object was seen before that edit, and ignored.
    check_absent(&topo.gateway, table_id("paris")).unwrap_or_else(|e| panic!("paris: {e}"));
    check_absent(&topo.worker, table_id("paris")).unwrap_or_else(|e| panic!("paris: {e}"));
    let paris_now = object(&env, "liqo", "paris-gw-ext").expect("paris object exists");
    assert!(
        conditions(&paris_now).is_empty(),
        "nobody selects paris-gw-ext, yet it has conditions: {:?}",
        conditions(&paris_now)
    );

    // Edit: a gateway changes (on the node object).
    json_patch(
        &env,
        "liqo-tenant-milan",
        "milan-node-gw",
        json!([{"op": "test", "path": "/spec/table/rules/1/routes/0/gw", "value": "10.80.0.3"},
               {"op": "replace", "path": "/spec/table/rules/1/routes/0/gw", "value": "10.80.0.4"}]),
    );
    wait_for("the changed gateway", CONVERGE, || {
        check_object_applied(&env, &topo.worker, NODE_OBJECT)?;
        let routes = topo.worker.routes(node_table);
        let changed = routes.iter().any(|r| {
            r.dst.to_string() == "10.61.0.0/16"
                && r.gateway.map(|g| g.to_string()) == Some("10.80.0.4".into())
        });
        if changed {
            Ok(())
        } else {
            Err(format!("10.61.0.0/16 not via 10.80.0.4: {routes:?}"))
        }
    });

    // Edit: a rule goes (its route stays: another rule lists it too).
    let milan = "liqo-tenant-milan/milan-gw-ext";
    json_patch(
        &env,
        "liqo-tenant-milan",
        "milan-gw-ext",
        json!([{"op": "test", "path": "/spec/table/rules/1/iif", "value": rome::CONTROL_PLANE_LINK},
               {"op": "remove", "path": "/spec/table/rules/1"}]),
    );
    wait_for("the removed rule", CONVERGE, || {
        check_object_applied(&env, &topo.gateway, milan)?;
        let rules = topo
            .gateway
            .rules()
            .into_iter()
            .filter(|r| r.table == table_id("milan"))
            .count();
        if rules == 3 {
            Ok(())
        } else {
            Err(format!("{rules} rules point at table milan"))
        }
    });

    // Deletion: the table goes, rules, routes and rt_tables line.
    let deleted = "liqo/rome-worker-service-nodeport-routing";
    let deleted_table = table_of(&env, deleted);
    assert!(
        rt_tables_has(&gw.rt_tables(), "rome-worker-service-nodeport-routing"),
        "rt_tables lacks the table before deletion:\n{}",
        gw.rt_tables()
    );
    delete(&env, "liqo", "rome-worker-service-nodeport-routing");
    wait_for("the deleted object's table to go", CONVERGE, || {
        check_absent(&topo.gateway, deleted_table)?;
        if rt_tables_has(&gw.rt_tables(), "rome-worker-service-nodeport-routing") {
            return Err(format!("rt_tables still names it:\n{}", gw.rt_tables()));
        }
        Ok(())
    });

    // Everything else is still in place, and says so.
    let remaining: Vec<&str> = GATEWAY_SELECTED
        .iter()
        .copied()
        .filter(|k| *k != deleted)
        .collect();
    for key in &remaining {
        check_object_applied(&env, &topo.gateway, key).unwrap_or_else(|e| panic!("{e}"));
        let name = split(key).1;
        let table = Expected::from_spec(&object(&env, split(key).0, name).expect("exists")["spec"]);
        assert!(
            rt_tables_has(&gw.rt_tables(), &table.name),
            "rt_tables lacks {}:\n{}",
            table.name,
            gw.rt_tables()
        );
    }
    let kept_tables: Vec<u32> = remaining.iter().map(|k| table_of(&env, k)).collect();
    check_owned_only(&topo.gateway, &kept_tables).unwrap_or_else(|e| panic!("{e}"));
    check_conditions(&env, &remaining, GATEWAY_HOST, "True").unwrap_or_else(|e| panic!("{e}"));
    check_conditions(&env, &[NODE_OBJECT], WORKER_HOST, "True").unwrap_or_else(|e| panic!("{e}"));
    // Each host writes only into the objects it selects.
    let all = objects(&env);
    for (key, obj) in &all {
        let hosts: Vec<String> = conditions(obj).into_iter().map(|c| c.host).collect();
        let want: Vec<&str> = if remaining.contains(&key.as_str()) {
            vec![GATEWAY_HOST]
        } else if key == NODE_OBJECT {
            vec![WORKER_HOST]
        } else {
            vec![]
        };
        assert_eq!(hosts, want, "{key}: condition hosts");
    }

    // The local status endpoint agrees.
    let status = gw.http_get("/status").unwrap_or_else(|e| panic!("{e}"));
    let status: Value = serde_json::from_str(&status.1)
        .unwrap_or_else(|e| panic!("/status is not JSON ({e}): {}", status.1));
    assert_eq!(status["host"], GATEWAY_HOST, "{status}");
    assert_eq!(status["ready"], true, "{status}");
    assert_eq!(
        status["tables"].as_array().map(Vec::len),
        Some(remaining.len()),
        "{status}"
    );

    // SIGTERM: the agents exit cleanly and the routes stay.
    let code = gw.stop();
    assert!(code.success(), "gateway agent exit status {code}");
    let code = node.stop();
    assert!(code.success(), "node agent exit status {code}");
    for key in &remaining {
        check_object_applied(&env, &topo.gateway, key)
            .unwrap_or_else(|e| panic!("after SIGTERM: {e}"));
    }
    check_object_applied(&env, &topo.worker, NODE_OBJECT)
        .unwrap_or_else(|e| panic!("after SIGTERM: {e}"));
}

// ---------------------------------------------------------------------
// Scenario: two hosts select the same objects.
// ---------------------------------------------------------------------

/// Waits until the objects' resourceVersions stay the same for `quiet`
/// (nobody writes them any more), then returns them.
fn wait_quiet(env: &KubeEnv, keys: &[&str], quiet: Duration) -> Vec<Value> {
    let mut last: Option<(Vec<String>, std::time::Instant)> = None;
    wait_for(
        "the objects to stop changing",
        Duration::from_secs(60),
        || {
            let all = objects(env);
            let now: Vec<Value> = keys
                .iter()
                .map(|k| all.get(*k).cloned().ok_or_else(|| format!("{k} missing")))
                .collect::<Result<_, _>>()?;
            let rvs: Vec<String> = now.iter().map(resource_version).collect();
            match &last {
                Some((prev, since)) if *prev == rvs => {
                    if since.elapsed() >= quiet {
                        return Ok(now);
                    }
                    Err(format!("quiet for {:?} so far", since.elapsed()))
                }
                _ => {
                    last = Some((rvs.clone(), std::time::Instant::now()));
                    Err(format!("resourceVersions changed to {rvs:?}"))
                }
            }
        },
    )
}

#[test]
fn two_hosts_share_objects_with_stable_conditions() {
    let a = dummy_node("hosta");
    let b = dummy_node("hostb");
    let (env, _) = start_env(&[&a, &b]);
    install_crd(&env, Crd::Upstream);
    create_namespaces(&env, &["liqo"]);
    let scratch = Scratch::new("two");
    let fabric = ["--role", "fabric"];
    let agent_a = Agent::start(&agent_config(&a, "host-a", &env, &fabric, scratch.path()));
    let agent_b = Agent::start(&agent_config(&b, "host-b", &env, &fabric, scratch.path()));

    let one = route_config(
        "liqo",
        "shared-one",
        &[(CATEGORY, "fabric")],
        json!({"name": "shared-one", "rules": [
            {"dst": "10.91.0.0/16", "routes": [{"dst": "10.91.0.0/16", "gw": "10.90.0.2"}]}
        ]}),
    );
    let two = route_config(
        "liqo",
        "shared-two",
        &[(CATEGORY, "fabric")],
        json!({"name": "shared-two", "rules": [
            {"iif": "dummy0", "routes": [{"dst": "10.92.1.0/24", "dev": "dummy0", "scope": "link"}]}
        ]}),
    );
    apply(&env, &one);
    apply(&env, &two);
    let keys = ["liqo/shared-one", "liqo/shared-two"];

    wait_for("both hosts' kernels", CONVERGE, || {
        agent_a.check_alive()?;
        agent_b.check_alive()?;
        for key in keys {
            check_object_applied(&env, &a, key)?;
            check_object_applied(&env, &b, key)?;
        }
        Ok(())
    });
    wait_for("both hosts' conditions", CONVERGE, || {
        check_conditions(&env, &keys, "host-a", "True")?;
        check_conditions(&env, &keys, "host-b", "True")
    });

    // Stable: once nobody writes any more, nothing changes for a while,
    // and each object holds exactly the two hosts' entries.
    let settled = wait_quiet(&env, &keys, Duration::from_secs(3));
    for obj in &settled {
        let mut hosts: Vec<String> = conditions(obj).into_iter().map(|c| c.host).collect();
        hosts.sort();
        assert_eq!(hosts, ["host-a", "host-b"], "{obj}");
    }
    std::thread::sleep(Duration::from_secs(5));
    let now = objects(&env);
    let later: Vec<Value> = keys.iter().map(|k| now[*k].clone()).collect();
    for (before, after) in settled.iter().zip(&later) {
        assert_eq!(
            resource_version(before),
            resource_version(after),
            "an object kept changing: before {before}\nafter {after}"
        );
        assert_eq!(conditions(before), conditions(after));
    }

    // A spec change: both kernels follow; the conditions stay True without
    // a transition (lastTransitionTime unchanged).
    let times: Vec<Vec<Condition>> = later.iter().map(conditions).collect();
    json_patch(
        &env,
        "liqo",
        "shared-one",
        json!([{"op": "add", "path": "/spec/table/rules/-",
                "value": {"dst": "10.98.0.0/16", "routes": [{"dst": "10.98.0.0/16", "gw": "10.90.0.3"}]}}]),
    );
    wait_for("both kernels to follow the edit", CONVERGE, || {
        check_object_applied(&env, &a, keys[0])?;
        check_object_applied(&env, &b, keys[0])
    });
    let settled = wait_quiet(&env, &keys, Duration::from_secs(3));
    for (obj, before) in settled.iter().zip(&times) {
        let mut now = conditions(obj);
        let mut before = before.clone();
        now.sort_by(|x, y| x.host.cmp(&y.host));
        before.sort_by(|x, y| x.host.cmp(&y.host));
        assert_eq!(now, before, "conditions flapped across a spec edit");
    }

    // A restarted agent finds everything applied: it writes nothing.
    let code = agent_a.stop();
    assert!(code.success(), "host-a exit status {code}");
    agent_a.restart();
    agent_a.wait_ready();
    let after_restart = wait_quiet(&env, &keys, Duration::from_secs(3));
    for (before, after) in settled.iter().zip(&after_restart) {
        assert_eq!(
            resource_version(before),
            resource_version(after),
            "a restarted agent rewrote an applied object: before {before}\nafter {after}"
        );
    }
    for key in keys {
        let (n, name) = split(key);
        let failures: Vec<Value> = events_for(&env, n, name)
            .into_iter()
            .filter(|e| e["reason"] == "ApplyFailed")
            .collect();
        assert!(failures.is_empty(), "{key}: {failures:#?}");
    }
}

// ---------------------------------------------------------------------
// Scenario: the kernel changes under the agent.
// ---------------------------------------------------------------------

#[test]
fn hand_made_kernel_changes_are_repaired_and_late_links_get_their_routes() {
    let ns = dummy_node("heal");
    let (env, _) = start_env(&[&ns]);
    install_crd(&env, Crd::Upstream);
    create_namespaces(&env, &["liqo"]);
    let scratch = Scratch::new("heal");
    let agent = Agent::start(&agent_config(
        &ns,
        "heal-host",
        &env,
        &["--role", "fabric"],
        scratch.path(),
    ));
    let heal = route_config(
        "liqo",
        "heal",
        &[(CATEGORY, "fabric")],
        json!({"name": "heal", "rules": [
            {"dst": "10.93.0.0/16", "routes": [{"dst": "10.93.0.0/16", "gw": "10.90.0.2"}]},
            {"iif": "dummy0", "routes": [{"dst": "10.94.0.0/24", "dev": "dummy0", "scope": "link"}]}
        ]}),
    );
    apply(&env, &heal);
    let id = table_id("heal");
    // Not ours: a table and a rule made by hand must survive everything.
    ns.ip_line("route add 10.99.0.0/24 dev dummy0 table 3000");
    ns.ip_line("rule add to 10.99.0.0/24 table 3000");
    wait_for("the heal table", CONVERGE, || {
        agent.check_alive()?;
        check_object_applied(&env, &ns, "liqo/heal")
    });
    wait_for("Applied=True", CONVERGE, || {
        check_conditions(&env, &["liqo/heal"], "heal-host", "True")
    });

    let repaired = |what: &str| {
        wait_for(what, CONVERGE, || {
            agent.check_alive()?;
            check_object_applied(&env, &ns, "liqo/heal")
        })
    };
    ns.ip_line(&format!("route del 10.93.0.0/16 table {id}"));
    repaired("the route deleted by hand to come back");
    ns.ip_line(&format!("rule del to 10.93.0.0/16 table {id}"));
    repaired("the rule deleted by hand to come back");
    ns.ip_line(&format!(
        "route replace 10.93.0.0/16 via 10.90.0.3 table {id}"
    ));
    repaired("the route changed by hand to be restored");
    ns.ip_line(&format!("route add 10.97.0.0/24 dev dummy0 table {id}"));
    repaired("a route added by hand to the managed table to go");
    let repairs = agent
        .metric("routecfg_drift_repairs_total")
        .unwrap_or_else(|e| panic!("{e}"));
    // One repair per hand-made change: two removals, a replacement and an
    // addition (each waited for before the next).
    assert!(repairs >= 4.0, "drift repairs counted: {repairs}");

    // A link that appears late: not applied until it exists. Two objects:
    // one with a gateway route over the link as well, one with nothing but
    // a device route.
    let late = route_config(
        "liqo",
        "late",
        &[(CATEGORY, "fabric")],
        json!({"name": "late", "rules": [
            {"dst": "10.95.0.0/16", "routes": [
                {"dst": "10.95.0.0/24", "dev": "late0", "scope": "link"},
                {"dst": "10.95.1.0/24", "gw": "10.95.0.1", "dev": "late0"}
            ]}
        ]}),
    );
    let late_dev = route_config(
        "liqo",
        "late-dev",
        &[(CATEGORY, "fabric")],
        json!({"name": "late-dev", "rules": [
            {"dst": "10.77.0.0/16", "routes": [
                {"dst": "10.77.0.0/16", "dev": "late0", "scope": "link"}
            ]}
        ]}),
    );
    apply(&env, &late);
    apply(&env, &late_dev);
    let late_keys = ["liqo/late", "liqo/late-dev"];
    let late_applied = |what: &str| {
        wait_for(what, CONVERGE, || {
            agent.check_alive()?;
            for key in late_keys {
                check_object_applied(&env, &ns, key)?;
            }
            check_conditions(&env, &late_keys, "heal-host", "True")
        })
    };
    wait_for("Applied=False while late0 is missing", CONVERGE, || {
        check_conditions(&env, &late_keys, "heal-host", "False")
    });
    for name in ["late", "late-dev"] {
        let routes = ns.routes(table_id(name));
        assert!(routes.is_empty(), "routes over a missing link: {routes:?}");
    }
    // Created first, brought up a moment later (as a tunnel is): the agent
    // sees the link while it is still down, then again when it comes up.
    add_link(&ns, "late0");
    std::thread::sleep(Duration::from_secs(2));
    ns.ip_line("link set late0 up");
    late_applied("late0's routes once it is up");

    // The link goes (its routes with it) and comes back.
    ns.ip_line("link del late0");
    wait_for("Applied=False after late0 is deleted", CONVERGE, || {
        check_conditions(&env, &late_keys, "heal-host", "False")
    });
    add_link(&ns, "late0");
    ns.ip_line("link set late0 up");
    late_applied("late0's routes after it is re-created");

    check_object_applied(&env, &ns, "liqo/heal").unwrap_or_else(|e| panic!("{e}"));
    let foreign = ns.routes(3000);
    assert_eq!(foreign.len(), 1, "table 3000 was touched: {foreign:?}");
    assert!(
        ns.rules().iter().any(|r| r.table == 3000),
        "the hand-made rule to table 3000 is gone"
    );
}

// ---------------------------------------------------------------------
// Scenario: the API server goes away.
// ---------------------------------------------------------------------

#[test]
fn api_outage_keeps_the_kernel_and_converges_after() {
    let ns = dummy_node("outage");
    let (mut env, ips) = start_env(&[&ns]);
    install_crd(&env, Crd::Upstream);
    create_namespaces(&env, &["liqo"]);
    let scratch = Scratch::new("outage");
    let agent = Agent::start(&agent_config(
        &ns,
        "outage-host",
        &env,
        &["--role", "fabric"],
        scratch.path(),
    ));
    let object_with = |name: &str, gw: &str, dst: &str| {
        route_config(
            "liqo",
            name,
            &[(CATEGORY, "fabric")],
            json!({"name": name, "rules": [
                {"dst": dst, "routes": [{"dst": dst, "gw": gw}]}
            ]}),
        )
    };
    apply(&env, &object_with("keep", "10.90.0.2", "10.81.0.0/16"));
    apply(&env, &object_with("change", "10.90.0.2", "10.82.0.0/16"));
    apply(&env, &object_with("gone", "10.90.0.2", "10.83.0.0/16"));
    let all = ["liqo/keep", "liqo/change", "liqo/gone"];
    let applied = |env: &KubeEnv, keys: &[&str]| -> Result<(), String> {
        agent.check_alive()?;
        for key in keys {
            check_object_applied(env, &ns, key)?;
        }
        Ok(())
    };
    wait_for("all three tables", CONVERGE, || applied(&env, &all));
    wait_for("Applied=True", CONVERGE, || {
        check_conditions(&env, &all, "outage-host", "True")
    });
    let specs: Vec<Expected> = all
        .iter()
        .map(|k| Expected::from_spec(&object(&env, "liqo", split(k).1).expect("exists")["spec"]))
        .collect();

    // 1. The API server stops; the agent notices and keeps the kernel.
    let from = agent.log_len();
    env.stop_apiserver();
    let line = agent.wait_log(from, "retrying in", CONVERGE);
    eprintln!("agent noticed the outage: {line}");
    for spec in &specs {
        spec.check(&ns)
            .unwrap_or_else(|e| panic!("during the outage: {e}"));
    }
    // A route deleted by hand during the outage is repaired from the last
    // known spec.
    ns.ip_line(&format!(
        "route del 10.81.0.0/16 table {}",
        table_id("keep")
    ));
    wait_for("the repair during the outage", CONVERGE, || {
        agent.check_alive()?;
        specs[0].check(&ns)
    });

    // 2. It comes back and objects change before the agent can reconnect:
    // the agent's link to the API is down meanwhile, so its reconnect
    // attempts (paced by its backoff) all fail until the changes are made.
    let link = api_link(&ns, &ips[0]);
    ns.ip_line(&format!("link set {link} down"));
    env.start_apiserver();
    json_patch(
        &env,
        "liqo",
        "change",
        json!([{"op": "replace", "path": "/spec/table/rules/0/routes/0/gw", "value": "10.90.0.3"},
               {"op": "add", "path": "/spec/table/rules/-",
                "value": {"dst": "10.84.0.0/16", "routes": [{"dst": "10.84.0.0/16", "gw": "10.90.0.4"}]}}]),
    );
    delete(&env, "liqo", "gone");
    ns.ip_line(&format!("link set {link} up"));
    wait_for("convergence after the outage", RECONNECT, || {
        applied(&env, &["liqo/keep", "liqo/change"])?;
        check_absent(&ns, table_id("gone"))
    });
    wait_for("Applied=True after the outage", CONVERGE, || {
        check_conditions(&env, &["liqo/keep", "liqo/change"], "outage-host", "True")
    });

    // 3. The agent is cut off from the API (its link is down) while
    // objects change and go, without the API server going away: its watch
    // connection stays open and must deliver the changes once the link is
    // back.
    ns.ip_line(&format!("link set {link} down"));
    json_patch(
        &env,
        "liqo",
        "keep",
        json!([{"op": "replace", "path": "/spec/table/rules/0/routes/0/gw", "value": "10.90.0.5"}]),
    );
    delete(&env, "liqo", "change");
    apply(&env, &object_with("fresh", "10.90.0.6", "10.85.0.0/16"));
    ns.ip_line(&format!("link set {link} up"));
    wait_for("convergence after the cut", RECONNECT, || {
        applied(&env, &["liqo/keep", "liqo/fresh"])?;
        check_absent(&ns, table_id("change"))
    });

    // 4. The agent itself is down while objects change and go: a restart
    // lists them again and removes what was deleted meanwhile.
    let code = agent.stop();
    assert!(code.success(), "agent exit status {code}");
    delete(&env, "liqo", "fresh");
    json_patch(
        &env,
        "liqo",
        "keep",
        json!([{"op": "replace", "path": "/spec/table/rules/0/routes/0/gw", "value": "10.90.0.7"}]),
    );
    agent.restart();
    wait_for("convergence after the agent's restart", CONVERGE, || {
        applied(&env, &["liqo/keep"])?;
        check_absent(&ns, table_id("fresh"))
    });
    check_owned_only(&ns, &[table_id("keep")]).unwrap_or_else(|e| panic!("{e}"));
    wait_for("Applied=True at the end", CONVERGE, || {
        check_conditions(&env, &["liqo/keep"], "outage-host", "True")
    });
}

// ---------------------------------------------------------------------
// Scenario: deploy/rbac.yaml and in-cluster configuration.
// ---------------------------------------------------------------------

#[test]
fn deploy_rbac_with_in_cluster_config_is_enough_and_needed() {
    let ns = dummy_node("rbac");
    let (env, _) = start_env(&[&ns]);
    install_crd(&env, Crd::Upstream);
    create_namespaces(&env, &["liqo"]);
    let rbac = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/rbac.yaml");
    assert!(rbac.is_file(), "{} is missing", rbac.display());
    env.kubectl_ok(&["apply", "-f", &rbac.display().to_string()]);

    let scratch = Scratch::new("rbac");
    let sa_dir = scratch.path().join("serviceaccount");
    fs::create_dir_all(&sa_dir).unwrap_or_else(|e| panic!("{e}"));
    let token = env.create_service_account_token("liqo", "routecfg");
    fs::write(sa_dir.join("token"), &token).unwrap_or_else(|e| panic!("{e}"));
    fs::copy(env.ca_path(), sa_dir.join("ca.crt")).unwrap_or_else(|e| panic!("{e}"));
    fs::write(sa_dir.join("namespace"), "liqo").unwrap_or_else(|e| panic!("{e}"));
    let home = scratch.path().join("home");
    fs::create_dir_all(&home).unwrap_or_else(|e| panic!("{e}"));
    let rt_tables = scratch.path().join("rt_tables").display().to_string();
    let api_ip = env.api_ip();
    let in_cluster = [
        ("KUBERNETES_SERVICE_HOST", api_ip.as_str()),
        ("KUBERNETES_SERVICE_PORT", "6443"),
        ("ROUTECFG_SA_DIR", sa_dir.to_str().expect("UTF-8 temp path")),
    ];
    let args = [
        "--role",
        "fabric",
        "--host-name",
        "rbac-host",
        "--rt-tables",
        &rt_tables,
    ];
    let once = || {
        let out = run_once(ns.name(), &args, &in_cluster, &home);
        let text = format!(
            "exit {}\n--- stdout\n{}--- stderr (tail)\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            tail(&String::from_utf8_lossy(&out.stderr), 25)
        );
        (out, text)
    };

    apply(
        &env,
        &route_config(
            "liqo",
            "rbac-ok",
            &[(CATEGORY, "fabric")],
            json!({"name": "rbac-ok", "rules": [
                {"dst": "10.86.0.0/16", "routes": [{"dst": "10.86.0.0/16", "gw": "10.90.0.2"}]}
            ]}),
        ),
    );
    let (out, text) = once();
    assert_eq!(
        out.status.code(),
        Some(0),
        "once as the ServiceAccount: {text}"
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("applied  liqo/rbac-ok"),
        "{text}"
    );
    assert!(
        !text.to_lowercase().contains("forbidden"),
        "something was forbidden: {text}"
    );
    check_object_applied(&env, &ns, "liqo/rbac-ok").unwrap_or_else(|e| panic!("{e}"));
    let obj = object(&env, "liqo", "rbac-ok").expect("exists");
    check_condition(&obj, "rbac-host", "True").unwrap_or_else(|e| panic!("{e}\n{text}"));

    // A failure makes an Event: the events grant suffices too.
    apply(
        &env,
        &route_config(
            "liqo",
            "rbac-pending",
            &[(CATEGORY, "fabric")],
            json!({"name": "rbac-pending", "rules": [
                {"dst": "10.87.0.0/16", "routes": [{"dst": "10.87.0.0/16", "dev": "missing0"}]}
            ]}),
        ),
    );
    let (out, text) = once();
    assert_eq!(out.status.code(), Some(1), "a pending object: {text}");
    assert!(
        !text.to_lowercase().contains("forbidden"),
        "something was forbidden: {text}"
    );
    let obj = object(&env, "liqo", "rbac-pending").expect("exists");
    check_condition(&obj, "rbac-host", "False").unwrap_or_else(|e| panic!("{e}\n{text}"));
    let events = events_for(&env, "liqo", "rbac-pending");
    assert!(
        events.iter().any(|e| e["reason"] == "ApplyFailed"
            && e["message"]
                .as_str()
                .is_some_and(|m| m.contains("missing0"))),
        "no ApplyFailed event written as the ServiceAccount: {events:#?}\n{text}"
    );

    // Without the binding the API refuses, and `once` says so.
    env.kubectl_ok(&["delete", "clusterrolebinding", "routecfg"]);
    let (out, text) = wait_for("the API to refuse the ServiceAccount", CONVERGE, || {
        let (out, text) = once();
        if out.status.success() {
            Err(format!("still allowed: {text}"))
        } else {
            Ok((out, text))
        }
    });
    eprintln!("once without the binding: {text}");
    assert_eq!(out.status.code(), Some(2), "{text}");
    let stderr = String::from_utf8_lossy(&out.stderr).to_lowercase();
    assert!(
        stderr.contains("403")
            && stderr.contains("forbidden")
            && stderr.contains("routeconfigurations"),
        "the error should say 403 Forbidden on routeconfigurations: {text}"
    );
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

// ---------------------------------------------------------------------
// Scenario: `routecfg once` exit status, conditions and Events.
// ---------------------------------------------------------------------

#[test]
fn once_reports_invalid_objects_by_exit_status_condition_and_event() {
    let ns = dummy_node("once");
    let (env, _) = start_env(&[&ns]);
    install_crd(&env, Crd::Upstream);
    create_namespaces(&env, &["liqo"]);
    let scratch = Scratch::new("once");
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
        "once-host",
        "--rt-tables",
        &rt_tables,
    ];
    let once = || {
        let out = run_once(ns.name(), &args, &[], &home);
        let text = format!(
            "exit {}\n--- stdout\n{}--- stderr (tail)\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            tail(&String::from_utf8_lossy(&out.stderr), 25)
        );
        (out, text)
    };
    let fabric = [(CATEGORY, "fabric")];
    apply(
        &env,
        &route_config(
            "liqo",
            "valid-a",
            &fabric,
            json!({"name": "valid-a", "rules": [
                {"dst": "10.88.0.0/16", "routes": [{"dst": "10.88.0.0/16", "gw": "10.90.0.2"}]}
            ]}),
        ),
    );
    apply(
        &env,
        &route_config(
            "liqo",
            "valid-b",
            &fabric,
            json!({"name": "valid-b", "rules": [
                {"iif": "dummy0", "routes": [{"dst": "10.89.0.0/24", "dev": "dummy0", "scope": "link"}]}
            ]}),
        ),
    );
    let valid = ["liqo/valid-a", "liqo/valid-b"];
    let (out, text) = once();
    assert_eq!(out.status.code(), Some(0), "{text}");
    for key in valid {
        check_object_applied(&env, &ns, key).unwrap_or_else(|e| panic!("{e}\n{text}"));
    }
    check_conditions(&env, &valid, "once-host", "True").unwrap_or_else(|e| panic!("{e}"));

    // The upstream CRD refuses a gateway that is not an IPv4 address
    // itself, so that kind of mistake never reaches the agent.
    let bad_gw = route_config(
        "liqo",
        "bad-gw",
        &fabric,
        json!({"name": "bad-gw", "rules": [
            {"dst": "10.80.9.0/24", "routes": [{"dst": "10.80.9.0/24", "gw": "10.80.0"}]}
        ]}),
    );
    let refused = kubectl_try_stdin(&env, &["apply", "-f", "-"], &bad_gw.to_string());
    assert!(
        !refused.status.success() && String::from_utf8_lossy(&refused.stderr).contains("gw"),
        "the API server accepted gw 10.80.0: {}",
        String::from_utf8_lossy(&refused.stderr)
    );

    // An object the CRD accepts but the agent must refuse: two rules with
    // the same selector.
    let dup = route_config(
        "liqo",
        "dup-selector",
        &fabric,
        json!({"name": "dup-selector", "rules": [
            {"dst": "10.79.0.0/16", "routes": [{"dst": "10.79.1.0/24", "gw": "10.90.0.2"}]},
            {"dst": "10.79.0.0/16", "routes": [{"dst": "10.79.2.0/24", "gw": "10.90.0.2"}]}
        ]}),
    );
    apply(&env, &dup);
    let (out, text) = once();
    assert_eq!(out.status.code(), Some(1), "{text}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.lines().any(|l| l.starts_with("failed")
            && l.contains("liqo/dup-selector")
            && l.contains("rules[1]")),
        "once should name the invalid object and field: {text}"
    );
    for key in valid {
        assert!(
            stdout.contains(&format!("applied  {key}")),
            "{key} not reported applied: {text}"
        );
        check_object_applied(&env, &ns, key).unwrap_or_else(|e| panic!("{e}\n{text}"));
    }
    check_absent(&ns, table_id("dup-selector")).unwrap_or_else(|e| panic!("{e}"));
    check_conditions(&env, &valid, "once-host", "True").unwrap_or_else(|e| panic!("{e}"));
    check_conditions(&env, &["liqo/dup-selector"], "once-host", "False")
        .unwrap_or_else(|e| panic!("{e}"));
    let events = events_for(&env, "liqo", "dup-selector");
    let failed: Vec<&Value> = events
        .iter()
        .filter(|e| e["reason"] == "ApplyFailed" && e["type"] == "Warning")
        .collect();
    assert!(
        failed.iter().any(|e| e["message"]
            .as_str()
            .is_some_and(|m| m.contains("once-host") && m.contains("rules[1]"))),
        "no ApplyFailed event for dup-selector: {events:#?}"
    );
    for key in valid {
        let failures: Vec<Value> = events_for(&env, "liqo", split(key).1)
            .into_iter()
            .filter(|e| e["reason"] == "ApplyFailed")
            .collect();
        assert!(failures.is_empty(), "{key}: {failures:#?}");
    }

    // Fixed (deleted): all good again.
    delete(&env, "liqo", "dup-selector");
    let (out, text) = once();
    assert_eq!(out.status.code(), Some(0), "{text}");
    check_owned_only(&ns, &[table_id("valid-a"), table_id("valid-b")])
        .unwrap_or_else(|e| panic!("{e}"));
}
