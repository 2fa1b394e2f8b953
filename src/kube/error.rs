//! One error type for everything that can go wrong between the agent and the
//! API server, shaped so the caller can decide what to do next (retry,
//! re-list, re-read, give up) without parsing strings.

use std::fmt;

/// Why a call to the API server (or loading the connection config) failed.
///
/// Every variant names the URL path (or file) involved, so a log line is
/// enough to find the failing request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KubeError {
    /// The connection config (kubeconfig, in-cluster files, credentials) is
    /// unusable; retrying will not help until the files change.
    Config(String),
    /// The caller asked for something this layer refuses to send (bad name,
    /// missing resourceVersion precondition).
    Request(String),
    /// Connecting, TLS or I/O failed before an HTTP answer arrived.
    Transport { path: String, message: String },
    /// No answer within the bounded time; the connection was dropped.
    Timeout { path: String, message: String },
    /// 409: the resourceVersion precondition failed (or the object already
    /// exists); re-read and try again.
    Conflict { path: String, message: String },
    /// 410: the resourceVersion (or continue token) is too old; re-list.
    Gone { path: String, message: String },
    /// Any other non-2xx answer, with the API's `Status` message when it
    /// sent one.
    Api {
        status: u16,
        reason: String,
        message: String,
        path: String,
    },
    /// The answer was not the JSON we expected.
    Decode { path: String, message: String },
}

impl KubeError {
    /// Builds the error for an HTTP status, reading the `Status` object the
    /// API server puts in error bodies when there is one.
    pub(crate) fn from_status(status: u16, body: &[u8], path: &str) -> KubeError {
        let (reason, message) = status_message(body);
        let path = path.to_string();
        match status {
            409 => KubeError::Conflict { path, message },
            410 => KubeError::Gone { path, message },
            _ => KubeError::Api {
                status,
                reason,
                message,
                path,
            },
        }
    }

    /// The HTTP status the API answered with, if it answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            KubeError::Conflict { .. } => Some(409),
            KubeError::Gone { .. } => Some(410),
            KubeError::Api { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// True for 409: the object changed under us.
    pub fn is_conflict(&self) -> bool {
        matches!(self, KubeError::Conflict { .. })
    }

    /// True for 410: the caller must re-list before watching again.
    pub fn is_gone(&self) -> bool {
        matches!(self, KubeError::Gone { .. })
    }

    /// True for 404.
    pub fn is_not_found(&self) -> bool {
        self.status() == Some(404)
    }
}

/// Pulls `reason` and `message` out of a `Status` body; falls back to the
/// start of the raw body so proxies' HTML errors still say something.
fn status_message(body: &[u8]) -> (String, String) {
    if let Ok(v) = serde_json::from_slice::<serde_json::Value>(body) {
        let reason = v.get("reason").and_then(|r| r.as_str()).unwrap_or("");
        if let Some(m) = v.get("message").and_then(|m| m.as_str()) {
            return (reason.to_string(), m.to_string());
        }
    }
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    let mut end = text.len().min(200);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    (String::new(), text[..end].to_string())
}

impl fmt::Display for KubeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KubeError::Config(m) => write!(f, "kubernetes config: {m}"),
            KubeError::Request(m) => write!(f, "refused request: {m}"),
            KubeError::Transport { path, message } => write!(f, "{path}: {message}"),
            KubeError::Timeout { path, message } => write!(f, "{path}: timed out: {message}"),
            KubeError::Conflict { path, message } => write!(f, "{path}: 409 Conflict: {message}"),
            KubeError::Gone { path, message } => write!(f, "{path}: 410 Gone: {message}"),
            KubeError::Api {
                status,
                reason,
                message,
                path,
            } => {
                if reason.is_empty() {
                    write!(f, "{path}: HTTP {status}: {message}")
                } else {
                    write!(f, "{path}: HTTP {status} {reason}: {message}")
                }
            }
            KubeError::Decode { path, message } => write!(f, "{path}: bad response: {message}"),
        }
    }
}

impl std::error::Error for KubeError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_body_gives_reason_and_message() {
        let body = br#"{"kind":"Status","status":"Failure","message":"routeconfigurations.networking.liqo.io \"a\" not found","reason":"NotFound","code":404}"#;
        let e = KubeError::from_status(404, body, "/apis/x");
        assert!(e.is_not_found());
        assert_eq!(
            e.to_string(),
            "/apis/x: HTTP 404 NotFound: routeconfigurations.networking.liqo.io \"a\" not found"
        );
    }

    #[test]
    fn conflict_and_gone_are_their_own_variants() {
        let c = KubeError::from_status(409, b"{\"message\":\"stale\"}", "/p");
        assert!(c.is_conflict());
        assert_eq!(c.status(), Some(409));
        let g = KubeError::from_status(410, b"", "/p");
        assert!(g.is_gone());
        assert!(!g.is_conflict());
    }

    #[test]
    fn non_json_body_is_truncated_text() {
        let body = "é".repeat(300);
        let e = KubeError::from_status(502, body.as_bytes(), "/p");
        match e {
            KubeError::Api { message, .. } => {
                assert!(message.len() <= 200);
                assert!(message.starts_with('é'));
            }
            other => panic!("unexpected {other:?}"),
        }
    }
}
