//! Watch events as the API server writes them: one JSON object per line,
//! `{"type": "...", "object": {...}}`, with line breaks that need not line
//! up with anything on the wire.

use serde_json::Value;

/// Upper bound for one event line: an object plus framing. Objects are
/// limited to ~1.5 MiB by etcd; this leaves room and still stops a broken
/// stream from growing the buffer forever.
const MAX_LINE: usize = 16 * 1024 * 1024;

/// What happened to the object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WatchEventKind {
    Added,
    Modified,
    Deleted,
    /// Nothing changed; the object only carries a newer resourceVersion to
    /// resume from.
    Bookmark,
    /// The watch failed; the object is a `Status` (code 410 means the
    /// resourceVersion is too old and the caller must re-list). The server
    /// ends the stream after it.
    Error,
}

/// One event from a watch stream.
#[derive(Debug, Clone, PartialEq)]
pub struct WatchEvent {
    pub kind: WatchEventKind,
    pub object: Value,
}

impl WatchEvent {
    /// True for an ERROR event carrying 410 Gone ("too old resource
    /// version"): only a fresh list can continue from here.
    pub fn is_gone(&self) -> bool {
        self.kind == WatchEventKind::Error
            && self.object.get("code").and_then(Value::as_u64) == Some(410)
    }

    /// The object's `metadata.resourceVersion`: where to resume watching.
    pub fn resource_version(&self) -> Option<&str> {
        self.object
            .get("metadata")?
            .get("resourceVersion")?
            .as_str()
    }

    /// For ERROR events, the `Status` message.
    pub fn error_message(&self) -> Option<&str> {
        if self.kind != WatchEventKind::Error {
            return None;
        }
        self.object.get("message").and_then(Value::as_str)
    }
}

/// Parses one line. Public to the crate for tests and fuzzing.
pub(crate) fn parse_event(line: &[u8]) -> Result<WatchEvent, String> {
    let mut v: Value =
        serde_json::from_slice(line).map_err(|e| format!("watch event is not JSON: {e}"))?;
    let kind = match v.get("type").and_then(Value::as_str) {
        Some("ADDED") => WatchEventKind::Added,
        Some("MODIFIED") => WatchEventKind::Modified,
        Some("DELETED") => WatchEventKind::Deleted,
        Some("BOOKMARK") => WatchEventKind::Bookmark,
        Some("ERROR") => WatchEventKind::Error,
        Some(other) => return Err(format!("unknown watch event type {other:?}")),
        None => return Err("watch event without a type".to_string()),
    };
    let object = match v.get_mut("object") {
        Some(o) if o.is_object() => o.take(),
        _ => return Err("watch event without an object".to_string()),
    };
    Ok(WatchEvent { kind, object })
}

/// Collects body bytes and hands out complete event lines.
#[derive(Debug, Default)]
pub(crate) struct EventLines {
    buf: Vec<u8>,
    /// Start of the first line not yet returned.
    start: usize,
    /// Where to resume looking for '\n' (everything before has none).
    scanned: usize,
}

impl EventLines {
    pub(crate) fn push(&mut self, data: &[u8]) {
        if self.start == self.buf.len() {
            self.buf.clear();
            self.start = 0;
            self.scanned = 0;
        } else if self.start > 64 * 1024 {
            self.buf.drain(..self.start);
            self.scanned -= self.start;
            self.start = 0;
        }
        self.buf.extend_from_slice(data);
    }

    /// The next complete event, `Ok(None)` when only part of a line is here.
    pub(crate) fn next_event(&mut self) -> Result<Option<WatchEvent>, String> {
        loop {
            let Some(rel) = self.buf[self.scanned..].iter().position(|&b| b == b'\n') else {
                self.scanned = self.buf.len();
                if self.buf.len() - self.start > MAX_LINE {
                    return Err(format!("watch event line longer than {MAX_LINE} bytes"));
                }
                return Ok(None);
            };
            let end = self.scanned + rel;
            let line = self.buf[self.start..end].trim_ascii();
            let parsed = if line.is_empty() {
                None
            } else {
                Some(parse_event(line))
            };
            self.start = end + 1;
            self.scanned = self.start;
            match parsed {
                None => continue,
                Some(r) => return r.map(Some),
            }
        }
    }

