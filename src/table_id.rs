//! Table ids derived from table names, bit-for-bit the same as upstream
//! Liqo, so both implementations agree on which kernel table a name means.

/// Returns the kernel table id upstream Liqo uses for `name`.
///
/// Upstream takes the first four bytes of SHA-256(name), halves the most
/// significant one (keeping ids below 2^31) and sets the low bit of the
/// second (keeping ids away from the reserved 0..=255 range), then reads
/// them little-endian.
pub fn table_id(name: &str) -> u32 {
    let hash = ring::digest::digest(&ring::digest::SHA256, name.as_bytes());
    let digest = hash.as_ref();
    let b0 = u32::from(digest[0]);
    let b1 = u32::from(digest[1] | 1);
    let b2 = u32::from(digest[2]);
    let b3 = u32::from(digest[3] >> 1);
    (b3 << 24) | (b2 << 16) | (b1 << 8) | b0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_upstream_examples() {
        assert_eq!(table_id("rome-worker"), 210_412_509);
        assert_eq!(table_id("milan"), 576_843_759);
    }

    #[test]
    fn ids_avoid_reserved_tables_and_sign_bit() {
        for name in [
            "",
            "a",
            "main",
            "local",
            "rome-control-plane",
            "x".repeat(300).as_str(),
        ] {
            let id = table_id(name);
            assert!(id < 1 << 31, "{name}: {id}");
            assert!(id & 0x100 != 0, "{name}: {id} has bit 8 clear");
        }
    }
}
