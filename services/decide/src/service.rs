//! The decision service's state and its [`DecideApi`]: each RPC is a module of its own
//! (`decision`, `outcome`, `audit`, `configs`, `outbound`); this ties them together.

use std::sync::Arc;

use iee_api::{
    decide::{
        DecideApi, DecideError, DecideRequest, DecideResponse, DecisionRecord,
        ExplainDecisionRequest, ExplainDecisionResponse, GetConfigRequest, GetConfigResponse,
        OutboundStream, PutConfigRequest, PutConfigResponse, ReplayDecisionRequest,
        ReplayDecisionResponse, ReportOutcomeRequest, ReportOutcomeResponse, WatchOutboundRequest,
    },
    ingest::TouchpointClient,
    predict::PredictClient,
    profile::ProfileClient,
};
use iee_store::Stores;
use prost::Message;

use crate::{
    DecideConfig, audit, configs::ConfigSet, decision, metrics::DecideMetrics, outbound, outcome,
};

/// Everything a decision needs: the clients of the other services, the stores and the
/// compiled configurations.
pub(crate) struct Decider {
    pub settings: DecideConfig,
    pub configs: Arc<ConfigSet>,
    pub profiles: ProfileClient,
    pub predict: PredictClient,
    pub ingest: TouchpointClient,
    pub stores: Stores,
    pub metrics: DecideMetrics,
    /// The installation's shard count.
    pub shard_count: u32,
    /// Admission: one permit per decision in progress (`max_in_flight`).
    pub admission: tokio::sync::Semaphore,
}

impl Decider {
    /// The logged decision, if retained.
    pub(crate) async fn logged(
        &self,
        tenant_id: &str,
        decision_id: &str,
    ) -> Result<Option<DecisionRecord>, DecideError> {
        record_of(
            self.stores
                .decisions
                .get_decision(tenant_id, decision_id)
                .await,
        )
    }

    /// The logged decision; NOT_FOUND when it is unknown or no longer retained.
    pub(crate) async fn logged_or_not_found(
        &self,
        tenant_id: &str,
        decision_id: &str,
    ) -> Result<DecisionRecord, DecideError> {
        self.logged(tenant_id, decision_id).await?.ok_or_else(|| {
            DecideError::NotFound(format!(
                "decision {decision_id:?} (unknown, or older than the decision log's retention)"
            ))
        })
    }

    /// The decision logged for a request id, if retained.
    pub(crate) async fn logged_for_request(
        &self,
        tenant_id: &str,
        request_id: &str,
    ) -> Result<Option<DecisionRecord>, DecideError> {
        record_of(
            self.stores
                .decisions
                .decision_for_request(tenant_id, request_id)
                .await,
        )
    }
}

/// A record read from the decision log, decoded.
pub(crate) fn record_of(
    read: Result<Option<Vec<u8>>, iee_store::StoreError>,
) -> Result<Option<DecisionRecord>, DecideError> {
    read.map_err(|e| DecideError::Unavailable(format!("decision log: {e}")))?
        .map(|bytes| {
            DecisionRecord::decode(bytes.as_slice())
                .map_err(|e| DecideError::Internal(format!("undecodable decision record: {e}")))
        })
        .transpose()
}

/// Checks a tenant id field.
pub(crate) fn require(field: &str, value: &str) -> Result<(), DecideError> {
    if value.is_empty() {
        return Err(DecideError::invalid(field, "required"));
    }
    if value.chars().count() > 128 {
        return Err(DecideError::invalid(field, "longer than 128 characters"));
    }
    Ok(())
}

#[async_trait::async_trait]
impl DecideApi for Decider {
    async fn decide(&self, request: DecideRequest) -> Result<DecideResponse, DecideError> {
        let Ok(_permit) = self.admission.try_acquire() else {
            self.metrics.overloaded.inc();
            return Err(DecideError::Overloaded(format!(
                "{} decisions in progress",
                self.settings.max_in_flight
            )));
        };
        decision::decide(self, request, decision::Provenance::default()).await
    }

    async fn report_outcome(
        &self,
        request: ReportOutcomeRequest,
    ) -> Result<ReportOutcomeResponse, DecideError> {
        outcome::report(self, request).await
    }

    async fn explain_decision(
        &self,
        request: ExplainDecisionRequest,
    ) -> Result<ExplainDecisionResponse, DecideError> {
        audit::explain(self, request).await
    }

    async fn replay_decision(
        &self,
        request: ReplayDecisionRequest,
    ) -> Result<ReplayDecisionResponse, DecideError> {
        audit::replay(self, request).await
    }

    async fn get_config(
        &self,
        request: GetConfigRequest,
    ) -> Result<GetConfigResponse, DecideError> {
        self.configs.get(request).await
    }

    async fn put_config(
        &self,
        request: PutConfigRequest,
    ) -> Result<PutConfigResponse, DecideError> {
        self.configs.put(request).await
    }

    async fn watch_outbound(
        &self,
        request: WatchOutboundRequest,
    ) -> Result<OutboundStream, DecideError> {
        outbound::watch(self.stores.clone(), request)
    }
}
