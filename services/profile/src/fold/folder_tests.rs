//! Behaviour of [`Folder::apply`], [`Folder::fire_timer`], [`Folder::view`] and stitching.

use iee_api::pb::common::{JourneyStage, Money, SurveyAnswer, SurveyKind};
use iee_api::pb::profile::{ConsentStatus, Profile, SignalKind, signal::Details};

use super::props::build::{b, n, s};
use super::test_support::*;
use super::time::{opt_ms, ts_ms};
use super::{Applied, FoldConfig, Folder, TimerKind};

fn total(p: &Profile, event_type: &str) -> u64 {
    p.event_type_counters.get(event_type).map_or(0, |c| c.total)
}

#[test]
fn folder_is_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<Folder>();
}

#[test]
fn same_offset_twice_is_applied_once() {
    let f = folder();
    let mut p = Profile::default();
    let r = rec(ev("e1", "page_view", T0));
    assert!(matches!(
        f.apply(&mut p, &r, 3, "0-9", at(T0)),
        Applied::Changed(_)
    ));
    let after_first = p.clone();
    assert_eq!(f.apply(&mut p, &r, 3, "0-9", at(T0)), Applied::Skipped);
    assert_eq!(
        f.apply(&mut p, &rec(ev("e0", "page_view", T0)), 3, "0-8", at(T0)),
        Applied::Skipped
    );
    assert_eq!(p, after_first);
    assert_eq!((total(&p, "page_view"), p.version), (1, 1));
    // Offsets compare numerically: 0-10 comes after 0-9.
    assert!(matches!(
        f.apply(&mut p, &rec(ev("e2", "page_view", T0)), 3, "0-10", at(T0)),
        Applied::Changed(_)
    ));
    assert_eq!((total(&p, "page_view"), p.version), (2, 2));
    assert_eq!(p.applied_offsets.get(&3).map(String::as_str), Some("0-10"));
    // Another shard's log has its own offsets.
    assert!(matches!(
        f.apply(&mut p, &rec(ev("e3", "page_view", T0)), 4, "0-1", at(T0)),
        Applied::Changed(_)
    ));
}

#[test]
fn first_event_sets_customer_shard_and_timers() {
    let mut feed = Feed::new();
    let effects = feed.apply(ev("e1", "page_view", T0));
    let customer = feed.profile.customer.clone().unwrap_or_default();
    assert_eq!(
        (customer.tenant_id.as_str(), customer.customer_id.as_str()),
        ("acme", "c-1")
    );
    assert!(customer.anonymous_id.is_empty());
    assert_eq!((feed.profile.shard, feed.profile.version), (7, 1));
    assert_eq!(
        due(&effects, TimerKind::Inactive),
        Some(Some(T0 + 30 * DAY))
    );
    assert_eq!(due(&effects, TimerKind::CartIdle), Some(None));
}

#[test]
fn anonymous_event_makes_an_anonymous_profile() {
    let mut feed = Feed::new();
    let mut e = ev("e1", "page_view", T0);
    e.customer_id.clear();
    e.anonymous_id = "v-1".into();
    feed.apply(e);
    let customer = feed.profile.customer.clone().unwrap_or_default();
    assert_eq!(
        (
            customer.customer_id.as_str(),
            customer.anonymous_id.as_str()
        ),
        ("", "v-1")
    );
}

#[test]
fn out_of_order_event_adds_its_decayed_contribution() {
    let mut feed = Feed::new();
    feed.apply(ev("late", "page_view", T0 + 2 * DAY));
    feed.apply(ev("early", "page_view", T0));
    let c = feed.profile.event_type_counters["page_view"];
    assert_eq!(
        opt_ms(c.as_of.as_ref()),
        Some(T0 + 2 * DAY),
        "decay never moves backwards"
    );
    assert!((c.half_life_1d - 1.25).abs() < 1e-9, "{}", c.half_life_1d);
    assert_eq!(opt_ms(feed.profile.first_seen_at.as_ref()), Some(T0));
    assert_eq!(
        opt_ms(feed.profile.last_seen_at.as_ref()),
        Some(T0 + 2 * DAY)
    );
    let web = &feed.profile.channel_counters[0];
    assert_eq!(web.counter.as_ref().map(|c| c.total), Some(2));
}

