//! One NETLINK_ROUTE socket and the framing around it: sequence numbers,
//! a reusable receive buffer, walking the messages of a datagram, dumps,
//! and batches of acknowledged requests. Knows nothing about routes.

use super::error::KernelError;
use netlink_packet_core::{
    Emitable, NLA_HEADER_SIZE, NLM_F_ACK_TLVS, NLM_F_CAPPED, NLM_F_DUMP, NLM_F_DUMP_INTR,
    NLM_F_REQUEST, NLMSG_DONE, NLMSG_ERROR, NetlinkBuffer, NetlinkHeader, NlaBuffer, NlasIterator,
};
use netlink_sys::{Socket, protocols::NETLINK_ROUTE};
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::time::Duration;

/// Size of a netlink message header.
pub(crate) const HEADER_LEN: usize = 16;

/// Starting size of the receive buffer. The kernel fills dump datagrams up
/// to 32 KiB; twice that leaves room, and the buffer grows if a datagram
/// is ever truncated.
const RECV_BUFFER: usize = 64 * 1024;

/// Socket receive buffer we ask for (the kernel doubles it). Acks of one
/// batch chunk sit here until read; events pile up here between polls.
const SOCKET_RCVBUF: libc::c_int = 4 * 1024 * 1024;

/// Socket send buffer: a datagram must be smaller than this.
const SOCKET_SNDBUF: libc::c_int = 1024 * 1024;

/// Requests per datagram are capped by bytes ...
const CHUNK_BYTES: usize = 128 * 1024;

/// ... and by the acks they produce: each queued ack costs the receive
/// buffer about this much (skb overhead included), and an ack that does
/// not fit is dropped by the kernel.
const ACK_TRUESIZE: usize = 1024;

/// A blocking read that waits this long means the kernel will not answer.
const RECV_TIMEOUT: Duration = Duration::from_secs(10);

/// NLMSGERR_ATTR_MSG: the extended-ack text.
const NLMSGERR_ATTR_MSG: u16 = 1;

/// One received netlink message, borrowed from the receive buffer.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Msg<'a> {
    pub ty: u16,
    pub flags: u16,
    pub seq: u32,
    pub port: u32,
    pub payload: &'a [u8],
}

/// Walks the messages of one datagram.
pub(crate) struct Messages<'a> {
    buf: &'a [u8],
}

impl<'a> Messages<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Messages { buf }
    }
}

impl<'a> Iterator for Messages<'a> {
    type Item = Result<Msg<'a>, String>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.buf.len() < HEADER_LEN {
            // Trailing bytes shorter than a header are padding.
            return None;
        }
        let nl = match NetlinkBuffer::new_checked(self.buf) {
            Ok(nl) => nl,
            Err(e) => {
                self.buf = &[];
                return Some(Err(format!("malformed netlink message: {e}")));
            }
        };
        let len = nl.length() as usize;
        let msg = Msg {
            ty: nl.message_type(),
            flags: nl.flags(),
            seq: nl.sequence_number(),
            port: nl.port_number(),
            payload: &self.buf[HEADER_LEN..len],
        };
        let next = align4(len).min(self.buf.len());
        self.buf = &self.buf[next..];
        Some(Ok(msg))
    }
}

pub(crate) fn align4(n: usize) -> usize {
    (n + 3) & !3
}

/// Appends one request to `buf`: header, then `payload`, padded to 4.
pub(crate) fn push_message(
    buf: &mut Vec<u8>,
    ty: u16,
    flags: u16,
    seq: u32,
    payload: &impl Emitable,
) {
    let start = buf.len();
    let total = HEADER_LEN + payload.buffer_len();
    buf.resize(start + align4(total), 0);
    let mut header = NetlinkHeader::default();
    header.length = total as u32;
    header.message_type = ty;
    header.flags = flags;
    header.sequence_number = seq;
    header.emit(&mut buf[start..start + HEADER_LEN]);
    payload.emit(&mut buf[start + HEADER_LEN..start + total]);
}

