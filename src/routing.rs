//! The kernel-facing vocabulary shared by the model, the planner and the
//! kernel module: what a policy rule and a route *are* once an API object
//! has been validated, independent of where they came from.
//!
//! Interfaces are kept as names here; the kernel module translates them to
//! and from ifindexes, so plans stay readable and testable without a kernel.

use ipnet::IpNet;
use std::fmt;
use std::net::IpAddr;

/// The default `rtm_protocol` routecfg stamps on every rule and route it
/// writes. 114 is unassigned in iproute2's `rt_protos` and in the kernel's
/// `RTPROT_*` list; it marks what routecfg owns and may garbage-collect.
pub const DEFAULT_PROTOCOL: u8 = 114;

/// `rtm_protocol` "boot": what the upstream Go controller's routes carry.
pub const PROTOCOL_BOOT: u8 = 3;

/// Address family of a rule or route.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Family {
    V4,
    V6,
}

impl Family {
    /// Family of an address.
    pub fn of(addr: IpAddr) -> Family {
        match addr {
            IpAddr::V4(_) => Family::V4,
            IpAddr::V6(_) => Family::V6,
        }
    }

    /// Family of a network.
    pub fn of_net(net: &IpNet) -> Family {
        Family::of(net.addr())
    }
}

impl fmt::Display for Family {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Family::V4 => "inet",
            Family::V6 => "inet6",
        })
    }
}

/// Route scope, with the kernel's numeric values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Scope {
    Global,
    Site,
    Link,
    Host,
    Nowhere,
}

impl Scope {
    /// The kernel's `rtm_scope` value.
    pub fn to_kernel(self) -> u8 {
        match self {
            Scope::Global => 0,
            Scope::Site => 200,
            Scope::Link => 253,
            Scope::Host => 254,
            Scope::Nowhere => 255,
        }
    }

    /// Maps a kernel `rtm_scope`; unknown user-defined values are `None`.
    pub fn from_kernel(v: u8) -> Option<Scope> {
        Some(match v {
            0 => Scope::Global,
            200 => Scope::Site,
            253 => Scope::Link,
            254 => Scope::Host,
            255 => Scope::Nowhere,
            _ => return None,
        })
    }

    /// Parses the CRD's scope names (`global|link|host|site|nowhere`).
    pub fn parse(name: &str) -> Option<Scope> {
        Some(match name {
            "global" | "universe" => Scope::Global,
            "site" => Scope::Site,
            "link" => Scope::Link,
            "host" => Scope::Host,
            "nowhere" => Scope::Nowhere,
            _ => return None,
        })
    }

    /// The name `ip route` prints.
    pub fn name(self) -> &'static str {
        match self {
            Scope::Global => "global",
            Scope::Site => "site",
            Scope::Link => "link",
            Scope::Host => "host",
            Scope::Nowhere => "nowhere",
        }
    }
}

/// A policy rule (`ip rule`) sending matching traffic to `table`.
///
/// `priority: None` in a desired rule means "whatever the kernel picks";
/// rules read from the kernel always carry their actual priority.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Rule {
    pub family: Family,
    pub table: u32,
    pub priority: Option<u32>,
    pub src: Option<IpNet>,
    pub dst: Option<IpNet>,
    pub iif: Option<String>,
    pub oif: Option<String>,
    pub fwmark: Option<u32>,
    pub protocol: u8,
}

impl Rule {
    /// The fields that identify a rule within one table (upstream's
    /// uniqueness key, plus the family); priority and protocol are not part
    /// of it.
    pub fn selector(&self) -> RuleSelector {
        RuleSelector {
            family: self.family,
            table: self.table,
            src: self.src,
            dst: self.dst,
            iif: self.iif.clone(),
            oif: self.oif.clone(),
            fwmark: self.fwmark,
        }
    }
}

