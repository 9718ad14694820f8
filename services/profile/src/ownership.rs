//! Shard ownership: heartbeats, rendezvous assignment over live members, lease acquisition,
//! renewal and hand-off, and the node-wide log reader that feeds the owned shards.

use std::{
    collections::{HashMap, HashSet},
    sync::{
        Arc, Mutex, RwLock,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use iee_store::{Acquire, Lease, Member};
use ractor::{Actor, ActorRef};
use tokio::sync::oneshot;
use xxhash_rust::xxh3::xxh3_64;

use crate::{
    ctx::{NodeCtx, ShardCtx},
    shard::{ShardActor, ShardArgs, ShardMsg},
};

/// One shard this node serves.
pub(crate) struct ShardHandle {
    pub(crate) ctx: Arc<ShardCtx>,
    pub(crate) actor: ActorRef<ShardMsg>,
    /// The log offset read up to (the reader's position).
    pub(crate) position: Mutex<Option<String>>,
    /// Set once a read found no more entries than one batch: the shard has caught up.
    pub(crate) caught_up: AtomicBool,
}

impl ShardHandle {
    fn lease(&self) -> Lease {
        Lease {
            shard: self.ctx.shard,
            epoch: self.ctx.epoch,
        }
    }
}

/// The shards this node serves.
pub(crate) type ShardTable = Arc<RwLock<HashMap<u32, Arc<ShardHandle>>>>;

pub(crate) fn read_table(
    table: &ShardTable,
) -> std::sync::RwLockReadGuard<'_, HashMap<u32, Arc<ShardHandle>>> {
    table
        .read()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn write_table(
    table: &ShardTable,
) -> std::sync::RwLockWriteGuard<'_, HashMap<u32, Arc<ShardHandle>>> {
    table
        .write()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The member that should own `shard`: highest rendezvous score wins, so adding or removing a
/// member moves only the shards it gains or loses.
pub(crate) fn rendezvous(shard: u32, members: &[Member]) -> Option<&Member> {
    members.iter().max_by_key(|m| {
        let mut bytes = Vec::with_capacity(m.node_id.len() + 4);
        bytes.extend_from_slice(m.node_id.as_bytes());
        bytes.extend_from_slice(&shard.to_le_bytes());
        (xxh3_64(&bytes), m.node_id.as_str())
    })
}

/// Runs membership and shard ownership for one node.
pub(crate) struct Ownership {
    pub(crate) ctx: Arc<NodeCtx>,
    pub(crate) table: ShardTable,
    pub(crate) address: String,
    pub(crate) ready: Arc<AtomicBool>,
    last_renew: Instant,
    /// Reading the members failed last time: logged once per outage, not every tick.
    members_failing: bool,
}

impl Ownership {
    pub(crate) fn new(
        ctx: Arc<NodeCtx>,
        table: ShardTable,
        address: String,
        ready: Arc<AtomicBool>,
    ) -> Self {
        Self {
            ctx,
            table,
            address,
            ready,
            last_renew: Instant::now(),
            members_failing: false,
        }
    }

    fn lease_ttl(&self) -> Duration {
        Duration::from_millis(self.ctx.config.lease_ttl_ms)
    }

    /// The serving deadline of a lease granted or renewed by a request sent at `sent_ms`.
    fn deadline_for(&self, sent_ms: u64) -> u64 {
        sent_ms + self.ctx.config.lease_ttl_ms - self.ctx.config.lease_safety_margin_ms
    }

    /// Runs until `stop` fires.
    pub(crate) async fn run(mut self, stop: iee_runtime::Shutdown) {
        let mut interval =
            tokio::time::interval(Duration::from_millis(self.ctx.config.rebalance_interval_ms));
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = stop.wait() => break,
                _ = interval.tick() => self.tick().await,
            }
        }
    }

    async fn tick(&mut self) {
        let ctx = self.ctx.clone();
        let member_ttl = Duration::from_millis(ctx.config.member_ttl_ms);
        if let Err(err) = ctx
            .stores
            .membership
            .heartbeat(&ctx.node_id, &self.address, member_ttl)
            .await
        {
            tracing::warn!(error = %err, "membership heartbeat failed");
        }
        if self.last_renew.elapsed() >= Duration::from_millis(ctx.config.renew_interval_ms) {
            self.renew().await;
        }
        self.reap().await;
        let members = match ctx.stores.membership.members().await {
            Ok(members) => {
                if std::mem::take(&mut self.members_failing) {
                    tracing::info!("reading members works again");
                }
                members
            }
            Err(err) => {
                if !std::mem::replace(&mut self.members_failing, true) {
                    tracing::warn!(error = %err, "reading members failed; shards stay as they are until it works");
                }
                self.ready.store(false, Ordering::Release);
                return;
            }
        };
        let in_members = members.iter().any(|m| m.node_id == ctx.node_id);
        let desired: HashSet<u32> = if in_members {
            (0..ctx.shard_count)
                .filter(|s| rendezvous(*s, &members).is_some_and(|m| m.node_id == ctx.node_id))
                .collect()
        } else {
            HashSet::new()
        };
        let held: Vec<u32> = read_table(&self.table).keys().copied().collect();
        for shard in held.iter().filter(|s| !desired.contains(s)) {
            self.hand_off(*shard).await;
        }
        let mut all_owned = in_members;
        for shard in &desired {
            if read_table(&self.table).contains_key(shard) {
                continue;
            }
            if !self.acquire(*shard).await {
                all_owned = false;
            }
        }
        let table = read_table(&self.table);
        let caught_up = table.values().all(|h| h.caught_up.load(Ordering::Acquire));
        ctx.metrics
            .shards_owned
            .set(i64::try_from(table.len()).unwrap_or(i64::MAX));
        ctx.metrics
            .resident_actors
            .set(i64::try_from(ctx.resident.load(Ordering::Relaxed)).unwrap_or(i64::MAX));
        self.ready.store(all_owned && caught_up, Ordering::Release);
    }

    async fn renew(&mut self) {
        self.last_renew = Instant::now();
        let handles: Vec<Arc<ShardHandle>> = read_table(&self.table).values().cloned().collect();
        if handles.is_empty() {
            return;
        }
        let leases: Vec<Lease> = handles.iter().map(|h| h.lease()).collect();
        let sent = self.ctx.mono_ms();
        match self
            .ctx
            .stores
            .leases
            .renew(&leases, &self.ctx.node_id, self.lease_ttl())
            .await
        {
            Ok(held) => {
                for (handle, still) in handles.iter().zip(held) {
                    if still {
                        handle
                            .ctx
                            .deadline_ms
                            .store(self.deadline_for(sent), Ordering::Release);
                    } else {
                        tracing::warn!(shard = handle.ctx.shard, "lease lost");
                        handle.ctx.live.store(false, Ordering::Release);
                    }
                }
            }
            Err(err) => {
                // Keep serving until the local deadline; `reap` drops what passes it.
                tracing::warn!(error = %err, "lease renewal failed");
            }
        }
    }

    /// Drops shards that are no longer served: lost, fenced, failed, or past their deadline.
    async fn reap(&mut self) {
        let gone: Vec<Arc<ShardHandle>> = {
            let mut table = write_table(&self.table);
            let gone: Vec<u32> = table
                .iter()
                .filter(|(_, h)| !h.ctx.serving())
                .map(|(s, _)| *s)
                .collect();
            gone.iter().filter_map(|s| table.remove(s)).collect()
        };
        for handle in gone {
            handle.ctx.live.store(false, Ordering::Release);
            // Stop the actors without writing: whatever they hold is replayed by the next owner.
            handle.actor.stop(None);
            self.ctx.metrics.shards_lost.inc();
            let _ = self
                .ctx
                .signals
                .send(crate::ctx::SignalFeed::ShardLost(handle.ctx.shard));
            // Give the lease back if it is still ours (a failed shard), so it can be taken
            // again at once with a new epoch. Refused harmlessly when it is not.
            let _ = self
                .ctx
                .stores
                .leases
                .release(handle.lease(), &self.ctx.node_id)
                .await;
        }
    }

    async fn acquire(&mut self, shard: u32) -> bool {
        let sent = self.ctx.mono_ms();
        let acquired = self
            .ctx
            .stores
            .leases
            .acquire(shard, &self.ctx.node_id, &self.address, self.lease_ttl())
            .await;
        let lease = match acquired {
            Ok(Acquire::Acquired(lease)) => lease,
            Ok(Acquire::Held(_)) => return false,
            Err(err) => {
                tracing::warn!(shard, error = %err, "lease acquisition failed");
                return false;
            }
        };
        let checkpoint = match self.ctx.stores.shard_state.checkpoint(shard).await {
            Ok(checkpoint) => checkpoint,
            Err(err) => {
                tracing::warn!(shard, error = %err, "reading the checkpoint failed; giving the lease back");
                let _ = self
                    .ctx
                    .stores
                    .leases
                    .release(lease, &self.ctx.node_id)
                    .await;
                return false;
            }
        };
        let shard_ctx = Arc::new(ShardCtx {
            node: self.ctx.clone(),
            shard,
            epoch: lease.epoch,
            deadline_ms: AtomicU64::new(self.deadline_for(sent)),
            live: AtomicBool::new(true),
        });
        let spawned = Actor::spawn(
            None,
            ShardActor,
            ShardArgs {
                ctx: shard_ctx.clone(),
                checkpoint: checkpoint.clone(),
            },
        )
        .await;
        let actor = match spawned {
            Ok((actor, _)) => actor,
            Err(err) => {
                tracing::error!(shard, error = %err, "shard actor failed to start");
                let _ = self
                    .ctx
                    .stores
                    .leases
                    .release(lease, &self.ctx.node_id)
                    .await;
                return false;
            }
        };
        tracing::info!(shard, epoch = lease.epoch, checkpoint = ?checkpoint, "shard acquired");
        self.ctx.metrics.shards_acquired.inc();
        write_table(&self.table).insert(
            shard,
            Arc::new(ShardHandle {
                ctx: shard_ctx,
                actor,
                position: Mutex::new(checkpoint),
                caught_up: AtomicBool::new(false),
            }),
        );
        true
    }

    /// Hands a shard off gracefully: stop serving, write everything, give the lease back.
    pub(crate) async fn hand_off(&self, shard: u32) {
        let Some(handle) = write_table(&self.table).remove(&shard) else {
            return;
        };
        hand_off_handle(&self.ctx, handle).await;
    }
}

