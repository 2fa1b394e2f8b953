//! Sample traffic for the demo: what the kernel does with packets the Rome
//! gateway really sees, asked with `route get` after the apply.
//!
//! Traffic from Milan arrives on `liqo-tunnel`; traffic from Rome's nodes
//! towards Milan arrives on a node's Geneve interface. Sources are ordinary
//! addresses of those sides (the rules select on iif, dst and fwmark only;
//! the source just has to be a plausible unicast address).

use crate::kernel::{Netlink, RouteGet};
use std::fmt::Write;
use std::net::{IpAddr, Ipv4Addr};

/// A Milan pod as Rome knows it (Milan's remapped pod CIDR 10.61.0.0/16).
const MILAN_POD: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 61, 0, 5));
/// nginx-test on rome-worker.
const ROME_WORKER_POD: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 200, 1, 11));

/// One `ip route get` question.
#[derive(Clone, Debug)]
pub struct Query {
    /// What the packet is, in words.
    pub label: &'static str,
    pub dst: IpAddr,
    pub src: Option<IpAddr>,
    pub iif: Option<&'static str>,
    pub fwmark: Option<u32>,
}

impl Query {
    /// The question as `ip route get` arguments.
    pub fn words(&self) -> String {
        let mut s = self.dst.to_string();
        if let Some(src) = self.src {
            let _ = write!(s, " from {src}");
        }
        if let Some(iif) = self.iif {
            let _ = write!(s, " iif {iif}");
        }
        if let Some(mark) = self.fwmark {
            let _ = write!(s, " mark {mark:#x}");
        }
        s
    }
}

/// The demo's questions, in the order they are printed.
pub fn queries() -> Vec<Query> {
    let v4 = |a, b, c, d| IpAddr::V4(Ipv4Addr::new(a, b, c, d));
    vec![
        Query {
            label: "Milan -> pod liqo-crd-replicator on rome-worker",
            dst: v4(10, 200, 1, 3),
            src: Some(MILAN_POD),
            iif: Some("liqo-tunnel"),
            fwmark: None,
        },
        Query {
            label: "Milan -> pod coredns on rome-control-plane",
            dst: v4(10, 200, 0, 2),
            src: Some(MILAN_POD),
            iif: Some("liqo-tunnel"),
            fwmark: None,
        },
        Query {
            label: "Milan -> service liqo-proxy (ClusterIP)",
            dst: v4(10, 60, 167, 119),
            src: Some(MILAN_POD),
            iif: Some("liqo-tunnel"),
            fwmark: None,
        },
        Query {
            label: "Milan -> service kubernetes.default (ClusterIP)",
            dst: v4(10, 60, 0, 1),
            src: Some(MILAN_POD),
            iif: Some("liqo-tunnel"),
            fwmark: None,
        },
        Query {
            label: "Milan -> NodePort reply for rome-worker (fwmark 2)",
            dst: v4(10, 70, 0, 0),
            src: Some(MILAN_POD),
            iif: Some("liqo-tunnel"),
            fwmark: Some(2),
        },
        Query {
            label: "rome-worker pod -> Milan's pod CIDR 10.200.0.0/16",
            dst: v4(10, 200, 2, 10),
            src: Some(ROME_WORKER_POD),
            iif: Some("liqo.zgdhd2x5fc"),
            fwmark: None,
        },
    ]
}

/// A question and the kernel's answer (or its refusal, as text).
#[derive(Clone, Debug)]
pub struct Answer {
    pub query: Query,
    pub result: Result<RouteGet, String>,
}

/// Asks the kernel every question; a refused lookup is an answer too.
pub fn ask(netlink: &mut Netlink, queries: Vec<Query>) -> Vec<Answer> {
    queries
        .into_iter()
        .map(|query| {
            let result = netlink
                .route_get(query.dst, query.src, query.iif, query.fwmark)
                .map_err(|e| e.to_string());
            Answer { query, result }
        })
        .collect()
}

/// The answer in `ip route get` words, with `table` named by `names`:
/// `10.200.1.3 from 10.61.0.5 via 10.80.0.2 dev liqo.zgdhd2x5fc table
/// rome-worker iif liqo-tunnel`.
pub fn render(answer: &Answer, names: &impl Fn(u32) -> String) -> String {
    let q = &answer.query;
    let got = match &answer.result {
        Ok(got) => got,
        // The kernel error already names the query in `ip` words.
        Err(e) => return e.clone(),
    };
    let mut s = q.dst.to_string();
    if let Some(src) = q.src {
        let _ = write!(s, " from {src}");
    }
    if let Some(gw) = got.gateway {
        let _ = write!(s, " via {gw}");
    }
    if let Some(dev) = &got.dev {
        let _ = write!(s, " dev {dev}");
    }
    let _ = write!(s, " table {}", names(got.table));
    if let Some(iif) = q.iif {
        let _ = write!(s, " iif {iif}");
    }
    if let Some(mark) = q.fwmark {
        let _ = write!(s, " mark {mark:#x}");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_like_ip_route_get() {
        let q = queries().remove(0);
        let answer = Answer {
            query: q,
            result: Ok(RouteGet {
                table: 7,
                gateway: Some(IpAddr::V4(Ipv4Addr::new(10, 80, 0, 2))),
                dev: Some("liqo.zgdhd2x5fc".into()),
                prefsrc: None,
            }),
        };
        let names = |id: u32| {
            if id == 7 {
                "rome-worker".into()
            } else {
                id.to_string()
            }
        };
        assert_eq!(
            render(&answer, &names),
            "10.200.1.3 from 10.61.0.5 via 10.80.0.2 dev liqo.zgdhd2x5fc table rome-worker iif liqo-tunnel"
        );
        let refused = Answer {
            query: queries().remove(4),
            result: Err("route get 10.70.0.0 mark 0x2: EHOSTUNREACH".into()),
        };
        assert_eq!(
            render(&refused, &names),
            "route get 10.70.0.0 mark 0x2: EHOSTUNREACH"
        );
    }
}
