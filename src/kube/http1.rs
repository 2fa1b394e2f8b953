//! The small part of HTTP/1.1 the watch stream needs: a response head and
//! a body framed by chunks, a length, or the connection closing. Written as
//! push parsers so bytes can arrive split at any point (TLS records, TCP
//! segments and HTTP chunks have unrelated boundaries).

/// Largest response head we accept; the API server's are a few hundred bytes.
const MAX_HEAD: usize = 64 * 1024;

/// What the status line and headers said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ResponseHead {
    pub(crate) status: u16,
    pub(crate) framing: Framing,
}

/// How the end of the body is marked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Framing {
    Chunked,
    Length(u64),
    Close,
}

/// Parses the head once `buf` holds all of it: `Ok(None)` means "need more
/// bytes"; `Ok(Some((head, n)))` means the body starts at `buf[n..]`.
pub(crate) fn parse_head(buf: &[u8]) -> Result<Option<(ResponseHead, usize)>, String> {
    let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
        if buf.len() > MAX_HEAD {
            return Err(format!("response head larger than {MAX_HEAD} bytes"));
        }
        return Ok(None);
    };
    let text =
        std::str::from_utf8(&buf[..end]).map_err(|_| "response head is not UTF-8".to_string())?;
    let mut lines = text.split("\r\n");
    let status_line = lines.next().unwrap_or("");
    let mut parts = status_line.splitn(3, ' ');
    let version = parts.next().unwrap_or("");
    if !version.starts_with("HTTP/1.") {
        return Err(format!("not an HTTP/1.x response: {status_line:?}"));
    }
    let status: u16 = parts
        .next()
        .and_then(|s| s.parse().ok())
        .filter(|s| (100..1000).contains(s))
        .ok_or_else(|| format!("bad status line {status_line:?}"))?;
    let mut chunked = false;
    let mut length = None;
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            return Err(format!("bad header line {line:?}"));
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("transfer-encoding") {
            chunked = value
                .rsplit(',')
                .next()
                .is_some_and(|last| last.trim().eq_ignore_ascii_case("chunked"));
        } else if name.eq_ignore_ascii_case("content-length") {
            length = Some(
                value
                    .parse::<u64>()
                    .map_err(|_| format!("bad Content-Length {value:?}"))?,
            );
        }
    }
    let framing = if chunked {
        Framing::Chunked
    } else if let Some(n) = length {
        Framing::Length(n)
    } else {
        Framing::Close
    };
    Ok(Some((ResponseHead { status, framing }, end + 4)))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Chunk {
    Size { value: u64, digits: u8 },
    Extension { value: u64 },
    SizeLf { value: u64 },
    Data(u64),
    DataCr,
    DataLf,
    Trailer { line_start: bool },
    TrailerLf,
    Done,
}

/// Turns a framed body back into the bytes the server wrote.
#[derive(Debug)]
pub(crate) struct BodyDecoder {
    framing: Framing,
    chunk: Chunk,
    remaining: u64,
}

impl BodyDecoder {
    pub(crate) fn new(framing: Framing) -> BodyDecoder {
        BodyDecoder {
            framing,
            chunk: Chunk::Size {
                value: 0,
                digits: 0,
            },
            remaining: match framing {
                Framing::Length(n) => n,
                _ => 0,
            },
        }
    }

    /// True once the framing says the body is complete.
    pub(crate) fn is_done(&self) -> bool {
        match self.framing {
            Framing::Chunked => self.chunk == Chunk::Done,
            Framing::Length(_) => self.remaining == 0,
            Framing::Close => false,
        }
    }

    /// Decodes all of `input`, appending body bytes to `out`. Bytes after
    /// the end of the body are ignored (we always send `Connection: close`).
    pub(crate) fn feed(&mut self, input: &[u8], out: &mut Vec<u8>) -> Result<(), String> {
        match self.framing {
            Framing::Close => {
                out.extend_from_slice(input);
                Ok(())
            }
            Framing::Length(_) => {
                let take = input
                    .len()
                    .min(usize::try_from(self.remaining).unwrap_or(usize::MAX));
                out.extend_from_slice(&input[..take]);
                self.remaining -= take as u64;
                Ok(())
            }
            Framing::Chunked => self.feed_chunked(input, out),
        }
    }

