//! A TouchpointService client that is either in-process or gRPC, behind one API.

use std::sync::Arc;

use tonic::transport::Channel;

use super::{
    IdentifyRequest, IdentifyResponse, IngestError, IngestRequest, IngestResponse,
    ListRejectedRequest, ListRejectedResponse, TouchpointApi,
    touchpoint_service_client::TouchpointServiceClient,
};
use crate::trace_context::traced;

/// Calls the ingest service in-process (standalone, tests) or over gRPC, with one API.
#[derive(Clone)]
pub enum TouchpointClient {
    /// Direct calls into an in-process node.
    Local(Arc<dyn TouchpointApi>),
    /// Calls over a gRPC channel, each in a client span whose W3C trace context travels with
    /// the request (see [`crate::trace_context`]).
    Grpc(TouchpointServiceClient<Channel>),
}

impl std::fmt::Debug for TouchpointClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Local(_) => f.write_str("TouchpointClient::Local"),
            Self::Grpc(_) => f.write_str("TouchpointClient::Grpc"),
        }
    }
}

impl TouchpointClient {
    /// A client over an existing channel, with message limits suited to large batches.
    pub fn from_channel(channel: Channel) -> Self {
        Self::Grpc(
            TouchpointServiceClient::new(channel)
                .max_decoding_message_size(64 << 20)
                .max_encoding_message_size(64 << 20),
        )
    }

    /// Connects to `endpoint` (`host:port`, `http://…` or `https://…`), over the installed
    /// client TLS if any (see [`crate::transport`]).
    pub async fn connect(endpoint: String) -> Result<Self, IngestError> {
        let target = crate::transport::endpoint(&endpoint)
            .map_err(|e| IngestError::invalid("endpoint", e))?
            .tcp_nodelay(true);
        let channel = crate::transport::connect(target)
            .await
            .map_err(|e| IngestError::Unavailable(format!("connect to {endpoint}: {e}")))?;
        Ok(Self::from_channel(channel))
    }
}

#[async_trait::async_trait]
impl TouchpointApi for TouchpointClient {
    async fn ingest(&self, request: IngestRequest) -> Result<IngestResponse, IngestError> {
        match self {
            Self::Local(node) => node.ingest(request).await,
            Self::Grpc(client) => Ok(traced("ingest", "Ingest", request, |r| async move {
                client.clone().ingest(r).await
            })
            .await?),
        }
    }

    async fn identify(&self, request: IdentifyRequest) -> Result<IdentifyResponse, IngestError> {
        match self {
            Self::Local(node) => node.identify(request).await,
            Self::Grpc(client) => Ok(traced("ingest", "Identify", request, |r| async move {
                client.clone().identify(r).await
            })
            .await?),
        }
    }

    async fn list_rejected(
        &self,
        request: ListRejectedRequest,
    ) -> Result<ListRejectedResponse, IngestError> {
        match self {
            Self::Local(node) => node.list_rejected(request).await,
            Self::Grpc(client) => Ok(traced("ingest", "ListRejected", request, |r| async move {
                client.clone().list_rejected(r).await
            })
            .await?),
        }
    }
}
