//! The request socket: dumps, batches of changes, lookups, and the few link
//! helpers the demo needs. One socket, synchronous, no per-op dumps.

use super::error::KernelError;
use super::link_msg::{self, Link, LinkCache, RTM_GETLINK, RTM_NEWADDR, RTM_NEWLINK};
use super::route_msg::{
    self, Parsed, RTM_DELROUTE, RTM_GETROUTE, RTM_NEWROUTE, RouteFilter, RouteGet, RouteMatch,
};
use super::rule_msg::{self, RTM_DELRULE, RTM_GETRULE, RTM_NEWRULE};
use super::socket::{Batch, Conn, DumpEnd, Msg, push_message};
use super::words::op_words;
use crate::routing::{Op, Route, Rule};
use netlink_packet_core::{
    DecodeError, Emitable, NLM_F_ACK, NLM_F_CREATE, NLM_F_EXCL, NLM_F_REPLACE, NLM_F_REQUEST,
};
use netlink_packet_route::AddressFamily;
use netlink_packet_route::route::RouteMessage;
use std::net::IpAddr;

/// How often a dump is retried when the kernel reports it inconsistent.
const DUMP_ATTEMPTS: usize = 5;

/// A NETLINK_ROUTE request socket with a link-name cache.
pub struct Netlink {
    conn: Conn,
    links: LinkCache,
}

impl Netlink {
    /// Opens the socket (strict checking, extended acks, large buffers).
    pub fn open() -> Result<Netlink, KernelError> {
        Ok(Netlink {
            conn: Conn::open(&[], false)?,
            links: LinkCache::default(),
        })
    }

    /// The socket's netlink port id: events caused by this socket's
    /// requests carry it, so a [`super::Monitor`] can skip them.
    pub fn port_id(&self) -> u32 {
        self.conn.port()
    }

    /// Every link, and a refreshed name <-> index cache for routes.
    pub fn links(&mut self) -> Result<Vec<Link>, KernelError> {
        let links = dump_all(
            &mut self.conn,
            RTM_GETLINK,
            &link_msg::dump_request(),
            "link show",
            |m, out: &mut Vec<Link>| {
                if m.ty == RTM_NEWLINK {
                    match link_msg::parse_link(m.payload) {
                        Ok(l) => out.push(l),
                        Err(e) => log::warn!("link show: unreadable link message skipped: {e}"),
                    }
                }
            },
        )?;
        self.links.replace(&links);
        Ok(links)
    }

    /// Every IPv4 and IPv6 "lookup" rule (the kernel cannot filter rule
    /// dumps; the caller does). Rules with selectors `Rule` cannot express
    /// are left out.
    pub fn dump_rules(&mut self) -> Result<Vec<Rule>, KernelError> {
        dump_all(
            &mut self.conn,
            RTM_GETRULE,
            &rule_msg::dump_request(),
            "rule show",
            |m, out: &mut Vec<Rule>| {
                if m.ty == RTM_NEWRULE {
                    match rule_msg::parse_rule(m.payload) {
                        Ok(Some(r)) => out.push(r),
                        Ok(None) => {}
                        Err(e) => log::warn!("rule show: unreadable rule message skipped: {e}"),
                    }
                }
            },
        )
    }

    /// Unicast routes of both families passing `filter`, which the kernel
    /// applies (so a no-op check of one table does not copy every route
    /// of the host). A table that does not exist yet is empty.
    pub fn dump_routes(&mut self, filter: RouteFilter) -> Result<Vec<Route>, KernelError> {
        let mut all = RouteDump::default();
        for family in [AddressFamily::Inet, AddressFamily::Inet6] {
            let ctx = route_dump_words(family, filter);
            let request = route_msg::dump_request(family, filter);
            let links = &self.links;
            let got = dump_all(
                &mut self.conn,
                RTM_GETROUTE,
                &request,
                &ctx,
                |m, acc: &mut RouteDump| {
                    if m.ty == RTM_NEWROUTE {
                        acc.push(m.payload, filter, links, &ctx);
                    }
                },
            );
            match got {
                // The first family's routes become the result as they are:
                // appending would copy them (10 MB at 100,000 routes).
                Ok(part) if all.routes.is_empty() && all.unnamed.is_empty() => all = part,
                Ok(part) => all.append(part),
                // Asking for a table the kernel has never seen: ENOENT.
                Err(e) if filter.table.is_some() && e.errno == Some(libc::ENOENT) => {}
                Err(e) => return Err(e),
            }
        }
        if !all.unnamed.is_empty() || !all.unnamed_hops.is_empty() {
            self.links()?;
            for (i, oif) in all.unnamed {
                all.routes[i].dev = self.links.name(oif).map(str::to_string);
            }
            for &(i, j, oif) in &all.unnamed_hops {
                all.routes[i].nexthops[j].dev = self.links.name(oif).map(str::to_string);
            }
            for &(i, _, _) in &all.unnamed_hops {
                all.routes[i].nexthops.sort();
            }
        }
        Ok(all.routes)
    }

