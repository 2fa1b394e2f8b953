//! `routecfg apply --confirm`: a rule that cuts a "management" flow
//! between two namespaces is rolled back by itself, by `rollback`, or
//! after the applying process died of SIGHUP; `confirm` keeps it; a second
//! trial is refused while one is pending. Full kernel dumps before and
//! after a rollback must be equal.
//!
//! Needs root (network namespaces); fails loudly without it. Each test
//! has its own namespaces and its own checkpoint directory.

mod common;

use common::netns::{KernelState, Netns, describe, require_root, veth};
use std::net::Ipv4Addr;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_routecfg");
const HOST_IP: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 1);
/// Waiting bound for things that take milliseconds; not a measurement.
const PATIENCE: Duration = Duration::from_secs(20);

/// Sends the host's replies to the admin station to a gateway that does
/// not exist: the management flow is cut.
const CUT: &str = r#"
apiVersion: networking.liqo.io/v1beta1
kind: RouteConfiguration
metadata: {name: cut, namespace: trial}
spec:
  table:
    name: trial-cut
    rules:
    - dst: 10.77.0.2/32
      routes:
      - {dst: 10.77.0.2/32, gw: 10.78.0.2, dev: side0}
"#;

/// Applied before the trial, then changed by it: the rollback must bring
/// back exactly this route and rule.
const BASE: &str = r#"
apiVersion: networking.liqo.io/v1beta1
kind: RouteConfiguration
metadata: {name: base, namespace: trial}
spec:
  table:
    name: trial-base
    rules:
    - dst: 10.90.0.0/16
      priority: 1000
      routes:
      - {dst: 10.90.0.0/16, gw: 10.78.0.7, dev: side0}
      - {dst: 10.91.0.0/16, gw: 10.78.0.7, dev: side0}
"#;

/// What the trial makes of [`BASE`]: another gateway, a route less, a
/// rule at another priority.
const BASE_CHANGED: &str = r#"
apiVersion: networking.liqo.io/v1beta1
kind: RouteConfiguration
metadata: {name: base, namespace: trial}
spec:
  table:
    name: trial-base
    rules:
    - dst: 10.90.0.0/16
      priority: 2000
      routes:
      - {dst: 10.90.0.0/16, gw: 10.78.0.9, dev: side0}
"#;

/// The managed host and the admin station, plus an input directory and
/// a checkpoint directory of the test's own.
struct Bed {
    host: Netns,
    admin: Netns,
    dir: PathBuf,
}

