//! Where the API server is and how to prove who we are to it.
//!
//! # Which source wins
//! 1. an explicit `--kubeconfig PATH` ([`ConnectOptions::kubeconfig`]);
//! 2. in-cluster, when `KUBERNETES_SERVICE_HOST` and `KUBERNETES_SERVICE_PORT`
//!    are both set: the ServiceAccount files `token`, `ca.crt` and
//!    `namespace` from `/var/run/secrets/kubernetes.io/serviceaccount`, or
//!    from the directory named by `ROUTECFG_SA_DIR` (meant for tests);
//! 3. `KUBECONFIG`: a colon-separated list, of which the first file that
//!    exists is used whole (kubectl merges them; one file is enough for an
//!    agent, and merging would make "which credentials?" hard to answer);
//! 4. `$HOME/.kube/config`.
//!
//! `--context` ([`ConnectOptions::context`]) picks a kubeconfig context
//! (default: `current-context`); it does not apply in-cluster.
//!
//! # Kubeconfig support
//! Cluster `server` (https only), `certificate-authority` (file; relative
//! paths are resolved against the kubeconfig's directory, as kubectl does)
//! or `certificate-authority-data` (which wins when both are set), and
//! `insecure-skip-tls-verify` — honoured only when the file says so, and
//! refused together with a CA. User `token` / `tokenFile` (the file wins and
//! is re-read when it changes), `client-certificate[-data]` +
//! `client-key[-data]`. Refused with a clear error rather than silently
//! ignored: `proxy-url`, `tls-server-name`, basic auth, and exec /
//! auth-provider plugins when no token or certificate is given.
//!
//! There is no system trust store: without a CA the config is refused.
//! HTTP proxy variables are never used (see `client.rs`).

use std::ffi::OsString;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::KubeError;
use super::base64;
use super::tls::{self, Identity, Tls, TlsMaterial};

/// Where ServiceAccount credentials are mounted in a pod.
pub const SERVICE_ACCOUNT_DIR: &str = "/var/run/secrets/kubernetes.io/serviceaccount";

/// Environment variable that overrides [`SERVICE_ACCOUNT_DIR`] (for tests
/// and for running the agent outside a pod with copied credentials).
pub const SERVICE_ACCOUNT_DIR_ENV: &str = "ROUTECFG_SA_DIR";

/// What the command line said about the connection.
#[derive(Debug, Clone, Default)]
pub struct ConnectOptions {
    /// `--kubeconfig`: beats every other source when given.
    pub kubeconfig: Option<PathBuf>,
    /// `--context`: kubeconfig context to use instead of `current-context`.
    pub context: Option<String>,
}

/// The API server's address, split so that IPv6 literals, ports and a
/// path prefix (servers behind a proxy path) never need re-parsing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Server {
    /// Host name or IP literal, without brackets.
    pub host: String,
    pub port: u16,
    /// Path prefix without a trailing slash; usually empty.
    pub base_path: String,
}

impl Server {
    /// Parses `https://host[:port][/prefix]`.
    pub fn parse(url: &str) -> Result<Server, String> {
        let rest = match url.strip_prefix("https://") {
            Some(r) => r,
            None if url.starts_with("http://") => {
                return Err(format!(
                    "server {url}: plain http is not supported, the API must be reached over verified TLS"
                ));
            }
            None => return Err(format!("server {url:?}: expected https://host[:port]")),
        };
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], rest[i..].trim_end_matches('/')),
            None => (rest, ""),
        };
        if authority.contains('@') {
            return Err(format!(
                "server {url}: user info in the URL is not supported"
            ));
        }
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let Some(end) = v6.find(']') else {
                return Err(format!("server {url}: unclosed '[' in host"));
            };
            let host = &v6[..end];
            let after = &v6[end + 1..];
            let port = match after.strip_prefix(':') {
                Some(p) => Some(p),
                None if after.is_empty() => None,
                None => return Err(format!("server {url}: garbage after IPv6 host")),
            };
            (host, port)
        } else {
            match authority.rsplit_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (authority, None),
            }
        };
        if host.is_empty() {
            return Err(format!("server {url}: empty host"));
        }
        let port = match port {
            Some(p) => p
                .parse::<u16>()
                .ok()
                .filter(|p| *p != 0)
                .ok_or_else(|| format!("server {url}: bad port {p:?}"))?,
            None => 443,
        };
        if path.contains(['?', '#']) {
            return Err(format!("server {url}: query or fragment not allowed"));
        }
        Ok(Server {
            host: host.to_string(),
            port,
            base_path: path.to_string(),
        })
    }

    /// `host:port`, with brackets around IPv6 literals, for URLs and the
    /// `Host` header.
    pub fn authority(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    /// `https://authority/prefix`, the base every request path is added to.
    pub fn url(&self) -> String {
        format!("https://{}{}", self.authority(), self.base_path)
    }
}

