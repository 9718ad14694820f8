//! What every shard and customer actor of a node shares.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering},
    },
    time::Instant,
};

use iee_api::pb::profile::Signal;
use iee_store::Stores;
use tokio::sync::broadcast;

use crate::{ProfileConfig, fold::Folder, metrics::ProfileMetrics};

/// What the node's signal watchers receive.
#[derive(Debug, Clone)]
pub(crate) enum SignalFeed {
    /// A signal, written to its shard's history (its cursor is set).
    Signal(Arc<Signal>),
    /// The node stopped serving a shard; watchers of it must reconnect to the new owner.
    ShardLost(u32),
}

/// Node-wide context.
pub(crate) struct NodeCtx {
    pub(crate) config: ProfileConfig,
    pub(crate) node_id: String,
    pub(crate) folder: Folder,
    pub(crate) stores: Stores,
    pub(crate) shard_count: u32,
    pub(crate) dedup_window_secs: u64,
    pub(crate) metrics: ProfileMetrics,
    pub(crate) signals: broadcast::Sender<SignalFeed>,
    /// Customer actors resident on this node, over all shards.
    pub(crate) resident: AtomicUsize,
    /// The instant the node started; lease deadlines are kept as milliseconds since it.
    pub(crate) epoch_instant: Instant,
}

impl NodeCtx {
    /// Milliseconds since the node started (monotonic).
    pub(crate) fn mono_ms(&self) -> u64 {
        u64::try_from(self.epoch_instant.elapsed().as_millis()).unwrap_or(u64::MAX)
    }
}

/// Per-shard context, fixed for the lifetime of one lease.
pub(crate) struct ShardCtx {
    pub(crate) node: Arc<NodeCtx>,
    pub(crate) shard: u32,
    pub(crate) epoch: u64,
    /// The local serving deadline (`NodeCtx::mono_ms` scale): the lease may have expired on the
    /// Redis side after it, so nothing is served or written past it.
    pub(crate) deadline_ms: AtomicU64,
    /// Cleared once the shard is lost or stopped.
    pub(crate) live: AtomicBool,
}

impl ShardCtx {
    /// Whether the shard may still be served: live and within the lease deadline.
    pub(crate) fn serving(&self) -> bool {
        self.live.load(Ordering::Acquire)
            && self.node.mono_ms() < self.deadline_ms.load(Ordering::Acquire)
    }
}
