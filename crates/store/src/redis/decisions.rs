//! The decision service's storage on Redis. Every key of a tenant carries the tenant's hash
//! tag, so each script touches one slot; every check-then-write (immutable versions,
//! compare-and-set activation, the request index, publish-once) is one Lua script.

use std::{collections::HashMap, sync::LazyLock, time::Duration};

use redis::{Script, streams::StreamReadReply};

use super::{RedisStore, field_bytes, map_err};
use crate::{
    ActiveConfig, ConfigActivation, DecisionConfigs, DecisionLog, Outbound, OutboundEntry,
    Published, Recorded, StoreError, StoredConfig, keys,
};

/// Hash fields of a stored configuration version.
const YAML: &str = "yaml";
const CREATED_AT: &str = "created_at_ms";
/// Hash fields of the active configuration.
const VERSION: &str = "version";
const ACTIVATED_AT: &str = "activated_at_ms";

/// How often a duplicate request whose decision has vanished is retried before giving up.
const RECORD_ATTEMPTS: usize = 3;

/// KEYS = version hash; ARGV = yaml, now_ms.
/// Returns 1 (stored), 0 (the same text was stored already) or -1 (another text is stored).
static PUT_CONFIG: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local cur = redis.call('HGET', KEYS[1], 'yaml')
if cur then
  if cur == ARGV[1] then return 0 end
  return -1
end
redis.call('HSET', KEYS[1], 'yaml', ARGV[1], 'created_at_ms', ARGV[2])
return 1
",
    )
});

/// KEYS = version hash, active hash; ARGV = has_expected (`1`/`0`), expected, version, now_ms.
/// Returns `{'missing'}`, `{'conflict'[, current]}` or `{'done'[, previous]}`.
static ACTIVATE_CONFIG: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if redis.call('EXISTS', KEYS[1]) == 0 then return {'missing'} end
local cur = redis.call('HGET', KEYS[2], 'version')
if cur == ARGV[3] then return {'done', cur} end
local matches
if ARGV[1] == '1' then matches = (cur == ARGV[2]) else matches = not cur end
if not matches then
  if cur then return {'conflict', cur} end
  return {'conflict'}
end
redis.call('HSET', KEYS[2], 'version', ARGV[3], 'activated_at_ms', ARGV[4])
if cur then return {'done', cur} end
return {'done'}
",
    )
});

/// KEYS = record, request index; ARGV = record, retention_ms, decision_id, replace_stale
/// (`1`/`0`), stale decision id.
/// Returns nil when recorded, else the decision id the index holds (nothing written).
///
/// The held decision's record is read by the caller rather than here: its key is known only
/// inside the script, and a script may touch only the keys it declares on Redis Cluster. With
/// `replace_stale`, an index still naming the stale decision (whose record has gone) is taken
/// over instead.
static RECORD_DECISION: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local held = redis.call('GET', KEYS[2])
if held and not (ARGV[4] == '1' and held == ARGV[5]) then return held end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
redis.call('SET', KEYS[2], ARGV[3], 'PX', ARGV[2])
return false
",
    )
});

/// KEYS = outbound stream, dedup marker; ARGV = max_len, payload, dedup_ms. The entry's one
/// field is `o` ([`keys::OUTBOUND_FIELD`]).
/// Returns `{'already', cursor}` or `{'new', cursor}`.
static PUBLISH: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local seen = redis.call('GET', KEYS[2])
if seen then return {'already', seen} end
local id = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*', 'o', ARGV[2])
redis.call('SET', KEYS[2], id, 'PX', ARGV[3])
return {'new', id}
",
    )
});

/// Milliseconds for `PX`, at least 1 (Redis refuses 0).
fn px(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis())
        .unwrap_or(u64::MAX)
        .max(1)
}

fn unexpected(what: &str, reply: &[String]) -> StoreError {
    StoreError::Backend(format!("unexpected {what} reply: {reply:?}"))
}

#[async_trait::async_trait]
impl DecisionConfigs for RedisStore {
    async fn put_config(
        &self,
        tenant_id: &str,
        version: &str,
        yaml: &str,
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        let result: i64 = PUT_CONFIG
            .key(keys::decision_config(tenant_id, version))
            .arg(yaml)
            .arg(now_ms)
            .invoke_async(&mut self.conn())
            .await
            .map_err(map_err)?;
        match result {
            1 => Ok(true),
            0 => Ok(false),
            _ => Err(StoreError::Conflict(format!(
                "decision configuration {version} of tenant {tenant_id} is already stored with \
                 a different text"
            ))),
        }
    }

