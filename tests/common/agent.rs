//! The routecfg agent as a child process in a test namespace, and what the
//! end-to-end tests read back from the API server and the kernel.
//!
//! The agent runs exactly as on a host: `ip netns exec NS routecfg run ...`
//! with its own rt_tables file, metrics port and a debug log file, so a
//! failing test can show what the agent did. Everything a test waits for is
//! polled with a deadline and then asserted: no test asserts on time.

use super::kube::KubeEnv;
use super::netns::Netns;
use ipnet::IpNet;
use routecfg::routing::Family;
use routecfg::table_id::table_id;
use serde_json::{Value, json};
use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::{Read, Write};
use std::net::{IpAddr, TcpStream};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// The binary under test, built by cargo for integration tests.
pub const ROUTECFG: &str = env!("CARGO_BIN_EXE_routecfg");
/// routecfg's ownership mark (rtm_protocol) when `--protocol` is not given.
pub const PROTOCOL: u8 = 114;
/// How long the tests wait for the agent to converge: generous, because
/// the machine is shared and this bounds waiting, it is not a measurement.
pub const CONVERGE: Duration = Duration::from_secs(20);
/// Waiting across an API outage: the agent's reconnect backoff grows to
/// 30 s between attempts.
pub const RECONNECT: Duration = Duration::from_secs(75);

/// routecfg's own debug lines, without the HTTP and TLS libraries' chatter.
pub const LOG_FILTER: &str = "debug,ureq=info,ureq_proto=info,rustls=info";

pub const CATEGORY: &str = "networking.liqo.io/route-category";
pub const SUBCATEGORY: &str = "networking.liqo.io/route-subcategory";
pub const UNIQUE: &str = "networking.liqo.io/route-unique";
pub const RESOURCE: &str = "routeconfigurations.networking.liqo.io";

static NEXT: AtomicU32 = AtomicU32::new(0);

/// Which RouteConfiguration CRD the API server gets: the agent must work
/// with the one Liqo installs and with the project's own.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Crd {
    Upstream,
    Project,
}

impl Crd {
    pub fn path(self) -> PathBuf {
        let path = match self {
            Crd::Upstream => {
                super::shared_dir().join("upstream/routeconfigurations.networking.liqo.io.yaml")
            }
            Crd::Project => Path::new(env!("CARGO_MANIFEST_DIR")).join("static/crd.yaml"),
        };
        assert!(
            path.is_file(),
            "{self:?} CRD not found at {}",
            path.display()
        );
        path
    }
}

