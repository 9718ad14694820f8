//! Metrics of the prediction service: `iee_predict_*`.

use iee_telemetry::{MetricsRegistry, RpcMetrics};
use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{
        counter::Counter,
        family::Family,
        histogram::{Histogram, exponential_buckets},
    },
};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct KindRoleLabels {
    pub(crate) kind: &'static str,
    pub(crate) role: &'static str,
}

/// The prediction service's metrics.
#[derive(Clone, Debug)]
pub(crate) struct PredictMetrics {
    pub(crate) rpc: RpcMetrics,
    pub(crate) scores: Family<KindRoleLabels, Counter>,
    pub(crate) profile_seconds: Histogram,
    pub(crate) model_load_failures: Counter,
    pub(crate) refreshes: Counter,
    pub(crate) outcomes_learned: Counter,
    pub(crate) outcomes_skipped: Counter,
    pub(crate) syncs: Counter,
}

impl PredictMetrics {
    pub(crate) fn register(registry: &MetricsRegistry) -> Self {
        let m = Self {
            rpc: RpcMetrics::register(registry, "predict"),
            scores: Family::default(),
            profile_seconds: Histogram::new(exponential_buckets(0.000_05, 2.0, 16)),
            model_load_failures: Counter::default(),
            refreshes: Counter::default(),
            outcomes_learned: Counter::default(),
            outcomes_skipped: Counter::default(),
            syncs: Counter::default(),
        };
        registry.register(
            "iee_predict_scores",
            "Scores computed, by model kind and role (champion, challenger)",
            m.scores.clone(),
        );
        registry.register(
            "iee_predict_profile_seconds",
            "Time to fetch the profile a score is computed from",
            m.profile_seconds.clone(),
        );
        registry.register(
            "iee_predict_model_load_failures",
            "Activated model versions refused at load (the kind kept its previous model)",
            m.model_load_failures.clone(),
        );
        registry.register(
            "iee_predict_assignment_reloads",
            "Tenants whose model assignments were reloaded after an activation",
            m.refreshes.clone(),
        );
        registry.register(
            "iee_predict_outcomes_learned",
            "Outcome events the propensity model learned from",
            m.outcomes_learned.clone(),
        );
        registry.register(
            "iee_predict_outcomes_skipped",
            "Outcome events not learned from (no action, unknown kind, profile unavailable)",
            m.outcomes_skipped.clone(),
        );
        registry.register(
            "iee_predict_learner_syncs",
            "Merges of learned propensity statistics through the store",
            m.syncs.clone(),
        );
        m
    }

    pub(crate) fn scored(&self, kind: &'static str, role: &'static str) {
        self.scores
            .get_or_create(&KindRoleLabels { kind, role })
            .inc();
    }
}
