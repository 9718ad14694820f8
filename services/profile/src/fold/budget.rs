//! Contact budgets, decided inside the customer's actor one call at a time: reserve (consent,
//! quiet hours, suppression, caps counting committed contacts and pending reservations),
//! commit, release and expiry.

use iee_api::pb::profile::{
    CapScope, ClosedReservation, CommitContactRequest, ConsentStatus, ContactDenial, ContactRecord,
    ContactReservation, DenialReason, Profile, ReservationState, ReserveContactRequest,
    ReserveContactResponse, reserve_contact_response::Verdict,
};

use super::budget_check::{Cap, ContactError, Quiet, check_commit, check_id, check_reserve};
use super::config::FoldConfig;
use super::contacts::{channel_entry, insert_recent, push_closed};
use super::time::{DAY_MS, MINUTE_MS, SECOND_MS, max_ts, ms_ts, opt_ms, ts_ms};

/// What a budget call did to the stored profile.
pub(crate) struct Outcome<T> {
    pub value: T,
    pub changed: bool,
}

fn limit(config: &FoldConfig) -> usize {
    usize::try_from(config.contact_history_limit).unwrap_or(usize::MAX)
}

fn kept(config: &FoldConfig) -> usize {
    usize::try_from(config.closed_reservations_kept).unwrap_or(usize::MAX)
}

fn expires_ms(r: &ContactReservation) -> i64 {
    opt_ms(r.expires_at.as_ref()).unwrap_or(0)
}

/// Moves reservations whose expiry has passed to the closed list as EXPIRED.
pub(crate) fn expire(profile: &mut Profile, now_ms: i64, config: &FoldConfig) -> bool {
    let mut expired = Vec::new();
    for channel in &mut profile.contacts {
        let (gone, live): (Vec<_>, Vec<_>) = std::mem::take(&mut channel.pending)
            .into_iter()
            .partition(|r| expires_ms(r) <= now_ms);
        channel.pending = live;
        expired.extend(gone);
    }
    expired.sort_by_key(expires_ms);
    let changed = !expired.is_empty();
    for r in expired {
        push_closed(
            profile,
            ClosedReservation {
                reservation_id: r.reservation_id,
                state: ReservationState::Expired as i32,
                closed_at: r.expires_at,
                channel: r.channel,
                contact: None,
            },
            kept(config),
        );
    }
    changed
}

fn find_pending(
    profile: &Profile,
    pred: impl Fn(&ContactReservation) -> bool,
) -> Option<(usize, usize)> {
    profile
        .contacts
        .iter()
        .enumerate()
        .find_map(|(c, ch)| ch.pending.iter().position(&pred).map(|p| (c, p)))
}

fn denial(reason: DenialReason, retry_ms: Option<i64>, message: String) -> ReserveContactResponse {
    ReserveContactResponse {
        verdict: Some(Verdict::Denial(ContactDenial {
            reason: reason as i32,
            cap_name: String::new(),
            cap_used: 0,
            retry_at: retry_ms.map(ms_ts),
            message,
        })),
    }
}

/// A window as people write it: `7d`, `12h`, `30m` or `90s`.
fn human_window(ms: i64) -> String {
    let hour = 60 * MINUTE_MS;
    for (unit, suffix) in [(DAY_MS, "d"), (hour, "h"), (MINUTE_MS, "m")] {
        if ms % unit == 0 {
            return format!("{}{suffix}", ms / unit);
        }
    }
    if ms % SECOND_MS == 0 {
        format!("{}s", ms / SECOND_MS)
    } else {
        format!("{ms}ms")
    }
}

/// The local minute of the day at `now_ms`, and whether it lies in the quiet hours; with the
/// instant the quiet period ends.
fn quiet_until(q: Quiet, now_ms: i64) -> Option<i64> {
    let now_min = now_ms.div_euclid(MINUTE_MS);
    let local = (now_min + q.offset).rem_euclid(1_440);
    let inside = if q.start < q.end {
        q.start <= local && local < q.end
    } else {
        local >= q.start || local < q.end
    };
    inside.then(|| (now_min + (q.end - local).rem_euclid(1_440)) * MINUTE_MS)
}

