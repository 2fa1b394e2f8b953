//! One HTTP/1.1 request and its response, as bytes in and bytes out, on
//! ureq's sans-IO engine (`ureq-proto`). No sockets, no clock: the caller
//! moves the bytes (see `conn.rs`) and owns the deadlines, so this part is
//! tested with scripted bytes split at every point.
//!
//! A response body is handed out as it is decoded (chunked, sized or
//! close-delimited), so the same exchange serves a short GET and an
//! endless watch stream.

use ureq_proto::client::state::{RecvBody, RecvResponse, SendBody, SendRequest};
use ureq_proto::client::{Call, RecvBodyResult, RecvResponseResult, SendRequestResult};
use ureq_proto::http::{Method, Request};

/// Largest response head accepted (status line and headers).
const MAX_HEAD: usize = 64 * 1024;
/// Scratch size for encoding the request and decoding body bytes.
const SCRATCH: usize = 16 * 1024;

enum Stage {
    Send(Call<SendRequest>),
    Body(Call<SendBody>),
    Head(Call<RecvResponse>),
    Recv(Call<RecvBody>),
    Done,
    /// A transition failed half-way; the exchange is unusable.
    Broken,
}

/// What [`Exchange::input`] made of the bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Progress {
    /// More bytes are needed.
    More,
    /// The whole response is here.
    Complete,
}

/// One request/response exchange.
pub(crate) struct Exchange {
    stage: Stage,
    body: Vec<u8>,
    body_sent: usize,
    /// Received bytes not yet consumed by the engine.
    pending: Vec<u8>,
    status: Option<u16>,
    /// The body ends when the server closes the connection.
    close_delimited: bool,
    must_close: bool,
}

impl std::fmt::Debug for Exchange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Exchange")
            .field("status", &self.status)
            .field("done", &self.is_complete())
            .finish()
    }
}

impl Exchange {
    /// Prepares `method path` to `authority` with `headers`; a body, when
    /// given, is sent with a Content-Length.
    pub(crate) fn new(
        method: &str,
        authority: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<Vec<u8>>,
    ) -> Result<Exchange, String> {
        let method =
            Method::from_bytes(method.as_bytes()).map_err(|e| format!("method {method}: {e}"))?;
        let mut builder = Request::builder()
            .method(method)
            .uri(format!("https://{authority}{path}"));
        for (k, v) in headers {
            builder = builder.header(*k, *v);
        }
        if let Some(b) = &body {
            builder = builder.header("content-length", b.len().to_string());
        }
        let request = builder.body(()).map_err(|e| format!("request: {e}"))?;
        let mut call = Call::new(request).map_err(|e| format!("request: {e}"))?;
        if body.is_some() {
            // DELETE with a body (delete options) is valid for the API.
            call.force_send_body();
        }
        Ok(Exchange {
            stage: Stage::Send(call.proceed()),
            body: body.unwrap_or_default(),
            body_sent: 0,
            pending: Vec::new(),
            status: None,
            close_delimited: false,
            must_close: false,
        })
    }

    /// Appends the whole request (head and body) to `out`. Call once,
    /// before any input.
    pub(crate) fn output(&mut self, out: &mut Vec<u8>) -> Result<(), String> {
        let mut scratch = vec![0u8; SCRATCH];
        loop {
            match std::mem::replace(&mut self.stage, Stage::Broken) {
                Stage::Send(mut call) => {
                    while !call.can_proceed() {
                        let n = call
                            .write(&mut scratch)
                            .map_err(|e| format!("request: {e}"))?;
                        out.extend_from_slice(&scratch[..n]);
                    }
                    self.stage = match call.proceed().map_err(|e| format!("request: {e}"))? {
                        Some(SendRequestResult::SendBody(c)) => Stage::Body(c),
                        Some(SendRequestResult::RecvResponse(c)) => Stage::Head(c),
                        Some(SendRequestResult::Await100(_)) | None => {
                            return Err("request: unexpected send state".to_string());
                        }
                    };
                }
                Stage::Body(mut call) => {
                    while !call.can_proceed() {
                        let input = &self.body[self.body_sent..];
                        let (used, n) = call
                            .write(input, &mut scratch)
                            .map_err(|e| format!("request body: {e}"))?;
                        self.body_sent += used;
                        out.extend_from_slice(&scratch[..n]);
                        if used == 0 && n == 0 && !input.is_empty() {
                            return Err("request body: no progress".to_string());
                        }
                    }
                    self.stage = match call.proceed() {
                        Some(c) => Stage::Head(c),
                        None => return Err("request body: unexpected state".to_string()),
                    };
                }
                other => {
                    self.stage = other;
                    return Ok(());
                }
            }
        }
    }

