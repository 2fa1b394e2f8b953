//! Routes <-> RTM_*ROUTE messages. Tables above 255 only fit the
//! RTA_TABLE attribute, so it is always written and always read.

use super::socket::align4;
use crate::routing::{NextHop, Route, Scope};
use ipnet::IpNet;
use netlink_packet_core::{DecodeError, NLA_HEADER_SIZE, NLA_TYPE_MASK, Parseable, parse_u32};
use netlink_packet_route::AddressFamily;
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteFlags, RouteHeader, RouteMessage, RouteNextHop,
    RouteNextHopFlags, RouteProtocol, RouteScope, RouteType, RouteVia,
};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

pub(crate) const RTM_NEWROUTE: u16 = 24;
pub(crate) const RTM_DELROUTE: u16 = 25;
pub(crate) const RTM_GETROUTE: u16 = 26;

/// Which routes a dump returns; the kernel applies it (strict checking).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RouteFilter {
    pub table: Option<u32>,
    pub protocol: Option<u8>,
}

impl RouteFilter {
    /// Whether a route passes; the kernel already filtered, this guards
    /// against kernels that silently ignore filters.
    pub fn matches(&self, r: &Route) -> bool {
        self.table.is_none_or(|t| t == r.table) && self.protocol.is_none_or(|p| p == r.protocol)
    }
}

/// A route as read from the kernel, its output interface still an index.
#[cfg(test)]
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct RawRoute {
    pub route: Route,
    pub oif: Option<u32>,
    pub hop_oifs: Vec<u32>,
}

pub(crate) fn family(addr: IpAddr) -> AddressFamily {
    match addr {
        IpAddr::V4(_) => AddressFamily::Inet,
        IpAddr::V6(_) => AddressFamily::Inet6,
    }
}

fn header_table(table: u32) -> u8 {
    u8::try_from(table).unwrap_or(0)
}

/// The message adding, replacing or deleting `r`; `oif` is the index of
/// `r.dev` and `hop_oifs[i]` that of `r.nexthops[i].dev` (0: none).
/// Deletes send everything the dump returned so the kernel matches
/// exactly that route (scope, metric and protocol included).
///
/// Next hops go in one RTA_MULTIPATH with `rtnh_hops` = the API weight,
/// so the kernel balances by weight + 1, as upstream's controller does.
pub(crate) fn route_message(r: &Route, oif: Option<u32>, hop_oifs: &[u32]) -> RouteMessage {
    let mut msg = RouteMessage::default();
    let h = &mut msg.header;
    h.address_family = family(r.dst.addr());
    h.destination_prefix_length = r.dst.prefix_len();
    h.table = header_table(r.table);
    h.protocol = RouteProtocol::from(r.protocol);
    h.scope = RouteScope::from(r.scope.to_kernel());
    h.kind = RouteType::Unicast;
    if r.onlink {
        h.flags = RouteFlags::Onlink;
    }
    let a = &mut msg.attributes;
    if r.dst.prefix_len() > 0 {
        a.push(RouteAttribute::Destination(r.dst.addr().into()));
    }
    a.push(RouteAttribute::Table(r.table));
    if let Some(gw) = r.gateway {
        a.push(gateway_attribute(gw, r.dst.addr()));
    }
    if !r.nexthops.is_empty() {
        let hops = r.nexthops.iter().enumerate().map(|(i, h)| {
            let mut nh = RouteNextHop::default();
            if h.onlink {
                nh.flags = RouteNextHopFlags::Onlink;
            }
            nh.hops = h.weight;
            nh.interface_index = hop_oifs.get(i).copied().unwrap_or(0);
            nh.attributes = h
                .gateway
                .map(|gw| gateway_attribute(gw, r.dst.addr()))
                .into_iter()
                .collect();
            nh
        });
        a.push(RouteAttribute::MultiPath(hops.collect()));
    }
    if let Some(src) = r.prefsrc {
        a.push(RouteAttribute::PrefSource(src.into()));
    }
    if let Some(oif) = oif {
        a.push(RouteAttribute::Oif(oif));
    }
    if let Some(m) = r.metric {
        a.push(RouteAttribute::Priority(m));
    }
    msg
}