/// Installs the CRD and waits until the API serves the resource (being
/// Established is not enough: discovery lags behind it).
pub fn install_crd(env: &KubeEnv, crd: Crd) {
    let path = crd.path();
    env.kubectl_ok(&["apply", "-f", &path.display().to_string()]);
    env.kubectl_ok(&[
        "wait",
        "--for=condition=Established",
        "--timeout=60s",
        &format!("crd/{RESOURCE}"),
    ]);
    wait_for("the API to serve RouteConfigurations", CONVERGE, || {
        let out = env.kubectl(&["get", RESOURCE, "-A", "-o", "name"]);
        if out.status.success() {
            Ok(())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    });
}

pub fn create_namespaces(env: &KubeEnv, names: &[&str]) {
    for ns in names {
        env.kubectl_ok(&["create", "namespace", ns]);
    }
}

/// A RouteConfiguration manifest (JSON, which kubectl applies as well).
pub fn route_config(ns: &str, name: &str, labels: &[(&str, &str)], table: Value) -> Value {
    let labels: serde_json::Map<String, Value> = labels
        .iter()
        .map(|(k, v)| (k.to_string(), Value::from(*v)))
        .collect();
    json!({
        "apiVersion": "networking.liqo.io/v1beta1",
        "kind": "RouteConfiguration",
        "metadata": {"name": name, "namespace": ns, "labels": labels},
        "spec": {"table": table},
    })
}

/// `kubectl apply -f -` of one object.
pub fn apply(env: &KubeEnv, object: &Value) {
    env.kubectl_stdin(&["apply", "-f", "-"], &object.to_string());
}

/// `kubectl patch --type=json` of a RouteConfiguration.
pub fn json_patch(env: &KubeEnv, ns: &str, name: &str, patch: Value) {
    env.kubectl_ok(&[
        "patch",
        RESOURCE,
        name,
        "-n",
        ns,
        "--type=json",
        "-p",
        &patch.to_string(),
    ]);
}

pub fn delete(env: &KubeEnv, ns: &str, name: &str) {
    env.kubectl_ok(&["delete", RESOURCE, name, "-n", ns, "--wait=true"]);
}

/// Every RouteConfiguration by `namespace/name`.
pub fn objects(env: &KubeEnv) -> BTreeMap<String, Value> {
    let list = kubectl_json(env, &["get", RESOURCE, "-A", "-o", "json"]);
    let mut out = BTreeMap::new();
    for item in list["items"].as_array().into_iter().flatten() {
        let meta = &item["metadata"];
        let key = format!(
            "{}/{}",
            meta["namespace"].as_str().unwrap_or_default(),
            meta["name"].as_str().unwrap_or_default()
        );
        out.insert(key, item.clone());
    }
    out
}

/// One object, or `None` if the API says it does not exist.
pub fn object(env: &KubeEnv, ns: &str, name: &str) -> Option<Value> {
    let out = env.kubectl(&["get", RESOURCE, name, "-n", ns, "-o", "json"]);
    if out.status.success() {
        return Some(parse_json("kubectl get", &out.stdout));
    }
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("NotFound") || err.contains("not found"),
        "kubectl get {name} -n {ns}: {err}"
    );
    None
}

pub fn kubectl_json(env: &KubeEnv, args: &[&str]) -> Value {
    let text = env.kubectl_ok(args);
    parse_json(&format!("kubectl {}", args.join(" ")), text.as_bytes())
}

fn parse_json(what: &str, bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes).unwrap_or_else(|e| {
        panic!(
            "{what} printed no JSON ({e}): {}",
            String::from_utf8_lossy(bytes)
        )
    })
}

/// The `metadata.resourceVersion` of an object.
pub fn resource_version(object: &Value) -> String {
    object["metadata"]["resourceVersion"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// One entry of `status.conditions`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Condition {
    pub host: String,
    pub kind: String,
    pub status: String,
    pub last_transition_time: String,
}

pub fn conditions(object: &Value) -> Vec<Condition> {
    let text = |c: &Value, k: &str| c[k].as_str().unwrap_or_default().to_string();
    object["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| Condition {
            host: text(c, "host"),
            kind: text(c, "type"),
            status: text(c, "status"),
            last_transition_time: text(c, "lastTransitionTime"),
        })
        .collect()
}

/// `Ok` with the condition when `host` has exactly one `Applied` entry
/// saying `want` ("True"/"False") with a transition time.
pub fn check_condition(object: &Value, host: &str, want: &str) -> Result<Condition, String> {
    let all = conditions(object);
    let mine: Vec<&Condition> = all.iter().filter(|c| c.host == host).collect();
    let name = object["metadata"]["name"].as_str().unwrap_or_default();
    match mine.as_slice() {
        [c] if c.kind == "Applied" && c.status == want && !c.last_transition_time.is_empty() => {
            Ok((*c).clone())
        }
        _ => Err(format!(
            "{name}: want one Applied={want} condition of host {host}, have {all:?}"
        )),
    }
}