#[test]
fn session_splits_after_thirty_minutes_of_inactivity() {
    let mut feed = Feed::new();
    feed.apply(ev("a", "page_view", T0));
    feed.apply(ev("b", "page_view", T0 + 29 * MIN));
    feed.apply(ev("c", "page_view", T0 + 59 * MIN + 1));
    let s = feed.profile.sessions.clone().unwrap_or_default();
    assert_eq!((s.count, s.ended_count, s.engaged_count), (2, 1, 1));
    assert_eq!(s.previous.as_ref().map(|p| p.event_count), Some(2));
    assert_eq!(s.current.as_ref().map(|c| c.session_id.as_str()), Some("c"));
    // A reader after the timeout sees the session ended; the stored profile is untouched.
    let view = feed.folder.view(&feed.profile, at(T0 + 120 * MIN));
    let vs = view.sessions.unwrap_or_default();
    assert!(vs.current.is_none());
    assert_eq!((vs.ended_count, vs.bounce_count), (2, 1));
    assert!(
        feed.profile
            .sessions
            .as_ref()
            .is_some_and(|s| s.current.is_some())
    );
}

#[test]
fn cart_timer_fires_only_while_current() {
    let mut feed = Feed::new();
    let add = |id: &str, t: i64| with(ev(id, "add_to_cart", t), "product_id", s("shoe"));
    let effects = feed.apply(add("a1", T0));
    assert_eq!(due(&effects, TimerKind::CartIdle), Some(Some(T0 + HOUR)));
    let effects = feed.apply(add("a2", T0 + 10 * MIN));
    let current = T0 + 10 * MIN + HOUR;
    assert_eq!(due(&effects, TimerKind::CartIdle), Some(Some(current)));
    // The first timer is stale now.
    assert_eq!(feed.fire(TimerKind::CartIdle, T0 + HOUR), Applied::Skipped);
    let version = feed.profile.version;
    let Applied::Changed(fired) = feed.fire(TimerKind::CartIdle, current) else {
        panic!("current cart timer must fire");
    };
    assert_eq!(kinds(&fired.signals), vec![SignalKind::CartAbandoned]);
    assert_eq!(fired.signals[0].profile_version, version + 1);
    assert!(feed.profile.cart.as_ref().is_some_and(|c| c.abandoned));
    let Some(Details::CartAbandoned(details)) = fired.signals[0].details.clone() else {
        panic!("cart details expected");
    };
    assert_eq!(details.cart.map(|c| c.items.len()), Some(1));
    assert_eq!(details.idle_for.map(|d| d.seconds), Some(3_600));
    // Once per cart contents.
    assert_eq!(feed.fire(TimerKind::CartIdle, current), Applied::Skipped);
    let effects = feed.apply(ev("p", "purchase", T0 + 2 * HOUR));
    assert_eq!(due(&effects, TimerKind::CartIdle), Some(None));
    assert!(
        feed.profile
            .cart
            .as_ref()
            .is_some_and(|c| c.items.is_empty() && !c.abandoned)
    );
}

#[test]
fn inactive_fires_once_per_quiet_period() {
    let mut feed = Feed::new();
    feed.apply(ev("b", "purchase", T0));
    feed.apply(ev("v", "page_view", T0 + DAY));
    assert_eq!(
        feed.fire(TimerKind::Inactive, T0 + 30 * DAY),
        Applied::Skipped
    );
    let due_ms = T0 + 31 * DAY;
    let Applied::Changed(fired) = feed.fire(TimerKind::Inactive, due_ms) else {
        panic!("current inactive timer must fire");
    };
    // A customer who bought and went quiet is at risk.
    assert_eq!(
        kinds(&fired.signals),
        vec![SignalKind::Inactive, SignalKind::JourneyStageChanged]
    );
    assert_eq!(feed.profile.journey_stage, JourneyStage::ChurnRisk as i32);
    assert_eq!(feed.fire(TimerKind::Inactive, due_ms), Applied::Skipped);
    feed.apply(ev("w", "page_view", T0 + 40 * DAY));
    assert!(!feed.profile.inactive);
}

