//! Multi-shard log reads (`XREAD BLOCK`), acknowledgements and trimming behind the slowest
//! consumer.
//!
//! A blocking read holds its connection until data arrives or the block ends; on the shared
//! multiplexed connections it would stall every request queued behind it. Blocking reads get
//! connections of their own, from a small pool opened on first use.

use std::{collections::HashMap, sync::Mutex, time::Duration};

use redis::{AsyncConnectionConfig, Client, aio::MultiplexedConnection, streams::StreamReadReply};

use super::{RedisStore, field_bytes, map_err, scripts};
use crate::{LogConsumer, LogEntry, StoreError, keys};

/// Idle connections kept for blocking reads; more concurrent readers open (and then drop) more.
const IDLE_BLOCKING: usize = 4;

/// Connections reserved for blocking commands.
pub(super) struct BlockingConnections {
    client: Client,
    connect_timeout: Duration,
    response_timeout: Duration,
    idle: Mutex<Vec<MultiplexedConnection>>,
}

impl BlockingConnections {
    pub(super) fn new(
        client: Client,
        connect_timeout: Duration,
        response_timeout: Duration,
    ) -> Self {
        Self {
            client,
            connect_timeout,
            response_timeout,
            idle: Mutex::default(),
        }
    }

    fn idle(&self) -> std::sync::MutexGuard<'_, Vec<MultiplexedConnection>> {
        // The vector stays consistent whatever panicked while it was locked.
        self.idle
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A connection whose replies may take `block` plus the usual response time.
    pub(super) async fn take(&self, block: Duration) -> Result<MultiplexedConnection, StoreError> {
        let pooled = self.idle().pop();
        let mut conn = match pooled {
            Some(conn) => conn,
            None => {
                let config = AsyncConnectionConfig::new()
                    .set_connection_timeout(Some(self.connect_timeout))
                    .set_response_timeout(Some(self.response_timeout));
                self.client
                    .get_multiplexed_async_connection_with_config(&config)
                    .await
                    .map_err(map_err)?
            }
        };
        conn.set_response_timeout(block + self.response_timeout);
        Ok(conn)
    }

    /// Returns a connection that answered normally; one that failed is dropped instead.
    pub(super) fn put_back(&self, conn: MultiplexedConnection) {
        let mut idle = self.idle();
        if idle.len() < IDLE_BLOCKING {
            idle.push(conn);
        }
    }
}

#[async_trait::async_trait]
impl LogConsumer for RedisStore {
    async fn read_many(
        &self,
        from: &[(u32, Option<String>)],
        limit: usize,
        block: Duration,
    ) -> Result<Vec<(u32, Vec<LogEntry>)>, StoreError> {
        if from.is_empty() {
            tokio::time::sleep(block).await;
            return Ok(Vec::new());
        }
        let mut cmd = redis::cmd("XREAD");
        cmd.arg("COUNT").arg(limit.max(1));
        // BLOCK 0 would wait forever; no BLOCK at all does not wait.
        let block_ms = u64::try_from(block.as_millis()).unwrap_or(u64::MAX);
        if block_ms > 0 {
            cmd.arg("BLOCK").arg(block_ms);
        }
        cmd.arg("STREAMS");
        let mut shards = HashMap::with_capacity(from.len());
        for (shard, _) in from {
            let key = keys::log(*shard);
            cmd.arg(&key);
            shards.insert(key, *shard);
        }
        for (_, after) in from {
            cmd.arg(after.as_deref().unwrap_or("0"));
        }
        let mut conn = self.blocking.take(block).await?;
        let reply: Option<StreamReadReply> = cmd.query_async(&mut conn).await.map_err(map_err)?;
        self.blocking.put_back(conn);
        let Some(reply) = reply else {
            return Ok(Vec::new());
        };
        let mut found = Vec::with_capacity(reply.keys.len());
        for stream in reply.keys {
            let Some(&shard) = shards.get(&stream.key) else {
                return Err(StoreError::Backend(format!(
                    "XREAD answered for a stream it was not asked about: {}",
                    stream.key
                )));
            };
            let entries = stream
                .ids
                .into_iter()
                .map(|entry| {
                    Ok(LogEntry {
                        payload: field_bytes(entry.map.get(keys::LOG_FIELD))?,
                        offset: entry.id,
                    })
                })
                .collect::<Result<Vec<_>, StoreError>>()?;
            if !entries.is_empty() {
                found.push((shard, entries));
            }
        }
        // In the order asked, whatever order Redis answered in.
        let order: HashMap<u32, usize> =
            from.iter().enumerate().map(|(i, (s, _))| (*s, i)).collect();
        found.sort_by_key(|(shard, _)| order.get(shard).copied());
        Ok(found)
    }

