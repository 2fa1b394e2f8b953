//! The shipped container image, run with podman against a real
//! kube-apiserver, confined as the manifests confine it: only
//! CAP_NET_ADMIN, read-only root filesystem, no privilege escalation, the
//! node's network namespace, and in-cluster configuration (ServiceAccount
//! token, CA and namespace mounted at
//! /var/run/secrets/kubernetes.io/serviceaccount, `KUBERNETES_SERVICE_*`
//! in the environment).
//!
//! NEEDS ROOT, `.ci/setup-kube.sh`'s kube-apiserver and the packages
//! `deploy/build-image.sh` installs (podman, buildah, runc); fails loudly
//! otherwise. The archive tested is the one `deploy/build-image.sh` prints,
//! run here so it is never stale.

mod common;

use common::kube::KubeEnv;
use common::netns::{KRoute, KRule, Netns, require_root};
use common::podman::{Container, Podman, build_image};
use ipnet::IpNet;
use routecfg::routing::{DEFAULT_PROTOCOL, Family};
use serde_json::Value;
use std::cell::RefCell;
use std::fs;
use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The seed's fabric object for Milan on a Rome node.
const OBJECT: &str = "milan-node-gw";
const OBJECT_NS: &str = "liqo-tenant-milan";
/// The link the object's first route names.
const NODE_LINK: &str = "liqo.qvqc52kfnb";
/// Its other end, in the same namespace, so the link has a carrier.
const NODE_LINK_PEER: &str = "rcfg-peer";
const MILAN_GATEWAY: &str = "10.80.0.3";
/// The name the agent writes into its status condition.
const HOST_NAME: &str = "podman-node";
/// Where the daemon serves /readyz inside the node namespace.
const METRICS_ADDR: &str = "127.0.0.1:8114";
const CRD_NAME: &str = "routeconfigurations.networking.liqo.io";
/// capability(7) number of CAP_NET_ADMIN (not in the libc crate).
const CAP_NET_ADMIN: u32 = 12;
/// Bound on waiting for the daemon (a bound, not a timing assertion).
const WAIT: Duration = Duration::from_secs(60);

fn repo_file(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

/// API server with our CRD, our RBAC, and the seed's fabric object.
fn cluster_with_fixture() -> KubeEnv {
    let env = KubeEnv::start();
    let crd = repo_file("static/crd.yaml");
    env.kubectl_ok(&["apply", "-f", &crd.display().to_string()]);
    env.kubectl_ok(&[
        "wait",
        "--for=condition=Established",
        "--timeout=60s",
        &format!("crd/{CRD_NAME}"),
    ]);
    env.kubectl_ok(&["create", "namespace", "liqo"]);
    env.kubectl_ok(&["create", "namespace", OBJECT_NS]);
    let rbac = repo_file("deploy/rbac.yaml");
    env.kubectl_ok(&["apply", "-f", &rbac.display().to_string()]);
    let fixture = common::shared_dir().join(format!("fixtures/rome/node/{OBJECT}.yaml"));
    env.kubectl_ok(&["apply", "-f", &fixture.display().to_string()]);
    env
}

/// The three files kubelet projects into a pod for its ServiceAccount.
fn service_account_dir(env: &KubeEnv) -> PathBuf {
    let token = env.create_service_account_token("liqo", "routecfg");
    let dir = env.dir().join("serviceaccount");
    fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("creating {}: {e}", dir.display()));
    let write = |name: &str, contents: &[u8], mode: u32| {
        let path = dir.join(name);
        fs::write(&path, contents).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
        fs::set_permissions(&path, fs::Permissions::from_mode(mode))
            .unwrap_or_else(|e| panic!("chmod {}: {e}", path.display()));
    };
    let ca = fs::read(env.ca_path())
        .unwrap_or_else(|e| panic!("reading {}: {e}", env.ca_path().display()));
    write("token", token.as_bytes(), 0o600);
    write("ca.crt", &ca, 0o644);
    write("namespace", b"liqo", 0o644);
    dir
}

