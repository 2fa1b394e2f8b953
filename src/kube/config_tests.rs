use super::*;
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};

const CA1: &[u8] = include_bytes!("testdata/ca1.crt");
const CA_BUNDLE: &[u8] = include_bytes!("testdata/ca-bundle.crt");
const CLIENT_CRT: &[u8] = include_bytes!("testdata/client.crt");
const CLIENT_KEY: &[u8] = include_bytes!("testdata/client.key");
const OTHER_KEY: &[u8] = include_bytes!("testdata/other.key");
const RSA_KEY: &[u8] = include_bytes!("testdata/rsa.key");

/// A scratch directory removed when the test ends.
struct Scratch(PathBuf);

impl Scratch {
    fn new() -> Scratch {
        static N: AtomicUsize = AtomicUsize::new(0);
        let p = std::env::temp_dir().join(format!(
            "routecfg-kubecfg-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&p).expect("create scratch dir");
        Scratch(p)
    }
    fn write(&self, rel: &str, data: &[u8]) -> PathBuf {
        let p = self.0.join(rel);
        std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        std::fs::write(&p, data).expect("write fixture");
        p
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn b64(data: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in data.chunks(3) {
        let n = chunk.len();
        let v = (u32::from(chunk[0]) << 16)
            | (u32::from(*chunk.get(1).unwrap_or(&0)) << 8)
            | u32::from(*chunk.get(2).unwrap_or(&0));
        for i in 0..4 {
            if i <= n {
                out.push(A[((v >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn data_kubeconfig(ca: &str, cert: &str, key: &str) -> String {
    format!(
        "apiVersion: v1
kind: Config
clusters:
- name: c1
  cluster:
    server: https://198.18.0.1:6443
    certificate-authority-data: {ca}
users:
- name: u1
  user:
    client-certificate-data: {cert}
    client-key-data: {key}
contexts:
- name: ctx1
  context:
    cluster: c1
    user: u1
    namespace: liqo
current-context: ctx1
"
    )
}

fn err_of(r: Result<KubeConfig, String>) -> String {
    match r {
        Ok(c) => panic!("expected an error, got config from {}", c.source),
        Err(e) => e,
    }
}

#[test]
fn data_fields_give_mtls_config() {
    let text = data_kubeconfig(&b64(CA1), &b64(CLIENT_CRT), &b64(CLIENT_KEY));
    let c = from_kubeconfig_str(&text, Path::new("/nonexistent"), None).expect("valid kubeconfig");
    assert_eq!(
        c.server,
        Server {
            host: "198.18.0.1".into(),
            port: 6443,
            base_path: String::new()
        }
    );
    assert_eq!(c.auth, Auth::None);
    assert_eq!(c.namespace.as_deref(), Some("liqo"));
    assert!(c.source.contains("ctx1"));
}

#[test]
fn rsa_pkcs1_key_with_wrong_certificate_is_rejected_not_panicking() {
    let text = data_kubeconfig(&b64(CA1), &b64(CLIENT_CRT), &b64(RSA_KEY));
    let e = err_of(from_kubeconfig_str(&text, Path::new("/"), None));
    assert!(e.contains("client certificate/key rejected"), "{e}");
}

#[test]
fn mismatched_cert_and_key_is_a_clear_error() {
    let text = data_kubeconfig(&b64(CA1), &b64(CLIENT_CRT), &b64(OTHER_KEY));
    let e = err_of(from_kubeconfig_str(&text, Path::new("/"), None));
    assert!(e.contains("client certificate/key rejected"), "{e}");
    assert!(e.contains("u1"), "names the user: {e}");
}

#[test]
fn bad_base64_names_the_field() {
    let text = data_kubeconfig("not*base64", &b64(CLIENT_CRT), &b64(CLIENT_KEY));
    let e = err_of(from_kubeconfig_str(&text, Path::new("/"), None));
    assert!(e.contains("certificate-authority-data"), "{e}");
    assert!(e.contains("c1"), "names the cluster: {e}");
}

#[test]
fn base64_of_garbage_pem_is_refused() {
    let text = data_kubeconfig(&b64(b"hello"), &b64(CLIENT_CRT), &b64(CLIENT_KEY));
    let e = err_of(from_kubeconfig_str(&text, Path::new("/"), None));
    assert!(e.contains("no PEM certificate"), "{e}");
}

#[test]
fn file_fields_resolve_relative_to_the_kubeconfig() {
    let s = Scratch::new();
    s.write("pki/ca.crt", CA_BUNDLE);
    s.write("pki/client.crt", CLIENT_CRT);
    s.write("pki/client.key", CLIENT_KEY);
    let abs_key = s.0.join("pki/client.key");
    let path = s.write(
        "sub/../kubeconfig",
        format!(
            "clusters:
- name: c
  cluster:
    server: https://[fd00::1]:6443/prefix/
    certificate-authority: pki/ca.crt
users:
- name: u
  user:
    client-certificate: pki/client.crt
    client-key: {}
contexts:
- name: x
  context: {{cluster: c, user: u}}
current-context: x
",
            abs_key.display()
        )
        .as_bytes(),
    );
    let c = KubeConfig::from_kubeconfig_file(&path, None).expect("valid kubeconfig");
    assert_eq!(c.server.host, "fd00::1");
    assert_eq!(c.server.url(), "https://[fd00::1]:6443/prefix");
    assert_eq!(c.namespace, None);

    // Same file, seen from elsewhere: relative paths must not follow the cwd.
    std::fs::remove_file(s.0.join("pki/client.crt")).expect("rm");
    let e = KubeConfig::from_kubeconfig_file(&path, None).expect_err("cert file gone");
    assert!(e.to_string().contains("pki/client.crt"), "{e}");
}

#[test]
fn bundle_keeps_every_certificate() {
    let certs = tls::certs_from_pem(CA_BUNDLE, "bundle").expect("bundle");
    assert_eq!(certs.len(), 2);
    assert_ne!(certs[0], certs[1]);
}

const TWO_CONTEXTS: &str = "
clusters:
- name: a
  cluster: {server: 'https://a.example:443', insecure-skip-tls-verify: true}
- name: b
  cluster: {server: 'https://b.example', insecure-skip-tls-verify: true}
users:
- name: ua
  user: {token: \"  tok-a\n\"}
- name: ub
  user: {tokenFile: tok}
contexts:
- {name: ca, context: {cluster: a, user: ua}}
- {name: cb, context: {cluster: b, user: ub, namespace: ns-b}}
current-context: ca
";

#[test]
fn contexts_select_cluster_and_user() {
    let s = Scratch::new();
    s.write("tok", b"tok-b");
    let a = from_kubeconfig_str(TWO_CONTEXTS, &s.0, None).expect("current context");
    assert_eq!(a.server.host, "a.example");
    assert_eq!(a.auth, Auth::Token("tok-a".into()));
    let b = from_kubeconfig_str(TWO_CONTEXTS, &s.0, Some("cb")).expect("context cb");
    assert_eq!(b.server.authority(), "b.example:443");
    assert_eq!(b.auth, Auth::TokenFile(s.0.join("tok")));
    assert_eq!(b.namespace.as_deref(), Some("ns-b"));
    let e = err_of(from_kubeconfig_str(TWO_CONTEXTS, &s.0, Some("nope")));
    assert!(e.contains("\"nope\" not found"), "{e}");
}

#[test]
fn missing_token_file_is_an_error() {
    let e = err_of(from_kubeconfig_str(
        TWO_CONTEXTS,
        Path::new("/nonexistent"),
        Some("cb"),
    ));
    assert!(e.contains("tokenFile"), "{e}");
}

#[test]
fn tls_is_verified_unless_the_file_says_otherwise() {
    let no_ca = "
clusters: [{name: c, cluster: {server: 'https://h:1'}}]
users: [{name: u, user: {token: t}}]
contexts: [{name: x, context: {cluster: c, user: u}}]
current-context: x
";
    let e = err_of(from_kubeconfig_str(no_ca, Path::new("/"), None));
    assert!(e.contains("no certificate authority"), "{e}");

    let both = format!(
        "
clusters: [{{name: c, cluster: {{server: 'https://h:1', insecure-skip-tls-verify: true, certificate-authority-data: {}}}}}]
users: [{{name: u, user: {{token: t}}}}]
contexts: [{{name: x, context: {{cluster: c, user: u}}}}]
current-context: x
",
        b64(CA1)
    );
    let e = err_of(from_kubeconfig_str(&both, Path::new("/"), None));
    assert!(e.contains("contradictory"), "{e}");
}

#[test]
fn unsupported_features_are_refused() {
    let base = |cluster_extra: &str, user: &str| {
        format!(
            "
clusters: [{{name: c, cluster: {{server: 'https://h:1', insecure-skip-tls-verify: true{cluster_extra}}}}}]
users: [{{name: u, user: {user}}}]
contexts: [{{name: x, context: {{cluster: c, user: u}}}}]
current-context: x
"
        )
    };
    let cases = [
        (
            base(", proxy-url: 'http://p:3128'", "{token: t}"),
            "proxy-url",
        ),
        (
            base(", tls-server-name: foo", "{token: t}"),
            "tls-server-name",
        ),
        (base("", "{username: a, password: b}"), "basic auth"),
        (base("", "{exec: {command: aws}}"), "exec"),
        (
            base("", "{token: \"a\\r\\nX-Evil: 1\"}"),
            "control characters",
        ),
        (
            base("", "{client-key-data: abcd}"),
            "client-key without client-certificate",
        ),
    ];
    for (text, needle) in cases {
        let e = err_of(from_kubeconfig_str(&text, Path::new("/"), None));
        assert!(e.contains(needle), "{needle}: {e}");
    }
    // A token next to an exec plugin is usable: the token is used.
    let ok = from_kubeconfig_str(
        &base("", "{token: t, exec: {command: aws}}"),
        Path::new("/"),
        None,
    )
    .expect("token beats exec");
    assert_eq!(ok.auth, Auth::Token("t".into()));
}

#[test]
fn not_yaml_or_no_context() {
    assert!(err_of(from_kubeconfig_str("{{{", Path::new("/"), None)).contains("not a kubeconfig"));
    assert!(
        err_of(from_kubeconfig_str("clusters: []", Path::new("/"), None))
            .contains("current-context")
    );
}

#[test]
fn server_urls() {
    let s = Server::parse("https://10.0.0.1").expect("ip");
    assert_eq!(
        (s.host.as_str(), s.port, s.base_path.as_str()),
        ("10.0.0.1", 443, "")
    );
    let s = Server::parse("https://[::1]").expect("v6");
    assert_eq!(s.authority(), "[::1]:443");
    let s = Server::parse("https://k.example:8443/k8s/clusters/c-1/").expect("prefix");
    assert_eq!(s.url(), "https://k.example:8443/k8s/clusters/c-1");
    for bad in [
        "http://h",
        "h:443",
        "https://",
        "https://h:0",
        "https://h:99999",
        "https://[::1",
        "https://u@h",
        "https://h/?a",
    ] {
        assert!(Server::parse(bad).is_err(), "{bad}");
    }
}

fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<OsString> {
    let map: HashMap<String, OsString> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), OsString::from(v)))
        .collect();
    move |k| map.get(k).cloned()
}

fn service_account(s: &Scratch) -> PathBuf {
    s.write("sa/token", b"sa-token");
    s.write("sa/ca.crt", CA1);
    s.write("sa/namespace", b"liqo\n");
    s.0.join("sa")
}

fn kubeconfig_for(s: &Scratch, name: &str, server: &str) -> PathBuf {
    s.write(
        name,
        format!(
            "clusters: [{{name: c, cluster: {{server: '{server}', certificate-authority-data: {}}}}}]
users: [{{name: u, user: {{token: t}}}}]
contexts: [{{name: x, context: {{cluster: c, user: u}}}}]
current-context: x
",
            b64(CA1)
        )
        .as_bytes(),
    )
}

#[test]
fn in_cluster_reads_the_service_account_dir() {
    let s = Scratch::new();
    let sa = service_account(&s);
    let c = KubeConfig::in_cluster("fd00:10:96::1", "443", &sa).expect("in-cluster");
    assert_eq!(c.server.url(), "https://[fd00:10:96::1]:443");
    assert_eq!(c.auth, Auth::TokenFile(sa.join("token")));
    assert_eq!(c.namespace.as_deref(), Some("liqo"));
    let e = KubeConfig::in_cluster("10.96.0.1", "https", &sa).expect_err("bad port");
    assert!(e.to_string().contains("KUBERNETES_SERVICE_PORT"), "{e}");
    std::fs::remove_file(sa.join("token")).expect("rm token");
    let e = KubeConfig::in_cluster("10.96.0.1", "443", &sa).expect_err("no token");
    assert!(e.to_string().contains("token"), "{e}");
}

#[test]
fn source_precedence() {
    let s = Scratch::new();
    let sa = service_account(&s);
    let explicit = kubeconfig_for(&s, "explicit", "https://explicit:1");
    let first = kubeconfig_for(&s, "first", "https://first:1");
    kubeconfig_for(&s, "home/.kube/config", "https://home:1");
    let sa_s = sa.to_string_lossy().into_owned();
    let home = s.0.join("home").to_string_lossy().into_owned();
    let missing = s.0.join("missing").to_string_lossy().into_owned();
    let list = format!("{missing}:{}", first.display());
    let in_cluster = [
        ("KUBERNETES_SERVICE_HOST", "10.96.0.1"),
        ("KUBERNETES_SERVICE_PORT", "443"),
        (SERVICE_ACCOUNT_DIR_ENV, sa_s.as_str()),
        ("KUBECONFIG", list.as_str()),
        ("HOME", home.as_str()),
    ];
    let opts = ConnectOptions {
        kubeconfig: Some(explicit),
        context: None,
    };
    let host = |opts: &ConnectOptions, env: &[(&str, &str)]| match load_with(opts, &env_of(env)) {
        Ok(c) => c.server.host,
        Err(e) => format!("error: {e}"),
    };
    assert_eq!(host(&opts, &in_cluster), "explicit");
    let none = ConnectOptions::default();
    assert_eq!(host(&none, &in_cluster), "10.96.0.1");
    assert_eq!(host(&none, &in_cluster[2..]), "first");
    assert_eq!(host(&none, &in_cluster[4..]), "home");
    let only_missing = [("KUBECONFIG", missing.as_str()), ("HOME", home.as_str())];
    assert!(host(&none, &only_missing).contains("no such file"));
    assert!(host(&none, &[]).contains("no API server configured"));
}

#[test]
fn oversized_special_and_deep_material_is_refused() {
    let s = Scratch::new();
    let big = s.write("big.crt", &vec![b'A'; (MAX_MATERIAL_BYTES + 1) as usize]);
    let e = read_material(&big).unwrap_err();
    assert_eq!(e, "larger than 1048576 bytes");
    let exact = s.write("exact.crt", &vec![b'A'; MAX_MATERIAL_BYTES as usize]);
    assert_eq!(read_material(&exact).map(|b| b.len()), Ok(1 << 20));
    // A device is refused, never read (it would never end).
    assert_eq!(
        read_material(Path::new("/dev/zero")).unwrap_err(),
        "not a regular file"
    );
    // A FIFO is refused at once rather than waited on.
    let fifo = s.0.join("fifo");
    let c = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: a valid NUL-terminated path; mkfifo has no other preconditions.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    assert_eq!(read_material(&fifo).unwrap_err(), "not a regular file");
    let e = KubeConfig::from_kubeconfig_file(&fifo, None).unwrap_err();
    assert!(e.to_string().contains("not a regular file"), "{e}");
    // Deep nesting is refused before the YAML parser sees it.
    let deep = s.write("deep", format!("a: {}", "[".repeat(100_000)).as_bytes());
    let e = KubeConfig::from_kubeconfig_file(&deep, None).unwrap_err();
    assert!(e.to_string().contains("nested more than 64 levels"), "{e}");
}