impl Drop for Bed {
    fn drop(&mut self) {
        // A timer left by a failing test ends with its checkpoint.
        let _ = self.routecfg(&["rollback"]);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Bed {
    fn new(tag: &str) -> Bed {
        require_root();
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let host = Netns::new(&format!("{tag}h"));
        let admin = Netns::new(&format!("{tag}a"));
        for ns in [&host, &admin] {
            ns.sysctl("net/ipv4/conf/all/rp_filter", "0");
            ns.sysctl("net/ipv4/conf/default/rp_filter", "0");
        }
        veth(&host, "mgmt0", &admin, "mgmt0");
        host.ip_line(&format!("addr add {HOST_IP}/24 dev mgmt0"));
        admin.ip_line("addr add 10.77.0.2/24 dev mgmt0");
        // A link with nobody behind it: the wrong gateway lives there.
        host.ip_line("link add side0 type veth peer name side1");
        host.ip_line("link set side0 up");
        host.ip_line("link set side1 up");
        host.ip_line("addr add 10.78.0.1/24 dev side0");
        let n = NEXT.fetch_add(1, Ordering::SeqCst);
        let dir = std::env::temp_dir().join(format!("routecfg-confirm-{}-{n}", std::process::id()));
        std::fs::create_dir_all(dir.join("in")).unwrap();
        std::fs::write(dir.join("in/cut.yaml"), CUT).unwrap();
        let bed = Bed { host, admin, dir };
        for ns in [&bed.host, &bed.admin] {
            ns.settle_ipv6();
        }
        assert!(
            bed.reachable(),
            "the management flow does not work to begin with"
        );
        bed
    }

    fn checkpoint_dir(&self) -> PathBuf {
        self.dir.join("checkpoints")
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", self.host.name(), BIN])
            .args(args)
            .env("ROUTECFG_CHECKPOINT_DIR", self.checkpoint_dir());
        cmd
    }

    fn routecfg(&self, args: &[&str]) -> Output {
        self.command(args)
            .output()
            .unwrap_or_else(|e| panic!("running routecfg {args:?}: {e}"))
    }

    /// `apply --confirm SECS` in the background (it waits for the end of
    /// the trial); returns once the checkpoint is pending and the cut is
    /// in place.
    fn start_trial(&self, secs: u32) -> Child {
        let input = self.dir.join("in");
        let secs = secs.to_string();
        let mut cmd = self.command(&[
            "apply",
            "-f",
            input.to_str().unwrap(),
            "--rt-tables",
            "none",
            "--confirm",
            &secs,
        ]);
        // A test run started under nohup (or any runner that ignores
        // SIGHUP) would pass the ignored disposition on through exec; the
        // operator's apply in a terminal has the default one, which the
        // SIGHUP test relies on.
        // SAFETY: signal(2) is async-signal-safe, the only call made
        // between fork and exec; it touches no memory of the parent.
        unsafe {
            cmd.pre_exec(|| {
                libc::signal(libc::SIGHUP, libc::SIG_DFL);
                Ok(())
            });
        }
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("starting apply --confirm: {e}"));
        let pending = self.checkpoint_dir().join("pending.json");
        wait("the checkpoint to be pending", || pending.is_file());
        wait("the trial rule to be in place", || {
            self.host.ip(&["rule", "show"]).contains("10.77.0.2")
        });
        child
    }

    fn reachable(&self) -> bool {
        self.admin.ping(HOST_IP, 1)
    }

    fn pending(&self) -> bool {
        self.checkpoint_dir().join("pending.json").exists()
    }

    fn timer_log(&self) -> String {
        std::fs::read_to_string(self.checkpoint_dir().join("timer.log")).unwrap_or_default()
    }
}

fn wait(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + PATIENCE;
    while !done() {
        assert!(Instant::now() < deadline, "gave up waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Waits for the background apply to end; its status and output.
fn finish(child: Child) -> (ExitStatus, String) {
    let out = child.wait_with_output().unwrap();
    let text = describe(&out);
    (out.status, text)
}

fn assert_same(before: &KernelState, after: &KernelState) {
    assert_eq!(
        before, after,
        "the rollback did not restore the kernel exactly"
    );
}

#[test]
fn a_cut_is_rolled_back_by_itself_and_everything_is_as_before() {
    let bed = Bed::new("cto");
    let base = bed.dir.join("base");
    std::fs::create_dir_all(&base).unwrap();
    std::fs::write(base.join("base.yaml"), BASE).unwrap();
    let out = bed.routecfg(&["apply", "-f", base.to_str().unwrap(), "--rt-tables", "none"]);
    assert!(out.status.success(), "{}", describe(&out));
    std::fs::write(bed.dir.join("in/base.yaml"), BASE_CHANGED).unwrap();
    let before = bed.host.state();
    let trial = bed.start_trial(3);
    let rules = bed.host.ip(&["rule", "show"]);
    assert!(
        rules.contains("2000:") && !rules.contains("1000:"),
        "{rules}"
    );
    assert!(
        !bed.reachable(),
        "the trial rule should cut the management flow"
    );
    let (status, out) = finish(trial);
    assert_eq!(
        status.code(),
        Some(1),
        "a rolled-back trial exits 1:\n{out}"
    );
    assert!(out.contains("rolled back (timeout)"), "{out}");
    assert!(bed.reachable(), "the management flow did not come back");
    assert_same(&before, &bed.host.state());
    assert!(!bed.pending());
    assert!(
        bed.timer_log().contains("rolled back (timeout)"),
        "{}",
        bed.timer_log()
    );
}

#[test]
fn the_waiting_apply_rolls_back_when_the_timer_is_killed() {
    let bed = Bed::new("ckil");
    let before = bed.host.state();
    let trial = bed.start_trial(2);
    let pid: i32 = {
        let mut found = None;
        wait("the timer to log its pid", || {
            found = bed
                .timer_log()
                .split("timer pid ")
                .nth(1)
                .and_then(|rest| rest.split(':').next())
                .and_then(|p| p.parse().ok());
            found.is_some()
        });
        found.unwrap()
    };
    // SAFETY: kill(2) on the timer this test's apply started.
    assert_eq!(
        unsafe { libc::kill(pid, libc::SIGKILL) },
        0,
        "kill -KILL {pid}"
    );
    let (status, out) = finish(trial);
    assert_eq!(status.code(), Some(1), "{out}");
    assert!(out.contains("rolled back (timeout, timer gone)"), "{out}");
    assert!(bed.reachable());
    assert_same(&before, &bed.host.state());
}

#[test]
fn confirm_keeps_the_change() {
    let bed = Bed::new("cok");
    let before = bed.host.state();
    let trial = bed.start_trial(30);
    let out = bed.routecfg(&["confirm"]);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let (status, text) = finish(trial);
    assert_eq!(status.code(), Some(0), "a confirmed trial exits 0:\n{text}");
    assert!(text.contains("confirmed"), "{text}");
    assert!(!bed.pending());
    assert_ne!(before, bed.host.state(), "the confirmed change is gone");
    assert!(!bed.reachable(), "the confirmed cut should stay");
    // Nothing left to confirm or roll back: exit 2, saying how it ended.
    let again = bed.routecfg(&["confirm"]);
    assert_eq!(again.status.code(), Some(2), "{}", describe(&again));
    assert!(
        describe(&again).contains("was confirmed"),
        "{}",
        describe(&again)
    );
    let late = bed.routecfg(&["rollback"]);
    assert_eq!(late.status.code(), Some(2), "{}", describe(&late));
    assert!(!bed.reachable());
}

#[test]
fn the_rollback_happens_although_sighup_killed_the_apply() {
    let bed = Bed::new("chup");
    let before = bed.host.state();
    let trial = bed.start_trial(3);
    // SAFETY: kill(2) on our own child's pid; no memory involved.
    let rc = unsafe { libc::kill(trial.id() as libc::pid_t, libc::SIGHUP) };
    assert_eq!(rc, 0, "kill -HUP failed");
    let (status, out) = finish(trial);
    assert_eq!(
        status.code(),
        None,
        "apply should have died of SIGHUP:\n{out}"
    );
    assert!(!bed.reachable(), "the cut should still be on trial");
    // The timer claims pending.json before it restores, so wait for its
    // log line, which it writes once the restore batch has run.
    wait("the timer to roll back", || {
        bed.timer_log().contains("rolled back (timeout)")
    });
    assert!(!bed.pending());
    assert!(bed.reachable(), "the management flow did not come back");
    assert_same(&before, &bed.host.state());
    assert!(
        bed.timer_log().contains("rolled back (timeout)"),
        "{}",
        bed.timer_log()
    );
}

#[test]
fn rollback_before_the_time_runs_out_and_diff_shows_it_first() {
    let bed = Bed::new("crb");
    let before = bed.host.state();
    let trial = bed.start_trial(120);
    let diff = bed.routecfg(&["diff", "--checkpoint"]);
    assert_eq!(diff.status.code(), Some(1), "{}", describe(&diff));
    let lines = String::from_utf8_lossy(&diff.stdout).into_owned();
    assert!(
        lines.contains("ip rule del priority 32765 to 10.77.0.2/32")
            && lines.contains("ip route del 10.77.0.2/32 via 10.78.0.2 dev side0"),
        "{lines}"
    );
    let started = Instant::now();
    let out = bed.routecfg(&["rollback"]);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let (status, text) = finish(trial);
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "apply waited for the timeout"
    );
    assert_eq!(status.code(), Some(1), "{text}");
    assert!(text.contains("rolled back (rollback)"), "{text}");
    assert!(bed.reachable());
    assert_same(&before, &bed.host.state());
    let none = bed.routecfg(&["diff", "--checkpoint"]);
    assert_eq!(none.status.code(), Some(2), "{}", describe(&none));
}

#[test]
fn a_second_trial_is_refused_while_one_is_pending() {
    let bed = Bed::new("c2nd");
    let before = bed.host.state();
    let trial = bed.start_trial(120);
    let during = bed.host.state();
    let input = bed.dir.join("in");
    let second = bed.routecfg(&[
        "apply",
        "-f",
        input.to_str().unwrap(),
        "--rt-tables",
        "none",
        "--confirm",
        "5",
    ]);
    assert_eq!(second.status.code(), Some(2), "{}", describe(&second));
    assert!(
        describe(&second).contains("is pending"),
        "{}",
        describe(&second)
    );
    assert_eq!(
        during,
        bed.host.state(),
        "the refused trial changed something"
    );
    assert!(bed.pending());
    let out = bed.routecfg(&["rollback"]);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let (status, _) = finish(trial);
    assert_eq!(status.code(), Some(1));
    assert_same(&before, &bed.host.state());
}

/// An agent with the same mark in the same namespace (real API server)
/// leaves the trial's tables alone while the checkpoint is pending, says
/// so in `/status`, and reconciles them again once it ends.
#[test]
fn an_agent_pauses_during_the_trial_and_resumes_after() {
    use common::agent::{self, Agent, AgentConfig, CONVERGE, Crd, Scratch, wait_for};
    use common::kube::KubeEnv;
    use serde_json::{Value, json};

    let bed = Bed::new("cag");
    let mut env = KubeEnv::start();
    let ip = env.node_ip(10);
    env.attach(bed.host.name(), &ip);
    agent::install_crd(&env, Crd::Project);
    agent::create_namespaces(&env, &["trial"]);
    let table = |gw: &str| {
        json!({"name": "agent-table", "rules": [{"dst": "10.95.0.0/16", "routes": [
            {"dst": "10.95.0.0/16", "gw": gw, "dev": "side0"}]}]})
    };
    agent::apply(
        &env,
        &agent::route_config(
            "trial",
            "agentobj",
            &[("test", "confirm")],
            table("10.78.0.5"),
        ),
    );
    let scratch = Scratch::new("confirm");
    let cp_dir = bed.checkpoint_dir();
    let select = [
        "--selector",
        "test=confirm",
        "--checkpoint-dir",
        cp_dir.to_str().unwrap(),
    ];
    let agent = Agent::start(&AgentConfig {
        netns: bed.host.name(),
        host: "trial-host",
        kubeconfig: env.kubeconfig(),
        select: &select,
        dir: scratch.path(),
        metrics_port: 9433,
    });
    agent.wait_ready();
    let id = routecfg::table_id::table_id("agent-table");
    let route = || bed.host.ip(&["route", "show", "table", &id.to_string()]);
    wait_for("the agent's route", CONVERGE, || {
        let r = route();
        if r.contains("via 10.78.0.5") {
            Ok(())
        } else {
            Err(r)
        }
    });

    // The trial changes the agent's table (another gateway) and cuts.
    let trial_object = agent::route_config("trial", "agentobj", &[], table("10.78.0.6"));
    std::fs::write(bed.dir.join("in/agent.json"), trial_object.to_string()).unwrap();
    let trial = bed.start_trial(120);
    assert!(route().contains("via 10.78.0.6"), "{}", route());
    let status = |agent: &Agent| -> Result<Value, String> {
        let (code, body) = agent.http_get("/status")?;
        if code != 200 {
            return Err(format!("/status answered {code}"));
        }
        serde_json::from_str(&body).map_err(|e| e.to_string())
    };
    let paused = wait_for("/status to say paused", CONVERGE, || {
        let s = status(&agent)?;
        match s["paused"]["tables"].as_array() {
            Some(t) if t.iter().any(|v| v.as_u64() == Some(u64::from(id))) => Ok(s),
            _ => Err(s.to_string()),
        }
    });
    assert!(
        paused["paused"]["checkpoint"].as_str().is_some(),
        "{paused}"
    );
    // The agent repairs a hand-made change in milliseconds; give it ample
    // time to (wrongly) fight the trial, then check it did not.
    std::thread::sleep(Duration::from_secs(2));
    assert!(
        route().contains("via 10.78.0.6"),
        "the agent fought the trial: {}",
        route()
    );
    assert!(agent.log().contains("on trial"), "{}", agent.log_tail(20));

    // Confirmed: the trial's state is kept, and the agent, no longer
    // paused, brings its table back to its object.
    let out = bed.routecfg(&["confirm"]);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let (status_code, text) = finish(trial);
    assert_eq!(status_code.code(), Some(0), "{text}");
    wait_for("the agent to resume", CONVERGE, || {
        agent.check_alive()?;
        let r = route();
        let s = status(&agent)?;
        if r.contains("via 10.78.0.5") && s["paused"].is_null() {
            Ok(())
        } else {
            Err(format!("{r}\n{s}"))
        }
    });
}
