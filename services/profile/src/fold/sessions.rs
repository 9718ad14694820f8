//! Sessions: runs of events with gaps no longer than the inactivity timeout, with engaged and
//! bounced counts over ended sessions.

use iee_api::pb::profile::{Session, Sessions};

use super::config::FoldConfig;
use super::time::{duration_ms, ms_duration, ms_ts, opt_ms};

/// Event types that make a session converted (and so engaged).
pub(crate) const CONVERSIONS: &[&str] = &["purchase", "signup", "subscription_start"];

/// What sessions need to know of an event.
pub(crate) struct SessionEvent<'a> {
    pub event_id: &'a str,
    pub event_type: &'a str,
    pub channel: i32,
    pub touchpoint: &'a str,
    pub at_ms: i64,
}

fn started(s: &Session) -> i64 {
    opt_ms(s.started_at.as_ref()).unwrap_or(0)
}

fn last(s: &Session) -> i64 {
    opt_ms(s.last_event_at.as_ref()).unwrap_or(0)
}

/// Whether an ended session counts as engaged.
pub(crate) fn is_engaged(s: &Session, config: &FoldConfig) -> bool {
    let long_enough = last(s) - started(s) >= super::time::secs_ms(config.engaged_session_min_secs);
    s.converted || (s.event_count >= config.engaged_session_min_events && long_enough)
}

/// Whether an ended session is a bounce.
pub(crate) fn is_bounce(s: &Session) -> bool {
    s.event_count == 1 && !s.converted
}

/// Assigns an event to a session. Returns false if the event is older than the current session
/// by more than the timeout: such a late event belongs to a session that has already ended and
/// is left out of the session figures.
pub(crate) fn on_event(sessions: &mut Sessions, e: &SessionEvent<'_>, config: &FoldConfig) -> bool {
    let timeout = config.session_timeout_ms();
    let converted = CONVERSIONS.contains(&e.event_type);
    if let Some(current) = sessions.current.as_mut() {
        if e.at_ms <= last(current) + timeout && e.at_ms >= started(current) - timeout {
            current.event_count = current.event_count.saturating_add(1);
            current.converted |= converted;
            if e.at_ms > last(current) {
                current.last_event_at = Some(ms_ts(e.at_ms));
            }
            if e.at_ms < started(current) {
                current.started_at = Some(ms_ts(e.at_ms));
            }
            return true;
        }
        if e.at_ms < started(current) {
            return false;
        }
    }
    end_current(sessions, config);
    sessions.count += 1;
    sessions.current = Some(Session {
        session_id: e.event_id.to_owned(),
        started_at: Some(ms_ts(e.at_ms)),
        last_event_at: Some(ms_ts(e.at_ms)),
        event_count: 1,
        channel: e.channel,
        entry_touchpoint: e.touchpoint.to_owned(),
        converted,
    });
    true
}

/// Ends the current session if its last event lies more than the timeout before `now_ms`.
pub(crate) fn close_if_timed_out(sessions: &mut Sessions, now_ms: i64, config: &FoldConfig) {
    if sessions
        .current
        .as_ref()
        .is_some_and(|c| now_ms - last(c) > config.session_timeout_ms())
    {
        end_current(sessions, config);
    }
}

fn end_current(sessions: &mut Sessions, config: &FoldConfig) {
    if let Some(current) = sessions.current.take() {
        record_ended(sessions, &current, config);
        if sessions
            .previous
            .as_ref()
            .is_none_or(|p| last(p) <= last(&current))
        {
            sessions.previous = Some(current);
        }
    }
}

/// Adds an ended session to the ended figures (running means).
fn record_ended(sessions: &mut Sessions, s: &Session, config: &FoldConfig) {
    sessions.ended_count += 1;
    #[allow(clippy::cast_precision_loss)]
    let n = sessions.ended_count as f64;
    sessions.average_events += (f64::from(s.event_count) - sessions.average_events) / n;
    let avg_ms = sessions
        .average_duration
        .as_ref()
        .and_then(duration_ms)
        .unwrap_or(0);
    #[allow(clippy::cast_precision_loss)]
    let (avg, dur) = (avg_ms as f64, (last(s) - started(s)) as f64);
    #[allow(clippy::cast_possible_truncation)]
    let new_avg = (avg + (dur - avg) / n).round() as i64;
    sessions.average_duration = Some(ms_duration(new_avg));
    if is_engaged(s, config) {
        sessions.engaged_count += 1;
    }
    if is_bounce(s) {
        sessions.bounce_count += 1;
    }
}