#[test]
fn signal_ids_repeat_on_replay_into_a_fresh_profile() {
    let run = || {
        let mut feed = Feed::new();
        feed.apply(ev("v", "page_view", T0));
        feed.fire(TimerKind::Inactive, T0 + 30 * DAY)
    };
    let (Applied::Changed(a), Applied::Changed(b)) = (run(), run()) else {
        panic!("both runs must fire");
    };
    assert_eq!(a.signals, b.signals);
    assert!(!a.signals[0].signal_id.is_empty());
}

fn chat(id: &str, t: i64, text: &str) -> iee_api::pb::common::Event {
    let mut e = ev(id, "chat_message", t);
    e.text = Some(text.into());
    e
}

#[test]
fn negative_experience_fires_on_the_crossing_only() {
    let mut feed = Feed::new();
    feed.apply(chat("c0", T0, "Thanks, that is great, I love it!"));
    let bad = "This is terrible, awful service, I hate it!";
    let mut fired = vec![];
    for i in 0..4 {
        let effects = feed.apply(chat(&format!("b{i}"), T0 + (i + 1) * MIN, bad));
        fired.push(kinds(&effects.signals).contains(&SignalKind::NegativeExperience));
    }
    assert_eq!(fired.iter().filter(|f| **f).count(), 1, "{fired:?}");
    let ewma = feed.profile.sentiment.as_ref().map_or(0.0, |s| s.ewma);
    assert!(ewma < -0.5, "{ewma}");
    // Recover above both thresholds, then fall again: a new episode, a new signal.
    for i in 0..8 {
        feed.apply(chat(
            &format!("g{i}"),
            T0 + HOUR + i * MIN,
            "Wonderful, excellent, thank you so much!",
        ));
    }
    let score = feed.profile.experience.as_ref().map_or(0.0, |e| e.score);
    assert!(score >= -0.5, "{score}");
    // The positive peak now holds the peak-end score up; the sentiment EWMA falls below its
    // threshold after a few bad texts.
    let mut again = 0;
    for i in 0..10 {
        let effects = feed.apply(chat(&format!("x{i}"), T0 + 2 * HOUR + i * MIN, bad));
        again += kinds(&effects.signals)
            .iter()
            .filter(|k| **k == SignalKind::NegativeExperience)
            .count();
    }
    assert_eq!(again, 1);
}

fn survey(id: &str, t: i64, kind: SurveyKind, score: i32) -> iee_api::pb::common::Event {
    let mut e = ev(id, "survey_response", t);
    e.survey = Some(SurveyAnswer {
        kind: kind as i32,
        score,
        survey_id: String::new(),
    });
    e
}

#[test]
fn nps_detractor_is_signalled_and_surveys_are_kept() {
    let mut feed = Feed::new();
    let effects = feed.apply(survey("s1", T0, SurveyKind::Nps, 4));
    assert!(kinds(&effects.signals).contains(&SignalKind::Detractor));
    let detractor = effects
        .signals
        .iter()
        .find(|s| s.kind == SignalKind::Detractor as i32)
        .and_then(|s| s.details.clone());
    let Some(Details::Detractor(d)) = detractor else {
        panic!("detractor details expected");
    };
    assert_eq!(d.survey.and_then(|s| s.answer).map(|a| a.score), Some(4));
    let effects = feed.apply(survey("s2", T0 + MIN, SurveyKind::Nps, 7));
    assert!(!kinds(&effects.signals).contains(&SignalKind::Detractor));
    feed.apply(survey("s3", T0 + 2 * MIN, SurveyKind::Csat, 5));
    let surveys = feed.profile.surveys.clone().unwrap_or_default();
    assert_eq!(surveys.nps.and_then(|s| s.answer).map(|a| a.score), Some(7));
    assert_eq!(surveys.csat.map(|s| s.event_id), Some("s3".to_owned()));
    let experience = feed.profile.experience.clone().unwrap_or_default();
    // NPS 4 → -0.2, NPS 7 → 0.4, CSAT 5 → 1.0: the end is also the largest magnitude.
    assert_eq!(
        (experience.end, experience.peak, experience.samples),
        (1.0, 1.0, 3)
    );
}

