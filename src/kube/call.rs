//! The generic shape of one API call: any method, path, body and content
//! type, with its own deadline and response-size budget. Built by the
//! request helpers in `requests.rs` (RouteConfigurations, Events) or by
//! hand for other resources, and run by [`super::Client::start`].

use std::time::Duration;

use serde_json::Value;

use super::KubeError;

/// Default deadline for a whole call: connect, TLS, request, response.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(10);
/// Default largest response body (a list page of 500 objects fits easily).
pub const MAX_RESPONSE: usize = 64 * 1024 * 1024;

/// Identifies a started call in [`Completed`].
pub type CallId = u64;

/// One request to the API server.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiRequest {
    /// HTTP method: `GET`, `POST`, `PUT`, `PATCH`, `DELETE`.
    pub method: &'static str,
    /// Path and query below the server's base path, e.g.
    /// `/apis/coordination.k8s.io/v1/namespaces/x/leases/y`.
    pub path: String,
    /// Body and its content type (`application/json`,
    /// `application/merge-patch+json`, ...).
    pub body: Option<(&'static str, Vec<u8>)>,
    /// The whole call fails with [`KubeError::Timeout`] after this.
    pub timeout: Duration,
    /// A response body larger than this fails the call.
    pub max_response: usize,
}

impl ApiRequest {
    /// A GET with the default deadline and budget.
    pub fn get(path: impl Into<String>) -> ApiRequest {
        ApiRequest {
            method: "GET",
            path: path.into(),
            body: None,
            timeout: CALL_TIMEOUT,
            max_response: MAX_RESPONSE,
        }
    }

    /// A request carrying `body` serialized as JSON.
    pub fn json(
        method: &'static str,
        path: impl Into<String>,
        content_type: &'static str,
        body: &Value,
    ) -> Result<ApiRequest, KubeError> {
        let path = path.into();
        let bytes = serde_json::to_vec(body)
            .map_err(|e| KubeError::Request(format!("{method} {path}: {e}")))?;
        Ok(ApiRequest {
            method,
            body: Some((content_type, bytes)),
            ..ApiRequest::get(path)
        })
    }
}

/// A 2xx answer (anything else is a [`KubeError`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiResponse {
    pub status: u16,
    pub body: Vec<u8>,
}

impl ApiResponse {
    /// The body as JSON; `path` names the request in the error.
    pub fn json(&self, path: &str) -> Result<Value, KubeError> {
        serde_json::from_slice(&self.body).map_err(|e| KubeError::Decode {
            path: path.to_string(),
            message: e.to_string(),
        })
    }
}

/// A finished call, as [`super::Client::take_completed`] hands it out.
#[derive(Debug, Clone, PartialEq)]
pub struct Completed {
    pub id: CallId,
    pub request: ApiRequest,
    pub result: Result<ApiResponse, KubeError>,
}
