//! A PredictionService client that is either in-process or gRPC, behind one API.

use std::sync::Arc;

use tonic::transport::Channel;

use super::{
    ActivateModelRequest, ActivateModelResponse, ListModelsRequest, ListModelsResponse,
    MAX_MESSAGE_BYTES, PredictApi, PredictError, RegisterModelRequest, RegisterModelResponse,
    ScoreRequest, ScoreResponse, prediction_service_client::PredictionServiceClient,
};
use crate::trace_context::traced;

/// Calls the prediction service in-process (standalone, tests) or over gRPC, with one API.
/// Replicas are stateless, so any of them (e.g. behind a Kubernetes Service) can answer.
#[derive(Clone)]
pub enum PredictClient {
    /// Direct calls into an in-process node.
    Local(Arc<dyn PredictApi>),
    /// Calls over a gRPC channel, each in a client span whose W3C trace context travels with
    /// the request (see [`crate::trace_context`]).
    Grpc(PredictionServiceClient<Channel>),
}

impl std::fmt::Debug for PredictClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Local(_) => f.write_str("PredictClient::Local"),
            Self::Grpc(_) => f.write_str("PredictClient::Grpc"),
        }
    }
}

impl PredictClient {
    /// A client over an existing channel, with message limits that fit a model artifact.
    pub fn from_channel(channel: Channel) -> Self {
        Self::Grpc(
            PredictionServiceClient::new(channel)
                .max_decoding_message_size(MAX_MESSAGE_BYTES)
                .max_encoding_message_size(MAX_MESSAGE_BYTES),
        )
    }

    /// Connects to `endpoint` (`host:port`, `http://…` or `https://…`), over the installed
    /// client TLS if any (see [`crate::transport`]).
    pub async fn connect(endpoint: String) -> Result<Self, PredictError> {
        let target = crate::transport::endpoint(&endpoint)
            .map_err(|e| PredictError::invalid("endpoint", e))?
            .tcp_nodelay(true);
        let channel = crate::transport::connect(target)
            .await
            .map_err(|e| PredictError::Unavailable(format!("connect to {endpoint}: {e}")))?;
        Ok(Self::from_channel(channel))
    }
}

#[async_trait::async_trait]
impl PredictApi for PredictClient {
    async fn score(&self, request: ScoreRequest) -> Result<ScoreResponse, PredictError> {
        match self {
            Self::Local(node) => node.score(request).await,
            Self::Grpc(client) => Ok(traced("predict", "Score", request, |r| async move {
                client.clone().score(r).await
            })
            .await?),
        }
    }

    async fn list_models(
        &self,
        request: ListModelsRequest,
    ) -> Result<ListModelsResponse, PredictError> {
        match self {
            Self::Local(node) => node.list_models(request).await,
            Self::Grpc(client) => Ok(traced("predict", "ListModels", request, |r| async move {
                client.clone().list_models(r).await
            })
            .await?),
        }
    }

    async fn activate_model(
        &self,
        request: ActivateModelRequest,
    ) -> Result<ActivateModelResponse, PredictError> {
        match self {
            Self::Local(node) => node.activate_model(request).await,
            Self::Grpc(client) => Ok(traced("predict", "ActivateModel", request, |r| async move {
                client.clone().activate_model(r).await
            })
            .await?),
        }
    }

    async fn register_model(
        &self,
        request: RegisterModelRequest,
    ) -> Result<RegisterModelResponse, PredictError> {
        match self {
            Self::Local(node) => node.register_model(request).await,
            Self::Grpc(client) => Ok(traced("predict", "RegisterModel", request, |r| async move {
                client.clone().register_model(r).await
            })
            .await?),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::predict::ChurnQuery;

    /// Echoes what it was asked, so a test can tell the call reached it.
    struct Echo;

    #[async_trait::async_trait]
    impl PredictApi for Echo {
        async fn score(&self, request: ScoreRequest) -> Result<ScoreResponse, PredictError> {
            Ok(ScoreResponse {
                seed: request.churn.map_or(0, |_| 7),
                ..Default::default()
            })
        }
        async fn list_models(
            &self,
            request: ListModelsRequest,
        ) -> Result<ListModelsResponse, PredictError> {
            Ok(ListModelsResponse {
                next_page_token: request.tenant_id,
                ..Default::default()
            })
        }
        async fn activate_model(
            &self,
            request: ActivateModelRequest,
        ) -> Result<ActivateModelResponse, PredictError> {
            Err(PredictError::Aborted(format!(
                "revision is not {}",
                request.expected_revision
            )))
        }
        async fn register_model(
            &self,
            _: RegisterModelRequest,
        ) -> Result<RegisterModelResponse, PredictError> {
            Err(PredictError::AlreadyExists("churn-logreg 1".into()))
        }
    }

    #[tokio::test]
    async fn local_client_calls_the_node_directly() {
        let client = PredictClient::Local(Arc::new(Echo));
        let scored = client
            .score(ScoreRequest {
                churn: Some(ChurnQuery {}),
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(scored.seed, 7);
        let listed = client
            .list_models(ListModelsRequest {
                tenant_id: "acme".into(),
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(listed.next_page_token, "acme");
        let conflict = client
            .activate_model(ActivateModelRequest {
                expected_revision: 3,
                ..Default::default()
            })
            .await
            .unwrap_err();
        assert_eq!(conflict, PredictError::Aborted("revision is not 3".into()));
        assert!(matches!(
            client
                .register_model(RegisterModelRequest::default())
                .await
                .unwrap_err(),
            PredictError::AlreadyExists(_)
        ));
    }

    #[tokio::test]
    async fn malformed_endpoint_is_an_invalid_argument() {
        let err = PredictClient::connect("not a uri".into())
            .await
            .unwrap_err();
        assert!(
            matches!(err, PredictError::InvalidArgument { ref field, .. } if field == "endpoint"),
            "{err:?}"
        );
    }

    #[tokio::test]
    async fn unreachable_endpoint_is_unavailable() {
        // Port 1 on loopback: nothing listens there, so the connect is refused at once.
        let err = PredictClient::connect("http://127.0.0.1:1".into())
            .await
            .unwrap_err();
        assert!(matches!(err, PredictError::Unavailable(_)), "{err:?}");
    }
}
