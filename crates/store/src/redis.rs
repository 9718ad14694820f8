//! The Redis backend. Dedup-and-append is one Lua script per group of events (atomic per
//! event), and all script calls of a batch travel in one pipeline. The profile service's shard
//! storage lives in [`shards`] and [`consumer`].

mod consumer;
mod decisions;
mod kpi;
mod models;
mod propensity;
mod scripts;
mod shards;

use std::{
    sync::atomic::{AtomicUsize, Ordering},
    time::Duration,
};

use redis::{
    Client, RedisError, Script, Value,
    aio::{ConnectionManager, ConnectionManagerConfig},
    streams::StreamRangeReply,
};

use crate::{
    AppendOutcome, AppendRequest, DeadLetterEntry, DeadLetterPage, DeadLetters, EventLog,
    IdentityLinks, LinkOutcome, LogEntry, RedisConfig, StoreError, keys,
};

/// KEYS = log_1, dedup_1, log_2, dedup_2, …; ARGV = ttl_ms, payload_1, payload_2, …
/// Returns one string per event: the new offset, or `=` followed by the original offset.
///
/// New events (the common case) cost two calls: `XADD`, then `SET … NX GET`, which marks the
/// id and tells in one step whether it was already marked. A duplicate's entry is removed again
/// with `XDEL` before the script ends, so no reader ever sees it (scripts are atomic).
/// `SET` with both `NX` and `GET` needs Redis 7.0 or later.
const APPEND_SCRIPT: &str = r"
local ttl = ARGV[1]
local out = {}
for i = 1, #KEYS / 2 do
  local log = KEYS[2 * i - 1]
  local id = redis.call('XADD', log, '*', 'r', ARGV[i + 1])
  local seen = redis.call('SET', KEYS[2 * i], id, 'NX', 'PX', ttl, 'GET')
  if seen then
    redis.call('XDEL', log, id)
    out[i] = '=' .. seen
  else
    out[i] = id
  end
end
return out
";

/// The Redis-backed store.
pub struct RedisStore {
    connections: Vec<ConnectionManager>,
    next: AtomicUsize,
    append: Script,
    events_per_script: usize,
    per_shard_scripts: bool,
    /// Connections for blocking reads, apart from the shared ones.
    blocking: consumer::BlockingConnections,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore")
            .field("connections", &self.connections.len())
            .finish()
    }
}

pub(crate) fn map_err(err: RedisError) -> StoreError {
    let unavailable = err.is_io_error()
        || err.is_timeout()
        || err.is_connection_refusal()
        || err.is_connection_dropped()
        || matches!(
            err.kind(),
            redis::ErrorKind::Server(
                redis::ServerErrorKind::BusyLoading
                    | redis::ServerErrorKind::TryAgain
                    | redis::ServerErrorKind::ClusterDown
                    | redis::ServerErrorKind::MasterDown
                    | redis::ServerErrorKind::ReadOnly
            )
        );
    if unavailable {
        StoreError::Unavailable(err.to_string())
    } else {
        StoreError::Backend(err.to_string())
    }
}

