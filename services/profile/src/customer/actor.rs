//! The customer actor's messages, state and message handling.

use std::{
    sync::Arc,
    time::{SystemTime, UNIX_EPOCH},
};

use iee_api::pb::{
    common::LogRecord,
    profile::{
        CommitContactRequest, ContactRecord, Profile, ReservationState, ReserveContactRequest,
        ReserveContactResponse, Signal,
    },
};
use iee_store::ProfileKey;
use ractor::{Actor, ActorProcessingErr, ActorRef};
use tokio::sync::oneshot;
use tracing::Instrument;

use crate::{
    ctx::ShardCtx,
    fold::{ContactError, TimerKind},
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

pub(super) fn set_timer(
    timers: &mut Vec<(TimerKind, Option<i64>)>,
    kind: TimerKind,
    due: Option<i64>,
) {
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
    pub(super) ctx: Arc<ShardCtx>,
    pub(super) key: ProfileKey,
    /// The profile, decoded while the customer is active. An idle customer's profile is kept
    /// encoded in `encoded` instead (hundreds of bytes instead of kilobytes), and decoded again
    /// by the next message that needs it.
    pub(super) decoded: Option<Box<Profile>>,
    pub(super) encoded: Vec<u8>,
    /// The profile has state worth storing (events applied, a merge, contact reservations).
    pub(super) found: bool,
    pub(super) loaded: bool,
    pub(super) initial: Option<StoredState>,
    pub(super) erased_at: Option<i64>,
    pub(super) dirty: bool,
    pub(super) timers: Vec<(TimerKind, Option<i64>)>,
    pub(super) signals: Vec<Signal>,
}

/// The actor's behaviour (stateless; the state lives in [`CustomerState`]).
pub(crate) struct CustomerActor;

pub(crate) fn unix_ms(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

pub(super) fn timestamp_ms(t: Option<&prost_types::Timestamp>) -> i64 {
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
                let span = state.apply_span(&record);
                Box::pin(state.apply(*record, &offset, now))
                    .instrument(span)
                    .await?;
            }
            CustomerMsg::Fire { kind, due_ms } => {
                state
                    .timer_span(kind)
                    .in_scope(|| state.fire(kind, due_ms, now));
            }
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