/// `podman run` arguments shared by both runs: the pod's confinement and
/// in-cluster configuration, in the node's network namespace.
fn confined_run_args(podman: &Podman, env: &KubeEnv, node: &Netns, sa_dir: &Path) -> Vec<String> {
    let mut args: Vec<String> = vec!["run".into()];
    args.extend(podman.policy_args());
    args.extend(
        [
            "--runtime",
            "runc",
            "--network",
            &format!("ns:/run/netns/{}", node.name()),
            "--cap-drop",
            "ALL",
            "--cap-add",
            "NET_ADMIN",
            "--security-opt",
            "no-new-privileges",
            "--read-only",
            "-v",
            &format!(
                "{}:/var/run/secrets/kubernetes.io/serviceaccount:ro",
                sa_dir.display()
            ),
            "-e",
            &format!("KUBERNETES_SERVICE_HOST={}", env.api_ip()),
            "-e",
            "KUBERNETES_SERVICE_PORT=6443",
        ]
        .map(String::from),
    );
    args
}

/// What the kernel must hold for the object: one rule per spec rule and
/// its routes, all stamped with routecfg's protocol.
fn expected_rules(table: u32) -> Vec<KRule> {
    let mut rules: Vec<KRule> = [
        format!("{MILAN_GATEWAY}/32"),
        "10.61.0.0/16".into(),
        "10.62.0.0/16".into(),
    ]
    .iter()
    .map(|dst| KRule {
        family: Family::V4,
        priority: 0,
        src: None,
        dst: Some(net(dst)),
        iif: None,
        oif: None,
        fwmark: None,
        fwmask: None,
        table,
        protocol: DEFAULT_PROTOCOL,
    })
    .collect();
    rules.sort();
    rules
}

/// (dst, gateway, dev, scope, protocol) of each route expected in the table.
type RouteKey = (IpNet, Option<IpAddr>, Option<String>, u8, u8);

fn expected_routes() -> Vec<RouteKey> {
    let gw: IpAddr = MILAN_GATEWAY.parse().expect("constant address");
    let dev = Some(NODE_LINK.to_string());
    let mut routes = vec![
        // scope link = 253
        (
            net(&format!("{gw}/32")),
            None,
            dev.clone(),
            253,
            DEFAULT_PROTOCOL,
        ),
        (
            net("10.61.0.0/16"),
            Some(gw),
            dev.clone(),
            0,
            DEFAULT_PROTOCOL,
        ),
        (net("10.62.0.0/16"), Some(gw), dev, 0, DEFAULT_PROTOCOL),
    ];
    routes.sort();
    routes
}

fn net(text: &str) -> IpNet {
    text.parse().expect("constant prefix")
}

fn table_rules(node: &Netns, table: u32) -> Vec<KRule> {
    let mut rules: Vec<KRule> = node
        .rules()
        .iter()
        .filter(|r| r.table == table)
        .map(KRule::without_priority)
        .collect();
    rules.sort();
    rules
}

fn table_routes(node: &Netns, table: u32) -> Vec<RouteKey> {
    let key = |r: &KRoute| (r.dst, r.gateway, r.dev.clone(), r.scope, r.protocol);
    let mut routes: Vec<RouteKey> = node.routes(table).iter().map(key).collect();
    routes.sort();
    routes
}

fn assert_kernel_has_object(node: &Netns, table: u32, when: &str) {
    assert_eq!(
        table_rules(node, table),
        expected_rules(table),
        "{when}: rules to table {table} ({OBJECT}) in {}:\n{}",
        node.name(),
        node.ip(&["rule"])
    );
    assert_eq!(
        table_routes(node, table),
        expected_routes(),
        "{when}: routes of table {table} ({OBJECT}) in {}:\n{}",
        node.name(),
        node.ip(&["route", "show", "table", &table.to_string()])
    );
}

/// This host's `Applied` condition on the object, if any.
fn host_condition(env: &KubeEnv) -> Option<Value> {
    let text = env.kubectl_ok(&[
        "get",
        "routeconfigurations",
        OBJECT,
        "-n",
        OBJECT_NS,
        "-o",
        "json",
    ]);
    let object: Value = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("kubectl -o json printed no JSON ({e}):\n{text}"));
    object["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["host"] == HOST_NAME && c["type"] == "Applied")
        .cloned()
}