impl RedisStore {
    /// Up to `limit` entries of stream `key` after id `after` (from the start when `None`),
    /// each with its payload field `field`.
    pub(crate) async fn range_after(
        &self,
        key: String,
        field: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<LogEntry>, StoreError> {
        let start = after.map_or_else(|| "-".to_owned(), |a| format!("({a}"));
        let reply: StreamRangeReply = redis::cmd("XRANGE")
            .arg(key)
            .arg(start)
            .arg("+")
            .arg("COUNT")
            .arg(limit)
            .query_async(&mut self.conn())
            .await
            .map_err(map_err)?;
        reply
            .ids
            .into_iter()
            .map(|entry| {
                Ok(LogEntry {
                    payload: field_bytes(entry.map.get(field))?,
                    offset: entry.id,
                })
            })
            .collect()
    }

    /// Prepares lazily connecting clients; nothing is contacted until the first request.
    pub fn open(config: &RedisConfig) -> Result<Self, StoreError> {
        let client = Client::open(config.url.as_str())
            .map_err(|e| StoreError::Config(format!("store.redis.url: {e}")))?;
        let connect_timeout = Duration::from_millis(config.connect_timeout_ms);
        let response_timeout = Duration::from_millis(config.response_timeout_ms);
        let manager_config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(connect_timeout))
            .set_response_timeout(Some(response_timeout))
            // Fail fast while Redis is down: callers answer UNAVAILABLE and clients retry.
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_millis(500));
        let connections = (0..config.connections)
            .map(|_| {
                ConnectionManager::new_lazy_with_config(client.clone(), manager_config.clone())
            })
            .collect::<Result<Vec<_>, _>>()
            .map_err(map_err)?;
        Ok(Self {
            connections,
            next: AtomicUsize::new(0),
            append: Script::new(APPEND_SCRIPT),
            events_per_script: config.events_per_script,
            per_shard_scripts: config.per_shard_scripts,
            blocking: consumer::BlockingConnections::new(client, connect_timeout, response_timeout),
        })
    }

    fn conn(&self) -> ConnectionManager {
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.connections.len();
        self.connections[i].clone()
    }

    /// Splits `entries` into script calls: runs of at most `events_per_script`, and of one
    /// shard each when scripts must stay within one hash slot. Order within a shard is kept
    /// because calls run in pipeline order.
    fn groups(&self, entries: &[AppendRequest]) -> Vec<Vec<usize>> {
        if !self.per_shard_scripts {
            let indices: Vec<usize> = (0..entries.len()).collect();
            return indices
                .chunks(self.events_per_script)
                .map(<[usize]>::to_vec)
                .collect();
        }
        let mut by_shard: std::collections::BTreeMap<u32, Vec<usize>> = Default::default();
        for (i, entry) in entries.iter().enumerate() {
            by_shard.entry(entry.shard).or_default().push(i);
        }
        by_shard
            .into_values()
            .flat_map(|v| {
                v.chunks(self.events_per_script)
                    .map(<[usize]>::to_vec)
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    fn append_pipeline(
        &self,
        entries: &[AppendRequest],
        groups: &[Vec<usize>],
        ttl_ms: u64,
    ) -> redis::Pipeline {
        let mut pipe = redis::pipe();
        for group in groups {
            let cmd = pipe
                .cmd("EVALSHA")
                .arg(self.append.get_hash())
                .arg(group.len() * 2);
            for &i in group {
                let e = &entries[i];
                cmd.arg(keys::log(e.shard))
                    .arg(keys::dedup(e.shard, &e.tenant_id, &e.event_id));
            }
            cmd.arg(ttl_ms);
            for &i in group {
                cmd.arg(entries[i].payload.as_slice());
            }
        }
        pipe
    }
}

#[async_trait::async_trait]
impl EventLog for RedisStore {
    async fn append(
        &self,
        entries: &[AppendRequest],
        dedup_window: Duration,
    ) -> Result<Vec<AppendOutcome>, StoreError> {
        if entries.is_empty() {
            return Ok(Vec::new());
        }
        let groups = self.groups(entries);
        let ttl_ms = u64::try_from(dedup_window.as_millis())
            .unwrap_or(u64::MAX)
            .max(1);
        let pipe = self.append_pipeline(entries, &groups, ttl_ms);
        let mut conn = self.conn();
        let replies: Vec<Vec<String>> = match pipe.query_async(&mut conn).await {
            Ok(replies) => replies,
            Err(err)
                if err.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::NoScript) =>
            {
                // Redis restarted or flushed its scripts. Load and retry: appends are idempotent.
                self.append
                    .prepare_invoke()
                    .load_async(&mut conn)
                    .await
                    .map_err(map_err)?;
                pipe.query_async(&mut conn).await.map_err(map_err)?
            }
            Err(err) => return Err(map_err(err)),
        };
        let mut outcomes = vec![AppendOutcome::Appended(String::new()); entries.len()];
        for (group, reply) in groups.iter().zip(replies) {
            if reply.len() != group.len() {
                return Err(StoreError::Backend(format!(
                    "append script returned {} results for {} events",
                    reply.len(),
                    group.len()
                )));
            }
            for (&i, result) in group.iter().zip(reply) {
                outcomes[i] = match result.strip_prefix('=') {
                    Some(original) => AppendOutcome::Duplicate(original.to_owned()),
                    None => AppendOutcome::Appended(result),
                };
            }
        }
        Ok(outcomes)
    }

    async fn read(
        &self,
        shard: u32,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<LogEntry>, StoreError> {
        self.range_after(keys::log(shard), keys::LOG_FIELD, after, limit)
            .await
    }

    async fn forget(
        &self,
        shard: u32,
        tenant_id: &str,
        event_ids: &[String],
    ) -> Result<(), StoreError> {
        if event_ids.is_empty() {
            return Ok(());
        }
        // One shard's keys share a slot, so one DEL is Cluster-safe.
        let mut del = redis::cmd("DEL");
        for id in event_ids {
            del.arg(keys::dedup(shard, tenant_id, id));
        }
        del.query_async::<()>(&mut self.conn())
            .await
            .map_err(map_err)
    }

    async fn len(&self, shard: u32) -> Result<u64, StoreError> {
        redis::cmd("XLEN")
            .arg(keys::log(shard))
            .query_async(&mut self.conn())
            .await
            .map_err(map_err)
    }

    async fn ping(&self) -> Result<(), StoreError> {
        redis::cmd("PING")
            .query_async::<String>(&mut self.conn())
            .await
            .map(drop)
            .map_err(map_err)
    }
}

fn field_bytes(value: Option<&Value>) -> Result<Vec<u8>, StoreError> {
    match value {
        Some(Value::BulkString(bytes)) => Ok(bytes.clone()),
        other => Err(StoreError::Backend(format!(
            "stream entry without its payload field: {other:?}"
        ))),
    }
}

#[async_trait::async_trait]
impl DeadLetters for RedisStore {
    async fn put(&self, entries: &[(String, Vec<u8>)], retention: u64) -> Result<(), StoreError> {
        if entries.is_empty() {
            return Ok(());
        }
        let mut pipe = redis::pipe();
        for (tenant, payload) in entries {
            pipe.cmd("XADD")
                .arg(keys::dead_letters(tenant))
                .arg("MAXLEN")
                .arg("~")
                .arg(retention)
                .arg("*")
                .arg(keys::DEAD_LETTER_FIELD)
                .arg(payload.as_slice())
                .ignore();
        }
        pipe.query_async::<()>(&mut self.conn())
            .await
            .map_err(map_err)
    }

    async fn list(
        &self,
        tenant_id: &str,
        before: Option<&str>,
        limit: usize,
    ) -> Result<DeadLetterPage, StoreError> {
        let end = before.map_or_else(|| "+".to_owned(), |b| format!("({b}"));
        let reply: StreamRangeReply = redis::cmd("XREVRANGE")
            .arg(keys::dead_letters(tenant_id))
            .arg(end)
            .arg("-")
            .arg("COUNT")
            .arg(limit + 1)
            .query_async(&mut self.conn())
            .await
            .map_err(map_err)?;
        let has_more = reply.ids.len() > limit;
        let entries = reply
            .ids
            .into_iter()
            .take(limit)
            .map(|entry| {
                Ok(DeadLetterEntry {
                    payload: field_bytes(entry.map.get(keys::DEAD_LETTER_FIELD))?,
                    id: entry.id,
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        let next = if has_more {
            entries.last().map(|e| e.id.clone())
        } else {
            None
        };
        Ok(DeadLetterPage { entries, next })
    }
}

#[async_trait::async_trait]
impl IdentityLinks for RedisStore {
    async fn link(
        &self,
        tenant_id: &str,
        anonymous_id: &str,
        customer_id: &str,
    ) -> Result<LinkOutcome, StoreError> {
        // SET NX GET: sets only if absent and returns the previous value, in one step.
        let previous: Option<String> = redis::cmd("SET")
            .arg(keys::identity_link(tenant_id, anonymous_id))
            .arg(customer_id)
            .arg("NX")
            .arg("GET")
            .query_async(&mut self.conn())
            .await
            .map_err(map_err)?;
        Ok(match previous {
            None => LinkOutcome::Created,
            Some(existing) if existing == customer_id => LinkOutcome::Existing,
            Some(existing) => LinkOutcome::Conflict {
                customer_id: existing,
            },
        })
    }

    async fn resolve(
        &self,
        tenant_id: &str,
        anonymous_id: &str,
    ) -> Result<Option<String>, StoreError> {
        redis::cmd("GET")
            .arg(keys::identity_link(tenant_id, anonymous_id))
            .query_async(&mut self.conn())
            .await
            .map_err(map_err)
    }

    async fn unlink(&self, tenant_id: &str, anonymous_id: &str) -> Result<(), StoreError> {
        redis::cmd("DEL")
            .arg(keys::identity_link(tenant_id, anonymous_id))
            .query_async::<()>(&mut self.conn())
            .await
            .map_err(map_err)
    }
}
