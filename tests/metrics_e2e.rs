//! End-to-end: the metrics port under a crowd of slow and idle clients.
//! `routecfg run` against a real kube-apiserver + etcd (`common/kube.rs`)
//! in a network namespace, with 300 clients on its metrics port that never
//! finish a request (reconnecting whenever the agent drops them). The
//! agent must keep answering `/healthz` and keep repairing hand-made
//! deletions. Repair times are printed next to the times without the
//! crowd; the only bounds asserted are generous liveness bounds.
//!
//! Needs root (network namespaces) and `.ci/setup-kube.sh`; fails loudly
//! when either is missing.

mod common;

use common::agent::*;
use common::kube::KubeEnv;
use common::netns::require_root;
use routecfg::table_id::table_id;
use serde_json::json;
use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::AsRawFd;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

const METRICS_PORT: u16 = 9433;
/// `--status-addr` port: `/status` moves there from the metrics port.
const STATUS_PORT: u16 = 9434;
const STATUS_ADDR: &str = "127.0.0.1:9434";
const CROWD: usize = 300;
/// Hand deletions timed with and without the crowd (more with
/// `ROUTECFG_CROWD_REPAIRS`, as tests/bench/metrics.sh does).
fn repairs() -> usize {
    std::env::var("ROUTECFG_CROWD_REPAIRS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10)
}

/// `ip monitor route` in a namespace, each line stamped when read.
struct RouteMonitor {
    child: Child,
    lines: Receiver<(Instant, String)>,
}

impl RouteMonitor {
    fn start(netns: &str) -> RouteMonitor {
        let mut child = Command::new("ip")
            .args(["-n", netns, "monitor", "route"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("starting ip monitor route: {e}"));
        let stdout = child
            .stdout
            .take()
            .unwrap_or_else(|| panic!("ip monitor route has no stdout"));
        let (tx, lines) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send((Instant::now(), line)).is_err() {
                    break;
                }
            }
        });
        RouteMonitor { child, lines }
    }

    /// The stamp of the next line `matches` accepts, within `timeout`.
    fn next(&self, timeout: Duration, matches: impl Fn(&str) -> bool) -> Result<Instant, String> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok((at, line)) if matches(&line) => return Ok(at),
                Ok(_) => {}
                Err(RecvTimeoutError::Timeout) => {
                    return Err(format!("no matching route event in {timeout:?}"));
                }
                Err(RecvTimeoutError::Disconnected) => {
                    return Err("ip monitor route exited".into());
                }
            }
        }
    }
}