/// Identity of a rule: what it matches and where it points.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RuleSelector {
    pub family: Family,
    pub table: u32,
    pub src: Option<IpNet>,
    pub dst: Option<IpNet>,
    pub iif: Option<String>,
    pub oif: Option<String>,
    pub fwmark: Option<u32>,
}

/// A unicast route in a policy routing table.
///
/// The kernel identifies a route by (table, dst, metric); routecfg never
/// sets a metric, so within one table `dst` is the identity and every other
/// field is an attribute that can be replaced in place.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Route {
    pub table: u32,
    pub dst: IpNet,
    pub gateway: Option<IpAddr>,
    pub prefsrc: Option<IpAddr>,
    /// Output interface name. In a desired route `None` lets the kernel
    /// pick the interface from the gateway; in a kernel route it is the
    /// interface the kernel chose (or `None` if unnamed).
    pub dev: Option<String>,
    pub onlink: bool,
    pub scope: Scope,
    pub protocol: u8,
    /// Metric; `None` in desired routes (kernel default), read back from
    /// kernel routes so deletes hit exactly the dumped route.
    pub metric: Option<u32>,
    /// Next hops of a multipath (ECMP) route, sorted so that two routes
    /// with the same next hops in another order are equal; empty for a
    /// plain route. A multipath route has no `gateway` or `dev` of its own.
    /// A desired route never holds exactly one: the kernel stores a single
    /// next hop as a plain route, so that is how routecfg models it.
    pub nexthops: NextHops,
}

/// The next hops of a route: one pointer wide, and no allocation when
/// empty, so the plain routes that make up nearly every table pay 8
/// bytes for the field instead of a `Vec`'s 24 (3 MB less at 100,000
/// routes, desired and dumped). Read it as a slice.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NextHops(
    // A thin pointer is the point: `Box<[NextHop]>` would be 16 bytes.
    #[allow(clippy::box_collection)] Option<Box<Vec<NextHop>>>,
);

impl NextHops {
    /// Sorts the next hops, so that order never makes two routes differ.
    pub fn sort(&mut self) {
        if let Some(v) = &mut self.0 {
            v.sort_unstable();
        }
    }
}

impl From<Vec<NextHop>> for NextHops {
    fn from(hops: Vec<NextHop>) -> NextHops {
        // Never `Some(empty)`: equality and ordering rely on it.
        NextHops((!hops.is_empty()).then(|| Box::new(hops)))
    }
}

impl std::ops::Deref for NextHops {
    type Target = [NextHop];
    fn deref(&self) -> &[NextHop] {
        self.0.as_deref().map_or(&[], Vec::as_slice)
    }
}

impl std::ops::DerefMut for NextHops {
    fn deref_mut(&mut self) -> &mut [NextHop] {
        self.0.as_deref_mut().map_or(&mut [], Vec::as_mut_slice)
    }
}

/// One next hop of a multipath route.
///
/// Names stay names as in [`Route`]; fields are optional because a kernel
/// route written by someone else may lack them (routecfg's own always
/// carry both).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NextHop {
    pub gateway: Option<IpAddr>,
    pub dev: Option<String>,
    /// The API's weight, which is the kernel's `rtnh_hops`: the kernel
    /// balances by `weight + 1` and `ip route` prints that.
    pub weight: u8,
    /// RTNH_F_ONLINK as the kernel reports it; routecfg never sets it.
    pub onlink: bool,
}

impl Route {
    pub fn family(&self) -> Family {
        Family::of_net(&self.dst)
    }

    /// Every gateway the route sends through: its own or its next hops'.
    pub fn gateways(&self) -> impl Iterator<Item = IpAddr> + '_ {
        self.gateway
            .into_iter()
            .chain(self.nexthops.iter().filter_map(|h| h.gateway))
    }

    /// Every interface the route needs: its own `dev` and its next hops'.
    pub fn devs(&self) -> impl Iterator<Item = &str> {
        self.dev
            .as_deref()
            .into_iter()
            .chain(self.nexthops.iter().filter_map(|h| h.dev.as_deref()))
    }
}

