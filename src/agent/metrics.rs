//! Counters and gauges the agent exposes in Prometheus text format. Plain
//! fields owned by the event loop: no atomics, no registry, no globals.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::time::Duration;

/// Upper bounds (seconds) of the apply-latency histogram buckets.
const BUCKETS: [f64; 10] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0];

/// A cumulative histogram of apply latencies.
#[derive(Clone, Debug, Default)]
pub struct Histogram {
    counts: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

impl Histogram {
    pub fn observe(&mut self, d: Duration) {
        let s = d.as_secs_f64();
        for (i, bound) in BUCKETS.iter().enumerate() {
            if s <= *bound {
                self.counts[i] += 1;
            }
        }
        self.count += 1;
        self.sum += s;
    }
}

/// Everything `/metrics` reports.
#[derive(Clone, Debug, Default)]
pub struct Metrics {
    pub reconciles: u64,
    /// Errors by kind: `kernel`, `invalid_object`, `api`, `status`.
    pub errors: BTreeMap<&'static str, u64>,
    pub tables: u64,
    pub rules: u64,
    pub routes: u64,
    pub pending_routes: u64,
    /// Objects refused because their table name maps to another's id.
    pub table_id_collisions: u64,
    /// Writes (status, finalizer, Event) queued or in flight.
    pub write_queue: u64,
    /// 1 while this agent may apply (it holds the Lease, or there is no
    /// leader election), 0 on standby.
    pub leader: u64,
    /// 1 in binding mode, 0 in conditions mode.
    pub binding_mode: u64,
    pub drift_repairs: u64,
    pub watch_restarts: u64,
    pub kernel_changes: u64,
    pub apply_latency: Histogram,
}

impl Metrics {
    pub fn error(&mut self, kind: &'static str) {
        *self.errors.entry(kind).or_insert(0) += 1;
    }

    /// Prometheus text exposition format 0.0.4.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let mut counter = |name: &str, help: &str, v: u64| {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {v}"
            );
        };
        counter(
            "routecfg_reconciles_total",
            "Reconcile passes run.",
            self.reconciles,
        );
        counter(
            "routecfg_drift_repairs_total",
            "Reconciles triggered by kernel changes made by others.",
            self.drift_repairs,
        );
        counter(
            "routecfg_watch_restarts_total",
            "Times the API watch was re-established.",
            self.watch_restarts,
        );
        counter(
            "routecfg_kernel_changes_total",
            "Rules and routes added, replaced or deleted.",
            self.kernel_changes,
        );
        let _ = writeln!(
            out,
            "# HELP routecfg_errors_total Errors by kind.\n# TYPE routecfg_errors_total counter"
        );
        for kind in ["api", "invalid_object", "kernel", "status"] {
            let v = self.errors.get(kind).copied().unwrap_or(0);
            let _ = writeln!(out, "routecfg_errors_total{{kind=\"{kind}\"}} {v}");
        }
        let mut gauge = |name: &str, help: &str, v: u64| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {v}");
        };
        gauge(
            "routecfg_managed_tables",
            "Tables desired by selected objects.",
            self.tables,
        );
        gauge(
            "routecfg_managed_rules",
            "Rules desired by selected objects.",
            self.rules,
        );
        gauge(
            "routecfg_managed_routes",
            "Routes desired by selected objects.",
            self.routes,
        );
        gauge(
            "routecfg_pending_routes",
            "Routes waiting for a link or a reachable gateway.",
            self.pending_routes,
        );
        gauge(
            "routecfg_table_id_collisions",
            "Objects not applied because their table name maps to the id of another object's table.",
            self.table_id_collisions,
        );
        gauge(
            "routecfg_write_queue_depth",
            "Objects with an API write queued or in flight.",
            self.write_queue,
        );
        gauge(
            "routecfg_leader",
            "1 while this agent applies (Lease holder, or no leader election), 0 on standby.",
            self.leader,
        );
        gauge(
            "routecfg_binding_mode",
            "1 when reporting on RouteConfigurationBindings, 0 for per-host conditions.",
            self.binding_mode,
        );
        let h = &self.apply_latency;
        let _ = writeln!(
            out,
            "# HELP routecfg_apply_duration_seconds Time to plan and apply changed tables.\n# TYPE routecfg_apply_duration_seconds histogram"
        );
        for (bound, c) in BUCKETS.iter().zip(h.counts) {
            let _ = writeln!(
                out,
                "routecfg_apply_duration_seconds_bucket{{le=\"{bound}\"}} {c}"
            );
        }
        let _ = writeln!(
            out,
            "routecfg_apply_duration_seconds_bucket{{le=\"+Inf\"}} {}",
            h.count
        );
        let _ = writeln!(out, "routecfg_apply_duration_seconds_sum {}", h.sum);
        let _ = writeln!(out, "routecfg_apply_duration_seconds_count {}", h.count);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_is_cumulative() {
        let mut m = Metrics::default();
        m.apply_latency.observe(Duration::from_millis(3));
        m.apply_latency.observe(Duration::from_millis(30));
        m.error("kernel");
        m.table_id_collisions = 2;
        let text = m.render();
        assert!(text.contains(
            "# TYPE routecfg_table_id_collisions gauge\nroutecfg_table_id_collisions 2\n"
        ));
        assert!(text.contains("routecfg_apply_duration_seconds_bucket{le=\"0.001\"} 0\n"));
        assert!(text.contains("routecfg_apply_duration_seconds_bucket{le=\"0.005\"} 1\n"));
        assert!(text.contains("routecfg_apply_duration_seconds_bucket{le=\"0.05\"} 2\n"));
        assert!(text.contains("routecfg_apply_duration_seconds_bucket{le=\"+Inf\"} 2\n"));
        assert!(text.contains("routecfg_apply_duration_seconds_count 2\n"));
        assert!(text.contains("routecfg_errors_total{kind=\"kernel\"} 1\n"));
        assert!(text.contains("routecfg_errors_total{kind=\"api\"} 0\n"));
    }
}
