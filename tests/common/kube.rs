//! A real kube-apiserver + etcd for end-to-end tests.
//!
//! Fakes of the Kubernetes API drift from the real thing exactly where an
//! agent breaks (watch semantics, RBAC answers, CRD validation), so the
//! end-to-end tests talk to the real server that `.ci/setup-kube.sh` builds
//! from Debian's source package.
//!
//! Each [`KubeEnv`] lives in a network namespace of its own with a bridge
//! `198.18.X.1/24`: test node namespaces are wired into that bridge with
//! [`KubeEnv::attach`], so API traffic stays between the project's own
//! namespaces and never touches the host's network. Because every env has
//! its own namespace, etcd and kube-apiserver use fixed ports there without
//! clashing with other envs, in this process or another.

use std::fs;
use std::io::{Read, Write};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// Kept in step with `K8S_VERSION` in `.ci/setup-kube.sh`.
const KUBE_VERSION: &str = "1.20.2";
const DEFAULT_CACHE_ROOT: &str = "/var/cache/routecfg";
const ETCD: &str = "/usr/bin/etcd";
const KUBECTL: &str = "/usr/bin/kubectl";
const SECURE_PORT: u16 = 6443;
const READY_TIMEOUT: Duration = Duration::from_secs(60);
const STOP_TIMEOUT: Duration = Duration::from_secs(10);
const NETNS_PREFIX: &str = "rcfg-api-";
const BRIDGE: &str = "br0";

static NEXT_ENV: AtomicU32 = AtomicU32::new(0);

/// One running kube-apiserver with its own etcd, certificates and network
/// namespace; everything is torn down on drop.
pub struct KubeEnv {
    netns: String,
    /// The `X` of `198.18.X.0/24`.
    subnet: u8,
    dir: PathBuf,
    admin_token: String,
    kubeconfig: PathBuf,
    apiserver_bin: PathBuf,
    etcd: Option<Child>,
    apiserver: Option<Child>,
    netns_created: bool,
    next_veth: u32,
}

impl KubeEnv {
    /// Starts etcd and kube-apiserver and waits until `/readyz` answers 200.
    /// Panics when the machine cannot run them: tests that need a real API
    /// server must fail loudly rather than pass without one.
    pub fn start() -> KubeEnv {
        // SAFETY: geteuid has no preconditions and cannot fail.
        let euid = unsafe { libc::geteuid() };
        assert!(
            euid == 0,
            "KubeEnv needs root (it creates network namespaces and runs kube-apiserver); euid is {euid}"
        );
        let apiserver_bin = apiserver_binary();
        assert!(
            is_executable(&apiserver_bin),
            "kube-apiserver not found at {}: run .ci/setup-kube.sh (as root) first",
            apiserver_bin.display()
        );
        for tool in [ETCD, KUBECTL, "/usr/bin/openssl"] {
            assert!(
                is_executable(Path::new(tool)),
                "{tool} is missing: run .ci/setup-kube.sh (as root) first"
            );
        }
        reap_stale_envs();

        let n = NEXT_ENV.fetch_add(1, Ordering::Relaxed);
        let netns = format!("{NETNS_PREFIX}{}-{n}", std::process::id());
        let dir = std::env::temp_dir().join(&netns);
        let mut env = KubeEnv {
            subnet: (n % 256) as u8,
            kubeconfig: dir.join("admin.kubeconfig"),
            admin_token: random_token(),
            netns,
            dir,
            apiserver_bin,
            etcd: None,
            apiserver: None,
            netns_created: false,
            next_veth: 0,
        };
        // From here on a panic drops `env`, which cleans up what exists.
        let started = Instant::now();
        if env.dir.exists() {
            let _ = fs::remove_dir_all(&env.dir);
        }
        fs::create_dir_all(env.dir.join("certs"))
            .unwrap_or_else(|e| panic!("creating {}: {e}", env.dir.display()));
        env.create_network();
        env.write_credentials();
        env.start_etcd();
        env.start_apiserver();
        eprintln!(
            "KubeEnv {}: ready at {} in {:.1} s",
            env.netns,
            env.server(),
            started.elapsed().as_secs_f64()
        );
        env
    }

    /// What agents in attached node namespaces connect to.
    pub fn server(&self) -> String {
        format!("https://{}:{SECURE_PORT}", self.api_ip())
    }

