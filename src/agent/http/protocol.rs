//! The little of HTTP/1.1 the metrics server speaks: one `GET` or `HEAD`
//! per connection, read from its head alone, answered with
//! `Connection: close`. Pure functions over bytes, so every refusal is unit
//! tested without sockets.

/// The largest request head accepted (request line and headers). Scrapers
/// and probes send a few hundred bytes; anything beyond this is refused
/// before it costs memory.
pub const MAX_HEAD: usize = 4096;

/// What a request may ask for. The loop supplies the answer for each.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Page {
    Metrics,
    Health,
    Ready,
    Status,
    /// Where each table, rule and route came from (`routecfg explain`):
    /// grows with the routes, so apart from `/status`, which stays small.
    Origins,
}

/// A complete answer: the body is built once, then written out as it goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Response {
    pub status: &'static str,
    pub content_type: &'static str,
    /// Extra header lines, each ending in `\r\n`.
    pub headers: &'static str,
    pub body: String,
}

impl Response {
    pub fn ok(content_type: &'static str, body: String) -> Response {
        Response {
            status: "200 OK",
            content_type,
            headers: "",
            body,
        }
    }

    pub fn text(status: &'static str, body: &str) -> Response {
        Response {
            status,
            content_type: "text/plain",
            headers: "",
            body: body.to_string(),
        }
    }

    /// The bytes on the wire; `HEAD` gets the same head without the body.
    pub fn encode(&self, head_only: bool) -> Vec<u8> {
        let head = format!(
            "HTTP/1.1 {}\r\nContent-Type: {}\r\nContent-Length: {}\r\n{}Connection: close\r\n\r\n",
            self.status,
            self.content_type,
            self.body.len(),
            self.headers
        );
        let mut out = head.into_bytes();
        if !head_only {
            out.extend_from_slice(self.body.as_bytes());
        }
        out
    }
}

/// Why a request gets no page.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// The request line cannot be read as `METHOD TARGET HTTP/1.x`.
    BadRequest(&'static str),
    /// The head is larger than [`MAX_HEAD`].
    TooLarge,
    MethodNotAllowed,
    NotFound,
}

impl Refusal {
    pub fn response(self) -> Response {
        match self {
            Refusal::BadRequest(why) => {
                Response::text("400 Bad Request", &format!("bad request: {why}\n"))
            }
            Refusal::TooLarge => Response::text(
                "431 Request Header Fields Too Large",
                "request head larger than 4096 bytes\n",
            ),
            Refusal::MethodNotAllowed => Response {
                headers: "Allow: GET, HEAD\r\n",
                ..Response::text("405 Method Not Allowed", "only GET and HEAD\n")
            },
            Refusal::NotFound => Response::text("404 Not Found", "not found\n"),
        }
    }
}

/// A request the server will answer with a page.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Request {
    pub page: Page,
    /// `HEAD`: the answer's head only.
    pub head_only: bool,
}

/// Where the head ends: the index just past the blank line, if `buf` holds
/// one. Bare `\n` line ends are accepted as well, as most servers do.
pub fn head_end(buf: &[u8]) -> Option<usize> {
    (0..buf.len()).find_map(|i| {
        if buf[i..].starts_with(b"\r\n\r\n") {
            Some(i + 4)
        } else if buf[i..].starts_with(b"\n\n") {
            Some(i + 2)
        } else if buf[i..].starts_with(b"\n\r\n") {
            Some(i + 3)
        } else {
            None
        }
    })
}

/// Why a head that never ended is refused: the request line itself was too
/// long (400), or the headers after it were (431).
pub fn oversized(buf: &[u8]) -> Refusal {
    if buf.contains(&b'\n') {
        Refusal::TooLarge
    } else {
        Refusal::BadRequest("request line longer than 4096 bytes")
    }
}

