//! Sample traffic for the demo: packets the Rome gateway really sees,
//! explained with [`crate::explain`] (the code of `routecfg explain`)
//! after the apply.
//!
//! Traffic from Milan arrives on `liqo-tunnel`; traffic from Rome's nodes
//! towards Milan arrives on a node's Geneve interface. Sources are ordinary
//! addresses of those sides (the rules select on iif, dst and fwmark only;
//! the source just has to be a plausible unicast address).

use crate::explain::Flow;
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

impl Query {
    /// The question as a flow for [`crate::explain`].
    pub fn flow(&self) -> Flow {
        Flow {
            dst: Some(self.dst),
            src: self.src,
            iif: self.iif.map(String::from),
            oif: None,
            mark: self.fwmark,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn questions_read_like_ip_route_get() {
        let q = queries().remove(4);
        assert_eq!(
            q.words(),
            "10.70.0.0 from 10.61.0.5 iif liqo-tunnel mark 0x2"
        );
        assert_eq!(q.flow().words(), q.words());
    }
}
