//! The agent's HTTP side: `/metrics`, `/healthz`, `/readyz`, `/status`,
//! `/origins`.
//!
//! Everything here runs on the event loop's thread and never waits: the
//! listeners and connections are non-blocking, each connection is a state
//! machine ([`connection`]) read and written only when poll says so, and a
//! wakeup spends a bounded [`Budget`]. Limits: 64 open connections (the
//! oldest idle one makes room), a 4 KiB request head, 2 s per connection.
//!
//! The loop's side of the contract ([`Server`]):
//! 1. add [`Server::interest`] to its poll set and [`Server::deadline`] to
//!    its timeout;
//! 2. after each poll, call [`Server::turn`] with the ready descriptors, a
//!    [`Budget`] and a closure that builds the answer to a [`Page`].

mod connection;
mod connections;
mod protocol;
#[cfg(test)]
mod script;
mod server;

pub use connection::Budget;
pub use protocol::{Page, Response};
pub use server::Server;
