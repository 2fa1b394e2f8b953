//! The watch state machine against a scripted TLS server on loopback.

use super::*;
use crate::kube::WatchEventKind;
use crate::kube::test_server::{CA_BUNDLE, CA2, CLIENT_CRT, CLIENT_KEY, Server, Step, chunk};
use crate::kube::tls::{Identity, TlsMaterial, build, certs_from_pem};
use std::io;

fn tls(roots: &[u8], with_identity: bool) -> Arc<ClientConfig> {
    let material = TlsMaterial {
        roots: certs_from_pem(roots, "roots").expect("roots"),
        identity: with_identity
            .then(|| Identity::from_pem(CLIENT_CRT, CLIENT_KEY).expect("identity")),
        insecure: false,
    };
    build(&material).expect("tls").rustls
}

fn start(server: &Server, tls: Arc<ClientConfig>) -> Result<Watch, KubeError> {
    Watch::start(WatchTarget {
        addrs: vec![server.addr],
        server_name: ServerName::try_from("127.0.0.1").expect("ip name"),
        tls,
        authority: server.addr.to_string(),
        path: "/apis/networking.liqo.io/v1beta1/routeconfigurations?watch=1&resourceVersion=5"
            .to_string(),
        token: Some("tok-1".to_string()),
        user_agent: "routecfg-test".to_string(),
        timeout_seconds: 60,
    })
}

/// Waits the way the agent's loop does: poll(2) on the fd with the watch's
/// own events and timeout.
fn wait(w: &Watch) {
    let mut pfd = libc::pollfd {
        fd: w.raw_fd(),
        events: w.poll_events(),
        revents: 0,
    };
    let ms = w.timeout().min(Duration::from_secs(30)).as_millis() as libc::c_int;
    // SAFETY: one valid pollfd.
    let r = unsafe { libc::poll(&mut pfd, 1, ms) };
    assert!(r >= 0, "poll: {}", io::Error::last_os_error());
}

/// Drives the watch to its end; returns the events and how it ended.
fn drain(w: &mut Watch) -> (Vec<WatchEvent>, Result<(), KubeError>) {
    let mut events = Vec::new();
    for _ in 0..10_000 {
        match w.try_next() {
            Ok(WatchPoll::Event(e)) => events.push(e),
            Ok(WatchPoll::Pending) => wait(w),
            Ok(WatchPoll::Ended) => return (events, Ok(())),
            Err(e) => return (events, Err(e)),
        }
    }
    panic!("watch neither ended nor failed after 10000 steps (busy loop?)");
}

const ADDED: &str =
    r#"{"type":"ADDED","object":{"metadata":{"name":"a","namespace":"n","resourceVersion":"6"}}}"#;
const BOOKMARK: &str = r#"{"type":"BOOKMARK","object":{"metadata":{"resourceVersion":"9"}}}"#;
const HEAD_200: &str =
    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n";

#[test]
fn events_split_anywhere_arrive_and_the_loop_never_blocks() {
    let first = format!("{ADDED}\n{}", &BOOKMARK[..20]);
    let second = format!("{}\n", &BOOKMARK[20..]);
    let server = Server::start(
        true,
        vec![vec![
            Step::Request,
            // Head and the first chunk's size in one record, its data and
            // half of the next event in the next.
            Step::Send(format!("{HEAD_200}{:x}\r\n", first.len()).into_bytes()),
            Step::Send(format!("{first}\r\n").into_bytes()),
            Step::Wait,
            Step::Send(chunk(&second)),
            Step::Send(b"0\r\n\r\n".to_vec()),
        ]],
    );
    // The CA that signed the server is the bundle's *second* certificate.
    let mut w = start(&server, tls(CA_BUNDLE, true)).expect("start");
    assert!(w.raw_fd() >= 0);
    assert_eq!(
        w.poll_events(),
        libc::POLLOUT,
        "connecting waits for writability"
    );

    // Until the first event is decoded, only Pending (never a block).
    let first_event = loop {
        match w.try_next().expect("no error") {
            WatchPoll::Event(e) => break e,
            WatchPoll::Pending => wait(&w),
            WatchPoll::Ended => panic!("ended early"),
        }
    };
    assert_eq!(first_event.kind, WatchEventKind::Added);
    assert_eq!(first_event.resource_version(), Some("6"));

    let request = server.requests.recv().expect("request seen");
    assert!(request.starts_with("GET /apis/networking.liqo.io/v1beta1/routeconfigurations?watch=1&resourceVersion=5 HTTP/1.1\r\n"));
    assert!(
        request.contains("\r\nauthorization: Bearer tok-1\r\n"),
        "{request}"
    );
    assert!(
        request.contains(&format!("\r\nhost: {}\r\n", server.addr)),
        "{request}"
    );

    // The server holds the rest back: half an event is buffered, nothing
    // is complete, so try_next must say Pending right away.
    assert_eq!(w.try_next(), Ok(WatchPoll::Pending));
    assert_eq!(w.poll_events(), libc::POLLIN);
    server.go();
    let (events, end) = drain(&mut w);
    assert_eq!(end, Ok(()));
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].kind, WatchEventKind::Bookmark);
    assert_eq!(events[0].resource_version(), Some("9"));
    assert_eq!(w.raw_fd(), -1, "closed after the last chunk");
    assert_eq!(w.try_next(), Ok(WatchPoll::Ended));
}

