//! Rules <-> RTM_*RULE messages. Only "lookup TABLE" rules whose every
//! selector `Rule` can express are read back, so comparing a dumped rule
//! with a desired one compares everything the kernel matches on.

use crate::routing::{Family, Rule};
use ipnet::IpNet;
use netlink_packet_core::{DecodeError, Parseable};
use netlink_packet_route::AddressFamily;
use netlink_packet_route::route::RouteProtocol;
use netlink_packet_route::rule::{RuleAction, RuleAttribute, RuleFlags, RuleMessage};
use std::net::IpAddr;

pub(crate) const RTM_NEWRULE: u16 = 32;
pub(crate) const RTM_DELRULE: u16 = 33;
pub(crate) const RTM_GETRULE: u16 = 34;

/// The mask the kernel gives a mark set without one.
const FULL_MASK: u32 = u32::MAX;

fn address_family(f: Family) -> AddressFamily {
    match f {
        Family::V4 => AddressFamily::Inet,
        Family::V6 => AddressFamily::Inet6,
    }
}

/// The message adding or deleting `r`. No mask goes with the mark (the
/// kernel then uses all bits, like upstream), and no priority when `None`
/// (the kernel picks one).
pub(crate) fn rule_message(r: &Rule) -> RuleMessage {
    let mut msg = RuleMessage::default();
    let h = &mut msg.header;
    h.family = address_family(r.family);
    h.table = u8::try_from(r.table).unwrap_or(0);
    h.action = RuleAction::ToTable;
    let a = &mut msg.attributes;
    if let Some(src) = r.src {
        h.src_len = src.prefix_len();
        a.push(RuleAttribute::Source(src.addr()));
    }
    if let Some(dst) = r.dst {
        h.dst_len = dst.prefix_len();
        a.push(RuleAttribute::Destination(dst.addr()));
    }
    if let Some(iif) = &r.iif {
        a.push(RuleAttribute::Iifname(iif.clone()));
    }
    if let Some(oif) = &r.oif {
        a.push(RuleAttribute::Oifname(oif.clone()));
    }
    if let Some(mark) = r.fwmark {
        a.push(RuleAttribute::FwMark(mark));
    }
    if let Some(p) = r.priority {
        a.push(RuleAttribute::Priority(p));
    }
    a.push(RuleAttribute::Table(r.table));
    a.push(RuleAttribute::Protocol(RouteProtocol::from(r.protocol)));
    msg
}

/// An all-zero rule dump request: the kernel refuses filters on rule
/// dumps, and family 0 returns every family.
pub(crate) fn dump_request() -> RuleMessage {
    RuleMessage::default()
}

/// Parses a rule message payload. `Ok(None)` for rules that are not
/// IPv4/IPv6 "lookup" rules or carry selectors `Rule` cannot express
/// (tos, inverted, masks, ports, uid ranges, goto, suppress_*, ...).
pub(crate) fn parse_rule(payload: &[u8]) -> Result<Option<Rule>, DecodeError> {
    let msg = RuleMessage::parse(payload)?;
    Ok(rule_from_message(&msg))
}

pub(crate) fn rule_from_message(msg: &RuleMessage) -> Option<Rule> {
    let h = &msg.header;
    let family = match h.family {
        AddressFamily::Inet => Family::V4,
        AddressFamily::Inet6 => Family::V6,
        _ => return None,
    };
    if h.action != RuleAction::ToTable || h.tos != 0 || h.flags.contains(RuleFlags::Invert) {
        return None;
    }
    let mut rule = Rule {
        family,
        table: u32::from(h.table),
        // The kernel leaves FRA_PRIORITY out for priority 0.
        priority: Some(0),
        src: None,
        dst: None,
        iif: None,
        oif: None,
        fwmark: None,
        protocol: 0,
    };
    let net = |addr: IpAddr, len: u8| IpNet::new(addr, len).ok();
    for a in &msg.attributes {
        match a {
            RuleAttribute::Source(ip) => rule.src = Some(net(*ip, h.src_len)?),
            RuleAttribute::Destination(ip) => rule.dst = Some(net(*ip, h.dst_len)?),
            RuleAttribute::Iifname(n) => rule.iif = Some(n.clone()),
            RuleAttribute::Oifname(n) => rule.oif = Some(n.clone()),
            RuleAttribute::FwMark(m) => rule.fwmark = Some(*m),
            RuleAttribute::FwMask(m) if *m == FULL_MASK => {}
            // -1 means "not set"; some kernels (6.18) report it anyway.
            RuleAttribute::SuppressPrefixLen(u32::MAX)
            | RuleAttribute::SuppressIfGroup(u32::MAX) => {}
            RuleAttribute::Priority(p) => rule.priority = Some(*p),
            RuleAttribute::Table(t) => rule.table = *t,
            RuleAttribute::Protocol(p) => rule.protocol = u8::from(*p),
            other => {
                log::trace!("rule with unsupported selector skipped: {other:?}");
                return None;
            }
        }
    }
    if rule.table == 0 {
        return None;
    }
    Some(rule)
}

