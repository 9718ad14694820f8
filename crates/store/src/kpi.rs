//! The KPI service's storage, by measurement partition (a fixed set of shards: shard `s` is in
//! partition `s % partitions`): the offsets up to which each shard's log is aggregated, the
//! per-customer measurement state, additive aggregates per tenant and time bucket, and
//! experiment bookkeeping. A batch of a partition's logs commits all of these together, only if
//! every shard's offset is still the one the batch started from, so every log entry is counted
//! exactly once across restarts, crashes and competing replicas. Partitions keep reads cheap:
//! a query sums one hash per partition and bucket, not one per shard.

use std::{collections::HashMap, time::Duration};

use crate::StoreError;

/// Width of an aggregate bucket. Every increment lands in one bucket of each width (the
/// roll-ups), each kept for its own retention.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Granularity {
    /// One minute.
    Minute,
    /// One hour.
    Hour,
    /// One day (UTC).
    Day,
}

impl Granularity {
    /// Every granularity, finest first.
    pub const ALL: [Self; 3] = [Self::Minute, Self::Hour, Self::Day];

    /// The bucket width in seconds.
    pub fn seconds(self) -> i64 {
        match self {
            Self::Minute => 60,
            Self::Hour => 3_600,
            Self::Day => 86_400,
        }
    }

    /// The start (Unix seconds) of the bucket holding `at_secs`.
    pub fn bucket_of(self, at_secs: i64) -> i64 {
        at_secs.div_euclid(self.seconds()) * self.seconds()
    }

    /// Short tag used in key names.
    pub fn tag(self) -> &'static str {
        match self {
            Self::Minute => "m",
            Self::Hour => "h",
            Self::Day => "d",
        }
    }
}

/// An addition to one field of one aggregate bucket.
#[derive(Debug, Clone, PartialEq)]
pub struct KpiIncrement {
    /// The tenant.
    pub tenant_id: String,
    /// The bucket's width.
    pub granularity: Granularity,
    /// The bucket's start, Unix seconds (a multiple of the width).
    pub bucket: i64,
    /// The field: its family (a statistic), then `|` and the rest (its dimension values).
    pub field: String,
    /// What to add (may be negative).
    pub delta: f64,
    /// When the bucket expires, Unix milliseconds.
    pub expires_at_ms: i64,
}

/// How a bookkeeping value combines with the stored one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MarkOp {
    /// Keep the smaller.
    Min,
    /// Keep the larger.
    Max,
    /// Replace.
    Set,
}

/// A bookkeeping value of a tenant (e.g. an experiment's first assignment time).
#[derive(Debug, Clone, PartialEq)]
pub struct KpiMark {
    /// The tenant.
    pub tenant_id: String,
    /// The field.
    pub field: String,
    /// How it combines with the stored value.
    pub op: MarkOp,
    /// The value.
    pub value: f64,
}

/// The new measurement state of one customer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CustomerWrite {
    /// The tenant.
    pub tenant_id: String,
    /// The customer key (customer id, or the anonymous id when there is none).
    pub key: String,
    /// The encoded state; `None` deletes it.
    pub state: Option<Vec<u8>>,
}

/// How far one shard's log moves in a commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OffsetMove {
    /// The shard.
    pub shard: u32,
    /// The offset the batch started after, as read with [`KpiStore::kpi_offsets`] (`None`: the
    /// shard was never committed).
    pub expected: Option<String>,
    /// The offset of the batch's last entry of this shard.
    pub offset: String,
}

/// A field's family (its text up to the first `|`) and the rest.
pub fn split_family(field: &str) -> (&str, &str) {
    field.split_once('|').unwrap_or((field, ""))
}

/// The field of `rest` in `family` (the inverse of [`split_family`]).
pub fn join_family(family: &str, rest: &str) -> String {
    if rest.is_empty() {
        family.to_owned()
    } else {
        format!("{family}|{rest}")
    }
}

/// Everything one batch of a partition's logs changes, committed together.
#[derive(Debug, Clone, Default)]
pub struct KpiCommit {
    /// The partition.
    pub partition: u32,
    /// The shards (all in the partition) whose logs the batch covers.
    pub offsets: Vec<OffsetMove>,
    /// Aggregate additions.
    pub increments: Vec<KpiIncrement>,
    /// Customer states.
    pub customers: Vec<CustomerWrite>,
    /// How long a customer state is kept after its last write.
    pub customer_ttl: Duration,
    /// Bookkeeping values.
    pub marks: Vec<KpiMark>,
    /// Tenants with data in the batch.
    pub tenants: Vec<String>,
}

/// The KPI service's storage.
#[async_trait::async_trait]
pub trait KpiStore: Send + Sync + 'static {
    /// The offsets up to which the given shards of `partition` are aggregated, in order
    /// (`None`: nothing yet).
    async fn kpi_offsets(
        &self,
        partition: u32,
        shards: &[u32],
    ) -> Result<Vec<Option<String>>, StoreError>;

    /// The stored states of the given `(tenant, customer key)` pairs of `partition`, in order.
    async fn kpi_customers(
        &self,
        partition: u32,
        keys: &[(String, String)],
    ) -> Result<Vec<Option<Vec<u8>>>, StoreError>;

    /// Applies the batch if every listed shard's offset is still its `expected`, in one atomic
    /// step; returns false (and changes nothing) otherwise.
    async fn kpi_commit(&self, commit: &KpiCommit) -> Result<bool, StoreError>;

    /// The aggregates of `tenant_id` in the buckets starting at `buckets`, each summed over
    /// partitions `0..partitions`: one field → value map per bucket, in order. Only the fields
    /// of the given `families` are read (a field's family is its text up to the first `|`;
    /// each family of a bucket is stored apart, so a query reads only what it needs).
    async fn kpi_buckets(
        &self,
        partitions: u32,
        tenant_id: &str,
        granularity: Granularity,
        buckets: &[i64],
        families: &[&str],
    ) -> Result<Vec<HashMap<String, f64>>, StoreError>;

    /// The bookkeeping values of `tenant_id`, one map per partition `0..partitions` (each
    /// combines with its [`MarkOp`], which the caller knows from the field).
    async fn kpi_marks(
        &self,
        partitions: u32,
        tenant_id: &str,
    ) -> Result<Vec<HashMap<String, f64>>, StoreError>;

    /// Every tenant with aggregates in partitions `0..partitions`, sorted.
    async fn kpi_tenants(&self, partitions: u32) -> Result<Vec<String>, StoreError>;
}
