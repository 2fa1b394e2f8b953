//! A scripted HTTPS server on 127.0.0.1 for unit tests: each accepted
//! connection plays one script (read a request, send bytes, wait for the
//! test's go-ahead), so tests can put chunk and TLS record boundaries
//! anywhere and hold data back deterministically.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::sync::mpsc::{Receiver, Sender, channel};
use std::thread::JoinHandle;
use std::time::Duration;

use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig, ServerConnection, StreamOwned};

use super::tls::{certs_from_pem, key_from_pem};

pub(crate) const CA1: &[u8] = include_bytes!("testdata/ca1.crt");
pub(crate) const CA2: &[u8] = include_bytes!("testdata/ca2.crt");
pub(crate) const CA_BUNDLE: &[u8] = include_bytes!("testdata/ca-bundle.crt");
pub(crate) const CLIENT_CRT: &[u8] = include_bytes!("testdata/client.crt");
pub(crate) const CLIENT_KEY: &[u8] = include_bytes!("testdata/client.key");
const SERVER_CRT: &[u8] = include_bytes!("testdata/server.crt");
const SERVER_KEY: &[u8] = include_bytes!("testdata/server.key");

/// One thing the server does on a connection.
pub(crate) enum Step {
    /// Read a request (head and Content-Length body), report it.
    Request,
    /// Write these bytes (one TLS record or more) and flush.
    Send(Vec<u8>),
    /// Wait until the test calls [`Server::go`] (or 30 s, so a broken
    /// test fails instead of hanging).
    Wait,
}

pub(crate) struct Server {
    pub(crate) addr: SocketAddr,
    pub(crate) requests: Receiver<String>,
    go: Sender<()>,
    thread: Option<JoinHandle<()>>,
}

impl Server {
    /// Serves one connection per script, in order, then closes each with
    /// close_notify. `require_client_cert`: only clients with a certificate
    /// from ca1 get through.
    pub(crate) fn start(require_client_cert: bool, scripts: Vec<Vec<Step>>) -> Server {
        let config = Arc::new(server_config(require_client_cert));
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
        let addr = listener.local_addr().expect("local addr");
        let (req_tx, requests) = channel();
        let (go, go_rx) = channel::<()>();
        let thread = std::thread::spawn(move || {
            for script in scripts {
                let Ok((tcp, _)) = listener.accept() else {
                    return;
                };
                let Ok(conn) = ServerConnection::new(config.clone()) else {
                    return;
                };
                let mut stream = StreamOwned::new(conn, tcp);
                for step in script {
                    let ok = match step {
                        Step::Request => match read_request(&mut stream) {
                            Some(r) => req_tx.send(r).is_ok(),
                            None => false,
                        },
                        Step::Send(bytes) => stream
                            .write_all(&bytes)
                            .and_then(|_| stream.flush())
                            .is_ok(),
                        Step::Wait => {
                            let _ = go_rx.recv_timeout(Duration::from_secs(30));
                            true
                        }
                    };
                    if !ok {
                        break;
                    }
                }
                stream.conn.send_close_notify();
                let _ = stream.flush();
            }
        });
        Server {
            addr,
            requests,
            go,
            thread: Some(thread),
        }
    }

    /// Releases the current [`Step::Wait`].
    pub(crate) fn go(&self) {
        let _ = self.go.send(());
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.go.send(());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn server_config(require_client_cert: bool) -> ServerConfig {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(rustls::ALL_VERSIONS)
        .expect("protocol versions");
    let builder = if require_client_cert {
        let mut roots = RootCertStore::empty();
        for c in certs_from_pem(CA1, "ca1").expect("ca1") {
            roots.add(c).expect("ca1 root");
        }
        let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
            .build()
            .expect("client verifier");
        builder.with_client_cert_verifier(verifier)
    } else {
        builder.with_no_client_auth()
    };
    builder
        .with_single_cert(
            certs_from_pem(SERVER_CRT, "server").expect("server cert"),
            key_from_pem(SERVER_KEY, "server").expect("server key"),
        )
        .expect("server config")
}

/// Reads one request head and its Content-Length body; `None` if the client
/// went away (or the handshake failed).
fn read_request(stream: &mut impl Read) -> Option<String> {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        match stream.read(&mut byte) {
            Ok(1) => buf.push(byte[0]),
            _ => return None,
        }
    }
    let head = String::from_utf8_lossy(&buf).into_owned();
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
    Some(head + &String::from_utf8_lossy(&body))
}

/// An HTTP/1.1 chunk holding `data`.
pub(crate) fn chunk(data: &str) -> Vec<u8> {
    format!("{:x}\r\n{data}\r\n", data.len()).into_bytes()
}