/// Table and protocol of a rule event.
pub(crate) fn event_fields(payload: &[u8]) -> Result<(u32, u8), DecodeError> {
    let msg = RuleMessage::parse(payload)?;
    let mut table = u32::from(msg.header.table);
    let mut protocol = 0;
    for a in &msg.attributes {
        match a {
            RuleAttribute::Table(t) => table = *t,
            RuleAttribute::Protocol(p) => protocol = u8::from(*p),
            _ => {}
        }
    }
    Ok((table, protocol))
}

#[cfg(test)]
mod tests {
    use super::*;
    use netlink_packet_core::Emitable;

    fn round_trip(r: &Rule) -> Option<Rule> {
        let msg = rule_message(r);
        let mut buf = vec![0; msg.buffer_len()];
        msg.emit(&mut buf);
        parse_rule(&buf).unwrap()
    }

    fn rule() -> Rule {
        Rule {
            family: Family::V4,
            table: 576843759,
            priority: Some(1000),
            src: Some("10.0.0.0/16".parse().unwrap()),
            dst: Some("10.70.0.0/16".parse().unwrap()),
            iif: Some("liqo-tunnel".into()),
            oif: Some("eth0".into()),
            fwmark: Some(0x1234),
            protocol: 114,
        }
    }

    #[test]
    fn full_rule_round_trips() {
        let r = rule();
        assert_eq!(round_trip(&r), Some(r.clone()));
        assert_eq!(rule_message(&r).header.table, 0);
    }

    #[test]
    fn ipv6_bare_rule_round_trips() {
        let r = Rule {
            family: Family::V6,
            table: 7,
            src: None,
            dst: Some("fd00::/8".parse().unwrap()),
            iif: None,
            oif: None,
            fwmark: None,
            ..rule()
        };
        assert_eq!(round_trip(&r), Some(r.clone()));
        assert_eq!(rule_message(&r).header.table, 7);
    }

    #[test]
    fn no_priority_is_omitted_and_reads_back_as_zero() {
        let r = Rule {
            priority: None,
            ..rule()
        };
        let msg = rule_message(&r);
        assert!(
            !msg.attributes
                .iter()
                .any(|a| matches!(a, RuleAttribute::Priority(_)))
        );
        assert_eq!(round_trip(&r).unwrap().priority, Some(0));
    }

    #[test]
    fn mark_is_sent_without_mask_and_full_mask_is_accepted() {
        let r = rule();
        let mut msg = rule_message(&r);
        assert!(
            !msg.attributes
                .iter()
                .any(|a| matches!(a, RuleAttribute::FwMask(_)))
        );
        msg.attributes.push(RuleAttribute::FwMask(u32::MAX));
        assert_eq!(rule_from_message(&msg), Some(r));
    }

    #[test]
    fn inexpressible_rules_are_skipped() {
        let mut m = rule_message(&rule());
        m.attributes.push(RuleAttribute::FwMask(0xff));
        assert_eq!(rule_from_message(&m), None);
        let mut m = rule_message(&rule());
        m.header.flags = RuleFlags::Invert;
        assert_eq!(rule_from_message(&m), None);
        let mut m = rule_message(&rule());
        m.header.action = RuleAction::Unreachable;
        assert_eq!(rule_from_message(&m), None);
        let mut m = rule_message(&rule());
        m.attributes.push(RuleAttribute::SuppressPrefixLen(0));
        assert_eq!(rule_from_message(&m), None);
        let mut m = rule_message(&rule());
        m.attributes
            .push(RuleAttribute::SuppressPrefixLen(u32::MAX));
        assert_eq!(rule_from_message(&m), Some(rule()), "-1 is unset");
        let mut m = rule_message(&Rule { table: 0, ..rule() });
        m.attributes
            .retain(|a| !matches!(a, RuleAttribute::Table(_)));
        assert_eq!(rule_from_message(&m), None);
    }

    #[test]
    fn detached_interface_flags_do_not_hide_a_rule() {
        let mut m = rule_message(&rule());
        m.header.flags = RuleFlags::IifDetached | RuleFlags::OifDetached;
        assert_eq!(rule_from_message(&m), Some(rule()));
    }
}
