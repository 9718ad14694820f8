//! A DecisionService client that is either in-process or gRPC, behind one API.

use std::sync::Arc;

use tokio_stream::StreamExt;
use tonic::transport::Channel;

use super::{
    DecideApi, DecideError, DecideRequest, DecideResponse, ExplainDecisionRequest,
    ExplainDecisionResponse, GetConfigRequest, GetConfigResponse, MAX_MESSAGE_BYTES,
    OutboundStream, PutConfigRequest, PutConfigResponse, ReplayDecisionRequest,
    ReplayDecisionResponse, ReportOutcomeRequest, ReportOutcomeResponse, WatchOutboundRequest,
    decision_service_client::DecisionServiceClient,
};
use crate::trace_context::traced;

/// Calls the decision service in-process (standalone, tests) or over gRPC, with one API.
/// Replicas are stateless, so any of them can answer.
#[derive(Clone)]
pub enum DecideClient {
    /// Direct calls into an in-process node.
    Local(Arc<dyn DecideApi>),
    /// Calls over a gRPC channel, each in a client span whose W3C trace context travels with
    /// the request (see [`crate::trace_context`]).
    Grpc(DecisionServiceClient<Channel>),
}

impl std::fmt::Debug for DecideClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Local(_) => f.write_str("DecideClient::Local"),
            Self::Grpc(_) => f.write_str("DecideClient::Grpc"),
        }
    }
}

impl DecideClient {
    /// A client over an existing channel, with message limits that fit a configuration.
    pub fn from_channel(channel: Channel) -> Self {
        Self::Grpc(
            DecisionServiceClient::new(channel)
                .max_decoding_message_size(MAX_MESSAGE_BYTES)
                .max_encoding_message_size(MAX_MESSAGE_BYTES),
        )
    }

    /// Connects to `endpoint` (`host:port`, `http://…` or `https://…`), over the installed
    /// client TLS if any (see [`crate::transport`]).
    pub async fn connect(endpoint: String) -> Result<Self, DecideError> {
        let target = crate::transport::endpoint(&endpoint)
            .map_err(|e| DecideError::invalid("endpoint", e))?
            .tcp_nodelay(true);
        let channel = crate::transport::connect(target)
            .await
            .map_err(|e| DecideError::Unavailable(format!("connect to {endpoint}: {e}")))?;
        Ok(Self::from_channel(channel))
    }
}

#[async_trait::async_trait]
impl DecideApi for DecideClient {
    async fn decide(&self, request: DecideRequest) -> Result<DecideResponse, DecideError> {
        match self {
            Self::Local(node) => node.decide(request).await,
            Self::Grpc(client) => Ok(traced("decide", "Decide", request, |r| async move {
                client.clone().decide(r).await
            })
            .await?),
        }
    }

    async fn report_outcome(
        &self,
        request: ReportOutcomeRequest,
    ) -> Result<ReportOutcomeResponse, DecideError> {
        match self {
            Self::Local(node) => node.report_outcome(request).await,
            Self::Grpc(client) => Ok(traced("decide", "ReportOutcome", request, |r| async move {
                client.clone().report_outcome(r).await
            })
            .await?),
        }
    }

    async fn explain_decision(
        &self,
        request: ExplainDecisionRequest,
    ) -> Result<ExplainDecisionResponse, DecideError> {
        match self {
            Self::Local(node) => node.explain_decision(request).await,
            Self::Grpc(client) => Ok(traced(
                "decide",
                "ExplainDecision",
                request,
                |r| async move { client.clone().explain_decision(r).await },
            )
            .await?),
        }
    }

    async fn replay_decision(
        &self,
        request: ReplayDecisionRequest,
    ) -> Result<ReplayDecisionResponse, DecideError> {
        match self {
            Self::Local(node) => node.replay_decision(request).await,
            Self::Grpc(client) => Ok(traced("decide", "ReplayDecision", request, |r| async move {
                client.clone().replay_decision(r).await
            })
            .await?),
        }
    }

    async fn get_config(
        &self,
        request: GetConfigRequest,
    ) -> Result<GetConfigResponse, DecideError> {
        match self {
            Self::Local(node) => node.get_config(request).await,
            Self::Grpc(client) => Ok(traced("decide", "GetConfig", request, |r| async move {
                client.clone().get_config(r).await
            })
            .await?),
        }
    }

    async fn put_config(
        &self,
        request: PutConfigRequest,
    ) -> Result<PutConfigResponse, DecideError> {
        match self {
            Self::Local(node) => node.put_config(request).await,
            Self::Grpc(client) => Ok(traced("decide", "PutConfig", request, |r| async move {
                client.clone().put_config(r).await
            })
            .await?),
        }
    }

    async fn watch_outbound(
        &self,
        request: WatchOutboundRequest,
    ) -> Result<OutboundStream, DecideError> {
        match self {
            Self::Local(node) => node.watch_outbound(request).await,
            Self::Grpc(client) => {
                // The span covers opening the stream, not its life.
                let stream = traced("decide", "WatchOutbound", request, |r| async move {
                    client.clone().watch_outbound(r).await
                })
                .await?;
                Ok(Box::pin(stream.map(|item| match item {
                    Ok(response) => response.action.ok_or_else(|| {
                        DecideError::Internal("outbound entry without an action".into())
                    }),
                    Err(status) => Err(DecideError::from_status(status)),
                })))
            }
        }
    }
}
