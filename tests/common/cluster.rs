//! A real Kubernetes 1.20 cluster (tests/cluster/up.sh) for the tests that
//! run routecfg the way users deploy it: the DaemonSet, on a kubelet, with
//! containerd and runc. The cluster lives in network namespaces of its own;
//! dropping the guard runs tests/cluster/down.sh.

use super::netns::{describe, run};
use serde_json::Value;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The repository root (scripts, deploy/ manifests).
pub fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// One node: its Kubernetes name and the network namespace it lives in.
#[derive(Clone, Debug)]
pub struct Node {
    pub name: String,
    pub netns: String,
}

impl Node {
    /// Runs `argv` in the node's network namespace.
    pub fn exec(&self, argv: &[&str]) -> Output {
        run(
            Command::new("ip")
                .args(["netns", "exec", &self.netns])
                .args(argv),
            &format!("ip netns exec {} {}", self.netns, argv.join(" ")),
        )
    }

    /// `ip ARGS` in the node's namespace; panics on failure.
    pub fn ip(&self, args: &[&str]) -> String {
        let out = run(
            Command::new("ip").args(["-n", &self.netns]).args(args),
            "ip -n",
        );
        assert!(
            out.status.success(),
            "ip -n {} {}: {}",
            self.netns,
            args.join(" "),
            describe(&out)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `ip -j ARGS` parsed.
    pub fn ip_json(&self, args: &[&str]) -> Vec<Value> {
        let mut full = vec!["-j", "-N"];
        full.extend_from_slice(args);
        let text = self.ip(&full);
        if text.trim().is_empty() {
            return Vec::new();
        }
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("ip -j {args:?}: {e}: {text}"))
    }

    /// One echo request with a one-second wait.
    pub fn ping_once(&self, dst: &str) -> bool {
        let out = self.exec(&["ping", "-n", "-q", "-c", "1", "-W", "1", dst]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            !stderr.contains("exec of"),
            "cannot run ping (Debian package iputils-ping): {stderr}"
        );
        out.status.success()
    }
}

/// A running cluster; down.sh runs on drop.
pub struct Cluster {
    pub dir: PathBuf,
    pub kubeconfig: PathBuf,
    pub nodes: Vec<Node>,
}

impl Cluster {
    /// Brings a cluster up in `dir` with `nodes` nodes and the image archive
    /// imported into every node's containerd. Panics with up.sh's output if
    /// it fails (up.sh stops what it started).
    /// `env` goes to up.sh (e.g. ROUTECFG_SA_MAX_EXPIRATION).
    pub fn up(dir: &Path, node_count: u8, image_archive: &Path, env: &[(&str, &str)]) -> Cluster {
        let script = repo().join("tests/cluster/up.sh");
        let out = run(
            Command::new(&script)
                .args(["--nodes", &node_count.to_string()])
                .arg(dir)
                .env("ROUTECFG_IMAGE_ARCHIVE", image_archive)
                .envs(env.iter().copied())
                .stdin(Stdio::null()),
            "tests/cluster/up.sh",
        );
        assert!(
            out.status.success(),
            "tests/cluster/up.sh {} failed:\n{}",
            dir.display(),
            describe(&out)
        );
        let stdout = String::from_utf8_lossy(&out.stdout);
        let kubeconfig = PathBuf::from(stdout.lines().last().unwrap_or_default());
        assert!(
            kubeconfig.is_file(),
            "up.sh's last line is not a kubeconfig: {stdout}"
        );
        let nodes_file = dir.join("nodes");
        let text = std::fs::read_to_string(&nodes_file)
            .unwrap_or_else(|e| panic!("{}: {e}", nodes_file.display()));
        let nodes = text
            .lines()
            .filter_map(|l| {
                let mut w = l.split_whitespace();
                Some(Node {
                    name: w.next()?.to_string(),
                    netns: w.next()?.to_string(),
                })
            })
            .collect::<Vec<_>>();
        assert_eq!(
            nodes.len(),
            usize::from(node_count),
            "{}: {text}",
            nodes_file.display()
        );
        Cluster {
            dir: dir.to_path_buf(),
            kubeconfig,
            nodes,
        }
    }

    fn kubectl_cmd(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new("kubectl");
        cmd.arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .arg("--cache-dir")
            .arg(self.dir.join("kubectl-cache"))
            .args(args);
        cmd
    }

