//! The request client against a scripted TLS server on loopback: paths,
//! bodies, headers and error mapping. The real API server is exercised by
//! `tests/kube_client.rs`.

use super::*;
use crate::kube::config::from_kubeconfig_str;
use crate::kube::test_server::{CA_BUNDLE, CLIENT_CRT, CLIENT_KEY, Server, Step};
use crate::kube::{API_VERSION, KIND};
use serde_json::json;
use std::time::{Duration, Instant};

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

/// A client for `server`, authenticating with a client certificate and a
/// token file holding `token`.
fn client_for(server: &Server, dir: &std::path::Path, token: &str) -> Client {
    std::fs::create_dir_all(dir).expect("mkdir");
    std::fs::write(dir.join("token"), token).expect("token");
    let text = format!(
        "clusters: [{{name: c, cluster: {{server: 'https://{}', certificate-authority-data: {}}}}}]
users: [{{name: u, user: {{tokenFile: token, client-certificate-data: {}, client-key-data: {}}}}}]
contexts: [{{name: x, context: {{cluster: c, user: u}}}}]
current-context: x
",
        server.addr,
        b64(CA_BUNDLE),
        b64(CLIENT_CRT),
        b64(CLIENT_KEY)
    );
    let config = from_kubeconfig_str(&text, dir, None).expect("kubeconfig");
    Client::new(&config).expect("client")
}

fn scratch(name: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("routecfg-client-{name}-{}", std::process::id()))
}

