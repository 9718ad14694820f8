//! The shard actor's messages, state and message handling.

use std::{
    collections::{BTreeMap, HashMap, HashSet},
    sync::{Arc, atomic::Ordering},
    time::{Duration, Instant, SystemTime},
};

use iee_api::{
    pb::{
        common::{CustomerRef, LogRecord},
        profile::{
            CommitContactRequest, ContactRecord, EraseCustomerResponse, Profile, ReservationState,
            ReserveContactRequest, ReserveContactResponse,
        },
    },
    profile::ProfileError,
    shard::customer_key,
};
use iee_store::{LogEntry, ProfileKey};
use ractor::{Actor, ActorProcessingErr, ActorRef, SupervisionEvent};
use tokio::sync::oneshot;

use crate::{
    ctx::ShardCtx,
    customer::{CustomerMsg, Snapshot, is_merge_out},
    fold::{ContactError, TimerKind},
};

/// Reply channel of a customer-scoped request.
pub(super) type Reply<T> = oneshot::Sender<Result<T, ProfileError>>;

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
pub(super) type WaitingRead = (String, ProfileKey, oneshot::Sender<(Profile, bool)>);

/// A resident customer actor.
pub(super) struct Resident {
    pub(super) actor: ActorRef<CustomerMsg>,
    /// Position in the recency order.
    pub(super) seq: u64,
    /// When it last got a message (`NodeCtx::mono_ms`).
    pub(super) last_active_ms: u64,
}

pub(crate) struct ShardState {
    pub(super) ctx: Arc<ShardCtx>,
    pub(super) resident: HashMap<ProfileKey, Resident>,
    /// Recency order: oldest first.
    pub(super) recency: BTreeMap<u64, ProfileKey>,
    pub(super) next_seq: u64,
    pub(super) dirty: HashSet<ProfileKey>,
    /// Snapshots taken but not yet written (a failed write keeps them for the next attempt).
    pub(super) pending: HashMap<ProfileKey, Snapshot>,
    /// The last dispatched log offset and the last written checkpoint.
    pub(super) dispatched: Option<String>,
    pub(super) checkpoint: Option<String>,
    /// Reads waiting for the log to be dispatched up to an offset.
    pub(super) waiting: Vec<WaitingRead>,
    /// Timer members fired but not yet written back.
    pub(super) timers_in_flight: HashSet<String>,
    pub(super) flush_scheduled: bool,
    /// Every resident actor with a recency position below this was told to compact (a touch
    /// gives an actor a new, higher position).
    pub(super) compacted_below: u64,
    pub(super) last_trim: Instant,
    pub(super) next_reservation: u64,
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

pub(super) fn parse_timer_member(member: &str) -> Option<(TimerKind, ProfileKey)> {
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

impl From<ContactError> for ProfileError {
    fn from(err: ContactError) -> Self {
        match err {
            ContactError::Invalid { field, reason } => Self::InvalidArgument { field, reason },
            ContactError::NotFound(message) => Self::NotFound(message),
        }
    }
}

pub(super) fn now_timestamp() -> prost_types::Timestamp {
    prost_types::Timestamp::from(SystemTime::now())
}