    async fn get_config(
        &self,
        tenant_id: &str,
        version: &str,
    ) -> Result<Option<StoredConfig>, StoreError> {
        let (yaml, created_at_ms): (Option<String>, Option<i64>) = redis::cmd("HMGET")
            .arg(keys::decision_config(tenant_id, version))
            .arg(YAML)
            .arg(CREATED_AT)
            .query_async(&mut self.conn())
            .await
            .map_err(map_err)?;
        match (yaml, created_at_ms) {
            (None, _) => Ok(None),
            (Some(yaml), Some(created_at_ms)) => Ok(Some(StoredConfig {
                yaml,
                created_at_ms,
            })),
            (Some(_), None) => Err(StoreError::Backend(format!(
                "decision configuration {version} of tenant {tenant_id} has no creation time"
            ))),
        }
    }

    async fn active_configs(
        &self,
        tenant_ids: &[String],
    ) -> Result<Vec<Option<ActiveConfig>>, StoreError> {
        if tenant_ids.is_empty() {
            return Ok(Vec::new());
        }
        // One HMGET per tenant in a pipeline: different tenants lie in different slots.
        let mut pipe = redis::pipe();
        for tenant in tenant_ids {
            pipe.cmd("HMGET")
                .arg(keys::decision_config_active(tenant))
                .arg(VERSION)
                .arg(ACTIVATED_AT);
        }
        let replies: Vec<(Option<String>, Option<i64>)> =
            pipe.query_async(&mut self.conn()).await.map_err(map_err)?;
        tenant_ids
            .iter()
            .zip(replies)
            .map(|(tenant, reply)| match reply {
                (None, _) => Ok(None),
                (Some(version), Some(activated_at_ms)) => Ok(Some(ActiveConfig {
                    version,
                    activated_at_ms,
                })),
                (Some(_), None) => Err(StoreError::Backend(format!(
                    "active decision configuration of tenant {tenant} has no activation time"
                ))),
            })
            .collect()
    }

    async fn activate_config(
        &self,
        tenant_id: &str,
        expected: Option<&str>,
        version: &str,
        now_ms: i64,
    ) -> Result<ConfigActivation, StoreError> {
        let reply: Vec<String> = ACTIVATE_CONFIG
            .key(keys::decision_config(tenant_id, version))
            .key(keys::decision_config_active(tenant_id))
            .arg(if expected.is_some() { "1" } else { "0" })
            .arg(expected.unwrap_or_default())
            .arg(version)
            .arg(now_ms)
            .invoke_async(&mut self.conn())
            .await
            .map_err(map_err)?;
        match reply.as_slice() {
            [tag] if tag == "missing" => Err(StoreError::Conflict(format!(
                "decision configuration {version} of tenant {tenant_id} is not stored"
            ))),
            [tag, rest @ ..] if tag == "conflict" && rest.len() <= 1 => {
                Ok(ConfigActivation::Conflict {
                    current: rest.first().cloned(),
                })
            }
            [tag, rest @ ..] if tag == "done" && rest.len() <= 1 => Ok(ConfigActivation::Done {
                previous: rest.first().cloned(),
            }),
            _ => Err(unexpected("activation", &reply)),
        }
    }
}

impl RedisStore {
    /// The record of a decision, if still retained.
    async fn decision_record(
        &self,
        tenant_id: &str,
        decision_id: &str,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        redis::cmd("GET")
            .arg(keys::decision(tenant_id, decision_id))
            .query_async(&mut self.conn())
            .await
            .map_err(map_err)
    }
}

#[async_trait::async_trait]
impl DecisionLog for RedisStore {
    async fn record_decision(
        &self,
        tenant_id: &str,
        decision_id: &str,
        request_id: &str,
        record: &[u8],
        retention: Duration,
    ) -> Result<Recorded, StoreError> {
        let retention_ms = px(retention);
        if request_id.is_empty() {
            redis::cmd("SET")
                .arg(keys::decision(tenant_id, decision_id))
                .arg(record)
                .arg("PX")
                .arg(retention_ms)
                .query_async::<()>(&mut self.conn())
                .await
                .map_err(map_err)?;
            return Ok(Recorded::New);
        }
        let mut stale: Option<String> = None;
        for _ in 0..RECORD_ATTEMPTS {
            let held: Option<String> = RECORD_DECISION
                .key(keys::decision(tenant_id, decision_id))
                .key(keys::decision_request(tenant_id, request_id))
                .arg(record)
                .arg(retention_ms)
                .arg(decision_id)
                .arg(if stale.is_some() { "1" } else { "0" })
                .arg(stale.as_deref().unwrap_or_default())
                .invoke_async(&mut self.conn())
                .await
                .map_err(map_err)?;
            let Some(held) = held else {
                return Ok(Recorded::New);
            };
            // Records are written before (atomically with) their index entry and expire with
            // it, so a missing record means it expired just now or was evicted: take over.
            match self.decision_record(tenant_id, &held).await? {
                Some(existing) => return Ok(Recorded::Duplicate(existing)),
                None => stale = Some(held),
            }
        }
        Err(StoreError::Backend(format!(
            "request {request_id} of tenant {tenant_id} keeps naming decisions that are not \
             stored"
        )))
    }

