//! The profile service's membership, shard leases and fenced shard state on Redis: one script
//! per lease operation and per shard write, so each is atomic and stays within one hash slot.

use std::time::Duration;

use redis::{Script, streams::StreamRangeReply};

use super::{RedisStore, map_err, scripts};
use crate::{
    Acquire, Lease, LogEntry, Member, Membership, PROFILE_CONSUMER, ProfileKey, ShardLeases,
    ShardOwner, ShardState, ShardWrite, StoreError, Timer, WriteOutcome, keys,
};

/// Milliseconds for Redis, at least 1 (`PX 0` is an error).
fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis())
        .unwrap_or(u64::MAX)
        .max(1)
}

/// The start of the lease value `<node_id>|<epoch>|<address>` that identifies one lease.
fn lease_prefix(node_id: &str, epoch: u64) -> String {
    format!("{node_id}|{epoch}|")
}

/// `|` separates the fields of a lease value, so it cannot be part of a node id.
fn check_node_id(node_id: &str) -> Result<(), StoreError> {
    if node_id.is_empty() || node_id.contains('|') {
        return Err(StoreError::Config(format!(
            "node id {node_id:?} must be non-empty and free of '|'"
        )));
    }
    Ok(())
}

fn parse_lease(shard: u32, value: &str) -> Result<ShardOwner, StoreError> {
    let mut parts = value.splitn(3, '|');
    let (Some(node_id), Some(epoch), Some(address)) = (parts.next(), parts.next(), parts.next())
    else {
        return Err(StoreError::Backend(format!(
            "malformed lease of shard {shard}: {value:?}"
        )));
    };
    let epoch = epoch.parse().map_err(|_| {
        StoreError::Backend(format!("malformed lease epoch of shard {shard}: {value:?}"))
    })?;
    Ok(ShardOwner {
        shard,
        node_id: node_id.to_owned(),
        address: address.to_owned(),
        epoch,
    })
}

fn reply_error(what: &str, reply: &[String]) -> StoreError {
    StoreError::Backend(format!("unexpected {what} script reply: {reply:?}"))
}

impl RedisStore {
    /// Runs a pipeline of calls of `script`, loading it first if Redis does not know it. Safe
    /// to repeat: when Redis does not know the script, none of the calls ran.
    async fn script_pipeline<T: redis::FromRedisValue>(
        &self,
        script: &Script,
        pipe: &redis::Pipeline,
    ) -> Result<T, StoreError> {
        let mut conn = self.conn();
        match pipe.query_async(&mut conn).await {
            Ok(reply) => Ok(reply),
            Err(err)
                if err.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::NoScript) =>
            {
                script
                    .prepare_invoke()
                    .load_async(&mut conn)
                    .await
                    .map_err(map_err)?;
                pipe.query_async(&mut conn).await.map_err(map_err)
            }
            Err(err) => Err(map_err(err)),
        }
    }
}

#[async_trait::async_trait]
impl Membership for RedisStore {
    async fn heartbeat(
        &self,
        node_id: &str,
        address: &str,
        ttl: Duration,
    ) -> Result<(), StoreError> {
        scripts::HEARTBEAT
            .key(keys::members_live())
            .key(keys::members_addr())
            .arg(node_id)
            .arg(address)
            .arg(millis(ttl))
            .invoke_async::<()>(&mut self.conn())
            .await
            .map_err(map_err)
    }

    async fn leave(&self, node_id: &str) -> Result<(), StoreError> {
        redis::pipe()
            .atomic()
            .zrem(keys::members_live(), node_id)
            .ignore()
            .hdel(keys::members_addr(), node_id)
            .ignore()
            .query_async::<()>(&mut self.conn())
            .await
            .map_err(map_err)
    }

    async fn members(&self) -> Result<Vec<Member>, StoreError> {
        let flat: Vec<String> = scripts::MEMBERS
            .key(keys::members_live())
            .key(keys::members_addr())
            .invoke_async(&mut self.conn())
            .await
            .map_err(map_err)?;
        let mut members: Vec<Member> = flat
            .chunks_exact(2)
            .map(|pair| Member {
                node_id: pair[0].clone(),
                address: pair[1].clone(),
            })
            .collect();
        members.sort_by(|a, b| a.node_id.cmp(&b.node_id));
        Ok(members)
    }
}

