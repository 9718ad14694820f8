//! `IngestNode`: the ingest service as a unit that runs in its own binary, in standalone and in
//! tests alike.

use std::sync::Arc;

use iee_api::ingest::{TouchpointClient, touchpoint_service_server::TouchpointServiceServer};
use iee_config::ClusterConfig;
use iee_runtime::{GrpcServer, Shutdown};
use iee_store::Stores;
use iee_telemetry::MetricsRegistry;
use tonic::server::NamedService;

use crate::{
    IngestConfig, IngestError, grpc::TouchpointGrpc, metrics::IngestMetrics, service::Ingestor,
};

/// What an ingest node is built from.
#[derive(Debug, Clone)]
pub struct IngestDeps {
    /// The storage backend.
    pub stores: Stores,
    /// Where the node registers its metrics.
    pub metrics: MetricsRegistry,
    /// The process's shutdown token: open streams stop reading when it triggers.
    pub shutdown: Shutdown,
}

/// The ingest service, ready to be registered on a server or called in-process.
#[derive(Debug, Clone)]
pub struct IngestNode {
    ingestor: Arc<Ingestor>,
    shutdown: Shutdown,
}

impl IngestNode {
    /// Builds the node. The configuration must have been validated.
    pub fn build(config: IngestConfig, cluster: &ClusterConfig, deps: IngestDeps) -> Self {
        let metrics = IngestMetrics::register(&deps.metrics);
        Self {
            ingestor: Arc::new(Ingestor::new(
                config,
                cluster.shard_count,
                deps.stores,
                metrics,
            )),
            shutdown: deps.shutdown,
        }
    }

    /// Adds `TouchpointService` to `server`, NOT_SERVING while the event log is unreachable.
    pub fn register(&self, server: &mut GrpcServer) {
        let max = self.ingestor.config().max_message_bytes;
        server.add_service(
            TouchpointServiceServer::new(TouchpointGrpc {
                ingestor: self.ingestor.clone(),
                shutdown: self.shutdown.clone(),
            })
            .max_decoding_message_size(max)
            .max_encoding_message_size(max),
        );
        let ingestor = self.ingestor.clone();
        server.add_readiness_probe(
            <TouchpointServiceServer<TouchpointGrpc> as NamedService>::NAME,
            Arc::new(move || {
                let ingestor = ingestor.clone();
                Box::pin(async move { ingestor.ping().await.is_ok() })
            }),
        );
    }

    /// An in-process client.
    pub fn client(&self) -> TouchpointClient {
        TouchpointClient::Local(self.ingestor.clone())
    }

    /// Ready when the event log answers.
    pub async fn readiness(&self) -> Result<(), IngestError> {
        self.ingestor.ping().await
    }

    /// Stops the node. Ingest keeps no buffered state: every acknowledged event is already in
    /// the log, so there is nothing to flush.
    pub async fn stop(&self) {
        tracing::info!("ingest node stopped");
    }
}