/// RTA_GATEWAY, or RTA_VIA for an IPv4 route via an IPv6 next hop
/// (RFC 5549).
fn gateway_attribute(gw: IpAddr, dst: IpAddr) -> RouteAttribute {
    if family(gw) == family(dst) {
        RouteAttribute::Gateway(gw.into())
    } else {
        RouteAttribute::Via(match gw {
            IpAddr::V4(v) => RouteVia::Inet(v),
            IpAddr::V6(v) => RouteVia::Inet6(v),
        })
    }
}

/// A dump request for one family, filtered by the kernel.
pub(crate) fn dump_request(family: AddressFamily, filter: RouteFilter) -> RouteMessage {
    let mut msg = RouteMessage::default();
    msg.header.address_family = family;
    // RTN_UNICAST: the kernel skips local, broadcast, multicast, ... routes.
    msg.header.kind = RouteType::Unicast;
    if let Some(p) = filter.protocol {
        msg.header.protocol = RouteProtocol::from(p);
    }
    if let Some(t) = filter.table {
        msg.attributes.push(RouteAttribute::Table(t));
    }
    msg
}

/// An `ip route get` request. `iif` is an ifindex.
pub(crate) fn get_request(
    dst: IpAddr,
    src: Option<IpAddr>,
    iif: Option<u32>,
    fwmark: Option<u32>,
) -> RouteMessage {
    let mut msg = RouteMessage::default();
    let full = match dst {
        IpAddr::V4(_) => 32,
        IpAddr::V6(_) => 128,
    };
    msg.header.address_family = family(dst);
    msg.header.destination_prefix_length = full;
    if dst.is_ipv4() {
        // Report the table the answer came from, not "main". IPv6 always
        // reports it and refuses the flag under strict checking.
        msg.header.flags = RouteFlags::LookupTable;
    }
    msg.attributes.push(RouteAttribute::Destination(dst.into()));
    if let Some(src) = src {
        msg.header.source_prefix_length = full;
        msg.attributes.push(RouteAttribute::Source(src.into()));
    }
    if let Some(iif) = iif {
        msg.attributes.push(RouteAttribute::Iif(iif));
    }
    if let Some(mark) = fwmark {
        msg.attributes.push(RouteAttribute::Mark(mark));
    }
    msg
}

/// A `route get` with `RTM_F_FIB_MATCH`: the kernel answers with the
/// routing entry the lookup matched (prefix, table, type, scope, protocol)
/// instead of the resulting cached destination. `oif` is an ifindex.
pub(crate) fn fib_match_request(
    dst: IpAddr,
    src: Option<IpAddr>,
    iif: Option<u32>,
    oif: Option<u32>,
    fwmark: Option<u32>,
) -> RouteMessage {
    let mut msg = get_request(dst, src, iif, fwmark);
    msg.header.flags |= RouteFlags::FibMatch;
    if let Some(oif) = oif {
        msg.attributes.push(RouteAttribute::Oif(oif));
    }
    msg
}

/// The routing entry a lookup matched, as `ip route get fibmatch` shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RouteMatch {
    pub table: u32,
    pub dst: IpNet,
    /// `unicast`, `local`, `blackhole`, `unreachable`, ... as `ip` names it.
    pub kind: &'static str,
    pub gateway: Option<IpAddr>,
    pub dev: Option<String>,
    pub scope: u8,
    pub protocol: u8,
    pub prefsrc: Option<IpAddr>,
    pub metric: Option<u32>,
}

