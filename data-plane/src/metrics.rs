//! Prometheus metrics of the proxy, served at `GET /metrics` in the text exposition
//! format (hand-written: four metric families do not justify a metrics framework).
//!
//! - `airlock_decisions_total{direction,verdict}`: messages decided.
//! - `airlock_decision_seconds`: decision latency histogram.
//! - `airlock_audit_backlog_events`: audit events waiting for an acknowledgement.
//! - `airlock_audit_dropped_events_total`: audit events dropped on overflow.
//! - `airlock_audit_refused_calls_total`: calls refused because the backlog was full.
//! - `airlock_approvals_held`: calls this node holds waiting for reviewers.
//! - `airlock_limit_refusals_total{limit}`: requests refused and connections closed
//!   by a limit (`header_timeout`, `body_timeout`, `source_connections`,
//!   `identity_concurrency`, `identity_rate`, `tool_rate`, `proxy_concurrency`).

use crate::error::Limit;
use airlock_policy::{Direction, Evaluation, Verdict};
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

/// Upper bounds of the latency buckets, in microseconds.
const BUCKETS_US: [u64; 10] = [
    50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 50_000, 100_000,
];
const VERDICTS: [Verdict; 3] = [Verdict::Allow, Verdict::Deny, Verdict::RequireApproval];

/// The proxy's counters (lock-free).
#[derive(Debug, Default)]
pub(crate) struct Metrics {
    /// [direction][verdict].
    decisions: [[AtomicU64; 3]; 2],
    buckets: [AtomicU64; BUCKETS_US.len()],
    latency_sum_us: AtomicU64,
    latency_count: AtomicU64,
    refused_by_audit: AtomicU64,
    /// Indexed like `Limit::ALL`.
    refused_by_limit: [AtomicU64; Limit::ALL.len()],
    /// Tool definitions seen drifted from their pin (each digest once per node).
    tool_drifts: AtomicU64,
}

fn verdict_index(verdict: Verdict) -> usize {
    match verdict {
        Verdict::Allow => 0,
        Verdict::Deny => 1,
        Verdict::RequireApproval => 2,
    }
}