    /// The bridge address kube-apiserver advertises (and its certificate
    /// names), reachable from attached node namespaces.
    pub fn api_ip(&self) -> String {
        format!("198.18.{}.1", self.subnet)
    }

    /// An address in this env's /24 for [`KubeEnv::attach`]; `host` must be
    /// 2..=254 (1 is the API server's).
    pub fn node_ip(&self, host: u8) -> String {
        assert!(
            (2..=254).contains(&host),
            "node host number {host} outside 2..=254"
        );
        format!("198.18.{}.{host}", self.subnet)
    }

    /// The self-signed serving certificate (and its CA) kube-apiserver
    /// generated, so clients verify TLS for real.
    pub fn ca_path(&self) -> PathBuf {
        self.dir.join("certs").join("apiserver.crt")
    }

    /// A token in group `system:masters`, for setting up test objects.
    pub fn admin_token(&self) -> &str {
        &self.admin_token
    }

    /// Admin kubeconfig pointing at [`KubeEnv::server`].
    pub fn kubeconfig(&self) -> &Path {
        &self.kubeconfig
    }

    /// The network namespace the API server runs in.
    pub fn netns(&self) -> &str {
        &self.netns
    }

    /// Scratch directory owned by this env (removed on drop).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Wires a test-created node namespace into the API bridge through a
    /// veth (`kapi<X>` on the node side, holding `node_ip`/24), so an agent
    /// there reaches [`KubeEnv::server`] without any host networking.
    pub fn attach(&mut self, node_netns: &str, node_ip: &str) {
        let ip: Ipv4Addr = node_ip
            .parse()
            .unwrap_or_else(|e| panic!("attach {node_netns}: bad node address {node_ip:?}: {e}"));
        let [a, b, c, d] = ip.octets();
        assert!(
            a == 198 && b == 18 && c == self.subnet && (2..=254).contains(&d),
            "attach {node_netns}: {node_ip} is not a host address of 198.18.{}.0/24 (use node_ip())",
            self.subnet
        );
        let api_side = format!("v{}", self.next_veth);
        self.next_veth += 1;
        let node_side = format!("kapi{}", self.subnet);
        run_ok(
            "ip",
            &[
                "-n",
                &self.netns,
                "link",
                "add",
                &api_side,
                "type",
                "veth",
                "peer",
                "name",
                &node_side,
                "netns",
                node_netns,
            ],
        );
        run_ok(
            "ip",
            &[
                "-n",
                &self.netns,
                "link",
                "set",
                &api_side,
                "master",
                BRIDGE,
                "up",
            ],
        );
        let cidr = format!("{node_ip}/24");
        run_ok(
            "ip",
            &["-n", node_netns, "addr", "add", &cidr, "dev", &node_side],
        );
        run_ok("ip", &["-n", node_netns, "link", "set", &node_side, "up"]);
    }

    /// Runs kubectl as admin inside the API namespace (where the bridge
    /// address is local, so no attachment is needed).
    pub fn kubectl(&self, args: &[&str]) -> Output {
        self.kubectl_in(&self.netns, args)
    }