/// `GET path` on the agent's HTTP endpoint from inside the node namespace
/// (the address is the node's loopback); the status code, or the error.
fn http_status(node: &Netns, path: &str) -> Result<u16, String> {
    let addr: SocketAddr = METRICS_ADDR.parse().expect("constant address");
    node.in_netns(|| {
        let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2))
            .map_err(|e| format!("connect {addr}: {e}"))?;
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .map_err(|e| format!("set_read_timeout: {e}"))?;
        let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
        stream
            .write_all(request.as_bytes())
            .map_err(|e| format!("send {path}: {e}"))?;
        let mut answer = String::new();
        stream
            .read_to_string(&mut answer)
            .map_err(|e| format!("read {path}: {e}"))?;
        answer
            .split_whitespace()
            .nth(1)
            .and_then(|code| code.parse().ok())
            .ok_or_else(|| format!("no HTTP status line in {answer:?}"))
    })
}

/// Checks, from the kernel's view of the agent process (not podman's
/// configuration), that it runs as the manifests say: uid 0 with
/// CAP_NET_ADMIN as its only capability, no privilege escalation, a
/// read-only root, in the node's network namespace.
fn assert_confined(daemon: &Container, node: &Netns) {
    let pid = daemon.inspect("{{.State.Pid}}");
    let proc_dir = Path::new("/proc").join(&pid);
    let status = fs::read_to_string(proc_dir.join("status"))
        .unwrap_or_else(|e| panic!("reading /proc/{pid}/status of {}: {e}", daemon.name()));
    let field = |name: &str| -> String {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .map(|v| v.split_whitespace().collect::<Vec<_>>().join(" "))
            .unwrap_or_else(|| panic!("no {name} in /proc/{pid}/status:\n{status}"))
    };
    let net_admin = format!("{:016x}", 1u64 << CAP_NET_ADMIN);
    for set in ["CapEff:", "CapPrm:", "CapBnd:"] {
        assert_eq!(
            field(set),
            net_admin,
            "{set} of the agent (pid {pid}): only CAP_NET_ADMIN expected"
        );
    }
    assert_eq!(
        field("CapAmb:"),
        format!("{:016x}", 0),
        "CapAmb of pid {pid}"
    );
    assert_eq!(field("Uid:"), "0 0 0 0", "uids of pid {pid}");
    assert_eq!(field("NoNewPrivs:"), "1", "no_new_privs of pid {pid}");

    let mountinfo = fs::read_to_string(proc_dir.join("mountinfo"))
        .unwrap_or_else(|e| panic!("reading /proc/{pid}/mountinfo: {e}"));
    // Fields: id parent major:minor root mount-point options ...
    let root = mountinfo
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .rfind(|f| f.get(4) == Some(&"/"))
        .unwrap_or_else(|| panic!("no / in /proc/{pid}/mountinfo:\n{mountinfo}"));
    assert!(
        root.get(5)
            .is_some_and(|opts| opts.split(',').any(|o| o == "ro")),
        "root filesystem of pid {pid} is not read-only: {}",
        root.join(" ")
    );

    let inode = |path: &Path| {
        use std::os::unix::fs::MetadataExt;
        fs::metadata(path)
            .map(|m| (m.dev(), m.ino()))
            .unwrap_or_else(|e| panic!("stat {}: {e}", path.display()))
    };
    assert_eq!(
        inode(&proc_dir.join("ns/net")),
        inode(&Path::new("/run/netns").join(node.name())),
        "agent (pid {pid}) is not in network namespace {}",
        node.name()
    );
}

