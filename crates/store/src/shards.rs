//! What the profile service keeps per shard: node membership, shard leases with epochs (the
//! fencing tokens), and the fenced state of a shard (profiles, checkpoint, durable timers,
//! signals, erasure tombstones).
//!
//! Every write of shard state goes through [`ShardState::write`], which is refused unless the
//! writer's epoch is the shard's current epoch and its lease is live: a node that lost its lease
//! (paused, partitioned, slow) can never overwrite the state of the node that took the shard
//! over. Safety comes from that check, not from timing.

use std::time::Duration;

use crate::{LogEntry, StoreError};

/// The consumer name under which [`ShardWrite::checkpoint`] is recorded as an acknowledgement
/// of the shard's log (pass it to [`LogConsumer::trim`] with the other consumers).
pub const PROFILE_CONSUMER: &str = "profile";

/// One live profile node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// Stable node id (e.g. the pod name).
    pub node_id: String,
    /// Its gRPC address, `host:port`.
    pub address: String,
}

/// Profile node membership through heartbeats.
#[async_trait::async_trait]
pub trait Membership: Send + Sync + 'static {
    /// Registers or refreshes `node_id`; it counts as live for `ttl` after this call.
    async fn heartbeat(
        &self,
        node_id: &str,
        address: &str,
        ttl: Duration,
    ) -> Result<(), StoreError>;
    /// Removes `node_id` at once (graceful shutdown).
    async fn leave(&self, node_id: &str) -> Result<(), StoreError>;
    /// The live members, sorted by node id.
    async fn members(&self) -> Result<Vec<Member>, StoreError>;
}

/// A lease on one shard, as held by a node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Lease {
    /// The shard.
    pub shard: u32,
    /// The epoch the lease was acquired with.
    pub epoch: u64,
}

/// The result of trying to acquire a shard's lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Acquire {
    /// The caller holds the lease now, with this epoch (a new epoch, one higher than any before).
    Acquired(Lease),
    /// Another node holds a live lease.
    Held(ShardOwner),
}

/// Who serves a shard, as recorded in the shard map.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardOwner {
    /// The shard.
    pub shard: u32,
    /// The owning node.
    pub node_id: String,
    /// Its gRPC address.
    pub address: String,
    /// The epoch of its lease.
    pub epoch: u64,
}

/// Shard leases and the shard map.
#[async_trait::async_trait]
pub trait ShardLeases: Send + Sync + 'static {
    /// Acquires `shard` for `node_id` unless another node holds a live lease. Every acquisition
    /// increments the shard's epoch (also when `node_id` held an earlier, expired or released
    /// lease). The lease lives for `ttl` unless renewed.
    async fn acquire(
        &self,
        shard: u32,
        node_id: &str,
        address: &str,
        ttl: Duration,
    ) -> Result<Acquire, StoreError>;
    /// Extends each lease by `ttl` if `node_id` still holds it at that epoch; one answer per
    /// lease, in order: `false` means it is lost and must not be served any more.
    async fn renew(
        &self,
        leases: &[Lease],
        node_id: &str,
        ttl: Duration,
    ) -> Result<Vec<bool>, StoreError>;
    /// Gives the lease up at once if `node_id` still holds it at that epoch (graceful
    /// hand-off). The epoch is kept, so the next owner gets a higher one.
    async fn release(&self, lease: Lease, node_id: &str) -> Result<(), StoreError>;
    /// The live owner of each shard (`None`: no live lease), in order.
    async fn owners(&self, shards: &[u32]) -> Result<Vec<Option<ShardOwner>>, StoreError>;
}

/// Identifies one profile within its shard: the tenant and the customer key
/// (`iee_api::shard::customer_key`: the customer id, or `anon:` + anonymous id).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ProfileKey {
    /// The tenant.
    pub tenant_id: String,
    /// The customer key.
    pub key: String,
}

/// One durable timer: fires `member` at `due_ms` (Unix milliseconds). Members are opaque
/// strings chosen by the profile service and unique within the shard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Timer {
    /// The timer's identity within the shard.
    pub member: String,
    /// When it is due, Unix milliseconds.
    pub due_ms: i64,
}