/// The errno (positive, 0 for an ack) and extended-ack text of an
/// NLMSG_ERROR or NLMSG_DONE message.
pub(crate) fn parse_status(msg: &Msg<'_>) -> Result<(i32, Option<String>), String> {
    let p = msg.payload;
    if p.len() < 4 {
        // NLMSG_DONE may come without a body.
        if msg.ty == NLMSG_DONE {
            return Ok((0, None));
        }
        return Err(format!("short status message ({} bytes)", p.len()));
    }
    let code = i32::from_ne_bytes([p[0], p[1], p[2], p[3]]);
    let errno = code.checked_neg().unwrap_or(i32::MAX).max(0);
    if msg.flags & NLM_F_ACK_TLVS == 0 {
        return Ok((errno, None));
    }
    // TLVs follow the code (DONE) or the echoed request (ERROR): the whole
    // request unless capped, else only its header.
    let mut tlv_start = 4;
    if msg.ty == NLMSG_ERROR {
        if p.len() < 4 + HEADER_LEN {
            return Ok((errno, None));
        }
        let echoed = u32::from_ne_bytes([p[4], p[5], p[6], p[7]]) as usize;
        tlv_start += if msg.flags & NLM_F_CAPPED != 0 || code == 0 {
            HEADER_LEN
        } else {
            align4(echoed)
        };
    }
    let Some(tlvs) = p.get(tlv_start..) else {
        return Ok((errno, None));
    };
    let mut text = None;
    for nla in NlasIterator::new(tlvs) {
        let Ok(nla) = nla else { break };
        let nla: NlaBuffer<&[u8]> = nla;
        if nla.kind() == NLMSGERR_ATTR_MSG && nla.length() as usize >= NLA_HEADER_SIZE {
            let raw = nla.value();
            let raw = raw.split(|b| *b == 0).next().unwrap_or(raw);
            let s = String::from_utf8_lossy(raw).trim().to_string();
            if !s.is_empty() {
                text = Some(s);
            }
        }
    }
    Ok((errno, text))
}

/// How one received datagram went.
pub(crate) enum Recv {
    /// This many bytes of the receive buffer hold messages.
    Data(usize),
    /// Nothing queued (non-blocking sockets only).
    Empty,
    /// The datagram did not fit the buffer and its tail is lost; the
    /// buffer has grown so the next one fits.
    Truncated,
}

/// Whether a dump ran to NLMSG_DONE consistently or must be redone.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum DumpEnd {
    Complete,
    /// NLM_F_DUMP_INTR (the kernel's state changed under the dump) or a
    /// truncated datagram: the caller throws the results away and redumps.
    Interrupted,
}

/// Requests executed as one batch: see [`Conn::batch`].
pub(crate) trait Batch {
    fn len(&self) -> usize;
    /// Appends request `i` with sequence number `seq`; an error fails the
    /// request locally and nothing is sent for it.
    fn encode(&mut self, i: usize, seq: u32, buf: &mut Vec<u8>) -> Result<(), KernelError>;
    /// Whether the kernel answering `errno` to request `i` means the
    /// desired state holds anyway (EEXIST on add, ESRCH on delete).
    fn tolerated(&self, i: usize, errno: i32) -> bool;
    /// Request `i` in `ip` words, only built when something failed.
    fn context(&self, i: usize) -> String;
}

/// A NETLINK_ROUTE socket with the options routecfg relies on.
pub(crate) struct Conn {
    sock: Socket,
    port: u32,
    seq: u32,
    rx: Vec<u8>,
    tx: Vec<u8>,
    groups: Vec<u32>,
    nonblocking: bool,
    /// Most requests per datagram so that their acks fit the receive buffer.
    chunk_requests: usize,
    /// Set when a call gave up mid-conversation: answers may still be
    /// queued (or a dump still running), so the next call starts afresh on
    /// a new socket.
    broken: bool,
}