    /// Runs kubectl as admin from another namespace, e.g. an attached node
    /// namespace, to check what an agent there can reach.
    pub fn kubectl_in(&self, netns: &str, args: &[&str]) -> Output {
        self.kubectl_command(netns, args)
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("running kubectl {args:?} in {netns}: {e}"))
    }

    /// Like [`KubeEnv::kubectl`] but panics with kubectl's stderr unless it
    /// succeeds; returns stdout.
    pub fn kubectl_ok(&self, args: &[&str]) -> String {
        let out = self.kubectl(args);
        expect_success(&format!("kubectl {}", args.join(" ")), out)
    }

    /// Like [`KubeEnv::kubectl_ok`] with `stdin` fed to kubectl, so tests
    /// can `apply -f -` manifests they build in memory.
    pub fn kubectl_stdin(&self, args: &[&str], stdin: &str) -> String {
        let what = format!("kubectl {}", args.join(" "));
        let mut child = self
            .kubectl_command(&self.netns, args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("{what}: {e}"));
        if let Some(mut pipe) = child.stdin.take() {
            pipe.write_all(stdin.as_bytes())
                .unwrap_or_else(|e| panic!("{what}: writing stdin: {e}"));
        }
        let out = child
            .wait_with_output()
            .unwrap_or_else(|e| panic!("{what}: {e}"));
        expect_success(&what, out)
    }

    /// Mints a real ServiceAccount token (the ServiceAccount must exist), so
    /// RBAC manifests are tested against the real authorizer.
    pub fn create_service_account_token(&self, ns: &str, sa: &str) -> String {
        let token = self.kubectl_ok(&["create", "token", sa, "-n", ns]);
        let token = token.trim();
        assert!(
            !token.is_empty(),
            "kubectl create token {sa} -n {ns}: empty token"
        );
        token.to_string()
    }

    /// Writes a kubeconfig for another identity (e.g. a ServiceAccount
    /// token), as an agent would be deployed with.
    pub fn write_kubeconfig(&self, name: &str, token: &str) -> PathBuf {
        let path = self.dir.join(format!("{name}.kubeconfig"));
        write_kubeconfig(&path, &self.server(), &self.ca_path(), name, token);
        path
    }

    /// Stops kube-apiserver only (etcd and data stay), for outage tests.
    pub fn stop_apiserver(&mut self) {
        if let Some(child) = self.apiserver.take() {
            terminate(child, "kube-apiserver");
        }
    }

    /// Sends `signal` (SIGSTOP, SIGCONT, ...) to kube-apiserver: a server
    /// that hangs without closing anything.
    pub fn signal_apiserver(&self, signal: i32) {
        let child = self
            .apiserver
            .as_ref()
            .unwrap_or_else(|| panic!("{}: kube-apiserver is not running", self.netns));
        // SAFETY: kill(2) on our own child's pid, which is not reaped yet.
        let r = unsafe { libc::kill(child.id() as libc::pid_t, signal) };
        assert_eq!(r, 0, "kill: {}", std::io::Error::last_os_error());
    }

    /// Starts kube-apiserver again (same etcd, certificates and tokens) and
    /// waits until it is ready.
    pub fn start_apiserver(&mut self) {
        assert!(
            self.apiserver.is_none(),
            "{}: kube-apiserver already running",
            self.netns
        );
        let log = self.log_file("kube-apiserver.log");
        let dir = self.dir.display().to_string();
        let args = [
            "--etcd-servers=http://127.0.0.1:2379".into(),
            "--bind-address=0.0.0.0".into(),
            format!("--advertise-address={}", self.api_ip()),
            format!("--secure-port={SECURE_PORT}"),
            format!("--cert-dir={dir}/certs"),
            format!("--token-auth-file={dir}/tokens.csv"),
            "--authorization-mode=RBAC".into(),
            "--service-account-issuer=https://kubernetes.default.svc".into(),
            format!("--service-account-key-file={dir}/sa.pub"),
            format!("--service-account-signing-key-file={dir}/sa.key"),
            "--service-cluster-ip-range=10.96.0.0/16".into(),
            "--enable-admission-plugins=NamespaceLifecycle,ServiceAccount".into(),
        ];
        let bin = self.apiserver_bin.display().to_string();
        let started = Instant::now();
        self.apiserver = Some(self.spawn_in_netns(&bin, &args, log));
        self.wait_ready();
        eprintln!(
            "KubeEnv {}: kube-apiserver ready in {:.1} s",
            self.netns,
            started.elapsed().as_secs_f64()
        );
    }

    /// An API outage and recovery, as an agent sees one.
    pub fn restart_apiserver(&mut self) {
        self.stop_apiserver();
        self.start_apiserver();
    }

    /// Tears everything down now (idempotent; drop does the same).
    pub fn stop(&mut self) {
        if let Some(child) = self.apiserver.take() {
            terminate(child, "kube-apiserver");
        }
        if let Some(child) = self.etcd.take() {
            terminate(child, "etcd");
        }
        if self.netns_created {
            delete_netns(&self.netns);
            self.netns_created = false;
        }
        let _ = fs::remove_dir_all(&self.dir);
    }

    fn create_network(&mut self) {
        run_ok("ip", &["netns", "add", &self.netns]);
        self.netns_created = true;
        let ns = self.netns.clone();
        run_ok("ip", &["-n", &ns, "link", "set", "lo", "up"]);
        run_ok("ip", &["-n", &ns, "link", "add", BRIDGE, "type", "bridge"]);
        let cidr = format!("{}/24", self.api_ip());
        run_ok("ip", &["-n", &ns, "addr", "add", &cidr, "dev", BRIDGE]);
        run_ok("ip", &["-n", &ns, "link", "set", BRIDGE, "up"]);
    }

    fn write_credentials(&self) {
        let key = self.dir.join("sa.key");
        let key = key.display().to_string();
        let public = self.dir.join("sa.pub").display().to_string();
        run_ok("openssl", &["genrsa", "-out", &key, "2048"]);
        run_ok("openssl", &["rsa", "-in", &key, "-pubout", "-out", &public]);
        let tokens = self.dir.join("tokens.csv");
        fs::write(
            &tokens,
            format!("{},admin,admin,system:masters\n", self.admin_token),
        )
        .unwrap_or_else(|e| panic!("writing {}: {e}", tokens.display()));
        write_kubeconfig(
            &self.kubeconfig,
            &self.server(),
            &self.ca_path(),
            "admin",
            &self.admin_token,
        );
    }

    fn start_etcd(&mut self) {
        let log = self.log_file("etcd.log");
        let args = [
            format!("--data-dir={}", self.dir.join("etcd").display()),
            "--listen-client-urls=http://127.0.0.1:2379".into(),
            "--advertise-client-urls=http://127.0.0.1:2379".into(),
            "--listen-peer-urls=http://127.0.0.1:2380".into(),
        ];
        self.etcd = Some(self.spawn_in_netns(ETCD, &args, log));
    }

    fn spawn_in_netns(&self, bin: &str, args: &[String], log: fs::File) -> Child {
        let err = log
            .try_clone()
            .unwrap_or_else(|e| panic!("{}: duplicating log handle: {e}", self.netns));
        // `ip netns exec` execs the program, so the child is the server
        // itself and signals reach it directly.
        Command::new("ip")
            .args(["netns", "exec", &self.netns, bin])
            .args(args)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("{}: starting {bin}: {e}", self.netns))
    }

    fn log_file(&self, name: &str) -> fs::File {
        let path = self.dir.join(name);
        fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .unwrap_or_else(|e| panic!("opening {}: {e}", path.display()))
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            let mut exited = None;
            for (name, child) in [
                ("etcd", &mut self.etcd),
                ("kube-apiserver", &mut self.apiserver),
            ] {
                if let Some(c) = child.as_mut()
                    && let Ok(Some(status)) = c.try_wait()
                {
                    *child = None;
                    exited = Some((name, status));
                    break;
                }
            }
            if let Some((name, status)) = exited {
                panic!(
                    "{}: {name} exited ({status}) before the API became ready\n{}",
                    self.netns,
                    self.log_tails()
                );
            }
            // `get --raw` fails unless the answer is 2xx: this tests the
            // status code, not the body (which lists checks even when failing).
            let out = self.kubectl(&["--request-timeout=5s", "get", "--raw", "/readyz"]);
            if out.status.success() {
                return;
            }
            if Instant::now() >= deadline {
                panic!(
                    "{}: kube-apiserver not ready within {} s; last probe: {}\n{}",
                    self.netns,
                    READY_TIMEOUT.as_secs(),
                    String::from_utf8_lossy(&out.stderr).trim(),
                    self.log_tails()
                );
            }
            std::thread::sleep(Duration::from_millis(300));
        }
    }

    fn log_tails(&self) -> String {
        ["etcd.log", "kube-apiserver.log"]
            .iter()
            .map(|name| {
                let path = self.dir.join(name);
                format!("--- last lines of {}:\n{}", path.display(), tail(&path, 20))
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    fn kubectl_command(&self, netns: &str, args: &[&str]) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", netns, KUBECTL])
            .arg(format!("--kubeconfig={}", self.kubeconfig.display()))
            // Discovery caches are keyed by host:port, which other envs
            // reuse: keep ours private.
            .arg(format!(
                "--cache-dir={}",
                self.dir.join("kubectl-cache").display()
            ))
            .args(args);
        cmd
    }
}

impl Drop for KubeEnv {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Where `.ci/setup-kube.sh` caches the binary (same `ROUTECFG_CACHE`
/// override).
fn apiserver_binary() -> PathBuf {
    let root = std::env::var_os("ROUTECFG_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(DEFAULT_CACHE_ROOT));
    root.join(format!("kube-apiserver-{KUBE_VERSION}"))
        .join("kube-apiserver")
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

fn random_token() -> String {
    let mut bytes = [0u8; 16];
    fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .unwrap_or_else(|e| panic!("reading /dev/urandom: {e}"));
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn write_kubeconfig(path: &Path, server: &str, ca: &Path, user: &str, token: &str) {
    let text = format!(
        "apiVersion: v1\n\
         kind: Config\n\
         clusters:\n\
         - name: routecfg-test\n\
         \x20 cluster:\n\
         \x20   server: {server}\n\
         \x20   certificate-authority: {ca}\n\
         users:\n\
         - name: {user}\n\
         \x20 user:\n\
         \x20   token: {token}\n\
         contexts:\n\
         - name: routecfg-test\n\
         \x20 context:\n\
         \x20   cluster: routecfg-test\n\
         \x20   user: {user}\n\
         current-context: routecfg-test\n",
        ca = ca.display()
    );
    fs::write(path, text).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
}

fn run_ok(program: &str, args: &[&str]) {
    let out = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("running {program} {}: {e}", args.join(" ")));
    expect_success(&format!("{program} {}", args.join(" ")), out);
}

fn expect_success(what: &str, out: Output) -> String {
    assert!(
        out.status.success(),
        "{what}: {}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout).trim(),
        String::from_utf8_lossy(&out.stderr).trim()
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// SIGTERM, then SIGKILL if the process lingers; never panics (used from
/// drop).
fn terminate(mut child: Child, name: &str) {
    let Ok(pid) = i32::try_from(child.id()) else {
        let _ = child.kill();
        let _ = child.wait();
        return;
    };
    // SAFETY: kill(2) on our own, not yet reaped child: the pid cannot have
    // been reused.
    unsafe {
        libc::kill(pid, libc::SIGTERM);
    }
    let deadline = Instant::now() + STOP_TIMEOUT;
    loop {
        match child.try_wait() {
            Ok(Some(_)) => return,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(50)),
            _ => {
                eprintln!("{name} (pid {pid}) ignored SIGTERM; killing it");
                let _ = child.kill();
                let _ = child.wait();
                return;
            }
        }
    }
}

/// Kills whatever still runs in the namespace, then deletes it; never
/// panics (used from drop).
fn delete_netns(name: &str) {
    if let Ok(out) = Command::new("ip").args(["netns", "pids", name]).output() {
        for pid in String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .filter_map(|p| p.parse::<i32>().ok())
        {
            // SAFETY: kill(2) has no memory-safety preconditions; the pids
            // come from the namespace this code created.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
            }
        }
    }
    let deadline = Instant::now() + STOP_TIMEOUT;
    loop {
        let deleted = Command::new("ip")
            .args(["netns", "del", name])
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if deleted || Instant::now() >= deadline {
            if !deleted {
                eprintln!("could not delete network namespace {name}");
            }
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Removes namespaces and scratch dirs left by test processes that died
/// without dropping their env (killed, or an env kept in a static).
fn reap_stale_envs() {
    let dead_owner = |name: &str| -> bool {
        let Some(rest) = name.strip_prefix(NETNS_PREFIX) else {
            return false;
        };
        let Some((pid, n)) = rest.split_once('-') else {
            return false;
        };
        pid.parse::<u32>().is_ok()
            && n.parse::<u32>().is_ok()
            && !Path::new("/proc").join(pid).exists()
    };
    if let Ok(out) = Command::new("ip").args(["netns", "list"]).output() {
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            let name = line.split_whitespace().next().unwrap_or("");
            if dead_owner(name) {
                eprintln!("reaping stale network namespace {name}");
                delete_netns(name);
            }
        }
    }
    if let Ok(entries) = fs::read_dir(std::env::temp_dir()) {
        for entry in entries.flatten() {
            let name = entry.file_name();
            if dead_owner(&name.to_string_lossy()) {
                let _ = fs::remove_dir_all(entry.path());
            }
        }
    }
}

fn tail(path: &Path, lines: usize) -> String {
    match fs::read(path) {
        Ok(bytes) => {
            let text = String::from_utf8_lossy(&bytes);
            let all: Vec<&str> = text.lines().collect();
            all[all.len().saturating_sub(lines)..].join("\n")
        }
        Err(e) => format!("(unreadable: {e})"),
    }
}
