//! `TestCluster`: nodes on a real gRPC server bound to 127.0.0.1:0, over a real Redis.

use std::{net::SocketAddr, time::Duration};

use iee_api::ingest::{TouchpointClient, touchpoint_service_client::TouchpointServiceClient};
use iee_config::ClusterConfig;
use iee_ingest::{IngestConfig, IngestDeps, IngestNode};
use iee_runtime::{GrpcServer, ServerConfig, Shutdown};
use iee_store::{RedisConfig, StoreConfig, Stores};
use iee_telemetry::MetricsRegistry;
use iee_test_support::RedisServer;
use tonic::transport::Channel;

/// Which storage backend a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// A private `redis-server` started for the test.
    Redis,
    /// In-process memory.
    Memory,
}

/// One ingest node served over gRPC on loopback.
pub struct TestCluster {
    /// The test's own Redis (Redis backend only).
    pub redis: Option<RedisServer>,
    /// The stores the node writes to, for assertions.
    pub stores: Stores,
    /// The node.
    pub ingest: IngestNode,
    /// The metrics registry of the node.
    pub metrics: MetricsRegistry,
    /// The gRPC address.
    pub addr: SocketAddr,
    shutdown: Shutdown,
    server: Option<tokio::task::JoinHandle<()>>,
}

impl std::fmt::Debug for TestCluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestCluster")
            .field("addr", &self.addr)
            .finish()
    }
}

/// Shard count of test clusters: small, so tests can reason about shards.
pub const TEST_SHARDS: u32 = 16;

impl TestCluster {
    /// Starts a node with the default ingest configuration.
    pub async fn start(backend: Backend) -> Self {
        Self::start_with(backend, IngestConfig::default()).await
    }

    /// Starts a node with `config`. Redis replies may take 5 s before a request fails, so a
    /// busy test machine does not turn into spurious UNAVAILABLE answers.
    pub async fn start_with(backend: Backend, config: IngestConfig) -> Self {
        Self::start_custom(backend, config, 5_000).await
    }

    /// Starts a node with `config` and the given Redis reply timeout.
    pub async fn start_custom(
        backend: Backend,
        config: IngestConfig,
        redis_response_timeout_ms: u64,
    ) -> Self {
        let cluster = ClusterConfig {
            shard_count: TEST_SHARDS,
        };
        let redis = (backend == Backend::Redis).then(RedisServer::start);
        let store_config = match &redis {
            Some(server) => StoreConfig {
                backend: iee_store::Backend::Redis,
                redis: RedisConfig {
                    url: server.url(),
                    response_timeout_ms: redis_response_timeout_ms,
                    ..RedisConfig::default()
                },
            },
            None => StoreConfig::default(),
        };
        let stores = Stores::open(&store_config, cluster.shard_count).expect("stores open");
        // Connect every pooled connection now: tests that stall Redis (SIGSTOP) must find
        // established connections, not a handshake that times out.
        for _ in 0..store_config.redis.connections * 2 {
            stores.log.ping().await.expect("the test's store answers");
        }
        let metrics = MetricsRegistry::default();
        let shutdown = Shutdown::new();
        let ingest = IngestNode::build(
            config,
            &cluster,
            IngestDeps {
                stores: stores.clone(),
                metrics: metrics.clone(),
                shutdown: shutdown.clone(),
            },
        );
        let mut server = GrpcServer::bind(&ServerConfig {
            listen: "127.0.0.1:0".to_owned(),
            shutdown_grace_ms: 0,
            drain_timeout_ms: 2_000,
            readiness_interval_ms: 100,
            ..ServerConfig::default()
        })
        .await
        .expect("bind loopback");
        ingest.register(&mut server);
        let addr = server.local_addr();
        let serving = shutdown.clone();
        let handle = tokio::spawn(async move {
            server.serve(serving).await.expect("test server runs");
        });
        Self {
            redis,
            stores,
            ingest,
            metrics,
            addr,
            shutdown,
            server: Some(handle),
        }
    }

    /// A gRPC channel to the node.
    pub async fn channel(&self) -> Channel {
        let endpoint = format!("http://{}", self.addr);
        tokio::time::timeout(Duration::from_secs(10), async {
            loop {
                if let Ok(channel) = Channel::from_shared(endpoint.clone())
                    .expect("valid endpoint")
                    .connect()
                    .await
                {
                    return channel;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await
        .expect("the test server accepts connections")
    }

    /// The raw generated gRPC client (for the stream RPC and status details).
    pub async fn grpc(&self) -> TouchpointServiceClient<Channel> {
        TouchpointServiceClient::new(self.channel().await)
            .max_decoding_message_size(64 << 20)
            .max_encoding_message_size(64 << 20)
    }

    /// The transport-neutral client over gRPC.
    pub async fn client(&self) -> TouchpointClient {
        TouchpointClient::from_channel(self.channel().await)
    }

    /// Every entry of every shard's log, decoded.
    pub async fn log_records(&self) -> Vec<(u32, String, iee_api::pb::common::LogRecord)> {
        let mut all = Vec::new();
        for shard in 0..TEST_SHARDS {
            let mut after: Option<String> = None;
            loop {
                let page = self
                    .stores
                    .log
                    .read(shard, after.as_deref(), 1_000)
                    .await
                    .expect("log readable");
                let Some(last) = page.last() else { break };
                after = Some(last.offset.clone());
                for entry in page {
                    let record = <iee_api::pb::common::LogRecord as prost::Message>::decode(
                        entry.payload.as_slice(),
                    )
                    .expect("log entries decode");
                    all.push((shard, entry.offset, record));
                }
            }
        }
        all
    }

    /// The test's Redis (panics on the memory backend).
    pub fn redis_mut(&mut self) -> &mut RedisServer {
        self.redis.as_mut().expect("this test runs on Redis")
    }

    /// Starts the server's shutdown sequence without waiting for it.
    pub fn trigger_shutdown(&self) {
        self.shutdown.trigger();
    }

    /// Stops the server.
    pub async fn stop(mut self) {
        self.shutdown.trigger();
        if let Some(handle) = self.server.take() {
            let _ = tokio::time::timeout(Duration::from_secs(10), handle).await;
        }
    }
}

impl Drop for TestCluster {
    fn drop(&mut self) {
        self.shutdown.trigger();
    }
}
