//! routecfg as users deploy it, on a real two-node Kubernetes 1.20 cluster
//! (tests/cluster/up.sh: etcd, kube-apiserver, kube-controller-manager,
//! kube-scheduler, containerd + runc, kubelet, all in network namespaces of
//! their own): `kubectl apply -f deploy/` exactly as shipped, the seed's
//! node fixture, then one check per behaviour the DaemonSet depends on.
//!
//! One cluster serves every check (bringing it up takes about a minute), so
//! this is a `harness = false` test: checks run in order, each reported as
//! `test NAME ... ok|FAILED`, and the cluster is torn down at the end. Name
//! filters work as with libtest (`cargo test --test cluster -- rolling`).
//! Needs root, `.ci/setup-kube.sh` and `deploy/build-image.sh`'s toolchain;
//! fails loudly without them.
//!
//! Binding mode comes last before the DaemonSet is deleted: installing
//! the binding CRD switches every agent (`--bindings auto`) for the checks
//! after it.

mod common;

use common::cluster::{Cluster, Node, repo, wait_for};
use common::netns::{describe, require_root, run};
use routecfg::table_id::table_id;
use serde_json::{Value, json};
use std::os::unix::fs::MetadataExt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const NAMESPACE: &str = "liqo";
const DAEMONSET: &str = "routecfg-fabric";
const SELECTOR: &str = "app.kubernetes.io/name=routecfg,app.kubernetes.io/component=fabric";
/// The seed's node table and what it routes (fixtures/rome/node).
const NODE_TABLE: &str = "milan-node-gw";
const FIXTURE: &str = "fixtures/rome/node/milan-node-gw.yaml";
/// The node's end of its Geneve-like link to the gateway, as in the seed.
const NODE_LINK: &str = "liqo.qvqc52kfnb";
/// The gateway's end of node i's link is `liqo.node<i>`; node i's end
/// holds 10.80.0.1<i>.
const GATEWAY_LINK: &str = "liqo.node";
/// The gateway's end (the seed's next hop) and a remote pod behind it.
const GATEWAY_IP: &str = "10.80.0.3";
const REMOTE_POD: &str = "10.61.0.1";
/// routecfg's ownership mark (rtm_protocol).
const PROTOCOL: u64 = 114;
/// CAP_NET_ADMIN (bit 12) and nothing else, as /proc/PID/status prints it.
const ONLY_NET_ADMIN: &str = "0000000000001000";
const WAIT: Duration = Duration::from_secs(180);

/// Everything the checks share: the two-node cluster, its nodes, and the
/// gateway namespace on the other end of their links.
struct Bed {
    cluster: Cluster,
    /// rome-worker, then rome-control-plane.
    nodes: Vec<Node>,
    /// The first node (single-pod checks).
    node: Node,
    /// Held for its lifetime: the namespace is deleted on drop.
    _gateway: common::netns::Netns,
    /// Whether the remote pod answered before any RouteConfiguration
    /// existed (it must not: only the seed's table makes the path).
    reached_before_fixture: bool,
}

type Check = fn(&Bed);

/// In order: the last ones change the deployment.
const CHECKS: &[(&str, Check)] = &[
    (
        "daemonset_pods_ready_uid0_only_net_admin_read_only_root",
        pods_ready_with_the_shipped_security_context,
    ),
    (
        "node_gets_seed_tables_and_traffic_flows",
        node_gets_seed_tables_and_traffic_flows,
    ),
    ("kubectl_logs_show_agent_logs", kubectl_logs_show_agent_logs),
    ("metrics_pass_promtool_check", metrics_pass_promtool_check),
    (
        "service_account_token_is_projected_and_rotates",
        service_account_token_is_projected_and_rotates,
    ),
    (
        "rolling_update_loses_no_pings",
        rolling_update_loses_no_pings,
    ),
    (
        "binding_mode_rc_deletion_gc_waits_for_bindings_agent_cleans_up",
        binding_mode_rc_deletion_gc_waits_for_bindings_agent_cleans_up,
    ),
    (
        "deleting_daemonset_keeps_routes_cleanup_job_removes_them",
        deleting_daemonset_keeps_routes_cleanup_job_removes_them,
    ),
];

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "--list") {
        for (name, _) in CHECKS {
            println!("{name}: test");
        }
        return;
    }
    // libtest options (--test-threads=2, --nocapture, ...) are accepted and
    // ignored; plain words filter by substring.
    let filters: Vec<&String> = args.iter().filter(|a| !a.starts_with('-')).collect();
    let exact = args.iter().any(|a| a == "--exact");
    let selected: Vec<&(&str, Check)> = CHECKS
        .iter()
        .filter(|(name, _)| {
            filters.is_empty()
                || filters.iter().any(|f| {
                    if exact {
                        name == f
                    } else {
                        name.contains(f.as_str())
                    }
                })
        })
        .collect();
    println!("\nrunning {} tests", selected.len());
    if selected.is_empty() {
        println!("\ntest result: ok. 0 passed; 0 failed\n");
        return;
    }
    let start = Instant::now();
    let bed = match catch_unwind(set_up) {
        Ok(bed) => bed,
        Err(_) => {
            println!("cluster set-up failed (see above): every selected test fails");
            for (name, _) in &selected {
                println!("test {name} ... FAILED");
            }
            std::process::exit(101);
        }
    };
    println!("cluster up and fixture applied in {:.0?}", start.elapsed());
    let mut failed = Vec::new();
    for (name, check) in &selected {
        let t = Instant::now();
        let ok = catch_unwind(AssertUnwindSafe(|| check(&bed))).is_ok();
        println!(
            "test {name} ... {} ({:.1?})",
            if ok { "ok" } else { "FAILED" },
            t.elapsed()
        );
        if !ok {
            failed.push(*name);
        }
    }
    drop(bed);
    println!(
        "\ntest result: {}. {} passed; {} failed; finished in {:.0?}\n",
        if failed.is_empty() { "ok" } else { "FAILED" },
        selected.len() - failed.len(),
        failed.len(),
        start.elapsed()
    );
    if !failed.is_empty() {
        println!("failures: {failed:?}");
        std::process::exit(101);
    }
}

