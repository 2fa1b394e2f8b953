//! A tiny HTTP/1.0-style responder for `/metrics`, `/healthz`, `/readyz` and
//! `/status`, driven by the event loop: the listener is nonblocking and
//! polled, and each connection is served with short bounded timeouts.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::{AsRawFd, RawFd};
use std::time::Duration;

/// What the loop can answer with.
pub struct Pages<'a> {
    pub metrics: &'a str,
    pub ready: bool,
    pub status_json: &'a str,
}

/// The metrics and health listener.
pub struct HttpServer {
    listener: TcpListener,
}

impl HttpServer {
    pub fn bind(addr: &str) -> Result<HttpServer, String> {
        let parsed: SocketAddr = addr
            .parse()
            .map_err(|_| format!("--metrics-addr {addr:?}: expected IP:PORT"))?;
        let listener =
            TcpListener::bind(parsed).map_err(|e| format!("--metrics-addr {addr}: {e}"))?;
        listener
            .set_nonblocking(true)
            .map_err(|e| format!("--metrics-addr {addr}: {e}"))?;
        Ok(HttpServer { listener })
    }

    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.listener.local_addr().ok()
    }

    pub fn fd(&self) -> RawFd {
        self.listener.as_raw_fd()
    }

    /// Serves every connection waiting to be accepted. `render` builds the
    /// pages only when a request actually arrives.
    pub fn serve_pending(&self, render: &mut dyn FnMut() -> (String, bool, String)) {
        loop {
            match self.listener.accept() {
                Ok((stream, _)) => {
                    let (metrics, ready, status_json) = render();
                    let pages = Pages {
                        metrics: &metrics,
                        ready,
                        status_json: &status_json,
                    };
                    if let Err(e) = serve(stream, &pages) {
                        log::debug!("metrics connection: {e}");
                    }
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(e) => {
                    log::warn!("metrics listener: {e}");
                    return;
                }
            }
        }
    }
}

fn serve(mut stream: TcpStream, pages: &Pages<'_>) -> std::io::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(Duration::from_millis(500)))?;
    stream.set_write_timeout(Some(Duration::from_millis(500)))?;
    let mut buf = [0u8; 2048];
    let mut len = 0;
    while len < buf.len() {
        let n = stream.read(&mut buf[len..])?;
        if n == 0 {
            break;
        }
        len += n;
        if buf[..len].windows(4).any(|w| w == b"\r\n\r\n") || buf[..len].contains(&b'\n') {
            break;
        }
    }
    let request = String::from_utf8_lossy(&buf[..len]);
    let path = request
        .lines()
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .unwrap_or("/");
    let (code, ctype, body): (&str, &str, &str) = match path {
        "/metrics" => ("200 OK", "text/plain; version=0.0.4", pages.metrics),
        "/healthz" => ("200 OK", "text/plain", "ok\n"),
        "/readyz" if pages.ready => ("200 OK", "text/plain", "ok\n"),
        "/readyz" => ("503 Service Unavailable", "text/plain", "not ready\n"),
        "/status" => ("200 OK", "application/json", pages.status_json),
        _ => ("404 Not Found", "text/plain", "not found\n"),
    };
    let head = format!(
        "HTTP/1.1 {code}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes())?;
    stream.write_all(body.as_bytes())?;
    stream.flush()
}