    /// Applies `ops` in as few datagrams as possible; result `i` belongs to
    /// `ops[i]`. Already-present rules and already-gone rules or routes
    /// count as success. A route naming a missing link fails locally with
    /// [`super::ErrorKind::LinkNotFound`] and is not sent. The batch is not
    /// a transaction: each op succeeds or fails on its own.
    pub fn execute(&mut self, ops: &[Op]) -> Vec<Result<(), KernelError>> {
        let unknown_dev = ops.iter().any(|op| match op {
            Op::ReplaceRoute(r) | Op::DelRoute(r) => {
                r.devs().any(|d| self.links.index(d).is_none())
            }
            _ => false,
        });
        if self.links.stale || unknown_dev {
            if let Err(e) = self.links() {
                log::warn!("link refresh before batch failed: {e}");
            }
        }
        let mut batch = OpsBatch {
            ops,
            links: &self.links,
        };
        let results = self.conn.batch(&mut batch);
        let failed = results.iter().filter(|r| r.is_err()).count();
        log::debug!("kernel batch: {} ops, {failed} failed", ops.len());
        if results
            .iter()
            .any(|r| matches!(r, Err(e) if e.errno == Some(libc::ENODEV)))
        {
            // An ifindex we sent no longer exists: names may have moved.
            self.links.stale = true;
        }
        results
    }

    /// `ip route get DST [from SRC] [iif IIF] [mark M]`: which table and
    /// next hop the kernel picks, for tests and the demo. With `iif` the
    /// kernel simulates forwarding, which needs forwarding enabled.
    pub fn route_get(
        &mut self,
        dst: IpAddr,
        src: Option<IpAddr>,
        iif: Option<&str>,
        fwmark: Option<u32>,
    ) -> Result<RouteGet, KernelError> {
        let ctx = flow_context("route get", dst, src, iif, None, fwmark);
        let iif_index = self.index_of_named(iif, &ctx)?;
        let request = route_msg::get_request(dst, src, iif_index, fwmark);
        let (mut got, dev) = self.ask_route(&request, &ctx, route_msg::parse_get_reply)?;
        got.dev = dev;
        Ok(got)
    }

    /// `ip route get fibmatch DST [from SRC] [iif IIF] [oif OIF] [mark M]`:
    /// the routing entry itself (prefix, table, type) that the kernel's
    /// own lookup, rules included, ends in. With `iif` the kernel
    /// simulates forwarding, which needs forwarding enabled.
    pub fn route_match(
        &mut self,
        dst: IpAddr,
        src: Option<IpAddr>,
        iif: Option<&str>,
        oif: Option<&str>,
        fwmark: Option<u32>,
    ) -> Result<RouteMatch, KernelError> {
        let ctx = flow_context("route get fibmatch", dst, src, iif, oif, fwmark);
        let iif_index = self.index_of_named(iif, &ctx)?;
        let oif_index = self.index_of_named(oif, &ctx)?;
        let request = route_msg::fib_match_request(dst, src, iif_index, oif_index, fwmark);
        let (mut got, dev) = self.ask_route(&request, &ctx, route_msg::parse_match_reply)?;
        got.dev = dev;
        Ok(got)
    }

