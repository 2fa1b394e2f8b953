//! `run`, `once` and `status`: the API-server-driven commands.

use super::args::{Args, Spec};
use super::binding_flags::{BINDING_FLAGS, Env as BindingEnv, binding_options};
use super::common::{KERNEL_FLAGS, KernelOpts, specs};
use crate::agent::runner::{self, Options};
use crate::kube::ConnectOptions;
use crate::model::selector::{Selector, SelectorSet};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::time::Duration;

const AGENT_FLAGS: &[Spec] = &[
    Spec::value("kubeconfig"),
    Spec::value("context"),
    Spec::value("role"),
    Spec::value("remote-cluster-id"),
    Spec::value("node-name"),
    Spec::value("selector").short('l'),
    Spec::value("host-name"),
    Spec::switch("finalizer"),
    Spec::value("metrics-addr"),
    Spec::value("status-addr"),
    Spec::value("resync"),
    Spec::value("watch-timeout"),
    Spec::value("checkpoint-dir"),
    Spec::switch("allow-match-all"),
];

pub const RUN_HELP: &str = "\
Usage: routecfg run [options]      (daemon)
       routecfg once [options]     (reconcile once, then exit)

Follows RouteConfigurations on the Kubernetes API server and keeps this
host's policy routing equal to the selected ones; reports this host's
`Applied` condition in each object's status (conditions mode), or on a
RouteConfigurationBinding it creates for each object (binding mode).

Connection (in-cluster service account when running in a pod):
      --kubeconfig PATH        kubeconfig file (else in-cluster, KUBECONFIG,
                               ~/.kube/config)
      --context NAME           kubeconfig context (default: current-context)
Which objects (label sets, OR-ed; as upstream):
      --role gateway           with --remote-cluster-id and --node-name
      --role fabric            every node's fabric routes
      --remote-cluster-id ID   remote cluster this gateway serves
      --node-name NAME         this node (default: $NODE_NAME)
  -l, --selector SEL           extra label selector (repeatable)
Behaviour:
      --host-name NAME         name in status conditions (default: $POD_NAME,
                               then the hostname)
      --finalizer              add upstream's finalizer and clean the kernel
                               before an object goes (optional: see README)
      --metrics-addr IP:PORT   serve /metrics, /healthz, /readyz, and /status
                               and /origins unless --status-addr is given;
                               plain HTTP to anyone who can reach it (e.g.
                               NODE_IP:8114)
      --status-addr IP:PORT    serve /status and /origins (and the rest) here
                               instead: they name every table and object, so
                               bind it to
                               loopback (e.g. 127.0.0.1:8115)
      --resync SECONDS         full resync period (default 300)
      --watch-timeout SECONDS  server-side watch timeout (default 300)
      --protocol N             ownership mark (rtm_protocol), default 114;
                               give each agent sharing a network namespace
                               its own value
      --rt-tables PATH|none    table-name file (default /etc/iproute2/rt_tables)
      --allow-match-all        accept rules with no src, dst, iif, oif or
                               fwmark (they capture all traffic; refused by
                               default; warned each time the table is applied)
      --checkpoint-dir DIR     where `apply --confirm` keeps its checkpoint
                               (default $ROUTECFG_CHECKPOINT_DIR, else
                               /run/routecfg): while one with this agent's
                               mark is pending, its tables are left alone
