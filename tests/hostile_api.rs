//! End-to-end against a small hostile API server on loopback, inside the
//! agent's network namespace: the misbehaviours a real kube-apiserver
//! cannot be made to show on purpose. The first connection is honest (it
//! lists one RouteConfiguration, so a table gets applied); every later one
//! misbehaves. For each kind the agent must keep repairing its table,
//! answer `/healthz`, keep its memory bounded, pace its reconnects and exit
//! promptly on SIGTERM.
//!
//! Needs root (network namespaces); fails loudly otherwise. Prints the
//! figures; asserts only generous bounds that separate "paced and bounded"
//! from "spinning and growing" (the old agent: 320 reconnects a second,
//! 10 GB of RSS).

mod common;

use common::agent::*;
use common::netns::require_root;
use routecfg::table_id::table_id;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ServerConfig, ServerConnection, StreamOwned};

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

const TESTDATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/src/kube/testdata");
const HOST: &str = "hostile-host";
/// How long the server misbehaves before the checks.
const HOSTILE_FOR: Duration = Duration::from_secs(8);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    /// Watches get an endless stream of bookmarks, as fast as TCP takes.
    EndlessWatch,
    /// Watches get `200 OK` with an empty body.
    EmptyWatch,
    /// Watches get 410 (so the agent lists again); lists get a new
    /// continue token on every page, forever.
    EndlessContinue,
    /// Connections are accepted and never read or answered.
    Silent,
    /// The TLS handshake gets half a server flight, then nothing.
    TlsStall,
}

fn server_config() -> Arc<ServerConfig> {
    let certs: Vec<CertificateDer<'static>> =
        CertificateDer::pem_file_iter(format!("{TESTDATA}/server.crt"))
            .expect("server.crt")
            .collect::<Result<_, _>>()
            .expect("server cert");
    let key = PrivateKeyDer::from_pem_file(format!("{TESTDATA}/server.key")).expect("server key");
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(rustls::ALL_VERSIONS)
        .expect("versions")
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .expect("server config");
    Arc::new(config)
}

const OBJECT: &str = r#"{"apiVersion":"networking.liqo.io/v1beta1","kind":"RouteConfiguration","metadata":{"name":"hostile","namespace":"liqo","uid":"u-1","resourceVersion":"10","labels":{"networking.liqo.io/route-category":"fabric"}},"spec":{"table":{"name":"hostile","rules":[{"dst":"10.81.0.0/16","routes":[{"dst":"10.81.0.0/16","gw":"10.90.0.2"}]}]}}}"#;

fn reply(stream: &mut impl Write, status: &str, body: &str, close: bool) -> bool {
    let connection = if close { "close" } else { "keep-alive" };
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nConnection: {connection}\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).is_ok()
        && stream.write_all(body.as_bytes()).is_ok()
        && stream.flush().is_ok()
}

/// Reads one request head (and a Content-Length body); `None` when the
/// client went away.
fn read_request(stream: &mut impl Read) -> Option<String> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match stream.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            _ => return None,
        }
        if head.len() > 1 << 20 {
            return None;
        }
    }
    let head = String::from_utf8_lossy(&head).into_owned();
    let length = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse::<usize>().ok())?
        })
        .unwrap_or(0);
    let mut body = vec![0u8; length];
    stream.read_exact(&mut body).ok()?;
    Some(head)
}

fn honest(mut tls: StreamOwned<ServerConnection, TcpStream>) {
    let Some(req) = read_request(&mut tls) else {
        return;
    };
    let line = req.lines().next().unwrap_or("").to_string();
    if line.starts_with("GET")
        && line.contains("/routeconfigurations?")
        && !line.contains("watch=1")
    {
        let list = format!(
            r#"{{"kind":"RouteConfigurationList","metadata":{{"resourceVersion":"10"}},"items":[{OBJECT}]}}"#
        );
        // Closed after the list: every later call opens a connection of the
        // hostile kind.
        reply(&mut tls, "200 OK", &list, true);
    } else {
        let not_found = r#"{"kind":"Status","code":404,"reason":"NotFound","message":"not here"}"#;
        reply(&mut tls, "404 Not Found", not_found, true);
    }
}

