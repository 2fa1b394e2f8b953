//! A tiny HTTP/1.1 responder (one request per connection) for `/metrics`, `/healthz`, `/readyz` and
//! `/status`, driven by the event loop: the listener is nonblocking and
//! polled, and each connection is served with short bounded timeouts.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::{AsRawFd, RawFd};
use std::time::Duration;

/// An answer: status line, content type, body.
pub struct Response {
    pub status: &'static str,
    pub content_type: &'static str,
    pub body: String,
}

impl Response {
    pub fn ok(content_type: &'static str, body: String) -> Response {
        Response {
            status: "200 OK",
            content_type,
            body,
        }
    }

    pub fn text(status: &'static str, body: &str) -> Response {
        Response {
            status,
            content_type: "text/plain",
            body: body.to_string(),
        }
    }
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

    /// Serves every connection waiting to be accepted; `handler` maps a
    /// request path to the answer, so pages are built only when asked for.
    pub fn serve_pending(&self, handler: &mut dyn FnMut(&str) -> Response) {
        loop {
            match self.listener.accept() {
                Ok((stream, _)) => {
                    if let Err(e) = serve(stream, handler) {
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

fn serve(mut stream: TcpStream, handler: &mut dyn FnMut(&str) -> Response) -> std::io::Result<()> {
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
        // Only the request line matters.
        if buf[..len].contains(&b'\n') {
            break;
        }
    }
    let request = String::from_utf8_lossy(&buf[..len]);
    let path = request
        .lines()
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .unwrap_or("/");
    let r = handler(path);
    let head = format!(
        "HTTP/1.1 {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        r.status,
        r.content_type,
        r.body.len()
    );
    stream.write_all(head.as_bytes())?;
    stream.write_all(r.body.as_bytes())?;
    stream.flush()
}