#[test]
fn journey_changes_are_signalled_once_each() {
    let mut feed = Feed::new();
    let first = feed.apply(ev("a", "page_view", T0));
    assert_eq!(kinds(&first.signals), vec![SignalKind::JourneyStageChanged]);
    assert!(
        feed.apply(ev("b", "page_view", T0 + MIN))
            .signals
            .is_empty()
    );
    let mut explicit = ev("c", "page_view", T0 + 2 * MIN);
    explicit.journey_stage = JourneyStage::Purchase as i32;
    let effects = feed.apply(explicit);
    let Some(Details::JourneyStageChanged(change)) = effects.signals[0].details.clone() else {
        panic!("journey details expected");
    };
    assert_eq!(
        (change.from, change.to),
        (
            JourneyStage::Awareness as i32,
            JourneyStage::Purchase as i32
        )
    );
    assert_eq!(
        opt_ms(feed.profile.journey_stage_since.as_ref()),
        Some(T0 + 2 * MIN)
    );
    feed.apply(ev("d", "purchase", T0 + 3 * MIN));
    assert_eq!(feed.profile.journey_stage, JourneyStage::Onboarding as i32);
}

#[test]
fn every_part_of_the_profile_is_maintained() {
    let mut feed = Feed::new();
    let mut buy = ev("p1", "purchase", T0);
    buy.value = Some(Money {
        amount_minor: 4_000,
        currency: "EUR".into(),
    });
    feed.apply(buy);
    let mut refund = ev("r1", "refund", T0 + HOUR);
    refund.value = Some(Money {
        amount_minor: -1_000,
        currency: "EUR".into(),
    });
    feed.apply(refund);
    let consent = with(
        ev("k1", "consent_change", T0),
        "purpose",
        s("marketing_email"),
    );
    feed.apply(with(consent, "granted", b(true)));
    let signup = with(ev("s1", "signup", T0), "plan", s("pro"));
    feed.apply(with(signup, "seats", n(3.0)));
    let p = &feed.profile;
    let rfm = p.rfm.clone().unwrap_or_default();
    assert_eq!((rfm.purchase_count, rfm.refund_count), (1, 1));
    assert_eq!(rfm.net_revenue.map(|m| m.amount_minor), Some(3_000));
    assert_eq!(p.reporting_currency, "EUR");
    assert_eq!(
        p.consent["marketing_email"].status,
        ConsentStatus::Granted as i32
    );
    let traits = p.identity.clone().unwrap_or_default().traits;
    assert_eq!(
        (traits.get("plan"), traits.get("seats")),
        (Some(&s("pro")), Some(&n(3.0)))
    );
    // The refund is an experience (-0.4).
    assert_eq!(p.experience.as_ref().map(|e| e.end), Some(-0.4));
}

#[test]
fn view_decays_counters_to_now_without_touching_the_stored_profile() {
    let mut feed = Feed::new();
    feed.apply(ev("a", "page_view", T0));
    let view = feed.folder.view(&feed.profile, at(T0 + DAY));
    let c = &view.event_type_counters["page_view"];
    assert!((c.half_life_1d - 0.5).abs() < 1e-9);
    assert_eq!(opt_ms(c.as_of.as_ref()), Some(T0 + DAY));
    let stored = &feed.profile.event_type_counters["page_view"];
    assert_eq!(stored.as_of.as_ref().map(ts_ms), Some(T0));
}

#[test]
fn configured_thresholds_are_used() {
    static STRICT: std::sync::OnceLock<Folder> = std::sync::OnceLock::new();
    let strict = STRICT.get_or_init(|| {
        Folder::new(FoldConfig {
            negative_experience_threshold: -0.1,
            session_timeout_secs: 60,
            ..FoldConfig::default()
        })
    });
    let mut feed = Feed::with_folder(strict);
    feed.apply(ev("a", "page_view", T0));
    feed.apply(ev("b", "page_view", T0 + 2 * MIN));
    assert_eq!(feed.profile.sessions.as_ref().map(|s| s.count), Some(2));
    let effects = feed.apply(ev("t", "support_ticket", T0 + 3 * MIN));
    assert!(kinds(&effects.signals).contains(&SignalKind::NegativeExperience));
}
