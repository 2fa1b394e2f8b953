//! Request/response calls to the API server over ureq: list, get, status
//! and finalizer writes, events.
//!
//! Every call is bounded (connect 5 s, whole request 10 s) so a slow API
//! server delays the loop by at most that, never forever. Proxy variables
//! (`HTTPS_PROXY`, `ALL_PROXY`, ...) are ignored on purpose: a node agent's
//! credentials must not be sent somewhere the environment happens to point,
//! and in-cluster traffic to the service IP never wants a proxy. Redirects
//! are not followed either (they would carry the bearer token elsewhere).
//! Names are resolved by our own resolver without helper threads (ureq's
//! default spawns one per lookup when a timeout is set); in-cluster the
//! host is an IP literal and no lookup happens at all.

use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::sync::Arc;
use std::time::Duration;

use rustls::ClientConfig;
use rustls_pki_types::ServerName;
use serde_json::{Value, json};
use ureq::unversioned::resolver::{ResolvedSocketAddrs, Resolver};
use ureq::unversioned::transport::{DefaultConnector, NextTimeout};

use super::config::{KubeConfig, Server};
use super::token::TokenSource;
use super::watch::{Watch, WatchTarget};
use super::{API_VERSION, GROUP, KIND, KubeError, PLURAL, VERSION};

/// Connect timeout for every call.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Upper bound for one whole request, body included.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Items per list page: bounds memory and the time of one request.
const LIST_PAGE: u32 = 500;
/// Largest response body accepted.
const MAX_BODY: u64 = 64 * 1024 * 1024;

/// Severity of an Event, as `kubectl describe` shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    Normal,
    Warning,
}

impl EventType {
    fn as_str(self) -> &'static str {
        match self {
            EventType::Normal => "Normal",
            EventType::Warning => "Warning",
        }
    }
}

/// A connection to one API server, for RouteConfigurations and Events.
pub struct Client {
    agent: ureq::Agent,
    server: Server,
    base: String,
    token: TokenSource,
    tls: Arc<ClientConfig>,
    user_agent: String,
    component: String,
    host: String,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("server", &self.base)
            .finish()
    }
}

/// Resolves the one server this client talks to, on the calling thread.
#[derive(Debug)]
struct ServerResolver {
    server: Server,
}

impl Resolver for ServerResolver {
    fn resolve(
        &self,
        uri: &ureq::http::Uri,
        _config: &ureq::config::Config,
        _timeout: NextTimeout,
    ) -> Result<ResolvedSocketAddrs, ureq::Error> {
        let ours = uri
            .authority()
            .is_some_and(|a| a.as_str() == self.server.authority());
        if !ours {
            return Err(ureq::Error::HostNotFound);
        }
        let mut out = self.empty();
        let addrs = resolve(&self.server).map_err(|_| ureq::Error::HostNotFound)?;
        for a in addrs.into_iter().take(16) {
            out.push(a);
        }
        Ok(out)
    }
}

/// The server's addresses: an IP literal as is, a name via the system
/// resolver (blocking, bounded by resolv.conf's own timeouts).
fn resolve(server: &Server) -> Result<Vec<SocketAddr>, KubeError> {
    if let Ok(ip) = server.host.parse::<IpAddr>() {
        return Ok(vec![SocketAddr::new(ip, server.port)]);
    }
    let addrs: Vec<SocketAddr> = (server.host.as_str(), server.port)
        .to_socket_addrs()
        .map_err(|e| KubeError::Transport {
            path: server.url(),
            message: format!("resolving {}: {e}", server.host),
        })?
        .collect();
    if addrs.is_empty() {
        return Err(KubeError::Transport {
            path: server.url(),
            message: format!("{} has no addresses", server.host),
        });
    }
    Ok(addrs)
}

/// Percent-encodes a query value (everything but RFC 3986 unreserved).
fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Refuses names that could change the request path; Kubernetes names are
/// DNS subdomains, so this rejects nothing valid.
fn check_name(what: &str, name: &str) -> Result<(), KubeError> {
    let ok = !name.is_empty()
        && name.len() <= 253
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.');
    if ok {
        Ok(())
    } else {
        Err(KubeError::Request(format!(
            "{what} {name:?} is not a valid name"
        )))
    }
}

fn object_path(ns: &str, name: &str) -> Result<String, KubeError> {
    check_name("namespace", ns)?;
    check_name("name", name)?;
    Ok(format!(
        "/apis/{GROUP}/{VERSION}/namespaces/{ns}/{PLURAL}/{name}"
    ))
}

