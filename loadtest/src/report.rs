//! The run report: statistics and latency percentiles of one run, each threshold with its
//! verdict, printed as a summary and written as JSON.

use std::{collections::BTreeMap, fmt::Write as _, path::Path, time::Instant};

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::{
    scenario::{Rpc, Scenario, Thresholds},
    stats::{Schedule, Stats},
};

/// Everything one run measured, warm-up excluded.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Scenario name.
    pub scenario: String,
    /// Scenario description.
    pub description: String,
    /// The RPC driven.
    pub rpc: Rpc,
    /// Where the requests went.
    pub target: String,
    /// Events per request.
    pub batch_size: u32,
    /// Concurrent streams (1 for unary).
    pub streams: u32,
    /// Scheduled requests per second.
    pub target_rate: f64,
    /// The in-flight cap.
    pub max_in_flight: u32,
    /// Request counts.
    pub requests: Requests,
    /// Failed requests by gRPC code name or loadtest label.
    pub errors_by_code: BTreeMap<String, u64>,
    /// Stream acknowledgements that matched no outstanding batch (0 for unary).
    pub unmatched_acks: u64,
    /// Event counts.
    pub events: Events,
    /// Requests sent per second over the measured window.
    pub achieved_request_rate: f64,
    /// Accepted events per second over the measured window.
    pub accepted_events_per_sec: f64,
    /// Share of scheduled requests that failed or were dropped.
    pub error_rate: f64,
    /// Latency of successful requests from their scheduled time.
    pub latency_ms: Latency,
    /// Delay between each request's scheduled and actual send time (included in the latency);
    /// a large value means the load generator itself could not keep up.
    pub send_lag_ms: Latency,
    /// Wall time of the whole run: warm-up, schedule and drain.
    pub elapsed_secs: f64,
    /// The window the rates are computed over: from the end of the warm-up to the end of the
    /// schedule or the last answer, whichever is later.
    pub measured_secs: f64,
    /// Each configured threshold and its verdict.
    pub thresholds: Vec<ThresholdResult>,
    /// True when every threshold passed.
    pub passed: bool,
}

/// Request counts after the warm-up.
#[derive(Debug, Clone, Serialize)]
pub struct Requests {
    /// Due after the warm-up: `ok + errors + dropped`.
    pub scheduled: u64,
    /// Actually sent.
    pub sent: u64,
    /// Answered successfully (whatever the per-event outcomes).
    pub ok: u64,
    /// Failed as a whole, timed out, or lost with their stream.
    pub errors: u64,
    /// Not sent because `max_in_flight` were outstanding at their due time.
    pub dropped: u64,
    /// Sent during the warm-up and left out of everything else.
    pub warmup: u64,
}

/// Event counts after the warm-up.
#[derive(Debug, Clone, Serialize)]
pub struct Events {
    /// Events in sent requests.
    pub sent: u64,
    /// Appended to the log.
    pub accepted: u64,
    /// Already in the log.
    pub duplicate: u64,
    /// Rejected by validation.
    pub rejected: u64,
}

/// Percentiles of a duration in milliseconds.
#[derive(Debug, Clone, Serialize)]
pub struct Latency {
    /// Values measured (the percentiles are 0 when this is 0).
    pub count: u64,
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
    /// 99.9th percentile.
    pub p999: f64,
    /// Largest.
    pub max: f64,
}

impl Latency {
    /// Percentiles of a histogram of microseconds.
    pub fn from_histogram(h: &Histogram<u64>) -> Self {
        let ms = |us: u64| us as f64 / 1000.0;
        Self {
            count: h.len(),
            p50: ms(h.value_at_quantile(0.50)),
            p90: ms(h.value_at_quantile(0.90)),
            p99: ms(h.value_at_quantile(0.99)),
            p999: ms(h.value_at_quantile(0.999)),
            max: ms(h.max()),
        }
    }
}

/// One threshold and its verdict.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ThresholdResult {
    /// The threshold's name in the scenario file.
    pub name: &'static str,
    /// The configured limit.
    pub limit: f64,
    /// The measured value; absent when there was nothing to measure (no successful request).
    pub actual: Option<f64>,
    /// Whether the limit was respected.
    pub passed: bool,
}

/// The measured values thresholds are checked against.
#[derive(Debug, Clone)]
pub struct Measured<'a> {
    /// Latency percentiles.
    pub latency: &'a Latency,
    /// Share of scheduled requests that failed or were dropped.
    pub error_rate: f64,
    /// Accepted events per second.
    pub accepted_events_per_sec: f64,
}

