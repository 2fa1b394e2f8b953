//! `routecfg explain` on the seed's Rome gateway (network namespaces,
//! driven through the binary): for each flow of the demo, the fwmark
//! NodePort case, IPv6, a flow decided by `main`, one by `local`, one
//! hitting a foreign table and one with no route, the answer names the
//! object, the rule and route indices and the targetRefs.
//!
//! Needs root; fails loudly without it.

mod common;

use common::netns::{RomeTopology, describe, rome::*};
use serde_json::Value;
use std::path::PathBuf;
use std::process::Output;
use std::sync::atomic::{AtomicUsize, Ordering};

fn bin() -> String {
    std::env::var("ROUTECFG_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_routecfg").to_string())
}

/// An IPv6 table the seed lacks: locally sent traffic to fd99::/64 goes
/// out of the tunnel.
const V6_OBJECT: &str = r#"
apiVersion: networking.liqo.io/v1beta1
kind: RouteConfiguration
metadata: {name: v6-test, namespace: explain}
spec:
  table:
    name: v6-test
    targetRef: {kind: Node, name: rome-gateway}
    rules:
    - dst: fd99::/64
      routes:
      - dst: fd99::/64
        gw: fd00:18::1
        dev: liqo-tunnel
        targetRef: {kind: Pod, namespace: explain, name: six}
"#;

struct Bed {
    topo: RomeTopology,
    dir: PathBuf,
}

impl Drop for Bed {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Bed {
    fn new() -> Bed {
        let topo = RomeTopology::build();
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::SeqCst);
        let dir = std::env::temp_dir().join(format!("routecfg-explain-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let gateway = common::shared_dir().join("fixtures/rome/gateway");
        for entry in std::fs::read_dir(&gateway).unwrap() {
            let path = entry.unwrap().path();
            std::fs::copy(&path, dir.join(path.file_name().unwrap())).unwrap();
        }
        std::fs::write(dir.join("v6.yaml"), V6_OBJECT).unwrap();
        let bed = Bed { topo, dir };
        let out = bed.routecfg(&["apply", "-f", bed.dir(), "--rt-tables", "none"]);
        assert!(out.status.success(), "apply failed:\n{}", describe(&out));
        // A table no RouteConfiguration names, with its own rule.
        let gw = &bed.topo.gateway;
        gw.ip_line("rule add to 10.99.0.0/16 lookup 100 pref 100");
        gw.ip_line(&format!(
            "route add 10.99.0.0/16 via {MILAN_TUNNEL_IP} table 100"
        ));
        bed
    }

    fn dir(&self) -> &str {
        self.dir.to_str().unwrap()
    }

    fn routecfg(&self, args: &[&str]) -> Output {
        let bin = bin();
        let mut argv = vec![bin.as_str()];
        argv.extend_from_slice(args);
        self.topo.gateway.exec(&argv)
    }

    /// `explain FLOW -f DIR -o json`, expecting `status`.
    fn explain(&self, flow: &str, status: i32) -> Value {
        let mut args: Vec<&str> = vec!["explain"];
        args.extend(flow.split_whitespace());
        args.extend(["-f", self.dir(), "-o", "json", "--rt-tables", "none"]);
        let out = self.routecfg(&args);
        assert_eq!(
            out.status.code(),
            Some(status),
            "explain {flow}:\n{}",
            describe(&out)
        );
        serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("explain {flow}: no JSON ({e}):\n{}", describe(&out)))
    }
}

/// What the answer must name for a flow decided by routecfg.
struct Expect<'a> {
    object: &'a str,
    table: &'a str,
    rule: u64,
    route: u64,
    route_target: Option<&'a str>,
    rule_target: Option<&'a str>,
    answer: &'a str,
}