enum Body<'a> {
    None,
    Json(&'static str, &'a [u8]),
}

impl Client {
    /// Builds the client; no connection is made yet.
    pub fn new(config: &KubeConfig) -> Result<Client, KubeError> {
        let user_agent = format!("routecfg/{}", env!("CARGO_PKG_VERSION"));
        let ureq_config = ureq::Agent::config_builder()
            .proxy(None)
            .http_status_as_error(false)
            .max_redirects(0)
            .timeout_connect(Some(CONNECT_TIMEOUT))
            .timeout_global(Some(REQUEST_TIMEOUT))
            .user_agent(user_agent.as_str())
            .accept("application/json")
            .tls_config(config.tls.ureq.clone())
            .build();
        let agent = ureq::Agent::with_parts(
            ureq_config,
            DefaultConnector::new(),
            ServerResolver {
                server: config.server.clone(),
            },
        );
        Ok(Client {
            agent,
            server: config.server.clone(),
            base: config.server.url(),
            token: TokenSource::new(config.auth.clone()),
            tls: config.tls.rustls.clone(),
            user_agent,
            component: "routecfg".to_string(),
            host: String::new(),
        })
    }

    /// Names the reporter of the Events this client creates: the component
    /// (default "routecfg") and the node or pod it runs on.
    pub fn set_event_source(&mut self, component: &str, host: &str) {
        self.component = component.to_string();
        self.host = host.to_string();
    }