    fn feed_chunked(&mut self, mut input: &[u8], out: &mut Vec<u8>) -> Result<(), String> {
        while let Some((&b, rest)) = input.split_first() {
            if let Chunk::Data(n) = self.chunk {
                let take = input.len().min(usize::try_from(n).unwrap_or(usize::MAX));
                out.extend_from_slice(&input[..take]);
                input = &input[take..];
                let left = n - take as u64;
                self.chunk = if left == 0 {
                    Chunk::DataCr
                } else {
                    Chunk::Data(left)
                };
                continue;
            }
            input = rest;
            self.chunk = match self.chunk {
                Chunk::Size { value, digits } => match b {
                    b'0'..=b'9' | b'a'..=b'f' | b'A'..=b'F' => {
                        if digits >= 15 {
                            return Err("chunk size too large".to_string());
                        }
                        let d = (b as char).to_digit(16).unwrap_or(0);
                        Chunk::Size {
                            value: value * 16 + u64::from(d),
                            digits: digits + 1,
                        }
                    }
                    _ if digits == 0 => return Err(format!("bad chunk size byte {b:#04x}")),
                    b';' | b' ' | b'\t' => Chunk::Extension { value },
                    b'\r' => Chunk::SizeLf { value },
                    b'\n' => Self::after_size(value),
                    _ => return Err(format!("bad chunk size byte {b:#04x}")),
                },
                Chunk::Extension { value } => match b {
                    b'\r' => Chunk::SizeLf { value },
                    b'\n' => Self::after_size(value),
                    _ => Chunk::Extension { value },
                },
                Chunk::SizeLf { value } => match b {
                    b'\n' => Self::after_size(value),
                    _ => return Err("chunk size line not ended by CRLF".to_string()),
                },
                Chunk::DataCr => match b {
                    b'\r' => Chunk::DataLf,
                    b'\n' => Chunk::Size {
                        value: 0,
                        digits: 0,
                    },
                    _ => return Err("chunk data longer than its size".to_string()),
                },
                Chunk::DataLf => match b {
                    b'\n' => Chunk::Size {
                        value: 0,
                        digits: 0,
                    },
                    _ => return Err("chunk data not ended by CRLF".to_string()),
                },
                Chunk::Trailer { line_start } => match b {
                    b'\r' if line_start => Chunk::TrailerLf,
                    b'\n' if line_start => Chunk::Done,
                    b'\n' => Chunk::Trailer { line_start: true },
                    _ => Chunk::Trailer { line_start: false },
                },
                Chunk::TrailerLf => match b {
                    b'\n' => Chunk::Done,
                    _ => return Err("bad chunked trailer".to_string()),
                },
                Chunk::Done => return Ok(()),
                Chunk::Data(_) => unreachable!("handled above"),
            };
        }
        Ok(())
    }

    fn after_size(value: u64) -> Chunk {
        if value == 0 {
            Chunk::Trailer { line_start: true }
        } else {
            Chunk::Data(value)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn head_with_chunked_body() {
        let raw = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello";
        let (head, n) = parse_head(raw).expect("valid").expect("complete");
        assert_eq!(head.status, 200);
        assert_eq!(head.framing, Framing::Chunked);
        assert_eq!(&raw[n..], b"5\r\nhello");
        assert_eq!(parse_head(&raw[..20]), Ok(None));
    }

    #[test]
    fn head_variants() {
        let (h, _) = parse_head(b"HTTP/1.1 410 Gone\r\ncontent-length: 12\r\n\r\n")
            .expect("valid")
            .expect("complete");
        assert_eq!(
            h,
            ResponseHead {
                status: 410,
                framing: Framing::Length(12)
            }
        );
        let (h, _) = parse_head(b"HTTP/1.0 500\r\n\r\n")
            .expect("valid")
            .expect("complete");
        assert_eq!(h.framing, Framing::Close);
        assert!(parse_head(b"SSH-2.0-x\r\n\r\n").is_err());
        assert!(parse_head(b"HTTP/1.1 2x OK\r\n\r\n").is_err());
        assert!(parse_head(b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n").is_err());
        assert!(parse_head(&vec![b'a'; MAX_HEAD + 1]).is_err());
    }

    const CHUNKED: &[u8] = b"4\r\nWiki\r\n7;ext=1\r\npedia i\r\nB\r\nn \r\nchunks.\r\n0\r\nX-Trailer: y\r\n\r\nGARBAGE";

    #[test]
    fn chunked_decodes_at_every_split_point() {
        for split in 0..=CHUNKED.len() {
            let mut d = BodyDecoder::new(Framing::Chunked);
            let mut out = Vec::new();
            d.feed(&CHUNKED[..split], &mut out).expect("first half");
            d.feed(&CHUNKED[split..], &mut out).expect("second half");
            assert_eq!(out, b"Wikipedia in \r\nchunks.", "split at {split}");
            assert!(d.is_done(), "split at {split}");
        }
    }

    #[test]
    fn chunked_byte_by_byte() {
        let mut d = BodyDecoder::new(Framing::Chunked);
        let mut out = Vec::new();
        for b in CHUNKED {
            d.feed(std::slice::from_ref(b), &mut out).expect("byte");
        }
        assert_eq!(out, b"Wikipedia in \r\nchunks.");
        assert!(d.is_done());
    }

    #[test]
    fn chunked_not_done_until_terminator() {
        let mut d = BodyDecoder::new(Framing::Chunked);
        let mut out = Vec::new();
        d.feed(b"3\r\nabc\r\n0\r\n", &mut out).expect("valid");
        assert!(!d.is_done());
        d.feed(b"\r\n", &mut out).expect("valid");
        assert!(d.is_done());
    }

    #[test]
    fn chunked_errors() {
        for bad in [
            &b"x\r\n"[..],
            b"3\r\nabcd\r\n",
            b"3\r\nabc\rX",
            b"1000000000000000\r\n",
            b"\r\n",
        ] {
            let mut d = BodyDecoder::new(Framing::Chunked);
            assert!(
                d.feed(bad, &mut Vec::new()).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn length_and_close_framing() {
        let mut d = BodyDecoder::new(Framing::Length(5));
        let mut out = Vec::new();
        d.feed(b"hel", &mut out).expect("ok");
        assert!(!d.is_done());
        d.feed(b"lo world", &mut out).expect("ok");
        assert!(d.is_done());
        assert_eq!(out, b"hello");
        let mut d = BodyDecoder::new(Framing::Close);
        d.feed(b"abc", &mut out).expect("ok");
        assert!(!d.is_done());
    }
}