impl Conn {
    /// A request socket (`groups` empty, blocking with a timeout) or an
    /// event socket (`groups` set, non-blocking).
    pub fn open(groups: &[u32], nonblocking: bool) -> Result<Conn, KernelError> {
        let ctx = "open netlink socket";
        let err = |e: io::Error| KernelError::socket(&e, ctx);
        let mut sock = Socket::new(NETLINK_ROUTE).map_err(err)?;
        let addr = sock.bind_auto().map_err(err)?;
        // Strict checking makes the kernel honour dump filters and refuse
        // malformed requests instead of guessing.
        sock.set_netlink_get_strict_chk(true).map_err(err)?;
        // Errors then explain themselves ("Nexthop has invalid gateway").
        sock.set_ext_ack(true).map_err(err)?;
        // Error answers echo only the request header, not the whole
        // request: keeps ack traffic of big batches small.
        sock.set_cap_ack(true).map_err(err)?;
        let fd = sock.as_raw_fd();
        // SO_RCVBUFFORCE goes past net.core.rmem_max (needs CAP_NET_ADMIN,
        // which changing routes needs anyway); fall back to the capped one.
        if setsockopt_int(fd, libc::SOL_SOCKET, libc::SO_RCVBUFFORCE, SOCKET_RCVBUF).is_err() {
            sock.set_rx_buf_sz(SOCKET_RCVBUF).map_err(err)?;
        }
        if setsockopt_int(fd, libc::SOL_SOCKET, libc::SO_SNDBUFFORCE, SOCKET_SNDBUF).is_err() {
            setsockopt_int(fd, libc::SOL_SOCKET, libc::SO_SNDBUF, SOCKET_SNDBUF).map_err(err)?;
        }
        let rcvbuf = sock.get_rx_buf_sz().map_err(err)?;
        if nonblocking {
            sock.set_non_blocking(true).map_err(err)?;
        } else {
            set_recv_timeout(fd, RECV_TIMEOUT).map_err(err)?;
        }
        for &g in groups {
            sock.add_membership(g)
                .map_err(|e| KernelError::socket(&e, format!("join netlink group {g}")))?;
        }
        Ok(Conn {
            sock,
            port: addr.port_number(),
            // Any start works; distinct per socket helps reading traces.
            seq: std::process::id().wrapping_mul(0x9e37),
            rx: vec![0; RECV_BUFFER],
            tx: Vec::with_capacity(CHUNK_BYTES + 4096),
            groups: groups.to_vec(),
            nonblocking,
            chunk_requests: (rcvbuf / ACK_TRUESIZE).clamp(16, 8192),
            broken: false,
        })
    }

    pub fn port(&self) -> u32 {
        self.port
    }

    pub fn fd(&self) -> RawFd {
        self.sock.as_raw_fd()
    }

    /// Reopens the socket if an earlier call left it mid-conversation.
    pub fn ensure_clean(&mut self) -> Result<(), KernelError> {
        if self.broken {
            let fresh = Conn::open(&self.groups.clone(), self.nonblocking)?;
            log::debug!("netlink socket reopened after an aborted exchange");
            *self = fresh;
        }
        Ok(())
    }

    /// Reserves `n` consecutive sequence numbers, returning the first.
    fn reserve(&mut self, n: usize) -> u32 {
        let base = self.seq.wrapping_add(1);
        self.seq = self.seq.wrapping_add(n as u32);
        base
    }

    fn send(&mut self, buf: &[u8]) -> io::Result<()> {
        let sent = self.sock.send(buf, 0)?;
        if sent != buf.len() {
            return Err(io::Error::other(format!(
                "short send: {sent} of {} bytes",
                buf.len()
            )));
        }
        Ok(())
    }

    /// Receives one datagram into the receive buffer.
    pub fn recv(&mut self) -> io::Result<Recv> {
        let flags = libc::MSG_TRUNC
            | if self.nonblocking {
                libc::MSG_DONTWAIT
            } else {
                0
            };
        let n = loop {
            match self.sock.recv(&mut &mut self.rx[..], flags) {
                Ok(n) => break n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if self.nonblocking && e.kind() == io::ErrorKind::WouldBlock => {
                    return Ok(Recv::Empty);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    // SO_RCVTIMEO expired: the kernel is not going to answer.
                    return Err(io::Error::from_raw_os_error(libc::ETIMEDOUT));
                }
                Err(e) => return Err(e),
            }
        };
        if n > self.rx.len() {
            log::warn!("netlink datagram of {n} bytes truncated; growing the receive buffer");
            let grown = (align4(n) + 4096).max(2 * self.rx.len());
            self.rx.resize(grown, 0);
            return Ok(Recv::Truncated);
        }
        Ok(Recv::Data(n))
    }

    /// Shrinks the receive buffer so tests can exercise truncation.
    #[cfg(test)]
    pub fn shrink_receive_buffer(&mut self, len: usize) {
        self.rx.truncate(len);
    }

    #[cfg(test)]
    pub fn receive_buffer_len(&self) -> usize {
        self.rx.len()
    }

    pub fn received(&self, n: usize) -> &[u8] {
        &self.rx[..n]
    }

