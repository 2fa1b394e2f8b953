//! Kernel change notifications, so the engine reacts to routes deleted
//! behind its back and to links appearing, instead of polling.

use super::error::KernelError;
use super::link_msg::{self, RTM_DELLINK, RTM_NEWLINK};
use super::route_msg::{self, RTM_DELROUTE, RTM_NEWROUTE};
use super::rule_msg::{self, RTM_DELRULE, RTM_NEWRULE};
use super::socket::{Conn, Messages, Msg, Recv};
use std::os::fd::RawFd;

const RTNLGRP_LINK: u32 = 1;
const RTNLGRP_IPV4_ROUTE: u32 = 7;
const RTNLGRP_IPV4_RULE: u32 = 8;
const RTNLGRP_IPV6_ROUTE: u32 = 11;
const RTNLGRP_IPV6_RULE: u32 = 19;

/// Most bytes of events read per [`Monitor::read_events`] call.
pub const READ_BUDGET: usize = 256 * 1024;

/// One kernel change relevant to routecfg.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Event {
    /// A link appeared or changed (the kernel announces both alike).
    LinkAdded(String),
    LinkRemoved(String),
    RouteAdded {
        table: u32,
    },
    RouteRemoved {
        table: u32,
        protocol: u8,
    },
    RuleAdded {
        table: u32,
    },
    RuleRemoved {
        table: u32,
        protocol: u8,
    },
    /// Events were lost (ENOBUFS, or one could not be read): everything
    /// must be compared again.
    Overrun,
}

/// A non-blocking socket subscribed to link, route and rule changes of
/// both families.
pub struct Monitor {
    conn: Conn,
    ignored_port: Option<u32>,
}

impl Monitor {
    pub fn open() -> Result<Monitor, KernelError> {
        let groups = [
            RTNLGRP_LINK,
            RTNLGRP_IPV4_ROUTE,
            RTNLGRP_IPV4_RULE,
            RTNLGRP_IPV6_ROUTE,
            RTNLGRP_IPV6_RULE,
        ];
        Ok(Monitor {
            conn: Conn::open(&groups, true)?,
            ignored_port: None,
        })
    }

    /// For poll(2): readable when events are queued.
    pub fn fd(&self) -> RawFd {
        self.conn.fd()
    }

    /// Drops route and rule events caused by requests of the socket with
    /// this port id (see [`super::Netlink::port_id`]): routecfg's own
    /// changes need no reaction. Link events are never dropped.
    pub fn ignore_port(&mut self, port: Option<u32>) {
        self.ignored_port = port;
    }

    /// What is queued now, without blocking: at most [`READ_BUDGET`] bytes
    /// per call, so a flood of other writers' changes cannot hold the loop
    /// (the fd stays readable and the next turn reads on).
    pub fn read_events(&mut self) -> Result<Vec<Event>, KernelError> {
        let mut events = Vec::new();
        let mut read = 0;
        while read < READ_BUDGET {
            let n = match self.conn.recv() {
                Ok(Recv::Data(n)) => n,
                Ok(Recv::Empty) => break,
                Ok(Recv::Truncated) => {
                    push_overrun(&mut events);
                    continue;
                }
                Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => {
                    log::warn!("netlink events lost (ENOBUFS): full resync needed");
                    push_overrun(&mut events);
                    continue;
                }
                Err(e) => return Err(KernelError::socket(&e, "read netlink events")),
            };
            read += n;
            for m in Messages::new(self.conn.received(n)) {
                match m.map_err(|d| d.to_string()).and_then(|m| self.event(&m)) {
                    Ok(Some(e)) => events.push(e),
                    Ok(None) => {}
                    Err(detail) => {
                        log::warn!("unreadable netlink event: {detail}: full resync needed");
                        push_overrun(&mut events);
                    }
                }
            }
        }
        Ok(events)
    }

    fn event(&self, m: &Msg<'_>) -> Result<Option<Event>, String> {
        let own = self.ignored_port.is_some_and(|p| p != 0 && p == m.port);
        let err = |e: netlink_packet_core::DecodeError| e.to_string();
        Ok(match m.ty {
            RTM_NEWLINK => Some(Event::LinkAdded(
                link_msg::parse_link(m.payload).map_err(err)?.name,
            )),
            RTM_DELLINK => Some(Event::LinkRemoved(
                link_msg::parse_link(m.payload).map_err(err)?.name,
            )),
            RTM_NEWROUTE | RTM_DELROUTE if own => None,
            RTM_NEWROUTE => route_msg::event_fields(m.payload)
                .map_err(err)?
                .map(|(table, _)| Event::RouteAdded { table }),
            RTM_DELROUTE => route_msg::event_fields(m.payload)
                .map_err(err)?
                .map(|(table, protocol)| Event::RouteRemoved { table, protocol }),
            RTM_NEWRULE | RTM_DELRULE if own => None,
            RTM_NEWRULE => {
                let (table, _) = rule_msg::event_fields(m.payload).map_err(err)?;
                Some(Event::RuleAdded { table })
            }
            RTM_DELRULE => {
                let (table, protocol) = rule_msg::event_fields(m.payload).map_err(err)?;
                Some(Event::RuleRemoved { table, protocol })
            }
            _ => None,
        })
    }
}

fn push_overrun(events: &mut Vec<Event>) {
    if events.last() != Some(&Event::Overrun) {
        events.push(Event::Overrun);
    }
}