/// Checks every configured threshold, in a fixed order.
pub fn evaluate(thresholds: &Thresholds, m: &Measured<'_>) -> Vec<ThresholdResult> {
    let has_latency = m.latency.count > 0;
    let at_most = |name, limit: Option<f64>, actual: Option<f64>| {
        limit.map(|limit| ThresholdResult {
            name,
            limit,
            actual,
            passed: actual.is_some_and(|a| a <= limit),
        })
    };
    let latency = |v: f64| has_latency.then_some(v);
    [
        at_most("max_p50_ms", thresholds.max_p50_ms, latency(m.latency.p50)),
        at_most("max_p99_ms", thresholds.max_p99_ms, latency(m.latency.p99)),
        at_most(
            "max_error_rate",
            thresholds.max_error_rate,
            Some(m.error_rate),
        ),
        thresholds
            .min_accepted_events_per_sec
            .map(|limit| ThresholdResult {
                name: "min_accepted_events_per_sec",
                limit,
                actual: Some(m.accepted_events_per_sec),
                passed: m.accepted_events_per_sec >= limit,
            }),
    ]
    .into_iter()
    .flatten()
    .collect()
}

impl Report {
    /// Builds the report of a finished run that started at `schedule.start`, was sent to
    /// `target`, and finished (drain included) at `finished`.
    pub fn build(
        scenario: &Scenario,
        target: &str,
        schedule: &Schedule,
        stats: &Stats,
        finished: Instant,
    ) -> Self {
        let measure_from = schedule.due(schedule.first_measured);
        let schedule_end = schedule.due(schedule.count);
        let measure_to = stats
            .last_answer
            .map_or(schedule_end, |t| t.max(schedule_end));
        let measured_secs = measure_to
            .saturating_duration_since(measure_from)
            .as_secs_f64();
        let per_sec = |n: u64| {
            if measured_secs > 0.0 {
                n as f64 / measured_secs
            } else {
                0.0
            }
        };
        let errors = stats.error_count();
        // Dropped requests count as failures: a saturated target must not pass by having its
        // load shed on the client side.
        let error_rate = if stats.scheduled > 0 {
            (errors + stats.dropped) as f64 / stats.scheduled as f64
        } else {
            0.0
        };
        let latency = Latency::from_histogram(&stats.latency_us);
        let accepted_events_per_sec = per_sec(stats.accepted);
        let thresholds = evaluate(
            &scenario.thresholds,
            &Measured {
                latency: &latency,
                error_rate,
                accepted_events_per_sec,
            },
        );
        let passed = thresholds.iter().all(|t| t.passed);
        Self {
            scenario: scenario.name.clone(),
            description: scenario.description.clone(),
            rpc: scenario.rpc,
            target: target.to_owned(),
            batch_size: scenario.batch_size,
            streams: scenario.stream_count(),
            target_rate: scenario.rate,
            max_in_flight: scenario.max_in_flight,
            requests: Requests {
                scheduled: stats.scheduled,
                sent: stats.sent,
                ok: stats.ok,
                errors,
                dropped: stats.dropped,
                warmup: stats.warmup,
            },
            errors_by_code: stats.errors.clone(),
            unmatched_acks: stats.unmatched_acks,
            events: Events {
                sent: stats.events_sent,
                accepted: stats.accepted,
                duplicate: stats.duplicates,
                rejected: stats.rejected,
            },
            achieved_request_rate: per_sec(stats.sent),
            accepted_events_per_sec,
            error_rate,
            latency_ms: latency,
            send_lag_ms: Latency::from_histogram(&stats.send_lag_us),
            elapsed_secs: finished
                .saturating_duration_since(schedule.start)
                .as_secs_f64(),
            measured_secs,
            thresholds,
            passed,
        }
    }

