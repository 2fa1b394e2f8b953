//! Flags of binding mode and gateway HA, parsed and checked before the
//! agent talks to anything: which generation (`--bindings`), who we are
//! (`--binding-target`, `--pod-namespace`), and leader election
//! (`--leader-elect`, `--leader-lease`, `--leader-elect-follow`,
//! `--gateway-name`, `--gateway-mode`). Pure: the environment comes in as
//! values, so every rule is unit-tested.

use super::args::{Args, Spec};
use crate::binding::target::IdentityInputs;
use crate::binding::{BindingsFlag, Target};
use crate::leader::{self, default_lease_name, parse_lease_ref};

/// The flags, for `run` and `once`.
pub const BINDING_FLAGS: &[Spec] = &[
    Spec::value("bindings"),
    Spec::value("pod-namespace"),
    Spec::value("binding-target"),
    Spec::switch("leader-elect"),
    Spec::value("leader-lease"),
    Spec::switch("leader-elect-follow"),
    Spec::value("gateway-name"),
    Spec::value("gateway-mode"),
];

/// What the process environment says, gathered by the caller.
#[derive(Clone, Debug, Default)]
pub struct Env<'a> {
    /// `$POD_NAMESPACE`.
    pub pod_namespace: Option<&'a str>,
    /// The in-cluster namespace file's content, if readable.
    pub namespace_file: Option<&'a str>,
    /// `$POD_NAME`, else the hostname: the Lease holder identity.
    pub pod_name: &'a str,
}

/// Parsed binding and HA options.
#[derive(Debug)]
pub struct BindingOptions {
    pub flag: BindingsFlag,
    /// Who we are in binding mode, or why that is not known. `--bindings on`
    /// refuses to start without it; `auto` needs it only once discovery
    /// finds bindings (see [`crate::binding::select_mode`]).
    pub identity: Result<Target, String>,
    /// Leader election, when asked for.
    pub leader: Option<leader::Config>,
}

