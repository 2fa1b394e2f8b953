//! Which generation of Liqo the agent talks to: per-host conditions on
//! RouteConfigurations (the seed's) or RouteConfigurationBindings (today's).
//! `auto` asks API discovery at start and on every re-list, so installing
//! the binding CRD later switches a running agent.

/// `--bindings auto|on|off`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum BindingsFlag {
    #[default]
    Auto,
    On,
    Off,
}

impl BindingsFlag {
    pub fn parse(s: &str) -> Result<BindingsFlag, String> {
        match s {
            "auto" => Ok(BindingsFlag::Auto),
            "on" => Ok(BindingsFlag::On),
            "off" => Ok(BindingsFlag::Off),
            _ => Err(format!("--bindings {s:?}: expected auto, on or off")),
        }
    }

    /// Whether the agent must ask discovery (at start and on each re-list).
    pub fn needs_discovery(self) -> bool {
        self == BindingsFlag::Auto
    }

    /// Whether a missing identity must stop the agent before it talks to
    /// the API server. `auto` learns only from discovery whether it needs
    /// one (see [`select_mode`]), so a seed-generation cluster keeps
    /// working with the flags it always had.
    pub fn needs_identity(self) -> bool {
        self == BindingsFlag::On
    }
}

/// The mode in effect.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Per-host `Applied` conditions in `RouteConfiguration.status`.
    Conditions,
    /// One RouteConfigurationBinding per selected object, status there.
    Bindings,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Conditions => "conditions",
            Mode::Bindings => "bindings",
        }
    }
}

/// The mode for a flag and what discovery said (`served`: whether the API
/// server serves `routeconfigurationbindings.networking.liqo.io`; `None`
/// when not asked or not answered). An unanswered discovery keeps the
/// current mode: a flaky API server must not flip the agent back and forth.
///
/// `auto` meeting bindings without an identity is an error naming the
/// fix: at start the agent exits with it; on a re-list it keeps its
/// current mode, reports the error and is not ready. Writing conditions
/// nobody reads, or bindings for a guessed target, would both be silent.
pub fn select_mode(
    flag: BindingsFlag,
    served: Option<bool>,
    current: Mode,
    identity: Result<(), &str>,
) -> Result<Mode, String> {
    let mode = match (flag, served) {
        (BindingsFlag::Off, _) => Mode::Conditions,
        (BindingsFlag::On, _) => Mode::Bindings,
        (BindingsFlag::Auto, Some(true)) => Mode::Bindings,
        (BindingsFlag::Auto, Some(false)) => Mode::Conditions,
        (BindingsFlag::Auto, None) => current,
    };
    match (mode, identity) {
        (Mode::Bindings, Err(why)) => Err(format!(
            "the API server serves {}, so --bindings {} needs this agent's identity: {why} \
             (or use --bindings off)",
            super::CRD_NAME,
            if flag == BindingsFlag::On {
                "on"
            } else {
                "auto"
            }
        )),
        (m, _) => Ok(m),
    }
}

/// Whether a discovery answer for group `networking.liqo.io` (the
/// `APIResourceList` of `/apis/networking.liqo.io/v1beta1`) lists bindings.
pub fn discovery_serves_bindings(resource_list: &serde_json::Value) -> bool {
    resource_list
        .get("resources")
        .and_then(serde_json::Value::as_array)
        .is_some_and(|r| {
            r.iter()
                .any(|x| x.get("name").and_then(serde_json::Value::as_str) == Some(super::PLURAL))
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parses_flag() {
        assert_eq!(BindingsFlag::parse("auto"), Ok(BindingsFlag::Auto));
        assert_eq!(BindingsFlag::parse("on"), Ok(BindingsFlag::On));
        assert_eq!(BindingsFlag::parse("off"), Ok(BindingsFlag::Off));
        assert_eq!(
            BindingsFlag::parse("yes").unwrap_err(),
            "--bindings \"yes\": expected auto, on or off"
        );
        assert_eq!(BindingsFlag::default(), BindingsFlag::Auto);
        assert!(BindingsFlag::Auto.needs_discovery());
        assert!(!BindingsFlag::On.needs_discovery() && !BindingsFlag::Off.needs_discovery());
        assert!(BindingsFlag::On.needs_identity());
        assert!(!BindingsFlag::Off.needs_identity() && !BindingsFlag::Auto.needs_identity());
    }

    #[test]
    fn every_combination() {
        use BindingsFlag::*;
        use Mode::*;
        let ok = Ok(());
        for current in [Conditions, Bindings] {
            for served in [None, Some(true), Some(false)] {
                assert_eq!(select_mode(Off, served, current, ok), Ok(Conditions));
                assert_eq!(select_mode(Off, served, current, Err("x")), Ok(Conditions));
                assert_eq!(select_mode(On, served, current, ok), Ok(Bindings));
                assert!(select_mode(On, served, current, Err("x")).is_err());
            }
            assert_eq!(select_mode(Auto, Some(true), current, ok), Ok(Bindings));
            assert_eq!(select_mode(Auto, Some(false), current, ok), Ok(Conditions));
            assert_eq!(
                select_mode(Auto, Some(false), current, Err("x")),
                Ok(Conditions)
            );
            assert_eq!(select_mode(Auto, None, current, ok), Ok(current));
        }
        let e = select_mode(Auto, Some(true), Conditions, Err("needs --node-name")).unwrap_err();
        assert_eq!(
            e,
            "the API server serves routeconfigurationbindings.networking.liqo.io, so --bindings \
             auto needs this agent's identity: needs --node-name (or use --bindings off)"
        );
        assert_eq!(Bindings.as_str(), "bindings");
        assert_eq!(Conditions.as_str(), "conditions");
    }

    #[test]
    fn discovery_answer() {
        let with = json!({"kind": "APIResourceList", "groupVersion": "networking.liqo.io/v1beta1",
            "resources": [{"name": "routeconfigurations"}, {"name": "routeconfigurationbindings"},
                          {"name": "routeconfigurationbindings/status"}]});
        assert!(discovery_serves_bindings(&with));
        let without = json!({"resources": [{"name": "routeconfigurations"},
                                           {"name": "routeconfigurations/status"}]});
        assert!(!discovery_serves_bindings(&without));
        assert!(!discovery_serves_bindings(&json!({})));
    }
}
