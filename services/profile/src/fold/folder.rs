//! The [`Folder`]: applies log records and fired timers to a profile, answers reader views and
//! decides contact budgets. Pure: no I/O, no clocks read (the caller passes `now`).

use std::time::SystemTime;

use iee_api::pb::common::{CustomerRef, Event, JourneyStage, LogRecord};
use iee_api::pb::profile::{
    CartAbandoned, CommitContactRequest, ContactRecord, Inactive, JourneyStageChanged,
    NegativeExperience, Profile, ReservationState, ReserveContactRequest, ReserveContactResponse,
    Signal, SignalKind, signal::Details,
};
use prost::Message;

use super::budget_check::ContactError;
use super::effects::{Applied, Effects, TimerChange, TimerKind, signal};
use super::event::{fold_event, purchases};
use super::identity::{self, Link};
use super::journey::{self, Trigger};
use super::sentiment::Analyser;
use super::sessions;
use super::time::{ms_duration, ms_ts, opt_ms, system_ms};
use super::{FoldConfig, budget, cart, counters, merge, offsets};

/// Folds events into profiles. Holds the configuration and the sentiment analyser; cheap to
/// share (`Send + Sync`), build one per node.
#[derive(Debug)]
pub struct Folder {
    config: FoldConfig,
    analyser: Analyser,
}

/// The figures whose crossings and changes produce signals, taken before a change.
struct Before {
    stage: i32,
    ewma: Option<f64>,
    experience: Option<f64>,
}

impl Before {
    fn of(profile: &Profile) -> Self {
        Self {
            stage: profile.journey_stage,
            ewma: ewma(profile),
            experience: experience_score(profile),
        }
    }
}

