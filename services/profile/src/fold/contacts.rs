//! Contact history: committed contacts per channel (newest first, bounded), outcomes reported by
//! `decision_outcome` events, and dismissals per channel and per action.

use iee_api::pb::common::Event;
use iee_api::pb::profile::{
    ActionDismissals, ChannelContacts, ClosedReservation, ContactOutcome, ContactRecord, Profile,
};

use super::props;
use super::time::{max_ts, ms_ts, opt_ms, ts_ms};

/// Dismissal times kept per action (the largest suppression rule allowed).
pub(crate) const DISMISSALS_KEPT: usize = 16;

/// The contacts of `channel`, created on first use.
pub(crate) fn channel_entry(profile: &mut Profile, channel: i32) -> &mut ChannelContacts {
    let index = match profile.contacts.iter().position(|c| c.channel == channel) {
        Some(i) => i,
        None => {
            profile.contacts.push(ChannelContacts {
                channel,
                ..ChannelContacts::default()
            });
            profile.contacts.len() - 1
        }
    };
    &mut profile.contacts[index]
}

fn contacted_ms(r: &ContactRecord) -> i64 {
    opt_ms(r.contacted_at.as_ref()).unwrap_or(0)
}

/// Inserts a contact into a newest-first list, keeping at most `limit`.
pub(crate) fn insert_recent(recent: &mut Vec<ContactRecord>, record: ContactRecord, limit: usize) {
    let at = contacted_ms(&record);
    let index = recent
        .iter()
        .position(|r| contacted_ms(r) <= at)
        .unwrap_or(recent.len());
    recent.insert(index, record);
    recent.truncate(limit);
}

/// Appends a closed reservation, keeping the newest `kept`.
pub(crate) fn push_closed(profile: &mut Profile, closed: ClosedReservation, kept: usize) {
    profile.closed_reservations.push(closed);
    let excess = profile.closed_reservations.len().saturating_sub(kept);
    profile.closed_reservations.drain(..excess);
}

/// The outcome a `decision_outcome` event reports, from its `kind` (or `outcome`) property:
/// `impression`, `click`, `accept`, `convert` or `dismiss` (the `OUTCOME_KIND_` names and
/// their numbers 1-5 are accepted too).
pub(crate) fn outcome_of(event: &Event) -> Option<ContactOutcome> {
    let raw = props::first_string(event, &["kind", "outcome", "outcome_kind"])?;
    let lower = raw.to_ascii_lowercase();
    let name = lower.strip_prefix("outcome_kind_").unwrap_or(&lower);
    Some(match name {
        "impression" | "1" => ContactOutcome::Impression,
        "click" | "2" => ContactOutcome::Click,
        "accept" | "3" => ContactOutcome::Accept,
        "convert" | "conversion" | "4" => ContactOutcome::Convert,
        "dismiss" | "dismissal" | "5" => ContactOutcome::Dismiss,
        _ => return None,
    })
}

/// Whether `new` replaces `current` as a contact's outcome: outcomes only move further
/// (impression < click < accept < convert); a dismissal ends the contact unless the customer
/// already accepted or converted, and nothing replaces a dismissal.
pub(crate) fn advances(current: ContactOutcome, new: ContactOutcome) -> bool {
    use ContactOutcome as O;
    let rank = |o: O| match o {
        O::Unspecified => 0,
        O::Impression => 1,
        O::Click => 2,
        O::Accept => 3,
        O::Convert => 4,
        O::Dismiss => 5,
    };
    match (current, new) {
        (O::Dismiss, _) => false,
        (O::Accept | O::Convert, O::Dismiss) => false,
        (_, O::Dismiss) => true,
        (c, n) => rank(n) > rank(c),
    }
}

/// Applies a `decision_outcome` event: updates the matching contact's outcome and counts
/// dismissals. Returns whether anything changed.
pub(crate) fn record_outcome(profile: &mut Profile, event: &Event, at_ms: i64) -> bool {
    let Some(outcome) = outcome_of(event) else {
        return false;
    };
    let decision_id = props::string(event, "decision_id").unwrap_or_default();
    let action_id = props::string(event, "action_id").unwrap_or_default();
    let mut changed = false;
    let mut contact_channel = None;
    // The event's channel first, then the others: decisions usually report where they showed.
    let mut order: Vec<usize> = (0..profile.contacts.len()).collect();
    order.sort_by_key(|&i| profile.contacts[i].channel != event.channel);
    'search: for i in order {
        let channel = profile.contacts[i].channel;
        for record in &mut profile.contacts[i].recent {
            let matches = record.action_id == action_id
                && (decision_id.is_empty() || record.decision_id == decision_id);
            if matches {
                contact_channel = Some(channel);
                let current = ContactOutcome::try_from(record.outcome).unwrap_or_default();
                if advances(current, outcome) {
                    record.outcome = outcome as i32;
                    record.outcome_at = Some(ms_ts(at_ms));
                    changed = true;
                }
                break 'search;
            }
        }
    }
    if outcome == ContactOutcome::Dismiss {
        let channel = contact_channel.unwrap_or(event.channel);
        if channel != 0 {
            let entry = channel_entry(profile, channel);
            entry.dismissals += 1;
            max_ts(&mut entry.last_dismissed_at, at_ms);
        }
        if !action_id.is_empty() {
            let d = profile.action_dismissals.entry(action_id).or_default();
            record_dismissal(d, at_ms);
        }
        changed = true;
    }
    changed
}

