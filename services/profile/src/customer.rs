//! The customer actor: one per active customer, owning its profile. It applies the customer's
//! events in log order, decides its contact reservations one at a time, and hands its changes to
//! the shard actor, which writes them behind in fenced batches.

use std::{
    sync::Arc,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use iee_api::{
    pb::{
        common::LogRecord,
        profile::{
            CommitContactRequest, ContactRecord, Profile, ReservationState, ReserveContactRequest,
            ReserveContactResponse, Signal,
        },
    },
    shard::{customer_key, shard_of},
};
use iee_store::{AppendOutcome, AppendRequest, ProfileKey};
use prost::Message;
use ractor::{Actor, ActorProcessingErr, ActorRef};
use tokio::sync::oneshot;

use crate::{
    ctx::ShardCtx,
    fold::{Applied, ContactError, Effects, TimerKind},
};

/// Event type of the control records that erase a merged anonymous profile.
pub(crate) const ERASE_EVENT_TYPE: &str = "erase";

/// What a customer actor is asked to do.
pub(crate) enum CustomerMsg {
    /// Apply one log record read at `offset` of the shard's log.
    Apply {
        record: Box<LogRecord>,
        offset: String,
    },
    /// A durable timer fired.
    Fire { kind: TimerKind, due_ms: i64 },
    /// Read the profile (as a reader sees it) and whether it exists.
    Get {
        reply: oneshot::Sender<(Profile, bool)>,
    },
    /// Reserve a contact.
    Reserve {
        request: Box<ReserveContactRequest>,
        reservation_id: String,
        reply: oneshot::Sender<Result<ReserveContactResponse, ContactError>>,
    },
    /// Commit a reservation.
    Commit {
        request: Box<CommitContactRequest>,
        reply: oneshot::Sender<Result<ContactRecord, ContactError>>,
    },
    /// Release a reservation.
    Release {
        reservation_id: String,
        reply: oneshot::Sender<ReservationState>,
    },
    /// Hand over the changes since the last snapshot (if any); stop afterwards if `passivate`.
    Snapshot {
        passivate: bool,
        reply: oneshot::Sender<Option<Snapshot>>,
    },
    /// Erase the customer: forget the profile, refuse or restart on later events. Replies with
    /// the profile as it was (to find linked anonymous profiles) and the erasure time.
    Erase {
        reply: oneshot::Sender<(Option<Profile>, i64)>,
    },
    /// The customer has been idle: keep the profile encoded until the next message.
    Compact,
}

/// What a profile's stored state becomes.
#[derive(Debug, Clone)]
pub(crate) enum StoredState {
    /// The encoded profile.
    Put(Vec<u8>),
    /// Deleted by an erasure at this time (Unix ms), leaving a tombstone.
    Erased(i64),
}

/// The changes of one customer since its previous snapshot.
#[derive(Debug, Clone)]
pub(crate) struct Snapshot {
    pub(crate) state: Option<StoredState>,
    /// The latest wish per timer kind: `Some(due)` set, `None` clear.
    pub(crate) timers: Vec<(TimerKind, Option<i64>)>,
    /// Signals emitted, in order.
    pub(crate) signals: Vec<Signal>,
}

impl Snapshot {
    /// Folds a newer snapshot of the same customer into this one.
    pub(crate) fn absorb(&mut self, newer: Snapshot) {
        if newer.state.is_some() {
            self.state = newer.state;
        }
        for (kind, due) in newer.timers {
            set_timer(&mut self.timers, kind, due);
        }
        self.signals.extend(newer.signals);
    }
}

fn set_timer(timers: &mut Vec<(TimerKind, Option<i64>)>, kind: TimerKind, due: Option<i64>) {
    match timers.iter_mut().find(|(k, _)| *k == kind) {
        Some(slot) => slot.1 = due,
        None => timers.push((kind, due)),
    }
}

/// How the actor starts: its identity, and its state if the shard still holds an unwritten
/// snapshot of it (otherwise it loads from the store).
pub(crate) struct CustomerArgs {
    pub(crate) ctx: Arc<ShardCtx>,
    pub(crate) key: ProfileKey,
    pub(crate) initial: Option<StoredState>,
}

pub(crate) struct CustomerState {
    ctx: Arc<ShardCtx>,
    key: ProfileKey,
    /// The profile, decoded while the customer is active. An idle customer's profile is kept
    /// encoded in `encoded` instead (hundreds of bytes instead of kilobytes), and decoded again
    /// by the next message that needs it.
    decoded: Option<Box<Profile>>,
    encoded: Vec<u8>,
    /// The profile has state worth storing (events applied, a merge, contact reservations).
    found: bool,
    loaded: bool,
    initial: Option<StoredState>,
    erased_at: Option<i64>,
    dirty: bool,
    timers: Vec<(TimerKind, Option<i64>)>,
    signals: Vec<Signal>,
}

/// The actor's behaviour (stateless; the state lives in [`CustomerState`]).
pub(crate) struct CustomerActor;

pub(crate) fn unix_ms(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

fn timestamp_ms(t: Option<&prost_types::Timestamp>) -> i64 {
    t.map_or(0, |t| {
        t.seconds
            .saturating_mul(1000)
            .saturating_add(i64::from(t.nanos / 1_000_000))
    })
}

impl Actor for CustomerActor {
    type Msg = CustomerMsg;
    type State = CustomerState;
    type Arguments = CustomerArgs;

    async fn pre_start(
        &self,
        _myself: ActorRef<CustomerMsg>,
        args: CustomerArgs,
    ) -> Result<CustomerState, ActorProcessingErr> {
        // No I/O here: spawning must not block the shard actor. The state is loaded in
        // `post_start`; messages sent meanwhile wait in the mailbox.
        Ok(CustomerState {
            ctx: args.ctx,
            key: args.key,
            decoded: Some(Box::default()),
            encoded: Vec::new(),
            found: false,
            loaded: false,
            initial: args.initial,
            erased_at: None,
            dirty: false,
            timers: Vec::new(),
            signals: Vec::new(),
        })
    }

    async fn post_start(
        &self,
        _myself: ActorRef<CustomerMsg>,
        state: &mut CustomerState,
    ) -> Result<(), ActorProcessingErr> {
        let started = std::time::Instant::now();
        Box::pin(state.load()).await?;
        state
            .ctx
            .node
            .metrics
            .activation_seconds
            .observe(started.elapsed().as_secs_f64());
        Ok(())
    }

    async fn handle(
        &self,
        myself: ActorRef<CustomerMsg>,
        message: CustomerMsg,
        state: &mut CustomerState,
    ) -> Result<(), ActorProcessingErr> {
        let now = SystemTime::now();
        match message {
            // Boxed: the actor's task holds its largest handler future inline for its whole
            // life, so the rare, large async paths (merge, forward) would cost every idle
            // actor their size.
            CustomerMsg::Apply { record, offset } => {
                Box::pin(state.apply(*record, &offset, now)).await?;
            }
            CustomerMsg::Fire { kind, due_ms } => state.fire(kind, due_ms, now),
            CustomerMsg::Get { reply } => {
                let ctx = state.ctx.clone();
                let profile = state.profile();
                // A profile holding only contact reservations has no applied event yet.
                let has_events = !profile.applied_offsets.is_empty();
                let view = ctx.node.folder.view(profile, now);
                let _ = reply.send((view, state.found && has_events));
            }
            CustomerMsg::Compact => state.compact(),
            CustomerMsg::Reserve {
                request,
                reservation_id,
                reply,
            } => {
                let ctx = state.ctx.clone();
                let result =
                    ctx.node
                        .folder
                        .reserve(state.profile(), &request, &reservation_id, now);
                if result.is_ok() {
                    state.touched(request.customer.as_ref());
                }
                let _ = reply.send(result);
            }
            CustomerMsg::Commit { request, reply } => {
                let ctx = state.ctx.clone();
                let result = ctx.node.folder.commit(state.profile(), &request, now);
                if result.is_ok() {
                    state.touched(request.customer.as_ref());
                }
                let _ = reply.send(result);
            }
            CustomerMsg::Release {
                reservation_id,
                reply,
            } => {
                let ctx = state.ctx.clone();
                let previous = ctx
                    .node
                    .folder
                    .release(state.profile(), &reservation_id, now);
                if previous == ReservationState::Pending {
                    state.touched(None);
                }
                let _ = reply.send(previous);
            }
            CustomerMsg::Snapshot { passivate, reply } => {
                let _ = reply.send(state.take_snapshot());
                if passivate {
                    myself.stop(None);
                }
            }
            CustomerMsg::Erase { reply } => {
                let erased_at = unix_ms(now);
                let before = if state.found {
                    Some(std::mem::take(state.profile()))
                } else {
                    None
                };
                state.erase(erased_at);
                let _ = reply.send((before, erased_at));
            }
        }
        Ok(())
    }
}

impl CustomerState {
    async fn load(&mut self) -> Result<(), ActorProcessingErr> {
        let stored = match self.initial.take() {
            Some(initial) => Some(initial),
            None => self.read_store().await?,
        };
        match stored {
            Some(StoredState::Put(bytes)) => {
                // Validate now (a corrupt profile fails the activation), decode lazily later.
                Profile::decode(bytes.as_slice())?;
                self.encoded = bytes;
                self.decoded = None;
                self.found = true;
            }
            Some(StoredState::Erased(at)) => self.erased_at = Some(at),
            None => {}
        }
        self.loaded = true;
        Ok(())
    }

    /// Reads the stored profile (or its erasure tombstone), retrying briefly: a failed load
    /// fails the actor, which makes the shard start over from its checkpoint.
    async fn read_store(&self) -> Result<Option<StoredState>, ActorProcessingErr> {
        let store = &self.ctx.node.stores.shard_state;
        let mut delay = Duration::from_millis(20);
        let mut attempt = 0;
        loop {
            let result = async {
                let loaded = store
                    .load(self.ctx.shard, std::slice::from_ref(&self.key))
                    .await?;
                if let Some(Some(bytes)) = loaded.into_iter().next() {
                    return Ok(Some(StoredState::Put(bytes)));
                }
                Ok::<_, iee_store::StoreError>(
                    store
                        .erased_at(self.ctx.shard, &self.key)
                        .await?
                        .map(StoredState::Erased),
                )
            }
            .await;
            match result {
                Ok(state) => return Ok(state),
                Err(err) if attempt < 4 => {
                    tracing::warn!(shard = self.ctx.shard, error = %err, "profile load failed; retrying");
                    attempt += 1;
                    tokio::time::sleep(delay).await;
                    delay *= 2;
                }
                Err(err) => return Err(err.into()),
            }
        }
    }

    /// The profile, decoded if it was kept encoded.
    fn profile(&mut self) -> &mut Profile {
        if self.decoded.is_none() {
            let profile = Profile::decode(self.encoded.as_slice())
                .expect("profile bytes this actor encoded or validated decode");
            self.encoded = Vec::new();
            self.decoded = Some(Box::new(profile));
        }
        self.decoded.get_or_insert_with(Box::default)
    }

    /// Keeps the profile encoded while the customer is idle.
    fn compact(&mut self) {
        if self.loaded
            && let Some(profile) = self.decoded.take()
        {
            self.encoded = profile.encode_to_vec();
        }
    }

    /// The profile's stored form.
    fn encode(&self) -> Vec<u8> {
        match &self.decoded {
            Some(profile) => profile.encode_to_vec(),
            None => self.encoded.clone(),
        }
    }

    /// A contact-budget change: the profile must be stored even without any applied event, or
    /// its reservations would be lost on passivation or failover.
    fn touched(&mut self, customer: Option<&iee_api::pb::common::CustomerRef>) {
        if !self.found && self.erased_at.is_none() {
            if self.profile().customer.is_none() {
                self.profile().customer = customer.cloned();
            }
            self.profile().shard = self.ctx.shard;
            self.found = true;
        }
        self.dirty = true;
    }

    fn absorb(&mut self, effects: Effects) {
        for change in effects.timers {
            set_timer(&mut self.timers, change.kind, change.due_ms);
        }
        self.signals.extend(effects.signals);
        self.dirty = true;
    }

    async fn apply(
        &mut self,
        record: LogRecord,
        offset: &str,
        now: SystemTime,
    ) -> Result<(), ActorProcessingErr> {
        let ctx = self.ctx.clone();
        let metrics = &ctx.node.metrics;
        let shard = ctx.shard;
        if let Some(erased_at) = self.erased_at {
            if timestamp_ms(record.received_at.as_ref()) <= erased_at
                || self.ctx.node.config.refuse_events_after_erasure
            {
                metrics.skipped("erased");
                return Ok(());
            }
            // A later event starts a new profile.
            self.erased_at = None;
        }
        if record.erase_profile {
            self.erase(timestamp_ms(record.received_at.as_ref()).max(unix_ms(now)));
            return Ok(());
        }
        let applied = self
            .profile()
            .applied_offsets
            .get(&shard)
            .is_some_and(|last| !crate::fold::offsets::is_after(offset, last));
        if applied {
            metrics.skipped("replay");
            return Ok(());
        }
        if !self.profile().merged_into_customer_id.is_empty() {
            // A merged anonymous profile: the event belongs to the known customer now.
            let customer_id = self.profile().merged_into_customer_id.clone();
            self.forward(record, &customer_id).await?;
            self.profile()
                .applied_offsets
                .insert(shard, offset.to_owned());
            self.dirty = true;
            metrics.skipped("forwarded");
            return Ok(());
        }
        if is_merge_out(&record)
            && self
                .key
                .key
                .starts_with(iee_api::shard::ANONYMOUS_KEY_PREFIX)
        {
            self.merge_out(record, offset).await?;
            return Ok(());
        }
        match ctx
            .node
            .folder
            .apply(self.profile(), &record, shard, offset, now)
        {
            Applied::Skipped => metrics.skipped("replay"),
            Applied::Changed(effects) => {
                self.found = true;
                self.absorb(effects);
                metrics.applied.inc();
                metrics.observe_freshness(record.received_at.as_ref(), now);
            }
        }
        Ok(())
    }

    /// The anonymous side of a merge: hands the anonymous profile to the known customer's shard
    /// through the log (an idempotent append), then becomes a tombstone naming the customer.
    async fn merge_out(
        &mut self,
        mut record: LogRecord,
        offset: &str,
    ) -> Result<(), ActorProcessingErr> {
        let event = record.event.clone().unwrap_or_default();
        let customer_id = event.customer_id.clone();
        record.merged_profile = if self.found {
            self.encode()
        } else {
            Vec::new()
        };
        // Marks the record as the profile service's own, so it is routed to the customer even
        // when the anonymous profile was empty.
        record.forwarded_from_shard = Some(self.ctx.shard);
        let target = shard_of(
            &event.tenant_id,
            &customer_key(&customer_id, ""),
            self.ctx.node.shard_count,
        );
        self.append(target, format!("merge:{}", event.event_id), &record)
            .await?;
        if self.profile().customer.is_none() {
            self.profile().customer = Some(iee_api::pb::common::CustomerRef {
                tenant_id: event.tenant_id.clone(),
                customer_id: String::new(),
                anonymous_id: event.anonymous_id.clone(),
            });
            self.profile().shard = self.ctx.shard;
        }
        let ctx = self.ctx.clone();
        ctx.node
            .folder
            .mark_merged(self.profile(), &customer_id, ctx.shard, offset);
        self.found = true;
        self.dirty = true;
        self.ctx.node.metrics.merges.inc();
        Ok(())
    }

    /// Re-appends an event of a merged anonymous id to the known customer's shard.
    async fn forward(
        &self,
        mut record: LogRecord,
        customer_id: &str,
    ) -> Result<(), ActorProcessingErr> {
        let Some(event) = record.event.as_mut() else {
            return Ok(());
        };
        event.customer_id = customer_id.to_owned();
        let event_id = event.event_id.clone();
        let target = shard_of(
            &event.tenant_id,
            &customer_key(customer_id, ""),
            self.ctx.node.shard_count,
        );
        record.forwarded_from_shard = Some(self.ctx.shard);
        self.append(target, event_id, &record).await
    }

    async fn append(
        &self,
        shard: u32,
        dedup_id: String,
        record: &LogRecord,
    ) -> Result<(), ActorProcessingErr> {
        let request = AppendRequest {
            shard,
            tenant_id: self.key.tenant_id.clone(),
            event_id: dedup_id,
            payload: record.encode_to_vec(),
        };
        let window = Duration::from_secs(self.ctx.node.dedup_window_secs);
        let outcome = self
            .ctx
            .node
            .stores
            .log
            .append(std::slice::from_ref(&request), window)
            .await?;
        if let Some(AppendOutcome::Duplicate(_)) = outcome.first() {
            tracing::debug!(shard, "re-append was a duplicate (replay)");
        }
        Ok(())
    }

    fn fire(&mut self, kind: TimerKind, due_ms: i64, now: SystemTime) {
        let pending_reschedule = self
            .timers
            .iter()
            .any(|(k, due)| *k == kind && due.is_some_and(|d| d != due_ms));
        let ctx = self.ctx.clone();
        match ctx
            .node
            .folder
            .fire_timer(self.profile(), kind, due_ms, now)
        {
            Applied::Changed(effects) => {
                set_timer(&mut self.timers, kind, None);
                self.absorb(effects);
            }
            Applied::Skipped => {
                if !pending_reschedule {
                    set_timer(&mut self.timers, kind, None);
                    self.dirty = true;
                }
            }
        }
    }

    fn erase(&mut self, erased_at: i64) {
        self.decoded = Some(Box::default());
        self.encoded = Vec::new();
        self.found = false;
        self.erased_at = Some(erased_at);
        self.signals.clear();
        self.timers = vec![(TimerKind::CartIdle, None), (TimerKind::Inactive, None)];
        self.dirty = true;
    }

    fn take_snapshot(&mut self) -> Option<Snapshot> {
        if !self.dirty || !self.loaded {
            return None;
        }
        self.dirty = false;
        let state = match (self.found, self.erased_at) {
            (true, _) => Some(StoredState::Put(self.encode())),
            (false, Some(at)) => Some(StoredState::Erased(at)),
            (false, None) => None,
        };
        Some(Snapshot {
            state,
            timers: std::mem::take(&mut self.timers),
            signals: std::mem::take(&mut self.signals),
        })
    }
}

/// An `identify` record as ingest appends it to the anonymous id's shard: the anonymous
/// profile must be handed to the known customer.
pub(crate) fn is_merge_out(record: &LogRecord) -> bool {
    record.merged_profile.is_empty()
        && record.forwarded_from_shard.is_none()
        && !record.erase_profile
        && record.event.as_ref().is_some_and(|e| {
            e.r#type == "identify" && !e.customer_id.is_empty() && !e.anonymous_id.is_empty()
        })
}
