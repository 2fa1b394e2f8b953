//! Real network namespaces for kernel-level tests.
//!
//! Everything here runs inside `ip netns` namespaces the tests create and
//! delete, so the host's own links, rules and routes are never touched and
//! tests can run in parallel. Kernel state is read back through `ip -j -N`
//! (JSON, numeric) and parsed into comparable values, so assertions compare
//! sets of rules and routes rather than text.

use ipnet::IpNet;
use routecfg::routing::Family;
use serde_json::Value;
use std::fs::File;
use std::io::{self, BufRead, BufReader};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

/// Where `ip netns` keeps its namespace handles.
const NETNS_RUN_DIR: &str = "/var/run/netns";

static NEXT_ID: AtomicUsize = AtomicUsize::new(0);

/// `ip netns add`/`del` set up and tear down the /var/run/netns mount on
/// first and last use; parallel tests in one binary must not race on it.
static NETNS_LOCK: Mutex<()> = Mutex::new(());

fn netns_lock() -> std::sync::MutexGuard<'static, ()> {
    NETNS_LOCK
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Fails the calling test loudly unless it can create network namespaces:
/// these tests prove behaviour against a real kernel, and quietly skipping
/// them would report a pass for something never checked.
pub fn require_root() {
    // SAFETY: geteuid has no preconditions and cannot fail.
    let euid = unsafe { libc::geteuid() };
    assert!(
        euid == 0,
        "this test needs root (CAP_SYS_ADMIN and CAP_NET_ADMIN) to create network \
         namespaces with `ip netns`; run it as root, e.g. `sudo -E cargo test --test <name>` \
         (effective uid is {euid})"
    );
    let out = run(Command::new("ip").args(["netns", "list"]), "ip netns list");
    assert!(
        out.status.success(),
        "`ip netns` is not usable here, so namespace tests cannot run:\n{}",
        describe(&out)
    );
}

/// Runs a command, panicking with context if it cannot even be started.
pub fn run(cmd: &mut Command, what: &str) -> Output {
    cmd.output()
        .unwrap_or_else(|e| panic!("cannot run `{what}` (is iproute2 installed?): {e}"))
}

