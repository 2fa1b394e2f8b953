//! The Kubernetes side of the agent: connection config, a non-blocking API
//! client driven by the agent's poll(2) loop, and pollable watches.
//!
//! Layers, bottom up, each its own file and its own tests:
//! * `exchange.rs`: one HTTP/1.1 request/response as bytes in, bytes out
//!   (ureq's sans-IO engine, `ureq-proto`); tested with scripted bytes.
//! * `conn.rs`: one non-blocking TCP + rustls connection.
//! * [`call`]: the generic [`ApiRequest`] (any method, path, body, content
//!   type; deadline and response budget) and its outcome.
//! * [`client`]: [`Client`], running calls over a small keep-alive pool,
//!   plus blocking helpers for `routecfg once` and tests.
//! * [`list`]: a bounded, paged list as a state machine ([`Pager`]).
//! * [`watch`]: a [`Watch`] stream on any collection, with bookmarks.
//! * `requests.rs`: RouteConfiguration and Event requests.
//!
//! Objects stay `serde_json::Value` here: this layer moves bytes and keeps
//! the API's contracts (resourceVersion preconditions, 409/410, bookmarks);
//! typing and validation belong to the model.

mod backoff;
mod base64;
pub mod call;
pub mod client;
pub mod config;
mod conn;
mod error;
mod events;
mod exchange;
pub mod list;
pub mod requests;
#[cfg(test)]
mod test_server;
mod tls;
mod token;
pub mod watch;

/// Entry points for the fuzz targets in tests/fuzz (see `crate::fuzzing`).
#[doc(hidden)]
pub mod fuzzing {
    /// The watch stream decoder: bytes split into lines at any point (the
    /// first byte says where), then every event; an object in an event is
    /// decoded and validated as the agent does.
    pub fn watch_stream(data: &[u8]) {
        let cut = usize::from(data.first().copied().unwrap_or(0)).min(data.len());
        let mut lines = super::events::EventLines::default();
        lines.push(&data[..cut]);
        lines.push(&data[cut..]);
        for _ in 0..data.len() + 1 {
            match lines.next_event() {
                Ok(Some(event)) => {
                    use serde::Deserialize;
                    let object = crate::model::RouteConfiguration::deserialize(&event.object);
                    if let Ok(object) = object {
                        let _ = crate::model::validate(&object, 114);
                    }
                }
                Ok(None) | Err(_) => break,
            }
        }
    }

    /// One HTTP/1.1 exchange fed any response bytes, split at a point
    /// the first byte chooses, then the end of input.
    pub fn http_response(data: &[u8]) {
        let Ok(mut x) = super::exchange::Exchange::new("GET", "127.0.0.1:6443", "/api", &[], None)
        else {
            panic!("a fixed request must build");
        };
        let mut out = Vec::new();
        if x.output(&mut out).is_err() {
            return;
        }
        let cut = usize::from(data.first().copied().unwrap_or(0)).min(data.len());
        let mut body = Vec::new();
        for part in [&data[..cut], &data[cut..]] {
            if x.input(part, &mut body).is_err() || x.is_complete() {
                return;
            }
        }
        let _ = x.end_of_input();
    }
}

pub use backoff::Backoff;
pub use call::{ApiRequest, ApiResponse, CallId, Completed};
pub use client::{Client, EventType};
pub use config::{Auth, ConnectOptions, KubeConfig, Server};
pub use error::KubeError;
pub use events::{WatchEvent, WatchEventKind};
pub use list::{ListLimits, Pager};
pub use watch::{Watch, WatchPoll};

/// API group of RouteConfiguration.
pub const GROUP: &str = "networking.liqo.io";
/// API version served and written.
pub const VERSION: &str = "v1beta1";
/// `group/version`, as in an object's `apiVersion`.
pub const API_VERSION: &str = "networking.liqo.io/v1beta1";
/// Resource name in URLs.
pub const PLURAL: &str = "routeconfigurations";
/// Object kind.
pub const KIND: &str = "RouteConfiguration";