    /// kubectl against the cluster, whatever its outcome.
    pub fn try_kubectl(&self, args: &[&str]) -> Output {
        run(
            &mut self.kubectl_cmd(args),
            &format!("kubectl {}", args.join(" ")),
        )
    }

    /// kubectl's stdout; panics on failure.
    pub fn kubectl(&self, args: &[&str]) -> String {
        let out = self.try_kubectl(args);
        assert!(
            out.status.success(),
            "kubectl {}:\n{}",
            args.join(" "),
            describe(&out)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// kubectl with `input` on stdin; panics on failure.
    pub fn kubectl_stdin(&self, args: &[&str], input: &str) -> String {
        let mut child = self
            .kubectl_cmd(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("kubectl {}: {e}", args.join(" ")));
        if let Some(mut stdin) = child.stdin.take() {
            stdin
                .write_all(input.as_bytes())
                .unwrap_or_else(|e| panic!("kubectl {} stdin: {e}", args.join(" ")));
        }
        let out = child
            .wait_with_output()
            .unwrap_or_else(|e| panic!("kubectl {}: {e}", args.join(" ")));
        assert!(
            out.status.success(),
            "kubectl {}:\n{}",
            args.join(" "),
            describe(&out)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// kubectl -o json, parsed.
    pub fn kubectl_json(&self, args: &[&str]) -> Value {
        let mut full = args.to_vec();
        full.extend_from_slice(&["-o", "json"]);
        let text = self.kubectl(&full);
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("kubectl {args:?}: {e}: {text}"))
    }

    pub fn node(&self, name: &str) -> &Node {
        self.nodes
            .iter()
            .find(|n| n.name == name)
            .unwrap_or_else(|| panic!("no node {name} in {:?}", self.nodes))
    }

    /// PID of a process up.sh started (its name in DIR/pids, e.g.
    /// `containerd-rome-worker`).
    pub fn pid_of(&self, name: &str) -> u32 {
        let path = self.dir.join("pids");
        let text =
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        text.lines()
            .find_map(|l| {
                let mut w = l.split_whitespace();
                (w.next() == Some(name)).then(|| w.next()?.parse().ok())?
            })
            .unwrap_or_else(|| panic!("no {name} in {}:\n{text}", path.display()))
    }

    /// The containerd socket of a node (for `ctr`).
    pub fn containerd_socket(&self, node: &str) -> PathBuf {
        self.dir.join(node).join("containerd/containerd.sock")
    }

    /// The host PID of a container (`containerd://ID` from a pod status)
    /// running on `node`, from that node's containerd.
    pub fn container_pid(&self, node: &str, container_id: &str) -> u32 {
        let id = container_id
            .strip_prefix("containerd://")
            .unwrap_or_else(|| panic!("not a containerd container id: {container_id}"));
        let sock = self.containerd_socket(node);
        let out = run(
            Command::new("ctr")
                .arg("-a")
                .arg(&sock)
                .args(["-n", "k8s.io", "tasks", "ls"]),
            "ctr tasks ls",
        );
        assert!(out.status.success(), "ctr tasks ls: {}", describe(&out));
        let text = String::from_utf8_lossy(&out.stdout);
        text.lines()
            .find_map(|l| {
                let mut w = l.split_whitespace();
                (w.next() == Some(id)).then(|| w.next()?.parse().ok())?
            })
            .unwrap_or_else(|| panic!("container {id} not among {node}'s tasks:\n{text}"))
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let script = repo().join("tests/cluster/down.sh");
        match Command::new(&script).arg(&self.dir).output() {
            Ok(out) if out.status.success() => {
                if std::env::var_os("ROUTECFG_KEEP_CLUSTER_DIR").is_none() {
                    let _ = std::fs::remove_dir_all(&self.dir);
                }
            }
            Ok(out) => eprintln!(
                "tests/cluster/down.sh {} failed (state kept there):\n{}",
                self.dir.display(),
                describe(&out)
            ),
            Err(e) => eprintln!("cannot run {}: {e}", script.display()),
        }
    }
}

/// Polls `probe` until it returns Some, for at most `limit` (a bound on
/// waiting for the cluster, not a timing assertion).
pub fn wait_for<T>(what: &str, limit: Duration, mut probe: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = probe() {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "gave up after {limit:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}