/// Exit status, stdout and stderr of a finished command, for messages.
pub fn describe(out: &Output) -> String {
    format!(
        "status: {}\n--- stdout ---\n{}--- stderr ---\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A network namespace that exists for as long as this guard does.
pub struct Netns {
    name: String,
}

impl Netns {
    /// Creates `rcfg-<tag>-<pid>-<n>` with its loopback up.
    pub fn new(tag: &str) -> Netns {
        let n = NEXT_ID.fetch_add(1, Ordering::SeqCst);
        let name = format!("rcfg-{tag}-{}-{n}", std::process::id());
        {
            let _guard = netns_lock();
            let out = run(
                Command::new("ip").args(["netns", "add", &name]),
                "ip netns add",
            );
            assert!(
                out.status.success(),
                "cannot create network namespace {name}:\n{}",
                describe(&out)
            );
        }
        let ns = Netns { name };
        ns.ip(&["link", "set", "lo", "up"]);
        ns
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Runs `argv` inside the namespace via `ip netns exec`.
    pub fn exec(&self, argv: &[&str]) -> Output {
        run(
            Command::new("ip")
                .args(["netns", "exec", &self.name])
                .args(argv),
            &format!("ip netns exec {} {}", self.name, argv.join(" ")),
        )
    }

    /// Runs `ip -n <ns> args...` and returns its output, success or not.
    pub fn try_ip(&self, args: &[&str]) -> Output {
        run(
            Command::new("ip").args(["-n", &self.name]).args(args),
            &format!("ip {}", args.join(" ")),
        )
    }

    /// Runs `ip -n <ns> args...`, asserting success; returns stdout.
    pub fn ip(&self, args: &[&str]) -> String {
        let out = self.try_ip(args);
        assert!(
            out.status.success(),
            "`ip {}` failed in namespace {}:\n{}",
            args.join(" "),
            self.name,
            describe(&out)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// [`Netns::ip`] with the arguments written as one line, split on
    /// whitespace: reads like the `ip` command it runs.
    pub fn ip_line(&self, line: &str) -> String {
        self.ip(&line.split_whitespace().collect::<Vec<_>>())
    }

    /// Runs `ip -j -N args...` (JSON, numeric ids) and returns the array.
    pub fn ip_json(&self, args: &[&str]) -> Vec<Value> {
        let mut full = vec!["-j", "-N"];
        full.extend_from_slice(args);
        json_array(&full, self.ip(&full).as_bytes())
    }

    /// Runs `f` on a thread that has entered this namespace, so sockets it
    /// opens and /proc/sys/net files it writes belong to the namespace
    /// while the test thread itself stays where it is.
    pub fn in_netns<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        let path = format!("{NETNS_RUN_DIR}/{}", self.name);
        std::thread::scope(|scope| {
            let worker = scope.spawn(|| {
                let handle = File::open(&path)
                    .unwrap_or_else(|e| panic!("cannot open namespace handle {path}: {e}"));
                // SAFETY: the descriptor is valid for the call; setns only
                // changes the calling thread's network namespace.
                let rc = unsafe { libc::setns(handle.as_raw_fd(), libc::CLONE_NEWNET) };
                assert!(
                    rc == 0,
                    "setns into {path} failed: {}",
                    io::Error::last_os_error()
                );
                f()
            });
            worker
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
        })
    }

    /// Writes a sysctl of this namespace; `key` is the path under
    /// /proc/sys, with slashes (interface names may contain dots).
    pub fn sysctl(&self, key: &str, value: &str) {
        let path = format!("/proc/sys/{key}");
        self.in_netns(|| {
            std::fs::write(&path, value)
                .unwrap_or_else(|e| panic!("cannot set {path} = {value} in {}: {e}", self.name))
        });
    }

    /// Sends up to `attempts` ICMP echo requests to `dst` from inside the
    /// namespace (one second each) and says whether any was answered. A
    /// raw socket keeps the tests free of a `ping` binary.
    pub fn ping(&self, dst: Ipv4Addr, attempts: u16) -> bool {
        let ident = (std::process::id() as u16) ^ (NEXT_ID.fetch_add(1, Ordering::SeqCst) as u16);
        self.in_netns(|| {
            (0..attempts).any(|seq| icmp_echo(dst, ident, seq, Duration::from_secs(1)))
        })
    }

    /// Every policy rule of both families.
    pub fn rules(&self) -> Vec<KRule> {
        let mut rules = Vec::new();
        for family in [Family::V4, Family::V6] {
            for item in self.ip_json(&[family_flag(family), "rule", "show"]) {
                rules.push(KRule::from_json(family, &item));
            }
        }
        rules
    }

    /// Every route of both families in table `table` (none if the kernel
    /// has no such table).
    pub fn routes(&self, table: u32) -> Vec<KRoute> {
        let id = table.to_string();
        let mut routes = Vec::new();
        for family in [Family::V4, Family::V6] {
            let args = [
                "-j",
                "-N",
                family_flag(family),
                "route",
                "show",
                "table",
                &id,
            ];
            let out = self.try_ip(&args);
            if !out.status.success() {
                let missing =
                    String::from_utf8_lossy(&out.stderr).contains("FIB table does not exist");
                assert!(
                    missing,
                    "`ip {}` failed:\n{}",
                    args.join(" "),
                    describe(&out)
                );
                continue;
            }
            for item in json_array(&args, &out.stdout) {
                routes.push(KRoute::from_json(family, Some(table), &item));
            }
        }
        routes
    }

    /// All rules and all routes of every table, sorted.
    pub fn state(&self) -> KernelState {
        let mut routes = Vec::new();
        for family in [Family::V4, Family::V6] {
            for item in self.ip_json(&[family_flag(family), "route", "show", "table", "all"]) {
                routes.push(KRoute::from_json(family, None, &item));
            }
        }
        let mut rules = self.rules();
        rules.sort();
        routes.sort();
        KernelState { rules, routes }
    }

    /// Waits until IPv6 address configuration of every link is finished
    /// (no tentative address, each address's `local` route installed):
    /// the kernel does that asynchronously, and a snapshot taken midway
    /// would differ from a later one without anybody changing anything.
    pub fn settle_ipv6(&self) {
        wait_until(
            &format!("IPv6 addresses of {} to settle", self.name),
            || {
                let mut addrs = Vec::new();
                for link in self.ip_json(&["-6", "addr", "show"]) {
                    for info in link["addr_info"].as_array().into_iter().flatten() {
                        if info["tentative"].as_bool() == Some(true) {
                            return false;
                        }
                        if let Some(local) = info["local"].as_str() {
                            addrs.push(parse_addr(local, info));
                        }
                    }
                }
                let locals: Vec<IpAddr> = self
                    .routes(255)
                    .iter()
                    .filter(|r| r.family == Family::V6 && r.kind == "2")
                    .map(|r| r.dst.addr())
                    .collect();
                addrs.iter().all(|a| locals.contains(a))
            },
        );
    }

    /// Starts `ip monitor route` in the namespace.
    pub fn monitor_routes(&self) -> Monitor {
        let mut child = Command::new("ip")
            .args(["-n", &self.name, "-N", "monitor", "route"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start `ip monitor route`: {e}"));
        let Some(stdout) = child.stdout.take() else {
            panic!("`ip monitor route` has no stdout pipe");
        };
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Monitor { child, lines }
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _guard = netns_lock();
        match Command::new("ip")
            .args(["netns", "del", &self.name])
            .output()
        {
            Ok(out) if out.status.success() => {}
            Ok(out) => eprintln!(
                "warning: could not delete namespace {}:\n{}",
                self.name,
                describe(&out)
            ),
            Err(e) => eprintln!("warning: could not delete namespace {}: {e}", self.name),
        }
    }
}

/// Polls `done` until it holds, for at most 10 s (a bound on waiting for
/// the kernel, not a timing assertion).
fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !done() {
        assert!(Instant::now() < deadline, "gave up waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn family_flag(family: Family) -> &'static str {
    match family {
        Family::V4 => "-4",
        Family::V6 => "-6",
    }
}

/// Creates a veth pair with `a_if` in `a` and `b_if` in `b`, both up. The
/// pair is created from inside `a`, never in the host namespace.
pub fn veth(a: &Netns, a_if: &str, b: &Netns, b_if: &str) {
    a.ip(&[
        "link",
        "add",
        a_if,
        "type",
        "veth",
        "peer",
        "name",
        b_if,
        "netns",
        b.name(),
    ]);
    a.ip(&["link", "set", a_if, "up"]);
    b.ip(&["link", "set", b_if, "up"]);
}

/// One ICMP echo over a raw socket of the calling thread's namespace.
/// Returns false on timeout, on a matching "unreachable" answer, or when
/// the kernel refuses to send (no route).
fn icmp_echo(dst: Ipv4Addr, ident: u16, seq: u16, wait: Duration) -> bool {
    // SAFETY: plain socket(2) call; the result is checked before use.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_RAW, libc::IPPROTO_ICMP) };
    assert!(
        fd >= 0,
        "cannot open a raw ICMP socket: {}",
        io::Error::last_os_error()
    );
    // SAFETY: fd is a fresh descriptor owned by nobody else.
    let socket = unsafe { OwnedFd::from_raw_fd(fd) };

    let mut packet = [0u8; 24];
    packet[0] = 8; // echo request
    packet[4..6].copy_from_slice(&ident.to_be_bytes());
    packet[6..8].copy_from_slice(&seq.to_be_bytes());
    packet[8..].copy_from_slice(b"routecfg-netns-t");
    let sum = checksum(&packet);
    packet[2..4].copy_from_slice(&sum.to_be_bytes());

    let addr = libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: 0,
        sin_addr: libc::in_addr {
            s_addr: u32::from_ne_bytes(dst.octets()),
        },
        sin_zero: [0; 8],
    };
    // SAFETY: packet and addr outlive the call; lengths match the buffers.
    let sent = unsafe {
        libc::sendto(
            socket.as_raw_fd(),
            packet.as_ptr().cast(),
            packet.len(),
            0,
            (&addr as *const libc::sockaddr_in).cast(),
            std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
        )
    };
    if sent < 0 {
        return false;
    }

    let deadline = Instant::now() + wait;
    let mut buf = [0u8; 1500];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return false;
        }
        let mut pfd = libc::pollfd {
            fd: socket.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: pfd is a valid pollfd for the duration of the call.
        let ready = unsafe { libc::poll(&mut pfd, 1, left.as_millis().max(1) as libc::c_int) };
        if ready <= 0 {
            continue;
        }
        // SAFETY: buf is writable for its whole length.
        let n = unsafe { libc::recv(socket.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
        if n <= 0 {
            continue;
        }
        match classify_reply(&buf[..n as usize], dst, ident, seq) {
            Reply::Echo => return true,
            Reply::Unreachable => return false,
            Reply::Other => {}
        }
    }
}

enum Reply {
    Echo,
    Unreachable,
    Other,
}

/// Reads an IPv4 datagram from a raw ICMP socket: our echo reply, an ICMP
/// error quoting our request, or something else.
fn classify_reply(datagram: &[u8], dst: Ipv4Addr, ident: u16, seq: u16) -> Reply {
    let Some(icmp) = datagram
        .first()
        .map(|b| usize::from(b & 0x0f) * 4)
        .and_then(|ihl| datagram.get(ihl..))
    else {
        return Reply::Other;
    };
    if icmp.len() < 8 {
        return Reply::Other;
    }
    let ours = |header: &[u8]| {
        header.len() >= 8
            && header[4..6] == ident.to_be_bytes()
            && header[6..8] == seq.to_be_bytes()
    };
    match icmp[0] {
        0 if datagram.get(12..16) == Some(&dst.octets()[..]) && ours(icmp) => Reply::Echo,
        3 | 11 => {
            let quoted = &icmp[8..];
            let inner = quoted
                .first()
                .map(|b| usize::from(b & 0x0f) * 4)
                .and_then(|ihl| quoted.get(ihl..));
            match inner {
                Some(inner) if inner.first() == Some(&8) && ours(inner) => Reply::Unreachable,
                _ => Reply::Other,
            }
        }
        _ => Reply::Other,
    }
}

fn checksum(data: &[u8]) -> u16 {
    let mut sum: u32 = data
        .chunks(2)
        .map(|pair| u32::from(u16::from_be_bytes([pair[0], *pair.get(1).unwrap_or(&0)])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// A policy rule as the kernel reports it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct KRule {
    pub family: Family,
    pub priority: u32,
    pub src: Option<IpNet>,
    pub dst: Option<IpNet>,
    pub iif: Option<String>,
    pub oif: Option<String>,
    pub fwmark: Option<u32>,
    pub fwmask: Option<u32>,
    /// 0 for rules whose action is not a table lookup.
    pub table: u32,
    pub protocol: u8,
}

impl KRule {
    fn from_json(family: Family, item: &Value) -> KRule {
        KRule {
            family,
            priority: item["priority"].as_u64().unwrap_or(0) as u32,
            src: json_net(family, item, "src", "srclen"),
            dst: json_net(family, item, "dst", "dstlen"),
            iif: json_str(item, "iif"),
            oif: json_str(item, "oif"),
            fwmark: json_str(item, "fwmark").map(|m| parse_hex(&m, item)),
            fwmask: json_str(item, "fwmask").map(|m| parse_hex(&m, item)),
            table: json_num(item, "table").unwrap_or(0),
            protocol: json_num(item, "protocol").unwrap_or(0),
        }
    }

    /// The rule with its priority blanked, for comparisons where the
    /// kernel may legitimately pick a different one.
    pub fn without_priority(&self) -> KRule {
        KRule {
            priority: 0,
            ..self.clone()
        }
    }
}

/// A route as the kernel reports it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct KRoute {
    pub family: Family,
    pub table: u32,
    /// `ip`'s route type, numeric under `-N` except "unicast".
    pub kind: String,
    pub dst: IpNet,
    pub gateway: Option<IpAddr>,
    pub dev: Option<String>,
    pub prefsrc: Option<IpAddr>,
    pub scope: u8,
    pub protocol: u8,
    pub metric: Option<u32>,
    pub onlink: bool,
}

impl KRoute {
    fn from_json(family: Family, table: Option<u32>, item: &Value) -> KRoute {
        let dst = match item["dst"].as_str() {
            Some("default") | None => match family {
                Family::V4 => IpNet::new(Ipv4Addr::UNSPECIFIED.into(), 0),
                Family::V6 => IpNet::new(Ipv6Addr::UNSPECIFIED.into(), 0),
            }
            .unwrap_or_else(|e| panic!("default route: {e}")),
            Some(text) => parse_net(text, None, item),
        };
        KRoute {
            family,
            table: table.or_else(|| json_num(item, "table")).unwrap_or(254),
            kind: json_str(item, "type").unwrap_or_else(|| "unicast".to_string()),
            dst,
            gateway: json_str(item, "gateway").map(|g| parse_addr(&g, item)),
            dev: json_str(item, "dev"),
            prefsrc: json_str(item, "prefsrc").map(|a| parse_addr(&a, item)),
            scope: json_num(item, "scope").unwrap_or(0),
            protocol: json_num(item, "protocol").unwrap_or(0),
            metric: item["metric"].as_u64().map(|m| m as u32),
            onlink: item["flags"]
                .as_array()
                .is_some_and(|flags| flags.iter().any(|f| f.as_str() == Some("onlink"))),
        }
    }
}

/// Everything routing-related a namespace holds, in a stable order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KernelState {
    pub rules: Vec<KRule>,
    pub routes: Vec<KRoute>,
}

impl KernelState {
    /// The state minus every rule pointing at, and route living in, one of
    /// `tables`.
    pub fn without_tables(&self, tables: &[u32]) -> KernelState {
        KernelState {
            rules: self
                .rules
                .iter()
                .filter(|r| !tables.contains(&r.table))
                .cloned()
                .collect(),
            routes: self
                .routes
                .iter()
                .filter(|r| !tables.contains(&r.table))
                .cloned()
                .collect(),
        }
    }

    /// The state with rule priorities blanked (and re-sorted).
    pub fn without_rule_priorities(&self) -> KernelState {
        let mut rules: Vec<KRule> = self.rules.iter().map(KRule::without_priority).collect();
        rules.sort();
        KernelState {
            rules,
            routes: self.routes.clone(),
        }
    }
}

/// Parses what `ip -j` printed: a JSON array, or nothing for "no entries".
fn json_array(args: &[&str], stdout: &[u8]) -> Vec<Value> {
    let text = String::from_utf8_lossy(stdout);
    if text.trim().is_empty() {
        return Vec::new();
    }
    match serde_json::from_str::<Value>(&text) {
        Ok(Value::Array(items)) => items,
        other => panic!(
            "`ip {}` printed no JSON array ({other:?}):\n{text}",
            args.join(" ")
        ),
    }
}

fn json_str(item: &Value, key: &str) -> Option<String> {
    item.get(key).and_then(Value::as_str).map(str::to_string)
}

/// A numeric field `ip -N` prints as a string (or, for some, a number).
fn json_num<T: TryFrom<u64>>(item: &Value, key: &str) -> Option<T> {
    let value = item.get(key)?;
    let n = match value {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.parse::<u64>().ok(),
        _ => None,
    }
    .unwrap_or_else(|| panic!("`{key}` is not numeric in {item}"));
    Some(T::try_from(n).unwrap_or_else(|_| panic!("`{key}` out of range in {item}")))
}

fn json_net(family: Family, item: &Value, key: &str, len_key: &str) -> Option<IpNet> {
    let text = item.get(key)?.as_str()?;
    if text == "all" {
        return None;
    }
    let len = item.get(len_key).and_then(Value::as_u64).map(|l| l as u8);
    let net = parse_net(text, len, item);
    assert_eq!(Family::of_net(&net), family, "family mismatch in {item}");
    Some(net)
}

fn parse_net(text: &str, len: Option<u8>, item: &Value) -> IpNet {
    if text.contains('/') {
        return text
            .parse()
            .unwrap_or_else(|e| panic!("bad prefix {text} in {item}: {e}"));
    }
    let addr = parse_addr(text, item);
    let full = if addr.is_ipv4() { 32 } else { 128 };
    IpNet::new(addr, len.unwrap_or(full))
        .unwrap_or_else(|e| panic!("bad prefix {text} in {item}: {e}"))
}

fn parse_addr(text: &str, item: &Value) -> IpAddr {
    text.parse()
        .unwrap_or_else(|e| panic!("bad address {text} in {item}: {e}"))
}

fn parse_hex(text: &str, item: &Value) -> u32 {
    let digits = text.trim_start_matches("0x");
    u32::from_str_radix(digits, 16).unwrap_or_else(|e| panic!("bad mark {text} in {item}: {e}"))
}

/// A running `ip monitor route`, read line by line.
pub struct Monitor {
    child: Child,
    lines: Receiver<String>,
}

/// Numbers the markers of [`Monitor::sync`], unique across monitors.
static NEXT_MARKER: AtomicUsize = AtomicUsize::new(1);

impl Monitor {
    /// Adds a marker route (a blackhole in 198.18.0.0/16, table 4242) and
    /// returns every event line seen before the marker's own. Once this
    /// returns, every change made earlier has been reported, so a test can
    /// bracket an operation with two syncs and see all events in between.
    /// `ip monitor` subscribes some time after it starts, so until a marker
    /// shows up a new one is added every quarter second.
    pub fn sync(&mut self, ns: &Netns) -> Vec<String> {
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut markers = Vec::new();
        let mut seen = Vec::new();
        loop {
            let n = NEXT_MARKER.fetch_add(1, Ordering::SeqCst);
            let marker = format!("198.18.{}.{}", (n >> 8) & 0xff, n & 0xff);
            ns.ip_line(&format!("route add blackhole {marker}/32 table 4242"));
            markers.push(marker);
            let retry = Instant::now() + Duration::from_millis(250);
            loop {
                let left = retry
                    .min(deadline)
                    .saturating_duration_since(Instant::now());
                match self.lines.recv_timeout(left) {
                    Ok(line)
                        if line
                            .split_whitespace()
                            .any(|w| markers.iter().any(|m| m == w)) =>
                    {
                        return seen;
                    }
                    Ok(line) => seen.push(line),
                    Err(RecvTimeoutError::Timeout) => break,
                    Err(RecvTimeoutError::Disconnected) => {
                        panic!("`ip monitor route` exited before a marker; saw {seen:#?}")
                    }
                }
            }
            assert!(
                Instant::now() < deadline,
                "`ip monitor route` never reported markers {markers:?}; saw {seen:#?}"
            );
        }
    }
}

impl Drop for Monitor {
    fn drop(&mut self) {
        // The child is ours; end it by its own handle.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Addresses and link names of the Rome test bed, named after the seed.
pub mod rome {
    use std::net::{Ipv4Addr, Ipv6Addr};

    /// The gateway's tunnel to Milan (and Milan's end of it).
    pub const TUNNEL: &str = "liqo-tunnel";
    /// The gateway's Geneve-like link to rome-worker.
    pub const WORKER_LINK: &str = "liqo.zgdhd2x5fc";
    /// The gateway's Geneve-like link to rome-control-plane.
    pub const CONTROL_PLANE_LINK: &str = "liqo.zqzt5nqktn";
    /// Each node's end of its link to the gateway.
    pub const NODE_LINK: &str = "liqo.gateway";

    /// Milan's end of the tunnel: the seed's next hop 169.254.18.1.
    pub const MILAN_TUNNEL_IP: Ipv4Addr = Ipv4Addr::new(169, 254, 18, 1);
    pub const GATEWAY_TUNNEL_IP: Ipv4Addr = Ipv4Addr::new(169, 254, 18, 2);
    pub const MILAN_TUNNEL_IP6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0x18, 0, 0, 0, 0, 0, 1);
    pub const GATEWAY_TUNNEL_IP6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0x18, 0, 0, 0, 0, 0, 2);

    /// The nodes' Geneve ends, as in the seed.
    pub const CONTROL_PLANE_GENEVE_IP: Ipv4Addr = Ipv4Addr::new(10, 80, 0, 1);
    pub const WORKER_GENEVE_IP: Ipv4Addr = Ipv4Addr::new(10, 80, 0, 2);
    /// The gateway's ends: /32 without a prefix route, so the gateway has
    /// no connected route to 10.80.0.0/24 and can reach the nodes only
    /// through the seed's tables.
    pub const GATEWAY_WORKER_SIDE_IP: Ipv4Addr = Ipv4Addr::new(10, 80, 0, 254);
    pub const GATEWAY_CONTROL_PLANE_SIDE_IP: Ipv4Addr = Ipv4Addr::new(10, 80, 0, 253);

    /// Pod IPs of the seed, held on each node's loopback.
    pub const WORKER_PODS: [Ipv4Addr; 7] = [
        Ipv4Addr::new(10, 200, 1, 3),
        Ipv4Addr::new(10, 200, 1, 6),
        Ipv4Addr::new(10, 200, 1, 4),
        Ipv4Addr::new(10, 200, 1, 2),
        Ipv4Addr::new(10, 200, 1, 5),
        Ipv4Addr::new(10, 200, 1, 7),
        Ipv4Addr::new(10, 200, 1, 11),
    ];
    pub const CONTROL_PLANE_PODS: [Ipv4Addr; 3] = [
        Ipv4Addr::new(10, 200, 0, 2),
        Ipv4Addr::new(10, 200, 0, 4),
        Ipv4Addr::new(10, 200, 0, 3),
    ];
    /// kubernetes.default and liqo-proxy ClusterIPs, on both nodes'
    /// loopback (the two extcidr tables race for them by rule order).
    pub const KUBERNETES_SERVICE_IP: Ipv4Addr = Ipv4Addr::new(10, 60, 0, 1);
    pub const LIQO_PROXY_SERVICE_IP: Ipv4Addr = Ipv4Addr::new(10, 60, 167, 119);
    /// A Milan pod as seen from Rome, on Milan's loopback: reachable from
    /// the nodes only through the `milan` table.
    pub const MILAN_POD: Ipv4Addr = Ipv4Addr::new(10, 200, 99, 1);
}

/// The Rome cluster of the seed as four namespaces: the gateway, Milan at
/// the far end of `liqo-tunnel`, and the two nodes behind the gateway's
/// Geneve-like links. Without policy routing on the gateway no traffic
/// crosses it; the seed's tables are exactly what makes it work.
pub struct RomeTopology {
    pub gateway: Netns,
    pub milan: Netns,
    pub worker: Netns,
    pub control_plane: Netns,
}

impl RomeTopology {
    pub fn build() -> RomeTopology {
        use rome::*;
        require_root();
        let topo = RomeTopology {
            gateway: Netns::new("gw"),
            milan: Netns::new("milan"),
            worker: Netns::new("worker"),
            control_plane: Netns::new("cp"),
        };
        let (gw, milan) = (&topo.gateway, &topo.milan);
        let (worker, cp) = (&topo.worker, &topo.control_plane);
        for ns in [gw, milan, worker, cp] {
            // Forwarded traffic comes back on other links than the one the
            // reverse lookup (which ignores iif rules) would pick.
            ns.sysctl("net/ipv4/conf/all/rp_filter", "0");
            ns.sysctl("net/ipv4/conf/default/rp_filter", "0");
            // Links come up usable at once instead of after DAD.
            ns.sysctl("net/ipv6/conf/all/accept_dad", "0");
            ns.sysctl("net/ipv6/conf/default/accept_dad", "0");
        }
        gw.sysctl("net/ipv4/ip_forward", "1");

        veth(gw, TUNNEL, milan, TUNNEL);
        veth(gw, WORKER_LINK, worker, NODE_LINK);
        veth(gw, CONTROL_PLANE_LINK, cp, NODE_LINK);
        for link in [TUNNEL, WORKER_LINK, CONTROL_PLANE_LINK] {
            gw.sysctl(&format!("net/ipv4/conf/{link}/rp_filter"), "0");
        }

        // Gateway: a connected /30 on the tunnel (how the tunnel works),
        // host-only addresses towards the nodes.
        gw.ip_line(&format!("addr add {GATEWAY_TUNNEL_IP}/30 dev {TUNNEL}"));
        gw.ip_line(&format!(
            "-6 addr add {GATEWAY_TUNNEL_IP6}/64 dev {TUNNEL} nodad"
        ));
        gw.ip_line(&format!(
            "addr add {GATEWAY_WORKER_SIDE_IP}/32 dev {WORKER_LINK} noprefixroute"
        ));
        gw.ip_line(&format!(
            "addr add {GATEWAY_CONTROL_PLANE_SIDE_IP}/32 dev {CONTROL_PLANE_LINK} noprefixroute"
        ));

        // Milan: its tunnel end, one "remote pod", and routes back to Rome.
        milan.ip_line(&format!("addr add {MILAN_TUNNEL_IP}/30 dev {TUNNEL}"));
        milan.ip_line(&format!(
            "-6 addr add {MILAN_TUNNEL_IP6}/64 dev {TUNNEL} nodad"
        ));
        milan.ip_line(&format!("addr add {MILAN_POD}/32 dev lo"));
        for net in [
            "10.200.0.0/16",
            "10.60.0.0/16",
            "10.70.0.0/16",
            "10.80.0.0/24",
        ] {
            milan.ip_line(&format!("route add {net} via {GATEWAY_TUNNEL_IP}"));
        }

        // Nodes: Geneve end, pods and services on loopback, default route
        // back through the gateway.
        let nodes = [
            (
                worker,
                WORKER_GENEVE_IP,
                GATEWAY_WORKER_SIDE_IP,
                &WORKER_PODS[..],
            ),
            (
                cp,
                CONTROL_PLANE_GENEVE_IP,
                GATEWAY_CONTROL_PLANE_SIDE_IP,
                &CONTROL_PLANE_PODS[..],
            ),
        ];
        for (node, node_ip, gw_side, pods) in nodes {
            node.ip_line(&format!("addr add {node_ip}/24 dev {NODE_LINK}"));
            for ip in pods
                .iter()
                .chain(&[KUBERNETES_SERVICE_IP, LIQO_PROXY_SERVICE_IP])
            {
                node.ip_line(&format!("addr add {ip}/32 dev lo"));
            }
            node.ip_line(&format!("route add default via {gw_side}"));
        }
        for ns in [gw, milan, worker, cp] {
            ns.settle_ipv6();
        }
        topo
    }

    /// Installs the seed's gateway tables with plain `ip` commands stamped
    /// `proto <protocol>`, in an order where every gateway is resolvable
    /// when its route is added: the gw-node tables first (they make
    /// 10.80.0.x reachable), then the rest. Validates the bed and the
    /// tests' own expectations without routecfg.
    pub fn install_seed_by_hand(&self, protocol: &str) {
        use rome::*;
        let id = |name: &str| routecfg::table_id::table_id(name);
        let rule = |table: u32, selector: &str| {
            let line = format!("rule add {selector} table {table} proto {protocol}");
            self.gateway.ip_line(&line);
        };
        let route = |table: u32, route: &str| {
            let line = format!("route replace {route} table {table} proto {protocol}");
            self.gateway.ip_line(&line);
        };

        let gw_node = [
            (
                "rome-worker",
                WORKER_LINK,
                WORKER_GENEVE_IP,
                &WORKER_PODS[..],
            ),
            (
                "rome-control-plane",
                CONTROL_PLANE_LINK,
                CONTROL_PLANE_GENEVE_IP,
                &CONTROL_PLANE_PODS[..],
            ),
        ];
        for (name, link, node_ip, pods) in gw_node {
            let table = id(name);
            rule(table, &format!("to {node_ip}/32"));
            route(table, &format!("{node_ip}/32 dev {link} scope link"));
            rule(table, &format!("iif {TUNNEL}"));
            for pod in pods {
                route(table, &format!("{pod}/32 via {node_ip}"));
            }
        }
        let per_node = [
            ("rome-worker", "2", WORKER_LINK, WORKER_GENEVE_IP),
            (
                "rome-control-plane",
                "1",
                CONTROL_PLANE_LINK,
                CONTROL_PLANE_GENEVE_IP,
            ),
        ];
        for (node, mark, link, node_ip) in per_node {
            let extcidr = id(&format!("{node}-extcidr"));
            rule(extcidr, &format!("iif {TUNNEL}"));
            for svc in [KUBERNETES_SERVICE_IP, LIQO_PROXY_SERVICE_IP] {
                route(extcidr, &format!("{svc}/32 via {node_ip} dev {link}"));
            }
            let nodeport = id(&format!("{node}-service-nodeport-routing"));
            rule(nodeport, &format!("to 10.70.0.0/32 fwmark {mark}"));
            route(nodeport, &format!("10.70.0.0/32 via {node_ip} dev {link}"));
        }
        let milan = id("milan");
        for link in [CONTROL_PLANE_LINK, WORKER_LINK] {
            for net in ["10.200.0.0/16", "10.70.0.0/16"] {
                rule(milan, &format!("to {net} iif {link}"));
                route(milan, &format!("{net} via {MILAN_TUNNEL_IP}"));
            }
        }
    }

    /// The gateway's answer to "where would a packet from Milan to `dst`
    /// arriving on the tunnel go": (table, gateway, dev).
    pub fn route_from_milan(&self, dst: Ipv4Addr) -> Option<(u32, Option<IpAddr>, Option<String>)> {
        let out = self.gateway.try_ip(&[
            "-j",
            "-N",
            "route",
            "get",
            &dst.to_string(),
            "from",
            &rome::MILAN_TUNNEL_IP.to_string(),
            "iif",
            rome::TUNNEL,
        ]);
        if !out.status.success() {
            return None;
        }
        let items = json_array(&["route", "get"], &out.stdout);
        let item = items.first()?;
        if json_str(item, "type").is_some_and(|t| t != "unicast") {
            return None;
        }
        Some((
            json_num(item, "table").unwrap_or(254),
            json_str(item, "gateway").map(|g| parse_addr(&g, item)),
            json_str(item, "dev"),
        ))
    }
}