/// The image archive deploy/build-image.sh makes (cheap when up to date).
fn image_archive() -> PathBuf {
    let out = run(
        Command::new(repo().join("deploy/build-image.sh")).stdin(Stdio::null()),
        "deploy/build-image.sh",
    );
    assert!(
        out.status.success(),
        "deploy/build-image.sh failed:\n{}",
        describe(&out)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let path = PathBuf::from(stdout.lines().last().unwrap_or_default());
    assert!(
        path.is_file(),
        "build-image.sh printed no archive: {stdout}"
    );
    path
}

fn set_up() -> Bed {
    require_root();
    let archive = image_archive();
    let dir = std::env::temp_dir().join(format!("routecfg-cluster-{}", std::process::id()));
    let cluster = Cluster::up(&dir, 2, &archive, &[("ROUTECFG_SA_MAX_EXPIRATION", "1h")]);
    let nodes = cluster.nodes.clone();

    // Each node's link to a gateway namespace, as in the seed: the node
    // holds 10.80.0.1<i> without a prefix route, the gateway 10.80.0.3 and
    // a remote pod; only the seed's table gives a node a path there.
    let gateway = common::netns::Netns::new("clgw");
    gateway.ip_line(&format!("addr add {REMOTE_POD}/32 dev lo"));
    for (i, node) in nodes.iter().enumerate() {
        let gw_link = format!("{GATEWAY_LINK}{}", i + 1);
        let node_ip = format!("10.80.0.1{}", i + 1);
        gateway.ip(&[
            "link",
            "add",
            &gw_link,
            "type",
            "veth",
            "peer",
            "name",
            NODE_LINK,
            "netns",
            &node.netns,
        ]);
        gateway.ip(&["link", "set", &gw_link, "up"]);
        gateway.ip_line(&format!("addr add {GATEWAY_IP}/32 dev {gw_link}"));
        gateway.ip_line(&format!("route add {node_ip}/32 dev {gw_link}"));
        node.ip(&["link", "set", NODE_LINK, "up"]);
        node.ip(&[
            "addr",
            "add",
            &format!("{node_ip}/32"),
            "dev",
            NODE_LINK,
            "noprefixroute",
        ]);
    }

    // The manifests exactly as shipped: the image was imported into
    // containerd under the name they use.
    cluster.kubectl(&[
        "apply",
        "-f",
        &repo()
            .join("deploy/examples/namespace.yaml")
            .to_string_lossy(),
    ]);
    cluster.kubectl(&["apply", "-f", &repo().join("deploy").to_string_lossy()]);
    cluster.kubectl(&[
        "-n",
        NAMESPACE,
        "rollout",
        "status",
        &format!("ds/{DAEMONSET}"),
        "--timeout=180s",
    ]);
    let reached_before_fixture = nodes.iter().any(|n| n.ping_once(REMOTE_POD));

    cluster.kubectl(&[
        "wait",
        "--for=condition=established",
        "crd/routeconfigurations.networking.liqo.io",
        "--timeout=60s",
    ]);
    cluster.kubectl_stdin(
        &["apply", "-f", "-"],
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: liqo-tenant-milan\n",
    );
    let fixture = common::shared_dir().join(FIXTURE);
    cluster.kubectl(&["apply", "-f", &fixture.to_string_lossy()]);
    for node in &nodes {
        wait_for(
            &format!("{} to reach the remote pod", node.name),
            WAIT,
            || node.ping_once(REMOTE_POD).then_some(()),
        );
    }
    Bed {
        cluster,
        node: nodes[0].clone(),
        nodes,
        _gateway: gateway,
        reached_before_fixture,
    }
}

/// The fabric pods, parsed.
fn fabric_pods(c: &Cluster) -> Vec<Value> {
    let list = c.kubectl_json(&["-n", NAMESPACE, "get", "pods", "-l", SELECTOR]);
    list["items"].as_array().cloned().unwrap_or_default()
}

fn is_ready(pod: &Value) -> bool {
    pod["status"]["conditions"].as_array().is_some_and(|cs| {
        cs.iter()
            .any(|c| c["type"] == "Ready" && c["status"] == "True")
    })
}

fn pod_name(pod: &Value) -> &str {
    pod["metadata"]["name"].as_str().unwrap_or_default()
}

/// One Ready fabric pod per node (and no other), once there are.
fn ready_pods(bed: &Bed) -> Vec<Value> {
    wait_for("one Ready fabric pod per node", WAIT, || {
        let pods = fabric_pods(&bed.cluster);
        let live: Vec<Value> = pods
            .into_iter()
            .filter(|p| p["metadata"]["deletionTimestamp"].is_null())
            .collect();
        let complete = live.len() == bed.nodes.len()
            && live.iter().all(is_ready)
            && bed.nodes.iter().all(|n| {
                live.iter()
                    .any(|p| p["spec"]["nodeName"] == n.name.as_str())
            });
        complete.then_some(live)
    })
}

/// The Ready fabric pod on `node`.
fn ready_pod(bed: &Bed, node: &Node) -> Value {
    ready_pods(bed)
        .into_iter()
        .find(|p| p["spec"]["nodeName"] == node.name.as_str())
        .unwrap_or_else(|| panic!("no fabric pod on {}", node.name))
}

/// `Key:\tvalue` from /proc/PID/status.
fn proc_status(pid: u32, key: &str) -> String {
    let path = format!("/proc/{pid}/status");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{key}:")))
        .map(|v| v.trim().to_string())
        .unwrap_or_else(|| panic!("{path} has no {key}"))
}

fn pods_ready_with_the_shipped_security_context(bed: &Bed) {
    for node in &bed.nodes {
        pod_has_the_shipped_security_context(bed, node);
    }
}

fn pod_has_the_shipped_security_context(bed: &Bed, node: &Node) {
    let c = &bed.cluster;
    let pod = ready_pod(bed, node);
    let name = pod_name(&pod);
    let status = &pod["status"]["containerStatuses"][0];
    assert_eq!(status["ready"], true, "{name}: {status}");
    assert_eq!(
        status["restartCount"], 0,
        "{name} restarted (liveness probe?): {status}"
    );
    let pid = c.container_pid(
        &node.name,
        status["containerID"].as_str().unwrap_or_default(),
    );

    // The process, as the kernel sees it.
    assert_eq!(proc_status(pid, "Uid"), "0\t0\t0\t0", "{name}: uid");
    assert_eq!(proc_status(pid, "Gid"), "0\t0\t0\t0", "{name}: gid");
    for set in ["CapEff", "CapPrm", "CapBnd"] {
        assert_eq!(proc_status(pid, set), ONLY_NET_ADMIN, "{name}: {set}");
    }
    assert_eq!(proc_status(pid, "CapAmb"), "0000000000000000", "{name}");
    assert_eq!(proc_status(pid, "NoNewPrivs"), "1", "{name}: no_new_privs");
    assert_eq!(
        proc_status(pid, "Seccomp"),
        "2",
        "{name}: RuntimeDefault seccomp filter"
    );
    let mountinfo = std::fs::read_to_string(format!("/proc/{pid}/mountinfo"))
        .unwrap_or_else(|e| panic!("mountinfo of {pid}: {e}"));
    let root = mountinfo
        .lines()
        .find(|l| l.split(' ').nth(4) == Some("/"))
        .unwrap_or_else(|| panic!("{name}: no / in mountinfo:\n{mountinfo}"));
    let options = root.split(' ').nth(5).unwrap_or_default();
    assert!(
        options.split(',').any(|o| o == "ro"),
        "{name}: root not read-only: {root}"
    );

    // hostNetwork: the node's namespace, where the probes reached it.
    let ino = |p: &str| {
        std::fs::metadata(p)
            .unwrap_or_else(|e| panic!("{p}: {e}"))
            .ino()
    };
    assert_eq!(
        ino(&format!("/proc/{pid}/ns/net")),
        ino(&format!("/run/netns/{}", node.netns)),
        "{name} is not in node {}'s network namespace",
        node.name
    );
    let readyz = c.kubectl(&[
        "get",
        "--raw",
        &format!("/api/v1/namespaces/{NAMESPACE}/pods/{name}:8114/proxy/readyz"),
    ]);
    assert!(!readyz.is_empty(), "{name}: empty /readyz");

    // The downward API.
    let environ = std::fs::read(format!("/proc/{pid}/environ"))
        .unwrap_or_else(|e| panic!("environ of {pid}: {e}"));
    let env: Vec<String> = environ
        .split(|b| *b == 0)
        .map(|v| String::from_utf8_lossy(v).into_owned())
        .collect();
    for want in [
        format!("NODE_NAME={}", node.name),
        format!("POD_NAME={name}"),
        format!(
            "NODE_IP={}",
            pod["status"]["hostIP"].as_str().unwrap_or("?")
        ),
    ] {
        assert!(env.contains(&want), "{name}: {want} not in {env:?}");
    }
}

/// A number `ip -j -N` printed, as a JSON number or string.
fn number(v: &Value) -> Option<u64> {
    v.as_u64().or_else(|| v.as_str()?.parse().ok())
}

fn node_gets_seed_tables_and_traffic_flows(bed: &Bed) {
    assert!(
        !bed.reached_before_fixture,
        "a node reached {REMOTE_POD} before the fixture existed: the check proves nothing"
    );
    for node in &bed.nodes {
        node_has_seed_tables_and_traffic(node);
    }
}

fn node_has_seed_tables_and_traffic(node: &Node) {
    let table = u64::from(table_id(NODE_TABLE));
    let rules = node.ip_json(&["rule", "show"]);
    let ours: Vec<&Value> = rules
        .iter()
        .filter(|r| number(&r["table"]) == Some(table))
        .collect();
    assert_eq!(
        ours.len(),
        3,
        "{}: rules for table {NODE_TABLE} ({table}): {rules:?}",
        node.name
    );
    let routes = node.ip_json(&["route", "show", "table", &table.to_string()]);
    let dsts: Vec<&str> = routes.iter().filter_map(|r| r["dst"].as_str()).collect();
    for want in ["10.80.0.3", "10.61.0.0/16", "10.62.0.0/16"] {
        assert!(dsts.contains(&want), "table {NODE_TABLE}: {routes:?}");
    }
    for r in &routes {
        assert!(
            number(&r["protocol"]) == Some(PROTOCOL),
            "route without routecfg's mark: {r}"
        );
    }
    assert!(
        node.ping_once(REMOTE_POD),
        "{REMOTE_POD} unreachable from {}",
        node.name
    );
}

fn kubectl_logs_show_agent_logs(bed: &Bed) {
    for pod in ready_pods(bed) {
        let name = pod_name(&pod);
        let logs = bed.cluster.kubectl(&["-n", NAMESPACE, "logs", name]);
        // The agent's line for applying the seed's table to its node.
        let want = format!("liqo-tenant-milan/{NODE_TABLE}: table {NODE_TABLE} (");
        assert!(
            logs.lines()
                .any(|l| l.contains(&want) && l.contains("change(s)")),
            "{name}: no '{want}... change(s)' line in kubectl logs:\n{logs}"
        );
    }
}

fn metrics_pass_promtool_check(bed: &Bed) {
    let pod = ready_pod(bed, &bed.node);
    let metrics = bed.cluster.kubectl(&[
        "get",
        "--raw",
        &format!(
            "/api/v1/namespaces/{NAMESPACE}/pods/{}:8114/proxy/metrics",
            pod_name(&pod)
        ),
    ]);
    assert!(
        metrics.lines().any(|l| l.starts_with("routecfg_")),
        "no routecfg_ metrics:\n{metrics}"
    );
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("promtool (Debian package prometheus): {e}"));
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().expect("piped stdin");
        stdin
            .write_all(metrics.as_bytes())
            .unwrap_or_else(|e| panic!("promtool stdin: {e}"));
    }
    let out = child
        .wait_with_output()
        .unwrap_or_else(|e| panic!("promtool: {e}"));
    assert!(
        out.status.success(),
        "promtool check metrics:\n{}\n--- metrics ---\n{metrics}",
        describe(&out)
    );
}

