//! Pacing for re-lists and re-watches after failures, so an API outage
//! costs a handful of connection attempts per minute from each node rather
//! than a reconnect storm from every node at once.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Exponential backoff with jitter: 1 s, 2 s, 4 s ... capped at 30 s, each
/// randomised by ±20 % so nodes that failed together do not retry together.
#[derive(Debug, Clone)]
pub struct Backoff {
    failures: u32,
    min: Duration,
    max: Duration,
    seed: u64,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff::new(Duration::from_secs(1), Duration::from_secs(30))
    }
}

impl Backoff {
    pub fn new(min: Duration, max: Duration) -> Backoff {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        Backoff {
            failures: 0,
            min,
            max: max.max(min),
            seed: (u64::from(nanos) ^ (u64::from(std::process::id()) << 32)) | 1,
        }
    }

    /// Records a failure; returns how long to wait before the next attempt.
    pub fn failed(&mut self) -> Duration {
        let exp = self.failures.min(16);
        self.failures = self.failures.saturating_add(1);
        let base = self.min.saturating_mul(1 << exp).min(self.max);
        // xorshift64: good enough to spread retries, no crate needed.
        self.seed ^= self.seed << 13;
        self.seed ^= self.seed >> 7;
        self.seed ^= self.seed << 17;
        let per_mille = 800 + (self.seed % 401) as u32; // 0.8 ..= 1.2
        base * per_mille / 1000
    }

    /// Records a success: the next failure starts from the minimum again.
    pub fn succeeded(&mut self) {
        self.failures = 0;
    }

    /// Failures since the last success.
    pub fn failures(&self) -> u32 {
        self.failures
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_caps_jitters_and_resets() {
        let mut b = Backoff::default();
        let waits: Vec<Duration> = (0..8).map(|_| b.failed()).collect();
        let bases = [1, 2, 4, 8, 16, 30, 30, 30];
        for (w, base) in waits.iter().zip(bases) {
            let base = Duration::from_secs(base);
            assert!(
                *w >= base * 8 / 10 && *w <= base * 12 / 10,
                "{w:?} vs {base:?}"
            );
        }
        assert_eq!(b.failures(), 8);
        b.succeeded();
        let w = b.failed();
        assert!(w <= Duration::from_millis(1200), "{w:?}");
    }

    #[test]
    fn survives_many_failures() {
        let mut b = Backoff::new(Duration::from_secs(1), Duration::from_secs(5));
        for _ in 0..1000 {
            assert!(b.failed() <= Duration::from_secs(6));
        }
    }
}