fn check(e: &Value, x: &Expect<'_>) {
    let s = |v: &Value| v.as_str().map(String::from);
    assert_eq!(e["decidedBy"], "routecfg", "{e:#}");
    assert_eq!(s(&e["object"]).as_deref(), Some(x.object), "{e:#}");
    assert_eq!(s(&e["table"]).as_deref(), Some(x.table), "{e:#}");
    assert_eq!(e["specRule"]["index"].as_u64(), Some(x.rule), "{e:#}");
    assert_eq!(e["specRoute"]["index"].as_u64(), Some(x.route), "{e:#}");
    assert_eq!(
        s(&e["specRoute"]["field"]).as_deref(),
        Some(format!("spec.table.rules[{}].routes[{}]", x.rule, x.route).as_str()),
        "{e:#}"
    );
    assert_eq!(
        s(&e["specRoute"]["targetRef"]["name"]).as_deref(),
        x.route_target,
        "{e:#}"
    );
    assert_eq!(
        s(&e["specRule"]["targetRef"]["name"]).as_deref(),
        x.rule_target,
        "{e:#}"
    );
    assert_eq!(s(&e["answer"]).as_deref(), Some(x.answer), "{e:#}");
    assert!(e.get("notes").is_none(), "unexpected notes: {e:#}");
}

#[test]
fn explain_names_object_rule_route_and_target_for_every_demo_flow() {
    let bed = Bed::new();
    let cases = [
        (
            "10.200.1.3 from 10.61.0.5 iif liqo-tunnel",
            Expect {
                object: "liqo/rome-worker-gw-node",
                table: "rome-worker",
                rule: 1,
                route: 0,
                route_target: Some("liqo-crd-replicator-6b9444849f-lk4f2"),
                rule_target: None,
                answer: "10.200.1.3 from 10.61.0.5 via 10.80.0.2 dev liqo.zgdhd2x5fc table rome-worker iif liqo-tunnel",
            },
        ),
        (
            "10.200.0.2 from 10.61.0.5 iif liqo-tunnel",
            Expect {
                object: "liqo/rome-control-plane-gw-node",
                table: "rome-control-plane",
                rule: 1,
                route: 0,
                route_target: Some("coredns-7db6d8ff4d-kg2sm"),
                rule_target: None,
                answer: "10.200.0.2 from 10.61.0.5 via 10.80.0.1 dev liqo.zqzt5nqktn table rome-control-plane iif liqo-tunnel",
            },
        ),
        (
            // Both extcidr tables match; the control plane's rule has the
            // smaller priority (see tests/demo.rs) and wins.
            "10.60.167.119 from 10.61.0.5 iif liqo-tunnel",
            Expect {
                object: "liqo/rome-control-plane-extcidr",
                table: "rome-control-plane-extcidr",
                rule: 0,
                route: 1,
                route_target: None,
                rule_target: None,
                answer: "10.60.167.119 from 10.61.0.5 via 10.80.0.1 dev liqo.zqzt5nqktn table rome-control-plane-extcidr iif liqo-tunnel",
            },
        ),
        (
            "10.60.0.1 from 10.61.0.5 iif liqo-tunnel",
            Expect {
                object: "liqo/rome-control-plane-extcidr",
                table: "rome-control-plane-extcidr",
                rule: 0,
                route: 0,
                route_target: None,
                rule_target: None,
                answer: "10.60.0.1 from 10.61.0.5 via 10.80.0.1 dev liqo.zqzt5nqktn table rome-control-plane-extcidr iif liqo-tunnel",
            },
        ),
        (
            "10.70.0.0 from 10.61.0.5 iif liqo-tunnel mark 2",
            Expect {
                object: "liqo/rome-worker-service-nodeport-routing",
                table: "rome-worker-service-nodeport-routing",
                rule: 0,
                route: 0,
                route_target: None,
                rule_target: Some("rome-worker"),
                answer: "10.70.0.0 from 10.61.0.5 via 10.80.0.2 dev liqo.zgdhd2x5fc table rome-worker-service-nodeport-routing iif liqo-tunnel mark 0x2",
            },
        ),
        (
            // Listed under rules[0] (iif liqo.zqzt5nqktn) and rules[2]: the
            // rule the traffic matched is the one named.
            "10.200.2.10 from 10.200.1.11 iif liqo.zgdhd2x5fc",
            Expect {
                object: "liqo-tenant-milan/milan-gw-ext",
                table: "milan",
                rule: 2,
                route: 0,
                route_target: None,
                rule_target: None,
                answer: "10.200.2.10 from 10.200.1.11 via 169.254.18.1 dev liqo-tunnel table milan iif liqo.zgdhd2x5fc",
            },
        ),
        (
            "fd99::5",
            Expect {
                object: "explain/v6-test",
                table: "v6-test",
                rule: 0,
                route: 0,
                route_target: Some("six"),
                rule_target: None,
                answer: "fd99::5 via fd00:18::1 dev liqo-tunnel table v6-test",
            },
        ),
    ];
    for (flow, expect) in &cases {
        check(&bed.explain(flow, 0), expect);
    }
    // The v6 table's own targetRef, and the rule as `ip rule` prints it.
    let v6 = bed.explain("fd99::5", 0);
    assert_eq!(v6["tableTargetRef"]["name"], "rome-gateway", "{v6:#}");
    let rule = v6["rule"].as_str().unwrap();
    assert!(
        rule.ends_with("from all to fd99::/64 lookup v6-test"),
        "{rule}"
    );
    // Without the mark no rule sends the NodePort flow anywhere: no route.
    let unmarked = bed.explain("10.70.0.0 from 10.61.0.5 iif liqo-tunnel", 1);
    assert_eq!(unmarked["decidedBy"], "none", "{unmarked:#}");
}

