//! The agent: follows RouteConfigurations on the API server and keeps this
//! host's policy routing equal to the selected ones.
//!
//! One thread, one loop over poll(2): the netlink event socket, the watch
//! stream, the metrics listener and a signalfd. The loop owns all state;
//! every wake-up drains its sources, marks tables dirty, and reconciles once
//! the burst has settled (a few milliseconds), touching only dirty tables.

mod http;
mod metrics;
pub(crate) mod poll;
mod signals;
mod state;
mod status;

pub mod runner;

pub use metrics::Metrics;
pub use state::{State, diff_tables, key_of, labels_of};
pub use status::updated_status;
