//! Address parsing for validation: the common canonical IPv4 spelling
//! (`10.1.2.3`, `10.1.2.3/32`) parsed directly, everything else through
//! the standard and `ipnet` parsers, so the result is always theirs.

use ipnet::{IpNet, Ipv4Net};
use std::net::{IpAddr, Ipv4Addr};

/// `s` as a network, exactly as `s.parse::<IpNet>()` would read it.
pub(super) fn parse_net(s: &str) -> Option<IpNet> {
    if let Some((addr, len)) = s.split_once('/') {
        if let (Some(a), Some(l)) = (ipv4(addr), decimal(len)) {
            if l <= 32 {
                return Ipv4Net::new(a, l as u8).ok().map(IpNet::V4);
            }
        }
    }
    s.parse().ok()
}

/// `s` as an address, exactly as `s.parse::<IpAddr>()` would read it.
pub(super) fn parse_ip(s: &str) -> Option<IpAddr> {
    match ipv4(s) {
        Some(a) => Some(IpAddr::V4(a)),
        None => s.parse().ok(),
    }
}

/// Four canonical decimal octets; `None` for anything else (which the
/// callers hand to the full parsers).
fn ipv4(s: &str) -> Option<Ipv4Addr> {
    let mut octets = [0u8; 4];
    let mut parts = s.split('.');
    for o in &mut octets {
        *o = u8::try_from(decimal(parts.next()?)?).ok()?;
    }
    match parts.next() {
        None => Some(Ipv4Addr::from(octets)),
        Some(_) => None,
    }
}

/// One to three ASCII digits without a leading zero (or just `0`).
fn decimal(s: &str) -> Option<u32> {
    let b = s.as_bytes();
    if b.is_empty() || b.len() > 3 || (b.len() > 1 && b[0] == b'0') {
        return None;
    }
    b.iter().try_fold(0u32, |n, &c| {
        c.is_ascii_digit().then(|| n * 10 + u32::from(c - b'0'))
    })
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