/// The claims of a JWT (its middle part), unverified: only read to see
/// what the API server put there.
fn jwt_claims(token: &str) -> Value {
    let payload = token
        .split('.')
        .nth(1)
        .unwrap_or_else(|| panic!("not a JWT: {token:?}"));
    let mut bits = 0u32;
    let mut nbits = 0;
    let mut bytes = Vec::new();
    for ch in payload.bytes() {
        let v = match ch {
            b'A'..=b'Z' => ch - b'A',
            b'a'..=b'z' => ch - b'a' + 26,
            b'0'..=b'9' => ch - b'0' + 52,
            b'-' | b'+' => 62,
            b'_' | b'/' => 63,
            _ => break,
        };
        bits = (bits << 6) | u32::from(v);
        nbits += 6;
        if nbits >= 8 {
            nbits -= 8;
            bytes.push(u8::try_from((bits >> nbits) & 0xff).unwrap_or(0));
        }
    }
    serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("JWT claims: {e}"))
}

/// Requests the agent (user agent `routecfg/...`) made as `pod` that the
/// API server answered with 2xx, from the audit log.
fn agent_requests_bound_to(c: &Cluster, pod: &str) -> usize {
    let path = c.dir.join("logs/audit.log");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text.lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|e| {
            e["userAgent"]
                .as_str()
                .is_some_and(|u| u.starts_with("routecfg/"))
                && e["stage"] == "ResponseComplete"
                && e["responseStatus"]["code"]
                    .as_u64()
                    .is_some_and(|c| c < 300)
                && e["user"]["extra"]["authentication.kubernetes.io/pod-name"][0] == pod
        })
        .count()
}

