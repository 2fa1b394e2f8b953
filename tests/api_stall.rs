//! End-to-end: an API server that hangs (SIGSTOP: connections stay open,
//! nothing answers) must not delay kernel repairs, and once it resumes
//! every pending condition arrives, each written once.
//!
//! Needs root (network namespaces) and `.ci/setup-kube.sh` (the API
//! server binary); fails loudly when either is missing. Prints repair
//! times; asserts none (the machine is shared).

mod common;

use common::agent::*;
use common::kube::KubeEnv;
use common::netns::{Netns, require_root};
use routecfg::table_id::table_id;
use serde_json::json;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

const HOST: &str = "stall-host";
const FLIPS: [&str; 4] = ["flip-1", "flip-2", "flip-3", "flip-4"];

/// Resumes a stopped API server however the test ends, so its teardown
/// (and the other tests' API servers) are not left hanging.
struct Resume<'a>(&'a KubeEnv);

impl Drop for Resume<'_> {
    fn drop(&mut self) {
        self.0.signal_apiserver(libc::SIGCONT);
    }
}

/// Deletes the steady table's route by hand `rounds` times and returns how
/// long each took to come back, as seen by polling the kernel.
fn hand_deletions(ns: &Netns, agent: &Agent, steady: &Expected, rounds: usize) -> Vec<Duration> {
    let mut times = Vec::new();
    for _ in 0..rounds {
        ns.ip_line(&format!("route del 10.81.0.0/16 table {}", steady.id));
        let deleted = Instant::now();
        // Polled as fast as `ip` answers: the figure includes one `ip`
        // run, as the normal figure does.
        loop {
            agent.check_alive().unwrap_or_else(|e| panic!("{e}"));
            if steady.check(ns).is_ok() {
                break;
            }
            assert!(
                deleted.elapsed() < CONVERGE,
                "the steady route did not come back"
            );
            std::thread::sleep(Duration::from_millis(1));
        }
        times.push(deleted.elapsed());
        std::thread::sleep(Duration::from_millis(100));
    }
    times
}

fn summary(times: &[Duration]) -> String {
    let mut ms: Vec<f64> = times.iter().map(|t| t.as_secs_f64() * 1000.0).collect();
    ms.sort_by(f64::total_cmp);
    format!(
        "median {:.1} ms, worst {:.1} ms over {} deletions",
        ms[ms.len() / 2],
        ms[ms.len() - 1],
        ms.len()
    )
}

