//! Kernel integration tests for `routecfg::kernel`.
//!
//! NEEDS ROOT (CAP_NET_ADMIN and CAP_SYS_ADMIN): every test creates its own
//! network namespace `rcfg-k-<pid>-<n>` with `ip netns add`, runs its body
//! on a thread that has entered that namespace with setns(2), inspects it
//! with `ip -n <ns> ...`, and deletes it when done. The host's own routing
//! is never touched. Without root the tests fail with a clear message.

use ipnet::IpNet;
use routecfg::kernel::{ErrorKind, Event, KernelError, Monitor, Netlink, RouteFilter};
use routecfg::routing::{DEFAULT_PROTOCOL, Family, NextHop, Op, Route, Rule, Scope};
use std::collections::BTreeSet;
use std::fs::File;
use std::net::IpAddr;
use std::os::fd::AsRawFd;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

// ---------------------------------------------------------------- harness

/// A network namespace owned by one test; deleted on drop.
struct Ns {
    name: String,
}

static NEXT_NS: AtomicUsize = AtomicUsize::new(0);

fn require_root() {
    let status = std::fs::read_to_string("/proc/self/status").expect("read /proc/self/status");
    let euid = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .unwrap_or("?");
    assert_eq!(
        euid, "0",
        "kernel integration tests need root (they create network namespaces with `ip netns add`); \
         run them as root, e.g. `sudo -E cargo test --test kernel`"
    );
}

impl Ns {
    fn new() -> Ns {
        require_root();
        let n = NEXT_NS.fetch_add(1, Ordering::SeqCst);
        let name = format!("rcfg-k-{}-{n}", std::process::id());
        sh(&["ip", "netns", "add", &name]);
        let ns = Ns { name };
        ns.ip(&["link", "set", "lo", "up"]);
        ns
    }

    /// Runs `body` on a thread inside the namespace: sockets it opens
    /// belong to the namespace.
    fn run<T: Send>(&self, body: impl FnOnce() -> T + Send) -> T {
        let path = format!("/run/netns/{}", self.name);
        std::thread::scope(|s| {
            s.spawn(|| {
                let f = File::open(&path).unwrap_or_else(|e| panic!("open {path}: {e}"));
                // SAFETY: `f` is an open namespace file for the whole call;
                // setns only changes this (test-owned) thread's network
                // namespace and keeps no reference to memory of ours.
                let rc = unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) };
                assert_eq!(
                    rc,
                    0,
                    "setns into {path}: {}",
                    std::io::Error::last_os_error()
                );
                body()
            })
            .join()
            .unwrap_or_else(|p| std::panic::resume_unwind(p))
        })
    }

    /// `ip -n NS args...`, panicking on failure; returns stdout.
    fn ip(&self, args: &[&str]) -> String {
        let mut all = vec!["ip", "-n", self.name.as_str()];
        all.extend_from_slice(args);
        sh(&all)
    }

    /// `ip netns exec NS args...`.
    fn exec(&self, args: &[&str]) -> String {
        let mut all = vec!["ip", "netns", "exec", self.name.as_str()];
        all.extend_from_slice(args);
        sh(&all)
    }

    /// Number of routes `ip` lists in a table.
    fn count_routes(&self, family: &str, table: u32) -> usize {
        self.ip(&[family, "route", "show", "table", &table.to_string()])
            .lines()
            .filter(|l| !l.trim().is_empty())
            .count()
    }
}

impl Drop for Ns {
    fn drop(&mut self) {
        let out = Command::new("ip")
            .args(["netns", "del", &self.name])
            .output();
        if !matches!(&out, Ok(o) if o.status.success()) {
            eprintln!("warning: could not delete namespace {}: {out:?}", self.name);
        }
    }
}

