//! Metrics of the profile service: `iee_profile_*`.

use std::time::SystemTime;

use iee_api::pb::profile::SignalKind;
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
pub(crate) struct ReasonLabel {
    pub(crate) reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct KindLabel {
    pub(crate) kind: &'static str,
}

/// The profile service's metrics.
#[derive(Clone, Debug)]
pub(crate) struct ProfileMetrics {
    pub(crate) rpc: RpcMetrics,
    pub(crate) applied: Counter,
    pub(crate) skipped: Family<ReasonLabel, Counter>,
    pub(crate) freshness_seconds: Histogram,
    pub(crate) activations: Counter,
    pub(crate) activation_seconds: Histogram,
    pub(crate) passivations: Counter,
    pub(crate) actor_failures: Counter,
    pub(crate) resident_actors: Gauge,
    pub(crate) shards_owned: Gauge,
    pub(crate) shards_acquired: Counter,
    pub(crate) shards_lost: Counter,
    pub(crate) shards_handed_off: Counter,
    pub(crate) fenced_writes: Counter,
    pub(crate) flushes: Counter,
    pub(crate) flushed_profiles: Counter,
    pub(crate) flush_seconds: Histogram,
    pub(crate) flush_errors: Counter,
    pub(crate) signals: Family<KindLabel, Counter>,
    pub(crate) timers_fired: Counter,
    pub(crate) merges: Counter,
    pub(crate) erasures: Counter,
    pub(crate) trimmed: Counter,
}

impl ProfileMetrics {
    pub(crate) fn register(registry: &MetricsRegistry) -> Self {
        let m = Self {
            rpc: RpcMetrics::register(registry, "profile"),
            applied: Counter::default(),
            skipped: Family::default(),
            freshness_seconds: Histogram::new(exponential_buckets(0.000_5, 2.0, 16)),
            activations: Counter::default(),
            activation_seconds: Histogram::new(exponential_buckets(0.000_05, 2.0, 16)),
            passivations: Counter::default(),
            actor_failures: Counter::default(),
            resident_actors: Gauge::default(),
            shards_owned: Gauge::default(),
            shards_acquired: Counter::default(),
            shards_lost: Counter::default(),
            shards_handed_off: Counter::default(),
            fenced_writes: Counter::default(),
            flushes: Counter::default(),
            flushed_profiles: Counter::default(),
            flush_seconds: Histogram::new(exponential_buckets(0.000_1, 2.0, 16)),
            flush_errors: Counter::default(),
            signals: Family::default(),
            timers_fired: Counter::default(),
            merges: Counter::default(),
            erasures: Counter::default(),
            trimmed: Counter::default(),
        };
        let r = registry;
        r.register(
            "iee_profile_events_applied",
            "Log events applied to profiles",
            m.applied.clone(),
        );
        r.register(
            "iee_profile_events_skipped",
            "Log events not applied, by reason (replay, erased, forwarded, misrouted, undecodable)",
            m.skipped.clone(),
        );
        r.register(
            "iee_profile_event_freshness_seconds",
            "Time from ingest accepting an event to its profile applying it",
            m.freshness_seconds.clone(),
        );
        r.register(
            "iee_profile_activations",
            "Customer actors activated",
            m.activations.clone(),
        );
        r.register(
            "iee_profile_activation_seconds",
            "Time to load a customer actor's state from the store",
            m.activation_seconds.clone(),
        );
        r.register(
            "iee_profile_passivations",
            "Customer actors passivated",
            m.passivations.clone(),
        );
        r.register(
            "iee_profile_actor_failures",
            "Customer actors that failed (their shard restarts from its checkpoint)",
            m.actor_failures.clone(),
        );
        r.register(
            "iee_profile_resident_actors",
            "Customer actors resident on this node",
            m.resident_actors.clone(),
        );
        r.register(
            "iee_profile_shards_owned",
            "Shards this node serves",
            m.shards_owned.clone(),
        );
        r.register(
            "iee_profile_shards_acquired",
            "Shard leases acquired",
            m.shards_acquired.clone(),
        );
        r.register(
            "iee_profile_shards_lost",
            "Shards dropped because the lease was lost, fenced or ran out",
            m.shards_lost.clone(),
        );
        r.register(
            "iee_profile_shards_handed_off",
            "Shards handed off gracefully (rebalance or shutdown)",
            m.shards_handed_off.clone(),
        );
        r.register(
            "iee_profile_fenced_writes",
            "Writes refused because another node holds a newer epoch",
            m.fenced_writes.clone(),
        );
        r.register(
            "iee_profile_flushes",
            "Fenced batch writes",
            m.flushes.clone(),
        );
        r.register(
            "iee_profile_flushed_profiles",
            "Profiles written by batch writes",
            m.flushed_profiles.clone(),
        );
        r.register(
            "iee_profile_flush_seconds",
            "Time to collect and write one batch",
            m.flush_seconds.clone(),
        );
        r.register(
            "iee_profile_flush_errors",
            "Batch writes that failed",
            m.flush_errors.clone(),
        );
        r.register(
            "iee_profile_signals",
            "Signals emitted, by kind",
            m.signals.clone(),
        );
        r.register(
            "iee_profile_timers_fired",
            "Durable timers fired",
            m.timers_fired.clone(),
        );
        r.register(
            "iee_profile_merges",
            "Anonymous profiles merged",
            m.merges.clone(),
        );
        r.register(
            "iee_profile_erasures",
            "Customers erased",
            m.erasures.clone(),
        );
        r.register(
            "iee_profile_log_trimmed",
            "Log entries trimmed",
            m.trimmed.clone(),
        );
        m
    }

    pub(crate) fn skipped(&self, reason: &'static str) {
        self.skipped.get_or_create(&ReasonLabel { reason }).inc();
    }

    pub(crate) fn signal(&self, kind: SignalKind) {
        let kind = match kind {
            SignalKind::CartAbandoned => "cart_abandoned",
            SignalKind::Inactive => "inactive",
            SignalKind::ChurnRisk => "churn_risk",
            SignalKind::NegativeExperience => "negative_experience",
            SignalKind::JourneyStageChanged => "journey_stage_changed",
            SignalKind::Detractor => "detractor",
            SignalKind::Unspecified => "unspecified",
        };
        self.signals.get_or_create(&KindLabel { kind }).inc();
    }

    pub(crate) fn observe_freshness(
        &self,
        received_at: Option<&prost_types::Timestamp>,
        now: SystemTime,
    ) {
        if let Some(at) = received_at.and_then(|t| SystemTime::try_from(*t).ok())
            && let Ok(age) = now.duration_since(at)
        {
            self.freshness_seconds.observe(age.as_secs_f64());
        }
    }
}