fn hostile(mode: Mode, mut tls: StreamOwned<ServerConnection, TcpStream>, requests: &AtomicUsize) {
    let mut page = 0u64;
    while let Some(req) = read_request(&mut tls) {
        requests.fetch_add(1, Ordering::SeqCst);
        let line = req.lines().next().unwrap_or("").to_string();
        let watch = line.contains("watch=1");
        let list = line.starts_with("GET") && line.contains("/routeconfigurations?") && !watch;
        match (mode, watch, list) {
            (Mode::EndlessWatch, true, _) => {
                let head = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n";
                if tls.write_all(head.as_bytes()).is_err() {
                    return;
                }
                for rv in 11u64.. {
                    let mut lines = String::new();
                    for i in 0..100 {
                        lines.push_str(&format!(
                            "{{\"type\":\"BOOKMARK\",\"object\":{{\"metadata\":{{\"resourceVersion\":\"{}\"}}}}}}\n",
                            rv * 100 + i
                        ));
                    }
                    let chunk = format!("{:x}\r\n{lines}\r\n", lines.len());
                    if tls.write_all(chunk.as_bytes()).is_err() || tls.flush().is_err() {
                        return;
                    }
                }
            }
            (Mode::EmptyWatch, true, _) => {
                reply(&mut tls, "200 OK", "", true);
                return;
            }
            (Mode::EndlessContinue, true, _) => {
                let gone = r#"{"kind":"Status","code":410,"reason":"Expired","message":"too old resource version"}"#;
                reply(&mut tls, "410 Gone", gone, true);
                return;
            }
            (Mode::EndlessContinue, _, true) => {
                page += 1;
                let body = format!(
                    r#"{{"kind":"RouteConfigurationList","metadata":{{"resourceVersion":"10","continue":"c{page}"}},"items":[{OBJECT}]}}"#
                );
                if !reply(&mut tls, "200 OK", &body, false) {
                    return;
                }
            }
            _ => {
                let not_found =
                    r#"{"kind":"Status","code":404,"reason":"NotFound","message":"not here"}"#;
                if !reply(&mut tls, "404 Not Found", not_found, false) {
                    return;
                }
            }
        }
    }
}

/// Serves connections on `listener` until the test ends; counts them.
fn serve(
    listener: TcpListener,
    mode: Mode,
    accepted: Arc<AtomicUsize>,
    requests: Arc<AtomicUsize>,
) {
    let config = server_config();
    for conn in listener.incoming() {
        let Ok(mut tcp) = conn else {
            return;
        };
        let n = accepted.fetch_add(1, Ordering::SeqCst);
        let config = config.clone();
        let requests = requests.clone();
        std::thread::spawn(move || {
            if n > 0 && mode == Mode::Silent {
                std::thread::sleep(Duration::from_secs(600));
                return;
            }
            if n > 0 && mode == Mode::TlsStall {
                let mut hello = [0u8; 4096];
                let _ = tcp.read(&mut hello);
                // A handshake record header announcing 16 KiB, and 10 bytes.
                let _ = tcp.write_all(&[22, 3, 3, 0x40, 0, 2, 0, 0x3f, 0xfc, 3, 3, 0, 0, 0, 0]);
                std::thread::sleep(Duration::from_secs(600));
                return;
            }
            let Ok(server) = ServerConnection::new(config) else {
                return;
            };
            let tls = StreamOwned::new(server, tcp);
            if n == 0 {
                honest(tls);
            } else {
                hostile(mode, tls, &requests);
            }
        });
    }
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// User + system CPU time of `pid` so far, in clock ticks.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which is in parentheses).
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let field = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
    };
    field(11) + field(12)
}

fn b64(data: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for c in data.chunks(3) {
        let v = (u32::from(c[0]) << 16)
            | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
            | u32::from(*c.get(2).unwrap_or(&0));
        for i in 0..4 {
            out.push(if i <= c.len() {
                A[((v >> (18 - 6 * i)) & 63) as usize] as char
            } else {
                '='
            });
        }
    }
    out
}