impl Metrics {
    /// Counts one decision and its latency.
    pub(crate) fn decided(&self, direction: Direction, evaluation: &Evaluation) {
        let d = usize::from(direction == Direction::ServerToClient);
        if let Some(row) = self.decisions.get(d) {
            if let Some(counter) = row.get(verdict_index(evaluation.decision.verdict)) {
                counter.fetch_add(1, Ordering::Relaxed);
            }
        }
        let us = evaluation.elapsed.as_micros() as u64;
        if let Some(i) = BUCKETS_US.iter().position(|&b| us <= b) {
            if let Some(bucket) = self.buckets.get(i) {
                bucket.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.latency_sum_us.fetch_add(us, Ordering::Relaxed);
        self.latency_count.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a call refused because the audit backlog was full.
    pub(crate) fn refused_by_audit(&self) {
        self.refused_by_audit.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a tool definition seen drifted from its pin.
    pub(crate) fn tool_drifted(&self) {
        self.tool_drifts.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a request refused, or a connection closed, by `limit`.
    pub(crate) fn refused(&self, limit: Limit) {
        if let Some(i) = Limit::ALL.iter().position(|l| *l == limit) {
            if let Some(counter) = self.refused_by_limit.get(i) {
                counter.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// The exposition text, with the gauges read now: the audit backlog, events
    /// dropped, and calls held for approval.
    pub(crate) fn render(&self, backlog: usize, dropped: u64, held: usize) -> String {
        let mut out = String::with_capacity(2048);
        out.push_str("# HELP airlock_decisions_total Messages decided by the policy.\n# TYPE airlock_decisions_total counter\n");
        for (d, direction) in ["client_to_server", "server_to_client"].iter().enumerate() {
            for verdict in VERDICTS {
                let n = self.decisions[d][verdict_index(verdict)].load(Ordering::Relaxed);
                let _ = writeln!(
                    out,
                    "airlock_decisions_total{{direction=\"{direction}\",verdict=\"{}\"}} {n}",
                    verdict.as_str()
                );
            }
        }
        out.push_str("# HELP airlock_decision_seconds Time to decide one message.\n# TYPE airlock_decision_seconds histogram\n");
        let mut cumulative = 0;
        for (bound, bucket) in BUCKETS_US.iter().zip(&self.buckets) {
            cumulative += bucket.load(Ordering::Relaxed);
            let _ = writeln!(
                out,
                "airlock_decision_seconds_bucket{{le=\"{}\"}} {cumulative}",
                *bound as f64 / 1e6
            );
        }
        let count = self.latency_count.load(Ordering::Relaxed);
        let sum = self.latency_sum_us.load(Ordering::Relaxed) as f64 / 1e6;
        let _ = writeln!(
            out,
            "airlock_decision_seconds_bucket{{le=\"+Inf\"}} {count}"
        );
        let _ = writeln!(
            out,
            "airlock_decision_seconds_sum {sum}\nairlock_decision_seconds_count {count}"
        );
        let _ = writeln!(out, "# HELP airlock_audit_backlog_events Audit events waiting for an acknowledgement.\n# TYPE airlock_audit_backlog_events gauge\nairlock_audit_backlog_events {backlog}");
        let _ = writeln!(out, "# HELP airlock_audit_dropped_events_total Audit events dropped because the backlog overflowed.\n# TYPE airlock_audit_dropped_events_total counter\nairlock_audit_dropped_events_total {dropped}");
        let refused = self.refused_by_audit.load(Ordering::Relaxed);
        let _ = writeln!(out, "# HELP airlock_audit_refused_calls_total Calls refused because the audit backlog was full.\n# TYPE airlock_audit_refused_calls_total counter\nairlock_audit_refused_calls_total {refused}");
        let drifts = self.tool_drifts.load(Ordering::Relaxed);
        let _ = writeln!(out, "# HELP airlock_tool_drifts_total Tool definitions seen changed since they were pinned (each new digest once per node).\n# TYPE airlock_tool_drifts_total counter\nairlock_tool_drifts_total {drifts}");
        let _ = writeln!(out, "# HELP airlock_approvals_held Calls this node holds waiting for reviewers.\n# TYPE airlock_approvals_held gauge\nairlock_approvals_held {held}");
        out.push_str("# HELP airlock_limit_refusals_total Requests refused and connections closed by a limit ([limits], server.max_concurrent_requests).\n# TYPE airlock_limit_refusals_total counter\n");
        for (limit, counter) in Limit::ALL.iter().zip(&self.refused_by_limit) {
            let _ = writeln!(
                out,
                "airlock_limit_refusals_total{{limit=\"{}\"}} {}",
                limit.as_str(),
                counter.load(Ordering::Relaxed)
            );
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use airlock_policy::Decision;
    use std::time::Duration;

    #[test]
    fn decisions_land_in_their_counter_and_bucket() {
        let metrics = Metrics::default();
        let evaluation = Evaluation {
            decision: Decision::deny("r", "m"),
            revision: None,
            elapsed: Duration::from_micros(300),
            explanation: None,
        };
        metrics.decided(Direction::ClientToServer, &evaluation);
        let text = metrics.render(7, 0, 3);
        assert!(
            text.contains(
                "airlock_decisions_total{direction=\"client_to_server\",verdict=\"deny\"} 1"
            ),
            "{text}"
        );
        assert!(
            text.contains("airlock_decision_seconds_bucket{le=\"0.00025\"} 0"),
            "{text}"
        );
        assert!(
            text.contains("airlock_decision_seconds_bucket{le=\"0.0005\"} 1"),
            "{text}"
        );
        assert!(text.contains("airlock_audit_backlog_events 7"), "{text}");
        assert!(text.contains("airlock_approvals_held 3\n"), "{text}");
    }

    #[test]
    fn each_limit_has_its_own_counter() {
        let metrics = Metrics::default();
        metrics.refused(Limit::ToolRate);
        metrics.refused(Limit::ToolRate);
        metrics.refused(Limit::BodyTimeout);
        let text = metrics.render(0, 0, 0);
        assert!(
            text.contains("airlock_limit_refusals_total{limit=\"tool_rate\"} 2\n"),
            "{text}"
        );
        assert!(
            text.contains("airlock_limit_refusals_total{limit=\"body_timeout\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains("airlock_limit_refusals_total{limit=\"identity_rate\"} 0\n"),
            "{text}"
        );
    }
}
