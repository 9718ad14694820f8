//! Decayed event counters (half-lives 1, 7 and 30 days) per event type and per channel.
//! Values are kept as of a reference time that only moves forward; an event older than it adds
//! its own decayed contribution instead of moving the reference back.

use iee_api::pb::profile::{ChannelCounter, DecayedCounter, Profile};

use super::time::{DAY_MS, max_ts, ms_ts, opt_ms, secs_between};

/// The three half-lives, in days.
const HALF_LIVES_DAYS: [f64; 3] = [1.0, 7.0, 30.0];

fn factors(elapsed_secs: f64) -> [f64; 3] {
    #[allow(clippy::cast_precision_loss)]
    let day_secs = (DAY_MS / 1_000) as f64;
    HALF_LIVES_DAYS.map(|h| (-elapsed_secs / (h * day_secs)).exp2())
}

fn values(c: &DecayedCounter) -> [f64; 3] {
    [c.half_life_1d, c.half_life_7d, c.half_life_30d]
}

fn set_values(c: &mut DecayedCounter, v: [f64; 3]) {
    [c.half_life_1d, c.half_life_7d, c.half_life_30d] = v;
}

/// Moves the decayed values forward to `at_ms`; never backwards.
pub(crate) fn decay_to(c: &mut DecayedCounter, at_ms: i64) {
    let Some(as_of) = opt_ms(c.as_of.as_ref()) else {
        c.as_of = Some(ms_ts(at_ms));
        return;
    };
    if at_ms <= as_of {
        return;
    }
    let f = factors(secs_between(as_of, at_ms));
    let v = values(c);
    set_values(c, [v[0] * f[0], v[1] * f[1], v[2] * f[2]]);
    c.as_of = Some(ms_ts(at_ms));
}

/// Counts one event that occurred at `at_ms`.
pub(crate) fn add(c: &mut DecayedCounter, at_ms: i64) {
    add_weighted(c, at_ms, 1.0);
    c.total += 1;
    max_ts(&mut c.last_at, at_ms);
}

/// Adds `weight` at `at_ms` to the decayed values (not to the total).
fn add_weighted(c: &mut DecayedCounter, at_ms: i64, weight: f64) {
    decay_to(c, at_ms);
    let as_of = opt_ms(c.as_of.as_ref()).unwrap_or(at_ms);
    // An event older than `as_of` contributes what it would have decayed to by now.
    let f = factors(secs_between(at_ms, as_of).max(0.0));
    let v = values(c);
    set_values(
        c,
        [
            v[0] + weight * f[0],
            v[1] + weight * f[1],
            v[2] + weight * f[2],
        ],
    );
}

/// Adds counter `other` into `c` (both expressed at the later reference time).
pub(crate) fn merge(c: &mut DecayedCounter, other: &DecayedCounter) {
    let mut other = *other;
    if let Some(at) = opt_ms(c.as_of.as_ref()) {
        decay_to(&mut other, at);
    }
    if let Some(at) = opt_ms(other.as_of.as_ref()) {
        decay_to(c, at);
    }
    let (a, b) = (values(c), values(&other));
    set_values(c, [a[0] + b[0], a[1] + b[1], a[2] + b[2]]);
    c.total += other.total;
    if let Some(last) = opt_ms(other.last_at.as_ref()) {
        max_ts(&mut c.last_at, last);
    }
}

/// Counts an event of `event_type` on `channel` (channel 0, unspecified, gets no channel
/// counter).
pub(crate) fn count_event(profile: &mut Profile, event_type: &str, channel: i32, at_ms: i64) {
    add(
        profile
            .event_type_counters
            .entry(event_type.to_owned())
            .or_default(),
        at_ms,
    );
    if channel != 0 {
        add(
            channel_counter(&mut profile.channel_counters, channel),
            at_ms,
        );
    }
}

fn channel_counter(counters: &mut Vec<ChannelCounter>, channel: i32) -> &mut DecayedCounter {
    let index = match counters.iter().position(|c| c.channel == channel) {
        Some(i) => i,
        None => {
            counters.push(ChannelCounter {
                channel,
                counter: Some(DecayedCounter::default()),
            });
            counters.len() - 1
        }
    };
    counters[index].counter.get_or_insert_with(Default::default)
}