/// A fib-match answer, its device still an index.
pub(crate) fn parse_match_reply(payload: &[u8]) -> Result<(RouteMatch, Option<u32>), DecodeError> {
    let msg = RouteMessage::parse(payload)?;
    let h = &msg.header;
    let zero = match h.address_family {
        AddressFamily::Inet6 => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
        _ => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
    };
    let mut dst = zero;
    let mut got = RouteMatch {
        table: table_of(&msg),
        dst: IpNet::from(zero),
        kind: kind_name(h.kind),
        gateway: None,
        dev: None,
        scope: u8::from(h.scope),
        protocol: u8::from(h.protocol),
        prefsrc: None,
        metric: None,
    };
    let mut oif = None;
    for a in &msg.attributes {
        match a {
            RouteAttribute::Destination(d) => dst = address(d).unwrap_or(zero),
            RouteAttribute::Gateway(g) => got.gateway = address(g),
            RouteAttribute::Via(RouteVia::Inet(v)) => got.gateway = Some(IpAddr::V4(*v)),
            RouteAttribute::Via(RouteVia::Inet6(v)) => got.gateway = Some(IpAddr::V6(*v)),
            RouteAttribute::PrefSource(s) => got.prefsrc = address(s),
            RouteAttribute::Oif(i) => oif = Some(*i),
            RouteAttribute::Priority(m) => got.metric = Some(*m),
            _ => {}
        }
    }
    got.dst = IpNet::new(dst, h.destination_prefix_length)
        .map_err(|_| DecodeError::from(format!("prefix length {}", h.destination_prefix_length)))?;
    Ok((got, oif))
}

/// `ip`'s name of a route type.
fn kind_name(kind: RouteType) -> &'static str {
    match kind {
        RouteType::Unicast => "unicast",
        RouteType::Local => "local",
        RouteType::Broadcast => "broadcast",
        RouteType::Anycast => "anycast",
        RouteType::Multicast => "multicast",
        RouteType::BlackHole => "blackhole",
        RouteType::Unreachable => "unreachable",
        RouteType::Prohibit => "prohibit",
        RouteType::Throw => "throw",
        RouteType::Nat => "nat",
        _ => "unknown",
    }
}

fn address(a: &RouteAddress) -> Option<IpAddr> {
    match a {
        RouteAddress::Inet(v) => Some(IpAddr::V4(*v)),
        RouteAddress::Inet6(v) => Some(IpAddr::V6(*v)),
        _ => None,
    }
}

/// Table of a route message: the attribute if present (the header says
/// 252 for large ids), else the header.
pub(crate) fn table_of(msg: &RouteMessage) -> u32 {
    msg.attributes
        .iter()
        .find_map(|a| match a {
            RouteAttribute::Table(t) => Some(*t),
            _ => None,
        })
        .unwrap_or(u32::from(msg.header.table))
}

// Attribute numbers the dump parser reads (linux/rtnetlink.h).
const RTA_DST: u16 = 1;
const RTA_OIF: u16 = 4;
const RTA_GATEWAY: u16 = 5;
const RTA_PRIORITY: u16 = 6;
const RTA_MULTIPATH: u16 = 9;
const RTA_PREFSRC: u16 = 7;
const RTA_TABLE: u16 = 15;
const RTA_VIA: u16 = 18;
const ROUTE_HEADER_LEN: usize = 12;
/// `struct rtnexthop`: len u16, flags u8, hops u8, ifindex i32.
const RTNH_LEN: usize = 8;
const RTNH_F_ONLINK: u8 = 4;

/// An address attribute's value: 4 or 16 bytes.
fn raw_ip(v: &[u8]) -> Result<IpAddr, DecodeError> {
    if let Ok(b) = <[u8; 4]>::try_from(v) {
        Ok(IpAddr::from(b))
    } else if let Ok(b) = <[u8; 16]>::try_from(v) {
        Ok(IpAddr::from(b))
    } else {
        Err(DecodeError::from(format!(
            "address attribute of {} bytes",
            v.len()
        )))
    }
}

/// An RTA_VIA value: a u16 family, then the address.
fn raw_via(v: &[u8]) -> Result<IpAddr, DecodeError> {
    v.get(2..)
        .ok_or_else(|| DecodeError::from("short RTA_VIA"))
        .and_then(raw_ip)
}

/// What [`push_route`] did with a message.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Parsed {
    /// Not a plain IPv4/IPv6 unicast route (local, broadcast, cached
    /// clone, ...) or not expressible as a `Route`: nothing appended.
    Skipped,
    /// Appended; the route's output interface index and its next hops'
    /// (one per next hop, 0 for none), to name.
    Pushed {
        oif: Option<u32>,
        hop_oifs: Vec<u32>,
    },
}