    async fn get_decision(
        &self,
        tenant_id: &str,
        decision_id: &str,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        self.decision_record(tenant_id, decision_id).await
    }

    async fn decision_for_request(
        &self,
        tenant_id: &str,
        request_id: &str,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        let held: Option<String> = redis::cmd("GET")
            .arg(keys::decision_request(tenant_id, request_id))
            .query_async(&mut self.conn())
            .await
            .map_err(map_err)?;
        match held {
            Some(decision_id) => self.decision_record(tenant_id, &decision_id).await,
            None => Ok(None),
        }
    }
}

#[async_trait::async_trait]
impl Outbound for RedisStore {
    async fn publish_outbound(
        &self,
        tenant_id: &str,
        key: &str,
        payload: &[u8],
        dedup_for: Duration,
        max_len: usize,
    ) -> Result<Published, StoreError> {
        let reply: Vec<String> = PUBLISH
            .key(keys::outbound(tenant_id))
            .key(keys::outbound_dedup(tenant_id, key))
            .arg(max_len)
            .arg(payload)
            .arg(px(dedup_for))
            .invoke_async(&mut self.conn())
            .await
            .map_err(map_err)?;
        match reply.as_slice() {
            [tag, cursor] if tag == "new" => Ok(Published::New(cursor.clone())),
            [tag, cursor] if tag == "already" => Ok(Published::Already(cursor.clone())),
            _ => Err(unexpected("publish", &reply)),
        }
    }

    async fn read_outbound(
        &self,
        tenant_id: &str,
        after: &str,
        count: usize,
        block: Duration,
    ) -> Result<Vec<OutboundEntry>, StoreError> {
        let mut cmd = redis::cmd("XREAD");
        cmd.arg("COUNT").arg(count.max(1));
        // BLOCK 0 would wait forever; no BLOCK at all does not wait.
        let block_ms = u64::try_from(block.as_millis()).unwrap_or(u64::MAX);
        if block_ms > 0 {
            cmd.arg("BLOCK").arg(block_ms);
        }
        cmd.arg("STREAMS")
            .arg(keys::outbound(tenant_id))
            .arg(if after.is_empty() { "0" } else { after });
        let reply: Option<StreamReadReply> = if block_ms > 0 {
            // A blocking read would stall every request queued behind it on a shared
            // connection.
            let mut conn = self.blocking.take(block).await?;
            let reply = cmd.query_async(&mut conn).await.map_err(map_err)?;
            self.blocking.put_back(conn);
            reply
        } else {
            cmd.query_async(&mut self.conn()).await.map_err(map_err)?
        };
        let Some(reply) = reply else {
            return Ok(Vec::new());
        };
        reply
            .keys
            .into_iter()
            .flat_map(|stream| stream.ids)
            .map(|entry| {
                Ok(OutboundEntry {
                    payload: field_bytes(entry.map.get(keys::OUTBOUND_FIELD))?,
                    cursor: entry.id,
                })
            })
            .collect()
    }

    async fn signal_cursors(&self, watcher: &str) -> Result<HashMap<u32, String>, StoreError> {
        let stored: HashMap<String, String> = redis::cmd("HGETALL")
            .arg(keys::signal_cursors(watcher))
            .query_async(&mut self.conn())
            .await
            .map_err(map_err)?;
        stored
            .into_iter()
            .map(|(shard, cursor)| {
                let shard = shard.parse().map_err(|_| {
                    StoreError::Backend(format!(
                        "malformed shard {shard:?} in the signal cursors of watcher {watcher}"
                    ))
                })?;
                Ok((shard, cursor))
            })
            .collect()
    }

    async fn save_signal_cursor(
        &self,
        watcher: &str,
        shard: u32,
        cursor: &str,
    ) -> Result<(), StoreError> {
        redis::cmd("HSET")
            .arg(keys::signal_cursors(watcher))
            .arg(shard)
            .arg(cursor)
            .query_async::<()>(&mut self.conn())
            .await
            .map_err(map_err)
    }
}