/// How requests prove who we are, beyond a client certificate.
#[derive(Clone, PartialEq, Eq)]
pub enum Auth {
    /// Client certificate only, or anonymous.
    None,
    /// A fixed bearer token from the kubeconfig.
    Token(String),
    /// A bearer token file, re-read whenever it changes: kubelet rotates
    /// projected ServiceAccount tokens in place.
    TokenFile(PathBuf),
}

impl fmt::Debug for Auth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Auth::None => f.write_str("None"),
            Auth::Token(_) => f.write_str("Token(<redacted>)"),
            Auth::TokenFile(p) => write!(f, "TokenFile({})", p.display()),
        }
    }
}

/// A checked, ready-to-connect configuration.
#[derive(Debug, Clone)]
pub struct KubeConfig {
    pub server: Server,
    pub auth: Auth,
    /// The namespace the credentials belong to (in-cluster) or the
    /// context's namespace; informational for an all-namespaces agent.
    pub namespace: Option<String>,
    /// Human-readable origin ("in-cluster", "kubeconfig PATH context C")
    /// for the startup log line.
    pub source: String,
    pub(crate) tls: Tls,
}

impl KubeConfig {
    /// Loads the config from the process environment, in the documented
    /// order.
    pub fn load(opts: &ConnectOptions) -> Result<KubeConfig, KubeError> {
        load_with(opts, &|k| std::env::var_os(k))
    }

    /// The in-cluster config from a ServiceAccount directory.
    pub fn in_cluster(host: &str, port: &str, sa_dir: &Path) -> Result<KubeConfig, KubeError> {
        let port: u16 = port.trim().parse().map_err(|_| {
            KubeError::Config(format!("KUBERNETES_SERVICE_PORT {port:?} is not a port"))
        })?;
        let host = host.trim().trim_start_matches('[').trim_end_matches(']');
        if host.is_empty() {
            return Err(KubeError::Config(
                "KUBERNETES_SERVICE_HOST is empty".to_string(),
            ));
        }
        let token = sa_dir.join("token");
        if !token.is_file() {
            return Err(KubeError::Config(format!(
                "in-cluster: token file {} missing",
                token.display()
            )));
        }
        let ca_path = sa_dir.join("ca.crt");
        let ca = read_file(&ca_path, "in-cluster ca.crt")?;
        let roots =
            tls::certs_from_pem(&ca, &ca_path.display().to_string()).map_err(KubeError::Config)?;
        let namespace = read_material(&sa_dir.join("namespace"))
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty());
        let material = TlsMaterial {
            roots,
            identity: None,
            insecure: false,
        };
        let tls =
            tls::build(&material).map_err(|e| KubeError::Config(format!("in-cluster: {e}")))?;
        Ok(KubeConfig {
            server: Server {
                host: host.to_string(),
                port,
                base_path: String::new(),
            },
            auth: Auth::TokenFile(token),
            namespace,
            source: format!("in-cluster ({})", sa_dir.display()),
            tls,
        })
    }

    /// A kubeconfig file, with `context` or its `current-context`.
    pub fn from_kubeconfig_file(
        path: &Path,
        context: Option<&str>,
    ) -> Result<KubeConfig, KubeError> {
        let text = read_file(path, "kubeconfig")?;
        let text = String::from_utf8(text)
            .map_err(|_| KubeError::Config(format!("kubeconfig {}: not UTF-8", path.display())))?;
        let dir = path.parent().unwrap_or(Path::new("."));
        let mut config = from_kubeconfig_str(&text, dir, context)
            .map_err(|e| KubeError::Config(format!("kubeconfig {}: {e}", path.display())))?;
        config.source = format!("{} in {}", config.source, path.display());
        Ok(config)
    }
}

