//! RFC 3339 timestamps for Kubernetes fields (`lastTransitionTime`, Event
//! times), without a date-time crate: the agent only ever formats "now".

use std::time::{SystemTime, UNIX_EPOCH};

/// Formats seconds since the Unix epoch as `YYYY-MM-DDTHH:MM:SSZ`.
pub fn rfc3339(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        (rem / 60) % 60,
        rem % 60
    )
}

/// Kubernetes `MicroTime` (`YYYY-MM-DDTHH:MM:SS.ffffffZ`), as Lease
/// `acquireTime` and `renewTime` need it.
pub fn rfc3339_micro(secs: u64, micros: u32) -> String {
    let s = rfc3339(secs);
    format!("{}.{:06}Z", &s[..s.len() - 1], micros % 1_000_000)
}

/// The current time as `MicroTime`.
pub fn now_rfc3339_micro() -> String {
    let d = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    rfc3339_micro(d.as_secs(), d.subsec_micros())
}

/// The current time as RFC 3339.
pub fn now_rfc3339() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    rfc3339(secs)
}

/// Gregorian date of a day count since 1970-01-01 (Howard Hinnant's
/// well-known civil-from-days algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::{rfc3339, rfc3339_micro};

    #[test]
    fn formats_micro_time() {
        assert_eq!(rfc3339_micro(0, 0), "1970-01-01T00:00:00.000000Z");
        assert_eq!(
            rfc3339_micro(1_700_000_000, 42),
            "2023-11-14T22:13:20.000042Z"
        );
        assert_eq!(
            rfc3339_micro(1_700_000_000, 999_999),
            "2023-11-14T22:13:20.999999Z"
        );
    }

    #[test]
    fn formats_known_instants() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_700_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(rfc3339(1_709_251_199), "2024-02-29T23:59:59Z");
        assert_eq!(rfc3339(4_102_444_799), "2099-12-31T23:59:59Z");
        assert_eq!(rfc3339(4_102_444_800), "2100-01-01T00:00:00Z");
    }
}