fn against(mode: Mode) {
    require_root();
    let ns = dummy_node(&format!("hx{}", mode as u8));
    let listener = ns.in_netns(|| TcpListener::bind("127.0.0.1:0").expect("bind loopback"));
    let port = listener.local_addr().expect("addr").port();
    let accepted = Arc::new(AtomicUsize::new(0));
    let requests = Arc::new(AtomicUsize::new(0));
    {
        let accepted = accepted.clone();
        let requests = requests.clone();
        std::thread::spawn(move || serve(listener, mode, accepted, requests));
    }
    let scratch = Scratch::new(&format!("hostile-{mode:?}"));
    let ca = std::fs::read(format!("{TESTDATA}/ca-bundle.crt")).expect("ca bundle");
    let kubeconfig = scratch.path().join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        format!(
            "clusters: [{{name: c, cluster: {{server: 'https://127.0.0.1:{port}', certificate-authority-data: {}}}}}]
users: [{{name: u, user: {{token: t}}}}]
contexts: [{{name: x, context: {{cluster: c, user: u}}}}]
current-context: x
",
            b64(&ca)
        ),
    )
    .expect("kubeconfig");
    let agent = Agent::start(&AgentConfig {
        netns: ns.name(),
        host: HOST,
        kubeconfig: &kubeconfig,
        select: &["--role", "fabric"],
        dir: scratch.path(),
        metrics_port: 9433,
    });
    let table = Expected::from_spec(
        &serde_json::from_str::<serde_json::Value>(OBJECT).expect("json")["spec"],
    );
    assert_eq!(table.id, table_id("hostile"));
    wait_for("the table from the honest list", CONVERGE, || {
        agent.check_alive()?;
        table.check(&ns)
    });
    let at_start = accepted.load(Ordering::SeqCst);
    let requests_at_start = requests.load(Ordering::SeqCst);
    let cpu_at_start = cpu_ticks(agent.pid());
    std::thread::sleep(HOSTILE_FOR);
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    let cpu = (cpu_ticks(agent.pid()) - cpu_at_start) as f64 / hz;
    let connections = accepted.load(Ordering::SeqCst) - at_start;
    let requests = requests.load(Ordering::SeqCst) - requests_at_start;

    // Repair still works, at normal speed.
    let mut worst = Duration::ZERO;
    for _ in 0..5 {
        ns.ip_line(&format!("route del 10.81.0.0/16 table {}", table.id));
        let deleted = Instant::now();
        let guard = deleted + CONVERGE;
        loop {
            agent.check_alive().unwrap_or_else(|e| panic!("{e}"));
            if table.check(&ns).is_ok() {
                break;
            }
            assert!(Instant::now() < guard, "{mode:?}: route not repaired");
            std::thread::sleep(Duration::from_millis(1));
        }
        worst = worst.max(deleted.elapsed());
    }
    let asked = Instant::now();
    let healthz = agent.http_get("/healthz");
    let healthz_ms = asked.elapsed().as_secs_f64() * 1000.0;
    let rss = rss_kib(agent.pid());
    let asked = Instant::now();
    let code = agent.stop();
    let exit_ms = asked.elapsed().as_secs_f64() * 1000.0;
    eprintln!(
        "{mode:?}: {connections} connections, {requests} requests, {:.0} % CPU in {} s; worst repair {:.1} ms; /healthz {healthz_ms:.1} ms; RSS {} KiB; SIGTERM to exit {exit_ms:.0} ms",
        100.0 * cpu / HOSTILE_FOR.as_secs_f64(),
        HOSTILE_FOR.as_secs(),
        worst.as_secs_f64() * 1000.0,
        rss
    );
    assert!(code.success(), "{mode:?}: exit status {code}");
    assert_eq!(healthz.map(|(c, _)| c), Ok(200), "{mode:?}: /healthz");
    assert!(rss < 100 * 1024, "{mode:?}: RSS {rss} KiB");
    // Backoff from 0.5 s (capped at 30 s) allows about 5 attempts in 8 s
    // per stream; the old agent made thousands.
    assert!(
        connections < 40,
        "{mode:?}: {connections} connections in {} s",
        HOSTILE_FOR.as_secs()
    );
}

#[test]
fn endless_watch_stream() {
    against(Mode::EndlessWatch);
}

#[test]
fn empty_answer_to_a_watch() {
    against(Mode::EmptyWatch);
}

#[test]
fn endless_continue_chain() {
    against(Mode::EndlessContinue);
}

#[test]
fn server_that_never_answers() {
    against(Mode::Silent);
}

#[test]
fn tls_handshake_that_stalls() {
    against(Mode::TlsStall);
}