/// Merges the sessions of an anonymous profile (`other`) into `sessions`. Current sessions that
/// overlap within the timeout (browsing anonymously, then logging in) become one session.
pub(crate) fn merge(sessions: &mut Sessions, other: &Sessions, config: &FoldConfig) {
    // Ended figures: weighted means.
    let (n1, n2) = (sessions.ended_count, other.ended_count);
    if n1 + n2 > 0 {
        #[allow(clippy::cast_precision_loss)]
        let (w1, w2, n) = (n1 as f64, n2 as f64, (n1 + n2) as f64);
        sessions.average_events = (sessions.average_events * w1 + other.average_events * w2) / n;
        let d = |s: &Sessions| {
            #[allow(clippy::cast_precision_loss)]
            let ms = s
                .average_duration
                .as_ref()
                .and_then(duration_ms)
                .unwrap_or(0) as f64;
            ms
        };
        #[allow(clippy::cast_possible_truncation)]
        let avg = ((d(sessions) * w1 + d(other) * w2) / n).round() as i64;
        sessions.average_duration = Some(ms_duration(avg));
    }
    sessions.ended_count += other.ended_count;
    sessions.engaged_count += other.engaged_count;
    sessions.bounce_count += other.bounce_count;
    sessions.count += other.count;
    if let Some(prev) = other.previous.as_ref()
        && sessions
            .previous
            .as_ref()
            .is_none_or(|p| last(p) < last(prev))
    {
        sessions.previous = Some(prev.clone());
    }
    let Some(theirs) = other.current.clone() else {
        return;
    };
    let Some(ours) = sessions.current.take() else {
        sessions.current = Some(theirs);
        return;
    };
    let timeout = config.session_timeout_ms();
    let overlap =
        last(&theirs) + timeout >= started(&ours) && last(&ours) + timeout >= started(&theirs);
    if overlap {
        let (first, second) = if started(&theirs) <= started(&ours) {
            (theirs, ours)
        } else {
            (ours, theirs)
        };
        let mut joined = first;
        joined.event_count = joined.event_count.saturating_add(second.event_count);
        joined.converted |= second.converted;
        if last(&second) > last(&joined) {
            joined.last_event_at = second.last_event_at;
        }
        sessions.current = Some(joined);
        sessions.count = sessions.count.saturating_sub(1);
        return;
    }
    let (older, newer) = if last(&theirs) <= last(&ours) {
        (theirs, ours)
    } else {
        (ours, theirs)
    };
    sessions.current = Some(older);
    end_current(sessions, config);
    sessions.current = Some(newer);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fold::time::MINUTE_MS;

    fn ev(id: &str, event_type: &'static str, at_ms: i64) -> SessionEvent<'static> {
        SessionEvent {
            event_id: Box::leak(id.to_owned().into_boxed_str()),
            event_type,
            channel: 1,
            touchpoint: "home",
            at_ms,
        }
    }

    #[test]
    fn gap_over_thirty_minutes_starts_a_new_session() {
        let config = FoldConfig::default();
        let mut s = Sessions::default();
        on_event(&mut s, &ev("a", "page_view", 0), &config);
        on_event(&mut s, &ev("b", "page_view", 30 * MINUTE_MS), &config);
        assert_eq!(
            s.count, 1,
            "a gap of exactly 30 minutes stays in the session"
        );
        on_event(&mut s, &ev("c", "page_view", 60 * MINUTE_MS + 1), &config);
        assert_eq!(s.count, 2);
        assert_eq!(s.ended_count, 1);
        let prev = s
            .previous
            .as_ref()
            .map(|p| (p.session_id.clone(), p.event_count));
        assert_eq!(prev, Some(("a".to_owned(), 2)));
        assert_eq!(s.current.as_ref().map(|c| c.session_id.as_str()), Some("c"));
        assert_eq!(
            s.average_duration.as_ref().and_then(duration_ms),
            Some(30 * MINUTE_MS)
        );
        assert!((s.average_events - 2.0).abs() < 1e-9);
        assert_eq!(s.engaged_count, 1);
    }

    #[test]
    fn one_event_session_is_a_bounce_unless_it_converts() {
        let config = FoldConfig::default();
        let mut s = Sessions::default();
        on_event(&mut s, &ev("a", "page_view", 0), &config);
        on_event(&mut s, &ev("b", "purchase", 60 * MINUTE_MS), &config);
        close_if_timed_out(&mut s, 200 * MINUTE_MS, &config);
        assert_eq!((s.ended_count, s.bounce_count, s.engaged_count), (2, 1, 1));
        assert!(s.current.is_none());
    }

    #[test]
    fn two_quick_events_are_not_engaged() {
        let config = FoldConfig::default();
        let mut s = Sessions::default();
        on_event(&mut s, &ev("a", "page_view", 0), &config);
        on_event(&mut s, &ev("b", "page_view", 2_000), &config);
        close_if_timed_out(&mut s, 100 * MINUTE_MS, &config);
        assert_eq!((s.ended_count, s.engaged_count, s.bounce_count), (1, 0, 0));
    }

    #[test]
    fn late_event_joins_the_current_session_or_is_left_out() {
        let config = FoldConfig::default();
        let mut s = Sessions::default();
        on_event(&mut s, &ev("a", "page_view", 100 * MINUTE_MS), &config);
        assert!(on_event(
            &mut s,
            &ev("b", "page_view", 90 * MINUTE_MS),
            &config
        ));
        let cur = s.current.clone().unwrap_or_default();
        assert_eq!(opt_ms(cur.started_at.as_ref()), Some(90 * MINUTE_MS));
        assert_eq!(opt_ms(cur.last_event_at.as_ref()), Some(100 * MINUTE_MS));
        assert!(!on_event(&mut s, &ev("c", "page_view", 0), &config));
        assert_eq!((s.count, cur.event_count), (1, 2));
    }

    #[test]
    fn overlapping_current_sessions_merge_into_one() {
        let config = FoldConfig::default();
        let mut anon = Sessions::default();
        on_event(&mut anon, &ev("a1", "page_view", 0), &config);
        on_event(&mut anon, &ev("a2", "page_view", 5 * MINUTE_MS), &config);
        let mut known = Sessions::default();
        on_event(&mut known, &ev("k1", "login", 6 * MINUTE_MS), &config);
        merge(&mut known, &anon, &config);
        assert_eq!(known.count, 1);
        let cur = known.current.clone().unwrap_or_default();
        assert_eq!((cur.session_id.as_str(), cur.event_count), ("a1", 3));

        let mut old = Sessions::default();
        on_event(&mut old, &ev("o1", "page_view", -600 * MINUTE_MS), &config);
        merge(&mut known, &old, &config);
        assert_eq!((known.count, known.ended_count), (2, 1));
        assert_eq!(
            known.current.as_ref().map(|c| c.session_id.as_str()),
            Some("a1")
        );
        assert_eq!(known.bounce_count, 1);
    }
}