#[async_trait::async_trait]
impl ShardLeases for RedisStore {
    async fn acquire(
        &self,
        shard: u32,
        node_id: &str,
        address: &str,
        ttl: Duration,
    ) -> Result<Acquire, StoreError> {
        check_node_id(node_id)?;
        let reply: Vec<String> = scripts::ACQUIRE
            .key(keys::epoch(shard))
            .key(keys::lease(shard))
            .arg(node_id)
            .arg(address)
            .arg(millis(ttl))
            .invoke_async(&mut self.conn())
            .await
            .map_err(map_err)?;
        match reply.as_slice() {
            [outcome, value] if outcome == "held" => Ok(Acquire::Held(parse_lease(shard, value)?)),
            [outcome, epoch] if outcome == "acquired" => Ok(Acquire::Acquired(Lease {
                shard,
                epoch: epoch.parse().map_err(|_| reply_error("acquire", &reply))?,
            })),
            _ => Err(reply_error("acquire", &reply)),
        }
    }

    async fn renew(
        &self,
        leases: &[Lease],
        node_id: &str,
        ttl: Duration,
    ) -> Result<Vec<bool>, StoreError> {
        if leases.is_empty() {
            return Ok(Vec::new());
        }
        let ttl_ms = millis(ttl);
        let mut pipe = redis::pipe();
        for lease in leases {
            pipe.cmd("EVALSHA")
                .arg(scripts::RENEW.get_hash())
                .arg(1)
                .arg(keys::lease(lease.shard))
                .arg(lease_prefix(node_id, lease.epoch))
                .arg(ttl_ms);
        }
        let renewed: Vec<i64> = self.script_pipeline(&scripts::RENEW, &pipe).await?;
        Ok(renewed.into_iter().map(|r| r == 1).collect())
    }

    async fn release(&self, lease: Lease, node_id: &str) -> Result<(), StoreError> {
        scripts::RELEASE
            .key(keys::lease(lease.shard))
            .arg(lease_prefix(node_id, lease.epoch))
            .invoke_async::<()>(&mut self.conn())
            .await
            .map_err(map_err)
    }

    async fn owners(&self, shards: &[u32]) -> Result<Vec<Option<ShardOwner>>, StoreError> {
        if shards.is_empty() {
            return Ok(Vec::new());
        }
        // One GET per shard rather than MGET: the leases live in different hash slots.
        let mut pipe = redis::pipe();
        for &shard in shards {
            pipe.get(keys::lease(shard));
        }
        let values: Vec<Option<String>> =
            pipe.query_async(&mut self.conn()).await.map_err(map_err)?;
        shards
            .iter()
            .zip(values)
            .map(|(&shard, value)| value.map(|v| parse_lease(shard, &v)).transpose())
            .collect()
    }
}

/// The keys and arguments of [`scripts::WRITE`] for one shard write.
fn write_invocation(write: &ShardWrite) -> redis::ScriptInvocation<'static> {
    let shard = write.shard;
    let mut call = scripts::WRITE.prepare_invoke();
    call.key(keys::epoch(shard))
        .key(keys::lease(shard))
        .key(keys::checkpoint(shard))
        .key(keys::acks(shard))
        .key(keys::timers(shard))
        .key(keys::signals(shard));
    for (profile, _) in &write.profiles {
        call.key(keys::profile(shard, &profile.tenant_id, &profile.key));
    }
    for (profile, _) in &write.erasures {
        call.key(keys::erased(shard, &profile.tenant_id, &profile.key));
    }
    call.arg(write.epoch)
        .arg(lease_prefix(&write.node_id, write.epoch))
        .arg(PROFILE_CONSUMER)
        .arg(write.profiles.len())
        .arg(write.erasures.len())
        .arg(if write.checkpoint.is_some() { "1" } else { "0" })
        .arg(write.checkpoint.as_deref().unwrap_or(""))
        .arg(write.timers_set.len())
        .arg(write.timers_clear.len())
        .arg(write.signals.len())
        .arg(millis(write.signal_retention));
    for (_, profile) in &write.profiles {
        match profile {
            Some(bytes) => call.arg("s").arg(bytes.as_slice()),
            None => call.arg("d").arg(""),
        };
    }
    for timer in &write.timers_set {
        call.arg(timer.due_ms).arg(&timer.member);
    }
    for member in &write.timers_clear {
        call.arg(member);
    }
    for signal in &write.signals {
        call.arg(signal.as_slice());
    }
    for (_, at_ms) in &write.erasures {
        call.arg(*at_ms);
    }
    call
}