/// Everything one flush of a shard writes, atomically and only if the epoch is current.
#[derive(Debug, Clone, Default)]
pub struct ShardWrite {
    /// The shard.
    pub shard: u32,
    /// The writer's epoch (its fencing token).
    pub epoch: u64,
    /// The writer.
    pub node_id: String,
    /// Profiles to store (`Some`: encoded profile) or delete (`None`).
    pub profiles: Vec<(ProfileKey, Option<Vec<u8>>)>,
    /// New log checkpoint of the profile consumer, if it advanced. Also recorded as that
    /// consumer's acknowledgement for log trimming.
    pub checkpoint: Option<String>,
    /// Timers to set (an existing member is rescheduled).
    pub timers_set: Vec<Timer>,
    /// Timer members to remove.
    pub timers_clear: Vec<String>,
    /// Encoded signals to append to the shard's signal history, in order.
    pub signals: Vec<Vec<u8>>,
    /// How long the signal history keeps entries, at least: entries older than this are
    /// removed when signals are appended (Redis trims whole stream nodes, so a few older
    /// entries may stay a little longer).
    pub signal_retention: Duration,
    /// Erasure tombstones to record: profile and erasure time (Unix milliseconds).
    pub erasures: Vec<(ProfileKey, i64)>,
}

/// The result of a fenced write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteOutcome {
    /// Everything was written; the cursor of each appended signal, in order.
    Written {
        /// Positions of the appended signals in the signal history.
        signal_cursors: Vec<String>,
    },
    /// Nothing was written: the epoch is not current (or the lease is gone). The shard must not
    /// be served any more by the writer.
    Fenced {
        /// The shard's current epoch.
        current_epoch: u64,
    },
}

/// The fenced per-shard state of the profile service.
#[async_trait::async_trait]
pub trait ShardState: Send + Sync + 'static {
    /// Writes `write` atomically if `write.epoch` is the shard's current epoch and
    /// `write.node_id` holds its live lease; otherwise writes nothing.
    ///
    /// A lease that expired is not live, even when nobody took the shard over since: the write
    /// is refused ([`WriteOutcome::Fenced`] with the unchanged epoch) and the writer must
    /// acquire the shard again (a new epoch) before it writes. A write with nothing in it is a
    /// cheap check that the lease is still held.
    async fn write(&self, write: &ShardWrite) -> Result<WriteOutcome, StoreError>;
    /// Loads profiles of one shard; one answer per key, in order.
    async fn load(
        &self,
        shard: u32,
        keys: &[ProfileKey],
    ) -> Result<Vec<Option<Vec<u8>>>, StoreError>;
    /// The profile consumer's checkpoint of the shard's log.
    async fn checkpoint(&self, shard: u32) -> Result<Option<String>, StoreError>;
    /// Up to `limit` timers of the shard due at or before `now_ms`, earliest first.
    async fn due_timers(
        &self,
        shard: u32,
        now_ms: i64,
        limit: usize,
    ) -> Result<Vec<Timer>, StoreError>;
    /// When the profile was erased, Unix milliseconds, if it was.
    async fn erased_at(&self, shard: u32, key: &ProfileKey) -> Result<Option<i64>, StoreError>;
    /// Up to `limit` entries of the shard's signal history after cursor `after` (from the
    /// oldest retained when `None`).
    async fn read_signals(
        &self,
        shard: u32,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<LogEntry>, StoreError>;
    /// The oldest cursor the shard's signal history still holds (`None`: it is empty).
    async fn oldest_signal(&self, shard: u32) -> Result<Option<String>, StoreError>;
}

/// Reading several shard logs at once and trimming them behind their consumers.
#[async_trait::async_trait]
pub trait LogConsumer: Send + Sync + 'static {
    /// Reads up to `limit` entries of each listed shard after its offset (from the start when
    /// `None`). If none has entries, waits up to `block` for one to arrive. Returns only shards
    /// with entries.
    async fn read_many(
        &self,
        from: &[(u32, Option<String>)],
        limit: usize,
        block: Duration,
    ) -> Result<Vec<(u32, Vec<LogEntry>)>, StoreError>;
    /// Records that `consumer` has processed `shard`'s log up to and including `offset`.
    async fn acknowledge(&self, shard: u32, consumer: &str, offset: &str)
    -> Result<(), StoreError>;
    /// Reads up to `limit` new entries of each listed shard for `consumer`, a member of the
    /// consumer group `group`: each entry goes to one member of the group, so replicas split
    /// the work. A group starts at the end of a log the first time it reads it (it sees what
    /// comes next, not the history). Waits up to `block` when nothing is new. Returns only
    /// shards with entries. Delivery is at most once per group: an entry delivered to a member
    /// that dies before processing it is not delivered again.
    async fn read_group(
        &self,
        group: &str,
        consumer: &str,
        shards: &[u32],
        limit: usize,
        block: Duration,
    ) -> Result<Vec<(u32, Vec<LogEntry>)>, StoreError>;

    /// Removes the entries of `shard`'s log that every one of `consumers` has acknowledged
    /// (none if any of them has acknowledged nothing yet, or if `consumers` is empty). The
    /// entry at the smallest acknowledged offset itself may stay. Returns how many were removed.
    async fn trim(&self, shard: u32, consumers: &[&str]) -> Result<u64, StoreError>;
}