/// A fabric RouteConfiguration of its own, to make the agent talk to the
/// API server (apply, event, status) on demand.
fn probe_object(c: &Cluster, name: &str, net: &str) {
    let rc = json!({
        "apiVersion": "networking.liqo.io/v1beta1",
        "kind": "RouteConfiguration",
        "metadata": {"name": name, "namespace": NAMESPACE,
                     "labels": {"networking.liqo.io/route-category": "fabric"}},
        "spec": {"table": {"name": name, "rules": [
            {"dst": net, "routes": [{"dst": net, "gw": GATEWAY_IP}]}
        ]}}
    });
    c.kubectl_stdin(&["apply", "-f", "-"], &rc.to_string());
}

/// Replaces the token in the pod's projected volume the way the kubelet
/// does (a new `..` directory, then `..data` swapped by rename), from the
/// node's mount namespace as seen through containerd's /proc/PID/root.
fn write_token(c: &Cluster, node: &str, pod_uid: &str, token: &str, tag: &str) {
    let containerd = c.pid_of(&format!("containerd-{node}"));
    let volumes = PathBuf::from(format!(
        "/proc/{containerd}/root{}/{node}/kubelet/pods/{pod_uid}/volumes/kubernetes.io~projected",
        c.dir.display()
    ));
    let volume = std::fs::read_dir(&volumes)
        .unwrap_or_else(|e| panic!("{}: {e}", volumes.display()))
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("kube-api-access-"))
        })
        .unwrap_or_else(|| panic!("no kube-api-access volume in {}", volumes.display()));
    let fresh = volume.join(format!("..routecfg-test-{tag}"));
    let io = |r: std::io::Result<()>, what: &str| r.unwrap_or_else(|e| panic!("{what}: {e}"));
    io(std::fs::create_dir(&fresh), "mkdir");
    for f in ["ca.crt", "namespace"] {
        io(
            std::fs::copy(volume.join("..data").join(f), fresh.join(f)).map(|_| ()),
            f,
        );
    }
    io(std::fs::write(fresh.join("token"), token), "token");
    let tmp = volume.join("..data_tmp");
    io(
        std::os::unix::fs::symlink(fresh.file_name().unwrap_or_default(), &tmp),
        "symlink",
    );
    io(
        std::fs::rename(&tmp, volume.join("..data")),
        "rename ..data",
    );
}

