//! Activation and dispatch of log entries to customer actors.

use std::{sync::atomic::Ordering, time::Duration};

use iee_api::{pb::common::LogRecord, shard::shard_of};
use iee_store::{LogEntry, ProfileKey};
use prost::Message;
use ractor::{Actor, ActorProcessingErr, ActorRef};

use super::actor::{Resident, ShardMsg, ShardState, route_key};
use crate::{
    customer::{CustomerActor, CustomerArgs, CustomerMsg},
    fold::offsets,
};

impl ShardState {
    pub(super) fn dispatched_at_least(&self, min: &str) -> bool {
        self.dispatched
            .as_deref()
            .is_some_and(|d| !offsets::is_after(min, d))
    }

    pub(super) fn touch(&mut self, key: &ProfileKey) {
        let now = self.ctx.node.mono_ms();
        let seq = self.next_seq;
        self.next_seq += 1;
        if let Some(resident) = self.resident.get_mut(key) {
            self.recency.remove(&resident.seq);
            resident.seq = seq;
            resident.last_active_ms = now;
            self.recency.insert(seq, key.clone());
        }
    }

    /// The resident actor of `key`, activated if needed (its state loads in the actor itself).
    pub(super) async fn activate(
        &mut self,
        myself: &ActorRef<ShardMsg>,
        key: &ProfileKey,
    ) -> Result<ActorRef<CustomerMsg>, ActorProcessingErr> {
        if let Some(resident) = self.resident.get(key) {
            let actor = resident.actor.clone();
            self.touch(key);
            return Ok(actor);
        }
        let initial = self.pending.get(key).and_then(|s| s.state.clone());
        let (actor, _) = Actor::spawn_linked(
            None,
            CustomerActor,
            CustomerArgs {
                ctx: self.ctx.clone(),
                key: key.clone(),
                initial,
            },
            myself.get_cell(),
        )
        .await?;
        let seq = self.next_seq;
        self.next_seq += 1;
        self.resident.insert(
            key.clone(),
            Resident {
                actor: actor.clone(),
                seq,
                last_active_ms: self.ctx.node.mono_ms(),
            },
        );
        self.recency.insert(seq, key.clone());
        self.ctx.node.resident.fetch_add(1, Ordering::Relaxed);
        self.ctx.node.metrics.activations.inc();
        Ok(actor)
    }

    pub(super) fn mark_dirty(&mut self, myself: &ActorRef<ShardMsg>, key: &ProfileKey) {
        if !self.dirty.contains(key) {
            self.dirty.insert(key.clone());
        }
        self.schedule_flush(myself);
    }

    pub(super) fn schedule_flush(&mut self, myself: &ActorRef<ShardMsg>) {
        if !self.flush_scheduled {
            self.flush_scheduled = true;
            let delay = Duration::from_millis(self.ctx.node.config.flush_interval_ms);
            myself.send_after(delay, || ShardMsg::FlushSoon);
        }
    }

    pub(super) async fn dispatch(
        &mut self,
        myself: &ActorRef<ShardMsg>,
        entries: Vec<LogEntry>,
    ) -> Result<(), ActorProcessingErr> {
        let shard = self.ctx.shard;
        for entry in entries {
            let offset = entry.offset;
            let record = match LogRecord::decode(entry.payload.as_slice()) {
                Ok(record) => record,
                Err(err) => {
                    tracing::error!(shard, offset, error = %err, "undecodable log entry skipped");
                    self.ctx.node.metrics.skipped("undecodable");
                    self.dispatched = Some(offset);
                    continue;
                }
            };
            if record.exposure.is_some() {
                // A decision, appended for measurement: nothing for the profile to fold.
                self.dispatched = Some(offset);
                continue;
            }
            let key = match route_key(&record) {
                Some(key)
                    if shard_of(&key.tenant_id, &key.key, self.ctx.node.shard_count) == shard =>
                {
                    key
                }
                _ => {
                    tracing::error!(shard, offset, "log entry of another shard skipped");
                    self.ctx.node.metrics.skipped("misrouted");
                    self.dispatched = Some(offset);
                    continue;
                }
            };
            let actor = self.activate(myself, &key).await?;
            let _ = actor.cast(CustomerMsg::Apply {
                record: Box::new(record),
                offset: offset.clone(),
            });
            self.mark_dirty(myself, &key);
            self.dispatched = Some(offset);
        }
        let waiting = std::mem::take(&mut self.waiting);
        for (min, key, reply) in waiting {
            if self.dispatched_at_least(&min) {
                let actor = self.activate(myself, &key).await?;
                let _ = actor.cast(CustomerMsg::Get { reply });
            } else {
                self.waiting.push((min, key, reply));
            }
        }
        self.waiting.retain(|(_, _, reply)| !reply.is_closed());
        Ok(())
    }

    /// The `n` least recently used resident customers.
    pub(super) fn oldest(&self, n: usize) -> Vec<ProfileKey> {
        self.recency.values().take(n).cloned().collect()
    }
}
