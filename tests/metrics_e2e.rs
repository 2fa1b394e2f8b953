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
const CROWD: usize = 300;
/// Hand deletions timed with and without the crowd.
const REPAIRS: usize = 10;

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

/// Deletes the route by hand `REPAIRS` times and returns how long each
/// repair took, from the kernel's delete event to its add event.
fn time_repairs(
    ns: &common::netns::Netns,
    monitor: &RouteMonitor,
    agent: &Agent,
    dst: &str,
    table: u32,
) -> Vec<Duration> {
    let mut times = Vec::new();
    for _ in 0..REPAIRS {
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

fn summary(times: &[Duration]) -> String {
    let mut ms: Vec<f64> = times.iter().map(|t| t.as_secs_f64() * 1000.0).collect();
    ms.sort_by(f64::total_cmp);
    let median = ms[ms.len() / 2];
    let max = ms[ms.len() - 1];
    format!("median {median:6.1} ms, max {max:6.1} ms (n={})", ms.len())
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
        select: &["--role", "fabric"],
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

    let crowd = Crowd::start(ns.name(), METRICS_PORT, CROWD);
    wait_for("the crowd to be connected", CONVERGE, || {
        agent.check_alive()?;
        let n = crowd.connected.load(Ordering::Relaxed);
        if n >= CROWD * 9 / 10 {
            Ok(())
        } else {
            Err(format!("{n} of {CROWD} connected"))
        }
    });
    // Past one connection lifetime: the agent has been expiring and
    // evicting the crowd, and the crowd reconnecting.
    std::thread::sleep(Duration::from_millis(2500));

    let mut health = Vec::new();
    for _ in 0..10 {
        let started = Instant::now();
        // http_get gives up after a 2 s connect and a 5 s read: the
        // liveness bound.
        match agent.http_get("/healthz") {
            Ok((200, body)) if body == "ok\n" => health.push(started.elapsed()),
            other => panic!(
                "/healthz with {} crowd clients connected: {other:?}",
                crowd.connected.load(Ordering::Relaxed)
            ),
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let crowded = time_repairs(&ns, &monitor, &agent, dst, table);
    let (code, metrics) = agent
        .http_get("/metrics")
        .unwrap_or_else(|e| panic!("/metrics: {e}"));
    let connected = crowd.connected.load(Ordering::Relaxed);
    let connects = crowd.finish();
    assert_eq!(code, 200, "{metrics}");
    let count = |how: &str| -> f64 {
        let key = format!("routecfg_http_connections_total{{how=\"{how}\"}} ");
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(&key)?.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {key} in /metrics:\n{metrics}"))
    };
    let (expired, evicted) = (count("expired"), count("evicted"));
    // The crowd really pressed on the server: connections were evicted to
    // make room (so fast that few, if any, live to their 2 s deadline).
    assert!(evicted > 0.0, "evicted {evicted}, expired {expired}");
    agent.check_alive().unwrap_or_else(|e| panic!("{e}"));

    println!(
        "metrics port under {CROWD} slow clients ({connects} connections made, {connected} open at the end; agent closed {expired} at their deadline, evicted {evicted})"
    );
    println!("  repair, no clients:    {}", summary(&quiet));
    println!("  repair, {CROWD} clients:   {}", summary(&crowded));
    println!("  /healthz, {CROWD} clients: {}", summary(&health));
}