    /// The human-readable summary printed at the end of a run.
    pub fn summary(&self) -> String {
        let mut out = String::new();
        let r = &self.requests;
        let e = &self.events;
        let l = &self.latency_ms;
        // Writing to a String cannot fail.
        let _ = writeln!(
            out,
            "scenario {} ({} rpc, batch {}, {} stream(s), target {:.0} req/s) against {}",
            self.scenario, self.rpc, self.batch_size, self.streams, self.target_rate, self.target
        );
        let _ = writeln!(
            out,
            "  requests   scheduled {}  sent {}  ok {}  errors {}  dropped {}  (warm-up {})",
            r.scheduled, r.sent, r.ok, r.errors, r.dropped, r.warmup
        );
        for (code, n) in &self.errors_by_code {
            let _ = writeln!(out, "    error    {code}: {n}");
        }
        if self.unmatched_acks > 0 {
            let _ = writeln!(out, "    unmatched acks: {}", self.unmatched_acks);
        }
        let _ = writeln!(
            out,
            "  events     sent {}  accepted {}  duplicate {}  rejected {}",
            e.sent, e.accepted, e.duplicate, e.rejected
        );
        let _ = writeln!(
            out,
            "  rates      {:.1} req/s  {:.1} accepted events/s  error rate {:.4}  over {:.2} s \
             (elapsed {:.2} s)",
            self.achieved_request_rate,
            self.accepted_events_per_sec,
            self.error_rate,
            self.measured_secs,
            self.elapsed_secs
        );
        let _ = writeln!(
            out,
            "  latency ms p50 {:.3}  p90 {:.3}  p99 {:.3}  p99.9 {:.3}  max {:.3}  (n = {})",
            l.p50, l.p90, l.p99, l.p999, l.max, l.count
        );
        let lag = &self.send_lag_ms;
        let _ = writeln!(
            out,
            "  send lag ms p50 {:.3}  p99 {:.3}  max {:.3}  (scheduled → sent, part of the latency)",
            lag.p50, lag.p99, lag.max
        );
        for t in &self.thresholds {
            let actual = t
                .actual
                .map_or_else(|| "no data".to_owned(), |a| format!("{a:.3}"));
            let verdict = if t.passed { "pass" } else { "FAIL" };
            let _ = writeln!(
                out,
                "  threshold  {:<28} limit {:<12} actual {:<12} {verdict}",
                t.name, t.limit, actual
            );
        }
        let _ = write!(
            out,
            "  result     {}",
            if self.passed {
                "PASS"
            } else {
                "FAIL (threshold breached)"
            }
        );
        out
    }

    /// Writes the report as pretty JSON, creating the parent directory if needed.
    pub fn write_json(&self, path: &Path) -> std::io::Result<()> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        let json = serde_json::to_string_pretty(self).map_err(std::io::Error::other)?;
        std::fs::write(path, json + "\n")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn latency(count: u64, p50: f64, p99: f64) -> Latency {
        Latency {
            count,
            p50,
            p90: p99,
            p99,
            p999: p99,
            max: p99,
        }
    }

    fn all_thresholds() -> Thresholds {
        Thresholds {
            max_p99_ms: Some(100.0),
            max_p50_ms: Some(10.0),
            max_error_rate: Some(0.01),
            min_accepted_events_per_sec: Some(1000.0),
        }
    }

    fn verdicts(results: &[ThresholdResult]) -> Vec<(&'static str, bool)> {
        results.iter().map(|r| (r.name, r.passed)).collect()
    }

    #[test]
    fn no_thresholds_means_nothing_to_fail() {
        let l = latency(10, 1.0, 2.0);
        let m = Measured {
            latency: &l,
            error_rate: 1.0,
            accepted_events_per_sec: 0.0,
        };
        assert!(evaluate(&Thresholds::default(), &m).is_empty());
    }

    #[test]
    fn thresholds_pass_at_their_limits() {
        let l = latency(10, 10.0, 100.0);
        let m = Measured {
            latency: &l,
            error_rate: 0.01,
            accepted_events_per_sec: 1000.0,
        };
        let results = evaluate(&all_thresholds(), &m);
        assert_eq!(results.len(), 4);
        assert!(results.iter().all(|r| r.passed), "{results:?}");
    }

    #[test]
    fn each_breach_is_reported() {
        let l = latency(10, 10.5, 99.0);
        let m = Measured {
            latency: &l,
            error_rate: 0.02,
            accepted_events_per_sec: 999.0,
        };
        let results = evaluate(&all_thresholds(), &m);
        assert_eq!(
            verdicts(&results),
            [
                ("max_p50_ms", false),
                ("max_p99_ms", true),
                ("max_error_rate", false),
                ("min_accepted_events_per_sec", false),
            ]
        );
        assert_eq!(results[0].actual, Some(10.5));
    }

    #[test]
    fn latency_thresholds_fail_without_data() {
        let l = latency(0, 0.0, 0.0);
        let m = Measured {
            latency: &l,
            error_rate: 0.0,
            accepted_events_per_sec: 5000.0,
        };
        let results = evaluate(&all_thresholds(), &m);
        assert_eq!(
            verdicts(&results),
            [
                ("max_p50_ms", false),
                ("max_p99_ms", false),
                ("max_error_rate", true),
                ("min_accepted_events_per_sec", true),
            ]
        );
        assert_eq!(results[0].actual, None);
    }

    #[test]
    fn percentiles_are_in_milliseconds() {
        let mut h = Histogram::<u64>::new_with_bounds(1, 3_600_000_000, 3).unwrap();
        for us in 1..=1000u64 {
            h.record(us * 1000).unwrap();
        }
        let l = Latency::from_histogram(&h);
        assert_eq!(l.count, 1000);
        assert!((l.p50 - 500.0).abs() < 1.0, "{}", l.p50);
        assert!((l.p99 - 990.0).abs() < 1.0, "{}", l.p99);
        assert!((l.max - 1000.0).abs() < 1.0, "{}", l.max);
    }
}