#[test]
fn http_410_is_gone_with_the_api_message() {
    let body = r#"{"kind":"Status","status":"Failure","message":"too old resource version: 5 (40)","reason":"Expired","code":410}"#;
    let server = Server::start(
        false,
        vec![vec![
            Step::Request,
            Step::Send(
                format!(
                    "HTTP/1.1 410 Gone\r\nContent-Length: {}\r\n\r\n{body}",
                    body.len()
                )
                .into_bytes(),
            ),
        ]],
    );
    let mut w = start(&server, tls(CA_BUNDLE, false)).expect("start");
    let (events, end) = drain(&mut w);
    assert!(events.is_empty());
    let e = end.expect_err("410");
    assert!(e.is_gone(), "{e:?}");
    assert!(e.to_string().contains("too old resource version"), "{e}");
    assert!(
        e.to_string().contains("/apis/networking.liqo.io"),
        "names the path: {e}"
    );
}

#[test]
fn error_event_is_delivered_then_the_stream_ends() {
    let err = r#"{"type":"ERROR","object":{"kind":"Status","message":"too old resource version","reason":"Expired","code":410}}"#;
    let server = Server::start(
        false,
        vec![vec![
            Step::Request,
            Step::Send(HEAD_200.as_bytes().to_vec()),
            Step::Send(chunk(&format!("{ADDED}\n{err}\n"))),
            Step::Send(b"0\r\n\r\n".to_vec()),
        ]],
    );
    let mut w = start(&server, tls(CA_BUNDLE, false)).expect("start");
    let (events, end) = drain(&mut w);
    assert_eq!(end, Ok(()));
    let kinds: Vec<_> = events.iter().map(|e| e.kind).collect();
    assert_eq!(kinds, [WatchEventKind::Added, WatchEventKind::Error]);
    assert!(events[1].is_gone());
}

#[test]
fn events_before_a_broken_line_are_not_lost() {
    let server = Server::start(
        false,
        vec![vec![
            Step::Request,
            Step::Send(HEAD_200.as_bytes().to_vec()),
            Step::Send(chunk(&format!("{ADDED}\n{{broken\n"))),
        ]],
    );
    let mut w = start(&server, tls(CA_BUNDLE, false)).expect("start");
    let (events, end) = drain(&mut w);
    assert_eq!(events.len(), 1);
    assert!(matches!(end, Err(KubeError::Decode { .. })), "{end:?}");
}

#[test]
fn stream_cut_without_terminator_ends() {
    let server = Server::start(
        false,
        vec![vec![
            Step::Request,
            Step::Send(HEAD_200.as_bytes().to_vec()),
            Step::Send(chunk(&format!("{ADDED}\n"))),
        ]],
    );
    let mut w = start(&server, tls(CA_BUNDLE, false)).expect("start");
    let (events, end) = drain(&mut w);
    assert_eq!(events.len(), 1);
    assert_eq!(end, Ok(()));
}

#[test]
fn untrusted_server_certificate_is_refused() {
    let server = Server::start(false, vec![vec![Step::Request]]);
    let mut w = start(&server, tls(CA2, false)).expect("start");
    let (_, end) = drain(&mut w);
    let e = end.expect_err("ca2 did not sign the server");
    assert!(matches!(e, KubeError::Transport { .. }), "{e:?}");
    assert!(e.to_string().contains("TLS"), "{e}");
}

#[test]
fn server_that_requires_a_client_certificate_rejects_us_without_one() {
    let server = Server::start(true, vec![vec![Step::Request]]);
    let mut w = start(&server, tls(CA_BUNDLE, false)).expect("start");
    let (_, end) = drain(&mut w);
    assert!(
        end.is_err(),
        "handshake must fail without a client certificate"
    );
}

#[test]
fn connection_refused_is_a_transport_error() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    };
    let target = WatchTarget {
        addrs: vec![SocketAddr::from(([127, 0, 0, 1], port))],
        server_name: ServerName::try_from("127.0.0.1").expect("ip name"),
        tls: tls(CA_BUNDLE, false),
        authority: format!("127.0.0.1:{port}"),
        path: "/x".to_string(),
        token: None,
        user_agent: "t".to_string(),
        timeout_seconds: 1,
    };
    let end = match Watch::start(target) {
        Err(e) => Err(e),
        Ok(mut w) => drain(&mut w).1,
    };
    let e = end.expect_err("nothing listens there");
    assert!(matches!(e, KubeError::Transport { .. }), "{e:?}");
}
