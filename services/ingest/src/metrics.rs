//! Metrics of the ingest service: `iee_ingest_*`.

use iee_telemetry::{MetricsRegistry, RpcMetrics};
use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{
        counter::Counter,
        family::Family,
        gauge::Gauge,
        histogram::{Histogram, exponential_buckets},
    },
};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct OutcomeLabels {
    pub(crate) outcome: &'static str,
    pub(crate) reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct RpcLabel {
    pub(crate) rpc: &'static str,
}

/// The ingest service's metrics.
#[derive(Clone, Debug)]
pub(crate) struct IngestMetrics {
    pub(crate) rpc: RpcMetrics,
    pub(crate) events: Family<OutcomeLabels, Counter>,
    pub(crate) batch_duration: Family<RpcLabel, Histogram>,
    pub(crate) batch_events: Histogram,
    pub(crate) overloaded: Counter,
    pub(crate) stream_batches_in_flight: Gauge,
    pub(crate) log_unavailable: Counter,
}

impl IngestMetrics {
    pub(crate) fn register(registry: &MetricsRegistry) -> Self {
        let metrics = Self {
            rpc: RpcMetrics::register(registry, "ingest"),
            events: Family::default(),
            batch_duration: Family::new_with_constructor(|| {
                Histogram::new(exponential_buckets(0.000_1, 2.0, 16))
            }),
            batch_events: Histogram::new(exponential_buckets(1.0, 4.0, 8)),
            overloaded: Counter::default(),
            stream_batches_in_flight: Gauge::default(),
            log_unavailable: Counter::default(),
        };
        registry.register(
            "iee_ingest_events",
            "Events handled, by outcome (accepted, duplicate, rejected) and rejection reason",
            metrics.events.clone(),
        );
        registry.register(
            "iee_ingest_batch_duration_seconds",
            "Time to validate, deduplicate and append one batch, by RPC",
            metrics.batch_duration.clone(),
        );
        registry.register(
            "iee_ingest_batch_events",
            "Events per batch",
            metrics.batch_events.clone(),
        );
        registry.register(
            "iee_ingest_overloaded_requests",
            "Requests refused with RESOURCE_EXHAUSTED because too many events were in flight",
            metrics.overloaded.clone(),
        );
        registry.register(
            "iee_ingest_stream_batches_in_flight",
            "Stream batches read but not yet acknowledged, over all streams",
            metrics.stream_batches_in_flight.clone(),
        );
        registry.register(
            "iee_ingest_log_unavailable",
            "Batches that failed because the event log could not be written",
            metrics.log_unavailable.clone(),
        );
        metrics
    }
}