    /// Runs one dump, feeding every data message to `each`. Errors inside
    /// the dump (an NLMSG_ERROR, or a negative NLMSG_DONE) end it with the
    /// kernel's errno.
    pub fn dump(
        &mut self,
        ty: u16,
        request: &impl Emitable,
        ctx: &str,
        mut each: impl FnMut(&Msg<'_>),
    ) -> Result<DumpEnd, KernelError> {
        self.ensure_clean()?;
        let seq = self.reserve(1);
        let mut tx = std::mem::take(&mut self.tx);
        tx.clear();
        push_message(&mut tx, ty, NLM_F_REQUEST | NLM_F_DUMP, seq, request);
        let sent = self.send(&tx);
        self.tx = tx;
        sent.map_err(|e| KernelError::socket(&e, ctx))?;
        let mut interrupted = false;
        loop {
            let n = match self.recv() {
                Ok(Recv::Data(n)) => n,
                Ok(Recv::Empty) => continue,
                Ok(Recv::Truncated) => {
                    // Lost part of the dump; read on to its end, then redo.
                    interrupted = true;
                    continue;
                }
                Err(e) => {
                    self.broken = true;
                    return Err(KernelError::socket(&e, ctx));
                }
            };
            let mut end: Option<Result<(), KernelError>> = None;
            for m in Messages::new(&self.rx[..n]) {
                let m = match m {
                    Ok(m) => m,
                    Err(detail) => {
                        end = Some(Err(KernelError::protocol(ctx, detail)));
                        break;
                    }
                };
                if m.seq != seq {
                    continue;
                }
                if m.flags & NLM_F_DUMP_INTR != 0 {
                    interrupted = true;
                }
                match m.ty {
                    NLMSG_DONE | NLMSG_ERROR => {
                        end = Some(match parse_status(&m) {
                            Ok((0, _)) => Ok(()),
                            Ok((errno, ack)) => Err(KernelError::kernel(errno, ctx, ack)),
                            Err(detail) => Err(KernelError::protocol(ctx, detail)),
                        });
                        break;
                    }
                    netlink_packet_core::NLMSG_NOOP => {}
                    _ => each(&m),
                }
            }
            match end {
                None => {}
                Some(Ok(())) if interrupted => return Ok(DumpEnd::Interrupted),
                Some(Ok(())) => return Ok(DumpEnd::Complete),
                Some(Err(e)) => {
                    if e.kind == super::ErrorKind::Protocol {
                        self.broken = true;
                    }
                    return Err(e);
                }
            }
        }
    }

    /// Sends one request that expects a single data answer (a `get`),
    /// handing that answer to `on_reply`.
    pub fn query(
        &mut self,
        ty: u16,
        request: &impl Emitable,
        ctx: &str,
        mut on_reply: impl FnMut(&Msg<'_>) -> Result<(), KernelError>,
    ) -> Result<(), KernelError> {
        self.ensure_clean()?;
        let seq = self.reserve(1);
        let mut tx = std::mem::take(&mut self.tx);
        tx.clear();
        push_message(&mut tx, ty, NLM_F_REQUEST, seq, request);
        let sent = self.send(&tx);
        self.tx = tx;
        sent.map_err(|e| KernelError::socket(&e, ctx))?;
        loop {
            let n = match self.recv() {
                Ok(Recv::Data(n)) => n,
                Ok(Recv::Empty) => continue,
                Ok(Recv::Truncated) => {
                    self.broken = true;
                    return Err(KernelError::protocol(ctx, "answer truncated"));
                }
                Err(e) => {
                    self.broken = true;
                    return Err(KernelError::socket(&e, ctx));
                }
            };
            for m in Messages::new(&self.rx[..n]) {
                let m = m.map_err(|d| KernelError::protocol(ctx, d))?;
                if m.seq != seq {
                    continue;
                }
                if m.ty == NLMSG_ERROR {
                    return match parse_status(&m) {
                        Ok((0, _)) => {
                            Err(KernelError::protocol(ctx, "acknowledged without an answer"))
                        }
                        Ok((errno, ack)) => Err(KernelError::kernel(errno, ctx, ack)),
                        Err(detail) => Err(KernelError::protocol(ctx, detail)),
                    };
                }
                return on_reply(&m);
            }
        }
    }

    /// Sends every request of `batch`, many per datagram, and collects one
    /// answer per request by sequence number. Result `i` belongs to request
    /// `i`. Each datagram's answers are read before the next is sent: the
    /// kernel handles a datagram inside `send`, so its acks are all queued
    /// by then, and reading them keeps the receive buffer from overflowing
    /// (the kernel drops acks that do not fit).
    pub fn batch(&mut self, batch: &mut impl Batch) -> Vec<Result<(), KernelError>> {
        let n = batch.len();
        let mut results: Vec<Option<Result<(), KernelError>>> = (0..n).map(|_| None).collect();
        if let Err(e) = self.ensure_clean() {
            return (0..n)
                .map(|i| {
                    Err(KernelError {
                        context: batch.context(i),
                        ..e.clone()
                    })
                })
                .collect();
        }
        let base = self.reserve(n);
        let mut tx = std::mem::take(&mut self.tx);
        let mut i = 0;
        while i < n {
            tx.clear();
            let first = i;
            let mut pending = 0usize;
            while i < n && tx.len() < CHUNK_BYTES && pending < self.chunk_requests {
                let seq = base.wrapping_add(i as u32);
                match batch.encode(i, seq, &mut tx) {
                    Ok(()) => pending += 1,
                    Err(e) => results[i] = Some(Err(e)),
                }
                i += 1;
            }
            if pending == 0 {
                continue;
            }
            let failure = match self.send(&tx) {
                Ok(()) => self.collect_acks(batch, base, first..i, &mut results, pending),
                Err(e) => Some(e),
            };
            if let Some(e) = failure {
                self.broken = true;
                for (j, r) in results.iter_mut().enumerate().take(i).skip(first) {
                    if r.is_none() {
                        *r = Some(Err(KernelError::socket(&e, batch.context(j))));
                    }
                }
            }
        }
        self.tx = tx;
        results
            .into_iter()
            .enumerate()
            .map(|(j, r)| {
                r.unwrap_or_else(|| Err(KernelError::protocol(batch.context(j), "no answer")))
            })
            .collect()
    }

    /// Reads answers until `pending` requests of `range` are answered;
    /// returns the socket error that stopped it early, if any.
    fn collect_acks(
        &mut self,
        batch: &impl Batch,
        base: u32,
        range: std::ops::Range<usize>,
        results: &mut [Option<Result<(), KernelError>>],
        mut pending: usize,
    ) -> Option<io::Error> {
        while pending > 0 {
            let n = match self.recv() {
                Ok(Recv::Data(n)) => n,
                Ok(Recv::Empty) => continue,
                Ok(Recv::Truncated) => return Some(io::Error::other("answer truncated")),
                Err(e) => return Some(e),
            };
            for m in Messages::new(&self.rx[..n]) {
                let m = match m {
                    Ok(m) => m,
                    Err(detail) => return Some(io::Error::other(detail)),
                };
                if m.ty != NLMSG_ERROR {
                    continue;
                }
                let j = m.seq.wrapping_sub(base) as usize;
                if !range.contains(&j) || results[j].is_some() {
                    // An answer to an earlier, abandoned exchange.
                    continue;
                }
                results[j] = Some(match parse_status(&m) {
                    Ok((0, _)) => Ok(()),
                    Ok((errno, _)) if batch.tolerated(j, errno) => Ok(()),
                    Ok((errno, ack)) => Err(KernelError::kernel(errno, batch.context(j), ack)),
                    Err(detail) => Err(KernelError::protocol(batch.context(j), detail)),
                });
                pending -= 1;
            }
        }
        None
    }
}

/// `setsockopt` for an int option netlink-sys does not wrap.
fn setsockopt_int(
    fd: RawFd,
    level: libc::c_int,
    name: libc::c_int,
    value: libc::c_int,
) -> io::Result<()> {
    setsockopt(fd, level, name, &value)
}

fn set_recv_timeout(fd: RawFd, t: Duration) -> io::Result<()> {
    let tv = libc::timeval {
        tv_sec: t.as_secs() as libc::time_t,
        tv_usec: t.subsec_micros() as libc::suseconds_t,
    };
    setsockopt(fd, libc::SOL_SOCKET, libc::SO_RCVTIMEO, &tv)
}

fn setsockopt<T>(fd: RawFd, level: libc::c_int, name: libc::c_int, value: &T) -> io::Result<()> {
    // SAFETY: `value` points to a live, initialised `T` for the whole call
    // and we pass exactly its size, so the kernel reads only memory we own;
    // `fd` is an open socket owned by the caller; setsockopt keeps no
    // pointer after it returns.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            (value as *const T).cast::<libc::c_void>(),
            std::mem::size_of::<T>() as libc::socklen_t,
        )
    };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status_message(ty: u16, flags: u16, body: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        let len = (HEADER_LEN + body.len()) as u32;
        v.extend_from_slice(&len.to_ne_bytes());
        v.extend_from_slice(&ty.to_ne_bytes());
        v.extend_from_slice(&flags.to_ne_bytes());
        v.extend_from_slice(&7u32.to_ne_bytes());
        v.extend_from_slice(&99u32.to_ne_bytes());
        v.extend_from_slice(body);
        while v.len() % 4 != 0 {
            v.push(0);
        }
        v
    }