/// [`KubeConfig::load`] with the environment passed in, so the precedence
/// can be tested without touching the process environment.
pub fn load_with(
    opts: &ConnectOptions,
    env: &dyn Fn(&str) -> Option<OsString>,
) -> Result<KubeConfig, KubeError> {
    if let Some(path) = &opts.kubeconfig {
        return KubeConfig::from_kubeconfig_file(path, opts.context.as_deref());
    }
    if let (Some(host), Some(port)) = (
        env("KUBERNETES_SERVICE_HOST").filter(|h| !h.is_empty()),
        env("KUBERNETES_SERVICE_PORT").filter(|p| !p.is_empty()),
    ) {
        if opts.context.is_some() {
            log::warn!("kube: --context ignored: running in-cluster");
        }
        let dir = env(SERVICE_ACCOUNT_DIR_ENV)
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(SERVICE_ACCOUNT_DIR));
        return KubeConfig::in_cluster(&host.to_string_lossy(), &port.to_string_lossy(), &dir);
    }
    if let Some(list) = env("KUBECONFIG").filter(|l| !l.is_empty()) {
        let list = list.to_string_lossy().into_owned();
        for entry in list.split(':').filter(|e| !e.is_empty()) {
            let path = Path::new(entry);
            if path.exists() {
                return KubeConfig::from_kubeconfig_file(path, opts.context.as_deref());
            }
        }
        return Err(KubeError::Config(format!(
            "KUBECONFIG={list}: no such file"
        )));
    }
    if let Some(home) = env("HOME").filter(|h| !h.is_empty()) {
        let path = PathBuf::from(home).join(".kube").join("config");
        if path.exists() {
            return KubeConfig::from_kubeconfig_file(&path, opts.context.as_deref());
        }
    }
    Err(KubeError::Config(
        "no API server configured: not in a cluster, no --kubeconfig, no KUBECONFIG, no ~/.kube/config"
            .to_string(),
    ))
}

fn read_file(path: &Path, what: &str) -> Result<Vec<u8>, KubeError> {
    read_material(path).map_err(|e| KubeError::Config(format!("{what} {}: {e}", path.display())))
}

/// Largest kubeconfig, certificate, key or token file read: real ones are
/// a few KiB; a bigger one is a mistake (or `/dev/zero`), not a config.
pub(crate) const MAX_MATERIAL_BYTES: u64 = 1 << 20;

/// A regular file of at most [`MAX_MATERIAL_BYTES`]. Opened without
/// blocking and checked through its descriptor, so a FIFO is refused
/// rather than waited on.
pub(crate) fn read_material(path: &Path) -> Result<Vec<u8>, String> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| e.to_string())?;
    let meta = file.metadata().map_err(|e| e.to_string())?;
    if !meta.is_file() {
        return Err("not a regular file".to_string());
    }
    let mut out = Vec::new();
    file.take(MAX_MATERIAL_BYTES + 1)
        .read_to_end(&mut out)
        .map_err(|e| e.to_string())?;
    if out.len() as u64 > MAX_MATERIAL_BYTES {
        return Err(format!("larger than {MAX_MATERIAL_BYTES} bytes"));
    }
    Ok(out)
}

// The subset of the kubeconfig schema we read; unknown fields are ignored
// (kubectl writes many we do not need).

