//! Write-behind: collecting the dirty actors' changes and the fenced batch write.

use std::{
    collections::HashSet,
    sync::{Arc, atomic::Ordering},
    time::{Duration, Instant},
};

use iee_api::profile::ProfileError;
use iee_store::{ProfileKey, ShardWrite, Timer, WriteOutcome};
use prost::Message;
use ractor::ActorRef;
use tokio::sync::oneshot;

use super::actor::{ShardMsg, ShardState, now_timestamp, timer_member};
use crate::{
    ctx::SignalFeed,
    customer::{CustomerMsg, StoredState},
};

impl ShardState {
    /// Collects the changes of every dirty actor (and the final state of those to passivate)
    /// and writes them with the checkpoint in one fenced write.
    pub(super) async fn flush(
        &mut self,
        myself: &ActorRef<ShardMsg>,
        passivate: Vec<ProfileKey>,
    ) -> Result<(), ProfileError> {
        let started = Instant::now();
        let passivating: HashSet<ProfileKey> = passivate.into_iter().collect();
        let mut asked = Vec::new();
        let keys: Vec<ProfileKey> = self
            .dirty
            .drain()
            .chain(passivating.iter().cloned())
            .collect::<HashSet<_>>()
            .into_iter()
            .collect();
        for key in keys {
            if let Some(resident) = self.resident.get(&key) {
                let (tx, rx) = oneshot::channel();
                let passivate = passivating.contains(&key);
                if resident
                    .actor
                    .cast(CustomerMsg::Snapshot {
                        passivate,
                        reply: tx,
                    })
                    .is_ok()
                {
                    asked.push((key, rx));
                }
            }
        }
        for (key, rx) in asked {
            match rx.await {
                Ok(Some(snapshot)) => match self.pending.get_mut(&key) {
                    Some(existing) => existing.absorb(snapshot),
                    None => {
                        self.pending.insert(key, snapshot);
                    }
                },
                Ok(None) => {}
                Err(_) => {
                    // The actor failed; the supervision event drops the shard.
                    return Err(ProfileError::Unavailable("customer actor failed".into()));
                }
            }
        }
        for key in &passivating {
            if let Some(resident) = self.resident.remove(key) {
                self.recency.remove(&resident.seq);
                self.ctx.node.resident.fetch_sub(1, Ordering::Relaxed);
                self.ctx.node.metrics.passivations.inc();
            }
        }
        if self.pending.is_empty() && self.checkpoint == self.dispatched {
            return Ok(());
        }
        self.write(myself, started).await
    }

    pub(super) async fn write(
        &mut self,
        myself: &ActorRef<ShardMsg>,
        started: Instant,
    ) -> Result<(), ProfileError> {
        let shard = self.ctx.shard;
        if !self.ctx.serving() {
            self.lose(myself, "lease deadline passed");
            return Err(ProfileError::NoOwner { shard });
        }
        let config = &self.ctx.node.config;
        let mut write = ShardWrite {
            shard,
            epoch: self.ctx.epoch,
            node_id: self.ctx.node.node_id.clone(),
            signal_retention: Duration::from_secs(config.signal_retention_secs),
            ..ShardWrite::default()
        };
        if self.checkpoint != self.dispatched {
            write.checkpoint.clone_from(&self.dispatched);
        }
        let mut signals = Vec::new();
        for (key, snapshot) in &self.pending {
            match &snapshot.state {
                Some(StoredState::Put(bytes)) => {
                    write.profiles.push((key.clone(), Some(bytes.clone())));
                }
                Some(StoredState::Erased(at)) => {
                    write.profiles.push((key.clone(), None));
                    write.erasures.push((key.clone(), *at));
                }
                None => {}
            }
            for (kind, due) in &snapshot.timers {
                let member = timer_member(*kind, key);
                match due {
                    Some(due_ms) => write.timers_set.push(Timer {
                        member,
                        due_ms: *due_ms,
                    }),
                    None => write.timers_clear.push(member),
                }
            }
            for signal in &snapshot.signals {
                let mut signal = signal.clone();
                signal.shard = shard;
                signal.emitted_at = Some(now_timestamp());
                signals.push(signal);
            }
        }
        write.signals = signals.iter().map(Message::encode_to_vec).collect();
        let outcome = self.ctx.node.stores.shard_state.write(&write).await;
        let metrics = &self.ctx.node.metrics;
        match outcome {
            Ok(WriteOutcome::Written { signal_cursors }) => {
                metrics.flushes.inc();
                metrics.flushed_profiles.inc_by(write.profiles.len() as u64);
                metrics
                    .flush_seconds
                    .observe(started.elapsed().as_secs_f64());
                for (mut signal, cursor) in signals.into_iter().zip(signal_cursors) {
                    signal.cursor = cursor;
                    metrics.signal(signal.kind());
                    let _ = self
                        .ctx
                        .node
                        .signals
                        .send(SignalFeed::Signal(Arc::new(signal)));
                }
                self.pending.clear();
                self.timers_in_flight.clear();
                self.checkpoint.clone_from(&self.dispatched);
                Ok(())
            }
            Ok(WriteOutcome::Fenced { current_epoch }) => {
                tracing::warn!(
                    shard,
                    epoch = self.ctx.epoch,
                    current_epoch,
                    "write refused by fencing: another node owns the shard"
                );
                metrics.fenced_writes.inc();
                self.lose(myself, "fenced");
                Err(ProfileError::NoOwner { shard })
            }
            Err(err) => {
                metrics.flush_errors.inc();
                Err(ProfileError::Unavailable(format!(
                    "profile store unavailable: {err}"
                )))
            }
        }
    }
}