    async fn read_group(
        &self,
        group: &str,
        consumer: &str,
        shards: &[u32],
        limit: usize,
        block: Duration,
    ) -> Result<Vec<(u32, Vec<LogEntry>)>, StoreError> {
        if shards.is_empty() {
            tokio::time::sleep(block).await;
            return Ok(Vec::new());
        }
        let mut cmd = redis::cmd("XREADGROUP");
        cmd.arg("GROUP").arg(group).arg(consumer);
        cmd.arg("COUNT").arg(limit.max(1));
        let block_ms = u64::try_from(block.as_millis()).unwrap_or(u64::MAX);
        if block_ms > 0 {
            cmd.arg("BLOCK").arg(block_ms);
        }
        // Delivered entries are not kept pending: learning from an entry twice is worse than
        // missing one that a dying replica had taken.
        cmd.arg("NOACK").arg("STREAMS");
        let mut by_key = HashMap::with_capacity(shards.len());
        for shard in shards {
            let key = keys::log(*shard);
            cmd.arg(&key);
            by_key.insert(key, *shard);
        }
        for _ in shards {
            cmd.arg(">");
        }
        let mut conn = self.blocking.take(block).await?;
        let reply: Result<Option<StreamReadReply>, _> = cmd.query_async(&mut conn).await;
        let reply = match reply {
            Ok(reply) => reply,
            Err(err) if err.code() == Some("NOGROUP") => {
                // First read of this group: create it at the end of every log, then read.
                for shard in shards {
                    let created: Result<(), _> = redis::cmd("XGROUP")
                        .arg("CREATE")
                        .arg(keys::log(*shard))
                        .arg(group)
                        .arg("$")
                        .arg("MKSTREAM")
                        .query_async(&mut conn)
                        .await;
                    if let Err(err) = created
                        && err.code() != Some("BUSYGROUP")
                    {
                        return Err(map_err(err));
                    }
                }
                cmd.query_async(&mut conn).await.map_err(map_err)?
            }
            Err(err) => return Err(map_err(err)),
        };
        self.blocking.put_back(conn);
        let Some(reply) = reply else {
            return Ok(Vec::new());
        };
        let mut found = Vec::with_capacity(reply.keys.len());
        for stream in reply.keys {
            let Some(&shard) = by_key.get(&stream.key) else {
                continue;
            };
            let entries = stream
                .ids
                .into_iter()
                .map(|entry| {
                    Ok(LogEntry {
                        payload: field_bytes(entry.map.get(keys::LOG_FIELD))?,
                        offset: entry.id,
                    })
                })
                .collect::<Result<Vec<_>, StoreError>>()?;
            if !entries.is_empty() {
                found.push((shard, entries));
            }
        }
        Ok(found)
    }

    async fn acknowledge(
        &self,
        shard: u32,
        consumer: &str,
        offset: &str,
    ) -> Result<(), StoreError> {
        redis::cmd("HSET")
            .arg(keys::acks(shard))
            .arg(consumer)
            .arg(offset)
            .query_async::<()>(&mut self.conn())
            .await
            .map_err(map_err)
    }

    async fn trim(&self, shard: u32, consumers: &[&str]) -> Result<u64, StoreError> {
        if consumers.is_empty() {
            return Ok(0);
        }
        scripts::TRIM
            .key(keys::acks(shard))
            .key(keys::log(shard))
            .arg(consumers)
            .invoke_async(&mut self.conn())
            .await
            .map_err(map_err)
    }
}