#[test]
fn stopped_api_server_never_delays_repairs_and_statuses_arrive_once() {
    require_root();
    let ns = dummy_node("stall");
    let mut env = KubeEnv::start();
    let ip = env.node_ip(10);
    env.attach(ns.name(), &ip);
    install_crd(&env, Crd::Upstream);
    create_namespaces(&env, &["liqo"]);
    add_link(&ns, "flip0");
    ns.ip_line("link set flip0 up");
    let scratch = Scratch::new("stall");
    let agent = Agent::start(&AgentConfig {
        netns: ns.name(),
        host: HOST,
        kubeconfig: env.kubeconfig(),
        select: &["--role", "fabric"],
        dir: scratch.path(),
        metrics_port: 9433,
    });
    apply(
        &env,
        &route_config(
            "liqo",
            "steady",
            &[(CATEGORY, "fabric")],
            json!({"name": "steady", "rules": [
                {"dst": "10.81.0.0/16", "routes": [{"dst": "10.81.0.0/16", "gw": "10.90.0.2"}]}
            ]}),
        ),
    );
    for (i, name) in FLIPS.iter().enumerate() {
        let dst = format!("10.6{i}.0.0/24");
        apply(
            &env,
            &route_config(
                "liqo",
                name,
                &[(CATEGORY, "fabric")],
                json!({"name": name, "rules": [
                    {"dst": dst, "routes": [{"dst": dst, "dev": "flip0", "scope": "link"}]}
                ]}),
            ),
        );
    }
    let flip_keys: Vec<String> = FLIPS.iter().map(|n| format!("liqo/{n}")).collect();
    let mut all_keys = flip_keys.clone();
    all_keys.push("liqo/steady".to_string());
    let conditions_say = |keys: &[String], want: &str| -> Result<(), String> {
        let all = objects(&env);
        for key in keys {
            let obj = all
                .get(key)
                .ok_or_else(|| format!("{key} does not exist"))?;
            check_condition(obj, HOST, want)?;
        }
        Ok(())
    };
    wait_for("every object Applied=True", CONVERGE, || {
        agent.check_alive()?;
        conditions_say(&all_keys, "True")
    });
    let steady = Expected::from_spec(&object(&env, "liqo", "steady").expect("steady")["spec"]);
    assert_eq!(steady.id, table_id("steady"));
    let normal = hand_deletions(&ns, &agent, &steady, 10);

    // The API server hangs; a link goes, so four objects flip and their
    // status and Event writes have nowhere to go.
    let versions = |env: &KubeEnv| -> BTreeMap<String, String> {
        objects(env)
            .into_iter()
            .map(|(k, v)| (k, resource_version(&v)))
            .collect()
    };
    let before = versions(&env);
    env.signal_apiserver(libc::SIGSTOP);
    let resume = Resume(&env);
    ns.ip_line("link del flip0");
    std::thread::sleep(Duration::from_secs(1));
    let stalled = hand_deletions(&ns, &agent, &steady, 10);
    eprintln!("repair while the API server runs:     {}", summary(&normal));
    eprintln!(
        "repair while the API server is stopped: {}",
        summary(&stalled)
    );
    drop(resume);

    // Everything pending arrives once the server answers again.
    wait_for(
        "the flipped objects to say Applied=False",
        RECONNECT,
        || {
            agent.check_alive()?;
            conditions_say(&flip_keys, "False")
        },
    );
    conditions_say(&["liqo/steady".to_string()], "True").unwrap_or_else(|e| panic!("{e}"));
    // Let any duplicate or late write land before counting.
    std::thread::sleep(Duration::from_secs(5));
    let after = versions(&env);
    assert_eq!(
        before.get("liqo/steady"),
        after.get("liqo/steady"),
        "steady was written although its condition did not change"
    );
    for name in FLIPS {
        let failed: Vec<_> = events_for(&env, "liqo", name)
            .into_iter()
            .filter(|e| e["reason"] == "ApplyFailed")
            .collect();
        assert_eq!(
            failed.len(),
            1,
            "{name}: want exactly one ApplyFailed Event, have {failed:#?}"
        );
        let obj = object(&env, "liqo", name).expect("exists");
        let c = check_condition(&obj, HOST, "False").unwrap_or_else(|e| panic!("{e}"));
        assert!(!c.last_transition_time.is_empty());
    }
    // No write keeps repeating: versions are stable now.
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(after, versions(&env), "objects kept being written");
    let steady_now = Expected::from_spec(&object(&env, "liqo", "steady").expect("steady")["spec"]);
    steady_now.check(&ns).unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn api_server_killed_and_restarted_during_edits_converges() {
    require_root();
    let ns = dummy_node("restart");
    let mut env = KubeEnv::start();
    let ip = env.node_ip(10);
    env.attach(ns.name(), &ip);
    install_crd(&env, Crd::Upstream);
    create_namespaces(&env, &["liqo"]);
    let scratch = Scratch::new("restart");
    let agent = Agent::start(&AgentConfig {
        netns: ns.name(),
        host: HOST,
        kubeconfig: env.kubeconfig(),
        select: &["--role", "fabric"],
        dir: scratch.path(),
        metrics_port: 9433,
    });
    let names: Vec<String> = (0..5).map(|i| format!("edit-{i}")).collect();
    for (i, name) in names.iter().enumerate() {
        let dst = format!("10.7{i}.0.0/16");
        apply(
            &env,
            &route_config(
                "liqo",
                name,
                &[(CATEGORY, "fabric")],
                json!({"name": name, "rules": [
                    {"dst": dst, "routes": [{"dst": dst, "gw": "10.90.0.2"}]}
                ]}),
            ),
        );
    }
    let converged = |env: &KubeEnv| -> Result<(), String> {
        agent.check_alive()?;
        for name in &names {
            let obj = object(env, "liqo", name).ok_or_else(|| format!("{name} is gone"))?;
            Expected::from_spec(&obj["spec"]).check(&ns)?;
            check_condition(&obj, HOST, "True")?;
        }
        Ok(())
    };
    wait_for("every object applied", CONVERGE, || converged(&env));
    let patch_all = |env: &KubeEnv, gw: &str| {
        for name in &names {
            json_patch(
                env,
                "liqo",
                name,
                json!([{"op": "replace", "path": "/spec/table/rules/0/routes/0/gw", "value": gw}]),
            );
        }
    };
    // A burst of edits, the API server killed in the middle of it (the
    // agent may have seen some, none or all of them), restarted on the
    // same port, and more edits.
    patch_all(&env, "10.90.0.3");
    env.signal_apiserver(libc::SIGKILL);
    env.stop_apiserver();
    ns.ip_line(&format!(
        "route del 10.70.0.0/16 table {}",
        table_id("edit-0")
    ));
    env.start_apiserver();
    patch_all(&env, "10.90.0.4");
    patch_all(&env, "10.90.0.5");
    wait_for(
        "the kernel and statuses after the restart",
        RECONNECT,
        || converged(&env),
    );
    for name in &names {
        let obj = object(&env, "liqo", name).expect("exists");
        assert_eq!(
            obj["spec"]["table"]["rules"][0]["routes"][0]["gw"], "10.90.0.5",
            "{name}: the last edit is what the API holds"
        );
    }
}