#[derive(Deserialize, Default)]
#[serde(default)]
struct File {
    clusters: Option<Vec<NamedCluster>>,
    users: Option<Vec<NamedUser>>,
    contexts: Option<Vec<NamedContext>>,
    #[serde(rename = "current-context")]
    current_context: Option<String>,
}

#[derive(Deserialize)]
struct NamedCluster {
    name: String,
    #[serde(default)]
    cluster: Option<Cluster>,
}

#[derive(Deserialize)]
struct NamedUser {
    name: String,
    #[serde(default)]
    user: Option<User>,
}

#[derive(Deserialize)]
struct NamedContext {
    name: String,
    #[serde(default)]
    context: Option<Context>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Cluster {
    server: Option<String>,
    #[serde(rename = "certificate-authority")]
    certificate_authority: Option<String>,
    #[serde(rename = "certificate-authority-data")]
    certificate_authority_data: Option<String>,
    #[serde(rename = "insecure-skip-tls-verify")]
    insecure_skip_tls_verify: Option<bool>,
    #[serde(rename = "tls-server-name")]
    tls_server_name: Option<String>,
    #[serde(rename = "proxy-url")]
    proxy_url: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct User {
    token: Option<String>,
    #[serde(rename = "tokenFile")]
    token_file: Option<String>,
    #[serde(rename = "client-certificate")]
    client_certificate: Option<String>,
    #[serde(rename = "client-certificate-data")]
    client_certificate_data: Option<String>,
    #[serde(rename = "client-key")]
    client_key: Option<String>,
    #[serde(rename = "client-key-data")]
    client_key_data: Option<String>,
    username: Option<String>,
    password: Option<String>,
    exec: Option<serde_yaml_ng::Value>,
    #[serde(rename = "auth-provider")]
    auth_provider: Option<serde_yaml_ng::Value>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Context {
    cluster: Option<String>,
    user: Option<String>,
    namespace: Option<String>,
}

fn nonempty(s: &Option<String>) -> Option<&str> {
    s.as_deref().filter(|s| !s.is_empty())
}

/// Reads a `*-data` (base64) or file field pair; data wins, as in kubectl.
fn data_or_file(
    data: &Option<String>,
    file: &Option<String>,
    dir: &Path,
    what: &str,
) -> Result<Option<Vec<u8>>, String> {
    if let Some(d) = nonempty(data) {
        return base64::decode(d)
            .map(Some)
            .map_err(|e| format!("{what}-data: {e}"));
    }
    if let Some(f) = nonempty(file) {
        let path = dir.join(f);
        return read_material(&path)
            .map(Some)
            .map_err(|e| format!("{what} {}: {e}", path.display()));
    }
    Ok(None)
}

/// Parses kubeconfig text; `dir` is where relative file paths start.
pub fn from_kubeconfig_str(
    text: &str,
    dir: &Path,
    context: Option<&str>,
) -> Result<KubeConfig, String> {
    crate::model::load::strict::check_yaml_depth(text)?;
    let file: File = serde_yaml_ng::from_str(text).map_err(|e| format!("not a kubeconfig: {e}"))?;
    let context_name = match context {
        Some(c) => c.to_string(),
        None => nonempty(&file.current_context)
            .ok_or("no --context given and no current-context set")?
            .to_string(),
    };
    let ctx = file
        .contexts
        .unwrap_or_default()
        .into_iter()
        .find(|c| c.name == context_name)
        .ok_or_else(|| format!("context {context_name:?} not found"))?
        .context
        .unwrap_or_default();
    let cluster_name = nonempty(&ctx.cluster)
        .ok_or_else(|| format!("context {context_name:?} names no cluster"))?;
    let cluster = file
        .clusters
        .unwrap_or_default()
        .into_iter()
        .find(|c| c.name == cluster_name)
        .ok_or_else(|| format!("cluster {cluster_name:?} (context {context_name:?}) not found"))?
        .cluster
        .unwrap_or_default();
    let user = match nonempty(&ctx.user) {
        Some(user_name) => file
            .users
            .unwrap_or_default()
            .into_iter()
            .find(|u| u.name == user_name)
            .ok_or_else(|| format!("user {user_name:?} (context {context_name:?}) not found"))?
            .user
            .unwrap_or_default(),
        None => User::default(),
    };
    let where_ = format!("cluster {cluster_name:?}");

    let server =
        Server::parse(nonempty(&cluster.server).ok_or_else(|| format!("{where_}: no server"))?)
            .map_err(|e| format!("{where_}: {e}"))?;
    if nonempty(&cluster.proxy_url).is_some() {
        return Err(format!("{where_}: proxy-url is not supported"));
    }
    if nonempty(&cluster.tls_server_name).is_some() {
        return Err(format!("{where_}: tls-server-name is not supported"));
    }
    let insecure = cluster.insecure_skip_tls_verify.unwrap_or(false);
    let ca = data_or_file(
        &cluster.certificate_authority_data,
        &cluster.certificate_authority,
        dir,
        "certificate-authority",
    )
    .map_err(|e| format!("{where_}: {e}"))?;
    let roots = match (&ca, insecure) {
        (Some(_), true) => {
            return Err(format!(
                "{where_}: insecure-skip-tls-verify together with a certificate authority is contradictory"
            ));
        }
        (Some(pem), false) => tls::certs_from_pem(pem, "certificate-authority")
            .map_err(|e| format!("{where_}: {e}"))?,
        (None, _) => Vec::new(),
    };
    if insecure {
        log::warn!(
            "kube: {where_}: insecure-skip-tls-verify set, the API server's certificate is NOT verified"
        );
    }

    let who = format!("user {:?}", ctx.user.as_deref().unwrap_or(""));
    let cert = data_or_file(
        &user.client_certificate_data,
        &user.client_certificate,
        dir,
        "client-certificate",
    )
    .map_err(|e| format!("{who}: {e}"))?;
    let key = data_or_file(&user.client_key_data, &user.client_key, dir, "client-key")
        .map_err(|e| format!("{who}: {e}"))?;
    let identity = match (cert, key) {
        (Some(cert), Some(key)) => {
            Some(Identity::from_pem(&cert, &key).map_err(|e| format!("{who}: {e}"))?)
        }
        (None, None) => None,
        (Some(_), None) => return Err(format!("{who}: client-certificate without client-key")),
        (None, Some(_)) => return Err(format!("{who}: client-key without client-certificate")),
    };
    let auth = if let Some(f) = nonempty(&user.token_file) {
        let path = dir.join(f);
        if !path.is_file() {
            return Err(format!("{who}: tokenFile {} missing", path.display()));
        }
        Auth::TokenFile(path)
    } else if let Some(t) = nonempty(&user.token) {
        let t = t.trim();
        if t.bytes().any(|b| b.is_ascii_control() || b == b' ') {
            return Err(format!(
                "{who}: token contains whitespace or control characters"
            ));
        }
        Auth::Token(t.to_string())
    } else {
        Auth::None
    };
    if nonempty(&user.username).is_some() || nonempty(&user.password).is_some() {
        return Err(format!(
            "{who}: basic auth (username/password) is not supported"
        ));
    }
    if auth == Auth::None && identity.is_none() {
        if user.exec.is_some() || user.auth_provider.is_some() {
            return Err(format!(
                "{who}: exec and auth-provider credential plugins are not supported; use a token, tokenFile or client certificate"
            ));
        }
        log::warn!("kube: {who} has no credentials, requests will be anonymous");
    }

    let tls = tls::build(&TlsMaterial {
        roots,
        identity,
        insecure,
    })
    .map_err(|e| format!("{where_}, {who}: {e}"))?;
    Ok(KubeConfig {
        server,
        auth,
        namespace: nonempty(&ctx.namespace).map(str::to_string),
        source: format!("kubeconfig context {context_name:?}"),
        tls,
    })
}

#[cfg(test)]
#[path = "config_tests.rs"]
mod tests;