/// Events about one object, as `kubectl get events` lists them.
pub fn events_for(env: &KubeEnv, ns: &str, name: &str) -> Vec<Value> {
    let list = kubectl_json(env, &["get", "events", "-n", ns, "-o", "json"]);
    list["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["involvedObject"]["name"].as_str() == Some(name))
        .cloned()
        .collect()
}

/// Polls `check` until it returns `Ok`, for at most `timeout`, then fails
/// with the last reason it gave.
pub fn wait_for<T>(
    what: &str,
    timeout: Duration,
    mut check: impl FnMut() -> Result<T, String>,
) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        match check() {
            Ok(v) => return v,
            Err(e) if Instant::now() >= deadline => {
                panic!(
                    "gave up after {} s waiting for {what}; last check said:\n{e}",
                    timeout.as_secs()
                )
            }
            Err(_) => std::thread::sleep(Duration::from_millis(150)),
        }
    }
}

/// A scratch directory for agent logs and rt_tables files; kept (and its
/// path printed) when the test fails or `ROUTECFG_E2E_KEEP` is set, removed
/// otherwise.
pub struct Scratch(PathBuf);

impl Scratch {
    pub fn new(tag: &str) -> Scratch {
        let dir = std::env::temp_dir().join(format!(
            "rcfg-e2e-{tag}-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("creating {}: {e}", dir.display()));
        Scratch(dir)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if std::thread::panicking() || std::env::var_os("ROUTECFG_E2E_KEEP").is_some() {
            eprintln!("keeping {} for inspection", self.0.display());
        } else {
            let _ = fs::remove_dir_all(&self.0);
        }
    }
}

/// How to start one agent.
pub struct AgentConfig<'a> {
    pub netns: &'a str,
    /// `--host-name`: the name in status conditions.
    pub host: &'a str,
    pub kubeconfig: &'a Path,
    /// Role and selector flags (`--role fabric`, ...).
    pub select: &'a [&'a str],
    pub dir: &'a Path,
    pub metrics_port: u16,
}

/// A running `routecfg run`; stopped on drop, and its log tail printed
/// when the test is failing.
pub struct Agent {
    host: String,
    netns: String,
    child: RefCell<Option<Child>>,
    log: PathBuf,
    rt_tables: PathBuf,
    metrics_port: u16,
    argv: Vec<String>,
    /// Extra environment (e.g. `POD_NAME`).
    env: Vec<(String, String)>,
}

impl Agent {
    pub fn start(config: &AgentConfig) -> Agent {
        Agent::start_with_env(config, &[])
    }

    /// Like [`Agent::start`] with extra environment variables.
    pub fn start_with_env(config: &AgentConfig, env: &[(&str, &str)]) -> Agent {
        let log = config.dir.join(format!("{}.log", config.host));
        let rt_tables = config.dir.join(format!("{}.rt_tables", config.host));
        let mut argv: Vec<String> = vec![
            "run".into(),
            "--kubeconfig".into(),
            config.kubeconfig.display().to_string(),
            "--host-name".into(),
            config.host.into(),
            "--rt-tables".into(),
            rt_tables.display().to_string(),
            "--metrics-addr".into(),
            format!("127.0.0.1:{}", config.metrics_port),
        ];
        argv.extend(config.select.iter().map(|s| s.to_string()));
        let agent = Agent {
            host: config.host.into(),
            netns: config.netns.into(),
            child: RefCell::new(None),
            log,
            rt_tables,
            metrics_port: config.metrics_port,
            argv,
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        };
        agent.spawn();
        agent
    }

