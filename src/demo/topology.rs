//! The links of the seed document's Rome gateway, made with netlink alone
//! (the scratch image has no `ip` binary).
//!
//! Each gateway interface is one end of a veth pair; the other end stays in
//! the same namespace, up and unaddressed, so the interface has carrier and
//! the kernel treats routes through it as usable. Only `liqo-tunnel` gets
//! an address: its /30 makes Milan's gateway 169.254.18.1 reachable, which
//! the `milan` table's routes need. The Geneve gateways 10.80.0.x become
//! reachable through the routecfg tables themselves (their `scope link`
//! routes), exactly as on a real gateway.

use crate::kernel::{KernelError, Netlink};
use ipnet::IpNet;

/// One gateway interface and the name of its silent peer.
#[derive(Clone, Copy, Debug)]
pub struct GatewayLink {
    pub name: &'static str,
    pub peer: &'static str,
    /// What the interface stands for, for the output.
    pub role: &'static str,
}

/// The Rome gateway's interfaces as the seed document names them.
pub const LINKS: &[GatewayLink] = &[
    GatewayLink {
        name: "liqo-tunnel",
        peer: "peer-milan",
        role: "WireGuard tunnel to Milan's gateway 169.254.18.1",
    },
    GatewayLink {
        name: "liqo.zgdhd2x5fc",
        peer: "peer-worker",
        role: "Geneve to node rome-worker (10.80.0.2)",
    },
    GatewayLink {
        name: "liqo.zqzt5nqktn",
        peer: "peer-cplane",
        role: "Geneve to node rome-control-plane (10.80.0.1)",
    },
];

/// The tunnel link and its address.
pub const TUNNEL: &str = "liqo-tunnel";
pub const TUNNEL_ADDRESS: &str = "169.254.18.2/30";

/// Sysctls of the private namespace (under /proc/sys/net, which shows the
/// namespace of the process reading it). Forwarding: `route get ... iif`
/// simulates a forwarded packet and fails without it.
/// Reverse-path filtering is inherited from the host and would refuse the
/// sample sources, for which the demo has no route back.
const SYSCTLS: &[(&str, &str)] = &[
    ("/proc/sys/net/ipv4/ip_forward", "1"),
    ("/proc/sys/net/ipv4/conf/all/rp_filter", "0"),
    ("/proc/sys/net/ipv4/conf/default/rp_filter", "0"),
];

/// Why the topology could not be built.
#[derive(Debug)]
pub enum TopologyError {
    Sysctl {
        path: &'static str,
        error: std::io::Error,
    },
    Kernel(KernelError),
}

impl TopologyError {
    /// Permission refused although the namespace was made: typically a
    /// user namespace whose capabilities a security policy strips.
    pub fn is_permission(&self) -> bool {
        match self {
            TopologyError::Sysctl { error, .. } => {
                error.kind() == std::io::ErrorKind::PermissionDenied
            }
            TopologyError::Kernel(e) => matches!(e.errno_name(), "EPERM" | "EACCES"),
        }
    }
}

impl std::fmt::Display for TopologyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TopologyError::Sysctl { path, error } => write!(f, "write {path}: {error}"),
            TopologyError::Kernel(e) => write!(f, "{e}"),
        }
    }
}

impl From<KernelError> for TopologyError {
    fn from(e: KernelError) -> Self {
        TopologyError::Kernel(e)
    }
}

/// Creates the gateway's links in the current (private) namespace.
pub fn build(netlink: &mut Netlink) -> Result<(), TopologyError> {
    for &(path, value) in SYSCTLS {
        std::fs::write(path, value).map_err(|error| TopologyError::Sysctl { path, error })?;
    }
    netlink.set_up("lo")?;
    for link in LINKS {
        netlink.create_veth(link.name, link.peer)?;
        netlink.set_up(link.peer)?;
        netlink.set_up(link.name)?;
        log::debug!("demo: link {} up ({})", link.name, link.role);
    }
    let address: IpNet = TUNNEL_ADDRESS
        .parse()
        .map_err(|e| KernelError::protocol("demo topology", format!("{TUNNEL_ADDRESS}: {e}")))?;
    netlink.add_address(TUNNEL, address)?;
    Ok(())
}
