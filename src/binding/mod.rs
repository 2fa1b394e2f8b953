//! `RouteConfigurationBinding` (`networking.liqo.io/v1beta1`): how today's
//! Liqo agents say "this RouteConfiguration is applied on me". Pure: names,
//! identities, the objects to write and the decisions of what to write,
//! so the agent's shell only carries them to the API server and the kernel.
//!
//! Facts follow upstream Liqo (PR 3353): agents create their own bindings,
//! report on them instead of on the RouteConfiguration, and clean a table
//! up when its binding is deleted. Where upstream drops traffic (a binding
//! deleted by hand, an agent restart) routecfg keeps the routes.

pub mod decide;
pub mod mode;
pub mod name;
pub mod object;
pub mod status;
pub mod store;
pub mod target;

pub use decide::{Action, decide};
pub use mode::{BindingsFlag, Mode, select_mode};
pub use name::binding_name;
pub use object::{desired_binding, repaired_binding};
pub use status::{Outcome, updated_binding_status};
pub use store::BindingStore;
pub use target::Target;

/// `apiVersion` of bindings (the same group and version as RouteConfigurations).
pub const API_VERSION: &str = "networking.liqo.io/v1beta1";
/// `kind` of a binding.
pub const KIND: &str = "RouteConfigurationBinding";
/// REST plural of bindings.
pub const PLURAL: &str = "routeconfigurationbindings";
/// The CRD name discovery looks for.
pub const CRD_NAME: &str = "routeconfigurationbindings.networking.liqo.io";
/// Upstream's finalizer on bindings: the table is cleaned before the binding goes.
pub const FINALIZER: &str = "routeconfigurationbinding-controller.liqo.io/finalizer";
/// The pre-binding finalizer on RouteConfigurations, stripped on migration.
pub const LEGACY_FINALIZER: &str = "routeconfiguration-controller.liqo.io/finalizer";
/// The one condition type on a binding.
pub const APPLIED: &str = "Applied";
/// Reason of `Applied=True`.
pub const REASON_SUCCEEDED: &str = "ApplySucceeded";
/// Reason of `Applied=False`.
pub const REASON_FAILED: &str = "ApplyFailed";