impl Drop for RouteMonitor {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What one crowd client does once connected.
#[derive(Clone, Copy, Debug)]
enum Manner {
    /// Connects and sends nothing.
    Silent,
    /// Sends one byte of a request line, then nothing.
    OneByte,
    /// Sends a request line one byte at a time, slower than the agent's
    /// 2 s connection deadline allows.
    Trickle,
}

struct Client {
    manner: Manner,
    stream: Option<TcpStream>,
    sent: usize,
}

/// Clients that keep the metrics port busy from a thread inside the
/// agent's namespace, reconnecting whenever the agent closes them.
struct Crowd {
    stop: Arc<AtomicBool>,
    /// Connections made in all.
    connects: Arc<AtomicUsize>,
    /// Clients connected at the end of the last round.
    connected: Arc<AtomicUsize>,
    thread: Option<JoinHandle<Result<(), String>>>,
}

impl Crowd {
    fn start(netns: &str, port: u16, size: usize) -> Crowd {
        let stop = Arc::new(AtomicBool::new(false));
        let connects = Arc::new(AtomicUsize::new(0));
        let connected = Arc::new(AtomicUsize::new(0));
        let handle_path = format!("/var/run/netns/{netns}");
        let (s, c, n) = (stop.clone(), connects.clone(), connected.clone());
        let thread = std::thread::spawn(move || -> Result<(), String> {
            let handle = std::fs::File::open(&handle_path)
                .map_err(|e| format!("opening {handle_path}: {e}"))?;
            // SAFETY: valid descriptor; setns changes only this thread.
            if unsafe { libc::setns(handle.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                return Err(format!(
                    "setns {handle_path}: {}",
                    std::io::Error::last_os_error()
                ));
            }
            let addr = SocketAddr::from(([127, 0, 0, 1], port));
            let manners = [Manner::Silent, Manner::OneByte, Manner::Trickle];
            let mut clients: Vec<Client> = (0..size)
                .map(|i| Client {
                    manner: manners[i % manners.len()],
                    stream: None,
                    sent: 0,
                })
                .collect();
            let line = b"GET /metrics HTTP/1.1\r\n";
            while !s.load(Ordering::Relaxed) {
                for client in &mut clients {
                    let Some(stream) = client.stream.as_mut() else {
                        // A short connect timeout: a full backlog must not
                        // stall the crowd (the attempt is retried).
                        if let Ok(stream) =
                            TcpStream::connect_timeout(&addr, Duration::from_millis(200))
                        {
                            stream.set_nonblocking(true).map_err(|e| e.to_string())?;
                            c.fetch_add(1, Ordering::Relaxed);
                            client.stream = Some(stream);
                            client.sent = 0;
                        }
                        continue;
                    };
                    let mut buf = [0u8; 512];
                    let closed = match stream.read(&mut buf) {
                        Ok(0) => true,
                        Ok(_) => false,
                        Err(e) if e.kind() == ErrorKind::WouldBlock => false,
                        Err(_) => true,
                    };
                    let wants_byte = match client.manner {
                        Manner::Silent => false,
                        Manner::OneByte => client.sent == 0,
                        Manner::Trickle => client.sent < line.len(),
                    };
                    let failed = wants_byte && stream.write(&line[client.sent..][..1]).is_err();
                    if wants_byte && !failed {
                        client.sent += 1;
                    }
                    if closed || failed {
                        client.stream = None;
                    }
                }
                n.store(
                    clients.iter().filter(|c| c.stream.is_some()).count(),
                    Ordering::Relaxed,
                );
                // Trickling clients send a byte per round: about 10 a second.
                std::thread::sleep(Duration::from_millis(100));
            }
            Ok(())
        });
        Crowd {
            stop,
            connects,
            connected,
            thread: Some(thread),
        }
    }

    fn finish(mut self) -> usize {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            match t.join() {
                Ok(Ok(())) => {}
                Ok(Err(e)) => panic!("crowd: {e}"),
                Err(p) => std::panic::resume_unwind(p),
            }
        }
        self.connects.load(Ordering::Relaxed)
    }
}

impl Drop for Crowd {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Deletes the route by hand [`repairs`] times and returns how long each
/// repair took, from the kernel's delete event to its add event.
fn time_repairs(
    ns: &common::netns::Netns,
    monitor: &RouteMonitor,
    agent: &Agent,
    dst: &str,
    table: u32,
) -> Vec<Duration> {
    let mut times = Vec::new();
    for _ in 0..repairs() {
        ns.ip_line(&format!("route del {dst} table {table}"));
        let deleted = monitor
            .next(CONVERGE, |l| l.starts_with(&format!("Deleted {dst} ")))
            .unwrap_or_else(|e| panic!("deleting {dst}: {e}"));
        let added = monitor
            .next(CONVERGE, |l| l.starts_with(&format!("{dst} ")))
            .unwrap_or_else(|e| {
                panic!(
                    "{dst} was not repaired: {e}; agent: {:?}",
                    agent.check_alive()
                )
            });
        times.push(added.saturating_duration_since(deleted));
        // Let the repair's own event burst settle before the next deletion.
        std::thread::sleep(Duration::from_millis(50));
    }
    times
}

/// Median and 99th percentile, in ms.
fn percentiles(times: &[Duration]) -> (f64, f64) {
    let mut ms: Vec<f64> = times.iter().map(|t| t.as_secs_f64() * 1000.0).collect();
    ms.sort_by(f64::total_cmp);
    let at = |q: f64| ms[((ms.len() - 1) as f64 * q).round() as usize];
    (at(0.5), at(0.99))
}

fn summary(times: &[Duration]) -> String {
    let (p50, p99) = percentiles(times);
    format!("p50 {p50:6.1} ms   p99 {p99:6.1} ms   (n={})", times.len())
}

/// `a` over `b`, both as p50 and p99.
fn ratio(a: &[Duration], b: &[Duration]) -> String {
    let ((a50, a99), (b50, b99)) = (percentiles(a), percentiles(b));
    format!("x{:.2} p50   x{:.2} p99", a50 / b50, a99 / b99)
}

/// A `routecfg_http_connections_total` count from a `/metrics` page.
fn closed(metrics: &str, how: &str) -> f64 {
    let key = format!("routecfg_http_connections_total{{how=\"{how}\"}} ");
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(&key)?.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {key} in /metrics:\n{metrics}"))
}

/// Starts `size` crowd clients and waits until nearly all are connected.
fn gather(agent: &Agent, netns: &str, size: usize) -> Crowd {
    let crowd = Crowd::start(netns, METRICS_PORT, size);
    wait_for(
        &format!("{size} crowd clients to connect"),
        CONVERGE,
        || {
            agent.check_alive()?;
            let n = crowd.connected.load(Ordering::Relaxed);
            if n >= size * 9 / 10 {
                Ok(())
            } else {
                Err(format!("{n} of {size} connected"))
            }
        },
    );
    crowd
}

/// Asks `/healthz` `n` times, 100 ms apart; returns how long each took.
fn probe_health(agent: &Agent, crowd: &Crowd, n: usize) -> Vec<Duration> {
    let mut times = Vec::new();
    for _ in 0..n {
        let started = Instant::now();
        // http_get gives up after a 2 s connect and a 5 s read: the
        // liveness bound.
        match agent.http_get("/healthz") {
            Ok((200, body)) if body == "ok\n" => times.push(started.elapsed()),
            other => panic!(
                "/healthz with {} crowd clients connected: {other:?}",
                crowd.connected.load(Ordering::Relaxed)
            ),
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    times
}

#[test]
fn health_and_repair_survive_300_slow_metrics_clients() {
    require_root();
    let ns = dummy_node("crowd");
    let mut env = KubeEnv::start();
    let ip = env.node_ip(10);
    env.attach(ns.name(), &ip);
    install_crd(&env, Crd::Upstream);
    create_namespaces(&env, &["liqo"]);
    let scratch = Scratch::new("crowd");
    let agent = Agent::start(&AgentConfig {
        netns: ns.name(),
        host: "crowd-host",
        kubeconfig: env.kubeconfig(),
        select: &["--role", "fabric", "--status-addr", STATUS_ADDR],
        dir: scratch.path(),
        metrics_port: METRICS_PORT,
    });
    let dst = "10.93.0.0/16";
    apply(
        &env,
        &route_config(
            "liqo",
            "crowd",
            &[(CATEGORY, "fabric")],
            json!({"name": "crowd", "rules": [
                {"dst": dst, "routes": [{"dst": dst, "gw": "10.90.0.2"}]}
            ]}),
        ),
    );
    let table = table_id("crowd");
    wait_for("the crowd table", CONVERGE, || {
        agent.check_alive()?;
        let routes = ns.routes(table);
        if routes.iter().any(|r| r.dst.to_string() == dst) {
            Ok(())
        } else {
            Err(format!("table {table}: {routes:?}"))
        }
    });
    agent.wait_ready();
    // /status (table names) only on the status address.
    match agent.http_get("/status") {
        Ok((404, _)) => {}
        other => panic!("/status on the metrics port: {other:?}"),
    }
    match http_get_in_netns(ns.name(), STATUS_PORT, "/status") {
        Ok((200, body)) if body.contains("\"table\":\"crowd\"") => {}
        other => panic!("/status on --status-addr: {other:?}"),
    }
    match agent.http_get("/origins") {
        Ok((404, _)) => {}
        other => panic!("/origins on the metrics port: {other:?}"),
    }
    match http_get_in_netns(ns.name(), STATUS_PORT, "/origins") {
        Ok((200, body)) if body.contains("\"crowd\"") => {}
        other => panic!("/origins on --status-addr: {other:?}"),
    }

    let monitor = RouteMonitor::start(ns.name());
    // `ip monitor` subscribes a moment after it starts: wait for a marker.
    // A new marker each try: re-adding the same route raises no event.
    let mut marker = 0;
    wait_for("ip monitor to see a marker route", CONVERGE, || {
        marker += 1;
        let addr = format!("198.18.1.{marker}");
        ns.ip_line(&format!("route add blackhole {addr}/32 table 4242"));
        monitor
            .next(Duration::from_millis(250), |l| {
                l.starts_with(&format!("blackhole {addr} "))
            })
            .map(|_| ())
    });
    let quiet = time_repairs(&ns, &monitor, &agent, dst, table);

    // 40 clients (fewer than the 64 slots): each one holds its slot until
    // the agent closes it at its 2 s deadline.
    let few = gather(&agent, ns.name(), 40);
    std::thread::sleep(Duration::from_millis(2500));
    let few_health = probe_health(&agent, &few, 5);
    few.finish();
    let (code, metrics) = agent
        .http_get("/metrics")
        .unwrap_or_else(|e| panic!("/metrics: {e}"));
    assert_eq!(code, 200, "{metrics}");
    let expired = closed(&metrics, "expired");
    assert!(expired >= 36.0, "only {expired} connections expired");

    // 300 clients: more than the slots, so each new one evicts the oldest
    // idle one, which reconnects.
    let crowd = gather(&agent, ns.name(), CROWD);
    std::thread::sleep(Duration::from_millis(2500));
    let health = probe_health(&agent, &crowd, 10);
    let crowded = time_repairs(&ns, &monitor, &agent, dst, table);
    let (code, metrics) = agent
        .http_get("/metrics")
        .unwrap_or_else(|e| panic!("/metrics: {e}"));
    let connected = crowd.connected.load(Ordering::Relaxed);
    let connects = crowd.finish();
    assert_eq!(code, 200, "{metrics}");
    let evicted = closed(&metrics, "evicted");
    // The crowd really pressed on the server: connections were evicted to
    // make room.
    assert!(evicted > 0.0, "nothing evicted");
    agent.check_alive().unwrap_or_else(|e| panic!("{e}"));

    println!(
        "metrics port under slow clients: with 40, {expired} connections expired at \
         their 2 s deadline; {CROWD} made {connects} connections, {evicted} evicted, \
         {connected} open at the end"
    );
    println!("  repair, no clients:         {}", summary(&quiet));
    println!(
        "  repair, {CROWD} clients:        {}   {} of no clients",
        summary(&crowded),
        ratio(&crowded, &quiet)
    );
    println!("  /healthz, 40 idle clients:  {}", summary(&few_health));
    println!("  /healthz, {CROWD} clients:      {}", summary(&health));
}