fn service_account_token_is_projected_and_rotates(bed: &Bed) {
    let c = &bed.cluster;
    let pod = ready_pod(bed, &bed.node);
    let name = pod_name(&pod).to_string();
    let uid = pod["metadata"]["uid"]
        .as_str()
        .unwrap_or_default()
        .to_string();

    // The BoundServiceAccountTokenVolume gate: a projected, expiring token
    // bound to the pod, capped by --service-account-max-token-expiration=1h.
    let volumes = pod["spec"]["volumes"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert!(
        volumes.iter().any(|v| v["projected"]["sources"]
            .as_array()
            .is_some_and(|s| s.iter().any(|s| !s["serviceAccountToken"].is_null()))),
        "{name}: no projected serviceAccountToken volume: {volumes:?}"
    );
    assert!(
        volumes.iter().all(|v| v["secret"].is_null()),
        "{name}: a secret volume (legacy token?): {volumes:?}"
    );
    let status = &pod["status"]["containerStatuses"][0];
    let pid = c.container_pid(
        &bed.node.name,
        status["containerID"].as_str().unwrap_or_default(),
    );
    let token_path = format!("/proc/{pid}/root/var/run/secrets/kubernetes.io/serviceaccount/token");
    let token =
        std::fs::read_to_string(&token_path).unwrap_or_else(|e| panic!("{token_path}: {e}"));
    let claims = jwt_claims(&token);
    assert_eq!(
        claims["kubernetes.io"]["pod"]["name"],
        name.as_str(),
        "{claims}"
    );
    let lifetime = claims["exp"].as_u64().unwrap_or(0) - claims["iat"].as_u64().unwrap_or(0);
    assert_eq!(
        lifetime, 3600,
        "token lifetime (max expiration 1h): {claims}"
    );

    // Rotation by hand: a token bound to another pod (of the same service
    // account, never scheduled) replaces the kubelet's; the agent's next
    // requests must carry it (the audit log names the bound pod).
    let marker = "rotation-marker";
    let marker_pod = json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": marker, "namespace": NAMESPACE},
        "spec": {"serviceAccountName": "routecfg",
                 "nodeSelector": {"routecfg.test/never": "true"},
                 "containers": [{"name": "c", "image": "localhost/routecfg:0.1.0"}]}
    });
    c.kubectl_stdin(&["apply", "-f", "-"], &marker_pod.to_string());
    let marker_uid = c.kubectl(&[
        "-n",
        NAMESPACE,
        "get",
        "pod",
        marker,
        "-o",
        "jsonpath={.metadata.uid}",
    ]);
    let minted = c.kubectl(&[
        "-n",
        NAMESPACE,
        "create",
        "token",
        "routecfg",
        "--bound-object-kind=Pod",
        &format!("--bound-object-name={marker}"),
        &format!("--bound-object-uid={marker_uid}"),
        "--duration=10m",
    ]);
    // The kubelet rewrites the volume with its own token about once a
    // minute; a few attempts cover losing that race.
    let mut seen = false;
    for attempt in 1..=3 {
        write_token(
            c,
            &bed.node.name,
            &uid,
            minted.trim(),
            &format!("marker{attempt}"),
        );
        probe_object(
            c,
            &format!("rotation-probe-{attempt}"),
            &format!("10.{}.0.0/16", 63 + attempt),
        );
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline && !seen {
            seen = agent_requests_bound_to(c, marker) > 0;
            std::thread::sleep(Duration::from_millis(250));
        }
        if seen {
            break;
        }
    }
    assert!(
        seen,
        "the agent never used the token written into its volume"
    );

    // That token dies with its pod; the kubelet writes the agent's own
    // again, and the agent keeps working with it.
    c.kubectl(&["-n", NAMESPACE, "delete", "pod", marker, "--wait=true"]);
    let before = agent_requests_bound_to(c, &name);
    let mut n = 0;
    wait_for(
        "the agent to work with the kubelet's token again",
        WAIT,
        || {
            n += 1;
            probe_object(
                c,
                &format!("rotation-after-{n}"),
                &format!("10.{}.0.0/16", 70 + n % 50),
            );
            std::thread::sleep(Duration::from_secs(5));
            (agent_requests_bound_to(c, &name) > before).then_some(())
        },
    );
    for attempt in 1..=3 {
        let _ = c.try_kubectl(&[
            "-n",
            NAMESPACE,
            "delete",
            "routeconfiguration",
            &format!("rotation-probe-{attempt}"),
        ]);
    }
    for i in 1..=n {
        c.kubectl(&[
            "-n",
            NAMESPACE,
            "delete",
            "routeconfiguration",
            &format!("rotation-after-{i}"),
        ]);
    }
}

