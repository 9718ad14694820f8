//! The shard actor: supervises the customer actors of one owned shard, dispatches the shard's
//! log to them in order, writes their changes behind in fenced batches together with the log
//! checkpoint, passivates idle and least recently used actors, and fires durable timers.

use std::{
    collections::{BTreeMap, HashMap, HashSet},
    sync::{Arc, atomic::Ordering},
    time::{Duration, Instant, SystemTime},
};

use iee_api::{
    pb::{
        common::{CustomerRef, Event, LogRecord},
        profile::{
            CommitContactRequest, ContactRecord, EraseCustomerResponse, Profile, ReservationState,
            ReserveContactRequest, ReserveContactResponse,
        },
    },
    profile::ProfileError,
    shard::{customer_key, shard_of},
};
use iee_store::{AppendRequest, LogEntry, ProfileKey, ShardWrite, Timer, WriteOutcome};
use prost::Message;
use ractor::{Actor, ActorProcessingErr, ActorRef, SupervisionEvent};
use tokio::sync::oneshot;

use crate::{
    ctx::{ShardCtx, SignalFeed},
    customer::{
        CustomerActor, CustomerArgs, CustomerMsg, Snapshot, StoredState, is_merge_out, unix_ms,
    },
    fold::{ContactError, TimerKind, offsets},
};

/// Reply channel of a customer-scoped request.
type Reply<T> = oneshot::Sender<Result<T, ProfileError>>;

/// What a shard actor is asked to do.
pub(crate) enum ShardMsg {
    /// Dispatch log entries (in log order); replies once they are dispatched.
    Entries {
        entries: Vec<LogEntry>,
        reply: oneshot::Sender<()>,
    },
    /// Read a profile once the log is dispatched up to `min_offset`.
    Get {
        key: ProfileKey,
        min_offset: Option<String>,
        reply: oneshot::Sender<(Profile, bool)>,
    },
    /// Reserve a contact.
    Reserve {
        key: ProfileKey,
        request: Box<ReserveContactRequest>,
        reply: oneshot::Sender<Result<ReserveContactResponse, ContactError>>,
    },
    /// Commit a reservation; replies after the contact is written.
    Commit {
        key: ProfileKey,
        request: Box<CommitContactRequest>,
        reply: Reply<ContactRecord>,
    },
    /// Release a reservation.
    Release {
        key: ProfileKey,
        reservation_id: String,
        reply: oneshot::Sender<ReservationState>,
    },
    /// Erase a customer; replies after the erasure is written.
    Erase {
        key: ProfileKey,
        reply: Reply<EraseCustomerResponse>,
    },
    /// Write dirty profiles (scheduled after the first change).
    FlushSoon,
    /// Periodic work: idle passivation, durable timers, log trimming.
    Housekeeping,
    /// Hand the shard off: write everything, stop every actor, stop.
    Stop { reply: oneshot::Sender<()> },
}

/// A read waiting for the log to be dispatched up to an offset.
type WaitingRead = (String, ProfileKey, oneshot::Sender<(Profile, bool)>);

/// A resident customer actor.
struct Resident {
    actor: ActorRef<CustomerMsg>,
    /// Position in the recency order.
    seq: u64,
    /// When it last got a message (`NodeCtx::mono_ms`).
    last_active_ms: u64,
}

pub(crate) struct ShardState {
    ctx: Arc<ShardCtx>,
    resident: HashMap<ProfileKey, Resident>,
    /// Recency order: oldest first.
    recency: BTreeMap<u64, ProfileKey>,
    next_seq: u64,
    dirty: HashSet<ProfileKey>,
    /// Snapshots taken but not yet written (a failed write keeps them for the next attempt).
    pending: HashMap<ProfileKey, Snapshot>,
    /// The last dispatched log offset and the last written checkpoint.
    dispatched: Option<String>,
    checkpoint: Option<String>,
    /// Reads waiting for the log to be dispatched up to an offset.
    waiting: Vec<WaitingRead>,
    /// Timer members fired but not yet written back.
    timers_in_flight: HashSet<String>,
    flush_scheduled: bool,
    /// Every resident actor with a recency position below this was told to compact (a touch
    /// gives an actor a new, higher position).
    compacted_below: u64,
    last_trim: Instant,
    next_reservation: u64,
}

/// How a shard actor starts.
pub(crate) struct ShardArgs {
    pub(crate) ctx: Arc<ShardCtx>,
    pub(crate) checkpoint: Option<String>,
}

/// The shard actor's behaviour.
pub(crate) struct ShardActor;

