//! Standard base64 decoding for kubeconfig `*-data` fields. The `base64`
//! crate is in the tree only as ureq's private dependency; twenty lines here
//! keep it out of our dependency list.

/// Decodes standard (RFC 4648, `+/`) base64. Whitespace is skipped (people
/// wrap long values); padding is optional, but nothing may follow it.
pub(crate) fn decode(input: &str) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(input.len() / 4 * 3);
    let mut acc: u32 = 0;
    let mut bits = 0u32;
    let mut padding = 0usize;
    let mut symbols = 0usize;
    for (pos, c) in input.bytes().enumerate() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            b'=' => {
                padding += 1;
                continue;
            }
            b' ' | b'\t' | b'\r' | b'\n' => continue,
            _ => return Err(format!("invalid base64 character {:?} at {pos}", c as char)),
        };
        if padding > 0 {
            return Err(format!("base64 data continues after padding at {pos}"));
        }
        symbols += 1;
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    if symbols % 4 == 1 {
        return Err("truncated base64 data".to_string());
    }
    if padding > 2 || (padding > 0 && (symbols + padding) % 4 != 0) {
        return Err("bad base64 padding".to_string());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::decode;

    #[test]
    fn rfc4648_vectors() {
        let cases = [
            ("", ""),
            ("Zg==", "f"),
            ("Zm8=", "fo"),
            ("Zm9v", "foo"),
            ("Zm9vYg==", "foob"),
            ("Zm9vYmE=", "fooba"),
            ("Zm9vYmFy", "foobar"),
        ];
        for (enc, dec) in cases {
            assert_eq!(decode(enc).as_deref(), Ok(dec.as_bytes()), "{enc}");
        }
    }

    #[test]
    fn unpadded_and_wrapped() {
        assert_eq!(decode("Zm9vYg").as_deref(), Ok(&b"foob"[..]));
        assert_eq!(decode("Zm9v\nYmFy\n").as_deref(), Ok(&b"foobar"[..]));
        assert_eq!(decode("+/+/").as_deref(), Ok(&[0xfb, 0xff, 0xbf][..]));
    }

    #[test]
    fn rejects_garbage() {
        assert!(decode("Zm9v!").is_err());
        assert!(decode("Z").is_err());
        assert!(decode("Zg==Zg==").is_err());
        assert!(decode("Zg=").is_err());
        assert!(decode("Zm9v-_").is_err());
    }
}