    /// Every RouteConfiguration in every namespace matching the label
    /// selector (empty: all), and the list's resourceVersion to watch from.
    ///
    /// Pages of 500; if the continue token expires mid-way (410), the list
    /// starts over, twice at most. Items get `apiVersion`/`kind` filled in,
    /// as the API leaves them out of list items.
    pub fn list(&self, label_selector: &str) -> Result<(Vec<Value>, String), KubeError> {
        let base = format!("/apis/{GROUP}/{VERSION}/{PLURAL}?limit={LIST_PAGE}");
        let base = if label_selector.is_empty() {
            base
        } else {
            format!("{base}&labelSelector={}", encode(label_selector))
        };
        let mut restarts = 0;
        'restart: loop {
            let mut items = Vec::new();
            let mut continue_token: Option<String> = None;
            loop {
                let path = match &continue_token {
                    Some(c) => format!("{base}&continue={}", encode(c)),
                    None => base.clone(),
                };
                let page = match self.request("GET", &path, Body::None) {
                    Err(e) if e.is_gone() && continue_token.is_some() && restarts < 2 => {
                        restarts += 1;
                        log::info!("kube: list continue token expired, listing again");
                        continue 'restart;
                    }
                    r => r?,
                };
                let meta = page.get("metadata");
                let rv = meta
                    .and_then(|m| m.get("resourceVersion"))
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string();
                continue_token = meta
                    .and_then(|m| m.get("continue"))
                    .and_then(Value::as_str)
                    .filter(|c| !c.is_empty())
                    .map(str::to_string);
                match page.get("items") {
                    Some(Value::Array(page_items)) => items.extend(page_items.iter().cloned()),
                    Some(Value::Null) | None => {}
                    Some(_) => {
                        return Err(KubeError::Decode {
                            path,
                            message: "items is not a list".to_string(),
                        });
                    }
                }
                if continue_token.is_none() {
                    if rv.is_empty() {
                        return Err(KubeError::Decode {
                            path,
                            message: "list without metadata.resourceVersion".to_string(),
                        });
                    }
                    for item in &mut items {
                        if let Value::Object(o) = item {
                            o.entry("apiVersion")
                                .or_insert_with(|| Value::from(API_VERSION));
                            o.entry("kind").or_insert_with(|| Value::from(KIND));
                        }
                    }
                    return Ok((items, rv));
                }
            }
        }
    }

    /// One RouteConfiguration, `None` if it does not exist.
    pub fn get(&self, ns: &str, name: &str) -> Result<Option<Value>, KubeError> {
        match self.request("GET", &object_path(ns, name)?, Body::None) {
            Ok(v) => Ok(Some(v)),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// JSON merge patch of the status subresource, e.g.
    /// `{"status": {...}}`. Lists (like `status.conditions`) are replaced
    /// whole: when several hosts write conditions into one object, prefer
    /// [`Client::replace_status`] with its resourceVersion precondition.
    pub fn patch_status(&self, ns: &str, name: &str, body: &Value) -> Result<Value, KubeError> {
        let path = format!("{}/status", object_path(ns, name)?);
        let bytes = serde_json::to_vec(body)
            .map_err(|e| KubeError::Request(format!("status patch: {e}")))?;
        self.request(
            "PATCH",
            &path,
            Body::Json("application/merge-patch+json", &bytes),
        )
    }

    /// Writes the whole status (PUT to /status). The object must carry
    /// `metadata.resourceVersion`: the write only succeeds if nobody changed
    /// the object since it was read, otherwise [`KubeError::Conflict`].
    pub fn replace_status(&self, ns: &str, name: &str, object: &Value) -> Result<Value, KubeError> {
        let path = format!("{}/status", object_path(ns, name)?);
        let meta = object.get("metadata");
        let rv = meta
            .and_then(|m| m.get("resourceVersion"))
            .and_then(Value::as_str);
        if rv.is_none_or(str::is_empty) {
            return Err(KubeError::Request(format!(
                "{path}: status replace without metadata.resourceVersion would overwrite other writers"
            )));
        }
        let same = |field: &str, want: &str| {
            meta.and_then(|m| m.get(field)).and_then(Value::as_str) == Some(want)
        };
        if !same("name", name)
            || !meta
                .and_then(|m| m.get("namespace"))
                .is_none_or(|_| same("namespace", ns))
        {
            return Err(KubeError::Request(format!(
                "{path}: object metadata names another object"
            )));
        }
        let bytes =
            serde_json::to_vec(object).map_err(|e| KubeError::Request(format!("status: {e}")))?;
        self.request("PUT", &path, Body::Json("application/json", &bytes))
    }

    /// Sets `metadata.finalizers` to exactly `finalizers`, only if the
    /// object is still at `resource_version` (else [`KubeError::Conflict`]).
    /// A merge patch that carries the resourceVersion is checked by the
    /// API server like an update, so no other writer's change is lost.
    pub fn patch_metadata_finalizers(
        &self,
        ns: &str,
        name: &str,
        resource_version: &str,
        finalizers: &[String],
    ) -> Result<Value, KubeError> {
        let path = object_path(ns, name)?;
        if resource_version.is_empty() {
            return Err(KubeError::Request(format!(
                "{path}: finalizer patch without resourceVersion"
            )));
        }
        let body =
            json!({"metadata": {"resourceVersion": resource_version, "finalizers": finalizers}});
        let bytes = serde_json::to_vec(&body)
            .map_err(|e| KubeError::Request(format!("finalizers: {e}")))?;
        self.request(
            "PATCH",
            &path,
            Body::Json("application/merge-patch+json", &bytes),
        )
    }

    /// Records a core/v1 Event about `involved` (a RouteConfiguration as
    /// returned by this client) so `kubectl describe` shows what the agent
    /// did or why it could not.
    pub fn create_event(
        &self,
        ns: &str,
        involved: &Value,
        reason: &str,
        message: &str,
        event_type: EventType,
    ) -> Result<Value, KubeError> {
        check_name("namespace", ns)?;
        let meta = involved.get("metadata");
        let field = |f: &str| meta.and_then(|m| m.get(f)).cloned().unwrap_or(Value::Null);
        let name = field("name");
        let Some(name_str) = name.as_str() else {
            return Err(KubeError::Request(
                "event for an object without metadata.name".to_string(),
            ));
        };
        let now = crate::time::now_rfc3339();
        let mut source = json!({"component": self.component});
        if !self.host.is_empty() {
            source["host"] = Value::from(self.host.as_str());
        }
        let body = json!({
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"generateName": format!("{name_str}."), "namespace": ns},
            "involvedObject": {
                "apiVersion": involved.get("apiVersion").cloned().unwrap_or(Value::from(API_VERSION)),
                "kind": involved.get("kind").cloned().unwrap_or(Value::from(KIND)),
                "name": name,
                "namespace": ns,
                "uid": field("uid"),
                "resourceVersion": field("resourceVersion"),
            },
            "reason": reason,
            "message": message,
            "type": event_type.as_str(),
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
            "source": source,
            "reportingComponent": self.component,
            "reportingInstance": self.host,
        });
        let bytes =
            serde_json::to_vec(&body).map_err(|e| KubeError::Request(format!("event: {e}")))?;
        self.request(
            "POST",
            &format!("/api/v1/namespaces/{ns}/events"),
            Body::Json("application/json", &bytes),
        )
    }

    /// Opens a watch on RouteConfigurations in all namespaces from
    /// `resource_version`, with bookmarks, ended by the server after
    /// `timeout_seconds`. Returns at once; see [`Watch`] for driving it.
    /// The token is the current one (re-read if its file changed); after a
    /// 401 on a watch, any request call re-reads it.
    pub fn watch(
        &self,
        resource_version: &str,
        label_selector: &str,
        timeout_seconds: u32,
    ) -> Result<Watch, KubeError> {
        let mut path = format!(
            "{}/apis/{GROUP}/{VERSION}/{PLURAL}?watch=1&allowWatchBookmarks=true&timeoutSeconds={timeout_seconds}",
            self.server.base_path
        );
        if !resource_version.is_empty() {
            path.push_str(&format!("&resourceVersion={}", encode(resource_version)));
        }
        if !label_selector.is_empty() {
            path.push_str(&format!("&labelSelector={}", encode(label_selector)));
        }
        let server_name = ServerName::try_from(self.server.host.clone()).map_err(|e| {
            KubeError::Config(format!(
                "server host {:?} is not a valid TLS name: {e}",
                self.server.host
            ))
        })?;
        Watch::start(WatchTarget {
            addrs: resolve(&self.server)?,
            server_name,
            tls: self.tls.clone(),
            authority: self.server.authority(),
            path,
            token: self.token.current()?,
            user_agent: self.user_agent.clone(),
            timeout_seconds,
        })
    }

    /// Sends one request, re-reading the token and retrying once after a
    /// 401 when the token comes from a file; decodes the JSON answer.
    fn request(&self, method: &str, path: &str, body: Body<'_>) -> Result<Value, KubeError> {
        let token = self.token.current()?;
        let (mut status, mut bytes) = self.send(method, path, &body, token.as_deref())?;
        if status == 401 && self.token.can_reload() {
            log::info!("kube: {method} {path}: 401, re-reading the token and retrying once");
            let token = self.token.reload()?;
            (status, bytes) = self.send(method, path, &body, token.as_deref())?;
        }
        if !(200..300).contains(&status) {
            let e = KubeError::from_status(status, &bytes, path);
            log::debug!("kube: {method} {e}");
            return Err(e);
        }
        serde_json::from_slice(&bytes).map_err(|e| KubeError::Decode {
            path: path.to_string(),
            message: e.to_string(),
        })
    }

    fn send(
        &self,
        method: &str,
        path: &str,
        body: &Body<'_>,
        token: Option<&str>,
    ) -> Result<(u16, Vec<u8>), KubeError> {
        let url = format!("{}{}", self.base, path);
        let auth = token.map(|t| format!("Bearer {t}"));
        let result = match (method, body) {
            ("GET", Body::None) => {
                let mut r = self.agent.get(&url);
                if let Some(a) = &auth {
                    r = r.header("Authorization", a);
                }
                r.call()
            }
            (_, Body::Json(content_type, data)) => {
                let mut r = match method {
                    "POST" => self.agent.post(&url),
                    "PUT" => self.agent.put(&url),
                    "PATCH" => self.agent.patch(&url),
                    _ => {
                        return Err(KubeError::Request(format!(
                            "{method} {path}: unsupported method"
                        )));
                    }
                };
                if let Some(a) = &auth {
                    r = r.header("Authorization", a);
                }
                r.header("Content-Type", *content_type).send(*data)
            }
            _ => {
                return Err(KubeError::Request(format!(
                    "{method} {path}: unsupported method"
                )));
            }
        };
        let map = |e: ureq::Error| match e {
            ureq::Error::Timeout(t) => KubeError::Timeout {
                path: path.to_string(),
                message: t.to_string(),
            },
            e => KubeError::Transport {
                path: path.to_string(),
                message: e.to_string(),
            },
        };
        let mut response = result.map_err(map)?;
        let status = response.status().as_u16();
        let bytes = response
            .body_mut()
            .with_config()
            .limit(MAX_BODY)
            .read_to_vec()
            .map_err(map)?;
        log::debug!("kube: {method} {path} -> {status}");
        Ok((status, bytes))
    }
}

#[cfg(test)]
#[path = "client_tests.rs"]
mod wire_tests;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_encoding() {
        assert_eq!(
            encode("networking.liqo.io/route-category=gateway,a!=b"),
            "networking.liqo.io%2Froute-category%3Dgateway%2Ca%21%3Db"
        );
        assert_eq!(encode("a b&c"), "a%20b%26c");
    }

    #[test]
    fn names_cannot_escape_the_path() {
        assert!(object_path("liqo", "rc-1.x").is_ok());
        for bad in ["", "../x", "a/b", "a?b", "A", "a b", "a%2f"] {
            assert!(object_path("ns", bad).is_err(), "{bad}");
            assert!(object_path(bad, "n").is_err(), "{bad}");
        }
    }
}
