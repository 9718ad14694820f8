//! The gRPC face of the decision service: maps the generated tonic trait onto [`DecideApi`],
//! with one span and RED metrics per RPC and the one error-to-status mapping.

use std::{pin::Pin, sync::Arc};

use iee_api::decide::{
    DecideApi, DecideError, DecideRequest, DecideResponse, ExplainDecisionRequest,
    ExplainDecisionResponse, GetConfigRequest, GetConfigResponse, MAX_MESSAGE_BYTES,
    PutConfigRequest, PutConfigResponse, ReplayDecisionRequest, ReplayDecisionResponse,
    ReportOutcomeRequest, ReportOutcomeResponse, WatchOutboundRequest, WatchOutboundResponse,
    decision_service_server::{DecisionService, DecisionServiceServer},
};
use iee_telemetry::RpcMetrics;
use tokio_stream::{Stream, StreamExt};
use tonic::{Request, Response, Status};

/// Adapter from the generated gRPC trait to a [`DecideApi`] (the decide node).
pub struct DecideGrpc {
    api: Arc<dyn DecideApi>,
    metrics: RpcMetrics,
}

impl std::fmt::Debug for DecideGrpc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DecideGrpc").finish_non_exhaustive()
    }
}

/// `DecisionService` over `api`, recording RED metrics into `metrics`.
pub fn service(api: Arc<dyn DecideApi>, metrics: RpcMetrics) -> DecisionServiceServer<DecideGrpc> {
    DecisionServiceServer::new(DecideGrpc { api, metrics })
        .max_decoding_message_size(MAX_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_MESSAGE_BYTES)
}

/// The status of an error as it leaves the process (internal details stay in the log).
fn to_status(rpc: &'static str, err: DecideError) -> Status {
    iee_runtime::outgoing_status("decide", rpc, err.into())
}

impl DecideGrpc {
    async fn call<Req, T, Fut>(
        &self,
        rpc: &'static str,
        request: Request<Req>,
        work: impl FnOnce(Req) -> Fut,
    ) -> Result<Response<T>, Status>
    where
        Req: iee_api::tenancy::TenantScoped + prost::Message,
        Fut: Future<Output = Result<T, DecideError>>,
    {
        iee_runtime::serve_unary(&self.metrics, "decide", rpc, request, work).await
    }
}

/// The response stream of `WatchOutbound`.
pub type OutboundResponses =
    Pin<Box<dyn Stream<Item = Result<WatchOutboundResponse, Status>> + Send>>;

#[tonic::async_trait]
impl DecisionService for DecideGrpc {
    async fn decide(
        &self,
        request: Request<DecideRequest>,
    ) -> Result<Response<DecideResponse>, Status> {
        self.call("Decide", request, |r| self.api.decide(r)).await
    }

    async fn report_outcome(
        &self,
        request: Request<ReportOutcomeRequest>,
    ) -> Result<Response<ReportOutcomeResponse>, Status> {
        self.call("ReportOutcome", request, |r| self.api.report_outcome(r))
            .await
    }

    async fn explain_decision(
        &self,
        request: Request<ExplainDecisionRequest>,
    ) -> Result<Response<ExplainDecisionResponse>, Status> {
        self.call("ExplainDecision", request, |r| self.api.explain_decision(r))
            .await
    }

    async fn replay_decision(
        &self,
        request: Request<ReplayDecisionRequest>,
    ) -> Result<Response<ReplayDecisionResponse>, Status> {
        self.call("ReplayDecision", request, |r| self.api.replay_decision(r))
            .await
    }

    async fn get_config(
        &self,
        request: Request<GetConfigRequest>,
    ) -> Result<Response<GetConfigResponse>, Status> {
        self.call("GetConfig", request, |r| self.api.get_config(r))
            .await
    }

    async fn put_config(
        &self,
        request: Request<PutConfigRequest>,
    ) -> Result<Response<PutConfigResponse>, Status> {
        self.call("PutConfig", request, |r| self.api.put_config(r))
            .await
    }

    type WatchOutboundStream = OutboundResponses;

    async fn watch_outbound(
        &self,
        request: Request<WatchOutboundRequest>,
    ) -> Result<Response<Self::WatchOutboundStream>, Status> {
        let opened = self
            .call("WatchOutbound", request, |r| self.api.watch_outbound(r))
            .await?;
        let stream = opened.into_inner().map(|item| match item {
            Ok(action) => Ok(WatchOutboundResponse {
                action: Some(action),
            }),
            Err(err) => Err(to_status("WatchOutbound", err)),
        });
        Ok(Response::new(Box::pin(stream)))
    }
}
