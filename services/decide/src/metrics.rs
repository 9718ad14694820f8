//! Metrics of the decision service: `iee_decide_*` (RPC latency and errors come from the shared
//! RED metrics).

use iee_api::decide::DecideResponse;
use iee_telemetry::{MetricsRegistry, RpcMetrics};
use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{counter::Counter, family::Family},
};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct Labels {
    pub(crate) kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct ReasonLabels {
    pub(crate) reason: String,
}

/// The decision service's metrics.
#[derive(Clone, Debug)]
pub(crate) struct DecideMetrics {
    pub(crate) rpc: RpcMetrics,
    decisions: Family<Labels, Counter>,
    actions: Counter,
    degraded: Family<ReasonLabels, Counter>,
    outcomes: Family<Labels, Counter>,
    configs: Family<Labels, Counter>,
    signals: Family<Labels, Counter>,
    pub(crate) signal_gaps: Counter,
    pub(crate) overloaded: Counter,
}

impl DecideMetrics {
    pub(crate) fn register(registry: &MetricsRegistry) -> Self {
        let m = Self {
            rpc: RpcMetrics::register(registry, "decide"),
            decisions: Family::default(),
            actions: Counter::default(),
            degraded: Family::default(),
            outcomes: Family::default(),
            configs: Family::default(),
            signals: Family::default(),
            signal_gaps: Counter::default(),
            overloaded: Counter::default(),
        };
        registry.register(
            "iee_decide_decisions",
            "Decisions logged, by kind (treatment, holdout, empty)",
            m.decisions.clone(),
        );
        registry.register(
            "iee_decide_actions_returned",
            "Actions returned by decisions",
            m.actions.clone(),
        );
        registry.register(
            "iee_decide_degraded",
            "Decisions made without the profile or the models, by reason",
            m.degraded.clone(),
        );
        registry.register(
            "iee_decide_outcomes",
            "Outcomes reported and ingested, by kind",
            m.outcomes.clone(),
        );
        registry.register(
            "iee_decide_config_changes",
            "Decision configuration versions activated, reloaded from the store, or rejected",
            m.configs.clone(),
        );
        registry.register(
            "iee_decide_signals",
            "Signals handled by proactive triggers, by result",
            m.signals.clone(),
        );
        registry.register(
            "iee_decide_overloaded",
            "Decide requests refused because max_in_flight decisions were in progress",
            m.overloaded.clone(),
        );
        registry.register(
            "iee_decide_signal_gaps",
            "Times the signal watcher's cursors were older than the profile's signal history",
            m.signal_gaps.clone(),
        );
        m
    }

    /// Counts a logged decision.
    pub(crate) fn decided(&self, response: &DecideResponse) {
        let kind = if response.holdout {
            "holdout"
        } else if response.actions.is_empty() {
            "empty"
        } else {
            "treatment"
        };
        self.decisions.get_or_create(&Labels { kind }).inc();
        self.actions.inc_by(response.actions.len() as u64);
        for reason in &response.degraded {
            self.degraded
                .get_or_create(&ReasonLabels {
                    reason: reason.clone(),
                })
                .inc();
        }
    }

    /// Counts an ingested outcome.
    pub(crate) fn outcome(&self, kind: &'static str) {
        self.outcomes.get_or_create(&Labels { kind }).inc();
    }

    /// Counts a configuration change.
    pub(crate) fn config(&self, kind: &'static str) {
        self.configs.get_or_create(&Labels { kind }).inc();
    }

    /// Counts a handled signal.
    pub(crate) fn signal(&self, kind: &'static str) {
        self.signals.get_or_create(&Labels { kind }).inc();
    }
}