/// Parses a dumped route and appends it to `out`.
///
/// Dumps are the hot path of a no-op reconcile: this reads only the
/// attributes a `Route` holds instead of building a full `RouteMessage`,
/// and fills the route in place instead of moving it around (measured
/// about twice as fast on 10k routes).
pub(crate) fn push_route(payload: &[u8], out: &mut Vec<Route>) -> Result<Parsed, DecodeError> {
    let h = RouteHeader::parse(payload)?;
    if h.kind != RouteType::Unicast || h.flags.contains(RouteFlags::Cloned) {
        return Ok(Parsed::Skipped);
    }
    let unspecified = match h.address_family {
        AddressFamily::Inet => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        AddressFamily::Inet6 => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
        _ => return Ok(Parsed::Skipped),
    };
    let Some(scope) = Scope::from_kernel(u8::from(h.scope)) else {
        log::debug!(
            "skipping route with user-defined scope {}",
            u8::from(h.scope)
        );
        return Ok(Parsed::Skipped);
    };
    let Ok(dst) = IpNet::new(unspecified, h.destination_prefix_length) else {
        return Err(DecodeError::from(format!(
            "prefix length {}",
            h.destination_prefix_length
        )));
    };
    out.push(Route {
        table: u32::from(h.table),
        dst,
        gateway: None,
        prefsrc: None,
        dev: None,
        onlink: h.flags.contains(RouteFlags::Onlink),
        scope,
        protocol: u8::from(h.protocol),
        metric: None,
        nexthops: Default::default(),
    });
    let mut hop_oifs = Vec::new();
    let filled = fill_attributes(
        &payload[ROUTE_HEADER_LEN..],
        h.destination_prefix_length,
        out,
        &mut hop_oifs,
    );
    if filled.is_err() {
        out.pop();
    }
    filled.map(|oif| Parsed::Pushed { oif, hop_oifs })
}

/// Reads the attributes of the route just pushed into it, in place.
fn fill_attributes(
    attrs: &[u8],
    prefix_len: u8,
    out: &mut [Route],
    hop_oifs: &mut Vec<u32>,
) -> Result<Option<u32>, DecodeError> {
    let Some(r) = out.last_mut() else {
        return Ok(None);
    };
    let mut oif = None;
    // A plain loop rather than `NlasIterator`: this runs for every
    // attribute of every dumped route.
    let mut rest = attrs;
    while rest.len() >= NLA_HEADER_SIZE {
        let len = usize::from(u16::from_ne_bytes([rest[0], rest[1]]));
        let kind = u16::from_ne_bytes([rest[2], rest[3]]) & NLA_TYPE_MASK;
        if len < NLA_HEADER_SIZE || len > rest.len() {
            return Err(DecodeError::from(format!(
                "attribute length {len} of {} bytes",
                rest.len()
            )));
        }
        let v = &rest[NLA_HEADER_SIZE..len];
        rest = &rest[align4(len).min(rest.len())..];
        match kind {
            RTA_DST => {
                let dst = raw_ip(v)?;
                if dst.is_ipv4() != r.dst.addr().is_ipv4() {
                    return Err(DecodeError::from(format!(
                        "destination {dst} of another family"
                    )));
                }
                r.dst = IpNet::new(dst, prefix_len).map_err(|_| {
                    DecodeError::from(format!("prefix length {prefix_len} for {dst}"))
                })?;
            }
            RTA_TABLE => r.table = parse_u32(v)?,
            RTA_GATEWAY => r.gateway = Some(raw_ip(v)?),
            RTA_VIA => r.gateway = Some(raw_via(v)?),
            RTA_PREFSRC => r.prefsrc = Some(raw_ip(v)?),
            RTA_OIF => oif = Some(parse_u32(v)?),
            RTA_PRIORITY => r.metric = Some(parse_u32(v)?),
            RTA_MULTIPATH => {
                let mut hops = Vec::new();
                parse_next_hops(v, &mut hops, hop_oifs)?;
                r.nexthops = hops.into();
            }
            // Everything else (cache info, metrics, preference) is not
            // part of a `Route`.
            _ => {}
        }
    }
    Ok(oif)
}