    /// One `RTM_GETROUTE` question and its one answer, with the output
    /// link's index named (refreshing the link cache for a new link).
    fn ask_route<T>(
        &mut self,
        request: &RouteMessage,
        ctx: &str,
        parse: ParseAnswer<T>,
    ) -> Result<(T, Option<String>), KernelError> {
        let mut answer = None;
        self.conn.query(RTM_GETROUTE, request, ctx, |m| {
            let parsed = parse(m.payload)
                .map_err(|e| KernelError::protocol(ctx, format!("unreadable answer: {e}")))?;
            answer = Some(parsed);
            Ok(())
        })?;
        let (got, oif) = answer.ok_or_else(|| KernelError::protocol(ctx, "no answer"))?;
        let dev = match oif {
            Some(i) => {
                if self.links.name(i).is_none() {
                    self.links()?;
                }
                self.links.name(i).map(str::to_string)
            }
            None => None,
        };
        Ok((got, dev))
    }

    fn index_of_named(
        &mut self,
        name: Option<&str>,
        ctx: &str,
    ) -> Result<Option<u32>, KernelError> {
        name.map(|n| self.index_of(n, ctx)).transpose()
    }

    /// `ip link add NAME type veth peer name PEER`.
    pub fn create_veth(&mut self, name: &str, peer: &str) -> Result<(), KernelError> {
        let msg = link_msg::veth_message(name, peer);
        let ctx = format!("link add {name} type veth peer name {peer}");
        self.one(RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, &msg, ctx, None)
    }

    /// `ip addr add ADDR dev LINK`; an address already present is success.
    pub fn add_address(&mut self, link: &str, addr: ipnet::IpNet) -> Result<(), KernelError> {
        let ctx = format!("address add {addr} dev {link}");
        let index = self.index_of(link, &ctx)?;
        let msg = link_msg::address_message(index, addr);
        self.one(
            RTM_NEWADDR,
            NLM_F_CREATE | NLM_F_EXCL,
            &msg,
            ctx,
            Some(libc::EEXIST),
        )
    }

    /// `ip link set LINK up`.
    pub fn set_up(&mut self, link: &str) -> Result<(), KernelError> {
        let ctx = format!("link set {link} up");
        let index = self.index_of(link, &ctx)?;
        let msg = link_msg::up_message(index);
        self.one(RTM_NEWLINK, 0, &msg, ctx, None)
    }

    /// The ifindex of `name`, refreshing the cache once if it is unknown.
    fn index_of(&mut self, name: &str, ctx: &str) -> Result<u32, KernelError> {
        if let Some(i) = self.links.index(name) {
            return Ok(i);
        }
        self.links()?;
        self.links
            .index(name)
            .ok_or_else(|| KernelError::link_not_found(ctx, name))
    }

    /// One acknowledged request.
    fn one(
        &mut self,
        ty: u16,
        flags: u16,
        msg: &impl Emitable,
        ctx: String,
        tolerated: Option<i32>,
    ) -> Result<(), KernelError> {
        let mut one = One {
            ty,
            flags,
            msg,
            ctx,
            tolerated,
        };
        let result = self.conn.batch(&mut one).pop();
        result.unwrap_or_else(|| Err(KernelError::protocol(one.ctx, "no answer")))
    }
}

/// Routes read by a dump, named through the link cache as they arrive.
#[derive(Default)]
struct RouteDump {
    routes: Vec<Route>,
    /// Routes whose output interface the cache does not know (yet).
    unnamed: Vec<(usize, u32)>,
    /// (route, next hop, index) of next hops whose interface it does not
    /// know.
    unnamed_hops: Vec<(usize, usize, u32)>,
    /// The last index named: consecutive routes mostly share a device.
    last: Option<(u32, String)>,
}

