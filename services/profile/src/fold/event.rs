//! Folding one event into every part of a profile (counters, sessions, identity, consent,
//! RFM, cart, sentiment, surveys, experience, contact outcomes, journey).

use iee_api::pb::common::{Event, JourneyStage};
use iee_api::pb::profile::{Detractor, Profile, Signal, SignalKind, SurveyRecord, signal::Details};

use super::effects::signal;
use super::experience::{self, NpsClass};
use super::journey::{self, Trigger};
use super::sentiment::{self, Analyser};
use super::sessions::{self, SessionEvent};
use super::time::{max_ts, min_ts, ms_ts, opt_ms};
use super::{FoldConfig, cart, contacts, counters, identity, rfm};

/// Folds one event into every part of the profile.
pub(crate) fn fold_event(
    config: &FoldConfig,
    analyser: &Analyser,
    profile: &mut Profile,
    event: &Event,
    at_ms: i64,
    trigger: &str,
    signals: &mut Vec<Signal>,
) {
    min_ts(&mut profile.first_seen_at, at_ms);
    let last_before = opt_ms(profile.last_seen_at.as_ref());
    max_ts(&mut profile.last_seen_at, at_ms);
    if opt_ms(profile.last_seen_at.as_ref()) != last_before {
        profile.inactive = false;
    }
    counters::count_event(profile, &event.r#type, event.channel, at_ms);
    sessions::on_event(
        profile.sessions.get_or_insert_with(Default::default),
        &SessionEvent {
            event_id: &event.event_id,
            event_type: &event.r#type,
            channel: event.channel,
            touchpoint: &event.touchpoint,
            at_ms,
        },
        config,
    );
    identity::record_traits(profile, event, at_ms);
    identity::record_consent(profile, event, at_ms);
    match event.r#type.as_str() {
        "purchase" => rfm::purchase(profile, at_ms, event.value.as_ref(), config),
        "refund" => rfm::refund(profile, event.value.as_ref(), config),
        _ => {}
    }
    cart::on_event(profile, event, at_ms, config);
    let score = analyser.event_score(event);
    if let Some(s) = score {
        sentiment::update(
            profile.sentiment.get_or_insert_with(Default::default),
            s,
            at_ms,
            config.sentiment_alpha,
        );
    }
    let stored = experience::record_survey(profile, event, at_ms);
    let nps = event.survey.as_ref().and_then(experience::nps_class);
    if nps == Some(NpsClass::Detractor) {
        let survey = stored.or_else(|| {
            Some(SurveyRecord {
                answer: event.survey.clone(),
                answered_at: Some(ms_ts(at_ms)),
                channel: event.channel,
                touchpoint: event.touchpoint.clone(),
                event_id: event.event_id.clone(),
            })
        });
        signals.push(signal(
            profile,
            SignalKind::Detractor,
            trigger,
            Details::Detractor(Detractor { survey }),
        ));
    }
    if let Some(value) = experience::event_value(event, score) {
        experience::record(
            profile.experience.get_or_insert_with(Default::default),
            value,
            at_ms,
            config.experience_lookback_ms(),
        );
    }
    if event.r#type == "decision_outcome" {
        contacts::record_outcome(profile, event, at_ms);
    }
    let stage = JourneyStage::try_from(profile.journey_stage).unwrap_or_default();
    let next = journey::next(
        stage,
        Trigger::Event {
            event_type: &event.r#type,
            explicit: JourneyStage::try_from(event.journey_stage).unwrap_or_default(),
            nps,
            sentiment: score,
            purchases: purchases(profile),
        },
    );
    profile.journey_stage = next as i32;
}

/// Purchases recorded so far.
pub(crate) fn purchases(profile: &Profile) -> u64 {
    profile.rfm.as_ref().map_or(0, |r| r.purchase_count)
}
