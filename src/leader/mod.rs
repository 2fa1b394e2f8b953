//! Gateway high availability: only the holder of a `coordination.k8s.io/v1`
//! Lease applies routes and writes bindings. Upstream's gateway uses
//! client-go leader election with a 15 s lease, a 10 s renew deadline and a
//! 2 s retry; this is the same algorithm as a pure state machine, driven by
//! the agent's one poll loop (requests out, responses and ticks in), so it
//! never blocks and every transition is unit-tested.

pub mod elector;
pub mod record;

pub use elector::{Config, Elector, Event, Request, Response};
pub use record::{LeaseRecord, default_lease_name, parse_lease_ref};