/// The profile an entry is applied to.
pub(crate) fn route_key(record: &LogRecord) -> Option<ProfileKey> {
    let event = record.event.as_ref()?;
    let key = if !record.merged_profile.is_empty() || record.forwarded_from_shard.is_some() {
        customer_key(&event.customer_id, "")
    } else if is_merge_out(record) {
        customer_key("", &event.anonymous_id)
    } else {
        customer_key(&event.customer_id, &event.anonymous_id)
    };
    Some(ProfileKey {
        tenant_id: event.tenant_id.clone(),
        key,
    })
}

/// The durable timer member of a customer's timer of one kind.
pub(crate) fn timer_member(kind: TimerKind, key: &ProfileKey) -> String {
    format!("{}|{}|{}", kind.as_str(), key.tenant_id, key.key)
}

fn parse_timer_member(member: &str) -> Option<(TimerKind, ProfileKey)> {
    let mut parts = member.splitn(3, '|');
    let kind = parts.next()?.parse().ok()?;
    let tenant_id = parts.next()?.to_owned();
    let key = parts.next()?.to_owned();
    Some((kind, ProfileKey { tenant_id, key }))
}

impl Actor for ShardActor {
    type Msg = ShardMsg;
    type State = ShardState;
    type Arguments = ShardArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<ShardMsg>,
        args: ShardArgs,
    ) -> Result<ShardState, ActorProcessingErr> {
        let poll = Duration::from_millis(args.ctx.node.config.timer_poll_ms);
        myself.send_interval(poll, || ShardMsg::Housekeeping);
        Ok(ShardState {
            ctx: args.ctx,
            resident: HashMap::new(),
            recency: BTreeMap::new(),
            next_seq: 0,
            dirty: HashSet::new(),
            pending: HashMap::new(),
            dispatched: args.checkpoint.clone(),
            checkpoint: args.checkpoint,
            waiting: Vec::new(),
            timers_in_flight: HashSet::new(),
            flush_scheduled: false,
            compacted_below: 0,
            last_trim: Instant::now(),
            next_reservation: 0,
        })
    }

    async fn handle(
        &self,
        myself: ActorRef<ShardMsg>,
        message: ShardMsg,
        state: &mut ShardState,
    ) -> Result<(), ActorProcessingErr> {
        if !state.ctx.live.load(Ordering::Acquire) {
            return Ok(());
        }
        match message {
            ShardMsg::Entries { entries, reply } => {
                state.dispatch(&myself, entries).await?;
                let _ = reply.send(());
                let cap = state.ctx.node.config.max_resident_actors;
                let resident = state.ctx.node.resident.load(Ordering::Relaxed);
                if resident > cap {
                    let victims = state.oldest(resident - cap);
                    if state.flush(&myself, victims).await.is_err() {
                        state.schedule_flush(&myself);
                    }
                } else if state.dirty.len() >= state.ctx.node.config.flush_max_profiles
                    && state.flush(&myself, Vec::new()).await.is_err()
                {
                    state.schedule_flush(&myself);
                }
            }
            ShardMsg::Get {
                key,
                min_offset,
                reply,
            } => match min_offset {
                Some(min) if !state.dispatched_at_least(&min) => {
                    state.waiting.push((min, key, reply));
                }
                _ => {
                    let actor = state.activate(&myself, &key).await?;
                    let _ = actor.cast(CustomerMsg::Get { reply });
                }
            },
            ShardMsg::Reserve {
                key,
                mut request,
                reply,
            } => {
                state.next_reservation += 1;
                let reservation_id = format!(
                    "r{}.{}.{}",
                    state.ctx.shard, state.ctx.epoch, state.next_reservation
                );
                request.customer.get_or_insert_with(CustomerRef::default);
                let actor = state.activate(&myself, &key).await?;
                state.mark_dirty(&myself, &key);
                let _ = actor.cast(CustomerMsg::Reserve {
                    request,
                    reservation_id,
                    reply,
                });
            }
            ShardMsg::Commit {
                key,
                request,
                reply,
            } => {
                let actor = state.activate(&myself, &key).await?;
                let (tx, rx) = oneshot::channel();
                let _ = actor.cast(CustomerMsg::Commit { request, reply: tx });
                state.mark_dirty(&myself, &key);
                let result = match rx.await {
                    Ok(Ok(record)) => match state.flush(&myself, Vec::new()).await {
                        Ok(()) => Ok(record),
                        Err(err) => Err(err),
                    },
                    Ok(Err(err)) => Err(err.into()),
                    Err(_) => Err(ProfileError::Unavailable("customer actor stopped".into())),
                };
                let _ = reply.send(result);
            }
            ShardMsg::Release {
                key,
                reservation_id,
                reply,
            } => {
                let actor = state.activate(&myself, &key).await?;
                state.mark_dirty(&myself, &key);
                let _ = actor.cast(CustomerMsg::Release {
                    reservation_id,
                    reply,
                });
            }
            ShardMsg::Erase { key, reply } => {
                let result = state.erase(&myself, key).await;
                let _ = reply.send(result);
            }
            ShardMsg::FlushSoon => {
                state.flush_scheduled = false;
                if let Err(err) = state.flush(&myself, Vec::new()).await {
                    tracing::warn!(shard = state.ctx.shard, error = %err, "flush failed; retrying");
                    state.schedule_flush(&myself);
                }
            }
            ShardMsg::Housekeeping => state.housekeeping(&myself).await?,
            ShardMsg::Stop { reply } => {
                let everyone: Vec<ProfileKey> = state.resident.keys().cloned().collect();
                if let Err(err) = state.flush(&myself, everyone).await {
                    tracing::warn!(shard = state.ctx.shard, error = %err, "final flush failed; the next owner replays from the checkpoint");
                }
                state.shut(&myself);
                let _ = reply.send(());
            }
        }
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        myself: ActorRef<ShardMsg>,
        event: SupervisionEvent,
        state: &mut ShardState,
    ) -> Result<(), ActorProcessingErr> {
        // A customer actor that stops after passivation is expected. One that fails (its state
        // could not be loaded, or applying an event panicked) leaves the shard's in-memory state
        // incomplete: drop the shard without writing, so it is taken again from its checkpoint
        // (everything after it is replayed; applied offsets keep replays exact).
        if let SupervisionEvent::ActorFailed(_, err) = event {
            tracing::error!(shard = state.ctx.shard, error = %err, "customer actor failed; restarting the shard from its checkpoint");
            state.ctx.node.metrics.actor_failures.inc();
            state.shut(&myself);
        }
        Ok(())
    }
}

