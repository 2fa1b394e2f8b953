//! The Kubernetes client and watch against a real kube-apiserver, reached
//! from a node network namespace over verified TLS with a real, RBAC-bound
//! ServiceAccount token. Needs root and `.ci/setup-kube.sh`; fails loudly
//! otherwise.

mod common;

use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

use common::kube::KubeEnv;
use common::netns::Netns;
use routecfg::kube::{
    Client, EventType, KubeConfig, KubeError, Watch, WatchEvent, WatchEventKind, WatchPoll,
};
use serde_json::{Value, json};

const CRD_NAME: &str = "routeconfigurations.networking.liqo.io";
const FABRIC: &str = "networking.liqo.io/route-category=fabric";
/// Guard against a hung test, not a timed assertion: the API answers in
/// milliseconds; this only turns "stuck forever" into a loud failure.
const GUARD: Duration = Duration::from_secs(60);

fn rc(ns: &str, name: &str, labels: &[(&str, &str)], table: &str) -> String {
    let labels: String = labels
        .iter()
        .map(|(k, v)| format!("    {k}: \"{v}\"\n"))
        .collect();
    format!(
        "apiVersion: networking.liqo.io/v1beta1
kind: RouteConfiguration
metadata:
  name: {name}
  namespace: {ns}
  labels:
{labels}spec:
  table:
    name: {table}
    rules:
    - dst: 10.70.0.0/16
      routes:
      - dst: 10.70.0.0/16
        gw: 169.254.18.1
"
    )
}

fn fabric(ns: &str, name: &str) -> String {
    rc(
        ns,
        name,
        &[("networking.liqo.io/route-category", "fabric")],
        name,
    )
}

const RBAC: &str = "
apiVersion: v1
kind: ServiceAccount
metadata: {name: routecfg, namespace: liqo}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: routecfg-client-test}
rules:
- apiGroups: [networking.liqo.io]
  resources: [routeconfigurations]
  verbs: [get, list, watch, patch]
- apiGroups: [networking.liqo.io]
  resources: [routeconfigurations/status]
  verbs: [update, patch]
- apiGroups: ['']
  resources: [events]
  verbs: [create]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: routecfg-client-test}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: routecfg-client-test}
subjects:
- {kind: ServiceAccount, name: routecfg, namespace: liqo}
";

/// Waits on the watch the way the agent's loop does (poll on its fd) and
/// returns the next event that is not a bookmark.
fn next_change(w: &mut Watch) -> WatchEvent {
    let guard = Instant::now() + GUARD;
    loop {
        match w.try_next() {
            Ok(WatchPoll::Event(e)) if e.kind == WatchEventKind::Bookmark => continue,
            Ok(WatchPoll::Event(e)) => return e,
            Ok(WatchPoll::Pending) => poll_once(w, guard),
            Ok(WatchPoll::Ended) => panic!("watch {} ended while an event was expected", w.path()),
            Err(e) => panic!("watch {} failed: {e}", w.path()),
        }
    }
}

/// Drives the watch until it ends; returns its events and how many times
/// the loop had to wait (a busy loop would wait thousands of times).
fn run_to_end(w: &mut Watch) -> Result<(Vec<WatchEvent>, usize), KubeError> {
    let guard = Instant::now() + GUARD;
    let mut events = Vec::new();
    let mut waits = 0;
    loop {
        match w.try_next()? {
            WatchPoll::Event(e) => events.push(e),
            WatchPoll::Pending => {
                waits += 1;
                poll_once(w, guard);
            }
            WatchPoll::Ended => return Ok((events, waits)),
        }
    }
}

fn poll_once(w: &Watch, guard: Instant) {
    let now = Instant::now();
    assert!(
        now < guard,
        "watch {}: nothing happened within {GUARD:?}",
        w.path()
    );
    let wait = w.timeout().min(guard - now);
    let mut pfd = libc::pollfd {
        fd: w.raw_fd(),
        events: w.poll_events(),
        revents: 0,
    };
    // SAFETY: one valid pollfd.
    let r = unsafe { libc::poll(&mut pfd, 1, wait.as_millis().min(60_000) as libc::c_int) };
    assert!(r >= 0, "poll: {}", std::io::Error::last_os_error());
}

fn name_of(v: &Value) -> &str {
    v["metadata"]["name"].as_str().unwrap_or("")
}

fn rv_of(v: &Value) -> String {
    v["metadata"]["resourceVersion"]
        .as_str()
        .unwrap_or_else(|| panic!("no resourceVersion in {v}"))
        .to_string()
}

/// Rewrites the token file in place (same inode, same size) and puts the
/// old modification time back, so nothing in its metadata changed.
fn overwrite_keeping_stamp(path: &Path, token: &str) {
    let before = fs::metadata(path).expect("token metadata");
    let mtime = before.modified().expect("mtime");
    assert_eq!(before.len(), token.len() as u64, "same-size rewrite");
    fs::write(path, token).expect("rewrite token");
    let f = fs::File::options()
        .write(true)
        .open(path)
        .expect("open token");
    f.set_modified(mtime).expect("restore mtime");
}

