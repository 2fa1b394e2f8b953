//! `routecfg explain`: where a packet goes and which object, rule and
//! route of ours (or not ours) sent it there.
//!
//! [`origin`] maps kernel tables back to RouteConfigurations (pure, also
//! published by the agent on `/status`); [`decide`] finds the rule the
//! kernel used and assembles the answer (pure); [`ask`] is the thin kernel
//! shell around them, shared by the command and the demo.

pub mod decide;
pub mod origin;

pub use decide::{Decider, Explanation, Flow, render};
pub use origin::Origins;

use crate::kernel::{ErrorKind, KernelError, Netlink, RouteFilter};
use decide::Context;

/// Asks the kernel about `flow` and explains its answer. A lookup the
/// kernel refuses (no route, unreachable) is an answer; failing to talk
/// to the kernel, or an `iif`/`oif` that does not exist, is an error.
pub fn ask(
    netlink: &mut Netlink,
    flow: &Flow,
    origins: &Origins,
    protocol: u8,
    names: &dyn Fn(u32) -> Option<String>,
) -> Result<Explanation, KernelError> {
    let Some(dst) = flow.dst else {
        return Err(KernelError::protocol("route get", "no destination"));
    };
    let answer = match netlink.route_match(
        dst,
        flow.src,
        flow.iif.as_deref(),
        flow.oif.as_deref(),
        flow.mark,
    ) {
        Ok(got) => Ok(got),
        Err(e) if e.kind == ErrorKind::Kernel => Err(e.to_string()),
        Err(e) => return Err(e),
    };
    let rules = netlink.dump_rules()?;
    let cx = Context {
        flow,
        rules: &rules,
        origins,
        protocol,
        names,
    };
    // A table "has a route" for the walk when a unicast route of it
    // contains the destination (other route types are not dumped).
    let mut routes_for = |table: u32| -> Result<bool, String> {
        let routes = netlink
            .dump_routes(RouteFilter {
                table: Some(table),
                protocol: None,
            })
            .map_err(|e| e.to_string())?;
        Ok(routes.iter().any(|r| r.dst.contains(&dst)))
    };
    let mut e = decide::explain(&cx, answer.as_ref().map_err(Clone::clone), &mut routes_for);
    if e.decided_by == Decider::None {
        if let Some(iif) = &flow.iif {
            if forwarding_off(flow, iif) {
                e.notes.push(format!(
                    "forwarding is off on {iif}: the kernel refuses every lookup for traffic arriving there"
                ));
            }
        }
    }
    Ok(e)
}

/// Whether the kernel would refuse to forward what arrives on `iif`
/// (what a lookup with `iif` simulates).
fn forwarding_off(flow: &Flow, iif: &str) -> bool {
    let family = match flow.family() {
        crate::routing::Family::V4 => "ipv4",
        crate::routing::Family::V6 => "ipv6",
    };
    let path = format!("/proc/sys/net/{family}/conf/{iif}/forwarding");
    std::fs::read_to_string(path).is_ok_and(|v| v.trim() == "0")
}