    fn spawn(&self) {
        let file = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap_or_else(|e| panic!("opening {}: {e}", self.log.display()));
        let err = file
            .try_clone()
            .unwrap_or_else(|e| panic!("duplicating {}: {e}", self.log.display()));
        // `ip netns exec` execs routecfg, so the child's pid is the agent's.
        let child = Command::new("ip")
            .args(["netns", "exec", &self.netns, ROUTECFG])
            .args(&self.argv)
            .env("RUST_LOG", LOG_FILTER)
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .env_remove("KUBERNETES_SERVICE_HOST")
            .env_remove("KUBECONFIG")
            .stdin(Stdio::null())
            .stdout(file)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("starting routecfg run in {}: {e}", self.netns));
        *self.child.borrow_mut() = Some(child);
    }

    pub fn host(&self) -> &str {
        &self.host
    }

    pub fn pid(&self) -> u32 {
        self.child
            .borrow()
            .as_ref()
            .map(Child::id)
            .unwrap_or_else(|| panic!("agent {} is not running", self.host))
    }

    /// Everything the agent logged so far.
    pub fn log(&self) -> String {
        fs::read(&self.log)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    }

    /// Byte length of the log now, to look only at what comes later.
    pub fn log_len(&self) -> usize {
        fs::metadata(&self.log).map_or(0, |m| m.len() as usize)
    }

    pub fn log_tail(&self, lines: usize) -> String {
        let text = self.log();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// Waits until a line containing `needle` appears after byte `from`.
    pub fn wait_log(&self, from: usize, needle: &str, timeout: Duration) -> String {
        wait_for(
            &format!("agent {} to log {needle:?}", self.host),
            timeout,
            || {
                self.check_alive()?;
                let text = self.log();
                text.get(from..)
                    .unwrap_or_default()
                    .lines()
                    .find(|l| l.contains(needle))
                    .map(str::to_string)
                    .ok_or_else(|| format!("not yet; log tail:\n{}", self.log_tail(15)))
            },
        )
    }

    pub fn rt_tables(&self) -> String {
        fs::read_to_string(&self.rt_tables).unwrap_or_default()
    }

    /// `Err` (with the log tail) if the agent process has exited.
    pub fn check_alive(&self) -> Result<(), String> {
        let mut child = self.child.borrow_mut();
        let Some(c) = child.as_mut() else {
            return Err(format!("agent {} was stopped", self.host));
        };
        match c.try_wait() {
            Ok(None) => Ok(()),
            Ok(Some(status)) => Err(format!(
                "agent {} exited ({status}); log tail:\n{}",
                self.host,
                self.log_tail(30)
            )),
            Err(e) => Err(format!("agent {}: wait: {e}", self.host)),
        }
    }

    /// GET on the agent's metrics port, from inside its namespace.
    pub fn http_get(&self, path: &str) -> Result<(u16, String), String> {
        http_get_in_netns(&self.netns, self.metrics_port, path)
    }

    /// Waits for `/readyz` (the first list and reconcile are done).
    pub fn wait_ready(&self) {
        wait_for(
            &format!("agent {} to be ready", self.host),
            CONVERGE,
            || {
                self.check_alive()?;
                match self.http_get("/readyz")? {
                    (200, _) => Ok(()),
                    (code, body) => Err(format!("/readyz answered {code}: {body}")),
                }
            },
        );
    }

    /// The value of one un-labelled metric.
    pub fn metric(&self, name: &str) -> Result<f64, String> {
        let (code, body) = self.http_get("/metrics")?;
        if code != 200 {
            return Err(format!("/metrics answered {code}"));
        }
        body.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
            .ok_or_else(|| format!("no {name} in /metrics:\n{body}"))
    }

    /// SIGTERM, then waits for the exit (SIGKILL after 10 s).
    pub fn stop(&self) -> ExitStatus {
        let Some(mut child) = self.child.borrow_mut().take() else {
            panic!("agent {} is not running", self.host);
        };
        terminate(&mut child)
    }

    /// Starts the same agent again (after [`Agent::stop`]).
    pub fn restart(&self) {
        assert!(
            self.child.borrow().is_none(),
            "agent {} still running",
            self.host
        );
        self.spawn();
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "--- agent {} (netns {}) log tail, full log at {}:\n{}",
                self.host,
                self.netns,
                self.log.display(),
                self.log_tail(60)
            );
        }
        if let Some(mut child) = self.child.borrow_mut().take() {
            terminate(&mut child);
        }
    }
}

/// SIGTERM our own child, SIGKILL if it lingers; never panics.
fn terminate(child: &mut Child) -> ExitStatus {
    if let Ok(pid) = i32::try_from(child.id()) {
        // SAFETY: kill(2) on our own child that has not been reaped yet, so
        // the pid cannot belong to another process.
        unsafe {
            libc::kill(pid, libc::SIGTERM);
        }
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return status,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            _ => {
                let _ = child.kill();
                return child
                    .wait()
                    .unwrap_or_else(|e| panic!("waiting for agent {}: {e}", child.id()));
            }
        }
    }
}