/// Replaces the token file the way kubelet does: a new file renamed over it.
fn rotate(path: &Path, token: &str) {
    let tmp = path.with_extension("new");
    fs::write(&tmp, token).expect("write new token");
    fs::rename(&tmp, path).expect("rename token");
}

#[test]
fn route_configurations_against_a_real_api_server() {
    let mut env = KubeEnv::start();
    let node = Netns::new("kc");
    let node_ip = env.node_ip(20);
    env.attach(node.name(), &node_ip);
    let env = &env;

    let crd = common::shared_dir().join("upstream/routeconfigurations.networking.liqo.io.yaml");
    env.kubectl_ok(&["apply", "-f", &crd.display().to_string()]);
    env.kubectl_ok(&[
        "wait",
        "--for=condition=Established",
        "--timeout=60s",
        &format!("crd/{CRD_NAME}"),
    ]);
    env.kubectl_ok(&["create", "namespace", "liqo"]);
    env.kubectl_ok(&["create", "namespace", "tenant-a"]);
    env.kubectl_stdin(&["apply", "-f", "-"], RBAC);
    let good_token = env.create_service_account_token("liqo", "routecfg");

    // In-cluster layout, as a pod sees it: token, ca.crt (kube-apiserver's
    // generated bundle: serving certificate first, then its CA), namespace.
    let sa_dir = env.dir().join("sa");
    fs::create_dir_all(&sa_dir).expect("mkdir sa");
    fs::copy(env.ca_path(), sa_dir.join("ca.crt")).expect("copy ca");
    fs::write(sa_dir.join("namespace"), "liqo").expect("namespace file");
    let token_path = sa_dir.join("token");
    fs::write(&token_path, &good_token).expect("token file");
    let server = env.server();
    let port = server
        .rsplit(':')
        .next()
        .expect("port in server URL")
        .to_string();

    env.kubectl_stdin(&["apply", "-f", "-"], &fabric("liqo", "fabric-a"));
    env.kubectl_stdin(&["apply", "-f", "-"], &fabric("tenant-a", "fabric-b"));
    env.kubectl_stdin(
        &["apply", "-f", "-"],
        &rc(
            "tenant-a",
            "gw-a",
            &[
                ("networking.liqo.io/route-category", "gateway"),
                ("networking.liqo.io/route-unique", "milan"),
            ],
            "milan",
        ),
    );

    node.in_netns(|| {
        let config =
            KubeConfig::in_cluster(&env.api_ip(), &port, &sa_dir).expect("in-cluster config");
        assert_eq!(config.namespace.as_deref(), Some("liqo"));
        let mut client = Client::new(&config).expect("client");
        client.set_event_source("routecfg", "node-1");

        // The admin kubeconfig (CA from a file path) works too.
        let admin = KubeConfig::from_kubeconfig_file(env.kubeconfig(), None).expect("kubeconfig");
        let mut admin = Client::new(&admin).expect("admin client");
        assert!(admin.get("liqo", "fabric-a").expect("admin get").is_some());

        // List: label selector across namespaces.
        let (items, list_rv) = client.list(FABRIC).expect("list fabric");
        let mut names: Vec<&str> = items.iter().map(name_of).collect();
        names.sort();
        assert_eq!(names, ["fabric-a", "fabric-b"]);
        assert!(items.iter().all(|i| i["kind"] == "RouteConfiguration"));
        assert!(!list_rv.is_empty());
        let (all, _) = client.list("").expect("list all");
        assert_eq!(all.len(), 3);
        assert_eq!(client.get("liqo", "nope").expect("get missing"), None);

        // Watch from the list's resourceVersion sees add, modify, delete of
        // selected objects only.
        let mut watch = client.watch(&list_rv, FABRIC, 120).expect("watch");
        env.kubectl_stdin(
            &["apply", "-f", "-"],
            &rc(
                "tenant-a",
                "gw-b",
                &[("networking.liqo.io/route-category", "gateway")],
                "gw-b",
            ),
        );
        env.kubectl_stdin(&["apply", "-f", "-"], &fabric("liqo", "fabric-c"));
        let added = next_change(&mut watch);
        assert_eq!(
            (added.kind, name_of(&added.object)),
            (WatchEventKind::Added, "fabric-c"),
            "the gateway object must not show up: {added:?}"
        );
        env.kubectl_ok(&["label", "rcfg", "fabric-c", "-n", "liqo", "extra=1"]);
        let modified = next_change(&mut watch);
        assert_eq!(modified.kind, WatchEventKind::Modified);
        assert_eq!(modified.object["metadata"]["labels"]["extra"], "1");
        env.kubectl_ok(&["delete", "rcfg", "fabric-c", "-n", "liqo"]);
        let deleted = next_change(&mut watch);
        assert_eq!(
            (deleted.kind, name_of(&deleted.object)),
            (WatchEventKind::Deleted, "fabric-c")
        );
        let resume_rv = deleted.resource_version().expect("rv").to_string();
        watch.close();

        // The server ends a watch after timeoutSeconds; we see Ended.
        let mut short = client.watch(&resume_rv, FABRIC, 2).expect("short watch");
        let (rest, waits) = run_to_end(&mut short).expect("short watch ends cleanly");
        assert!(
            rest.iter().all(|e| e.kind == WatchEventKind::Bookmark),
            "nothing changed, only bookmarks may arrive: {rest:?}"
        );
        // Connect, handshake, head, idle, end: a few wakeups, not a spin.
        assert!(waits < 50, "idle watch woke the loop {waits} times");

        // A resourceVersion older than the watch cache: 410, distinguishable.
        let mut old = client.watch("1", FABRIC, 30).expect("old watch");
        match run_to_end(&mut old) {
            Err(e) => assert!(e.is_gone(), "expected 410, got {e}"),
            Ok((events, _)) => assert!(
                events.iter().any(WatchEvent::is_gone),
                "expected an ERROR 410 event, got {events:?}"
            ),
        }

        // Status: replace with a resourceVersion precondition.
        let mut obj = client
            .get("liqo", "fabric-a")
            .expect("get")
            .expect("fabric-a exists");
        obj["status"] = json!({"conditions": [{
            "host": "node-1", "type": "Applied", "status": "True",
            "lastTransitionTime": "2024-01-01T00:00:00Z"
        }]});
        let updated = client
            .replace_status("liqo", "fabric-a", &obj)
            .expect("replace status");
        assert_eq!(updated["status"]["conditions"][0]["host"], "node-1");
        assert_ne!(rv_of(&updated), rv_of(&obj));
        let stale = client
            .replace_status("liqo", "fabric-a", &obj)
            .expect_err("stale resourceVersion");
        assert!(stale.is_conflict(), "expected Conflict, got {stale}");
        assert!(stale.to_string().contains("/status"), "{stale}");

        let patched = client
            .patch_status(
                "liqo",
                "fabric-a",
                &json!({"status": {"conditions": [
                    {"host": "node-1", "type": "Applied", "status": "True"},
                    {"host": "node-2", "type": "Applied", "status": "False"}
                ]}}),
            )
            .expect("patch status");
        assert_eq!(patched["status"]["conditions"][1]["host"], "node-2");

        // Finalizers, guarded by the resourceVersion.
        let fin = vec!["routecfg.liqo.io/node-1".to_string()];
        let with = client
            .patch_metadata_finalizers("liqo", "fabric-a", &rv_of(&patched), &fin)
            .expect("add finalizer");
        assert_eq!(with["metadata"]["finalizers"], json!(fin));
        let e = client
            .patch_metadata_finalizers("liqo", "fabric-a", &rv_of(&patched), &[])
            .expect_err("stale finalizer patch");
        assert!(e.is_conflict(), "expected Conflict, got {e}");
        let without = client
            .patch_metadata_finalizers("liqo", "fabric-a", &rv_of(&with), &[])
            .expect("remove finalizer");
        assert!(
            without["metadata"]["finalizers"]
                .as_array()
                .is_none_or(|f| f.is_empty()),
            "{without}"
        );

        // Events.
        client
            .create_event(
                "liqo",
                &without,
                "RouteConfigurationApplied",
                "table fabric-a: 1 rule, 1 route",
                EventType::Normal,
            )
            .expect("create event");

        // Token rotation. A same-length invalid token: change one character
        // inside the JWT signature (not the last one, whose low bits are
        // base64 padding a lenient decoder ignores).
        let mut chars: Vec<char> = good_token.chars().collect();
        let at = chars.len() - 10;
        chars[at] = if chars[at] == 'A' { 'B' } else { 'A' };
        let bad: String = chars.into_iter().collect();
        rotate(&token_path, &bad);
        let e = client.list(FABRIC).expect_err("invalid token");
        assert_eq!(e.status(), Some(401), "{e}");
        // Fixed in place without any metadata change: only the re-read
        // after a 401 can pick the good token up.
        overwrite_keeping_stamp(&token_path, &good_token);
        client.list(FABRIC).expect("401, re-read, retry");
        // Rotated the kubelet way: picked up by the changed metadata.
        rotate(&token_path, &bad);
        assert_eq!(
            client.list(FABRIC).expect_err("rotated to bad").status(),
            Some(401)
        );
        let fresh = env.create_service_account_token("liqo", "routecfg");
        rotate(&token_path, &fresh);
        client.list(FABRIC).expect("rotated to a fresh token");
    });

    let events: Value =
        serde_json::from_str(&env.kubectl_ok(&["get", "events", "-n", "liqo", "-o", "json"]))
            .expect("events JSON");
    let ours = events["items"]
        .as_array()
        .expect("event list")
        .iter()
        .find(|e| e["reason"] == "RouteConfigurationApplied")
        .unwrap_or_else(|| panic!("our event is missing: {events}"));
    assert_eq!(ours["involvedObject"]["name"], "fabric-a");
    assert_eq!(ours["involvedObject"]["kind"], "RouteConfiguration");
    assert_eq!(ours["type"], "Normal");
    assert_eq!(ours["source"]["host"], "node-1");
    assert_eq!(ours["message"], "table fabric-a: 1 rule, 1 route");
}