impl RouteDump {
    fn push(&mut self, payload: &[u8], filter: RouteFilter, links: &LinkCache, ctx: &str) {
        let (oif, hop_oifs) = match route_msg::push_route(payload, &mut self.routes) {
            Ok(Parsed::Pushed { oif, hop_oifs }) => (oif, hop_oifs),
            Ok(Parsed::Skipped) => return,
            Err(e) => {
                log::warn!("{ctx}: unreadable route message skipped: {e}");
                return;
            }
        };
        let i = self.routes.len() - 1;
        if !filter.matches(&self.routes[i]) {
            self.routes.pop();
            return;
        }
        if !hop_oifs.is_empty() {
            self.name_next_hops(i, &hop_oifs, links);
        }
        let Some(oif) = oif else { return };
        let name = match &self.last {
            Some((idx, name)) if *idx == oif => Some(name.clone()),
            _ => links.name(oif).map(|n| {
                self.last = Some((oif, n.to_string()));
                n.to_string()
            }),
        };
        match name {
            Some(n) => self.routes[i].dev = Some(n),
            None => self.unnamed.push((i, oif)),
        }
    }

    /// Names the next hops of route `i` and sorts them, as desired routes
    /// have theirs: next-hop order never counts as a difference.
    fn name_next_hops(&mut self, i: usize, hop_oifs: &[u32], links: &LinkCache) {
        let hops = &mut self.routes[i].nexthops;
        let mut all_named = true;
        for (j, (hop, &oif)) in hops.iter_mut().zip(hop_oifs).enumerate() {
            if oif == 0 {
                continue;
            }
            match links.name(oif) {
                Some(n) => hop.dev = Some(n.to_string()),
                None => {
                    self.unnamed_hops.push((i, j, oif));
                    all_named = false;
                }
            }
        }
        // Otherwise sorted once named, after the dump.
        if all_named {
            hops.sort_unstable();
        }
    }

    fn append(&mut self, mut other: RouteDump) {
        let offset = self.routes.len();
        self.unnamed
            .extend(other.unnamed.iter().map(|(i, oif)| (i + offset, *oif)));
        self.unnamed_hops.extend(
            other
                .unnamed_hops
                .iter()
                .map(|(i, j, oif)| (i + offset, *j, *oif)),
        );
        self.routes.append(&mut other.routes);
    }
}

/// Runs a dump to completion, redoing it while the kernel flags it as
/// interrupted by concurrent changes.
fn dump_all<A: Default>(
    conn: &mut Conn,
    ty: u16,
    request: &impl Emitable,
    ctx: &str,
    mut each: impl FnMut(&Msg<'_>, &mut A),
) -> Result<A, KernelError> {
    for _ in 0..DUMP_ATTEMPTS {
        let mut out = A::default();
        if conn.dump(ty, request, ctx, |m| each(m, &mut out))? == DumpEnd::Complete {
            return Ok(out);
        }
        log::debug!("{ctx}: dump interrupted by concurrent changes, dumping again");
    }
    Err(KernelError::protocol(
        ctx,
        format!("dump interrupted {DUMP_ATTEMPTS} times in a row by concurrent changes"),
    ))
}

fn route_dump_words(family: AddressFamily, filter: RouteFilter) -> String {
    let mut s = String::from(if family == AddressFamily::Inet6 {
        "route show -6"
    } else {
        "route show"
    });
    if let Some(t) = filter.table {
        s.push_str(&format!(" table {t}"));
    }
    if let Some(p) = filter.protocol {
        s.push_str(&format!(" proto {p}"));
    }
    s
}

/// The engine's ops as a batch.
struct OpsBatch<'a> {
    ops: &'a [Op],
    links: &'a LinkCache,
}