/// A plain HTTP/1.1 GET to 127.0.0.1:`port` of network namespace `netns`,
/// made from a thread that entered it (the agent's loopback is its own).
pub fn http_get_in_netns(netns: &str, port: u16, path: &str) -> Result<(u16, String), String> {
    let handle_path = format!("/var/run/netns/{netns}");
    let path = path.to_string();
    std::thread::scope(|scope| {
        scope
            .spawn(move || -> Result<(u16, String), String> {
                let handle = fs::File::open(&handle_path)
                    .map_err(|e| format!("opening {handle_path}: {e}"))?;
                // SAFETY: valid descriptor; setns changes only this thread.
                let rc = unsafe { libc::setns(handle.as_raw_fd(), libc::CLONE_NEWNET) };
                if rc != 0 {
                    return Err(format!(
                        "setns {handle_path}: {}",
                        std::io::Error::last_os_error()
                    ));
                }
                let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
                let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))
                    .map_err(|e| format!("connecting to {addr} in {netns}: {e}"))?;
                s.set_read_timeout(Some(Duration::from_secs(5)))
                    .map_err(|e| e.to_string())?;
                write!(
                    s,
                    "GET {path} HTTP/1.1\r\nHost: agent\r\nConnection: close\r\n\r\n"
                )
                .map_err(|e| format!("GET {path}: {e}"))?;
                let mut raw = String::new();
                s.read_to_string(&mut raw)
                    .map_err(|e| format!("GET {path}: {e}"))?;
                let (head, body) = raw
                    .split_once("\r\n\r\n")
                    .ok_or_else(|| format!("GET {path}: malformed answer {raw:?}"))?;
                let code = head
                    .split_whitespace()
                    .nth(1)
                    .and_then(|c| c.parse().ok())
                    .ok_or_else(|| format!("GET {path}: no status in {head:?}"))?;
                Ok((code, body.to_string()))
            })
            .join()
            .unwrap_or_else(|p| std::panic::resume_unwind(p))
    })
}

/// Runs `routecfg once` in a namespace; `env` adds environment variables
/// (the process gets no KUBECONFIG, no in-cluster variables and an empty
/// HOME unless `env` sets them).
pub fn run_once(netns: &str, args: &[&str], env: &[(&str, &str)], home: &Path) -> Output {
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", netns, ROUTECFG, "once"])
        .args(args)
        .env("RUST_LOG", LOG_FILTER)
        .env("HOME", home)
        .env_remove("KUBECONFIG")
        .env_remove("KUBERNETES_SERVICE_HOST")
        .env_remove("KUBERNETES_SERVICE_PORT")
        .env_remove("ROUTECFG_SA_DIR")
        .stdin(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output()
        .unwrap_or_else(|e| panic!("running routecfg once in {netns}: {e}"))
}

/// Creates link `name` in `ns`, administratively down, the way a CNI or a
/// tunnel would show up: a veth whose peer (already up, in the same
/// namespace) stands in for the far end. (This kernel has no dummy links.)
pub fn add_link(ns: &Netns, name: &str) {
    let peer = format!("peer{}", NEXT.fetch_add(1, Ordering::Relaxed));
    ns.ip(&["link", "add", name, "type", "veth", "peer", "name", &peer]);
    ns.ip(&["link", "set", &peer, "up"]);
}

/// A node namespace with a link `dummy0` holding 10.90.0.1/24, so gateways
/// in 10.90.0.0/24 are reachable for the kernel.
pub fn dummy_node(tag: &str) -> Netns {
    let ns = Netns::new(tag);
    add_link(&ns, "dummy0");
    ns.ip_line("addr add 10.90.0.1/24 dev dummy0");
    ns.ip_line("link set dummy0 up");
    ns
}

/// The name of the link [`KubeEnv::attach`] created in `ns` (the one
/// holding `node_ip`).
pub fn api_link(ns: &Netns, node_ip: &str) -> String {
    let out = ns.ip(&["-o", "-4", "addr", "show"]);
    out.lines()
        .find(|l| l.contains(&format!(" {node_ip}/")))
        .and_then(|l| l.split_whitespace().nth(1))
        .map(str::to_string)
        .unwrap_or_else(|| panic!("no link with {node_ip} in {}:\n{out}", ns.name()))
}

/// (src, dst, iif, oif, fwmark) of a rule: what identifies it in a table.
pub type RuleKey = (
    Option<IpNet>,
    Option<IpNet>,
    Option<String>,
    Option<String>,
    Option<u32>,
);

/// What a route of a spec must look like in the kernel.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RouteWant {
    pub gateway: Option<IpAddr>,
    pub dev: Option<String>,
    pub prefsrc: Option<IpAddr>,
    /// Kernel scope number, when the spec names one.
    pub scope: Option<u8>,
    pub onlink: bool,
}

