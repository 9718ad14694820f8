//! The decision service's storage in process memory, with the Redis semantics: immutable
//! configuration versions, compare-and-set activation, expiring decision records with an
//! idempotent request index, and outbound streams published once per key.

use std::{
    collections::{HashMap, VecDeque},
    sync::Mutex,
    time::{Duration, Instant},
};

use super::{MemoryStore, format_offset, lock, parse_offset};
use crate::{
    ActiveConfig, ConfigActivation, DecisionConfigs, DecisionLog, Outbound, OutboundEntry,
    Published, Recorded, StoreError, StoredConfig,
};

/// Expired entries are swept once a map has grown past this many since the last sweep.
const SWEEP_MIN: usize = 1024;

/// Everything the decision service stores, one lock per concern.
#[derive(Default)]
pub(super) struct DecisionTables {
    configs: Mutex<HashMap<String, TenantConfigs>>,
    log: Mutex<Log>,
    outbound: Mutex<HashMap<String, Stream>>,
    /// Watcher → shard → cursor.
    cursors: Mutex<HashMap<String, HashMap<u32, String>>>,
    /// Woken on every publish, for blocking outbound reads.
    published: tokio::sync::Notify,
}

/// One tenant's configuration versions and the active one.
#[derive(Default)]
struct TenantConfigs {
    versions: HashMap<String, StoredConfig>,
    active: Option<ActiveConfig>,
}

/// Decision records and the request index, each entry with its expiry.
#[derive(Default)]
struct Log {
    /// `(tenant, decision id)` → (record, expiry).
    records: HashMap<(String, String), (Vec<u8>, Instant)>,
    /// `(tenant, request id)` → (decision id, expiry).
    requests: HashMap<(String, String), (String, Instant)>,
    sweep_at: usize,
}

impl Log {
    fn record(&self, tenant_id: &str, decision_id: &str, now: Instant) -> Option<&Vec<u8>> {
        self.records
            .get(&(tenant_id.to_owned(), decision_id.to_owned()))
            .filter(|(_, expires)| *expires > now)
            .map(|(record, _)| record)
    }

    fn decision_for(&self, tenant_id: &str, request_id: &str, now: Instant) -> Option<&Vec<u8>> {
        let (decision_id, _) = self
            .requests
            .get(&(tenant_id.to_owned(), request_id.to_owned()))
            .filter(|(_, expires)| *expires > now)?;
        self.record(tenant_id, decision_id, now)
    }

    fn sweep(&mut self, now: Instant) {
        if self.records.len() + self.requests.len() > self.sweep_at {
            self.records.retain(|_, (_, expires)| *expires > now);
            self.requests.retain(|_, (_, expires)| *expires > now);
            self.sweep_at = ((self.records.len() + self.requests.len()) * 2).max(SWEEP_MIN);
        }
    }
}

/// One tenant's outbound stream.
#[derive(Default)]
struct Stream {
    /// The last sequence number given out.
    last_seq: u64,
    /// Retained `(seq, payload)` entries, oldest first.
    entries: VecDeque<(u64, Vec<u8>)>,
    /// Key → (cursor of its entry, expiry).
    dedup: HashMap<String, (String, Instant)>,
    sweep_at: usize,
}

impl Stream {
    fn publish(
        &mut self,
        key: &str,
        payload: &[u8],
        dedup_for: Duration,
        max_len: usize,
        now: Instant,
    ) -> Published {
        if let Some((cursor, expires)) = self.dedup.get(key)
            && *expires > now
        {
            return Published::Already(cursor.clone());
        }
        self.last_seq += 1;
        let cursor = format_offset(self.last_seq);
        self.entries.push_back((self.last_seq, payload.to_vec()));
        while self.entries.len() > max_len {
            self.entries.pop_front();
        }
        self.dedup
            .insert(key.to_owned(), (cursor.clone(), now + dedup_for));
        if self.dedup.len() > self.sweep_at {
            self.dedup.retain(|_, (_, expires)| *expires > now);
            self.sweep_at = (self.dedup.len() * 2).max(SWEEP_MIN);
        }
        Published::New(cursor)
    }

    fn after(&self, after: u64, count: usize) -> Vec<OutboundEntry> {
        let start = self.entries.partition_point(|(seq, _)| *seq <= after);
        self.entries
            .range(start..)
            .take(count)
            .map(|(seq, payload)| OutboundEntry {
                cursor: format_offset(*seq),
                payload: payload.clone(),
            })
            .collect()
    }
}

fn not_stored(tenant_id: &str, version: &str) -> StoreError {
    StoreError::Conflict(format!(
        "decision configuration {version} of tenant {tenant_id} is not stored"
    ))
}

#[async_trait::async_trait]
impl DecisionConfigs for MemoryStore {
    async fn put_config(
        &self,
        tenant_id: &str,
        version: &str,
        yaml: &str,
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        let mut configs = lock(&self.decide.configs);
        let tenant = configs.entry(tenant_id.to_owned()).or_default();
        if let Some(stored) = tenant.versions.get(version) {
            return if stored.yaml == yaml {
                Ok(false)
            } else {
                Err(StoreError::Conflict(format!(
                    "decision configuration {version} of tenant {tenant_id} is already stored \
                     with a different text"
                )))
            };
        }
        tenant.versions.insert(
            version.to_owned(),
            StoredConfig {
                yaml: yaml.to_owned(),
                created_at_ms: now_ms,
            },
        );
        Ok(true)
    }