/// What an erasure deleted, one line per kind of state, naming no id.
fn receipt(shard: u32, profile: &Profile, anonymous: usize) -> Vec<String> {
    let pending: usize = profile.contacts.iter().map(|c| c.pending.len()).sum();
    let contacts: u64 = profile.contacts.iter().map(|c| c.total).sum();
    let mut deleted = vec![
        format!("profile (shard {shard}, version {})", profile.version),
        "durable timers: cart, inactive".to_owned(),
        format!("contact history: {contacts} contacts, {pending} pending reservations"),
    ];
    if anonymous > 0 {
        deleted.push(format!(
            "anonymous profiles: {anonymous} (erased on their own shards through the log)"
        ));
        deleted.push(format!("identity links: {anonymous}"));
        deleted.push(format!(
            "dedup markers of identify and merge records: {}",
            2 * anonymous
        ));
    }
    deleted
}

impl From<ContactError> for ProfileError {
    fn from(err: ContactError) -> Self {
        match err {
            ContactError::Invalid { field, reason } => Self::InvalidArgument { field, reason },
            ContactError::NotFound(message) => Self::NotFound(message),
        }
    }
}

fn now_timestamp() -> prost_types::Timestamp {
    prost_types::Timestamp::from(SystemTime::now())
}

impl ShardState {
    fn dispatched_at_least(&self, min: &str) -> bool {
        self.dispatched
            .as_deref()
            .is_some_and(|d| !offsets::is_after(min, d))
    }

