//! The gRPC face of the prediction service: maps the generated tonic trait onto [`PredictApi`],
//! with one span and RED metrics per RPC and the one error-to-status mapping.

use std::sync::Arc;

use iee_api::predict::{
    ActivateModelRequest, ActivateModelResponse, ListModelsRequest, ListModelsResponse,
    MAX_MESSAGE_BYTES, PredictApi, PredictError, RegisterModelRequest, RegisterModelResponse,
    ScoreRequest, ScoreResponse,
    prediction_service_server::{PredictionService, PredictionServiceServer},
};
use iee_telemetry::RpcMetrics;
use tonic::{Request, Response, Status};

/// Adapter from the generated gRPC trait to a [`PredictApi`] (the predict node).
pub struct PredictGrpc {
    api: Arc<dyn PredictApi>,
    metrics: RpcMetrics,
}

impl std::fmt::Debug for PredictGrpc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PredictGrpc").finish_non_exhaustive()
    }
}

/// `PredictionService` over `api`, recording RED metrics into `metrics` (registered by the
/// caller as `RpcMetrics::register(registry, "predict")`). Messages may reach
/// [`MAX_MESSAGE_BYTES`] either way, so a 16 MiB model artifact fits with its envelope.
pub fn service(
    api: Arc<dyn PredictApi>,
    metrics: RpcMetrics,
) -> PredictionServiceServer<PredictGrpc> {
    PredictionServiceServer::new(PredictGrpc { api, metrics })
        .max_decoding_message_size(MAX_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_MESSAGE_BYTES)
}

impl PredictGrpc {
    async fn call<Req, T, Fut>(
        &self,
        rpc: &'static str,
        request: Request<Req>,
        work: impl FnOnce(Req) -> Fut,
    ) -> Result<Response<T>, Status>
    where
        Req: iee_api::tenancy::TenantScoped + prost::Message,
        Fut: Future<Output = Result<T, PredictError>>,
    {
        iee_runtime::serve_unary(&self.metrics, "predict", rpc, request, work).await
    }
}

#[tonic::async_trait]
impl PredictionService for PredictGrpc {
    async fn score(
        &self,
        request: Request<ScoreRequest>,
    ) -> Result<Response<ScoreResponse>, Status> {
        self.call("Score", request, |r| self.api.score(r)).await
    }

    async fn list_models(
        &self,
        request: Request<ListModelsRequest>,
    ) -> Result<Response<ListModelsResponse>, Status> {
        self.call("ListModels", request, |r| self.api.list_models(r))
            .await
    }

    async fn activate_model(
        &self,
        request: Request<ActivateModelRequest>,
    ) -> Result<Response<ActivateModelResponse>, Status> {
        self.call("ActivateModel", request, |r| self.api.activate_model(r))
            .await
    }

    async fn register_model(
        &self,
        request: Request<RegisterModelRequest>,
    ) -> Result<Response<RegisterModelResponse>, Status> {
        self.call("RegisterModel", request, |r| self.api.register_model(r))
            .await
    }
}

#[cfg(test)]
mod tests {
    use iee_api::predict::{MAX_ARTIFACT_BYTES, ModelInfo, ModelRef, PredictClient};
    use iee_telemetry::MetricsRegistry;
    use tonic::{
        Code,
        transport::{Server, server::TcpIncoming},
    };

    use super::*;

    /// Answers every RPC with `result`; a successful `RegisterModel` reports the artifact's
    /// size as its training examples, so a test sees what arrived.
    struct Fake {
        result: Result<(), PredictError>,
    }

    impl Fake {
        fn answer<T: Default>(&self) -> Result<T, PredictError> {
            self.result.clone().map(|()| T::default())
        }
    }

    #[async_trait::async_trait]
    impl PredictApi for Fake {
        async fn score(&self, _: ScoreRequest) -> Result<ScoreResponse, PredictError> {
            self.answer()
        }
        async fn list_models(
            &self,
            _: ListModelsRequest,
        ) -> Result<ListModelsResponse, PredictError> {
            self.answer()
        }
        async fn activate_model(
            &self,
            _: ActivateModelRequest,
        ) -> Result<ActivateModelResponse, PredictError> {
            self.answer()
        }
        async fn register_model(
            &self,
            request: RegisterModelRequest,
        ) -> Result<RegisterModelResponse, PredictError> {
            self.result.clone()?;
            Ok(RegisterModelResponse {
                model: Some(ModelInfo {
                    model: Some(ModelRef {
                        model_id: "churn-logreg".into(),
                        version: "1".into(),
                    }),
                    training_examples: request.artifact.len() as u64,
                    ..Default::default()
                }),
                created: true,
            })
        }
    }