impl Batch for OpsBatch<'_> {
    fn len(&self) -> usize {
        self.ops.len()
    }

    fn encode(&mut self, i: usize, seq: u32, buf: &mut Vec<u8>) -> Result<(), KernelError> {
        const ACKED: u16 = NLM_F_REQUEST | NLM_F_ACK;
        match &self.ops[i] {
            Op::AddRule(r) => {
                let flags = ACKED | NLM_F_CREATE | NLM_F_EXCL;
                push_message(buf, RTM_NEWRULE, flags, seq, &rule_msg::rule_message(r));
            }
            Op::DelRule(r) => {
                push_message(buf, RTM_DELRULE, ACKED, seq, &rule_msg::rule_message(r))
            }
            Op::ReplaceRoute(r) => {
                let index = |d: &str| {
                    self.links
                        .index(d)
                        .ok_or_else(|| KernelError::link_not_found(self.context(i), d))
                };
                let oif = r.dev.as_deref().map(index).transpose()?;
                let hop_oifs = r
                    .nexthops
                    .iter()
                    .map(|h| h.dev.as_deref().map_or(Ok(0), index))
                    .collect::<Result<Vec<u32>, _>>()?;
                let flags = ACKED | NLM_F_CREATE | NLM_F_REPLACE;
                push_message(
                    buf,
                    RTM_NEWROUTE,
                    flags,
                    seq,
                    &route_msg::route_message(r, oif, &hop_oifs),
                );
            }
            Op::DelRoute(r) => {
                // A device no longer known: its routes went with it, or it
                // was renamed; matching without it deletes in both cases.
                // Next hops are left out: the kernel then deletes the
                // whole route (every IPv6 sibling too), whatever they are.
                let oif = r.dev.as_deref().and_then(|d| self.links.index(d));
                let whole;
                let r = if r.nexthops.is_empty() {
                    r
                } else {
                    whole = Route {
                        nexthops: Default::default(),
                        ..r.clone()
                    };
                    &whole
                };
                push_message(
                    buf,
                    RTM_DELROUTE,
                    ACKED,
                    seq,
                    &route_msg::route_message(r, oif, &[]),
                );
            }
        }
        Ok(())
    }

    fn tolerated(&self, i: usize, errno: i32) -> bool {
        match &self.ops[i] {
            Op::AddRule(_) => errno == libc::EEXIST,
            Op::DelRule(_) => errno == libc::ENOENT,
            Op::ReplaceRoute(_) => false,
            // ENODEV: the route's device is gone, and the route with it.
            Op::DelRoute(_) => matches!(errno, libc::ESRCH | libc::ENOENT | libc::ENODEV),
        }
    }

    fn context(&self, i: usize) -> String {
        op_words(&self.ops[i])
    }
}

/// A single acknowledged request as a batch of one.
struct One<'a, M: Emitable> {
    ty: u16,
    flags: u16,
    msg: &'a M,
    ctx: String,
    tolerated: Option<i32>,
}

impl<M: Emitable> Batch for One<'_, M> {
    fn len(&self) -> usize {
        1
    }

    fn encode(&mut self, _: usize, seq: u32, buf: &mut Vec<u8>) -> Result<(), KernelError> {
        push_message(
            buf,
            self.ty,
            NLM_F_REQUEST | NLM_F_ACK | self.flags,
            seq,
            self.msg,
        );
        Ok(())
    }

    fn tolerated(&self, _: usize, errno: i32) -> bool {
        self.tolerated == Some(errno)
    }

    fn context(&self, _: usize) -> String {
        self.ctx.clone()
    }
}

/// Reads a `route get` answer: what it says, and its output ifindex.
type ParseAnswer<T> = fn(&[u8]) -> Result<(T, Option<u32>), DecodeError>;

/// A route question in `ip`'s words, for errors:
/// `route get DST [from SRC] [iif DEV] [oif DEV] [mark M]`.
fn flow_context(
    verb: &str,
    dst: IpAddr,
    src: Option<IpAddr>,
    iif: Option<&str>,
    oif: Option<&str>,
    fwmark: Option<u32>,
) -> String {
    let mut ctx = format!("{verb} {dst}");
    if let Some(s) = src {
        ctx.push_str(&format!(" from {s}"));
    }
    if let Some(i) = iif {
        ctx.push_str(&format!(" iif {i}"));
    }
    if let Some(o) = oif {
        ctx.push_str(&format!(" oif {o}"));
    }
    if let Some(m) = fwmark {
        ctx.push_str(&format!(" mark {m:#x}"));
    }
    ctx
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reads the links of the namespace the test runs in (read-only; any
    /// namespace has `lo`; no privileges needed).
    #[test]
    fn truncated_dump_is_redone_with_a_bigger_buffer() {
        let mut nl = Netlink::open().expect("open netlink socket");
        nl.conn.shrink_receive_buffer(64);
        let links = nl.links().expect("link dump");
        assert!(links.iter().any(|l| l.name == "lo"), "{links:?}");
        assert!(nl.conn.receive_buffer_len() > 64);
        assert_eq!(nl.links.name(1), Some("lo"));
    }
}