impl Folder {
    /// A folder with `config` (validated by the caller through [`iee_config::Validate`]).
    pub fn new(config: FoldConfig) -> Self {
        Self {
            config,
            analyser: Analyser::new(),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &FoldConfig {
        &self.config
    }

    /// Applies one log record read at `offset` of shard `shard`'s log. Skips records at or
    /// before the profile's applied offset for that shard (replay), so nothing is applied
    /// twice; see `docs/profile-state.md` for every rule.
    pub fn apply(
        &self,
        profile: &mut Profile,
        record: &LogRecord,
        shard: u32,
        offset: &str,
        now: SystemTime,
    ) -> Applied {
        let Some(event) = record.event.as_ref() else {
            return Applied::Skipped;
        };
        if !profile.merged_into_customer_id.is_empty() {
            return Applied::Skipped;
        }
        if let Some(applied) = profile.applied_offsets.get(&shard)
            && !offsets::is_after(offset, applied)
        {
            return Applied::Skipped;
        }
        let at_ms = opt_ms(event.occurred_at.as_ref())
            .or_else(|| opt_ms(record.received_at.as_ref()))
            .unwrap_or_else(|| system_ms(now));
        if profile.customer.is_none() {
            profile.customer = Some(customer_of(event));
        }
        if profile.version == 0 {
            profile.shard = shard;
        }
        let before = Before::of(profile);
        let trigger = format!("log:{shard}:{offset}");
        let mut signals = Vec::new();

        let mut count_event = true;
        let mut to_merge = None;
        if event.r#type == "identify" {
            let link = identity::link(profile, event, at_ms);
            let index = match link {
                Some(Link::SameEvent(i)) => {
                    count_event = false;
                    Some(i)
                }
                Some(Link::New(i) | Link::Existing(i)) => Some(i),
                None => None,
            };
            let already_merged = |i: usize| {
                profile
                    .identity
                    .as_ref()
                    .is_some_and(|id| id.anonymous_links[i].merged)
            };
            if let Some(i) = index
                && !record.merged_profile.is_empty()
                && !already_merged(i)
            {
                match Profile::decode(record.merged_profile.as_slice()) {
                    Ok(anon) => to_merge = Some((i, anon)),
                    Err(e) => tracing::warn!(
                        error = %e,
                        offset,
                        "merged profile of identify record does not decode; link kept, nothing merged"
                    ),
                }
            }
            if !count_event && to_merge.is_none() {
                // The same identify event again, its merge (if any) already done.
                return Applied::Skipped;
            }
        }
        if count_event {
            fold_event(
                &self.config,
                &self.analyser,
                profile,
                event,
                at_ms,
                &trigger,
                &mut signals,
            );
        }
        if let Some((i, anon)) = to_merge {
            merge::merge(profile, &anon, &self.config);
            if let Some(link) = profile
                .identity
                .as_mut()
                .and_then(|id| id.anonymous_links.get_mut(i))
            {
                link.merged = true;
                link.merged_events = counters::event_total(&anon);
            }
        }
        self.crossings(profile, &before, event, at_ms, &trigger, &mut signals);

        let slot = profile.applied_offsets.entry(shard).or_default();
        if offsets::is_after(offset, slot) {
            *slot = offset.to_owned();
        }
        self.finish(profile, signals, self.timers(profile))
    }

    /// Emits `negative_experience` when the profile enters a negative episode (the sentiment
    /// EWMA or the experience score below its threshold, where before neither was), and
    /// `journey_stage_changed` when the stage differs from before.
    fn crossings(
        &self,
        profile: &mut Profile,
        before: &Before,
        event: &Event,
        at_ms: i64,
        trigger: &str,
        signals: &mut Vec<Signal>,
    ) {
        let (ewma, score) = (ewma(profile), experience_score(profile));
        let (s_min, e_min) = (
            self.config.negative_sentiment_threshold,
            self.config.negative_experience_threshold,
        );
        let was_negative =
            before.ewma.is_some_and(|v| v < s_min) || before.experience.is_some_and(|v| v < e_min);
        let is_negative = ewma.is_some_and(|v| v < s_min) || score.is_some_and(|v| v < e_min);
        let crossed = is_negative && !was_negative;
        if crossed {
            signals.push(signal(
                profile,
                SignalKind::NegativeExperience,
                trigger,
                Details::NegativeExperience(NegativeExperience {
                    experience_score: score.unwrap_or(0.0),
                    sentiment_ewma: ewma.unwrap_or(0.0),
                    trigger_event_id: event.event_id.clone(),
                    trigger_event_type: event.r#type.clone(),
                }),
            ));
            let stage = JourneyStage::try_from(profile.journey_stage).unwrap_or_default();
            let next = journey::next(
                stage,
                Trigger::NegativeExperience {
                    purchases: purchases(profile),
                },
            );
            profile.journey_stage = next as i32;
        }
        self.stage_change(profile, before.stage, at_ms, trigger, signals);
    }

    fn stage_change(
        &self,
        profile: &mut Profile,
        from: i32,
        at_ms: i64,
        trigger: &str,
        signals: &mut Vec<Signal>,
    ) {
        if profile.journey_stage == from {
            return;
        }
        profile.journey_stage_since = Some(ms_ts(at_ms));
        signals.push(signal(
            profile,
            SignalKind::JourneyStageChanged,
            trigger,
            Details::JourneyStageChanged(JourneyStageChanged {
                from,
                to: profile.journey_stage,
            }),
        ));
    }

    /// The timers implied by the profile's state after an applied event.
    fn timers(&self, profile: &Profile) -> Vec<TimerChange> {
        let inactive = opt_ms(profile.last_seen_at.as_ref())
            .map(|last| last.saturating_add(self.config.inactive_after_ms()));
        vec![
            TimerChange {
                kind: TimerKind::Inactive,
                due_ms: inactive,
            },
            TimerChange {
                kind: TimerKind::CartIdle,
                due_ms: cart::idle_due_ms(profile.cart.as_ref(), &self.config),
            },
        ]
    }

    /// Bumps the version and stamps it on the signals.
    fn finish(
        &self,
        profile: &mut Profile,
        mut signals: Vec<Signal>,
        timers: Vec<TimerChange>,
    ) -> Applied {
        profile.version += 1;
        for s in &mut signals {
            s.profile_version = profile.version;
        }
        Applied::Changed(Effects { signals, timers })
    }

    /// A durable timer fired at `now`. Emits its signal if the timer is still current (the
    /// state it was set for has not changed since), else returns [`Applied::Skipped`].
    pub fn fire_timer(
        &self,
        profile: &mut Profile,
        kind: TimerKind,
        due_ms: i64,
        now: SystemTime,
    ) -> Applied {
        if !profile.merged_into_customer_id.is_empty() || profile.version == 0 {
            return Applied::Skipped;
        }
        let now_ms = system_ms(now);
        let trigger = format!("timer:{}:{due_ms}", kind.as_str());
        let mut signals = Vec::new();
        match kind {
            TimerKind::CartIdle => {
                if cart::idle_due_ms(profile.cart.as_ref(), &self.config) != Some(due_ms) {
                    return Applied::Skipped;
                }
                let Some(c) = profile.cart.as_mut() else {
                    return Applied::Skipped;
                };
                c.abandoned = true;
                let idle_ms = now_ms - opt_ms(c.last_changed_at.as_ref()).unwrap_or(now_ms);
                let details = CartAbandoned {
                    cart: Some(c.clone()),
                    idle_for: Some(ms_duration(idle_ms)),
                };
                signals.push(signal(
                    profile,
                    SignalKind::CartAbandoned,
                    &trigger,
                    Details::CartAbandoned(details),
                ));
            }
            TimerKind::Inactive => {
                let last = opt_ms(profile.last_seen_at.as_ref());
                let current = last.map(|l| l.saturating_add(self.config.inactive_after_ms()));
                if profile.inactive || current != Some(due_ms) {
                    return Applied::Skipped;
                }
                profile.inactive = true;
                signals.push(signal(
                    profile,
                    SignalKind::Inactive,
                    &trigger,
                    Details::Inactive(Inactive {
                        last_seen_at: profile.last_seen_at,
                        inactive_for: Some(ms_duration(now_ms - last.unwrap_or(now_ms))),
                    }),
                ));
                let from = profile.journey_stage;
                let stage = JourneyStage::try_from(from).unwrap_or_default();
                let next = journey::next(
                    stage,
                    Trigger::Inactive {
                        purchases: purchases(profile),
                    },
                );
                profile.journey_stage = next as i32;
                // The quiet period began at `due_ms`; using it (not `now`) keeps replays identical.
                self.stage_change(profile, from, due_ms, &trigger, &mut signals);
            }
        }
        self.finish(profile, signals, Vec::new())
    }

    /// The profile as a reader sees it at `now`: counters decayed to `now`, expired reservations
    /// closed, a timed-out current session ended.
    pub fn view(&self, profile: &Profile, now: SystemTime) -> Profile {
        let now_ms = system_ms(now);
        let mut view = profile.clone();
        counters::decay_all(&mut view, now_ms);
        budget::expire(&mut view, now_ms, &self.config);
        if let Some(s) = view.sessions.as_mut() {
            sessions::close_if_timed_out(s, now_ms, &self.config);
        }
        view
    }

    /// Marks an anonymous profile as merged into `customer_id` (a tombstone), recording
    /// `offset` for `shard`. Returns false if it already was merged (idempotent).
    pub fn mark_merged(
        &self,
        anonymous: &mut Profile,
        customer_id: &str,
        shard: u32,
        offset: &str,
    ) -> bool {
        if !anonymous.merged_into_customer_id.is_empty() {
            return false;
        }
        anonymous.merged_into_customer_id = customer_id.to_owned();
        let slot = anonymous.applied_offsets.entry(shard).or_default();
        if offsets::is_after(offset, slot) {
            *slot = offset.to_owned();
        }
        anonymous.version += 1;
        true
    }

    /// Reserves a contact (see `docs/profile-state.md`, contact budgets).
    pub fn reserve(
        &self,
        profile: &mut Profile,
        request: &ReserveContactRequest,
        reservation_id: &str,
        now: SystemTime,
    ) -> Result<ReserveContactResponse, ContactError> {
        let outcome = budget::reserve(
            profile,
            request,
            reservation_id,
            system_ms(now),
            &self.config,
        )?;
        if outcome.changed {
            profile.version += 1;
        }
        Ok(outcome.value)
    }

    /// Commits a pending reservation as a contact; a repeated commit returns the same contact.
    pub fn commit(
        &self,
        profile: &mut Profile,
        request: &CommitContactRequest,
        now: SystemTime,
    ) -> Result<ContactRecord, ContactError> {
        let outcome = budget::commit(profile, request, system_ms(now), &self.config)?;
        if outcome.changed {
            profile.version += 1;
        }
        Ok(outcome.value)
    }

    /// Releases a reservation; returns the state it was in.
    pub fn release(
        &self,
        profile: &mut Profile,
        reservation_id: &str,
        now: SystemTime,
    ) -> ReservationState {
        let outcome = budget::release(profile, reservation_id, system_ms(now), &self.config);
        if outcome.changed {
            profile.version += 1;
        }
        outcome.value
    }

    /// Closes expired reservations (remembered as EXPIRED); returns whether anything changed.
    pub fn expire_reservations(&self, profile: &mut Profile, now: SystemTime) -> bool {
        let changed = budget::expire(profile, system_ms(now), &self.config);
        if changed {
            profile.version += 1;
        }
        changed
    }
}

/// The sentiment EWMA, `None` before any text.
fn ewma(profile: &Profile) -> Option<f64> {
    profile
        .sentiment
        .as_ref()
        .filter(|s| s.samples > 0)
        .map(|s| s.ewma)
}

/// The experience score, `None` before any experience.
fn experience_score(profile: &Profile) -> Option<f64> {
    profile
        .experience
        .as_ref()
        .filter(|e| e.samples > 0)
        .map(|e| e.score)
}

/// The profile owner an event names: the known customer, else the anonymous visitor.
fn customer_of(event: &Event) -> CustomerRef {
    CustomerRef {
        tenant_id: event.tenant_id.clone(),
        customer_id: event.customer_id.clone(),
        anonymous_id: if event.customer_id.is_empty() {
            event.anonymous_id.clone()
        } else {
            String::new()
        },
    }
}