    fn touch(&mut self, key: &ProfileKey) {
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
    async fn activate(
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

    fn mark_dirty(&mut self, myself: &ActorRef<ShardMsg>, key: &ProfileKey) {
        if !self.dirty.contains(key) {
            self.dirty.insert(key.clone());
        }
        self.schedule_flush(myself);
    }

    fn schedule_flush(&mut self, myself: &ActorRef<ShardMsg>) {
        if !self.flush_scheduled {
            self.flush_scheduled = true;
            let delay = Duration::from_millis(self.ctx.node.config.flush_interval_ms);
            myself.send_after(delay, || ShardMsg::FlushSoon);
        }
    }

    async fn dispatch(
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
    fn oldest(&self, n: usize) -> Vec<ProfileKey> {
        self.recency.values().take(n).cloned().collect()
    }

    /// Collects the changes of every dirty actor (and the final state of those to passivate)
    /// and writes them with the checkpoint in one fenced write.
    async fn flush(
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

    async fn write(
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

    async fn erase(
        &mut self,
        myself: &ActorRef<ShardMsg>,
        key: ProfileKey,
    ) -> Result<EraseCustomerResponse, ProfileError> {
        let actor = self
            .activate(myself, &key)
            .await
            .map_err(|e| ProfileError::Unavailable(e.to_string()))?;
        let (tx, rx) = oneshot::channel();
        let _ = actor.cast(CustomerMsg::Erase { reply: tx });
        let (before, erased_at) = rx
            .await
            .map_err(|_| ProfileError::Unavailable("customer actor stopped".into()))?;
        self.mark_dirty(myself, &key);
        self.flush(myself, Vec::new()).await?;
        let anonymous: Vec<(String, String)> = before
            .as_ref()
            .and_then(|p| p.identity.as_ref())
            .map(|i| {
                i.anonymous_links
                    .iter()
                    .map(|l| (l.anonymous_id.clone(), l.event_id.clone()))
                    .collect()
            })
            .unwrap_or_default();
        let links: Vec<String> = anonymous.iter().map(|(a, _)| a.clone()).collect();
        let requests: Vec<AppendRequest> = links
            .iter()
            .map(|anonymous_id| {
                // The record's id (and so its dedup marker) must not name the erased id.
                let erase_id = format!(
                    "erase:{:016x}:{erased_at}",
                    xxhash_rust::xxh3::xxh3_64(anonymous_id.as_bytes())
                );
                let record = LogRecord {
                    event: Some(Event {
                        event_id: erase_id.clone(),
                        tenant_id: key.tenant_id.clone(),
                        anonymous_id: anonymous_id.clone(),
                        r#type: crate::customer::ERASE_EVENT_TYPE.to_owned(),
                        ..Event::default()
                    }),
                    received_at: Some(now_timestamp()),
                    erase_profile: true,
                    ..LogRecord::default()
                };
                AppendRequest {
                    shard: shard_of(
                        &key.tenant_id,
                        &customer_key("", anonymous_id),
                        self.ctx.node.shard_count,
                    ),
                    tenant_id: key.tenant_id.clone(),
                    event_id: erase_id,
                    payload: record.encode_to_vec(),
                }
            })
            .collect();
        if !requests.is_empty() {
            let window = Duration::from_secs(self.ctx.node.dedup_window_secs);
            self.ctx
                .node
                .stores
                .log
                .append(&requests, window)
                .await
                .map_err(|e| ProfileError::Unavailable(e.to_string()))?;
        }
        self.forget_links(&key, &anonymous).await?;
        self.ctx.node.metrics.erasures.inc();
        let deleted = before
            .as_ref()
            .map(|p| receipt(self.ctx.shard, p, anonymous.len()))
            .unwrap_or_default();
        Ok(EraseCustomerResponse {
            deleted,
            erased: before.is_some(),
            anonymous_profiles_erased: u32::try_from(links.len()).unwrap_or(u32::MAX),
            erased_at: Some(prost_types::Timestamp {
                seconds: erased_at / 1000,
                nanos: i32::try_from((erased_at % 1000) * 1_000_000).unwrap_or(0),
            }),
        })
    }

    /// Removes what names the erased customer outside its profile: the identity links of its
    /// anonymous ids and the dedup markers of the identify and merge records (their ids name
    /// both ids).
    async fn forget_links(
        &self,
        key: &ProfileKey,
        anonymous: &[(String, String)],
    ) -> Result<(), ProfileError> {
        let stores = &self.ctx.node.stores;
        let unavailable = |e: iee_store::StoreError| ProfileError::Unavailable(e.to_string());
        let mut merges = Vec::new();
        for (anonymous_id, event_id) in anonymous {
            stores
                .identities
                .unlink(&key.tenant_id, anonymous_id)
                .await
                .map_err(unavailable)?;
            let anonymous_shard = shard_of(
                &key.tenant_id,
                &customer_key("", anonymous_id),
                self.ctx.node.shard_count,
            );
            stores
                .log
                .forget(
                    anonymous_shard,
                    &key.tenant_id,
                    std::slice::from_ref(event_id),
                )
                .await
                .map_err(unavailable)?;
            merges.push(format!("merge:{event_id}"));
        }
        stores
            .log
            .forget(self.ctx.shard, &key.tenant_id, &merges)
            .await
            .map_err(unavailable)
    }

    async fn housekeeping(
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
    fn lose(&mut self, myself: &ActorRef<ShardMsg>, why: &str) {
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
    fn shut(&mut self, myself: &ActorRef<ShardMsg>) {
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
