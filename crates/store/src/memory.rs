//! The in-memory backend: the same semantics as Redis, nothing survives the process.
//!
//! The log is trimmed only through [`crate::LogConsumer::trim`], never past the slowest of the
//! named consumers. The profile service's shard storage lives in [`shards`].

mod decisions;
mod kpi;
mod models;
mod propensity;
mod shards;

use std::{
    collections::{BTreeMap, HashMap, VecDeque},
    sync::{Mutex, MutexGuard, PoisonError},
    time::{Duration, Instant},
};

use crate::{
    AppendOutcome, AppendRequest, DeadLetterEntry, DeadLetterPage, DeadLetters, EventLog,
    IdentityLinks, LinkOutcome, LogEntry, StoreError,
};

#[derive(Default)]
struct ShardLog {
    entries: Vec<(u64, Vec<u8>)>,
    next_seq: u64,
    dedup: HashMap<(String, String), (String, Instant)>,
    sweep_at: usize,
    /// Consumer → the sequence number it acknowledged.
    acks: HashMap<String, u64>,
    /// Consumer group → the last sequence number delivered to it.
    groups: HashMap<String, u64>,
}

impl ShardLog {
    fn append(&mut self, entry: &AppendRequest, window: Duration, now: Instant) -> AppendOutcome {
        let key = (entry.tenant_id.clone(), entry.event_id.clone());
        if let Some((offset, expires)) = self.dedup.get(&key)
            && *expires > now
        {
            return AppendOutcome::Duplicate(offset.clone());
        }
        self.next_seq += 1;
        let offset = format_offset(self.next_seq);
        self.entries.push((self.next_seq, entry.payload.clone()));
        self.dedup.insert(key, (offset.clone(), now + window));
        if self.dedup.len() > self.sweep_at {
            self.dedup.retain(|_, (_, expires)| *expires > now);
            self.sweep_at = (self.dedup.len() * 2).max(1024);
        }
        AppendOutcome::Appended(offset)
    }
}

fn format_offset(seq: u64) -> String {
    // Same shape as a Redis stream id, so tools and tests treat both alike.
    format!("0-{seq}")
}

fn parse_offset(offset: &str) -> Result<u64, StoreError> {
    offset
        .strip_prefix("0-")
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| StoreError::Backend(format!("malformed offset {offset:?}")))
}

/// A tenant's dead letters: the last id given out and the retained `(id, payload)` entries.
type TenantLetters = (u64, VecDeque<(u64, Vec<u8>)>);

/// Everything in process memory, with one lock per shard.
pub struct MemoryStore {
    shards: Vec<Mutex<ShardLog>>,
    dead_letters: Mutex<HashMap<String, TenantLetters>>,
    links: Mutex<BTreeMap<(String, String), String>>,
    /// The profile service's state of each shard (lock order: state, then log).
    state: Vec<Mutex<shards::ShardData>>,
    members: Mutex<shards::Members>,
    models: Mutex<models::Registries>,
    propensity: Mutex<propensity::Tables>,
    /// Woken on every append, for blocking log reads.
    appended: tokio::sync::Notify,
    /// The decision service's configurations, decision log and outbound streams.
    decide: decisions::DecisionTables,
    /// The KPI service's offsets, measurement state and aggregates.
    kpi: kpi::KpiTables,
}

impl std::fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryStore")
            .field("shards", &self.shards.len())
            .finish()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding a lock leaves consistent data here (single assignments).
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl MemoryStore {
    /// An empty store for `shard_count` shards.
    pub fn new(shard_count: u32) -> Self {
        Self {
            shards: (0..shard_count).map(|_| Mutex::default()).collect(),
            dead_letters: Mutex::default(),
            links: Mutex::default(),
            state: (0..shard_count).map(|_| Mutex::default()).collect(),
            members: Mutex::default(),
            models: Mutex::default(),
            propensity: Mutex::default(),
            appended: tokio::sync::Notify::new(),
            decide: decisions::DecisionTables::default(),
            kpi: kpi::KpiTables::default(),
        }
    }

    fn shard(&self, shard: u32) -> Result<&Mutex<ShardLog>, StoreError> {
        self.shards
            .get(shard as usize)
            .ok_or_else(|| StoreError::Backend(format!("shard {shard} out of range")))
    }
}