/// Pings `dst` from the node every 10 ms until stopped.
struct Pinger {
    child: Child,
}

impl Pinger {
    fn start(node: &Node, dst: &str) -> Pinger {
        let child = Command::new("ip")
            .args(["netns", "exec", &node.netns])
            .args(["ping", "-n", "-q", "-i", "0.01", "-W", "1", dst])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("ping: {e}"));
        Pinger { child }
    }

    /// Stops ping (SIGINT, so it prints its summary): (sent, received).
    fn stop(self) -> (u64, u64) {
        let pid = libc::pid_t::try_from(self.child.id()).unwrap_or(0);
        // SAFETY: kill(2) on our own child's PID, which is not yet reaped
        // (wait_with_output below reaps it), so it cannot name another
        // process.
        unsafe { libc::kill(pid, libc::SIGINT) };
        let out = self
            .child
            .wait_with_output()
            .unwrap_or_else(|e| panic!("ping: {e}"));
        let text = String::from_utf8_lossy(&out.stdout);
        let line = text
            .lines()
            .find(|l| l.contains("packets transmitted"))
            .unwrap_or_else(|| panic!("no ping summary:\n{}", describe(&out)));
        let num = |word: &str| -> u64 {
            line.split(", ")
                .find(|p| p.contains(word))
                .and_then(|p| p.split_whitespace().next())
                .and_then(|n| n.parse().ok())
                .unwrap_or_else(|| panic!("ping summary {line:?}: no {word}"))
        };
        (num("transmitted"), num("received"))
    }
}

fn rolling_update_loses_no_pings(bed: &Bed) {
    let c = &bed.cluster;
    let uids = |pods: &[Value]| -> Vec<String> {
        pods.iter()
            .map(|p| {
                p["metadata"]["uid"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string()
            })
            .collect()
    };
    let old_uids = uids(&ready_pods(bed));
    let pingers: Vec<(String, Pinger)> = bed
        .nodes
        .iter()
        .map(|n| (n.name.clone(), Pinger::start(n, REMOTE_POD)))
        .collect();
    std::thread::sleep(Duration::from_secs(1));
    let patch = json!({"spec": {"template": {"metadata": {"annotations": {
        "routecfg.test/rollout": format!("{}", std::process::id())
    }}}}});
    c.kubectl(&[
        "-n",
        NAMESPACE,
        "patch",
        "ds",
        DAEMONSET,
        "--type=merge",
        "-p",
        &patch.to_string(),
    ]);
    c.kubectl(&[
        "-n",
        NAMESPACE,
        "rollout",
        "status",
        &format!("ds/{DAEMONSET}"),
        "--timeout=180s",
    ]);
    let new_uids = uids(&ready_pods(bed));
    std::thread::sleep(Duration::from_secs(1));
    for (node, pinger) in pingers {
        let (sent, received) = pinger.stop();
        assert!(
            sent > 100,
            "{node}: only {sent} pings sent during the rollout"
        );
        assert_eq!(
            received,
            sent,
            "{node}: {} of {sent} pings lost during the rollout",
            sent - received
        );
    }
    assert!(
        new_uids.iter().all(|u| !old_uids.contains(u)),
        "not every pod was replaced by the rollout: {old_uids:?} -> {new_uids:?}"
    );
}

const BINDINGS: &str = "routeconfigurationbindings.networking.liqo.io";
const BINDING_FINALIZER: &str = "routeconfigurationbinding-controller.liqo.io/finalizer";
/// kube-controller-manager's garbage collector, with
/// `--use-service-account-credentials` (as up.sh starts it).
const GC_USER: &str = "system:serviceaccount:kube-system:generic-garbage-collector";

/// Audit events (2xx, ResponseComplete) on `resource`/`name` in NAMESPACE:
/// (verb, user, user agent), in log order.
fn audit_writes(c: &Cluster, resource: &str, name: &str) -> Vec<(String, String, String)> {
    let path = c.dir.join("logs/audit.log");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let s = |v: &Value| v.as_str().unwrap_or_default().to_string();
    text.lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|e| {
            e["stage"] == "ResponseComplete"
                && e["objectRef"]["resource"] == resource
                && e["objectRef"]["namespace"] == NAMESPACE
                && e["objectRef"]["name"] == name
                && e["responseStatus"]["code"]
                    .as_u64()
                    .is_some_and(|c| c < 300)
                && ["create", "update", "patch", "delete"]
                    .contains(&e["verb"].as_str().unwrap_or(""))
        })
        .map(|e| (s(&e["verb"]), s(&e["user"]["username"]), s(&e["userAgent"])))
        .collect()
}