/// Parses the flags; `role`, `node_name` and `host_name` are the agent's
/// already-resolved values.
pub fn binding_options(
    args: &Args,
    role: Option<&str>,
    node_name: Option<&str>,
    host_name: &str,
    env: &Env,
) -> Result<BindingOptions, String> {
    let flag = match args.value("bindings") {
        None => BindingsFlag::Auto,
        Some(v) => BindingsFlag::parse(v)?,
    };
    let identity = Target::resolve(&IdentityInputs {
        role,
        node_name,
        host_name,
        pod_namespace_flag: args.value("pod-namespace"),
        pod_namespace_env: env.pod_namespace,
        namespace_file: env.namespace_file,
        binding_target: args.value("binding-target"),
    });
    // An identity flag that cannot be used is an error whatever the mode;
    // a missing identity only where it is needed.
    if let Err(e) = &identity {
        if args.has("binding-target") || args.has("pod-namespace") || flag.needs_identity() {
            return Err(e.clone());
        }
    }
    let follow = args.has("leader-elect-follow");
    let elect = args.has("leader-elect") || follow;
    for f in ["leader-lease", "gateway-name", "gateway-mode"] {
        if args.has(f) && !elect {
            return Err(format!(
                "--{f} needs --leader-elect (or --leader-elect-follow)"
            ));
        }
    }
    let leader = if elect {
        let (namespace, name) = match args.value("leader-lease") {
            Some(l) => parse_lease_ref(l)?,
            None => {
                let ns = [
                    args.value("pod-namespace"),
                    env.pod_namespace,
                    env.namespace_file,
                ]
                .into_iter()
                .flatten()
                .map(str::trim)
                .find(|s| !s.is_empty())
                .ok_or(
                    "--leader-elect without --leader-lease puts the lease in the pod's namespace: \
                         set --pod-namespace (or $POD_NAMESPACE)",
                )?;
                let mode = args.value("gateway-mode").ok_or(
                    "--leader-elect without --leader-lease uses upstream's lease \
                     <gateway-name>.<namespace>.<mode>.connections.liqo.io: set --gateway-mode server|client",
                )?;
                let gateway = args.value("gateway-name").unwrap_or(host_name);
                let name = default_lease_name(gateway, ns, mode)
                    .map_err(|e| format!("--leader-elect: {e}"))?;
                (ns.to_string(), name)
            }
        };
        if env.pod_name.is_empty() {
            return Err("--leader-elect needs this pod's name ($POD_NAME) as lease holder".into());
        }
        Some(leader::Config::new(&namespace, &name, env.pod_name, follow))
    } else {
        None
    };
    Ok(BindingOptions {
        flag,
        identity,
        leader,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(argv: &[&str]) -> Args {
        let argv: Vec<String> = argv.iter().map(|s| s.to_string()).collect();
        Args::parse(&argv, BINDING_FLAGS).unwrap()
    }

    fn env() -> Env<'static> {
        Env {
            pod_namespace: Some("liqo-tenant-milan"),
            namespace_file: None,
            pod_name: "gw-milan-7d9f-abcde",
        }
    }

    fn gw(argv: &[&str], env: &Env) -> Result<BindingOptions, String> {
        binding_options(
            &parse(argv),
            Some("gateway"),
            Some("n1"),
            "gw-milan-7d9f-abcde",
            env,
        )
    }

    #[test]
    fn defaults_are_auto_with_role_identity_and_no_election() {
        let o = gw(&[], &env()).unwrap();
        assert_eq!(o.flag, BindingsFlag::Auto);
        assert_eq!(
            o.identity,
            Ok(Target::pod("liqo-tenant-milan", "gw-milan-7d9f-abcde"))
        );
        assert!(o.leader.is_none());
        let o = binding_options(
            &parse(&[]),
            Some("fabric"),
            Some("w1"),
            "h",
            &Env::default(),
        )
        .unwrap();
        assert_eq!(o.identity, Ok(Target::node("w1")));
    }

    #[test]
    fn bindings_value_is_checked() {
        assert_eq!(
            gw(&["--bindings", "maybe"], &env()).unwrap_err(),
            "--bindings \"maybe\": expected auto, on or off"
        );
        assert_eq!(
            gw(&["--bindings=off"], &env()).unwrap().flag,
            BindingsFlag::Off
        );
    }

    #[test]
    fn missing_identity_is_a_startup_error_only_for_on() {
        let none = Env::default();
        // -l selectors and no role: unknown identity.
        let a = parse(&["--bindings", "on"]);
        let e = binding_options(&a, None, None, "h", &none).unwrap_err();
        assert!(e.contains("--binding-target"), "{e}");
        let a = parse(&[]);
        let o = binding_options(&a, None, None, "h", &none).unwrap();
        assert!(o.identity.is_err(), "auto keeps the reason for later");
        let a = parse(&["--bindings", "off"]);
        assert!(binding_options(&a, None, None, "h", &none).is_ok());
        // Gateway without any namespace source.
        let e = gw(&["--bindings", "on"], &none).unwrap_err();
        assert!(e.contains("--pod-namespace"), "{e}");
        // A malformed target is refused even with bindings off.
        let a = parse(&["--bindings", "off", "--binding-target", "Pod/x"]);
        assert!(binding_options(&a, None, None, "h", &none).is_err());
        let a = parse(&["--binding-target", "Node/w9"]);
        let o = binding_options(&a, None, None, "h", &none).unwrap();
        assert_eq!(o.identity, Ok(Target::node("w9")));
    }

    #[test]
    fn leader_lease_default_is_upstreams() {
        let o = gw(
            &[
                "--leader-elect",
                "--gateway-mode",
                "server",
                "--gateway-name",
                "gw-milan",
            ],
            &env(),
        )
        .unwrap();
        let l = o.leader.unwrap();
        assert_eq!(l.namespace, "liqo-tenant-milan");
        assert_eq!(
            l.name,
            "gw-milan.liqo-tenant-milan.server.connections.liqo.io"
        );
        assert_eq!(l.identity, "gw-milan-7d9f-abcde");
        assert!(!l.follow);
        assert_eq!(
            (l.lease_ms, l.renew_deadline_ms, l.retry_ms),
            (15_000, 10_000, 2_000)
        );
        let e = gw(&["--leader-elect"], &env()).unwrap_err();
        assert!(e.contains("--gateway-mode"), "{e}");
        let e = gw(&["--leader-elect", "--gateway-mode", "both"], &env()).unwrap_err();
        assert!(e.contains("server or client"), "{e}");
        let e = gw(
            &["--leader-elect", "--gateway-mode", "client"],
            &Env {
                pod_namespace: None,
                ..env()
            },
        )
        .unwrap_err();
        assert!(e.contains("--pod-namespace"), "{e}");
    }

    #[test]
    fn explicit_lease_and_follow() {
        let o = gw(
            &["--leader-elect-follow", "--leader-lease", "liqo/gw-lease"],
            &env(),
        )
        .unwrap();
        let l = o.leader.unwrap();
        assert_eq!(
            (l.namespace.as_str(), l.name.as_str(), l.follow),
            ("liqo", "gw-lease", true)
        );
        assert!(gw(&["--leader-elect", "--leader-lease", "nolease"], &env()).is_err());
        let e = gw(
            &["--leader-elect", "--leader-lease", "liqo/x"],
            &Env {
                pod_name: "",
                ..env()
            },
        )
        .unwrap_err();
        assert!(e.contains("$POD_NAME"), "{e}");
    }

    #[test]
    fn election_flags_need_election() {
        for f in [
            ["--leader-lease", "a/b"],
            ["--gateway-mode", "server"],
            ["--gateway-name", "g"],
        ] {
            let e = gw(&f, &env()).unwrap_err();
            assert!(
                e.ends_with("needs --leader-elect (or --leader-elect-follow)"),
                "{e}"
            );
        }
    }
}
