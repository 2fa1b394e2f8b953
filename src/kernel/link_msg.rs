//! Links and addresses: the name <-> ifindex cache routes need, and the
//! few link changes the self-contained demo makes (veth pairs, addresses,
//! up).

use ipnet::IpNet;
use netlink_packet_core::{DecodeError, Parseable};
use netlink_packet_route::address::{
    AddressAttribute, AddressFlags, AddressHeaderFlags, AddressMessage,
};
use netlink_packet_route::link::{
    InfoData, InfoKind, InfoVeth, LinkAttribute, LinkFlags, LinkInfo, LinkMessage,
};
use std::collections::HashMap;

pub(crate) const RTM_NEWLINK: u16 = 16;
pub(crate) const RTM_DELLINK: u16 = 17;
pub(crate) const RTM_GETLINK: u16 = 18;
pub(crate) const RTM_NEWADDR: u16 = 20;

/// A network interface as routes and rules see it.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Link {
    pub index: u32,
    pub name: String,
    /// Administratively up (IFF_UP).
    pub up: bool,
}

/// Parses a link message payload.
pub(crate) fn parse_link(payload: &[u8]) -> Result<Link, DecodeError> {
    let msg = LinkMessage::parse(payload)?;
    let name = msg
        .attributes
        .iter()
        .find_map(|a| match a {
            LinkAttribute::IfName(n) => Some(n.clone()),
            _ => None,
        })
        .ok_or_else(|| DecodeError::from("link message without IFLA_IFNAME"))?;
    Ok(Link {
        index: msg.header.index,
        name,
        up: msg.header.flags.contains(LinkFlags::Up),
    })
}

/// Link names in both directions. Refreshed by a link dump; a route
/// naming an unknown device triggers one refresh before failing.
#[derive(Default)]
pub(crate) struct LinkCache {
    by_index: HashMap<u32, String>,
    by_name: HashMap<String, u32>,
    /// An ENODEV came back: some cached index may be stale (a link was
    /// deleted and re-created under the same name).
    pub stale: bool,
}

impl LinkCache {
    pub fn replace(&mut self, links: &[Link]) {
        self.by_index.clear();
        self.by_name.clear();
        for l in links {
            self.by_index.insert(l.index, l.name.clone());
            self.by_name.insert(l.name.clone(), l.index);
        }
        self.stale = false;
    }

    pub fn index(&self, name: &str) -> Option<u32> {
        self.by_name.get(name).copied()
    }

    pub fn name(&self, index: u32) -> Option<&str> {
        self.by_index.get(&index).map(String::as_str)
    }
}

pub(crate) fn dump_request() -> LinkMessage {
    LinkMessage::default()
}

/// RTM_NEWLINK creating the veth pair `name` <-> `peer`.
pub(crate) fn veth_message(name: &str, peer: &str) -> LinkMessage {
    let mut peer_msg = LinkMessage::default();
    peer_msg
        .attributes
        .push(LinkAttribute::IfName(peer.to_string()));
    let mut msg = LinkMessage::default();
    msg.attributes.push(LinkAttribute::IfName(name.to_string()));
    msg.attributes.push(LinkAttribute::LinkInfo(vec![
        LinkInfo::Kind(InfoKind::Veth),
        LinkInfo::Data(InfoData::Veth(InfoVeth::Peer(peer_msg))),
    ]));
    msg
}

/// RTM_NEWLINK setting IFF_UP on link `index`.
pub(crate) fn up_message(index: u32) -> LinkMessage {
    let mut msg = LinkMessage::default();
    msg.header.index = index;
    msg.header.flags = LinkFlags::Up;
    msg.header.change_mask = LinkFlags::Up;
    msg
}

/// RTM_NEWADDR for `addr` on link `index`. IPv6 addresses skip duplicate
/// address detection so they are usable at once (the demo and the tests
/// route through them right away).
pub(crate) fn address_message(index: u32, addr: IpNet) -> AddressMessage {
    let mut msg = AddressMessage::default();
    msg.header.family = super::route_msg::family(addr.addr());
    msg.header.prefix_len = addr.prefix_len();
    msg.header.index = index;
    msg.attributes.push(AddressAttribute::Local(addr.addr()));
    msg.attributes.push(AddressAttribute::Address(addr.addr()));
    if addr.addr().is_ipv6() {
        msg.header.flags = AddressHeaderFlags::Nodad;
        msg.attributes
            .push(AddressAttribute::Flags(AddressFlags::Nodad));
    }
    msg
}

#[cfg(test)]
mod tests {
    use super::*;
    use netlink_packet_core::Emitable;

    #[test]
    fn veth_message_parses_back_with_both_names() {
        let msg = veth_message("a0", "b0");
        let mut buf = vec![0; msg.buffer_len()];
        msg.emit(&mut buf);
        let back = LinkMessage::parse(&buf).unwrap();
        assert_eq!(back, msg);
        assert_eq!(parse_link(&buf).unwrap().name, "a0");
    }

    #[test]
    fn up_message_sets_only_up() {
        let msg = up_message(9);
        let mut buf = vec![0; msg.buffer_len()];
        msg.emit(&mut buf);
        let back = LinkMessage::parse(&buf).unwrap();
        assert_eq!(back.header.index, 9);
        assert_eq!(back.header.change_mask, LinkFlags::Up);
        assert!(parse_link(&buf).is_err(), "no name: not a dumped link");
    }

    #[test]
    fn cache_both_directions() {
        let mut c = LinkCache {
            stale: true,
            ..LinkCache::default()
        };
        c.replace(&[Link {
            index: 3,
            name: "x".into(),
            up: true,
        }]);
        assert_eq!(c.index("x"), Some(3));
        assert_eq!(c.name(3), Some("x"));
        assert_eq!(c.index("y"), None);
        assert!(!c.stale);
    }

    #[test]
    fn address_message_families() {
        let m = address_message(2, "fd00::1/64".parse().unwrap());
        assert_eq!(m.header.prefix_len, 64);
        assert!(m.header.flags.contains(AddressHeaderFlags::Nodad));
        let m = address_message(2, "10.0.0.1/24".parse().unwrap());
        assert_eq!(m.attributes.len(), 2);
    }
}