/// The bindings in NAMESPACE of RouteConfiguration `rc`.
fn bindings_of(c: &Cluster, rc: &str) -> Vec<Value> {
    let list = c.kubectl_json(&["-n", NAMESPACE, "get", BINDINGS]);
    list["items"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter(|b| b["spec"]["routeConfigurationRef"]["name"] == rc)
        .collect()
}

/// Binding mode, then a RouteConfiguration deleted with foreground
/// propagation. What this verifies, and only that:
/// - with upstream's binding CRD installed (minus the `default: ""` line
///   1.20 refuses) and the agents restarted, each node's agent creates a
///   binding for a fresh fabric object, owned by it (controller,
///   blockOwnerDeletion) and carrying the binding finalizer, and applies
///   its table;
/// - `kubectl delete --cascade=foreground`: the API server puts the
///   `foregroundDeletion` finalizer on the object. Only the garbage
///   collector removes it, and only once no dependent with
///   blockOwnerDeletion is left, so the object being gone shows the
///   collector waited for the bindings; the audit log must show the
///   collector's write on the object.
/// - the bindings are gone: someone removed their finalizer, which only
///   the agent does (nothing else here touches it), after removing the
///   table: the node namespace keeps no rule or route with our mark for
///   that table, while the seed's table and its traffic stay.
///
/// Who sends the bindings' DELETE is not asserted: on the object's
/// deletion the agent deletes its own binding once its table is gone
/// (src/binding/decide.rs), racing the collector, which deletes the
/// dependents of an object in foreground deletion. The audit log's
/// deleters are printed.
fn binding_mode_rc_deletion_gc_waits_for_bindings_agent_cleans_up(bed: &Bed) {
    let c = &bed.cluster;
    let crd =
        common::shared_dir().join("upstream/routeconfigurationbindings.networking.liqo.io.yaml");
    let text = std::fs::read_to_string(&crd).unwrap_or_else(|e| panic!("{}: {e}", crd.display()));
    let without_default: String = text
        .lines()
        .filter(|l| l.trim() != "default: \"\"")
        .map(|l| format!("{l}\n"))
        .collect();
    assert_ne!(
        text.len(),
        without_default.len(),
        "no `default: \"\"` line in {}",
        crd.display()
    );
    c.kubectl_stdin(&["apply", "-f", "-"], &without_default);
    c.kubectl(&[
        "wait",
        "--for=condition=established",
        &format!("crd/{BINDINGS}"),
        "--timeout=60s",
    ]);
    wait_for("the API to serve bindings", WAIT, || {
        c.try_kubectl(&["get", BINDINGS, "-A"])
            .status
            .success()
            .then_some(())
    });
    // `--bindings auto` asks discovery at start, on re-lists and resyncs
    // (every 300 s): a restart switches the agents now.
    let old: Vec<Value> = ready_pods(bed);
    c.kubectl(&[
        "-n",
        NAMESPACE,
        "delete",
        "pods",
        "-l",
        SELECTOR,
        "--wait=false",
    ]);
    wait_for("fresh fabric pods", WAIT, || {
        let pods = ready_pods(bed);
        pods.iter()
            .all(|p| {
                old.iter()
                    .all(|o| o["metadata"]["uid"] != p["metadata"]["uid"])
            })
            .then_some(())
    });

    let rc = "gc-binding-probe";
    let net = "10.99.0.0/16";
    probe_object(c, rc, net);
    let table = table_id(rc);
    let bindings = wait_for("one applied binding per node", WAIT, || {
        let bs = bindings_of(c, rc);
        let applied = |b: &Value| {
            b["status"]["tableName"] == rc
                && b["status"]["conditions"].as_array().is_some_and(|cs| {
                    cs.iter()
                        .any(|c| c["type"] == "Applied" && c["status"] == "True")
                })
        };
        (bs.len() == bed.nodes.len()
            && bed.nodes.iter().all(|n| {
                bs.iter()
                    .any(|b| b["spec"]["targetRef"]["name"] == n.name.as_str() && applied(b))
            }))
        .then_some(bs)
    });
    let rc_uid = c.kubectl(&[
        "-n",
        NAMESPACE,
        "get",
        "routeconfiguration",
        rc,
        "-o",
        "jsonpath={.metadata.uid}",
    ]);
    for b in &bindings {
        let name = b["metadata"]["name"].as_str().unwrap_or_default();
        assert_eq!(
            b["metadata"]["ownerReferences"],
            json!([{"apiVersion": "networking.liqo.io/v1beta1", "kind": "RouteConfiguration",
                    "name": rc, "uid": rc_uid, "controller": true, "blockOwnerDeletion": true}]),
            "{name}: owner"
        );
        assert!(
            b["metadata"]["finalizers"]
                .as_array()
                .is_some_and(|f| f.iter().any(|f| f == BINDING_FINALIZER)),
            "{name}: no {BINDING_FINALIZER}: {b}"
        );
    }
    let has_table = |node: &Node| {
        node.ip_json(&["rule", "show"])
            .iter()
            .any(|r| number(&r["table"]) == Some(u64::from(table)))
    };
    for node in &bed.nodes {
        wait_for(&format!("{}: rules for {rc}", node.name), WAIT, || {
            has_table(node).then_some(())
        });
    }

    c.kubectl(&[
        "-n",
        NAMESPACE,
        "delete",
        "routeconfiguration",
        rc,
        "--cascade=foreground",
        "--wait=false",
    ]);
    wait_for(&format!("{rc} and its bindings to be gone"), WAIT, || {
        let gone = c
            .kubectl(&[
                "-n",
                NAMESPACE,
                "get",
                "routeconfiguration",
                rc,
                "--ignore-not-found",
                "-o",
                "name",
            ])
            .trim()
            .is_empty();
        (gone && bindings_of(c, rc).is_empty()).then_some(())
    });
    // The audit event is written as the collector's request completes,
    // which may be just after the object went.
    let mut rc_writes = Vec::new();
    let by_gc = |w: &[(String, String, String)]| {
        w.iter()
            .any(|(verb, user, _)| user == GC_USER && (verb == "patch" || verb == "update"))
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline && !by_gc(&rc_writes) {
        rc_writes = audit_writes(c, "routeconfigurations", rc);
        std::thread::sleep(Duration::from_millis(250));
    }
    assert!(
        by_gc(&rc_writes),
        "no write by the garbage collector on {rc} (foregroundDeletion finalizer): {rc_writes:?}"
    );
    for b in &bindings {
        let name = b["metadata"]["name"].as_str().unwrap_or_default();
        let writes = audit_writes(c, "routeconfigurationbindings", name);
        let deleters: Vec<&String> = writes
            .iter()
            .filter(|(verb, ..)| verb == "delete")
            .map(|(_, user, _)| user)
            .collect();
        println!("{name}: DELETE by {deleters:?}");
        assert!(
            !deleters.is_empty(),
            "{name}: gone without a DELETE: {writes:?}"
        );
    }

    for node in &bed.nodes {
        let rules = node.ip_json(&["rule", "show"]);
        assert!(
            rules
                .iter()
                .all(|r| number(&r["table"]) != Some(u64::from(table))),
            "{}: rules for {rc} left: {rules:?}",
            node.name
        );
        let routes = node.ip_json(&["route", "show", "table", &table.to_string()]);
        assert!(
            routes
                .iter()
                .all(|r| number(&r["protocol"]) != Some(PROTOCOL)),
            "{}: routes of {rc} left: {routes:?}",
            node.name
        );
        node_has_seed_tables_and_traffic(node);
    }
}

fn deleting_daemonset_keeps_routes_cleanup_job_removes_them(bed: &Bed) {
    let c = &bed.cluster;
    let table = table_id(NODE_TABLE).to_string();
    let pids: Vec<u32> = ready_pods(bed)
        .iter()
        .map(|pod| {
            let node = pod["spec"]["nodeName"].as_str().unwrap_or_default();
            let id = pod["status"]["containerStatuses"][0]["containerID"]
                .as_str()
                .unwrap_or_default();
            c.container_pid(node, id)
        })
        .collect();
    c.kubectl(&[
        "-n",
        NAMESPACE,
        "delete",
        "ds",
        DAEMONSET,
        "--wait=true",
        "--timeout=120s",
    ]);
    wait_for("the fabric pods to be gone", WAIT, || {
        fabric_pods(c).is_empty().then_some(())
    });
    wait_for("the agent processes to exit", WAIT, || {
        pids.iter()
            .all(|pid| !Path::new(&format!("/proc/{pid}")).exists())
            .then_some(())
    });
    for node in &bed.nodes {
        assert!(
            !node.ip(&["route", "show", "table", &table]).is_empty(),
            "{}: table {NODE_TABLE} emptied when the DaemonSet went away",
            node.name
        );
        assert!(
            node.ping_once(REMOTE_POD),
            "{REMOTE_POD} unreachable from {} after the DaemonSet was deleted",
            node.name
        );
    }

    // deploy/examples/job-once.yaml, running `cleanup` on the first node
    // only: the other keeps its routes.
    let text = std::fs::read_to_string(repo().join("deploy/examples/job-once.yaml"))
        .unwrap_or_else(|e| panic!("job-once.yaml: {e}"));
    let mut job: Value =
        serde_yaml_ng::from_str(&text).unwrap_or_else(|e| panic!("job-once.yaml: {e}"));
    job["metadata"]["name"] = json!("routecfg-cleanup");
    let spec = &mut job["spec"]["template"]["spec"];
    spec["nodeSelector"] = json!({"kubernetes.io/hostname": bed.node.name});
    spec["containers"][0]["args"] = json!(["cleanup", "--rt-tables=none"]);
    c.kubectl_stdin(&["apply", "-f", "-"], &job.to_string());
    c.kubectl(&[
        "-n",
        NAMESPACE,
        "wait",
        "--for=condition=complete",
        "job/routecfg-cleanup",
        "--timeout=180s",
    ]);
    let rules = bed.node.ip_json(&["rule", "show"]);
    assert!(
        rules
            .iter()
            .all(|r| number(&r["table"]) != Some(u64::from(table_id(NODE_TABLE)))),
        "rules for {NODE_TABLE} left after cleanup: {rules:?}"
    );
    assert!(
        bed.node
            .ip(&["route", "show", "table", &table])
            .trim()
            .is_empty(),
        "table {NODE_TABLE} not emptied by cleanup"
    );
    assert!(
        !bed.node.ping_once(REMOTE_POD),
        "{REMOTE_POD} still reachable after cleanup"
    );
    let logs = c.kubectl(&["-n", NAMESPACE, "logs", "job/routecfg-cleanup"]);
    assert!(!logs.trim().is_empty(), "cleanup Job printed nothing");
    for other in bed.nodes.iter().filter(|n| n.name != bed.node.name) {
        assert!(
            !other.ip(&["route", "show", "table", &table]).is_empty(),
            "{}: table {NODE_TABLE} removed by a cleanup Job meant for {}",
            other.name,
            bed.node.name
        );
        assert!(
            other.ping_once(REMOTE_POD),
            "{REMOTE_POD} unreachable from {} after {}'s cleanup",
            other.name,
            bed.node.name
        );
    }
}
