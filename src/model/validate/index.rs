//! Finds the first route defined for a dst while routes stream in:
//! an open-addressing table of positions into the validator's route list,
//! 4 bytes a slot, so an object with 100,000 routes costs about 1 MiB here
//! instead of a map holding copies of every route.

use crate::routing::Route;
use ipnet::IpNet;

#[derive(Default)]
pub(super) struct DstIndex {
    /// Position + 1 in the route list; 0 is an empty slot. The length is
    /// a power of two, kept at least twice the number of entries.
    slots: Vec<u32>,
    len: usize,
}

impl DstIndex {
    /// The position in `routes` of the route for `dst`; when there is
    /// none, records that `dst` will be at `routes.len()` (the caller
    /// pushes it) and returns `None`.
    pub fn get_or_insert(&mut self, routes: &[Route], dst: IpNet) -> Option<usize> {
        if (self.len + 1) * 2 > self.slots.len() {
            self.grow(routes);
        }
        let mask = self.slots.len() - 1;
        let mut i = hash(&dst) as usize & mask;
        loop {
            match self.slots[i] {
                0 => {
                    self.slots[i] = u32::try_from(routes.len() + 1).unwrap_or(u32::MAX);
                    self.len += 1;
                    return None;
                }
                p if routes[p as usize - 1].dst == dst => return Some(p as usize - 1),
                _ => i = (i + 1) & mask,
            }
        }
    }

    fn grow(&mut self, routes: &[Route]) {
        let size = (self.slots.len() * 2).max(64);
        let mut slots = vec![0u32; size];
        let mask = size - 1;
        for &p in self.slots.iter().filter(|&&p| p != 0) {
            let mut i = hash(&routes[p as usize - 1].dst) as usize & mask;
            while slots[i] != 0 {
                i = (i + 1) & mask;
            }
            slots[i] = p;
        }
        self.slots = slots;
    }
}

/// A multiplicative hash of the network (not DoS-resistant, which input
/// files written by the operator do not need).
fn hash(net: &IpNet) -> u64 {
    let (bits, extra) = match net {
        IpNet::V4(n) => (u128::from(n.addr().to_bits()), u64::from(n.prefix_len())),
        IpNet::V6(n) => (n.addr().to_bits(), u64::from(n.prefix_len()) | 0x100),
    };
    const K: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut h = (bits as u64 ^ extra).wrapping_mul(K);
    h = (h.rotate_left(29) ^ (bits >> 64) as u64).wrapping_mul(K);
    h ^ (h >> 32)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::routing::Scope;

    fn route(dst: &str) -> Route {
        Route {
            table: 1,
            dst: dst.parse().unwrap(),
            gateway: None,
            prefsrc: None,
            dev: None,
            onlink: false,
            scope: Scope::Link,
            protocol: 114,
            metric: None,
            nexthops: Default::default(),
        }
    }

    #[test]
    fn finds_the_first_position_of_every_dst_across_growth() {
        let mut index = DstIndex::default();
        let mut routes = Vec::new();
        let dsts: Vec<String> = (0..3000)
            .map(|i| match i % 3 {
                0 => format!("10.{}.{}.0/24", i / 256, i % 256),
                1 => format!("10.{}.{}.0/32", i / 256, i % 256),
                _ => format!("fd00::{i:x}/128"),
            })
            .collect();
        for d in &dsts {
            assert_eq!(
                index.get_or_insert(&routes, d.parse().unwrap()),
                None,
                "{d}"
            );
            routes.push(route(d));
        }
        for (k, d) in dsts.iter().enumerate() {
            assert_eq!(
                index.get_or_insert(&routes, d.parse().unwrap()),
                Some(k),
                "{d}"
            );
        }
        assert_eq!(
            index.get_or_insert(&routes, "10.0.0.0/25".parse().unwrap()),
            None
        );
    }
}