/// `nexthop via 10.1.0.2 dev a0 weight 1`, as `ip route` prints and reads
/// it: the weight shown is the kernel's, one more than the API's.
impl fmt::Display for NextHop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("nexthop")?;
        if let Some(gw) = self.gateway {
            write!(f, " via {gw}")?;
        }
        if let Some(dev) = &self.dev {
            write!(f, " dev {dev}")?;
        }
        write!(f, " weight {}", u16::from(self.weight) + 1)?;
        if self.onlink {
            f.write_str(" onlink")?;
        }
        Ok(())
    }
}

/// The state routecfg wants for one kernel table, built from one valid
/// RouteConfiguration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Table {
    pub id: u32,
    pub name: String,
    /// `namespace/name` of the object that owns this table, for messages.
    pub owner: String,
    pub rules: Vec<Rule>,
    pub routes: Vec<Route>,
}

/// What the kernel holds that is relevant to routecfg: every rule (any
/// table, filtered by the caller as needed), the routes of the tables that
/// were asked for, and the link names that exist right now.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Snapshot {
    pub rules: Vec<Rule>,
    /// Routes of the dumped tables only.
    pub routes: Vec<Route>,
    /// Tables whose routes were dumped: a table absent here is "unknown",
    /// not "empty".
    pub dumped_tables: Vec<u32>,
    /// Names of the links present, for pending-route detection.
    pub links: Vec<String>,
}

/// One kernel change. Deletes carry the object exactly as dumped, so the
/// kernel matches it (a rebuilt route can miss its scope or metric).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Op {
    AddRule(Rule),
    DelRule(Rule),
    /// Create-or-replace (NLM_F_CREATE | NLM_F_REPLACE): never a gap.
    ReplaceRoute(Route),
    DelRoute(Route),
}

impl Op {
    /// The table the change touches.
    pub fn table(&self) -> u32 {
        match self {
            Op::AddRule(r) | Op::DelRule(r) => r.table,
            Op::ReplaceRoute(r) | Op::DelRoute(r) => r.table,
        }
    }
}

#[cfg(test)]
mod next_hops_tests {
    use super::*;

    fn hop(gw: &str, weight: u8) -> NextHop {
        NextHop {
            gateway: Some(gw.parse().unwrap()),
            dev: Some("a0".into()),
            weight,
            onlink: false,
        }
    }

    #[test]
    fn next_hops_are_one_pointer_and_empty_is_one_value() {
        assert_eq!(
            std::mem::size_of::<NextHops>(),
            std::mem::size_of::<usize>()
        );
        assert_eq!(NextHops::from(Vec::new()), NextHops::default());
        assert!(NextHops::default().is_empty());
    }

    #[test]
    fn sorting_makes_order_irrelevant_and_keeps_duplicates() {
        let mut a = NextHops::from(vec![
            hop("10.0.0.2", 1),
            hop("10.0.0.1", 0),
            hop("10.0.0.1", 0),
        ]);
        let mut b = NextHops::from(vec![
            hop("10.0.0.1", 0),
            hop("10.0.0.2", 1),
            hop("10.0.0.1", 0),
        ]);
        assert_ne!(a, b);
        a.sort();
        b.sort();
        assert_eq!(a, b);
        assert_eq!(a.len(), 3);
        a[0].weight = 9;
        assert_eq!(a[0].weight, 9);
    }

    #[test]
    fn next_hops_print_the_kernel_weight() {
        assert_eq!(
            hop("10.0.0.1", 0).to_string(),
            "nexthop via 10.0.0.1 dev a0 weight 1"
        );
        let h = NextHop {
            onlink: true,
            ..hop("fd00::1", 255)
        };
        assert_eq!(
            h.to_string(),
            "nexthop via fd00::1 dev a0 weight 256 onlink"
        );
    }
}