    /// Feeds received bytes; decoded body bytes are appended to `body`.
    pub(crate) fn input(&mut self, data: &[u8], body: &mut Vec<u8>) -> Result<Progress, String> {
        self.pending.extend_from_slice(data);
        let mut scratch = vec![0u8; SCRATCH];
        loop {
            match std::mem::replace(&mut self.stage, Stage::Broken) {
                Stage::Head(mut call) => {
                    let (used, response) = call
                        .try_response(&self.pending, false)
                        .map_err(|e| format!("response head: {e}"))?;
                    self.pending.drain(..used);
                    let got_response = response.is_some();
                    if let Some(r) = response {
                        self.status = Some(r.status().as_u16());
                    }
                    if !call.can_proceed() {
                        self.stage = Stage::Head(call);
                        if used > 0 && !got_response {
                            // An informational (1xx) response was consumed.
                            continue;
                        }
                        if self.pending.len() > MAX_HEAD {
                            return Err(format!("response head larger than {MAX_HEAD} bytes"));
                        }
                        return Ok(Progress::More);
                    }
                    self.stage = match call.proceed() {
                        Some(RecvResponseResult::RecvBody(c)) => {
                            self.close_delimited =
                                matches!(c.body_mode(), ureq_proto::BodyMode::CloseDelimited);
                            Stage::Recv(c)
                        }
                        Some(RecvResponseResult::Redirect(c)) => {
                            self.must_close = c.must_close_connection();
                            Stage::Done
                        }
                        Some(RecvResponseResult::Cleanup(c)) => {
                            self.must_close = c.must_close_connection();
                            Stage::Done
                        }
                        None => return Err("response head: unexpected state".to_string()),
                    };
                }
                Stage::Recv(mut call) => {
                    while !self.pending.is_empty() {
                        let (used, n) = call
                            .read(&self.pending, &mut scratch)
                            .map_err(|e| format!("response body: {e}"))?;
                        self.pending.drain(..used);
                        body.extend_from_slice(&scratch[..n]);
                        if used == 0 && n == 0 {
                            break;
                        }
                    }
                    if self.close_delimited || !call.can_proceed() {
                        self.stage = Stage::Recv(call);
                        return Ok(Progress::More);
                    }
                    self.must_close = match call.proceed() {
                        Some(RecvBodyResult::Cleanup(c)) => c.must_close_connection(),
                        Some(RecvBodyResult::Redirect(c)) => c.must_close_connection(),
                        None => true,
                    };
                    // Bytes after the response mean the connection is out
                    // of step: never reuse it.
                    self.must_close |= !self.pending.is_empty();
                    self.stage = Stage::Done;
                }
                Stage::Done => {
                    self.stage = Stage::Done;
                    return Ok(Progress::Complete);
                }
                Stage::Send(_) | Stage::Body(_) => {
                    return Err("response before the request was written".to_string());
                }
                Stage::Broken => return Err("exchange broken by an earlier error".to_string()),
            }
        }
    }

    /// The server closed the connection: completes a close-delimited body,
    /// anything else is cut short.
    pub(crate) fn end_of_input(&mut self) -> Result<Progress, String> {
        match &self.stage {
            Stage::Done => Ok(Progress::Complete),
            Stage::Recv(_) if self.close_delimited => {
                self.must_close = true;
                self.stage = Stage::Done;
                Ok(Progress::Complete)
            }
            Stage::Recv(_) => Err("connection closed in the middle of the response body".into()),
            _ => Err("connection closed before a response".to_string()),
        }
    }

    /// The response status, once the head is in.
    pub(crate) fn status(&self) -> Option<u16> {
        self.status
    }

    pub(crate) fn is_complete(&self) -> bool {
        matches!(self.stage, Stage::Done)
    }

    /// True when the connection cannot carry another request.
    pub(crate) fn must_close(&self) -> bool {
        self.must_close || !self.is_complete()
    }