/// Writes a shard's state and releases its lease.
pub(crate) async fn hand_off_handle(ctx: &NodeCtx, handle: Arc<ShardHandle>) {
    let (tx, rx) = oneshot::channel();
    if handle.actor.cast(ShardMsg::Stop { reply: tx }).is_ok() {
        let _ = tokio::time::timeout(Duration::from_secs(10), rx).await;
    }
    handle.ctx.live.store(false, Ordering::Release);
    if let Err(err) = ctx
        .stores
        .leases
        .release(handle.lease(), &ctx.node_id)
        .await
    {
        tracing::warn!(shard = handle.ctx.shard, error = %err, "lease release failed; it expires by itself");
    }
    ctx.metrics.shards_handed_off.inc();
    tracing::info!(shard = handle.ctx.shard, "shard handed off");
}

/// Reads the logs of every served shard and hands the entries to their shard actors in order.
pub(crate) async fn read_logs(ctx: Arc<NodeCtx>, table: ShardTable, stop: iee_runtime::Shutdown) {
    let block = Duration::from_millis(ctx.config.read_block_ms);
    let batch = ctx.config.read_batch;
    loop {
        if stop.is_triggered() {
            break;
        }
        let handles: Vec<Arc<ShardHandle>> = read_table(&table)
            .values()
            .filter(|h| h.ctx.serving())
            .cloned()
            .collect();
        if handles.is_empty() {
            tokio::select! {
                () = stop.wait() => break,
                () = tokio::time::sleep(block) => continue,
            }
        }
        let from: Vec<(u32, Option<String>)> = handles
            .iter()
            .map(|h| {
                let position = h
                    .position
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .clone();
                (h.ctx.shard, position)
            })
            .collect();
        let read = tokio::select! {
            () = stop.wait() => break,
            read = ctx.stores.consumer.read_many(&from, batch, block) => read,
        };
        let results = match read {
            Ok(results) => results,
            Err(err) => {
                tracing::warn!(error = %err, "log read failed; retrying");
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
        };
        let mut with_entries = HashSet::new();
        for (shard, entries) in results {
            with_entries.insert(shard);
            let Some(handle) = handles.iter().find(|h| h.ctx.shard == shard) else {
                continue;
            };
            let Some(last) = entries.last().map(|e| e.offset.clone()) else {
                continue;
            };
            let full = entries.len() >= batch;
            let (tx, rx) = oneshot::channel();
            if !handle.ctx.serving()
                || handle
                    .actor
                    .cast(ShardMsg::Entries { entries, reply: tx })
                    .is_err()
            {
                continue;
            }
            if rx.await.is_ok() {
                *handle
                    .position
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(last);
                if !full {
                    handle.caught_up.store(true, Ordering::Release);
                }
            }
        }
        for handle in &handles {
            if !with_entries.contains(&handle.ctx.shard) {
                handle.caught_up.store(true, Ordering::Release);
            }
        }
    }
}
