//! Stitching: merging an anonymous visitor's profile into the known customer's when an
//! `identify` record carries it. Each part merges by its own rule (see the part's module).

use iee_api::pb::profile::Profile;

use super::config::FoldConfig;
use super::time::{max_ts, min_ts, opt_ms};
use super::{cart, contacts, counters, experience, identity, offsets, rfm, sentiment, sessions};

/// Merges `anon` into `profile` (the known customer's).
pub(crate) fn merge(profile: &mut Profile, anon: &Profile, config: &FoldConfig) {
    identity::merge(profile, anon);
    if let Some(t) = opt_ms(anon.first_seen_at.as_ref()) {
        min_ts(&mut profile.first_seen_at, t);
    }
    if let Some(t) = opt_ms(anon.last_seen_at.as_ref()) {
        let before = opt_ms(profile.last_seen_at.as_ref());
        max_ts(&mut profile.last_seen_at, t);
        if opt_ms(profile.last_seen_at.as_ref()) != before {
            profile.inactive = false;
        }
    }
    counters::merge_all(profile, anon);
    rfm::merge(profile, anon, config);
    if let Some(theirs) = anon.sessions.as_ref() {
        sessions::merge(
            profile.sessions.get_or_insert_with(Default::default),
            theirs,
            config,
        );
    }
    cart::merge(profile, anon, config);
    // The later statement of the journey stage wins.
    if anon.journey_stage != 0
        && (profile.journey_stage == 0
            || opt_ms(anon.journey_stage_since.as_ref())
                > opt_ms(profile.journey_stage_since.as_ref()))
    {
        profile.journey_stage = anon.journey_stage;
        profile.journey_stage_since = anon.journey_stage_since;
    }
    if let Some(theirs) = anon.sentiment.as_ref() {
        sentiment::merge(
            profile.sentiment.get_or_insert_with(Default::default),
            theirs,
        );
    }
    if let Some(theirs) = anon.surveys.as_ref() {
        experience::merge_surveys(profile.surveys.get_or_insert_with(Default::default), theirs);
    }
    if let Some(theirs) = anon.experience.as_ref() {
        experience::merge(
            profile.experience.get_or_insert_with(Default::default),
            theirs,
            config.experience_lookback_ms(),
        );
    }
    contacts::merge(
        profile,
        anon,
        usize::try_from(config.contact_history_limit).unwrap_or(usize::MAX),
        usize::try_from(config.closed_reservations_kept).unwrap_or(usize::MAX),
    );
    for (shard, offset) in &anon.applied_offsets {
        let ours = profile.applied_offsets.entry(*shard).or_default();
        if offsets::is_after(offset, ours) {
            ours.clone_from(offset);
        }
    }
}