Binding mode (today's Liqo):
      --bindings auto|on|off   auto (default): bindings when the API serves
                               routeconfigurationbindings (asked at start,
                               on every re-list and resync); off: conditions
      --pod-namespace NS       gateway's Pod namespace (default:
                               $POD_NAMESPACE, then the service account's)
      --binding-target KIND/[NAMESPACE/]NAME
                               who we are with -l only (fabric: Node
                               --node-name; gateway: Pod --host-name)
Gateway HA (only the Lease holder applies and writes):
      --leader-elect           take part in leader election
      --leader-lease NS/NAME   the Lease (default: upstream's
                               <gateway-name>.<ns>.<mode>.connections.liqo.io
                               in the pod's namespace)
      --gateway-name NAME      for the default lease (default: --host-name)
      --gateway-mode server|client   for the default lease
      --leader-elect-follow    take no lease: follow the one held by another
                               container of this pod ($POD_NAME)

`once` exits 0 only if every selected object is applied.
SIGTERM/SIGINT stop `run` at once; routes stay in place.
";

pub const STATUS_HELP: &str = "\
Usage: routecfg status [--status-addr IP:PORT] [--output json]

Asks the agent running on this host for every managed table: desired vs
kernel rule and route counts, pending routes and the last error. Give the
agent's --status-addr, or its --metrics-addr when it has no --status-addr
(default 127.0.0.1:8114; --metrics-addr is accepted here as a synonym).
";

fn env_nonempty(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "unknown".into())
}

/// Longest `--resync`: a week. Longer periods mean no safety net at all,
/// and far larger ones would overflow the clock arithmetic.
const MAX_RESYNC: u64 = 7 * 24 * 3600;
/// Longest `--watch-timeout`: a day.
const MAX_WATCH_TIMEOUT: u64 = 24 * 3600;

/// A duration flag in seconds: absent is `default`, else 1..=`max`.
fn seconds(args: &Args, flag: &str, default: u64, max: u64) -> Result<u64, String> {
    match args.number::<u64>(flag)? {
        None => Ok(default),
        Some(n) if (1..=max).contains(&n) => Ok(n),
        Some(n) => Err(format!("--{flag} {n}: expected 1 to {max} seconds")),
    }
}

fn options(args: &Args) -> Result<Options, String> {
    let kernel = KernelOpts::from_args(args)?;
    let node = args
        .value("node-name")
        .map(String::from)
        .or_else(|| env_nonempty("NODE_NAME"));
    let mut sets: Vec<Selector> = match args.value("role") {
        None => vec![],
        Some("fabric") => SelectorSet::fabric().0,
        Some("gateway") => {
            let remote = args
                .value("remote-cluster-id")
                .ok_or("--role gateway needs --remote-cluster-id")?;
            let node = node
                .as_deref()
                .ok_or("--role gateway needs --node-name (or $NODE_NAME)")?;
            SelectorSet::gateway(remote, node).0
        }
        Some(other) => return Err(format!("--role {other:?}: expected gateway or fabric")),
    };
    for s in args.values("selector") {
        sets.push(Selector::parse(s).map_err(|e| format!("--selector {s:?}: {e}"))?);
    }
    if sets.is_empty() {
        return Err("choose objects with --role and/or --selector".into());
    }
    let host = args
        .value("host-name")
        .map(String::from)
        .or_else(|| env_nonempty("POD_NAME"))
        .unwrap_or_else(hostname);
    let ns_file = std::fs::read_to_string(format!(
        "{}/namespace",
        std::env::var("ROUTECFG_SA_DIR")
            .unwrap_or_else(|_| "/var/run/secrets/kubernetes.io/serviceaccount".into())
    ))
    .ok();
    let pod_namespace = env_nonempty("POD_NAMESPACE");
    let pod_name = env_nonempty("POD_NAME").unwrap_or_else(hostname);
    let b = binding_options(
        args,
        args.value("role"),
        node.as_deref(),
        &host,
        &BindingEnv {
            pod_namespace: pod_namespace.as_deref(),
            namespace_file: ns_file.as_deref(),
            pod_name: &pod_name,
        },
    )?;
    Ok(Options {
        connect: ConnectOptions {
            kubeconfig: args.value("kubeconfig").map(PathBuf::from),
            context: args.value("context").map(String::from),
        },
        selectors: SelectorSet(sets),
        host,
        finalizer: args.has("finalizer"),
        metrics_addr: args.value("metrics-addr").map(String::from),
        status_addr: args.value("status-addr").map(String::from),
        resync: Duration::from_secs(seconds(args, "resync", 300, MAX_RESYNC)?),
        protocol: kernel.protocol,
        allow_match_all: args.has("allow-match-all"),
        rt_tables: kernel.rt_tables,
        watch_timeout: seconds(args, "watch-timeout", 300, MAX_WATCH_TIMEOUT)? as u32,
        checkpoint_dir: super::checkpoint::dir(args),
        bindings: b.flag,
        identity: b.identity,
        leader: b.leader,
    })
}

/// `run` (daemon) or `once`.
pub fn agent(argv: &[String], daemon: bool) -> i32 {
    let mut flags = specs(AGENT_FLAGS, KERNEL_FLAGS);
    flags.extend_from_slice(BINDING_FLAGS);
    let args = match Args::parse(argv, &flags) {
        Ok(a) if a.has("help") => return super::help(RUN_HELP),
        Ok(a) => a,
        Err(e) => return super::usage(&e, RUN_HELP),
    };
    let opts = match options(&args) {
        Ok(o) => o,
        Err(e) => return super::usage(&e, RUN_HELP),
    };
    if daemon {
        runner::run(opts)
    } else {
        runner::once(opts)
    }
}

/// `status`: fetches `/status` from the local agent and prints it.
pub fn status(argv: &[String]) -> i32 {
    let flags = [
        Spec::value("metrics-addr"),
        Spec::value("status-addr"),
        Spec::value("output").short('o'),
        Spec::switch("help").short('h'),
    ];
    let args = match Args::parse(argv, &flags) {
        Ok(a) if a.has("help") => return super::help(STATUS_HELP),
        Ok(a) => a,
        Err(e) => return super::usage(&e, STATUS_HELP),
    };
    let addr = args
        .value("status-addr")
        .or_else(|| args.value("metrics-addr"))
        .unwrap_or(DEFAULT_STATUS_ADDR);
    let body = match fetch(addr, "/status") {
        Ok(b) => b,
        Err(e) => return super::fatal(&format!("asking the agent at {addr}: {e}")),
    };
    if args.value("output") == Some("json") {
        println!("{body}");
        return 0;
    }
    let v: serde_json::Value = match serde_json::from_str(&body) {
        Ok(v) => v,
        Err(e) => return super::fatal(&format!("agent answered something unexpected: {e}")),
    };
    print!("{}", render_status(&v));
    0
}

/// Where `status` and `explain` find the agent by default.
pub const DEFAULT_STATUS_ADDR: &str = "127.0.0.1:8114";

/// `GET path` (`/status`, `/origins`) from the agent at `addr`.
pub fn fetch(addr: &str, path: &str) -> Result<String, String> {
    let sock: std::net::SocketAddr = addr.parse().map_err(|_| "expected IP:PORT".to_string())?;
    let mut s =
        TcpStream::connect_timeout(&sock, Duration::from_secs(2)).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .map_err(|e| e.to_string())?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: routecfg\r\nConnection: close\r\n\r\n");
    s.write_all(request.as_bytes()).map_err(|e| e.to_string())?;
    let mut raw = String::new();
    s.read_to_string(&mut raw).map_err(|e| e.to_string())?;
    let (head, body) = raw.split_once("\r\n\r\n").ok_or("malformed HTTP answer")?;
    if !head.starts_with("HTTP/1.1 200") {
        return Err(head.lines().next().unwrap_or("").to_string());
    }
    Ok(body.to_string())
}

fn render_status(v: &serde_json::Value) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "host {}  ready {}",
        v["host"].as_str().unwrap_or("?"),
        v["ready"].as_bool().unwrap_or(false)
    );
    if let Some(mode) = v["mode"].as_str() {
        let _ = writeln!(
            out,
            "mode {mode}  target {}",
            v["target"].as_str().unwrap_or("none")
        );
    }
    if let Some(l) = v["leader"].as_object() {
        let leading = l.get("leading").and_then(|x| x.as_bool()).unwrap_or(false);
        let _ = writeln!(
            out,
            "lease {}  holder {}  {}",
            l.get("lease").and_then(|x| x.as_str()).unwrap_or("?"),
            l.get("holder")
                .and_then(|x| x.as_str())
                .unwrap_or("unknown"),
            if leading { "leading" } else { "standby" }
        );
    }
    let _ = writeln!(
        out,
        "{:<40} {:>10}  {:>13}  {:>13}  {:>7}  object",
        "table", "id", "rules d/k", "routes d/k", "pending"
    );
    for t in v["tables"].as_array().into_iter().flatten() {
        let _ = writeln!(
            out,
            "{:<40} {:>10}  {:>13}  {:>13}  {:>7}  {}",
            t["table"].as_str().unwrap_or(""),
            t["id"],
            format!("{}/{}", t["desired"]["rules"], t["kernel"]["rules"]),
            format!("{}/{}", t["desired"]["routes"], t["kernel"]["routes"]),
            t["pending"].as_array().map_or(0, Vec::len),
            t["object"].as_str().unwrap_or(""),
        );
        for line in t["pending"]
            .as_array()
            .into_iter()
            .flatten()
            .chain(t["errors"].as_array().into_iter().flatten())
        {
            let _ = writeln!(out, "    {}", line.as_str().unwrap_or(""));
        }
    }
    if let Some(p) = v["paused"].as_object() {
        let _ = writeln!(
            out,
            "paused: checkpoint {} pending (`routecfg confirm` / `routecfg rollback`); {} table(s) on trial left alone",
            p.get("checkpoint").and_then(|c| c.as_str()).unwrap_or("?"),
            p.get("tables")
                .and_then(|t| t.as_array())
                .map_or(0, Vec::len)
        );
    }
    for e in v["invalid"].as_array().into_iter().flatten() {
        let _ = writeln!(out, "invalid: {}", e.as_str().unwrap_or(""));
    }
    for c in v["collisions"].as_array().into_iter().flatten() {
        let text = |p: &str| c.pointer(p).and_then(|s| s.as_str()).unwrap_or("?");
        let _ = writeln!(
            out,
            "table id collision: {} {:?} (kept) and {} {:?} (not applied) both map to id {}",
            text("/kept/object"),
            text("/kept/table"),
            text("/refused/object"),
            text("/refused/table"),
            c["id"]
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(argv: &[&str]) -> Result<Options, String> {
        let argv: Vec<String> = argv.iter().map(|s| s.to_string()).collect();
        options(&Args::parse(&argv, &specs(AGENT_FLAGS, KERNEL_FLAGS))?)
    }

    #[test]
    fn status_lists_table_id_collisions() {
        let v = serde_json::json!({"host": "h", "ready": true, "tables": [], "invalid": [],
            "collisions": [{"id": 1_463_302_529u32,
                "kept": {"object": "liqo/a", "table": "collide-14868"},
                "refused": {"object": "liqo/b", "table": "collide-25220"}}]});
        let text = render_status(&v);
        assert!(
            text.contains(
                "table id collision: liqo/a \"collide-14868\" (kept) and liqo/b \"collide-25220\" \
                 (not applied) both map to id 1463302529\n"
            ),
            "{text}"
        );
    }

    #[test]
    fn allow_match_all_is_off_unless_given() {
        let base = ["--role", "fabric", "--rt-tables", "none"];
        assert_eq!(parse(&base).map(|o| o.allow_match_all), Ok(false));
        let mut v = base.to_vec();
        v.push("--allow-match-all");
        assert_eq!(parse(&v).map(|o| o.allow_match_all), Ok(true));
    }

    #[test]
    fn duration_flags_are_range_checked() {
        let base = ["--role", "fabric", "--rt-tables", "none"];
        let with = |extra: &[&str]| {
            let mut v = base.to_vec();
            v.extend_from_slice(extra);
            parse(&v)
        };
        assert_eq!(with(&[]).map(|o| o.resync), Ok(Duration::from_secs(300)));
        assert_eq!(
            with(&["--resync", "604800"]).map(|o| o.resync),
            Ok(Duration::from_secs(604_800))
        );
        for bad in [
            "0",
            "604801",
            "9223372036854775807",
            "18446744073709551616",
            "-1",
        ] {
            assert!(with(&["--resync", bad]).is_err(), "--resync {bad}");
        }
        assert_eq!(
            with(&["--resync", "9223372036854775807"]).err().as_deref(),
            Some("--resync 9223372036854775807: expected 1 to 604800 seconds")
        );
        assert_eq!(
            with(&["--watch-timeout", "86400"]).map(|o| o.watch_timeout),
            Ok(86_400)
        );
        for bad in ["0", "86401", "4294967296"] {
            assert!(
                with(&["--watch-timeout", bad]).is_err(),
                "--watch-timeout {bad}"
            );
        }
    }

    #[test]
    fn status_shows_mode_target_and_leader() {
        let v = json!({"host": "gw-0", "ready": true, "mode": "bindings",
            "target": "Pod liqo-tenant-milan/gw-0",
            "leader": {"lease": "liqo-tenant-milan/gw.liqo-tenant-milan.server.connections.liqo.io",
                       "holder": "gw-1", "leading": false},
            "tables": [], "invalid": []});
        let text = render_status(&v);
        assert!(
            text.contains("mode bindings  target Pod liqo-tenant-milan/gw-0\n"),
            "{text}"
        );
        assert!(
            text.contains("lease liqo-tenant-milan/gw.liqo-tenant-milan.server.connections.liqo.io  holder gw-1  standby\n"),
            "{text}"
        );
        let v = json!({"host": "n1", "ready": true, "mode": "conditions", "target": null,
                       "leader": null, "tables": []});
        let text = render_status(&v);
        assert!(
            text.contains("mode conditions  target none\n") && !text.contains("lease"),
            "{text}"
        );
    }
}