    /// True when bytes arrived that were not looked at yet (a complete event
    /// may be among them).
    pub(crate) fn unscanned(&self) -> bool {
        self.scanned < self.buf.len()
    }

    /// Bytes of an unfinished line (the stream ended in the middle of one).
    pub(crate) fn partial_len(&self) -> usize {
        let rest = &self.buf[self.start..];
        let tail = match rest.iter().rposition(|&b| b == b'\n') {
            Some(i) => &rest[i + 1..],
            None => rest,
        };
        tail.trim_ascii().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STREAM: &str = concat!(
        r#"{"type":"ADDED","object":{"kind":"RouteConfiguration","metadata":{"name":"a","resourceVersion":"10"}}}"#,
        "\n",
        r#"{"type":"MODIFIED","object":{"metadata":{"name":"a","resourceVersion":"11"},"spec":{"table":{"name":"t ✓"}}}}"#,
        "\n\n",
        r#"{"type":"BOOKMARK","object":{"kind":"RouteConfiguration","metadata":{"resourceVersion":"15"}}}"#,
        "\r\n",
        r#"{"type":"DELETED","object":{"metadata":{"name":"a","resourceVersion":"16"}}}"#,
        "\n",
        r#"{"type":"ERROR","object":{"kind":"Status","status":"Failure","message":"too old resource version: 1 (16)","reason":"Expired","code":410}}"#,
        "\n",
    );

    fn collect(lines: &mut EventLines, out: &mut Vec<WatchEvent>) {
        while let Some(ev) = lines.next_event().expect("valid stream") {
            out.push(ev);
        }
    }

    fn check(events: &[WatchEvent]) {
        use WatchEventKind::*;
        let kinds: Vec<_> = events.iter().map(|e| e.kind).collect();
        assert_eq!(kinds, [Added, Modified, Bookmark, Deleted, Error]);
        let rvs: Vec<_> = events.iter().map(|e| e.resource_version()).collect();
        assert_eq!(rvs, [Some("10"), Some("11"), Some("15"), Some("16"), None]);
        assert_eq!(events[1].object["spec"]["table"]["name"], "t ✓");
        assert!(events[4].is_gone());
        assert!(!events[3].is_gone());
        assert_eq!(
            events[4].error_message(),
            Some("too old resource version: 1 (16)")
        );
    }

    #[test]
    fn every_two_way_split() {
        let bytes = STREAM.as_bytes();
        for split in 0..=bytes.len() {
            let mut lines = EventLines::default();
            let mut events = Vec::new();
            lines.push(&bytes[..split]);
            collect(&mut lines, &mut events);
            lines.push(&bytes[split..]);
            collect(&mut lines, &mut events);
            check(&events);
            assert_eq!(lines.partial_len(), 0);
        }
    }

    #[test]
    fn byte_by_byte() {
        let mut lines = EventLines::default();
        let mut events = Vec::new();
        for b in STREAM.as_bytes() {
            lines.push(std::slice::from_ref(b));
            collect(&mut lines, &mut events);
        }
        check(&events);
    }

    #[test]
    fn unfinished_line_is_kept_and_reported() {
        let mut lines = EventLines::default();
        lines.push(br#"{"type":"ADDED","obj"#);
        assert_eq!(lines.next_event(), Ok(None));
        assert_eq!(lines.partial_len(), 20);
    }

    #[test]
    fn bad_lines_are_errors() {
        for bad in [
            "not json\n",
            "{\"object\":{}}\n",
            "{\"type\":\"ADDED\"}\n",
            "{\"type\":\"ADDED\",\"object\":3}\n",
            "{\"type\":\"RENAMED\",\"object\":{}}\n",
        ] {
            let mut lines = EventLines::default();
            lines.push(bad.as_bytes());
            assert!(lines.next_event().is_err(), "{bad}");
        }
    }

    #[test]
    fn error_event_other_than_gone() {
        let ev = parse_event(
            br#"{"type":"ERROR","object":{"kind":"Status","code":500,"message":"boom"}}"#,
        )
        .expect("valid");
        assert_eq!(ev.kind, WatchEventKind::Error);
        assert!(!ev.is_gone());
        assert_eq!(ev.error_message(), Some("boom"));
    }
}
