//! The agent: follows RouteConfigurations on the API server and keeps this
//! host's policy routing equal to the selected ones.
//!
//! One thread, one loop over poll(2) (`event_loop.rs`): the netlink event
//! socket, the watch stream, API calls, the metrics listener and a
//! signalfd. The loop owns all state; every wake-up gives each source a
//! bounded turn, marks tables dirty, and reconciles once the burst has
//! settled (a few milliseconds), touching only dirty tables
//! (`reconcile.rs`). API traffic never blocks it: list and watch are state
//! machines (`stream.rs`, driven from `api.rs` and `bindings.rs`), writes go through a queue keyed by object
//! (`writes.rs`).

mod api;
mod bindings;
mod event_loop;
mod http;
mod leader;
mod metrics;
pub(crate) mod poll;
mod reconcile;
mod signals;
mod state;
mod status;
mod stream;
pub mod writes;

pub mod runner;

pub use metrics::Metrics;
pub use state::{State, diff_tables, key_of, labels_of};
pub use status::updated_status;
