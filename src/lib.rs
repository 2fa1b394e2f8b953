//! routecfg: makes a Linux host's policy routing match Liqo
//! `RouteConfiguration` objects.
//!
//! Data flows one way: API objects or files -> [`model`] (validated) ->
//! desired [`routing::Table`]s -> [`plan`] (diff against a kernel
//! [`routing::Snapshot`]) -> [`kernel`] batch -> result -> status.

pub mod agent;
pub mod checkpoint;
pub mod cli;
pub mod demo;
pub mod engine;
pub mod explain;
pub mod kernel;
pub mod kube;
pub mod model;
pub mod plan;
pub mod routing;
pub mod rt_tables;
pub mod table_id;
pub mod time;

#[doc(hidden)]
pub mod fuzzing;