/// Counts a cap: `(used, instants at which counted contacts stop counting)`.
fn count_cap(
    profile: &Profile,
    request: &ReserveContactRequest,
    cap: &Cap,
    now_ms: i64,
) -> (u32, Vec<i64>) {
    let mut leaves = Vec::new();
    let from = now_ms - cap.window_ms;
    for channel in &profile.contacts {
        if cap.scope != CapScope::AllChannels && channel.channel != request.channel {
            continue;
        }
        let action_ok = |action: &str| cap.scope != CapScope::Action || action == request.action_id;
        for r in &channel.recent {
            let at = opt_ms(r.contacted_at.as_ref()).unwrap_or(0);
            if at > from && action_ok(&r.action_id) {
                leaves.push(at + cap.window_ms);
            }
        }
        for p in &channel.pending {
            if action_ok(&p.action_id) {
                leaves.push(expires_ms(p));
            }
        }
    }
    leaves.sort_unstable();
    (u32::try_from(leaves.len()).unwrap_or(u32::MAX), leaves)
}

/// Decides a reservation request; see the module docs for the order of checks.
pub(crate) fn reserve(
    profile: &mut Profile,
    request: &ReserveContactRequest,
    reservation_id: &str,
    now_ms: i64,
    config: &FoldConfig,
) -> Result<Outcome<ReserveContactResponse>, ContactError> {
    let checked = check_reserve(request, config)?;
    check_id("reservation_id", reservation_id, true)?;
    let changed = expire(profile, now_ms, config);
    let done = |value| Ok(Outcome { value, changed });
    if !request.request_id.is_empty()
        && let Some((c, p)) = find_pending(profile, |r| r.request_id == request.request_id)
    {
        let existing = profile.contacts[c].pending[p].clone();
        return done(ReserveContactResponse {
            verdict: Some(Verdict::Reservation(existing)),
        });
    }
    let id_taken = find_pending(profile, |r| r.reservation_id == reservation_id).is_some()
        || profile
            .closed_reservations
            .iter()
            .any(|c| c.reservation_id == reservation_id);
    if id_taken {
        return Err(super::budget_check::invalid(
            "reservation_id",
            format!("{reservation_id:?} is already used by another reservation"),
        ));
    }
    if !request.consent_purpose.is_empty() {
        let granted = profile
            .consent
            .get(&request.consent_purpose)
            .is_some_and(|c| c.status == ConsentStatus::Granted as i32);
        if !granted {
            return done(denial(
                DenialReason::NoConsent,
                None,
                format!(
                    "no consent granted for purpose {:?}",
                    request.consent_purpose
                ),
            ));
        }
    }
    if let Some(q) = checked.quiet
        && let Some(until) = quiet_until(q, now_ms)
    {
        return done(denial(
            DenialReason::QuietHours,
            Some(until),
            "the customer's local time lies within the quiet hours".to_owned(),
        ));
    }
    if let Some((max, window_ms)) = checked.suppression {
        let recent: Vec<i64> = profile
            .action_dismissals
            .get(&request.action_id)
            .map(|d| {
                d.recent
                    .iter()
                    .map(ts_ms)
                    .filter(|t| *t > now_ms - window_ms)
                    .collect()
            })
            .unwrap_or_default();
        let max_usize = usize::try_from(max).unwrap_or(usize::MAX);
        if recent.len() >= max_usize {
            // Newest first: suppression lifts when the max-th newest leaves the window.
            let retry = recent.get(max_usize - 1).map(|t| t + window_ms);
            return done(denial(
                DenialReason::Suppressed,
                retry,
                format!(
                    "action {:?} was dismissed {} times within {}, suppressed at {max}",
                    request.action_id,
                    recent.len(),
                    human_window(window_ms)
                ),
            ));
        }
    }
    for (i, cap) in checked.caps.iter().enumerate() {
        let (used, leaves) = count_cap(profile, request, cap, now_ms);
        if used >= cap.max_count {
            let name = if cap.name.is_empty() {
                format!("caps[{i}]")
            } else {
                cap.name.clone()
            };
            let k = usize::try_from(used - cap.max_count).unwrap_or(0);
            let message = format!(
                "cap {name:?} allows {} per {}, {used} used",
                cap.max_count,
                human_window(cap.window_ms)
            );
            let mut response = denial(DenialReason::CapReached, leaves.get(k).copied(), message);
            if let Some(Verdict::Denial(d)) = response.verdict.as_mut() {
                d.cap_name = cap.name.clone();
                d.cap_used = used;
            }
            return done(response);
        }
    }
    let reservation = ContactReservation {
        reservation_id: reservation_id.to_owned(),
        channel: request.channel,
        action_id: request.action_id.clone(),
        decision_id: request.decision_id.clone(),
        reserved_at: Some(ms_ts(now_ms)),
        expires_at: Some(ms_ts(now_ms.saturating_add(checked.ttl_ms))),
        request_id: request.request_id.clone(),
    };
    channel_entry(profile, request.channel)
        .pending
        .push(reservation.clone());
    Ok(Outcome {
        value: ReserveContactResponse {
            verdict: Some(Verdict::Reservation(reservation)),
        },
        changed: true,
    })
}