fn reply(status: &str, body: &str) -> Step {
    Step::Send(
        format!(
            "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .into_bytes(),
    )
}

fn one(status: &str, body: &str) -> Vec<Step> {
    vec![Step::Request, reply(status, body)]
}

const RC: &str = r#"{"apiVersion":"networking.liqo.io/v1beta1","kind":"RouteConfiguration","metadata":{"name":"a","namespace":"n","uid":"u-1","resourceVersion":"7"}}"#;

#[test]
fn get_retries_once_after_401_and_maps_404_to_none() {
    let unauthorized =
        r#"{"kind":"Status","message":"Unauthorized","reason":"Unauthorized","code":401}"#;
    let not_found = r#"{"kind":"Status","message":"not found","reason":"NotFound","code":404}"#;
    let server = Server::start(
        true,
        vec![
            one("401 Unauthorized", unauthorized),
            one("200 OK", RC),
            one("404 Not Found", not_found),
        ],
    );
    let dir = scratch("get");
    let mut client = client_for(&server, &dir, "tok-a\n");
    let obj = client.get("n", "a").expect("get").expect("exists");
    assert_eq!(obj["metadata"]["uid"], "u-1");
    let r1 = server.requests.recv().expect("first request");
    let r2 = server.requests.recv().expect("retry");
    for r in [&r1, &r2] {
        assert!(r.starts_with("GET /apis/networking.liqo.io/v1beta1/namespaces/n/routeconfigurations/a HTTP/1.1\r\n"), "{r}");
        assert!(
            r.to_ascii_lowercase()
                .contains("\r\nauthorization: bearer tok-a\r\n"),
            "{r}"
        );
    }
    assert_eq!(client.get("n", "a"), Ok(None));
    std::fs::remove_dir_all(&dir).expect("cleanup");
}

#[test]
fn list_follows_continue_tokens_and_fills_kind() {
    let page1 = r#"{"kind":"RouteConfigurationList","metadata":{"resourceVersion":"40","continue":"tok/1="},"items":[{"metadata":{"name":"a"}}]}"#;
    let page2 = r#"{"kind":"RouteConfigurationList","metadata":{"resourceVersion":"40"},"items":[{"metadata":{"name":"b"}}]}"#;
    let server = Server::start(false, vec![one("200 OK", page1), one("200 OK", page2)]);
    let dir = scratch("list");
    let mut client = client_for(&server, &dir, "t");
    let (items, rv) = client
        .list("networking.liqo.io/route-category=fabric")
        .expect("list");
    assert_eq!(rv, "40");
    let names: Vec<_> = items
        .iter()
        .map(|i| i["metadata"]["name"].as_str())
        .collect();
    assert_eq!(names, [Some("a"), Some("b")]);
    assert!(
        items
            .iter()
            .all(|i| i["apiVersion"] == API_VERSION && i["kind"] == KIND)
    );
    let r1 = server.requests.recv().expect("page 1");
    let r2 = server.requests.recv().expect("page 2");
    let sel = "labelSelector=networking.liqo.io%2Froute-category%3Dfabric";
    assert!(
        r1.starts_with(&format!(
            "GET /apis/networking.liqo.io/v1beta1/routeconfigurations?limit=500&{sel} HTTP/1.1"
        )),
        "{r1}"
    );
    assert!(
        r2.contains(&format!("?limit=500&{sel}&continue=tok%2F1%3D ")),
        "{r2}"
    );
    std::fs::remove_dir_all(&dir).expect("cleanup");
}

#[test]
fn replace_status_sends_the_object_and_reports_conflict() {
    let conflict = r#"{"kind":"Status","message":"the object has been modified; please apply your changes to the latest version and try again","reason":"Conflict","code":409}"#;
    let server = Server::start(false, vec![one("409 Conflict", conflict)]);
    let dir = scratch("status");
    let mut client = client_for(&server, &dir, "t");
    let obj: Value = serde_json::from_str(RC).expect("json");
    let e = client.replace_status("n", "a", &obj).expect_err("conflict");
    assert!(e.is_conflict(), "{e:?}");
    assert!(
        e.to_string().contains("the object has been modified"),
        "{e}"
    );
    assert!(
        e.to_string()
            .contains("/namespaces/n/routeconfigurations/a/status"),
        "{e}"
    );
    let r = server.requests.recv().expect("request");
    assert!(r.starts_with("PUT /apis/networking.liqo.io/v1beta1/namespaces/n/routeconfigurations/a/status HTTP/1.1"), "{r}");
    let sent: Value =
        serde_json::from_str(&r[r.find("\r\n\r\n").expect("head end") + 4..]).expect("json body");
    assert_eq!(sent, obj);

    // Refused locally: no precondition, or another object's metadata.
    let mut no_rv = obj.clone();
    no_rv["metadata"]["resourceVersion"] = Value::from("");
    assert!(matches!(
        client.replace_status("n", "a", &no_rv),
        Err(KubeError::Request(_))
    ));
    assert!(matches!(
        client.replace_status("n", "b", &obj),
        Err(KubeError::Request(_))
    ));
    assert!(matches!(
        client.replace_status("m", "a", &obj),
        Err(KubeError::Request(_))
    ));
    std::fs::remove_dir_all(&dir).expect("cleanup");
}

#[test]
fn patches_and_events_have_the_right_shape() {
    let event_reply = r#"{"kind":"Event","metadata":{"name":"a.123"}}"#;
    let server = Server::start(
        false,
        vec![
            one("200 OK", RC),
            one("200 OK", RC),
            one("201 Created", event_reply),
        ],
    );
    let dir = scratch("patch");
    let mut client = client_for(&server, &dir, "t");
    client.set_event_source("routecfg", "node-1");
    client
        .patch_status("n", "a", &json!({"status": {"conditions": []}}))
        .expect("status patch");
    let r = server.requests.recv().expect("status patch");
    assert!(r.starts_with("PATCH /apis/networking.liqo.io/v1beta1/namespaces/n/routeconfigurations/a/status HTTP/1.1"), "{r}");
    assert!(
        r.to_ascii_lowercase()
            .contains("content-type: application/merge-patch+json"),
        "{r}"
    );

    let fin = vec!["routecfg.liqo.io/node-1".to_string()];
    client
        .patch_metadata_finalizers("n", "a", "7", &fin)
        .expect("finalizer patch");
    let r = server.requests.recv().expect("finalizer patch");
    assert!(
        r.starts_with(
            "PATCH /apis/networking.liqo.io/v1beta1/namespaces/n/routeconfigurations/a HTTP/1.1"
        ),
        "{r}"
    );
    let body: Value =
        serde_json::from_str(&r[r.find("\r\n\r\n").expect("head end") + 4..]).expect("json body");
    assert_eq!(
        body,
        json!({"metadata": {"resourceVersion": "7", "finalizers": ["routecfg.liqo.io/node-1"]}})
    );

    let obj: Value = serde_json::from_str(RC).expect("json");
    client
        .create_event(
            "n",
            &obj,
            "Applied",
            "3 routes in table t",
            EventType::Normal,
        )
        .expect("event");
    let r = server.requests.recv().expect("event");
    assert!(
        r.starts_with("POST /api/v1/namespaces/n/events HTTP/1.1"),
        "{r}"
    );
    let ev: Value =
        serde_json::from_str(&r[r.find("\r\n\r\n").expect("head end") + 4..]).expect("json body");
    assert_eq!(ev["involvedObject"]["uid"], "u-1");
    assert_eq!(ev["involvedObject"]["kind"], KIND);
    assert_eq!(ev["involvedObject"]["resourceVersion"], "7");
    assert_eq!(ev["metadata"]["generateName"], "a.");
    assert_eq!(ev["type"], "Normal");
    assert_eq!(ev["reason"], "Applied");
    assert_eq!(
        ev["source"],
        json!({"component": "routecfg", "host": "node-1"})
    );
    assert_eq!(ev["firstTimestamp"], ev["lastTimestamp"]);
    std::fs::remove_dir_all(&dir).expect("cleanup");
}

#[test]
fn unreachable_server_is_a_transport_error_not_a_panic() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    };
    let text = format!(
        "clusters: [{{name: c, cluster: {{server: 'https://127.0.0.1:{port}', certificate-authority-data: {}}}}}]
users: [{{name: u, user: {{token: t}}}}]
contexts: [{{name: x, context: {{cluster: c, user: u}}}}]
current-context: x
",
        b64(CA_BUNDLE)
    );
    let mut client =
        Client::new(&from_kubeconfig_str(&text, std::path::Path::new("/"), None).expect("config"))
            .expect("client");
    let e = client.list("").expect_err("nothing listens");
    assert!(matches!(e, KubeError::Transport { .. }), "{e:?}");
    assert!(
        e.to_string()
            .contains("/apis/networking.liqo.io/v1beta1/routeconfigurations"),
        "{e}"
    );
}