/// Reads an RTA_MULTIPATH value: `rtnexthop` entries, each followed by
/// its own attributes. Devices are left for the caller to name from
/// `hop_oifs`, which gets one index per next hop.
fn parse_next_hops(
    mut v: &[u8],
    hops: &mut Vec<NextHop>,
    hop_oifs: &mut Vec<u32>,
) -> Result<(), DecodeError> {
    while v.len() >= RTNH_LEN {
        let len = usize::from(u16::from_ne_bytes([v[0], v[1]]));
        if len < RTNH_LEN || len > v.len() {
            return Err(DecodeError::from(format!(
                "next hop length {len} of {} bytes",
                v.len()
            )));
        }
        let mut hop = NextHop {
            gateway: None,
            dev: None,
            weight: v[3],
            onlink: v[2] & RTNH_F_ONLINK != 0,
        };
        hop_oifs.push(u32::from_ne_bytes([v[4], v[5], v[6], v[7]]));
        let mut attrs = &v[RTNH_LEN..len];
        while attrs.len() >= NLA_HEADER_SIZE {
            let alen = usize::from(u16::from_ne_bytes([attrs[0], attrs[1]]));
            let kind = u16::from_ne_bytes([attrs[2], attrs[3]]) & NLA_TYPE_MASK;
            if alen < NLA_HEADER_SIZE || alen > attrs.len() {
                return Err(DecodeError::from(format!(
                    "next hop attribute length {alen} of {} bytes",
                    attrs.len()
                )));
            }
            let value = &attrs[NLA_HEADER_SIZE..alen];
            match kind {
                RTA_GATEWAY => hop.gateway = Some(raw_ip(value)?),
                RTA_VIA => hop.gateway = Some(raw_via(value)?),
                _ => {}
            }
            attrs = &attrs[align4(alen).min(attrs.len())..];
        }
        hops.push(hop);
        v = &v[align4(len).min(v.len())..];
    }
    Ok(())
}

/// [`push_route`] for a single message.
#[cfg(test)]
pub(crate) fn parse_route(payload: &[u8]) -> Result<Option<RawRoute>, DecodeError> {
    let mut out = Vec::new();
    Ok(match push_route(payload, &mut out)? {
        Parsed::Skipped => None,
        Parsed::Pushed { oif, hop_oifs } => out.pop().map(|route| RawRoute {
            route,
            oif,
            hop_oifs,
        }),
    })
}

/// What `ip route get` answered: the table the lookup ended in, and where
/// the packet goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RouteGet {
    pub table: u32,
    pub gateway: Option<IpAddr>,
    pub dev: Option<String>,
    pub prefsrc: Option<IpAddr>,
}

/// A route-get answer, its device still an index.
pub(crate) fn parse_get_reply(payload: &[u8]) -> Result<(RouteGet, Option<u32>), DecodeError> {
    let msg = RouteMessage::parse(payload)?;
    let mut got = RouteGet {
        table: table_of(&msg),
        gateway: None,
        dev: None,
        prefsrc: None,
    };
    let mut oif = None;
    for a in &msg.attributes {
        match a {
            RouteAttribute::Gateway(g) => got.gateway = address(g),
            RouteAttribute::Via(RouteVia::Inet(v)) => got.gateway = Some(IpAddr::V4(*v)),
            RouteAttribute::Via(RouteVia::Inet6(v)) => got.gateway = Some(IpAddr::V6(*v)),
            RouteAttribute::PrefSource(s) => got.prefsrc = address(s),
            RouteAttribute::Oif(i) => oif = Some(*i),
            _ => {}
        }
    }
    Ok((got, oif))
}

/// Table and protocol of a route event, `None` for cached clones.
pub(crate) fn event_fields(payload: &[u8]) -> Result<Option<(u32, u8)>, DecodeError> {
    let msg = RouteMessage::parse(payload)?;
    if msg.header.flags.contains(RouteFlags::Cloned) {
        return Ok(None);
    }
    Ok(Some((table_of(&msg), u8::from(msg.header.protocol))))
}