/// Decays every counter of the profile to `now_ms` (for readers).
pub(crate) fn decay_all(profile: &mut Profile, now_ms: i64) {
    for c in profile.event_type_counters.values_mut() {
        decay_to(c, now_ms);
    }
    for c in &mut profile.channel_counters {
        if let Some(c) = c.counter.as_mut() {
            decay_to(c, now_ms);
        }
    }
}

/// Merges the counters of `other` into `profile`.
pub(crate) fn merge_all(profile: &mut Profile, other: &Profile) {
    for (event_type, c) in &other.event_type_counters {
        merge(
            profile
                .event_type_counters
                .entry(event_type.clone())
                .or_default(),
            c,
        );
    }
    for c in &other.channel_counters {
        if let Some(counter) = c.counter.as_ref() {
            merge(
                channel_counter(&mut profile.channel_counters, c.channel),
                counter,
            );
        }
    }
}

/// Number of events counted in the profile (the sum of the per-type totals).
pub(crate) fn event_total(profile: &Profile) -> u64 {
    profile.event_type_counters.values().map(|c| c.total).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: i64 = DAY_MS;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9
    }

    #[test]
    fn value_halves_after_one_half_life() {
        let mut c = DecayedCounter::default();
        add(&mut c, 0);
        decay_to(&mut c, DAY);
        assert!(close(c.half_life_1d, 0.5), "{}", c.half_life_1d);
        assert!(close(c.half_life_7d, (-1.0f64 / 7.0).exp2()));
        decay_to(&mut c, 7 * DAY);
        assert!(close(c.half_life_7d, 0.5));
        assert_eq!(c.total, 1);
    }

    #[test]
    fn decay_never_moves_backwards() {
        let mut c = DecayedCounter::default();
        add(&mut c, 10 * DAY);
        decay_to(&mut c, 5 * DAY);
        assert_eq!(opt_ms(c.as_of.as_ref()), Some(10 * DAY));
        assert!(close(c.half_life_1d, 1.0));
    }

    #[test]
    fn out_of_order_event_adds_its_decayed_contribution() {
        // In order: events at day 0 and day 2, read at day 2.
        let mut in_order = DecayedCounter::default();
        add(&mut in_order, 0);
        add(&mut in_order, 2 * DAY);
        // Out of order: the day-2 event arrives first.
        let mut late = DecayedCounter::default();
        add(&mut late, 2 * DAY);
        add(&mut late, 0);
        assert_eq!(opt_ms(late.as_of.as_ref()), Some(2 * DAY));
        assert!(close(late.half_life_1d, 1.25), "{}", late.half_life_1d);
        assert!(close(in_order.half_life_1d, late.half_life_1d));
        assert!(close(in_order.half_life_30d, late.half_life_30d));
        assert_eq!(opt_ms(late.last_at.as_ref()), Some(2 * DAY));
        assert_eq!(late.total, 2);
    }

    #[test]
    fn merged_counters_equal_counting_both_streams() {
        let mut a = DecayedCounter::default();
        add(&mut a, 0);
        add(&mut a, 3 * DAY);
        let mut b = DecayedCounter::default();
        add(&mut b, DAY);
        let mut all = DecayedCounter::default();
        for t in [0, DAY, 3 * DAY] {
            add(&mut all, t);
        }
        merge(&mut b, &a);
        assert!(close(b.half_life_1d, all.half_life_1d));
        assert!(close(b.half_life_7d, all.half_life_7d));
        assert_eq!(b.total, 3);
        assert_eq!(b.as_of, all.as_of);
    }

    #[test]
    fn channels_and_types_are_counted_separately() {
        let mut p = Profile::default();
        count_event(&mut p, "page_view", 1, 0);
        count_event(&mut p, "page_view", 2, 0);
        count_event(&mut p, "identify", 0, 0);
        assert_eq!(p.event_type_counters["page_view"].total, 2);
        assert_eq!(p.channel_counters.len(), 2);
        assert_eq!(event_total(&p), 3);
    }
}