#[async_trait::async_trait]
impl EventLog for MemoryStore {
    async fn append(
        &self,
        entries: &[AppendRequest],
        dedup_window: Duration,
    ) -> Result<Vec<AppendOutcome>, StoreError> {
        let now = Instant::now();
        let outcomes = entries
            .iter()
            .map(|entry| Ok(lock(self.shard(entry.shard)?).append(entry, dedup_window, now)))
            .collect();
        if !entries.is_empty() {
            // Spurious wake-ups (a duplicate, a failed entry) only cost blocked readers a look.
            self.appended.notify_waiters();
        }
        outcomes
    }

    async fn read(
        &self,
        shard: u32,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<LogEntry>, StoreError> {
        let after = after.map(parse_offset).transpose()?.unwrap_or(0);
        let log = lock(self.shard(shard)?);
        let start = log.entries.partition_point(|(seq, _)| *seq <= after);
        Ok(log.entries[start..]
            .iter()
            .take(limit)
            .map(|(seq, payload)| LogEntry {
                offset: format_offset(*seq),
                payload: payload.clone(),
            })
            .collect())
    }

    async fn forget(
        &self,
        shard: u32,
        tenant_id: &str,
        event_ids: &[String],
    ) -> Result<(), StoreError> {
        let mut log = lock(self.shard(shard)?);
        for id in event_ids {
            log.dedup.remove(&(tenant_id.to_owned(), id.clone()));
        }
        Ok(())
    }

    async fn len(&self, shard: u32) -> Result<u64, StoreError> {
        Ok(lock(self.shard(shard)?).entries.len() as u64)
    }

    async fn ping(&self) -> Result<(), StoreError> {
        Ok(())
    }
}

#[async_trait::async_trait]
impl DeadLetters for MemoryStore {
    async fn put(&self, entries: &[(String, Vec<u8>)], retention: u64) -> Result<(), StoreError> {
        let mut all = lock(&self.dead_letters);
        for (tenant, payload) in entries {
            let (next, queue) = all.entry(tenant.clone()).or_default();
            *next += 1;
            queue.push_back((*next, payload.clone()));
            while queue.len() as u64 > retention {
                queue.pop_front();
            }
        }
        Ok(())
    }

    async fn list(
        &self,
        tenant_id: &str,
        before: Option<&str>,
        limit: usize,
    ) -> Result<DeadLetterPage, StoreError> {
        let before = before.map(parse_offset).transpose()?.unwrap_or(u64::MAX);
        let all = lock(&self.dead_letters);
        let Some((_, queue)) = all.get(tenant_id) else {
            return Ok(DeadLetterPage::default());
        };
        let mut older = queue.iter().rev().filter(|(id, _)| *id < before);
        let entries: Vec<DeadLetterEntry> = older
            .by_ref()
            .take(limit)
            .map(|(id, payload)| DeadLetterEntry {
                id: format_offset(*id),
                payload: payload.clone(),
            })
            .collect();
        let next = match (older.next(), entries.last()) {
            (Some(_), Some(last)) => Some(last.id.clone()),
            _ => None,
        };
        Ok(DeadLetterPage { entries, next })
    }
}

#[async_trait::async_trait]
impl IdentityLinks for MemoryStore {
    async fn link(
        &self,
        tenant_id: &str,
        anonymous_id: &str,
        customer_id: &str,
    ) -> Result<LinkOutcome, StoreError> {
        let mut links = lock(&self.links);
        let key = (tenant_id.to_owned(), anonymous_id.to_owned());
        Ok(match links.get(&key) {
            None => {
                links.insert(key, customer_id.to_owned());
                LinkOutcome::Created
            }
            Some(existing) if existing == customer_id => LinkOutcome::Existing,
            Some(existing) => LinkOutcome::Conflict {
                customer_id: existing.clone(),
            },
        })
    }

    async fn resolve(
        &self,
        tenant_id: &str,
        anonymous_id: &str,
    ) -> Result<Option<String>, StoreError> {
        Ok(lock(&self.links)
            .get(&(tenant_id.to_owned(), anonymous_id.to_owned()))
            .cloned())
    }

    async fn unlink(&self, tenant_id: &str, anonymous_id: &str) -> Result<(), StoreError> {
        lock(&self.links).remove(&(tenant_id.to_owned(), anonymous_id.to_owned()));
        Ok(())
    }
}