#[cfg(test)]
mod tests {
    use super::*;
    use netlink_packet_core::Emitable;

    fn parse(msg: &RouteMessage) -> Option<RawRoute> {
        let mut buf = vec![0; msg.buffer_len()];
        msg.emit(&mut buf);
        parse_route(&buf).unwrap()
    }

    fn round_trip(r: &Route, oif: Option<u32>) -> RawRoute {
        parse(&route_message(r, oif, &[])).unwrap()
    }

    fn route(dst: &str) -> Route {
        Route {
            table: 210412509,
            dst: dst.parse().unwrap(),
            gateway: None,
            prefsrc: None,
            dev: None,
            onlink: false,
            scope: Scope::Global,
            protocol: 114,
            metric: None,
            nexthops: Default::default(),
        }
    }

    #[test]
    fn ipv4_route_round_trips_with_large_table() {
        let r = Route {
            gateway: Some("10.80.0.2".parse().unwrap()),
            prefsrc: Some("10.80.0.1".parse().unwrap()),
            onlink: true,
            metric: Some(7),
            nexthops: Default::default(),
            ..route("10.60.0.0/24")
        };
        let got = round_trip(&r, Some(42));
        assert_eq!(got.oif, Some(42));
        assert_eq!(got.route, r);
        let msg = route_message(&r, Some(42), &[]);
        assert_eq!(msg.header.table, 0, "ids above 255 only go in RTA_TABLE");
    }

    #[test]
    fn small_table_goes_in_header_too() {
        let r = Route {
            table: 100,
            ..route("10.0.0.0/8")
        };
        assert_eq!(route_message(&r, None, &[]).header.table, 100);
        assert_eq!(round_trip(&r, None).route, r);
    }

    #[test]
    fn ipv6_and_scope_link_round_trip() {
        let r = Route {
            gateway: Some("fd00::1".parse().unwrap()),
            scope: Scope::Link,
            protocol: 3,
            ..route("fd10::/64")
        };
        assert_eq!(round_trip(&r, Some(3)).route, r);
    }

    #[test]
    fn default_route_has_no_destination_attribute() {
        let r = Route {
            gateway: Some("10.0.0.1".parse().unwrap()),
            ..route("0.0.0.0/0")
        };
        let msg = route_message(&r, None, &[]);
        assert!(
            !msg.attributes
                .iter()
                .any(|a| matches!(a, RouteAttribute::Destination(_)))
        );
        assert_eq!(round_trip(&r, None).route, r);
    }

    #[test]
    fn multipath_round_trips_with_weights_as_rtnh_hops() {
        let hop = |gw: &str, weight: u8, onlink: bool| NextHop {
            gateway: Some(gw.parse().unwrap()),
            dev: None,
            weight,
            onlink,
        };
        for (dst, hops) in [
            (
                "10.8.0.0/16",
                vec![hop("10.1.0.2", 0, false), hop("10.1.0.3", 255, true)],
            ),
            (
                "fd33::/64",
                vec![hop("fd01::2", 7, false), hop("fd02::2", 0, false)],
            ),
            // RFC 5549: IPv4 via IPv6 next hops go in RTA_VIA.
            (
                "10.9.0.0/16",
                vec![hop("fe80::1", 1, false), hop("fe80::2", 2, false)],
            ),
        ] {
            let r = Route {
                nexthops: hops.into(),
                ..route(dst)
            };
            let msg = route_message(&r, None, &[5, 6]);
            let Some(RouteAttribute::MultiPath(sent)) = msg
                .attributes
                .iter()
                .find(|a| matches!(a, RouteAttribute::MultiPath(_)))
            else {
                panic!("no RTA_MULTIPATH in {msg:?}");
            };
            let weights: Vec<u8> = sent.iter().map(|h| h.hops).collect();
            let want: Vec<u8> = r.nexthops.iter().map(|h| h.weight).collect();
            assert_eq!(weights, want);
            assert!(
                !msg.attributes
                    .iter()
                    .any(|a| matches!(a, RouteAttribute::Gateway(_) | RouteAttribute::Oif(_)))
            );
            let got = parse(&msg).unwrap();
            assert_eq!(got.route, r);
            assert_eq!((got.oif, got.hop_oifs), (None, vec![5, 6]));
        }
    }

