//! `KpiNode`: the KPI service as a unit that runs in its own binary, in standalone and in tests
//! alike.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use iee_api::kpi::{KpiApi, KpiClient, kpi_service_server::KpiServiceServer};
use iee_config::ClusterConfig;
use iee_runtime::{Background, GrpcServer};
use iee_store::Stores;
use iee_telemetry::MetricsRegistry;

use tonic::server::NamedService;

use crate::{
    KpiConfig, KpiGrpc,
    consumer::{self, Aggregator},
    gauges,
    metrics::KpiMetrics,
    query::Reader,
    service::KpiService,
};

/// The KPI service of one replica.
pub struct KpiNode {
    aggregator: Arc<Aggregator>,
    service: Arc<KpiService>,
    background: Background,
}

impl std::fmt::Debug for KpiNode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KpiNode").finish_non_exhaustive()
    }
}

impl KpiNode {
    /// Builds the node over `stores`, registering its metrics in `registry`. The configuration
    /// must have been validated.
    pub fn build(
        config: KpiConfig,
        cluster: &ClusterConfig,
        stores: Stores,
        registry: &MetricsRegistry,
    ) -> Self {
        let metrics = KpiMetrics::register(registry);
        let service = Arc::new(KpiService {
            reader: Reader {
                store: stores.kpi.clone(),
                partitions: config.partitions,
                max_store_buckets: config.max_query_buckets,
            },
        });
        let aggregator = Arc::new(Aggregator {
            config,
            stores,
            shard_count: cluster.shard_count,
            metrics,
            ready: AtomicBool::new(false),
        });
        Self {
            aggregator,
            service,
            background: Background::new(),
        }
    }

    /// Starts aggregating this replica's partitions and, on replica 0, refreshing the KPI
    /// gauges.
    pub fn start(&self) {
        self.background.spawn(consumer::run(
            self.aggregator.clone(),
            self.background.stop_signal(),
        ));
        let config = &self.aggregator.config;
        if config.ordinal == 0 && config.gauge_interval_secs > 0 {
            let service = self.service.clone();
            let metrics = self.aggregator.metrics.clone();
            let max_tenants = config.gauge_max_tenants;
            self.background
                .every(Duration::from_secs(config.gauge_interval_secs), move || {
                    let service = service.clone();
                    let metrics = metrics.clone();
                    async move { gauges::refresh(&service.reader, &metrics, max_tenants).await }
                });
        }
    }

    /// Adds `KpiService` to `server`, SERVING once an aggregation round has succeeded and
    /// NOT_SERVING while rounds fail (storage unreachable).
    pub fn register(&self, server: &mut GrpcServer) {
        let api: Arc<dyn KpiApi> = self.service.clone();
        server.add_service(crate::grpc::service(
            api,
            self.aggregator.metrics.rpc.clone(),
        ));
        let aggregator = self.aggregator.clone();
        server.add_readiness_probe(
            <KpiServiceServer<KpiGrpc> as NamedService>::NAME,
            Arc::new(move || {
                let ready = aggregator.ready.load(Ordering::Acquire);
                Box::pin(async move { ready })
            }),
        );
    }

    /// Whether an aggregation round has succeeded and none has failed since.
    pub fn is_ready(&self) -> bool {
        self.aggregator.ready.load(Ordering::Acquire)
    }

    /// An in-process client.
    pub fn client(&self) -> KpiClient {
        KpiClient::Local(self.service.clone())
    }

    /// Stops aggregating (a batch in flight is either committed or not at all).
    pub async fn stop(&self) {
        self.background.stop().await;
        tracing::info!("kpi node stopped");
    }
}