#[async_trait::async_trait]
impl ShardState for RedisStore {
    async fn write(&self, write: &ShardWrite) -> Result<WriteOutcome, StoreError> {
        let reply: Vec<String> = write_invocation(write)
            .invoke_async(&mut self.conn())
            .await
            .map_err(map_err)?;
        match reply.split_first() {
            Some((outcome, cursors)) if outcome == "ok" => Ok(WriteOutcome::Written {
                signal_cursors: cursors.to_vec(),
            }),
            Some((outcome, [epoch])) if outcome == "fenced" => Ok(WriteOutcome::Fenced {
                current_epoch: epoch.parse().map_err(|_| reply_error("write", &reply))?,
            }),
            _ => Err(reply_error("write", &reply)),
        }
    }

    async fn load(
        &self,
        shard: u32,
        keys: &[ProfileKey],
    ) -> Result<Vec<Option<Vec<u8>>>, StoreError> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        // MGET is fine here: every key of one shard is in the same hash slot.
        let mut cmd = redis::cmd("MGET");
        for key in keys {
            cmd.arg(keys::profile(shard, &key.tenant_id, &key.key));
        }
        cmd.query_async(&mut self.conn()).await.map_err(map_err)
    }

    async fn checkpoint(&self, shard: u32) -> Result<Option<String>, StoreError> {
        redis::cmd("GET")
            .arg(keys::checkpoint(shard))
            .query_async(&mut self.conn())
            .await
            .map_err(map_err)
    }

    async fn due_timers(
        &self,
        shard: u32,
        now_ms: i64,
        limit: usize,
    ) -> Result<Vec<Timer>, StoreError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let flat: Vec<String> = redis::cmd("ZRANGE")
            .arg(keys::timers(shard))
            .arg("-inf")
            .arg(now_ms)
            .arg("BYSCORE")
            .arg("LIMIT")
            .arg(0)
            .arg(limit)
            .arg("WITHSCORES")
            .query_async(&mut self.conn())
            .await
            .map_err(map_err)?;
        flat.chunks_exact(2)
            .map(|pair| {
                // Scores are whole milliseconds, exact in a double up to 2^53.
                let due: f64 = pair[1].parse().map_err(|_| {
                    StoreError::Backend(format!("malformed timer score {:?}", pair[1]))
                })?;
                #[expect(
                    clippy::cast_possible_truncation,
                    reason = "scores were written from i64 milliseconds"
                )]
                let due_ms = due as i64;
                Ok(Timer {
                    member: pair[0].clone(),
                    due_ms,
                })
            })
            .collect()
    }

    async fn erased_at(&self, shard: u32, key: &ProfileKey) -> Result<Option<i64>, StoreError> {
        redis::cmd("GET")
            .arg(keys::erased(shard, &key.tenant_id, &key.key))
            .query_async(&mut self.conn())
            .await
            .map_err(map_err)
    }

    async fn read_signals(
        &self,
        shard: u32,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<LogEntry>, StoreError> {
        self.range_after(keys::signals(shard), keys::SIGNAL_FIELD, after, limit)
            .await
    }

    async fn oldest_signal(&self, shard: u32) -> Result<Option<String>, StoreError> {
        let reply: StreamRangeReply = redis::cmd("XRANGE")
            .arg(keys::signals(shard))
            .arg("-")
            .arg("+")
            .arg("COUNT")
            .arg(1)
            .query_async(&mut self.conn())
            .await
            .map_err(map_err)?;
        Ok(reply.ids.into_iter().next().map(|entry| entry.id))
    }
}
