//! The KPI service's storage in process memory, with the Redis semantics: a batch applies
//! atomically and only at the expected offset; buckets and customer states expire.

use std::{
    collections::{BTreeSet, HashMap},
    sync::Mutex,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use super::{MemoryStore, lock};
use crate::{Granularity, KpiCommit, KpiStore, MarkOp, StoreError, kpi::split_family};

/// Expired entries are swept every this many commits.
const SWEEP_EVERY: u64 = 1024;

/// Everything the KPI service stores, under one lock.
#[derive(Default)]
pub(super) struct KpiTables(Mutex<Tables>);

/// A bucket's fields and its expiry (Unix ms).
type Bucket = (HashMap<String, f64>, i64);

#[derive(Default)]
struct Tables {
    /// `(partition, shard)` → offset.
    offsets: HashMap<(u32, u32), String>,
    /// `(partition, tenant, key)` → (state, expiry in Unix ms).
    customers: HashMap<(u32, String, String), (Vec<u8>, i64)>,
    /// `(partition, tenant, granularity, bucket)` → (fields, expiry in Unix ms).
    buckets: HashMap<(u32, String, Granularity, i64), Bucket>,
    /// `(partition, tenant)` → fields.
    marks: HashMap<(u32, String), HashMap<String, f64>>,
    tenants: HashMap<u32, BTreeSet<String>>,
    commits: u64,
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

impl Tables {
    fn sweep(&mut self, now: i64) {
        self.customers.retain(|_, (_, expires)| *expires > now);
        self.buckets.retain(|_, (_, expires)| *expires > now);
    }
}

#[async_trait::async_trait]
impl KpiStore for MemoryStore {
    async fn kpi_offsets(
        &self,
        partition: u32,
        shards: &[u32],
    ) -> Result<Vec<Option<String>>, StoreError> {
        let tables = lock(&self.kpi.0);
        Ok(shards
            .iter()
            .map(|&shard| tables.offsets.get(&(partition, shard)).cloned())
            .collect())
    }

    async fn kpi_customers(
        &self,
        partition: u32,
        keys: &[(String, String)],
    ) -> Result<Vec<Option<Vec<u8>>>, StoreError> {
        let now = now_ms();
        let tables = lock(&self.kpi.0);
        Ok(keys
            .iter()
            .map(|(tenant, key)| {
                tables
                    .customers
                    .get(&(partition, tenant.clone(), key.clone()))
                    .filter(|(_, expires)| *expires > now)
                    .map(|(state, _)| state.clone())
            })
            .collect())
    }

    async fn kpi_commit(&self, commit: &KpiCommit) -> Result<bool, StoreError> {
        let now = now_ms();
        let mut tables = lock(&self.kpi.0);
        let at_expected = commit.offsets.iter().all(|moved| {
            tables.offsets.get(&(commit.partition, moved.shard)) == moved.expected.as_ref()
        });
        if !at_expected {
            return Ok(false);
        }
        for inc in &commit.increments {
            if !inc.delta.is_finite() || inc.delta == 0.0 {
                continue;
            }
            let key = (
                commit.partition,
                inc.tenant_id.clone(),
                inc.granularity,
                inc.bucket,
            );
            let entry = tables
                .buckets
                .entry(key)
                .or_insert_with(|| (HashMap::new(), inc.expires_at_ms));
            if entry.1 <= now {
                // Expired but not swept yet: it starts afresh, as on Redis.
                *entry = (HashMap::new(), inc.expires_at_ms);
            }
            entry.1 = entry.1.max(inc.expires_at_ms);
            *entry.0.entry(inc.field.clone()).or_insert(0.0) += inc.delta;
        }
        let customer_expiry = now.saturating_add(ms(commit.customer_ttl).max(1));
        for write in &commit.customers {
            let key = (commit.partition, write.tenant_id.clone(), write.key.clone());
            match &write.state {
                Some(state) => {
                    tables
                        .customers
                        .insert(key, (state.clone(), customer_expiry));
                }
                None => {
                    tables.customers.remove(&key);
                }
            }
        }
        for mark in &commit.marks {
            if !mark.value.is_finite() {
                continue;
            }
            let fields = tables
                .marks
                .entry((commit.partition, mark.tenant_id.clone()))
                .or_default();
            let current = fields.get(&mark.field).copied();
            let keep = match (mark.op, current) {
                (MarkOp::Min, Some(c)) => mark.value < c,
                (MarkOp::Max, Some(c)) => mark.value > c,
                _ => true,
            };
            if keep {
                fields.insert(mark.field.clone(), mark.value);
            }
        }
        for tenant in &commit.tenants {
            tables
                .tenants
                .entry(commit.partition)
                .or_default()
                .insert(tenant.clone());
        }
        for moved in &commit.offsets {
            tables
                .offsets
                .insert((commit.partition, moved.shard), moved.offset.clone());
        }
        tables.commits += 1;
        if tables.commits.is_multiple_of(SWEEP_EVERY) {
            tables.sweep(now);
        }
        Ok(true)
    }

    async fn kpi_buckets(
        &self,
        partitions: u32,
        tenant_id: &str,
        granularity: Granularity,
        buckets: &[i64],
        families: &[&str],
    ) -> Result<Vec<HashMap<String, f64>>, StoreError> {
        let now = now_ms();
        let tables = lock(&self.kpi.0);
        Ok(buckets
            .iter()
            .map(|&bucket| {
                let mut sums: HashMap<String, f64> = HashMap::new();
                for partition in 0..partitions {
                    let key = (partition, tenant_id.to_owned(), granularity, bucket);
                    if let Some((fields, expires)) = tables.buckets.get(&key)
                        && *expires > now
                    {
                        for (field, value) in fields {
                            if families.contains(&split_family(field).0) {
                                *sums.entry(field.clone()).or_insert(0.0) += value;
                            }
                        }
                    }
                }
                sums
            })
            .collect())
    }

    async fn kpi_marks(
        &self,
        partitions: u32,
        tenant_id: &str,
    ) -> Result<Vec<HashMap<String, f64>>, StoreError> {
        let tables = lock(&self.kpi.0);
        Ok((0..partitions)
            .map(|partition| {
                tables
                    .marks
                    .get(&(partition, tenant_id.to_owned()))
                    .cloned()
                    .unwrap_or_default()
            })
            .collect())
    }

    async fn kpi_tenants(&self, partitions: u32) -> Result<Vec<String>, StoreError> {
        let tables = lock(&self.kpi.0);
        let all: BTreeSet<String> = (0..partitions)
            .filter_map(|partition| tables.tenants.get(&partition))
            .flatten()
            .cloned()
            .collect();
        Ok(all.into_iter().collect())
    }
}
