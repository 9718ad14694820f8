//! `ProfileNode`: the profile service as a unit that runs in its own binary, in standalone and
//! in tests alike.

use std::{
    collections::HashMap,
    sync::{
        Arc, RwLock,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    time::Instant,
};

use iee_api::profile::{ProfileApi, ProfileClient, profile_service_server::ProfileServiceServer};
use iee_config::ClusterConfig;
use iee_runtime::{Background, GrpcServer, Shutdown};
use iee_store::Stores;
use iee_telemetry::MetricsRegistry;
use tokio::sync::broadcast;
use tonic::server::NamedService;

use crate::{
    ProfileConfig,
    ctx::NodeCtx,
    fold::Folder,
    grpc::ProfileGrpc,
    metrics::ProfileMetrics,
    ownership::{Ownership, ShardTable, hand_off_handle, read_logs},
    service::ProfileService,
};

/// What a profile node is built from.
#[derive(Debug, Clone)]
pub struct ProfileDeps {
    /// The storage backend.
    pub stores: Stores,
    /// Where the node registers its metrics.
    pub metrics: MetricsRegistry,
    /// The process's shutdown token: signal streams end when it triggers.
    pub shutdown: Shutdown,
}

/// The profile service of one node, ready to be started, registered on a server or called
/// in-process.
pub struct ProfileNode {
    ctx: Arc<NodeCtx>,
    table: ShardTable,
    service: Arc<ProfileService>,
    ready: Arc<AtomicBool>,
    background: Background,
}

impl std::fmt::Debug for ProfileNode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProfileNode")
            .field("node_id", &self.ctx.node_id)
            .finish_non_exhaustive()
    }
}

/// The node id used when none is configured: the host name and the listening port.
pub fn default_node_id(port: u16) -> String {
    iee_runtime::instance_name("profile", port)
}

impl ProfileNode {
    /// Builds the node. The configuration must have been validated and `config.node_id` set.
    pub fn build(config: ProfileConfig, cluster: &ClusterConfig, deps: ProfileDeps) -> Self {
        let metrics = ProfileMetrics::register(&deps.metrics);
        let (signals, _) = broadcast::channel(4096);
        let ctx = Arc::new(NodeCtx {
            node_id: config.node_id.clone(),
            folder: Folder::new(config.fold.clone()),
            dedup_window_secs: config.dedup_window_secs,
            config,
            stores: deps.stores,
            shard_count: cluster.shard_count,
            metrics,
            signals,
            resident: AtomicUsize::new(0),
            epoch_instant: Instant::now(),
        });
        let table: ShardTable = Arc::new(RwLock::new(HashMap::new()));
        let service = Arc::new(ProfileService {
            ctx: ctx.clone(),
            table: table.clone(),
            shutdown: deps.shutdown,
        });
        Self {
            ctx,
            table,
            service,
            ready: Arc::new(AtomicBool::new(false)),
            background: Background::new(),
        }
    }

    /// This node's id.
    pub fn node_id(&self) -> &str {
        &self.ctx.node_id
    }

    /// Joins the membership and starts taking shards and reading their logs. `address` is the
    /// `host:port` other services reach this node at.
    pub fn start(&self, address: String) {
        let ownership = Ownership::new(
            self.ctx.clone(),
            self.table.clone(),
            address,
            self.ready.clone(),
        );
        self.background
            .spawn(ownership.run(self.background.stop_signal()));
        self.background.spawn(read_logs(
            self.ctx.clone(),
            self.table.clone(),
            self.background.stop_signal(),
        ));
    }

    /// Adds `ProfileService` to `server`, SERVING once the node owns the shards assigned to it
    /// and has caught up with their logs.
    pub fn register(&self, server: &mut GrpcServer) {
        let api: Arc<dyn ProfileApi> = self.service.clone();
        server.add_service(crate::grpc::service(api, self.ctx.metrics.rpc.clone()));
        let ready = self.ready.clone();
        server.add_readiness_probe(
            <ProfileServiceServer<ProfileGrpc> as NamedService>::NAME,
            Arc::new(move || {
                let ready = ready.load(Ordering::Acquire);
                Box::pin(async move { ready })
            }),
        );
    }

    /// An in-process client.
    pub fn client(&self) -> ProfileClient {
        ProfileClient::Local(self.service.clone())
    }

    /// Whether the node owns every shard assigned to it and has caught up with their logs.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }

    /// Number of shards this node serves.
    pub fn shards_owned(&self) -> usize {
        crate::ownership::read_table(&self.table).len()
    }

    /// Log events applied to profiles by this node since it started.
    pub fn events_applied(&self) -> u64 {
        self.ctx.metrics.applied.get()
    }

    /// Customer actors resident on this node.
    pub fn resident_actors(&self) -> usize {
        self.ctx.resident.load(Ordering::Relaxed)
    }

    /// Leaves gracefully: stops taking shards, writes every shard's state, gives every lease
    /// back and leaves the membership, so other nodes take the shards at once.
    pub async fn stop(&self) {
        self.background.stop().await;
        if let Err(err) = self.ctx.stores.membership.leave(&self.ctx.node_id).await {
            tracing::warn!(error = %err, "leaving the membership failed; it expires by itself");
        }
        let handles: Vec<_> = {
            let mut table = self
                .table
                .write()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            table.drain().map(|(_, h)| h).collect()
        };
        let count = handles.len();
        let mut hand_offs = tokio::task::JoinSet::new();
        for handle in handles {
            let ctx = self.ctx.clone();
            hand_offs.spawn(async move { hand_off_handle(&ctx, handle).await });
        }
        while hand_offs.join_next().await.is_some() {}
        tracing::info!(shards = count, "profile node stopped; shards handed off");
    }
}
