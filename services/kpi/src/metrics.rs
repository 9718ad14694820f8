//! Metrics of the KPI service: `iee_kpi_*` for the aggregation itself (RPC latency and errors
//! come from the shared RED metrics), and the current KPI values with bounded labels
//! (`iee_kpi_value`, `iee_kpi_uplift`), refreshed by [`crate::gauges`].

use std::sync::atomic::AtomicU64;

use iee_telemetry::{MetricsRegistry, RpcMetrics};
use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{counter::Counter, family::Family, gauge::Gauge},
};

/// The reasons a record is not counted: the fold's and the consumer's.
const SKIP_REASONS: [&str; 7] = [
    "undecodable",
    "no event",
    "no occurred_at",
    "forwarded",
    "merge",
    "duplicate decision",
    "erase",
];

/// A float gauge.
pub(crate) type FloatGauge = Gauge<f64, AtomicU64>;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct ReasonLabels {
    pub(crate) reason: &'static str,
}

/// Labels of a current KPI value: at most `kpi.gauge_max_tenants` tenants × the catalogue's
/// dashboard metrics × 13 channels (plus `all`).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct ValueLabels {
    pub(crate) tenant: String,
    pub(crate) metric: &'static str,
    pub(crate) channel: String,
}

/// Labels of a current uplift: tenants × the global holdout × the experiment metrics.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct UpliftLabels {
    pub(crate) tenant: String,
    pub(crate) experiment: &'static str,
    pub(crate) metric: &'static str,
    pub(crate) bound: &'static str,
}

/// The KPI service's metrics.
#[derive(Clone, Debug)]
pub(crate) struct KpiMetrics {
    pub(crate) rpc: RpcMetrics,
    pub(crate) folded: Counter,
    skipped: Family<ReasonLabels, Counter>,
    pub(crate) commits: Counter,
    pub(crate) increments: Counter,
    pub(crate) conflicts: Counter,
    pub(crate) failed_rounds: Counter,
    pub(crate) lag_seconds: FloatGauge,
    pub(crate) values: Family<ValueLabels, FloatGauge>,
    pub(crate) uplifts: Family<UpliftLabels, FloatGauge>,
}

impl KpiMetrics {
    pub(crate) fn register(registry: &MetricsRegistry) -> Self {
        let m = Self {
            rpc: RpcMetrics::register(registry, "kpi"),
            folded: Counter::default(),
            skipped: Family::default(),
            commits: Counter::default(),
            increments: Counter::default(),
            conflicts: Counter::default(),
            failed_rounds: Counter::default(),
            lag_seconds: FloatGauge::default(),
            values: Family::default(),
            uplifts: Family::default(),
        };
        registry.register(
            "iee_kpi_events_folded",
            "Log records folded into KPI aggregates",
            m.folded.clone(),
        );
        registry.register(
            "iee_kpi_records_skipped",
            "Log records the KPI service did not count, by reason",
            m.skipped.clone(),
        );
        registry.register(
            "iee_kpi_commits",
            "Aggregation batches committed with their offsets",
            m.commits.clone(),
        );
        registry.register(
            "iee_kpi_increments",
            "Aggregate field increments committed",
            m.increments.clone(),
        );
        registry.register(
            "iee_kpi_offset_conflicts",
            "Batches refused because another replica had moved the offsets",
            m.conflicts.clone(),
        );
        registry.register(
            "iee_kpi_failed_rounds",
            "Aggregation rounds that failed (storage unavailable) and were retried",
            m.failed_rounds.clone(),
        );
        registry.register(
            "iee_kpi_lag_seconds",
            "Age of the newest record of the last committed batch when it was committed (0 when idle)",
            m.lag_seconds.clone(),
        );
        registry.register(
            "iee_kpi_value",
            "Current value of a KPI over the last 24 hours, by tenant, metric and channel (`all` for every channel)",
            m.values.clone(),
        );
        registry.register(
            "iee_kpi_uplift",
            "Absolute uplift of treatment over control in an experiment since it started, with its interval bounds (`value`, `lower`, `upper`)",
            m.uplifts.clone(),
        );
        // Every reason from the start, so dashboards see zeros rather than nothing.
        for reason in SKIP_REASONS {
            let _ = m.skipped.get_or_create(&ReasonLabels { reason });
        }
        m
    }

    /// Counts a record that was not counted.
    pub(crate) fn skipped(&self, reason: &'static str) {
        self.skipped.get_or_create(&ReasonLabels { reason }).inc();
    }
}