    /// True once any byte of the response arrived.
    pub(crate) fn answered(&self) -> bool {
        self.status.is_some() || !self.pending.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(method: &str, body: Option<&str>) -> (Exchange, String) {
        let mut x = Exchange::new(
            method,
            "10.0.0.1:6443",
            "/apis/g/v1/things?limit=5",
            &[
                ("authorization", "Bearer t"),
                ("accept", "application/json"),
            ],
            body.map(|b| b.as_bytes().to_vec()),
        )
        .expect("exchange");
        let mut out = Vec::new();
        x.output(&mut out).expect("output");
        (x, String::from_utf8(out).expect("ascii"))
    }

    /// Feeds `raw` split at `at`; returns status, body and whether the
    /// response completed.
    fn feed_split(x: &mut Exchange, raw: &[u8], at: usize) -> (Vec<u8>, Progress) {
        let mut body = Vec::new();
        let mut p = x.input(&raw[..at], &mut body).expect("first part");
        if at < raw.len() || p == Progress::More {
            p = x.input(&raw[at..], &mut body).expect("second part");
        }
        (body, p)
    }

    #[test]
    fn get_request_bytes() {
        let (_, text) = request("GET", None);
        assert!(
            text.starts_with("GET /apis/g/v1/things?limit=5 HTTP/1.1\r\n"),
            "{text}"
        );
        assert!(text.contains("host: 10.0.0.1:6443\r\n"), "{text}");
        assert!(text.contains("authorization: Bearer t\r\n"), "{text}");
        assert!(text.ends_with("\r\n\r\n"), "{text}");
        assert!(!text.to_lowercase().contains("content-length"), "{text}");
    }

    #[test]
    fn put_sends_sized_body() {
        let (_, text) = request("PUT", Some(r#"{"a":1}"#));
        assert!(text.starts_with("PUT "), "{text}");
        assert!(text.contains("content-length: 7\r\n"), "{text}");
        assert!(text.ends_with("\r\n\r\n{\"a\":1}"), "{text}");
    }

    #[test]
    fn sized_response_at_every_split_point() {
        let raw = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 11\r\n\r\n{\"items\":1}";
        for at in 0..=raw.len() {
            let (mut x, _) = request("GET", None);
            let (body, p) = feed_split(&mut x, raw, at);
            assert_eq!(p, Progress::Complete, "split {at}");
            assert_eq!(body, b"{\"items\":1}", "split {at}");
            assert_eq!(x.status(), Some(200));
            assert!(!x.must_close(), "keep-alive by default");
        }
    }

    #[test]
    fn chunked_response_at_every_split_point() {
        let raw = b"HTTP/1.1 409 Conflict\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nWiki\r\n7;x=1\r\npedia i\r\n0\r\n\r\n";
        for at in 0..=raw.len() {
            let (mut x, _) = request("GET", None);
            let (body, p) = feed_split(&mut x, raw, at);
            assert_eq!(p, Progress::Complete, "split {at}");
            assert_eq!(body, b"Wikipedia i", "split {at}");
            assert_eq!(x.status(), Some(409));
        }
    }

    #[test]
    fn byte_by_byte_stream_hands_out_body_as_it_comes() {
        let (mut x, _) = request("GET", None);
        let raw = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n";
        let mut body = Vec::new();
        for b in raw {
            assert_eq!(
                x.input(std::slice::from_ref(b), &mut body).expect("byte"),
                Progress::More
            );
        }
        assert_eq!(body, b"abc");
        assert_eq!(x.status(), Some(200));
        assert!(!x.is_complete());
        assert!(x.end_of_input().is_err(), "a chunked body cut short");
    }

    #[test]
    fn close_delimited_body_ends_at_eof() {
        let (mut x, _) = request("GET", None);
        let mut body = Vec::new();
        let p = x
            .input(b"HTTP/1.1 200 OK\r\n\r\nhello", &mut body)
            .expect("head");
        assert_eq!(p, Progress::More);
        assert_eq!(x.end_of_input(), Ok(Progress::Complete));
        assert_eq!(body, b"hello");
        assert!(x.must_close());
    }

    #[test]
    fn connection_close_and_trailing_bytes_forbid_reuse() {
        let (mut x, _) = request("GET", None);
        let mut body = Vec::new();
        x.input(
            b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n",
            &mut body,
        )
        .expect("ok");
        assert!(x.is_complete());
        assert!(x.must_close());
        let (mut x, _) = request("GET", None);
        x.input(b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nXY", &mut body)
            .expect("ok");
        assert!(x.is_complete());
        assert!(x.must_close(), "a stray byte after the body");
    }

    #[test]
    fn informational_response_is_skipped() {
        let (mut x, _) = request("PUT", Some("{}"));
        let mut body = Vec::new();
        let p = x
            .input(
                b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok",
                &mut body,
            )
            .expect("ok");
        assert_eq!(p, Progress::Complete);
        assert_eq!(x.status(), Some(201));
        assert_eq!(body, b"ok");
    }

    #[test]
    fn garbage_and_oversized_heads_fail() {
        let (mut x, _) = request("GET", None);
        assert!(
            x.input(b"SSH-2.0-OpenSSH\r\n\r\n", &mut Vec::new())
                .is_err()
        );
        let (mut x, _) = request("GET", None);
        let big = vec![b'a'; MAX_HEAD + 10];
        assert!(x.input(&big, &mut Vec::new()).is_err());
        let (mut x, _) = request("GET", None);
        assert!(x.end_of_input().is_err(), "closed before any answer");
        assert!(!x.answered());
    }

    #[test]
    fn bad_chunk_framing_fails() {
        let (mut x, _) = request("GET", None);
        let r = x.input(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
            &mut Vec::new(),
        );
        assert!(r.is_err(), "{r:?}");
    }
}