/// Waits (bounded) until `done` holds; panics with `describe()` otherwise.
fn wait_for(what: &str, mut done: impl FnMut() -> bool, describe: impl Fn() -> String) {
    let deadline = Instant::now() + WAIT;
    while !done() {
        assert!(
            Instant::now() < deadline,
            "gave up after {} s waiting for {what}\n{}",
            WAIT.as_secs(),
            describe()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn image_applies_a_fabric_object_in_cluster_with_only_net_admin() {
    require_root();
    let archive = build_image();
    eprintln!("image archive: {}", archive.display());
    let podman = Podman::for_archive(&archive);

    let mut env = cluster_with_fixture();
    let node = Netns::new("podman");
    let node_ip = env.node_ip(2);
    env.attach(node.name(), &node_ip);
    node.ip(&[
        "link",
        "add",
        NODE_LINK,
        "type",
        "veth",
        "peer",
        "name",
        NODE_LINK_PEER,
    ]);
    node.ip(&["link", "set", NODE_LINK, "up"]);
    node.ip(&["link", "set", NODE_LINK_PEER, "up"]);
    let sa_dir = service_account_dir(&env);
    let table = routecfg::table_id::table_id(OBJECT);
    assert!(
        node.routes(table).is_empty() && table_rules(&node, table).is_empty(),
        "table {table} not empty before the agent ran"
    );

    // --- `once`: one reconcile pass, exit status says whether it applied.
    let once_name = Podman::unique_name("once");
    let once = Container::adopt(&podman, once_name.clone());
    let mut args = confined_run_args(&podman, &env, &node, &sa_dir);
    args.extend(["--rm".into(), "--name".into(), once_name]);
    args.push(podman.image_ref());
    args.extend(
        [
            "once",
            "--role",
            "fabric",
            "--rt-tables",
            "none",
            "--host-name",
            HOST_NAME,
        ]
        .map(String::from),
    );
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    let started = Instant::now();
    let out = podman.output(&argv);
    eprintln!(
        "podman run ... once: {} in {:.1} s\n{}",
        out.status,
        started.elapsed().as_secs_f64(),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "`podman {}` failed:\n{}",
        argv.join(" "),
        common::netns::describe(&out)
    );
    drop(once);
    assert_kernel_has_object(&node, table, "after `once`");
    let condition = host_condition(&env);
    assert!(
        condition
            .as_ref()
            .is_some_and(|c| c["status"] == "True" && c["type"] == "Applied"),
        "{OBJECT}: expected an Applied=True condition for host {HOST_NAME}, got {condition:?}"
    );

    // --- `run`: the daemon, until SIGTERM.
    let run_name = Podman::unique_name("run");
    let daemon = Container::adopt(&podman, run_name.clone());
    let mut args = confined_run_args(&podman, &env, &node, &sa_dir);
    args.extend(["--detach".into(), "--name".into(), run_name]);
    args.push(podman.image_ref());
    args.extend(
        [
            "run",
            "--role",
            "fabric",
            "--rt-tables",
            "none",
            "--host-name",
            HOST_NAME,
            "--metrics-addr",
            METRICS_ADDR,
        ]
        .map(String::from),
    );
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    podman.ok(&argv);

    let last = RefCell::new(String::new());
    wait_for(
        "the daemon's /readyz to answer 200",
        || {
            assert!(
                daemon.running(),
                "container {} exited ({}) before it was ready:\n{}",
                daemon.name(),
                daemon.inspect("{{.State.ExitCode}}"),
                daemon.logs()
            );
            match http_status(&node, "/readyz") {
                Ok(200) => true,
                Ok(code) => {
                    *last.borrow_mut() = format!("HTTP {code}");
                    false
                }
                Err(e) => {
                    *last.borrow_mut() = e;
                    false
                }
            }
        },
        || format!("last probe: {}\n{}", last.borrow(), daemon.logs()),
    );
    assert_eq!(http_status(&node, "/healthz"), Ok(200), "/healthz");
    assert_confined(&daemon, &node);

    // Kernel drift is repaired from inside the container: its netlink
    // monitor works with nothing but CAP_NET_ADMIN.
    node.ip(&["route", "del", "10.62.0.0/16", "table", &table.to_string()]);
    wait_for(
        "the daemon to restore the deleted route 10.62.0.0/16",
        || table_routes(&node, table) == expected_routes(),
        || {
            format!(
                "table {table}:\n{}\n{}",
                node.ip(&["route", "show", "table", &table.to_string()]),
                daemon.logs()
            )
        },
    );

    // SIGTERM (podman stop) must end it cleanly: with 2 s before SIGKILL,
    // exit code 0 (not 137) proves the agent, PID 1 in the container,
    // handled the signal itself.
    let started = Instant::now();
    podman.ok(&["stop", "--time", "2", daemon.name()]);
    let stop_secs = started.elapsed().as_secs_f64();
    let code = daemon.inspect("{{.State.ExitCode}}");
    let logs = daemon.logs();
    eprintln!("podman stop took {stop_secs:.2} s; exit code {code}; logs:\n{logs}");
    assert!(
        !daemon.running(),
        "{} still running after stop",
        daemon.name()
    );
    assert_eq!(
        code, "0",
        "daemon's exit code after SIGTERM (137 = killed after ignoring it):\n{logs}"
    );
    assert!(
        logs.contains("exiting, routes stay in place"),
        "daemon did not log its SIGTERM exit:\n{logs}"
    );
    assert_kernel_has_object(&node, table, "after the daemon stopped");
    drop(daemon);
}