/// Reads the request line of a complete head. `serves_status` is false on
/// a listener that must not show `/status` or `/origins` (both name tables
/// and objects); it answers 404 there.
pub fn parse(head: &[u8], serves_status: bool) -> Result<Request, Refusal> {
    if head.len() > MAX_HEAD {
        return Err(oversized(head));
    }
    let line_end = head
        .iter()
        .position(|&b| b == b'\n')
        .ok_or(Refusal::BadRequest("no request line"))?;
    let line = std::str::from_utf8(&head[..line_end])
        .map_err(|_| Refusal::BadRequest("request line is not UTF-8"))?;
    let line = line.strip_suffix('\r').unwrap_or(line);
    let mut words = line.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (words.next(), words.next(), words.next(), words.next())
    else {
        return Err(Refusal::BadRequest(
            "request line is not METHOD TARGET VERSION",
        ));
    };
    if !version.starts_with("HTTP/1.") {
        return Err(Refusal::BadRequest("not HTTP/1.x"));
    }
    let head_only = match method {
        "GET" => false,
        "HEAD" => true,
        "" => return Err(Refusal::BadRequest("empty method")),
        _ => return Err(Refusal::MethodNotAllowed),
    };
    let path = target.split_once('?').map_or(target, |(p, _)| p);
    let page = match path {
        "/metrics" => Page::Metrics,
        "/healthz" => Page::Health,
        "/readyz" => Page::Ready,
        "/status" if serves_status => Page::Status,
        "/origins" if serves_status => Page::Origins,
        _ => return Err(Refusal::NotFound),
    };
    Ok(Request { page, head_only })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get(line: &str) -> Result<Request, Refusal> {
        parse(format!("{line}\r\nHost: x\r\n\r\n").as_bytes(), true)
    }

    #[test]
    fn pages_and_methods() {
        let page = |p| {
            Ok(Request {
                page: p,
                head_only: false,
            })
        };
        assert_eq!(get("GET /metrics HTTP/1.1"), page(Page::Metrics));
        assert_eq!(get("GET /healthz HTTP/1.0"), page(Page::Health));
        assert_eq!(get("GET /readyz?verbose=1 HTTP/1.1"), page(Page::Ready));
        assert_eq!(get("GET /status HTTP/1.1"), page(Page::Status));
        assert_eq!(get("GET /origins HTTP/1.1"), page(Page::Origins));
        assert_eq!(
            get("HEAD /healthz HTTP/1.1"),
            Ok(Request {
                page: Page::Health,
                head_only: true
            })
        );
        assert_eq!(get("GET / HTTP/1.1"), Err(Refusal::NotFound));
        assert_eq!(
            get("POST /metrics HTTP/1.1"),
            Err(Refusal::MethodNotAllowed)
        );
    }

    #[test]
    fn status_only_where_allowed() {
        let head = b"GET /status HTTP/1.1\r\n\r\n";
        assert_eq!(parse(head, false), Err(Refusal::NotFound));
        assert!(parse(head, true).is_ok());
        let head = b"GET /origins HTTP/1.1\r\n\r\n";
        assert_eq!(parse(head, false), Err(Refusal::NotFound));
        assert!(parse(head, true).is_ok());
        assert!(parse(b"GET /metrics HTTP/1.1\r\n\r\n", false).is_ok());
    }

    #[test]
    fn malformed_request_lines() {
        for line in [
            "GET /metrics",
            "GET  /metrics HTTP/1.1",
            "GET /metrics HTTP/2.0",
            "GET /metrics HTTP/1.1 extra",
            " /metrics HTTP/1.1",
            "",
        ] {
            assert!(
                matches!(get(line), Err(Refusal::BadRequest(_))),
                "{line:?}: {:?}",
                get(line)
            );
        }
        assert!(matches!(
            parse(b"GET /\xff HTTP/1.1\r\n\r\n", true),
            Err(Refusal::BadRequest(_))
        ));
    }

    #[test]
    fn head_ends_at_the_blank_line() {
        assert_eq!(head_end(b"GET / HTTP/1.1\r\nHost: x\r\n"), None);
        assert_eq!(head_end(b"GET / HTTP/1.1\r\n\r\n"), Some(18));
        assert_eq!(head_end(b"GET / HTTP/1.1\n\nrest"), Some(16));
        assert_eq!(head_end(b"GET / HTTP/1.1\r\nA: b\n\r\n"), Some(23));
        assert_eq!(head_end(b""), None);
    }

    #[test]
    fn oversized_heads() {
        let long_line = vec![b'a'; MAX_HEAD];
        assert!(matches!(oversized(&long_line), Refusal::BadRequest(_)));
        let mut long_headers = b"GET /metrics HTTP/1.1\r\n".to_vec();
        long_headers.resize(MAX_HEAD, b'x');
        assert_eq!(oversized(&long_headers), Refusal::TooLarge);
        long_headers.extend_from_slice(b"\r\n\r\n");
        assert_eq!(parse(&long_headers, true), Err(Refusal::TooLarge));
    }

    #[test]
    fn encoding() {
        let r = Response::text("200 OK", "ok\n");
        assert_eq!(
            String::from_utf8(r.encode(false)).ok().as_deref(),
            Some(
                "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 3\r\nConnection: close\r\n\r\nok\n"
            )
        );
        let head = String::from_utf8(r.encode(true)).unwrap_or_default();
        assert!(head.ends_with("Content-Length: 3\r\nConnection: close\r\n\r\n"));
        let refused = String::from_utf8(Refusal::MethodNotAllowed.response().encode(false))
            .unwrap_or_default();
        assert!(refused.starts_with("HTTP/1.1 405 Method Not Allowed\r\n"));
        assert!(refused.contains("\r\nAllow: GET, HEAD\r\n"));
    }
}