/// The kernel state one RouteConfiguration spec calls for (IPv4 specs).
#[derive(Clone, Debug)]
pub struct Expected {
    pub name: String,
    pub id: u32,
    pub rules: Vec<RuleKey>,
    pub routes: BTreeMap<IpNet, RouteWant>,
}

impl Expected {
    /// Reads `spec` (as the API returns it).
    pub fn from_spec(spec: &Value) -> Expected {
        let table = &spec["table"];
        let name = table["name"]
            .as_str()
            .unwrap_or_else(|| panic!("spec without table name: {spec}"))
            .to_string();
        let net = |v: &Value| -> Option<IpNet> {
            v.as_str().map(|s| {
                s.parse::<IpNet>()
                    .unwrap_or_else(|e| panic!("{name}: bad CIDR {s}: {e}"))
                    .trunc()
            })
        };
        let addr = |v: &Value| -> Option<IpAddr> {
            v.as_str().map(|s| {
                s.parse()
                    .unwrap_or_else(|e| panic!("{name}: bad address {s}: {e}"))
            })
        };
        let text = |v: &Value| v.as_str().map(str::to_string);
        let mut rules = Vec::new();
        let mut routes = BTreeMap::new();
        for rule in table["rules"].as_array().into_iter().flatten() {
            rules.push((
                net(&rule["src"]),
                net(&rule["dst"]),
                text(&rule["iif"]),
                text(&rule["oif"]),
                rule["fwmark"].as_u64().map(|m| m as u32),
            ));
            for route in rule["routes"].as_array().into_iter().flatten() {
                let dst = net(&route["dst"]).unwrap_or_else(|| panic!("{name}: route without dst"));
                assert_eq!(
                    Family::of_net(&dst),
                    Family::V4,
                    "{name}: these tests expect IPv4 specs"
                );
                let scope = route["scope"].as_str().map(|s| match s {
                    "global" => 0,
                    "site" => 200,
                    "link" => 253,
                    "host" => 254,
                    "nowhere" => 255,
                    other => panic!("{name}: unknown scope {other}"),
                });
                routes.insert(
                    dst,
                    RouteWant {
                        gateway: addr(&route["gw"]),
                        dev: text(&route["dev"]),
                        prefsrc: addr(&route["src"]),
                        scope,
                        onlink: route["onlink"].as_bool().unwrap_or(false),
                    },
                );
            }
        }
        rules.sort();
        let id = table_id(&name);
        Expected {
            name,
            id,
            rules,
            routes,
        }
    }