/// Turns a pending reservation into a contact; a repeated commit returns the same contact.
pub(crate) fn commit(
    profile: &mut Profile,
    request: &CommitContactRequest,
    now_ms: i64,
    config: &FoldConfig,
) -> Result<Outcome<ContactRecord>, ContactError> {
    check_commit(request)?;
    let id = request.reservation_id.as_str();
    let changed = expire(profile, now_ms, config);
    if let Some((c, p)) = find_pending(profile, |r| r.reservation_id == id) {
        let reservation = profile.contacts[c].pending.remove(p);
        let contacted_ms = opt_ms(request.contacted_at.as_ref()).unwrap_or(now_ms);
        let record = ContactRecord {
            action_id: reservation.action_id,
            decision_id: reservation.decision_id,
            reservation_id: reservation.reservation_id.clone(),
            contacted_at: Some(ms_ts(contacted_ms)),
            outcome: 0,
            outcome_at: None,
        };
        let channel = &mut profile.contacts[c];
        insert_recent(&mut channel.recent, record.clone(), limit(config));
        channel.total += 1;
        max_ts(&mut channel.last_contact_at, contacted_ms);
        let channel_id = channel.channel;
        push_closed(
            profile,
            ClosedReservation {
                reservation_id: reservation.reservation_id,
                state: ReservationState::Committed as i32,
                closed_at: Some(ms_ts(now_ms)),
                channel: channel_id,
                contact: Some(record.clone()),
            },
            kept(config),
        );
        return Ok(Outcome {
            value: record,
            changed: true,
        });
    }
    let closed = profile
        .closed_reservations
        .iter()
        .rev()
        .find(|c| c.reservation_id == id);
    match closed.map(|c| (ReservationState::try_from(c.state), c)) {
        Some((Ok(ReservationState::Committed), c)) => {
            // The history holds the contact with its latest outcome, while it is kept there.
            let current = profile
                .contacts
                .iter()
                .flat_map(|ch| ch.recent.iter())
                .find(|r| r.reservation_id == id)
                .or(c.contact.as_ref())
                .cloned()
                .unwrap_or_default();
            Ok(Outcome {
                value: current,
                changed,
            })
        }
        Some((Ok(ReservationState::Released), _)) => Err(ContactError::NotFound(format!(
            "reservation {id:?} was released"
        ))),
        Some((Ok(ReservationState::Expired), _)) => Err(ContactError::NotFound(format!(
            "reservation {id:?} expired"
        ))),
        _ => Err(ContactError::NotFound(format!(
            "unknown reservation {id:?}"
        ))),
    }
}

/// Gives a reservation back; answers the state it was in.
pub(crate) fn release(
    profile: &mut Profile,
    reservation_id: &str,
    now_ms: i64,
    config: &FoldConfig,
) -> Outcome<ReservationState> {
    let changed = expire(profile, now_ms, config);
    if let Some((c, p)) = find_pending(profile, |r| r.reservation_id == reservation_id) {
        let reservation = profile.contacts[c].pending.remove(p);
        push_closed(
            profile,
            ClosedReservation {
                reservation_id: reservation.reservation_id,
                state: ReservationState::Released as i32,
                closed_at: Some(ms_ts(now_ms)),
                channel: reservation.channel,
                contact: None,
            },
            kept(config),
        );
        return Outcome {
            value: ReservationState::Pending,
            changed: true,
        };
    }
    let state = profile
        .closed_reservations
        .iter()
        .rev()
        .find(|c| c.reservation_id == reservation_id)
        .and_then(|c| ReservationState::try_from(c.state).ok())
        .unwrap_or(ReservationState::Unknown);
    Outcome {
        value: state,
        changed,
    }
}