fn sh(args: &[&str]) -> String {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .unwrap_or_else(|e| panic!("run {args:?}: {e}"));
    assert!(
        out.status.success(),
        "{args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn net(s: &str) -> IpNet {
    s.parse().expect("test CIDR")
}

fn ip(s: &str) -> IpAddr {
    s.parse().expect("test address")
}

fn route(table: u32, dst: &str) -> Route {
    Route {
        table,
        dst: net(dst),
        gateway: None,
        prefsrc: None,
        dev: None,
        onlink: false,
        scope: Scope::Global,
        protocol: DEFAULT_PROTOCOL,
        metric: None,
        nexthops: Default::default(),
    }
}

fn rule(family: Family, table: u32) -> Rule {
    Rule {
        family,
        table,
        priority: None,
        src: None,
        dst: None,
        iif: None,
        oif: None,
        fwmark: None,
        protocol: DEFAULT_PROTOCOL,
    }
}

fn all_ok(results: &[Result<(), KernelError>]) {
    let failed: Vec<String> = results
        .iter()
        .filter_map(|r| r.as_ref().err().map(ToString::to_string))
        .collect();
    assert!(
        failed.is_empty(),
        "{} ops failed, first: {:?}",
        failed.len(),
        failed.first()
    );
}

/// veth a0 <-> b0, both up; a0 has 10.1.0.1/24 and fd01::1/64.
fn veth_pair(nl: &mut Netlink) {
    nl.create_veth("a0", "b0").expect("create veth");
    nl.add_address("a0", net("10.1.0.1/24"))
        .expect("add v4 address");
    nl.add_address("a0", net("fd01::1/64"))
        .expect("add v6 address");
    nl.set_up("a0").expect("a0 up");
    nl.set_up("b0").expect("b0 up");
}

/// Reads monitor events until `want` matches one, for at most 5 s (a
/// bound against hanging, not a timing assertion).
fn wait_for(mon: &mut Monitor, seen: &mut Vec<Event>, want: impl Fn(&Event) -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        if seen.iter().any(&want) {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        let mut pfd = libc::pollfd {
            fd: mon.fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: `pfd` is a valid pollfd for the duration of the call and
        // we pass a count of exactly one.
        unsafe { libc::poll(&mut pfd, 1, 200) };
        seen.extend(mon.read_events().expect("read events"));
    }
}

// ---------------------------------------------------------------- tests

#[test]
fn veth_addresses_and_up() {
    let ns = Ns::new();
    ns.run(|| {
        let mut nl = Netlink::open().expect("open");
        veth_pair(&mut nl);
        let links = nl.links().expect("links");
        let a0 = links.iter().find(|l| l.name == "a0").expect("a0 listed");
        assert!(a0.up);
        assert!(links.iter().any(|l| l.name == "b0" && l.up));
        assert!(links.iter().any(|l| l.name == "lo"));
        // Creating it again is an error the caller sees.
        let again = nl.create_veth("a0", "b0").expect_err("veth exists");
        assert_eq!(again.errno, Some(libc::EEXIST));
        assert!(
            again
                .to_string()
                .contains("link add a0 type veth peer name b0"),
            "{again}"
        );
        // An address already present is fine.
        nl.add_address("a0", net("10.1.0.1/24"))
            .expect("address again");
        // Helpers on a missing link fail without asking the kernel.
        let missing = nl.set_up("nope").expect_err("no such link");
        assert_eq!(missing.kind, ErrorKind::LinkNotFound);
    });
    let addrs = ns.ip(&["-br", "addr", "show", "a0"]);
    assert!(addrs.contains("10.1.0.1/24"), "{addrs}");
    assert!(addrs.contains("fd01::1/64"), "{addrs}");
    let b0 = ns.ip(&["link", "show", "b0"]);
    assert!(b0.contains("UP"), "{b0}");
}

#[test]
fn thousand_routes_in_one_execute() {
    let ns = Ns::new();
    let table = 1_000_000;
    let ops: Vec<Op> = (0..1000u32)
        .map(|i| {
            Op::ReplaceRoute(Route {
                gateway: Some(ip("10.1.0.2")),
                dev: Some("a0".into()),
                ..route(table, &format!("10.100.{}.{}/32", i / 256, i % 256))
            })
        })
        .collect();
    ns.run(|| {
        let mut nl = Netlink::open().expect("open");
        veth_pair(&mut nl);
        let results = nl.execute(&ops);
        assert_eq!(results.len(), ops.len());
        all_ok(&results);
        // Replace is idempotent.
        all_ok(&nl.execute(&ops));
    });
    assert_eq!(ns.count_routes("-4", table), 1000);
}

#[test]
fn route_dump_round_trips() {
    let ns = Ns::new();
    let table = 210_412_509; // above 255: lives in RTA_TABLE only
    let wanted = [
        // scope link, device only
        Route {
            dev: Some("a0".into()),
            scope: Scope::Link,
            ..route(table, "10.2.0.0/24")
        },
        // onlink: gateway outside every connected subnet
        Route {
            gateway: Some(ip("192.168.50.1")),
            dev: Some("a0".into()),
            onlink: true,
            ..route(table, "10.3.0.0/16")
        },
        // gateway with preferred source and metric
        Route {
            gateway: Some(ip("10.1.0.2")),
            dev: Some("a0".into()),
            prefsrc: Some(ip("10.1.0.1")),
            metric: Some(20),
            nexthops: Default::default(),
            ..route(table, "10.4.0.1/32")
        },
        // default route of the table
        Route {
            gateway: Some(ip("10.1.0.2")),
            dev: Some("a0".into()),
            ..route(table, "0.0.0.0/0")
        },
        // IPv6 via gateway (IPv6 routes always carry a metric, 1024 by default)
        Route {
            gateway: Some(ip("fd01::2")),
            dev: Some("a0".into()),
            metric: Some(1024),
            nexthops: Default::default(),
            ..route(table, "fd10::/64")
        },
        // IPv6 device only, explicit metric
        Route {
            dev: Some("a0".into()),
            metric: Some(7),
            nexthops: Default::default(),
            ..route(table, "fd11::/48")
        },
    ];
    let foreign_protocol = Route {
        protocol: 3,
        dev: Some("a0".into()),
        ..route(table, "10.9.0.0/16")
    };
    let other_table = Route {
        dev: Some("a0".into()),
        ..route(table + 1, "10.2.0.0/24")
    };

    ns.run(|| {
        let mut nl = Netlink::open().expect("open");
        veth_pair(&mut nl);
        let mut ops: Vec<Op> = wanted.iter().cloned().map(Op::ReplaceRoute).collect();
        ops.push(Op::ReplaceRoute(foreign_protocol.clone()));
        ops.push(Op::ReplaceRoute(other_table.clone()));
        all_ok(&nl.execute(&ops));

        let got = nl
            .dump_routes(RouteFilter {
                table: Some(table),
                protocol: Some(DEFAULT_PROTOCOL),
            })
            .expect("dump");
        let got: BTreeSet<Route> = got.into_iter().collect();
        let want: BTreeSet<Route> = wanted.iter().cloned().collect();
        assert_eq!(got, want);

        let whole = nl
            .dump_routes(RouteFilter {
                table: Some(table),
                protocol: None,
            })
            .expect("dump table");
        assert_eq!(whole.len(), wanted.len() + 1);
        assert!(whole.contains(&foreign_protocol));

        let by_proto = nl
            .dump_routes(RouteFilter {
                table: None,
                protocol: Some(DEFAULT_PROTOCOL),
            })
            .expect("dump");
        assert!(by_proto.contains(&other_table));
        assert!(by_proto.iter().all(|r| r.protocol == DEFAULT_PROTOCOL));
        // The main table's kernel routes are neither ours nor unicast-local.
        assert!(by_proto.iter().all(|r| r.table != 254));

        // A table that never existed is empty, not an error.
        let none = nl
            .dump_routes(RouteFilter {
                table: Some(4_000_000_000),
                protocol: None,
            })
            .expect("dump");
        assert!(none.is_empty(), "{none:?}");

        // The main table holds only unicast routes in a dump (no local/broadcast).
        let main = nl
            .dump_routes(RouteFilter {
                table: Some(254),
                protocol: None,
            })
            .expect("main");
        assert!(
            main.iter()
                .any(|r| r.dst == net("10.1.0.0/24") && r.scope == Scope::Link)
        );
        assert!(
            main.iter().all(|r| r.dst != net("10.1.0.1/32")),
            "local route leaked: {main:?}"
        );

        // Deleting exactly what the dump returned works (scope link included).
        let dels: Vec<Op> = want.iter().cloned().map(Op::DelRoute).collect();
        all_ok(&nl.execute(&dels));
        let left = nl
            .dump_routes(RouteFilter {
                table: Some(table),
                protocol: None,
            })
            .expect("dump");
        assert_eq!(left, vec![foreign_protocol.clone()]);
    });
    assert_eq!(ns.count_routes("-4", table), 1);
    assert_eq!(ns.count_routes("-6", table), 0);
}

#[test]
fn rules_round_trip_and_eexist_is_present() {
    let ns = Ns::new();
    let table = 576_843_759;
    let wanted = [
        Rule {
            priority: Some(100),
            src: Some(net("10.10.0.0/16")),
            dst: Some(net("10.20.0.0/16")),
            ..rule(Family::V4, table)
        },
        Rule {
            priority: Some(101),
            iif: Some("a0".into()),
            ..rule(Family::V4, table)
        },
        Rule {
            priority: Some(102),
            oif: Some("b0".into()),
            fwmark: Some(0x42),
            ..rule(Family::V4, table)
        },
        // interfaces that do not exist (yet) are fine for rules
        Rule {
            priority: Some(103),
            iif: Some("liqo.nope".into()),
            ..rule(Family::V4, table)
        },
        Rule {
            priority: Some(104),
            src: Some(net("fd20::/64")),
            ..rule(Family::V6, table)
        },
        Rule {
            priority: Some(105),
            fwmark: Some(7),
            ..rule(Family::V6, table + 1)
        },
    ];
    ns.run(|| {
        let mut nl = Netlink::open().expect("open");
        veth_pair(&mut nl);
        let adds: Vec<Op> = wanted.iter().cloned().map(Op::AddRule).collect();
        all_ok(&nl.execute(&adds));
        // Adding again: EEXIST, reported as success.
        all_ok(&nl.execute(&adds));

        let rules = nl.dump_rules().expect("dump rules");
        let ours: BTreeSet<Rule> = rules.iter().filter(|r| r.table >= table).cloned().collect();
        assert_eq!(ours, wanted.iter().cloned().collect::<BTreeSet<_>>());
        // The default rules come back as plain lookup rules.
        for (family, prio, t) in [
            (Family::V4, 0, 255),
            (Family::V4, 32766, 254),
            (Family::V4, 32767, 253),
            (Family::V6, 0, 255),
            (Family::V6, 32766, 254),
        ] {
            assert!(
                rules
                    .iter()
                    .any(|r| r.family == family && r.priority == Some(prio) && r.table == t),
                "default rule {family} {prio} lookup {t} missing from {rules:?}"
            );
        }

        let dels: Vec<Op> = wanted.iter().cloned().map(Op::DelRule).collect();
        all_ok(&nl.execute(&dels));
        // Deleting again: ENOENT, reported as success.
        all_ok(&nl.execute(&dels));
        let rules = nl.dump_rules().expect("dump rules");
        assert!(rules.iter().all(|r| r.table < table), "{rules:?}");
    });
    let v4 = ns.ip(&["-4", "rule", "show"]);
    assert!(!v4.contains(&table.to_string()), "{v4}");
}

#[test]
fn rule_without_priority_gets_one_from_the_kernel() {
    let ns = Ns::new();
    let table = 3000;
    let r = Rule {
        src: Some(net("10.30.0.0/16")),
        ..rule(Family::V4, table)
    };
    ns.run(|| {
        let mut nl = Netlink::open().expect("open");
        all_ok(&nl.execute(&[Op::AddRule(r.clone())]));
        let got: Vec<Rule> = nl
            .dump_rules()
            .expect("dump")
            .into_iter()
            .filter(|x| x.table == table)
            .collect();
        assert_eq!(got.len(), 1, "{got:?}");
        let p = got[0].priority.expect("dumped rules carry their priority");
        assert!(p > 0 && p < 32766, "kernel-picked priority {p}");
        assert_eq!(got[0].selector(), r.selector());
        // Deleting the dumped rule (with its priority) removes it.
        all_ok(&nl.execute(&[Op::DelRule(got[0].clone())]));
        assert!(
            nl.dump_rules()
                .expect("dump")
                .iter()
                .all(|x| x.table != table)
        );
    });
}

#[test]
fn deleting_what_is_missing_is_ok() {
    let ns = Ns::new();
    ns.run(|| {
        let mut nl = Netlink::open().expect("open");
        veth_pair(&mut nl);
        let ops = vec![
            // table never created
            Op::DelRoute(Route {
                dev: Some("a0".into()),
                ..route(7777, "10.50.0.0/24")
            }),
            // table exists, route does not
            Op::ReplaceRoute(Route {
                dev: Some("a0".into()),
                ..route(7778, "10.51.0.0/24")
            }),
            Op::DelRoute(Route {
                dev: Some("a0".into()),
                ..route(7778, "10.52.0.0/24")
            }),
            Op::DelRoute(route(7778, "fd52::/64")),
            // device gone: its routes are gone too
            Op::DelRoute(Route {
                dev: Some("gone0".into()),
                ..route(7778, "10.53.0.0/24")
            }),
            Op::DelRule(Rule {
                priority: Some(555),
                ..rule(Family::V4, 7777)
            }),
            Op::DelRule(rule(Family::V6, 7777)),
        ];
        all_ok(&nl.execute(&ops));
    });
}

#[test]
fn pending_errors_are_per_op() {
    let ns = Ns::new();
    let table = 4242;
    ns.run(|| {
        let mut nl = Netlink::open().expect("open");
        veth_pair(&mut nl);
        let unreachable = Route {
            gateway: Some(ip("192.168.99.1")),
            ..route(table, "10.60.0.1/32")
        };
        let no_link = Route {
            gateway: Some(ip("10.1.0.2")),
            dev: Some("liqo.x".into()),
            ..route(table, "10.60.0.2/32")
        };
        let fine = Route {
            gateway: Some(ip("10.1.0.2")),
            dev: Some("a0".into()),
            ..route(table, "10.60.0.3/32")
        };
        let invalid = Route {
            prefsrc: Some(ip("10.99.99.99")),
            dev: Some("a0".into()),
            ..route(table, "10.60.0.4/32")
        };
        let unreachable_via_dev = Route {
            gateway: Some(ip("192.168.99.1")),
            dev: Some("a0".into()),
            ..route(table, "10.60.0.5/32")
        };
        let unreachable_v6 = Route {
            gateway: Some(ip("fd99::1")),
            ..route(table, "fd60::/64")
        };
        let ops = vec![
            Op::ReplaceRoute(unreachable),
            Op::ReplaceRoute(no_link),
            Op::ReplaceRoute(fine),
            Op::ReplaceRoute(invalid),
            Op::ReplaceRoute(unreachable_via_dev),
            Op::ReplaceRoute(unreachable_v6),
        ];
        let r = nl.execute(&ops);
        assert_eq!(r.len(), 6);

        let e = r[0].as_ref().expect_err("unreachable gateway");
        assert_eq!(e.errno_name(), "ENETUNREACH", "{e}");
        assert!(e.is_pending());
        assert!(
            e.to_string()
                .starts_with("route 10.60.0.1/32 via 192.168.99.1 table 4242: ENETUNREACH"),
            "{e}"
        );

        let e = r[1].as_ref().expect_err("missing link");
        assert_eq!(e.kind, ErrorKind::LinkNotFound);
        assert!(e.is_pending());
        assert!(e.to_string().contains("dev liqo.x"), "{e}");

        assert!(r[2].is_ok(), "{:?}", r[2]);

        let e = r[3].as_ref().expect_err("prefsrc not on this host");
        assert_eq!(e.errno, Some(libc::EINVAL), "{e}");
        assert!(!e.is_pending());
        assert!(e.ext_ack.is_some(), "kernel explains EINVAL: {e}");

        let e = r[4].as_ref().expect_err("gateway unreachable through a0");
        assert_eq!(e.errno_name(), "ENETUNREACH", "{e}");
        assert_eq!(
            e.ext_ack.as_deref(),
            Some("Nexthop has invalid gateway"),
            "{e}"
        );
        assert!(e.is_pending());

        let e = r[5].as_ref().expect_err("IPv6 gateway unreachable");
        assert_eq!(e.errno_name(), "EHOSTUNREACH", "{e}");
        assert!(e.is_pending());

        for (i, res) in r.iter().enumerate() {
            if let Err(e) = res {
                eprintln!("example error {i}: {e}");
            }
        }

        // Once the link exists, the same op goes through.
        nl.create_veth("liqo.x", "liqo.y").expect("veth");
        nl.set_up("liqo.x").expect("up");
        nl.set_up("liqo.y").expect("up");
        let later = Route {
            dev: Some("liqo.x".into()),
            scope: Scope::Link,
            ..route(table, "10.60.0.2/32")
        };
        all_ok(&nl.execute(&[Op::ReplaceRoute(later)]));
    });
    let shown = ns.ip(&["route", "show", "table", &table.to_string()]);
    assert!(shown.contains("10.60.0.3 via 10.1.0.2 dev a0"), "{shown}");
    assert!(shown.contains("10.60.0.2 dev liqo.x"), "{shown}");
}

#[test]
fn deleted_and_recreated_link_is_found_again() {
    let ns = Ns::new();
    ns.run(|| {
        let mut nl = Netlink::open().expect("open");
        veth_pair(&mut nl);
        let r = Route {
            dev: Some("a0".into()),
            scope: Scope::Link,
            ..route(99, "10.70.0.0/24")
        };
        all_ok(&nl.execute(&[Op::ReplaceRoute(r.clone())]));
        // Recreate a0 behind the cache's back: new ifindex, same name.
        ns.ip(&["link", "del", "a0"]);
        ns.ip(&["link", "add", "a0", "type", "veth", "peer", "name", "b0"]);
        ns.ip(&["link", "set", "a0", "up"]);
        // The cached index is stale: the kernel says ENODEV (pending), and
        // that makes the next batch refresh the cache first.
        let first = nl.execute(&[Op::ReplaceRoute(r.clone())]);
        let e = first[0].as_ref().expect_err("stale ifindex");
        assert_eq!(e.errno, Some(libc::ENODEV), "{e}");
        assert!(e.is_pending());
        all_ok(&nl.execute(&[Op::ReplaceRoute(r.clone())]));
        let got = nl
            .dump_routes(RouteFilter {
                table: Some(99),
                protocol: None,
            })
            .expect("dump");
        assert_eq!(got, vec![r]);
    });
}

#[test]
fn route_get_follows_rules() {
    let ns = Ns::new();
    ns.exec(&["sysctl", "-qw", "net.ipv4.ip_forward=1"]);
    let (marked, sourced) = (5000, 5001);
    ns.run(|| {
        let mut nl = Netlink::open().expect("open");
        veth_pair(&mut nl);
        let ops = vec![
            Op::AddRule(Rule {
                priority: Some(10),
                fwmark: Some(0x5),
                ..rule(Family::V4, marked)
            }),
            Op::AddRule(Rule {
                priority: Some(11),
                src: Some(net("10.1.0.0/24")),
                iif: Some("b0".into()),
                ..rule(Family::V4, sourced)
            }),
            Op::AddRule(Rule {
                priority: Some(12),
                fwmark: Some(0x5),
                ..rule(Family::V6, marked)
            }),
            Op::ReplaceRoute(Route {
                gateway: Some(ip("10.1.0.2")),
                dev: Some("a0".into()),
                ..route(marked, "0.0.0.0/0")
            }),
            Op::ReplaceRoute(Route {
                gateway: Some(ip("10.1.0.3")),
                ..route(sourced, "10.200.0.0/16")
            }),
            Op::ReplaceRoute(Route {
                gateway: Some(ip("fd01::2")),
                dev: Some("a0".into()),
                ..route(marked, "::/0")
            }),
        ];
        all_ok(&nl.execute(&ops));

        let g = nl
            .route_get(ip("10.200.1.1"), None, None, Some(0x5))
            .expect("get marked");
        assert_eq!(g.table, marked);
        assert_eq!(g.gateway, Some(ip("10.1.0.2")));
        assert_eq!(g.dev.as_deref(), Some("a0"));
        assert_eq!(g.prefsrc, Some(ip("10.1.0.1")));

        let g = nl
            .route_get(ip("10.200.1.1"), Some(ip("10.1.0.9")), Some("b0"), None)
            .expect("get forwarded");
        assert_eq!(g.table, sourced);
        assert_eq!(g.gateway, Some(ip("10.1.0.3")));
        assert_eq!(g.dev.as_deref(), Some("a0"));

        let e = nl
            .route_get(ip("10.200.1.1"), None, None, None)
            .expect_err("no route without mark");
        assert_eq!(e.errno_name(), "ENETUNREACH", "{e}");

        let g = nl
            .route_get(ip("fd99::1"), None, None, Some(0x5))
            .expect("get v6 marked");
        assert_eq!(g.table, marked);
        assert_eq!(g.gateway, Some(ip("fd01::2")));
        assert_eq!(g.dev.as_deref(), Some("a0"));

        let g = nl
            .route_get(ip("10.1.0.7"), None, None, None)
            .expect("get connected");
        assert_eq!(g.table, 254);
        assert_eq!(g.gateway, None);

        let e = nl
            .route_get(ip("10.1.0.7"), None, Some("nope"), None)
            .expect_err("no iif");
        assert_eq!(e.kind, ErrorKind::LinkNotFound);
    });
}

#[test]
fn monitor_sees_foreign_changes_only_when_asked() {
    let ns = Ns::new();
    let table = 6000;
    ns.run(|| {
        let mut nl = Netlink::open().expect("open");
        veth_pair(&mut nl);
        let mut mon = Monitor::open().expect("monitor");
        assert!(
            mon.read_events()
                .expect("drain")
                .iter()
                .all(|e| *e != Event::Overrun)
        );
        mon.ignore_port(Some(nl.port_id()));

        // Our own change: ignored.
        let own = Route {
            dev: Some("a0".into()),
            scope: Scope::Link,
            ..route(table, "10.80.0.0/24")
        };
        all_ok(&nl.execute(&[Op::ReplaceRoute(own.clone())]));
        let own_events = mon.read_events().expect("read");
        assert!(
            !own_events.contains(&Event::RouteAdded { table }),
            "{own_events:?}"
        );

        // Someone else's: seen.
        let mut seen = Vec::new();
        ns.ip(&[
            "route",
            "add",
            "10.81.0.0/24",
            "dev",
            "a0",
            "table",
            "6000",
            "proto",
            "static",
        ]);
        assert!(
            wait_for(&mut mon, &mut seen, |e| *e == Event::RouteAdded { table }),
            "{seen:?}"
        );
        ns.ip(&["route", "del", "10.80.0.0/24", "dev", "a0", "table", "6000"]);
        assert!(
            wait_for(&mut mon, &mut seen, |e| *e
                == Event::RouteRemoved {
                    table,
                    protocol: DEFAULT_PROTOCOL
                }),
            "{seen:?}"
        );
        ns.ip(&["link", "add", "m7", "type", "veth", "peer", "name", "m8"]);
        assert!(
            wait_for(&mut mon, &mut seen, |e| *e == Event::LinkAdded("m7".into())),
            "{seen:?}"
        );
        ns.ip(&["rule", "add", "pref", "50", "fwmark", "9", "table", "6000"]);
        assert!(
            wait_for(&mut mon, &mut seen, |e| *e == Event::RuleAdded { table }),
            "{seen:?}"
        );
        ns.ip(&["rule", "del", "pref", "50"]);
        assert!(
            wait_for(
                &mut mon,
                &mut seen,
                |e| matches!(e, Event::RuleRemoved { table: t, .. } if *t == table)
            ),
            "{seen:?}"
        );
        ns.ip(&["link", "del", "m7"]);
        assert!(
            wait_for(&mut mon, &mut seen, |e| *e
                == Event::LinkRemoved("m7".into())),
            "{seen:?}"
        );

        // Without the port filter our own changes show up too.
        mon.ignore_port(None);
        // `ip route add ... dev X` made it scope link: a delete must say so.
        let theirs = Route {
            protocol: 4,
            scope: Scope::Link,
            ..route(table, "10.81.0.0/24")
        };
        all_ok(&nl.execute(&[Op::DelRoute(theirs)]));
        assert!(
            wait_for(&mut mon, &mut seen, |e| *e
                == Event::RouteRemoved { table, protocol: 4 }),
            "{seen:?}"
        );
    });
}

#[test]
fn hundred_thousand_routes() {
    let ns = Ns::new();
    let table = 100_000_000;
    let small = 100_000_001;
    let n = 100_000u32;
    let ops: Vec<Op> = (0..n)
        .map(|i| {
            Op::ReplaceRoute(Route {
                gateway: Some(ip("10.1.0.2")),
                dev: Some("a0".into()),
                ..route(
                    table,
                    &format!("10.{}.{}.{}/32", 100 + i / 65536, (i / 256) % 256, i % 256),
                )
            })
        })
        .collect();
    let small_ops: Vec<Op> = (0..10_000u32)
        .map(|i| {
            Op::ReplaceRoute(Route {
                gateway: Some(ip("10.1.0.2")),
                ..route(small, &format!("10.200.{}.{}/32", i / 256, i % 256))
            })
        })
        .collect();
    ns.run(|| {
        let mut nl = Netlink::open().expect("open");
        veth_pair(&mut nl);
        // A monitor that is not read overflows: it must say so.
        let mut mon = Monitor::open().expect("monitor");

        let t = Instant::now();
        let results = nl.execute(&ops);
        let took = t.elapsed();
        all_ok(&results);
        eprintln!(
            "execute: {n} route replaces in {took:?} ({:.0} routes/s)",
            f64::from(n) / took.as_secs_f64()
        );

        let t = Instant::now();
        all_ok(&nl.execute(&ops));
        eprintln!(
            "execute: {n} route replaces again (no change) in {:?}",
            t.elapsed()
        );

        all_ok(&nl.execute(&small_ops));
        let t = Instant::now();
        let got = nl
            .dump_routes(RouteFilter {
                table: Some(small),
                protocol: Some(DEFAULT_PROTOCOL),
            })
            .expect("dump");
        eprintln!(
            "dump: 10000-route table (of {} routes) in {:?}",
            n + 10_000,
            t.elapsed()
        );
        assert_eq!(got.len(), 10_000);

        let t = Instant::now();
        let got = nl
            .dump_routes(RouteFilter {
                table: Some(table),
                protocol: None,
            })
            .expect("dump");
        eprintln!("dump: {n}-route table in {:?}", t.elapsed());
        assert_eq!(got.len(), n as usize);

        // Each call reads at most a budget's worth; the overrun shows up
        // once the backlog is read.
        let mut events = Vec::new();
        loop {
            let batch = mon.read_events().expect("events");
            if batch.is_empty() {
                break;
            }
            events.extend(batch);
        }
        assert!(
            events.contains(&Event::Overrun),
            "{} events, no overrun",
            events.len()
        );
        // After the overrun, reading goes on.
        ns.ip(&["route", "add", "10.99.0.0/24", "dev", "a0", "table", "77"]);
        let mut seen = Vec::new();
        assert!(
            wait_for(&mut mon, &mut seen, |e| *e
                == Event::RouteAdded { table: 77 }),
            "{seen:?}"
        );

        let dels: Vec<Op> = got.into_iter().map(Op::DelRoute).collect();
        let t = Instant::now();
        all_ok(&nl.execute(&dels[..n as usize / 2]));
        eprintln!("execute: {} route deletes in {:?}", n / 2, t.elapsed());
    });
    assert_eq!(ns.count_routes("-4", table), n as usize / 2);
}

#[test]
fn multipath_route_reads_with_its_next_hops() {
    let ns = Ns::new();
    let table = 8000;
    ns.run(|| {
        let mut nl = Netlink::open().expect("open");
        veth_pair(&mut nl);
        // A link made behind the cache's back: its next hop is named
        // after the dump, from a fresh link list.
        ns.ip(&["link", "add", "c0", "type", "veth", "peer", "name", "c1"]);
        ns.ip(&["addr", "add", "10.3.0.1/24", "dev", "c0"]);
        ns.ip(&["link", "set", "c0", "up"]);
        ns.ip(&["link", "set", "c1", "up"]);
        ns.exec(&[
            "ip",
            "route",
            "add",
            "10.8.0.0/16",
            "table",
            "8000",
            "proto",
            "114",
            "nexthop",
            "via",
            "10.3.0.2",
            "dev",
            "c0",
            "nexthop",
            "via",
            "10.1.0.3",
            "dev",
            "a0",
            "weight",
            "3",
            "nexthop",
            "via",
            "10.1.0.2",
            "dev",
            "a0",
        ]);
        let got = nl
            .dump_routes(RouteFilter {
                table: Some(table),
                protocol: None,
            })
            .expect("dump");
        // No top-level gateway or device; next hops named and sorted, the
        // weight as the API counts it (the kernel's minus one).
        let hop = |gw: &str, dev: &str, weight: u8| NextHop {
            gateway: Some(ip(gw)),
            dev: Some(dev.into()),
            weight,
            onlink: false,
        };
        let multipath = Route {
            nexthops: vec![
                hop("10.1.0.2", "a0", 0),
                hop("10.1.0.3", "a0", 2),
                hop("10.3.0.2", "c0", 0),
            ]
            .into(),
            ..route(table, "10.8.0.0/16")
        };
        assert_eq!(got, vec![multipath]);
        let single = Route {
            gateway: Some(ip("10.1.0.2")),
            dev: Some("a0".into()),
            ..route(table, "10.8.0.0/16")
        };
        all_ok(&nl.execute(&[Op::ReplaceRoute(single.clone())]));
        let got = nl
            .dump_routes(RouteFilter {
                table: Some(table),
                protocol: None,
            })
            .expect("dump");
        assert_eq!(got, vec![single]);
    });
}

#[test]
fn ipv6_routes_read_back_with_global_scope_and_metric_1024() {
    let ns = Ns::new();
    let table = 8100;
    ns.run(|| {
        let mut nl = Netlink::open().expect("open");
        veth_pair(&mut nl);
        let desired = Route {
            dev: Some("a0".into()),
            scope: Scope::Link,
            ..route(table, "fd33::/64")
        };
        all_ok(&nl.execute(&[Op::ReplaceRoute(desired.clone())]));
        let got = nl
            .dump_routes(RouteFilter {
                table: Some(table),
                protocol: None,
            })
            .expect("dump");
        // The kernel ignores scope for IPv6 and always sets a metric: a
        // planner comparing desired with dumped IPv6 routes must normalise.
        assert_eq!(
            got,
            vec![Route {
                scope: Scope::Global,
                metric: Some(1024),
                nexthops: Default::default(),
                ..desired
            }]
        );
    });
}