    #[test]
    fn truncated_next_hops_are_rejected() {
        let r = Route {
            nexthops: vec![NextHop {
                gateway: Some("10.1.0.2".parse().unwrap()),
                dev: None,
                weight: 0,
                onlink: false,
            }]
            .into(),
            ..route("10.8.0.0/16")
        };
        let msg = route_message(&r, None, &[1]);
        let mut buf = vec![0; msg.buffer_len()];
        msg.emit(&mut buf);
        // The rtnexthop's own length, past the end of RTA_MULTIPATH.
        let at = buf
            .windows(4)
            .position(|w| w == [20, 0, 9, 0])
            .expect("RTA_MULTIPATH header");
        buf[at + 4] = 200;
        assert!(parse_route(&buf).is_err());
    }

    #[test]
    fn ipv6_next_hop_for_ipv4_route_uses_via() {
        let r = Route {
            gateway: Some("fe80::1".parse().unwrap()),
            ..route("10.1.0.0/16")
        };
        let msg = route_message(&r, Some(2), &[]);
        assert!(
            msg.attributes
                .iter()
                .any(|a| matches!(a, RouteAttribute::Via(_)))
        );
        assert_eq!(round_trip(&r, Some(2)).route, r);
    }

    #[test]
    fn non_unicast_and_cloned_are_skipped() {
        let mut msg = route_message(&route("10.0.0.1/32"), None, &[]);
        msg.header.kind = RouteType::Local;
        assert!(parse(&msg).is_none());
        let mut msg = route_message(&route("fd00::1/128"), None, &[]);
        msg.header.flags = RouteFlags::Cloned;
        assert!(parse(&msg).is_none());
    }

    #[test]
    fn header_table_252_defers_to_attribute() {
        let mut msg = route_message(&route("10.0.0.0/8"), None, &[]);
        msg.header.table = 252;
        assert_eq!(parse(&msg).unwrap().route.table, 210412509);
    }

    #[test]
    fn extra_attributes_are_ignored_and_bad_addresses_rejected() {
        let mut msg = route_message(&route("10.0.0.0/8"), Some(1), &[]);
        msg.attributes.push(RouteAttribute::Mark(3));
        assert_eq!(parse(&msg).unwrap().route, route("10.0.0.0/8"));
        let mut msg = route_message(&route("10.0.0.0/8"), None, &[]);
        msg.attributes
            .push(RouteAttribute::Gateway(RouteAddress::Other(vec![1, 2, 3])));
        let mut buf = vec![0; msg.buffer_len()];
        msg.emit(&mut buf);
        assert!(parse_route(&buf).is_err());
        // An attribute claiming more bytes than the message has.
        let msg = route_message(&route("10.0.0.0/8"), Some(1), &[]);
        let mut buf = vec![0; msg.buffer_len()];
        msg.emit(&mut buf);
        buf[12] = 200;
        assert!(parse_route(&buf).is_err());
    }

    #[test]
    fn dump_request_filters() {
        let m = dump_request(
            AddressFamily::Inet6,
            RouteFilter {
                table: Some(300),
                protocol: Some(114),
            },
        );
        assert_eq!(m.header.kind, RouteType::Unicast);
        assert_eq!(u8::from(m.header.protocol), 114);
        assert_eq!(m.header.table, 0);
        assert_eq!(m.attributes, vec![RouteAttribute::Table(300)]);
    }

    #[test]
    fn filter_matches_in_userspace() {
        let f = RouteFilter {
            table: Some(5),
            protocol: None,
        };
        assert!(f.matches(&Route {
            table: 5,
            ..route("10.0.0.0/8")
        }));
        assert!(!f.matches(&Route {
            table: 6,
            ..route("10.0.0.0/8")
        }));
        let f = RouteFilter {
            table: None,
            protocol: Some(3),
        };
        assert!(!f.matches(&route("10.0.0.0/8")));
    }
}