    /// `Ok` when the namespace holds exactly this table: the spec's rules
    /// pointing at it and the spec's routes in it, all marked as ours.
    pub fn check(&self, ns: &Netns) -> Result<(), String> {
        let who = format!("table {} ({}) in {}", self.name, self.id, ns.name());
        let mut rules = Vec::new();
        for r in ns.rules().into_iter().filter(|r| r.table == self.id) {
            if r.protocol != PROTOCOL || r.family != Family::V4 {
                return Err(format!("{who}: unexpected rule {r:?}"));
            }
            rules.push((r.src, r.dst, r.iif, r.oif, r.fwmark));
        }
        rules.sort();
        if rules != self.rules {
            return Err(format!(
                "{who}: rules differ\n want {:?}\n have {rules:?}",
                self.rules
            ));
        }
        let kernel = ns.routes(self.id);
        let have: BTreeSet<IpNet> = kernel.iter().map(|r| r.dst).collect();
        let want: BTreeSet<IpNet> = self.routes.keys().copied().collect();
        if have != want || kernel.len() != want.len() {
            return Err(format!(
                "{who}: route destinations differ\n want {want:?}\n have {kernel:?}"
            ));
        }
        for k in &kernel {
            let w = &self.routes[&k.dst];
            let ok = k.protocol == PROTOCOL
                && k.kind == "unicast"
                && k.gateway == w.gateway
                && w.dev.as_ref().is_none_or(|d| k.dev.as_ref() == Some(d))
                && w.prefsrc.is_none_or(|s| k.prefsrc == Some(s))
                && w.scope.is_none_or(|s| k.scope == s)
                && (!w.onlink || k.onlink);
            if !ok {
                return Err(format!("{who}: route {k:?} does not match {w:?}"));
            }
        }
        Ok(())
    }
}

/// `Ok` when no rule points at table `id` and the table holds no route.
pub fn check_absent(ns: &Netns, id: u32) -> Result<(), String> {
    let rules: Vec<_> = ns.rules().into_iter().filter(|r| r.table == id).collect();
    let routes = ns.routes(id);
    if rules.is_empty() && routes.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "table {id} in {} still has rules {rules:?} and routes {routes:?}",
            ns.name()
        ))
    }
}

/// `Ok` when every rule and route marked as routecfg's belongs to one of
/// `tables`: the agent installed nothing it was not asked for.
pub fn check_owned_only(ns: &Netns, tables: &[u32]) -> Result<(), String> {
    let state = ns.state();
    let stray_rules: Vec<_> = state
        .rules
        .iter()
        .filter(|r| r.protocol == PROTOCOL && !tables.contains(&r.table))
        .collect();
    let stray_routes: Vec<_> = state
        .routes
        .iter()
        .filter(|r| r.protocol == PROTOCOL && !tables.contains(&r.table))
        .collect();
    if stray_rules.is_empty() && stray_routes.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "{} holds routecfg-marked state outside tables {tables:?}: rules {stray_rules:?}, routes {stray_routes:?}",
            ns.name()
        ))
    }
}

/// Whether an rt_tables file has the `ID<TAB>NAME` line of a table.
pub fn rt_tables_has(text: &str, name: &str) -> bool {
    let id = table_id(name).to_string();
    text.lines().any(|l| {
        let mut f = l.split_whitespace();
        f.next() == Some(id.as_str()) && f.next() == Some(name)
    })
}

/// kubectl (as admin, in the API namespace) with `input` on stdin,
/// returning its output whether it succeeded or not: for manifests the API
/// server is expected to refuse.
pub fn kubectl_try_stdin(env: &KubeEnv, args: &[&str], input: &str) -> Output {
    let mut child = Command::new("ip")
        .args(["netns", "exec", env.netns(), "/usr/bin/kubectl"])
        .arg(format!("--kubeconfig={}", env.kubeconfig().display()))
        .arg(format!(
            "--cache-dir={}",
            env.dir().join("kubectl-cache").display()
        ))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("kubectl {args:?}: {e}"));
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(input.as_bytes())
            .unwrap_or_else(|e| panic!("kubectl {args:?}: writing stdin: {e}"));
    }
    child
        .wait_with_output()
        .unwrap_or_else(|e| panic!("kubectl {args:?}: {e}"))
}
