//! Binding names exactly as upstream makes them, so that an upstream agent
//! and routecfg bound to the same target find each other's objects.

/// Longest object name Kubernetes accepts (a DNS subdomain).
const MAX_NAME: usize = 253;

/// `<rc>-<target>`; when that is longer than 253 characters the
/// RouteConfiguration part is cut so the result is exactly 253; when the
/// target name alone leaves no room (252 characters or more), `rb-` and the
/// lowercase hex of the 64-bit FNV-1a hash of `<rc>/<target>`.
///
/// The hex is not zero-padded (Go's `%x` of a uint64), which is what
/// upstream's formatting produces; a hash with leading zero nibbles is the
/// only case where the two could differ if upstream padded.
pub fn binding_name(rc: &str, target: &str) -> String {
    if target.len() >= MAX_NAME - 1 {
        return format!("rb-{:x}", fnv1a64(format!("{rc}/{target}").as_bytes()));
    }
    let joined = rc.len() + 1 + target.len();
    if joined <= MAX_NAME {
        return format!("{rc}-{target}");
    }
    let keep = floor_char_boundary(rc, MAX_NAME - 1 - target.len());
    format!("{}-{target}", &rc[..keep])
}

/// 64-bit FNV-1a (offset basis 0xcbf29ce484222325, prime 0x100000001b3).
fn fnv1a64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// Largest index <= `at` that is a char boundary of `s` (names are ASCII
/// in practice; this only keeps a foreign name from panicking the agent).
fn floor_char_boundary(s: &str, at: usize) -> usize {
    let mut i = at.min(s.len());
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_names_are_joined() {
        assert_eq!(binding_name("cfg", "node1"), "cfg-node1");
        assert_eq!(
            binding_name("gw-remote-ext", "gw-remote-7d9f-abcde"),
            "gw-remote-ext-gw-remote-7d9f-abcde"
        );
    }

    #[test]
    fn fnv1a64_matches_reference_vectors() {
        // Published FNV-1a 64 test vectors.
        assert_eq!(fnv1a64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a64(b"foobar"), 0x8594_4171_f739_67e8);
    }

    #[test]
    fn exactly_253_is_kept_and_254_cuts_the_rc_part() {
        let rc = "r".repeat(100);
        let target = "t".repeat(152);
        let n = binding_name(&rc, &target);
        assert_eq!(n.len(), 253);
        assert_eq!(n, format!("{rc}-{target}"));

        let rc = "r".repeat(101);
        let n = binding_name(&rc, &target);
        assert_eq!(n.len(), 253);
        assert_eq!(n, format!("{}-{target}", "r".repeat(100)));
    }

    #[test]
    fn long_rc_is_cut_and_target_kept_whole() {
        let rc = "a".repeat(300);
        let n = binding_name(&rc, "node1");
        assert_eq!(n.len(), 253);
        assert!(n.ends_with("-node1"));
        assert!(n.starts_with(&"a".repeat(247)));
    }

    #[test]
    fn target_of_251_leaves_one_rc_character() {
        let target = "t".repeat(251);
        assert_eq!(binding_name("xyz", &target), format!("x-{target}"));
    }

    #[test]
    fn target_of_252_or_more_hashes() {
        for len in [252, 253, 300] {
            let target = "t".repeat(len);
            let n = binding_name("cfg", &target);
            assert_eq!(
                n,
                format!("rb-{:x}", fnv1a64(format!("cfg/{target}").as_bytes()))
            );
            assert!(n.starts_with("rb-") && n.len() <= 3 + 16);
        }
        // Different inputs, different names.
        let t = "t".repeat(300);
        assert_ne!(binding_name("a", &t), binding_name("b", &t));
    }

    #[test]
    fn non_ascii_never_panics() {
        let rc = "é".repeat(200);
        let n = binding_name(&rc, "node");
        assert!(n.len() <= 253 && n.ends_with("-node"));
    }
}