    fn nla(kind: u16, value: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        v.extend_from_slice(&((4 + value.len()) as u16).to_ne_bytes());
        v.extend_from_slice(&kind.to_ne_bytes());
        v.extend_from_slice(value);
        while v.len() % 4 != 0 {
            v.push(0);
        }
        v
    }

    #[test]
    fn walks_messages_of_a_datagram() {
        let mut d = status_message(NLMSG_ERROR, 0, &[0; 20]);
        d.extend(status_message(NLMSG_DONE, 0, &0i32.to_ne_bytes()));
        let msgs: Vec<_> = Messages::new(&d).collect::<Result<_, _>>().unwrap();
        assert_eq!(msgs.len(), 2);
        assert_eq!(msgs[0].ty, NLMSG_ERROR);
        assert_eq!(msgs[0].payload.len(), 20);
        assert_eq!(msgs[1].ty, NLMSG_DONE);
        assert_eq!((msgs[1].seq, msgs[1].port), (7, 99));
    }

    #[test]
    fn malformed_length_is_an_error() {
        let mut d = status_message(NLMSG_ERROR, 0, &[0; 20]);
        d[0] = 200; // claims more than the datagram holds
        let first = Messages::new(&d).next().unwrap();
        assert!(first.is_err());
    }

    #[test]
    fn capped_error_with_ext_ack() {
        let mut body = (-libc::EINVAL).to_ne_bytes().to_vec();
        // echoed request header claiming a 60-byte request (capped: only the header follows)
        let mut echoed = [0u8; 16];
        echoed[..4].copy_from_slice(&60u32.to_ne_bytes());
        body.extend_from_slice(&echoed);
        body.extend(nla(NLMSGERR_ATTR_MSG, b"Nexthop has invalid gateway\0"));
        body.extend(nla(2, &24u32.to_ne_bytes()));
        let d = status_message(NLMSG_ERROR, NLM_F_CAPPED | NLM_F_ACK_TLVS, &body);
        let m = Messages::new(&d).next().unwrap().unwrap();
        let (errno, ack) = parse_status(&m).unwrap();
        assert_eq!(errno, libc::EINVAL);
        assert_eq!(ack.as_deref(), Some("Nexthop has invalid gateway"));
    }

