//! Address parsing for validation: the common canonical IPv4 spelling
//! (`10.1.2.3`, `10.1.2.3/32`) parsed directly, everything else through
//! the standard and `ipnet` parsers, so the result is always theirs.

use ipnet::{IpNet, Ipv4Net};
use std::net::{IpAddr, Ipv4Addr};

/// `s` as a network, exactly as `s.parse::<IpNet>()` would read it.
pub(super) fn parse_net(s: &str) -> Option<IpNet> {
    let b = s.as_bytes();
    if let Some((octets, i)) = dotted(b) {
        if b.get(i) == Some(&b'/') {
            if let Some(len) = prefix_len(b, i + 1).filter(|&l| l <= 32) {
                return Ipv4Net::new(Ipv4Addr::from(octets), len)
                    .ok()
                    .map(IpNet::V4);
            }
        }
    }
    s.parse().ok()
}

/// `s` as an address, exactly as `s.parse::<IpAddr>()` would read it.
pub(super) fn parse_ip(s: &str) -> Option<IpAddr> {
    match dotted(s.as_bytes()) {
        Some((octets, end)) if end == s.len() => Some(IpAddr::V4(Ipv4Addr::from(octets))),
        _ => s.parse().ok(),
    }
}

/// Whether `net` has bits set past its prefix (what `trunc` clears).
pub(super) fn has_host_bits(net: &IpNet) -> bool {
    match net {
        IpNet::V4(n) => {
            let host = u32::MAX.checked_shr(u32::from(n.prefix_len())).unwrap_or(0);
            n.addr().to_bits() & host != 0
        }
        IpNet::V6(_) => net.trunc() != *net,
    }
}

/// Four canonical decimal octets (one to three digits, no leading zero)
/// at the start of `b`, and the index after them; `None` for anything
/// else (which the callers hand to the full parsers). One plain loop: this
/// runs twice per route.
fn dotted(b: &[u8]) -> Option<([u8; 4], usize)> {
    let mut addr = 0u32;
    let mut i = 0;
    for k in 0..4 {
        if k > 0 {
            if b.get(i) != Some(&b'.') {
                return None;
            }
            i += 1;
        }
        let start = i;
        let mut octet = 0u32;
        while let Some(d) = b.get(i).map(|c| c.wrapping_sub(b'0')).filter(|d| *d <= 9) {
            if i - start == 3 {
                return None;
            }
            octet = octet * 10 + u32::from(d);
            i += 1;
        }
        if i == start || octet > 255 || (i - start > 1 && b[start] == b'0') {
            return None;
        }
        addr = (addr << 8) | octet;
    }
    Some((addr.to_be_bytes(), i))
}

/// A canonical decimal number of one or two digits that is all of
/// `b[start..]`.
fn prefix_len(b: &[u8], start: usize) -> Option<u8> {
    let digits = b.get(start..)?;
    if digits.is_empty() || digits.len() > 2 || (digits.len() > 1 && digits[0] == b'0') {
        return None;
    }
    let mut n = 0u8;
    for &c in digits {
        let d = c.wrapping_sub(b'0');
        if d > 9 {
            return None;
        }
        n = n * 10 + d;
    }
    Some(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agrees_with_the_standard_parsers() {
        let cases = [
            "10.1.2.3",
            "10.1.2.3/32",
            "0.0.0.0/0",
            "255.255.255.255/32",
            "10.1.2.3/33",
            "10.1.2.3/",
            "/24",
            "10.1.2/24",
            "10.1.2.3.4/24",
            "010.1.2.3/24",
            "10.1.2.3/024",
            "10.1.2.256/24",
            "1000.1.2.3",
            "10..2.3",
            "10.1.2.3 ",
            " 10.1.2.3",
            "+1.2.3.4",
            "10.1.2.3/8",
            "10.1.2.3/+8",
            "10.1.2.3/-1",
            "::1",
            "fd00::/8",
            "fd00::1/128",
            "::ffff:10.1.2.3",
            "::ffff:10.1.2.3/128",
            "10.1.2.3/1000",
            "",
            "/",
            ".",
            "1.2.3.4/0",
            "1.2.3.4/00",
            "1.2.3.04",
        ];
        for s in cases {
            assert_eq!(parse_net(s), s.parse::<IpNet>().ok(), "net {s:?}");
            assert_eq!(parse_ip(s), s.parse::<IpAddr>().ok(), "ip {s:?}");
        }
    }
}
