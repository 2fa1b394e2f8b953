//! The pure part of routecfg: what a RouteConfiguration says, whether it
//! makes sense, and which kernel tables, rules and routes it means. No I/O
//! except [`load::load_paths`], so every decision here is unit-tested.

pub mod api;
pub mod desired;
pub mod load;
pub mod selector;
pub mod validate;

pub use api::RouteConfiguration;
pub use desired::{Desired, build};
pub use load::{LoadError, load_paths, parse_documents};
pub use selector::{Selector, SelectorSet};
pub use validate::{ObjectError, Policy, Validated, validate, validate_with};

#[cfg(test)]
pub(crate) mod testdata;