    fn grpc(result: Result<(), PredictError>) -> (PredictGrpc, MetricsRegistry) {
        let registry = MetricsRegistry::default();
        let grpc = PredictGrpc {
            api: Arc::new(Fake { result }),
            metrics: RpcMetrics::register(&registry, "predict"),
        };
        (grpc, registry)
    }

    fn counted(registry: &MetricsRegistry, rpc: &str, code: &str) -> bool {
        registry.encode().contains(&format!(
            r#"iee_predict_rpc_requests_total{{rpc="{rpc}",code="{code}"}} 1"#
        ))
    }

    /// Serves `service(...)` over `api` on a loopback port; returns a connected client.
    async fn serve(result: Result<(), PredictError>) -> (PredictClient, MetricsRegistry) {
        let registry = MetricsRegistry::default();
        let svc = service(
            Arc::new(Fake { result }),
            RpcMetrics::register(&registry, "predict"),
        );
        let incoming = TcpIncoming::bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = incoming.local_addr().unwrap();
        tokio::spawn(
            Server::builder()
                .add_service(svc)
                .serve_with_incoming(incoming),
        );
        let client = PredictClient::connect(format!("http://{addr}"))
            .await
            .unwrap();
        (client, registry)
    }

    #[tokio::test]
    async fn every_rpc_is_counted_as_ok_on_success() {
        let (grpc, registry) = grpc(Ok(()));
        grpc.score(Request::new(ScoreRequest::default()))
            .await
            .unwrap();
        grpc.list_models(Request::new(ListModelsRequest::default()))
            .await
            .unwrap();
        grpc.activate_model(Request::new(ActivateModelRequest::default()))
            .await
            .unwrap();
        grpc.register_model(Request::new(RegisterModelRequest::default()))
            .await
            .unwrap();
        for rpc in ["Score", "ListModels", "ActivateModel", "RegisterModel"] {
            assert!(
                counted(&registry, rpc, "OK"),
                "{rpc}: {}",
                registry.encode()
            );
        }
    }

    #[tokio::test]
    async fn errors_reach_the_client_unchanged_and_are_counted_by_code() {
        let cases = [
            (
                PredictError::invalid("churn", "no score requested"),
                "INVALID_ARGUMENT",
            ),
            (
                PredictError::NotFound("model churn-gbm".into()),
                "NOT_FOUND",
            ),
            (
                PredictError::AlreadyExists("churn-logreg 1".into()),
                "ALREADY_EXISTS",
            ),
            (
                PredictError::Aborted("revision is 4, not 3".into()),
                "ABORTED",
            ),
            (
                PredictError::Unavailable("redis: connection refused".into()),
                "UNAVAILABLE",
            ),
            (
                PredictError::DeadlineExceeded("profile read".into()),
                "DEADLINE_EXCEEDED",
            ),
        ];
        for (err, code) in cases {
            let (grpc, registry) = grpc(Err(err.clone()));
            let status = grpc
                .activate_model(Request::new(ActivateModelRequest::default()))
                .await
                .unwrap_err();
            assert_eq!(PredictError::from_status(status), err);
            assert!(
                counted(&registry, "ActivateModel", code),
                "{code}: {}",
                registry.encode()
            );
        }
    }

    #[tokio::test]
    async fn internal_details_are_not_sent() {
        let (grpc, registry) = grpc(Err(PredictError::Internal(
            "redis NOSCRIPT at {acme}:models".into(),
        )));
        let status = grpc
            .score(Request::new(ScoreRequest::default()))
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::Internal);
        assert!(!status.message().contains("redis"), "{}", status.message());
        assert!(counted(&registry, "Score", "INTERNAL"));
    }

    #[tokio::test]
    async fn artifact_at_the_size_limit_crosses_the_wire() {
        let (client, registry) = serve(Ok(())).await;
        let registered = client
            .register_model(RegisterModelRequest {
                tenant_id: "acme".into(),
                artifact: vec![b' '; MAX_ARTIFACT_BYTES],
            })
            .await
            .unwrap();
        let model = registered.model.unwrap();
        assert_eq!(model.training_examples, MAX_ARTIFACT_BYTES as u64);
        assert!(counted(&registry, "RegisterModel", "OK"));
    }

    #[tokio::test]
    async fn invalid_argument_names_its_field_over_the_wire() {
        let err = PredictError::invalid("artifact.weights[3]", "not a finite number");
        let (client, registry) = serve(Err(err.clone())).await;
        let got = client
            .register_model(RegisterModelRequest::default())
            .await
            .unwrap_err();
        assert_eq!(got, err);
        assert!(counted(&registry, "RegisterModel", "INVALID_ARGUMENT"));
    }
}