fn record_dismissal(d: &mut ActionDismissals, at_ms: i64) {
    d.count += 1;
    max_ts(&mut d.last_dismissed_at, at_ms);
    let index = d
        .recent
        .iter()
        .position(|t| ts_ms(t) <= at_ms)
        .unwrap_or(d.recent.len());
    d.recent.insert(index, ms_ts(at_ms));
    d.recent.truncate(DISMISSALS_KEPT);
}

/// Merges an anonymous profile's contact history, pending reservations, dismissals and closed
/// reservations.
pub(crate) fn merge(profile: &mut Profile, other: &Profile, limit: usize, closed_kept: usize) {
    for theirs in &other.contacts {
        let ours = channel_entry(profile, theirs.channel);
        for record in &theirs.recent {
            let known = !record.reservation_id.is_empty()
                && ours
                    .recent
                    .iter()
                    .any(|r| r.reservation_id == record.reservation_id);
            if !known {
                insert_recent(&mut ours.recent, record.clone(), limit);
            }
        }
        ours.total += theirs.total;
        ours.dismissals += theirs.dismissals;
        if let Some(t) = opt_ms(theirs.last_contact_at.as_ref()) {
            max_ts(&mut ours.last_contact_at, t);
        }
        if let Some(t) = opt_ms(theirs.last_dismissed_at.as_ref()) {
            max_ts(&mut ours.last_dismissed_at, t);
        }
        for pending in &theirs.pending {
            if !ours
                .pending
                .iter()
                .any(|p| p.reservation_id == pending.reservation_id)
            {
                ours.pending.push(pending.clone());
            }
        }
    }
    for (action, theirs) in &other.action_dismissals {
        let ours = profile.action_dismissals.entry(action.clone()).or_default();
        let count = ours.count + theirs.count;
        for t in &theirs.recent {
            record_dismissal(ours, ts_ms(t));
        }
        ours.count = count;
        if let Some(t) = opt_ms(theirs.last_dismissed_at.as_ref()) {
            max_ts(&mut ours.last_dismissed_at, t);
        }
    }
    for closed in &other.closed_reservations {
        push_closed(profile, closed.clone(), closed_kept);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fold::props::build::s;

    fn record(action: &str, decision: &str, at: i64) -> ContactRecord {
        ContactRecord {
            action_id: action.into(),
            decision_id: decision.into(),
            reservation_id: format!("r-{action}-{at}"),
            contacted_at: Some(ms_ts(at)),
            ..ContactRecord::default()
        }
    }

    fn outcome_event(kind: &str, action: &str, decision: &str) -> Event {
        let mut e = Event {
            r#type: "decision_outcome".into(),
            channel: 4,
            ..Event::default()
        };
        e.properties.insert("kind".into(), s(kind));
        e.properties.insert("action_id".into(), s(action));
        e.properties.insert("decision_id".into(), s(decision));
        e
    }

    #[test]
    fn recent_is_newest_first_and_bounded() {
        let mut recent = vec![];
        for at in [5, 1, 9, 3] {
            insert_recent(&mut recent, record("a", "d", at), 3);
        }
        let times: Vec<i64> = recent.iter().map(contacted_ms).collect();
        assert_eq!(times, vec![9, 5, 3]);
    }

    #[test]
    fn outcomes_only_move_forward_and_dismiss_is_final() {
        use ContactOutcome as O;
        assert!(advances(O::Impression, O::Click));
        assert!(!advances(O::Convert, O::Click));
        assert!(advances(O::Click, O::Dismiss));
        assert!(!advances(O::Accept, O::Dismiss));
        assert!(!advances(O::Dismiss, O::Convert));
    }

    #[test]
    fn outcome_events_update_the_contact_and_count_dismissals() {
        let mut p = Profile::default();
        channel_entry(&mut p, 4)
            .recent
            .push(record("offer", "d1", 10));
        assert!(record_outcome(
            &mut p,
            &outcome_event("OUTCOME_KIND_CLICK", "offer", "d1"),
            20
        ));
        assert_eq!(
            p.contacts[0].recent[0].outcome,
            ContactOutcome::Click as i32
        );
        assert!(!record_outcome(
            &mut p,
            &outcome_event("impression", "offer", "d1"),
            21
        ));
        assert!(record_outcome(
            &mut p,
            &outcome_event("dismiss", "offer", "d1"),
            30
        ));
        assert!(record_outcome(
            &mut p,
            &outcome_event("dismiss", "offer", "d9"),
            40
        ));
        assert_eq!(p.contacts[0].dismissals, 2);
        let d = &p.action_dismissals["offer"];
        assert_eq!(d.count, 2);
        let recent: Vec<i64> = d.recent.iter().map(ts_ms).collect();
        assert_eq!(recent, vec![40, 30]);
        assert!(!record_outcome(
            &mut p,
            &outcome_event("wave", "offer", "d1"),
            50
        ));
    }

    #[test]
    fn closed_reservations_are_bounded() {
        let mut p = Profile::default();
        for i in 0..5 {
            push_closed(
                &mut p,
                ClosedReservation {
                    reservation_id: format!("r{i}"),
                    ..ClosedReservation::default()
                },
                3,
            );
        }
        let ids: Vec<&str> = p
            .closed_reservations
            .iter()
            .map(|c| c.reservation_id.as_str())
            .collect();
        assert_eq!(ids, vec!["r2", "r3", "r4"]);
    }
}