#[test]
fn explain_says_when_the_decision_is_not_ours() {
    let bed = Bed::new();
    let main = bed.explain(&format!("{MILAN_TUNNEL_IP}"), 0);
    assert_eq!(main["decidedBy"], "main", "{main:#}");
    assert_eq!(main["rule"], "32766:\tfrom all lookup main", "{main:#}");
    assert!(main.get("object").is_none(), "{main:#}");

    let local = bed.explain(&format!("{GATEWAY_TUNNEL_IP}"), 0);
    assert_eq!(local["decidedBy"], "local", "{local:#}");

    let foreign = bed.explain("10.99.1.1", 0);
    assert_eq!(foreign["decidedBy"], "foreign", "{foreign:#}");
    assert_eq!(foreign["tableId"], 100, "{foreign:#}");
    assert_eq!(
        foreign["rule"], "100:\tfrom all to 10.99.0.0/16 lookup 100",
        "{foreign:#}"
    );
    // Named as `ip` names it when an rt_tables file knows it.
    let names = bed.dir.join("rt_tables");
    std::fs::write(&names, "100\tvpn\n").unwrap();
    let mut args = vec!["explain", "10.99.1.1", "-f", bed.dir(), "-o", "json"];
    args.extend(["--rt-tables", names.to_str().unwrap()]);
    let out = bed.routecfg(&args);
    let named: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(named["table"], "vpn", "{}", describe(&out));
    assert_eq!(
        named["summary"],
        "not routecfg's decision: table vpn belongs to no RouteConfiguration here"
    );

    let none = bed.explain("10.123.0.1", 1);
    assert_eq!(none["decidedBy"], "none", "{none:#}");
    assert!(
        none["summary"].as_str().unwrap().contains("ENETUNREACH"),
        "{none:#}"
    );

    // Text output: one line per fact, like the demo's lookups.
    let out = bed.routecfg(&[
        "explain",
        "10.200.1.3",
        "from",
        "10.61.0.5",
        "iif",
        "liqo-tunnel",
        "-f",
        bed.dir(),
    ]);
    assert!(out.status.success(), "{}", describe(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("    rule    "), "{text}");
    assert!(
        text.contains("decided liqo/rome-worker-gw-node, table rome-worker (210412509): rules[1].routes[0], targetRef Pod liqo/liqo-crd-replicator-6b9444849f-lk4f2"),
        "{text}"
    );
    // A usage error is exit 2.
    let bad = bed.routecfg(&["explain", "10.1.1.1", "mark", "x", "-f", bed.dir()]);
    assert_eq!(bad.status.code(), Some(2), "{}", describe(&bad));
}

/// The same answers with the map read from a running agent's `/origins`
/// (real kube-apiserver; the gateway agent selects rome-worker-extcidr,
/// not the control plane's).
#[test]
fn explain_asks_the_running_agent() {
    use common::agent::*;
    use common::kube::KubeEnv;
    let topo = RomeTopology::build();
    let mut env = KubeEnv::start();
    let ip = env.node_ip(10);
    env.attach(topo.gateway.name(), &ip);
    install_crd(&env, Crd::Project);
    create_namespaces(&env, &["liqo", "liqo-tenant-milan"]);
    let scratch = Scratch::new("explain");
    let select = [
        "--role",
        "gateway",
        "--remote-cluster-id",
        "milan",
        "--node-name",
        "rome-worker",
    ];
    let agent = Agent::start(&AgentConfig {
        netns: topo.gateway.name(),
        host: "rome-gateway",
        kubeconfig: env.kubeconfig(),
        select: &select,
        dir: scratch.path(),
        metrics_port: 9433,
    });
    agent.wait_ready();
    let fixtures = common::shared_dir().join("fixtures/rome/gateway");
    env.kubectl_ok(&["apply", "-f", &fixtures.display().to_string()]);

    let ask = |flow: &str| -> Result<Value, String> {
        let mut argv: Vec<&str> = vec![ROUTECFG, "explain"];
        argv.extend(flow.split_whitespace());
        argv.extend(["--metrics-addr", "127.0.0.1:9433", "-o", "json"]);
        let out = topo.gateway.exec(&argv);
        serde_json::from_slice(&out.stdout).map_err(|e| format!("{e}: {}", describe(&out)))
    };
    let worker_flow = "10.200.1.3 from 10.61.0.5 iif liqo-tunnel";
    wait_for("the agent to apply and publish origins", CONVERGE, || {
        agent.check_alive()?;
        let e = ask(worker_flow)?;
        if e["decidedBy"] == "routecfg" && e.get("specRoute").is_some() {
            Ok(())
        } else {
            Err(format!("{e:#}"))
        }
    });
    let e = ask(worker_flow).unwrap();
    check(
        &e,
        &Expect {
            object: "liqo/rome-worker-gw-node",
            table: "rome-worker",
            rule: 1,
            route: 0,
            route_target: Some("liqo-crd-replicator-6b9444849f-lk4f2"),
            rule_target: None,
            answer: "10.200.1.3 from 10.61.0.5 via 10.80.0.2 dev liqo.zgdhd2x5fc table rome-worker iif liqo-tunnel",
        },
    );
    let service = ask("10.60.167.119 from 10.61.0.5 iif liqo-tunnel").unwrap();
    check(
        &service,
        &Expect {
            object: "liqo/rome-worker-extcidr",
            table: "rome-worker-extcidr",
            rule: 0,
            route: 1,
            route_target: None,
            rule_target: None,
            answer: "10.60.167.119 from 10.61.0.5 via 10.80.0.2 dev liqo.zgdhd2x5fc table rome-worker-extcidr iif liqo-tunnel",
        },
    );
    let nodeport = ask("10.70.0.0 from 10.61.0.5 iif liqo-tunnel mark 2").unwrap();
    assert_eq!(
        nodeport["object"], "liqo/rome-worker-service-nodeport-routing",
        "{nodeport:#}"
    );
    assert_eq!(
        nodeport["specRule"]["targetRef"]["name"], "rome-worker",
        "{nodeport:#}"
    );
    let main = ask(&format!("{MILAN_TUNNEL_IP}")).unwrap();
    assert_eq!(main["decidedBy"], "main", "{main:#}");

    // The map is on its own page; `/status` stays a few lines per table.
    let get = |path: &str| -> Value {
        let (code, body) = agent
            .http_get(path)
            .unwrap_or_else(|e| panic!("{path}: {e}"));
        assert_eq!(code, 200, "{path}: {body}");
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("{path}: {e}: {body}"))
    };
    let status = get("/status");
    assert!(
        status.get("origins").is_none(),
        "/status still carries origins: {status:#}"
    );
    assert!(
        status["tables"].as_array().is_some_and(|t| !t.is_empty()),
        "{status:#}"
    );
    let origins = get("/origins");
    assert_eq!(origins["protocol"], 114, "{origins:#}");
    let text = origins["origins"].to_string();
    for name in [
        "liqo/rome-worker-gw-node",
        "liqo-crd-replicator-6b9444849f-lk4f2",
    ] {
        assert!(
            text.contains(name),
            "/origins does not name {name}: {origins:#}"
        );
    }
}