    #[test]
    fn uncapped_error_skips_the_echoed_request() {
        let mut body = (-libc::EEXIST).to_ne_bytes().to_vec();
        let mut echoed = vec![0u8; 28];
        echoed[..4].copy_from_slice(&28u32.to_ne_bytes());
        body.extend_from_slice(&echoed);
        body.extend(nla(NLMSGERR_ATTR_MSG, b"exists\0"));
        let d = status_message(NLMSG_ERROR, NLM_F_ACK_TLVS, &body);
        let m = Messages::new(&d).next().unwrap().unwrap();
        assert_eq!(
            parse_status(&m).unwrap(),
            (libc::EEXIST, Some("exists".to_string()))
        );
    }

    #[test]
    fn ack_and_bodyless_done() {
        let d = status_message(NLMSG_ERROR, 0, &[0; 20]);
        let m = Messages::new(&d).next().unwrap().unwrap();
        assert_eq!(parse_status(&m).unwrap(), (0, None));
        let d = status_message(NLMSG_DONE, 0, &[]);
        let m = Messages::new(&d).next().unwrap().unwrap();
        assert_eq!(parse_status(&m).unwrap(), (0, None));
    }

    #[test]
    fn push_message_pads_and_frames() {
        struct Three;
        impl Emitable for Three {
            fn buffer_len(&self) -> usize {
                3
            }
            fn emit(&self, b: &mut [u8]) {
                b.copy_from_slice(&[1, 2, 3]);
            }
        }
        let mut buf = Vec::new();
        push_message(&mut buf, 24, NLM_F_REQUEST, 5, &Three);
        push_message(&mut buf, 25, NLM_F_REQUEST, 6, &Three);
        assert_eq!(buf.len(), 2 * 20);
        let msgs: Vec<_> = Messages::new(&buf).collect::<Result<_, _>>().unwrap();
        assert_eq!(msgs[1].ty, 25);
        assert_eq!(msgs[1].seq, 6);
        assert_eq!(msgs[0].payload, &[1, 2, 3]);
    }
}