    async fn get_config(
        &self,
        tenant_id: &str,
        version: &str,
    ) -> Result<Option<StoredConfig>, StoreError> {
        Ok(lock(&self.decide.configs)
            .get(tenant_id)
            .and_then(|tenant| tenant.versions.get(version))
            .cloned())
    }

    async fn active_configs(
        &self,
        tenant_ids: &[String],
    ) -> Result<Vec<Option<ActiveConfig>>, StoreError> {
        let configs = lock(&self.decide.configs);
        Ok(tenant_ids
            .iter()
            .map(|id| configs.get(id).and_then(|tenant| tenant.active.clone()))
            .collect())
    }

    async fn activate_config(
        &self,
        tenant_id: &str,
        expected: Option<&str>,
        version: &str,
        now_ms: i64,
    ) -> Result<ConfigActivation, StoreError> {
        let mut configs = lock(&self.decide.configs);
        let Some(tenant) = configs
            .get_mut(tenant_id)
            .filter(|tenant| tenant.versions.contains_key(version))
        else {
            return Err(not_stored(tenant_id, version));
        };
        let current = tenant.active.as_ref().map(|active| active.version.clone());
        if current.as_deref() == Some(version) {
            return Ok(ConfigActivation::Done { previous: current });
        }
        if current.as_deref() != expected {
            return Ok(ConfigActivation::Conflict { current });
        }
        tenant.active = Some(ActiveConfig {
            version: version.to_owned(),
            activated_at_ms: now_ms,
        });
        Ok(ConfigActivation::Done { previous: current })
    }
}

#[async_trait::async_trait]
impl DecisionLog for MemoryStore {
    async fn record_decision(
        &self,
        tenant_id: &str,
        decision_id: &str,
        request_id: &str,
        record: &[u8],
        retention: Duration,
    ) -> Result<Recorded, StoreError> {
        let now = Instant::now();
        let expires = now + retention;
        let mut log = lock(&self.decide.log);
        if !request_id.is_empty() {
            // An index entry whose decision is gone no longer holds the request id.
            if let Some(existing) = log.decision_for(tenant_id, request_id, now) {
                return Ok(Recorded::Duplicate(existing.clone()));
            }
            log.requests.insert(
                (tenant_id.to_owned(), request_id.to_owned()),
                (decision_id.to_owned(), expires),
            );
        }
        log.records.insert(
            (tenant_id.to_owned(), decision_id.to_owned()),
            (record.to_vec(), expires),
        );
        log.sweep(now);
        Ok(Recorded::New)
    }

    async fn get_decision(
        &self,
        tenant_id: &str,
        decision_id: &str,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(lock(&self.decide.log)
            .record(tenant_id, decision_id, Instant::now())
            .cloned())
    }

    async fn decision_for_request(
        &self,
        tenant_id: &str,
        request_id: &str,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(lock(&self.decide.log)
            .decision_for(tenant_id, request_id, Instant::now())
            .cloned())
    }
}

#[async_trait::async_trait]
impl Outbound for MemoryStore {
    async fn publish_outbound(
        &self,
        tenant_id: &str,
        key: &str,
        payload: &[u8],
        dedup_for: Duration,
        max_len: usize,
    ) -> Result<Published, StoreError> {
        let published = lock(&self.decide.outbound)
            .entry(tenant_id.to_owned())
            .or_default()
            .publish(key, payload, dedup_for, max_len, Instant::now());
        if matches!(published, Published::New(_)) {
            self.decide.published.notify_waiters();
        }
        Ok(published)
    }

    async fn read_outbound(
        &self,
        tenant_id: &str,
        after: &str,
        count: usize,
        block: Duration,
    ) -> Result<Vec<OutboundEntry>, StoreError> {
        let after = if after.is_empty() {
            0
        } else {
            parse_offset(after)?
        };
        let deadline = tokio::time::Instant::now() + block;
        loop {
            // Registered before looking, so a publish between the look and the wait still
            // wakes this reader.
            let published = self.decide.published.notified();
            tokio::pin!(published);
            published.as_mut().enable();
            let found = lock(&self.decide.outbound)
                .get(tenant_id)
                .map(|stream| stream.after(after, count.max(1)))
                .unwrap_or_default();
            if !found.is_empty() {
                return Ok(found);
            }
            if tokio::time::timeout_at(deadline, published).await.is_err() {
                return Ok(Vec::new());
            }
        }
    }

    async fn signal_cursors(&self, watcher: &str) -> Result<HashMap<u32, String>, StoreError> {
        Ok(lock(&self.decide.cursors)
            .get(watcher)
            .cloned()
            .unwrap_or_default())
    }

    async fn save_signal_cursor(
        &self,
        watcher: &str,
        shard: u32,
        cursor: &str,
    ) -> Result<(), StoreError> {
        lock(&self.decide.cursors)
            .entry(watcher.to_owned())
            .or_default()
            .insert(shard, cursor.to_owned());
        Ok(())
    }
}
