//! Periodic work of a shard (idle passivation, compaction, durable timers, trimming) and
//! how a shard stops.

use std::{
    sync::atomic::Ordering,
    time::{Duration, Instant, SystemTime},
};

use iee_store::ProfileKey;
use ractor::{ActorProcessingErr, ActorRef};

use super::actor::{ShardMsg, ShardState, parse_timer_member};
use crate::{
    ctx::SignalFeed,
    customer::{CustomerMsg, unix_ms},
};

impl ShardState {
    pub(super) async fn housekeeping(
        &mut self,
        myself: &ActorRef<ShardMsg>,
    ) -> Result<(), ActorProcessingErr> {
        let config = &self.ctx.node.config;
        // Idle passivation: the recency order yields the idle actors first, so one periodic
        // tick per shard finds them without a timer per actor.
        let idle_ms = config.passivate_after_secs.saturating_mul(1000);
        let now = self.ctx.node.mono_ms();
        let idle: Vec<ProfileKey> = self
            .recency
            .values()
            .take_while(|key| {
                self.resident
                    .get(*key)
                    .is_some_and(|r| now.saturating_sub(r.last_active_ms) >= idle_ms)
            })
            .cloned()
            .collect();
        // Compaction of actors idle for a while: only those that became idle since the last
        // tick are visited.
        let compact_ms = config.compact_after_secs.saturating_mul(1000);
        let mut compacted_below = self.compacted_below;
        for (seq, key) in self.recency.range(self.compacted_below..) {
            let Some(resident) = self.resident.get(key) else {
                continue;
            };
            if now.saturating_sub(resident.last_active_ms) < compact_ms {
                break;
            }
            let _ = resident.actor.cast(CustomerMsg::Compact);
            compacted_below = seq + 1;
        }
        self.compacted_below = compacted_below;
        // Durable timers due now.
        let due = self
            .ctx
            .node
            .stores
            .shard_state
            .due_timers(self.ctx.shard, unix_ms(SystemTime::now()), 256)
            .await;
        match due {
            Ok(timers) => {
                for timer in timers {
                    if self.timers_in_flight.contains(&timer.member) {
                        continue;
                    }
                    let Some((kind, key)) = parse_timer_member(&timer.member) else {
                        tracing::warn!(
                            shard = self.ctx.shard,
                            member = timer.member,
                            "malformed timer ignored"
                        );
                        continue;
                    };
                    let actor = self.activate(myself, &key).await?;
                    let _ = actor.cast(CustomerMsg::Fire {
                        kind,
                        due_ms: timer.due_ms,
                    });
                    self.mark_dirty(myself, &key);
                    self.timers_in_flight.insert(timer.member);
                    self.ctx.node.metrics.timers_fired.inc();
                }
            }
            Err(err) => {
                tracing::warn!(shard = self.ctx.shard, error = %err, "reading due timers failed");
            }
        }
        if (!idle.is_empty() || !self.dirty.is_empty())
            && let Err(err) = self.flush(myself, idle).await
        {
            tracing::warn!(shard = self.ctx.shard, error = %err, "housekeeping flush failed");
        }
        let trim_every = Duration::from_secs(self.ctx.node.config.trim_interval_secs);
        if self.last_trim.elapsed() >= trim_every && !self.ctx.node.config.log_consumers.is_empty()
        {
            self.last_trim = Instant::now();
            let consumers: Vec<&str> = self
                .ctx
                .node
                .config
                .log_consumers
                .iter()
                .map(String::as_str)
                .collect();
            match self
                .ctx
                .node
                .stores
                .consumer
                .trim(self.ctx.shard, &consumers)
                .await
            {
                Ok(n) => {
                    self.ctx.node.metrics.trimmed.inc_by(n);
                }
                Err(err) => tracing::warn!(shard = self.ctx.shard, error = %err, "log trim failed"),
            }
        }
        Ok(())
    }

    /// The shard is lost (fenced, or its lease ran out): stop serving at once, keep nothing.
    pub(super) fn lose(&mut self, myself: &ActorRef<ShardMsg>, why: &str) {
        tracing::warn!(
            shard = self.ctx.shard,
            epoch = self.ctx.epoch,
            why,
            "shard lost"
        );
        self.ctx.node.metrics.shards_lost.inc();
        self.pending.clear();
        self.shut(myself);
    }

    /// Stops every customer actor and the shard actor.
    pub(super) fn shut(&mut self, myself: &ActorRef<ShardMsg>) {
        self.ctx.live.store(false, Ordering::Release);
        let count = self.resident.len();
        for (_, resident) in self.resident.drain() {
            resident.actor.stop(None);
        }
        self.recency.clear();
        self.ctx.node.resident.fetch_sub(count, Ordering::Relaxed);
        let _ = self
            .ctx
            .node
            .signals
            .send(SignalFeed::ShardLost(self.ctx.shard));
        myself.stop(None);
    }
}
