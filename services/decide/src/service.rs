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
    pb::common::CustomerRef,
    predict::PredictClient,
    profile::ProfileClient,
    shard::{customer_key, shard_of},
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
    /// Ends the outbound streams when the process begins to shut down.
    pub shutdown: iee_runtime::Shutdown,
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

/// The chosen action ids of a decision, comma-separated, for span attributes.
pub(crate) fn action_ids(response: &DecideResponse) -> String {
    let ids: Vec<&str> = response
        .actions
        .iter()
        .map(|a| a.action_id.as_str())
        .collect();
    ids.join(",")
}

/// Puts the tenant and shard of `customer` on the current span; never the customer's ids.
pub(crate) fn annotate_customer(customer: Option<&CustomerRef>, shard_count: u32) {
    let Some(customer) = customer.filter(|c| !c.tenant_id.is_empty()) else {
        return;
    };
    iee_telemetry::set_current_attribute("iee.tenant", customer.tenant_id.clone());
    let shard = shard_of_customer(customer, shard_count);
    iee_telemetry::set_current_attribute("iee.shard", i64::from(shard));
}

/// The shard of a customer.
pub(crate) fn shard_of_customer(customer: &CustomerRef, shard_count: u32) -> u32 {
    let key = customer_key(&customer.customer_id, &customer.anonymous_id);
    shard_of(&customer.tenant_id, &key, shard_count.max(1))
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
        let customer = request.customer.clone();
        let decided = decision::decide(self, request, decision::Provenance::default()).await;
        // Only validated input becomes span attributes.
        if !matches!(decided, Err(DecideError::InvalidArgument { .. })) {
            annotate_customer(customer.as_ref(), self.shard_count);
        }
        let response = decided?;
        iee_telemetry::set_current_attribute("iee.decision_id", response.decision_id.clone());
        iee_telemetry::set_current_attribute("iee.action_ids", action_ids(&response));
        Ok(response)
    }

    async fn report_outcome(
        &self,
        request: ReportOutcomeRequest,
    ) -> Result<ReportOutcomeResponse, DecideError> {
        let ids = [
            ("iee.tenant", request.tenant_id.clone()),
            ("iee.decision_id", request.decision_id.clone()),
            ("iee.action_id", request.action_id.clone()),
        ];
        let reported = outcome::report(self, request).await;
        // Only validated input becomes span attributes.
        if !matches!(reported, Err(DecideError::InvalidArgument { .. })) {
            for (key, value) in ids {
                iee_telemetry::set_current_attribute(key, value);
            }
        }
        reported
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
        outbound::watch(self.stores.clone(), request, self.shutdown.clone())
    }
}
