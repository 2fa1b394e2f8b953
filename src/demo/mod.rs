//! `routecfg demo`: the Rome gateway of the Liqo documentation, rebuilt in
//! a private network namespace so anyone can watch routecfg work without a
//! cluster, without touching the host, and (where user namespaces are
//! allowed) without root.
//!
//! The pieces are kept apart so each can be read on its own: [`netns`]
//! leaves the host's namespace, [`topology`] creates the gateway's links,
//! [`seed`] holds the documentation's objects, [`show`] prints kernel
//! state as `ip` does, [`lookups`] asks the kernel where sample traffic
//! goes.

pub mod lookups;
pub mod netns;
pub mod seed;
pub mod show;
pub mod topology;