fn reply_keep_alive(status: &str, body: &str) -> Step {
    Step::Send(
        format!(
            "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .into_bytes(),
    )
}

#[test]
fn kept_alive_connection_carries_the_next_call() {
    // One connection only: a second connect would find no script.
    let server = Server::start(
        false,
        vec![vec![
            Step::Request,
            reply_keep_alive("200 OK", RC),
            Step::Request,
            reply_keep_alive("200 OK", RC),
        ]],
    );
    let dir = scratch("keepalive");
    let mut client = client_for(&server, &dir, "t");
    for _ in 0..2 {
        let obj = client.get("n", "a").expect("get").expect("exists");
        assert_eq!(obj["metadata"]["name"], "a");
    }
    assert_eq!(server.requests.try_iter().count(), 2);
    std::fs::remove_dir_all(&dir).expect("cleanup");
}

#[test]
fn pooled_connection_closed_by_the_server_is_replaced() {
    let server = Server::start(
        false,
        vec![
            // Answers as if it kept the connection, then closes it.
            vec![Step::Request, reply_keep_alive("200 OK", RC)],
            vec![Step::Request, reply_keep_alive("200 OK", RC)],
        ],
    );
    let dir = scratch("pool-closed");
    let mut client = client_for(&server, &dir, "t");
    client.get("n", "a").expect("first").expect("exists");
    std::thread::sleep(Duration::from_millis(100));
    client.get("n", "a").expect("second").expect("exists");
    std::fs::remove_dir_all(&dir).expect("cleanup");
}

#[test]
fn a_server_that_never_answers_costs_the_deadline_only() {
    let server = Server::start(false, vec![vec![Step::Request, Step::Wait]]);
    let dir = scratch("deadline");
    let mut client = client_for(&server, &dir, "t");
    let mut request = ApiRequest::get("/api/v1/namespaces");
    request.timeout = Duration::from_millis(300);
    let started = Instant::now();
    let e = client.call(request).expect_err("no answer");
    assert!(matches!(e, KubeError::Timeout { .. }), "{e:?}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
    assert_eq!(client.in_flight(), 0);
    server.go();
    std::fs::remove_dir_all(&dir).expect("cleanup");
}

#[test]
fn responses_over_the_budget_fail() {
    let big = format!("{{\"pad\":\"{}\"}}", "x".repeat(10_000));
    let server = Server::start(false, vec![one("200 OK", &big)]);
    let dir = scratch("budget");
    let mut client = client_for(&server, &dir, "t");
    let mut request = ApiRequest::get("/api/v1/namespaces");
    request.max_response = 1000;
    let e = client.call(request).expect_err("too large");
    assert!(e.to_string().contains("larger than 1000 bytes"), "{e}");
    std::fs::remove_dir_all(&dir).expect("cleanup");
}

#[test]
fn a_call_waiting_for_its_answer_never_holds_the_caller() {
    // The scripted server serves one connection at a time: the first call
    // waits for the test's go-ahead, the second queues behind it.
    let server = Server::start(
        false,
        vec![
            vec![Step::Request, Step::Wait, reply_keep_alive("200 OK", RC)],
            vec![Step::Request, reply_keep_alive("201 Created", "{}")],
        ],
    );
    let dir = scratch("parallel");
    let mut client = client_for(&server, &dir, "t");
    client.resolve().expect("IP literal");
    let first = client.start(ApiRequest::get("/first"));
    let second = client.start(ApiRequest::get("/second"));
    assert_eq!(client.in_flight(), 2);
    let started = Instant::now();
    let mut turns_while_waiting = 0;
    let mut released = false;
    let mut done = Vec::new();
    while done.len() < 2 {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "calls did not finish"
        );
        let mut fds = Vec::new();
        client.poll_fds(&mut fds);
        crate::agent::poll::wait(&fds, Some(Duration::from_millis(20))).expect("poll");
        client.advance();
        if !released {
            turns_while_waiting += 1;
            if started.elapsed() > Duration::from_millis(300) {
                server.go();
                released = true;
            }
        }
        for c in client.take_completed() {
            done.push((c.id, c.result.expect("ok").status));
        }
    }
    assert_eq!(done, [(first, 200), (second, 201)]);
    assert!(
        turns_while_waiting >= 5,
        "the caller's loop was held: {turns_while_waiting} turns in 300 ms"
    );
    std::fs::remove_dir_all(&dir).expect("cleanup");
}
