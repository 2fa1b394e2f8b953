//! The kernel side: a thin, synchronous NETLINK_ROUTE layer.
//!
//! [`Netlink`] reads state (links, rules, routes filtered in the kernel)
//! and applies a plan's [`crate::routing::Op`]s in large batches, one ack
//! per op matched by sequence number, so 100k routes cost about a hundred
//! system calls to send instead of 100k round trips. [`Monitor`] reports
//! changes made behind routecfg's back. Interfaces are names outside this
//! module; ifindexes never leave it.

mod error;
mod link_msg;
mod monitor;
mod netlink;
mod route_msg;
mod rule_msg;
mod socket;
mod words;

/// Entry points for the fuzz targets in tests/fuzz (see `crate::fuzzing`): every netlink message parser, on any bytes.
#[doc(hidden)]
pub mod fuzzing {
    /// Runs each parser over `payload`; any result is fine, a panic is not.
    pub fn parse_all(payload: &[u8]) {
        let _ = super::route_msg::parse_get_reply(payload);
        let _ = super::route_msg::event_fields(payload);
        let _ = super::route_msg::push_route(payload, &mut Vec::new());
        let _ = super::rule_msg::parse_rule(payload);
        let _ = super::rule_msg::event_fields(payload);
        let _ = super::link_msg::parse_link(payload);
    }
}

pub use error::{ErrorKind, KernelError, errno_name};
pub use link_msg::Link;
pub use monitor::{Event, Monitor};
pub use netlink::Netlink;
pub use route_msg::{RouteFilter, RouteGet, RouteMatch};
pub use words::{RouteWords, RuleWords, op_words};
