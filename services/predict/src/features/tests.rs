//! The catalogue against a hand-built profile: values, decay to `now`, absent data, names.

use std::{
    collections::{HashMap, HashSet},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use iee_api::pb::{
    common::{
        Channel, CustomerRef, JourneyStage, Money, PropertyValue, SurveyAnswer, SurveyKind,
        property_value::Kind,
    },
    predict::FeatureVector,
    profile::{
        ActionDismissals, Cart, CartItem, ChannelContacts, ChannelCounter, Consent, ConsentStatus,
        ContactRecord, DecayedCounter, ExperienceScore, Profile, Rfm, Sentiment, Session, Sessions,
        SurveyRecord, Surveys,
    },
};
use prost_types::Timestamp;

use super::*;

const DAY: i64 = 86_400_000;
/// 2024-06-01T00:00:00Z.
const NOW_MS: i64 = 1_717_200_000_000;

fn now() -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(NOW_MS as u64)
}

/// The timestamp `ms` milliseconds before now.
fn ago(ms: i64) -> Option<Timestamp> {
    Some(at(NOW_MS - ms))
}

fn at(ms: i64) -> Timestamp {
    Timestamp {
        seconds: ms.div_euclid(1000),
        nanos: (ms.rem_euclid(1000) * 1_000_000) as i32,
    }
}

fn eur(minor: i64) -> Option<Money> {
    Some(Money {
        amount_minor: minor,
        currency: "EUR".into(),
    })
}

fn counter(values: [f64; 3], total: u64, as_of_ago: i64) -> DecayedCounter {
    DecayedCounter {
        half_life_1d: values[0],
        half_life_7d: values[1],
        half_life_30d: values[2],
        total,
        as_of: ago(as_of_ago),
        last_at: ago(as_of_ago),
    }
}

fn survey(kind: SurveyKind, score: i32, days_ago: i64) -> Option<SurveyRecord> {
    Some(SurveyRecord {
        answer: Some(SurveyAnswer {
            kind: kind as i32,
            score,
            survey_id: String::new(),
        }),
        answered_at: ago(days_ago * DAY),
        ..Default::default()
    })
}

fn contact(days_ago: i64) -> ContactRecord {
    ContactRecord {
        action_id: "a1".into(),
        contacted_at: ago(days_ago * DAY),
        ..Default::default()
    }
}

/// A customer with a bit of everything.
fn full_profile() -> Profile {
    let mut p = Profile {
        customer: Some(CustomerRef {
            tenant_id: "acme".into(),
            customer_id: "c-1".into(),
            anonymous_id: String::new(),
        }),
        first_seen_at: ago(10 * DAY),
        last_seen_at: ago(2 * DAY),
        reporting_currency: "EUR".into(),
        journey_stage: JourneyStage::Retention as i32,
        journey_stage_since: ago(3 * DAY),
        version: 42,
        ..Default::default()
    };
    p.event_type_counters.insert(
        "page_view".into(),
        counter([4.0, 8.0, 16.0], 20, DAY), // stored a day ago
    );
    p.event_type_counters
        .insert("purchase".into(), counter([1.0, 1.0, 1.0], 3, 0));
    p.event_type_counters
        .insert("custom.trial".into(), counter([1.0, 2.0, 3.0], 4, 0));
    p.event_type_counters
        .insert("custom.webinar".into(), counter([0.5, 1.0, 1.5], 1, 0));
    p.channel_counters = vec![
        ChannelCounter {
            channel: Channel::Web as i32,
            counter: Some(counter([0.0, 2.0, 4.0], 25, 7 * DAY)),
        },
        ChannelCounter {
            channel: Channel::Email as i32,
            counter: Some(counter([1.0, 1.0, 1.0], 3, 0)),
        },
    ];
    p.rfm = Some(Rfm {
        first_purchase_at: ago(40 * DAY),
        last_purchase_at: ago(5 * DAY),
        purchase_count: 3,
        net_revenue: eur(8_000),
        refunded: eur(1_000),
        refund_count: 1,
        average_order_value: eur(3_000),
        gross_revenue: eur(9_000),
        priced_purchase_count: 3,
    });
    p.sessions = Some(Sessions {
        count: 5,
        current: Some(Session {
            event_count: 2,
            ..Default::default()
        }),
        previous: None,
        average_duration: Some(prost_types::Duration {
            seconds: 90,
            nanos: 500_000_000,
        }),
        average_events: 3.5,
        ended_count: 4,
        engaged_count: 3,
        bounce_count: 1,
    });
    p.cart = Some(Cart {
        items: vec![
            CartItem {
                product_id: "p1".into(),
                quantity: 2,
                unit_price: eur(1_500),
                added_at: ago(60 * 60_000),
            },
            CartItem {
                product_id: "p2".into(),
                quantity: 1,
                unit_price: eur(1_500),
                added_at: ago(30 * 60_000),
            },
        ],
        value: eur(4_500),
        last_changed_at: ago(30 * 60_000),
        abandoned: false,
    });
    p.sentiment = Some(Sentiment {
        ewma: -0.2,
        last_score: -0.5,
        samples: 2,
        updated_at: ago(DAY),
    });
    p.experience = Some(ExperienceScore {
        score: 0.1,
        peak: -0.6,
        end: 0.8,
        samples: 3,
        ..Default::default()
    });
    p.surveys = Some(Surveys {
        nps: survey(SurveyKind::Nps, 9, 4),
        csat: None,
        ces: survey(SurveyKind::Ces, 2, 20),
    });
    p.contacts = vec![
        ChannelContacts {
            channel: Channel::Email as i32,
            recent: vec![contact(1), contact(10), contact(40)],
            total: 5,
            last_contact_at: ago(DAY),
            dismissals: 1,
            ..Default::default()
        },
        ChannelContacts {
            channel: Channel::Sms as i32,
            recent: vec![contact(3)],
            total: 1,
            last_contact_at: ago(3 * DAY),
            dismissals: 1,
            ..Default::default()
        },
    ];
    p.action_dismissals.insert(
        "a1".into(),
        ActionDismissals {
            count: 2,
            last_dismissed_at: ago(3 * DAY),
            recent: vec![at(NOW_MS - 3 * DAY), at(NOW_MS - 20 * DAY)],
        },
    );
    for (purpose, status) in [
        ("marketing_email", ConsentStatus::Granted),
        ("marketing_sms", ConsentStatus::Denied),
        ("tenant_specific", ConsentStatus::Granted),
    ] {
        p.consent.insert(
            purpose.into(),
            Consent {
                status: status as i32,
                ..Default::default()
            },
        );
    }
    p
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-9
}

#[track_caller]
fn assert_num(f: &FeatureVector, name: &str, expected: f64) {
    let got = f.numeric.get(name).copied();
    assert!(
        got.is_some_and(|v| close(v, expected)),
        "{name}: expected {expected}, got {got:?}"
    );
}

#[track_caller]
fn assert_absent(f: &FeatureVector, name: &str) {
    assert!(
        !f.numeric.contains_key(name) && !f.categorical.contains_key(name),
        "{name} should be absent, got {:?} / {:?}",
        f.numeric.get(name),
        f.categorical.get(name)
    );
}

#[test]
fn profile_figures_are_read_at_now() {
    let f = from_profile(&full_profile(), now());
    assert_num(&f, "identity.known", 1.0);
    assert_num(&f, "recency.days_since_last_seen", 2.0);
    assert_num(&f, "recency.days_since_last_purchase", 5.0);
    assert_num(&f, "tenure.days", 10.0);
    assert_num(&f, "frequency.purchases", 3.0);
    assert_num(&f, "frequency.refunds", 1.0);
    assert_num(&f, "monetary.net_revenue", 80.0);
    assert_num(&f, "monetary.gross_revenue", 90.0);
    assert_num(&f, "monetary.refunded", 10.0);
    assert_num(&f, "monetary.aov", 30.0);
    assert_num(&f, "activity.total", 28.0);

    assert_num(&f, "sessions.count", 5.0);
    assert_num(&f, "sessions.ended", 4.0);
    assert_num(&f, "sessions.engaged_rate", 0.75);
    assert_num(&f, "sessions.bounce_rate", 0.25);
    assert_num(&f, "sessions.avg_duration_secs", 90.5);
    assert_num(&f, "sessions.avg_events", 3.5);
    assert_num(&f, "sessions.current_events", 2.0);

    assert_num(&f, "cart.items", 3.0);
    assert_num(&f, "cart.lines", 2.0);
    assert_num(&f, "cart.value", 45.0);
    assert_num(&f, "cart.minutes_since_change", 30.0);
    assert_num(&f, "cart.abandoned", 0.0);

    assert_eq!(
        f.categorical.get("journey.stage").map(String::as_str),
        Some("JOURNEY_STAGE_RETENTION")
    );
    assert_num(&f, "journey.days_in_stage", 3.0);
    assert_num(&f, "sentiment.ewma", -0.2);
    assert_num(&f, "sentiment.last", -0.5);
    assert_num(&f, "sentiment.samples", 2.0);
    assert_num(&f, "experience.peak_end", 0.1);
    assert_num(&f, "experience.peak", -0.6);
    assert_num(&f, "experience.end", 0.8);
    assert_num(&f, "experience.samples", 3.0);

    assert_num(&f, "survey.nps.score", 9.0);
    assert_num(&f, "survey.nps.days_since", 4.0);
    assert_absent(&f, "survey.csat.score");
    assert_absent(&f, "survey.csat.days_since");
    assert_num(&f, "survey.ces.score", 2.0);
    assert_num(&f, "survey.ces.days_since", 20.0);

    // Contacts at 1, 3, 10 and 40 days ago.
    assert_num(&f, "contacts.7d", 2.0);
    assert_num(&f, "contacts.30d", 3.0);
    assert_num(&f, "contacts.total", 6.0);
    assert_num(&f, "contacts.days_since_last", 1.0);
    assert_num(&f, "dismissals.total", 2.0);
    assert_num(&f, "dismissals.7d", 1.0);
    assert_num(&f, "dismissals.30d", 2.0);

    assert_num(&f, "consent.marketing_email", 1.0);
    assert_num(&f, "consent.marketing_sms", 0.0);
    assert_absent(&f, "consent.personalization");
    assert_absent(&f, "consent.tenant_specific");

    // BG/NBD inputs: 2 repeat purchases between day -40 and day -5.
    assert_num(&f, "clv.frequency", 2.0);
    assert_num(&f, "clv.recency_days", 35.0);
    assert_num(&f, "clv.t_days", 40.0);
    assert_num(&f, "clv.monetary", 30.0);
}

#[test]
fn decayed_counters_are_decayed_to_now() {
    let f = from_profile(&full_profile(), now());
    // page_view was stored a day ago: one 1-day half-life has passed.
    assert_num(&f, "activity.1d.page_view", 2.0);
    assert_num(&f, "activity.7d.page_view", 8.0 * (-1.0f64 / 7.0).exp2());
    assert_num(&f, "activity.30d.page_view", 16.0 * (-1.0f64 / 30.0).exp2());
    // Stored as of now: read as stored.
    assert_num(&f, "activity.7d.purchase", 1.0);
    // Tenant-defined types share one bucket.
    assert_num(&f, "activity.1d.custom", 1.5);
    assert_num(&f, "activity.30d.custom", 4.5);
    // `all` sums every type.
    assert_num(&f, "activity.1d.all", 2.0 + 1.0 + 1.5);
    // A type never seen counts 0.
    assert_num(&f, "activity.7d.search", 0.0);
    // Web was stored a week ago: one 7-day half-life.
    assert_num(&f, "channel.7d.CHANNEL_WEB", 1.0);
    assert_num(&f, "channel.30d.CHANNEL_WEB", 4.0 * (-7.0f64 / 30.0).exp2());
    assert_num(&f, "channel.1d.CHANNEL_EMAIL", 1.0);
    assert_num(&f, "channel.30d.CHANNEL_PHONE", 0.0);

    // A later `now` decays further; nothing else about the profile changes.
    let later = from_profile(&full_profile(), now() + Duration::from_secs(86_400));
    assert_num(&later, "activity.1d.page_view", 1.0);
    assert_num(&later, "recency.days_since_last_seen", 3.0);
}

#[test]
fn a_counter_ahead_of_now_is_not_grown() {
    let mut p = Profile::default();
    p.event_type_counters
        .insert("login".into(), counter([3.0, 3.0, 3.0], 3, -DAY));
    let f = from_profile(&p, now());
    assert_num(&f, "activity.1d.login", 3.0);
}

#[test]
fn missing_data_is_absent_and_counts_are_zero() {
    let f = from_profile(&Profile::default(), now());
    for name in [
        "recency.days_since_last_seen",
        "recency.days_since_last_purchase",
        "tenure.days",
        "monetary.net_revenue",
        "monetary.gross_revenue",
        "monetary.refunded",
        "monetary.aov",
        "sessions.engaged_rate",
        "sessions.bounce_rate",
        "sessions.avg_duration_secs",
        "sessions.avg_events",
        "cart.minutes_since_change",
        "journey.stage",
        "journey.days_in_stage",
        "sentiment.ewma",
        "sentiment.last",
        "experience.peak_end",
        "experience.peak",
        "experience.end",
        "survey.nps.score",
        "survey.nps.days_since",
        "contacts.days_since_last",
        "consent.marketing_email",
        "clv.frequency",
        "clv.recency_days",
        "clv.t_days",
        "clv.monetary",
    ] {
        assert_absent(&f, name);
    }
    for name in [
        "identity.known",
        "frequency.purchases",
        "activity.total",
        "activity.30d.all",
        "channel.7d.CHANNEL_WEB",
        "sessions.count",
        "cart.items",
        "cart.value",
        "cart.abandoned",
        "sentiment.samples",
        "contacts.30d",
        "dismissals.total",
    ] {
        assert_num(&f, name, 0.0);
    }
    assert!(f.categorical.is_empty());
}

#[test]
fn purchases_without_value_give_clv_counts_but_no_money() {
    let p = Profile {
        rfm: Some(Rfm {
            first_purchase_at: ago(3 * DAY),
            last_purchase_at: ago(3 * DAY),
            purchase_count: 1,
            ..Default::default()
        }),
        ..Default::default()
    };
    let f = from_profile(&p, now());
    assert_num(&f, "clv.frequency", 0.0);
    assert_num(&f, "clv.recency_days", 0.0);
    assert_num(&f, "clv.t_days", 3.0);
    assert_absent(&f, "clv.monetary");
    assert_absent(&f, "monetary.aov");
    assert_absent(&f, "monetary.net_revenue");
}

#[test]
fn money_is_in_major_units_of_its_currency() {
    let p = Profile {
        reporting_currency: "JPY".into(),
        rfm: Some(Rfm {
            net_revenue: Some(Money {
                amount_minor: 1_200,
                currency: "JPY".into(),
            }),
            ..Default::default()
        }),
        cart: Some(Cart {
            value: Some(Money {
                amount_minor: 1_234,
                currency: "KWD".into(),
            }),
            ..Default::default()
        }),
        ..Default::default()
    };
    let f = from_profile(&p, now());
    assert_num(&f, "monetary.net_revenue", 1_200.0);
    assert_num(&f, "monetary.refunded", 0.0);
    assert_num(&f, "cart.value", 1.234);
}

fn context_map() -> HashMap<String, PropertyValue> {
    let value = |kind| PropertyValue { kind: Some(kind) };
    HashMap::from([
        (
            "device".to_owned(),
            value(Kind::StringValue("mobile".into())),
        ),
        ("basket_size".to_owned(), value(Kind::NumberValue(3.0))),
        ("logged_in".to_owned(), value(Kind::BoolValue(true))),
        ("bad".to_owned(), value(Kind::NumberValue(f64::NAN))),
        (
            "channel".to_owned(),
            value(Kind::StringValue("spoof".into())),
        ),
        ("unset".to_owned(), PropertyValue { kind: None }),
    ])
}

#[test]
fn every_produced_name_is_in_the_catalogue() {
    let profile = from_profile(&full_profile(), now());
    let context = context_features(Channel::Web as i32, "home", &context_map());
    let all = merge(profile, context);
    let names: Vec<&String> = all.numeric.keys().chain(all.categorical.keys()).collect();
    assert!(names.len() > 150, "{}", names.len());
    for name in names {
        assert!(is_known(name), "{name} is produced but not known");
    }
    // And the catalogue's kinds match what is produced.
    for spec in catalogue() {
        if spec.kind == FeatureKind::Numeric {
            assert!(!all.categorical.contains_key(spec.name), "{}", spec.name);
        }
        if spec.kind == FeatureKind::Categorical {
            assert!(!all.numeric.contains_key(spec.name), "{}", spec.name);
        }
    }
}

#[test]
fn catalogue_names_are_unique_and_documented() {
    let mut seen = HashSet::new();
    for spec in catalogue() {
        assert!(seen.insert(spec.name), "duplicate feature {}", spec.name);
        assert!(!spec.description.is_empty(), "{}", spec.name);
        assert_eq!(
            spec.source == Source::Context,
            spec.name.starts_with("ctx."),
            "{}",
            spec.name
        );
    }
    // The generated families are all there: 34 type buckets and 12 channels, 3 half-lives.
    let count = |prefix: &str| seen.iter().filter(|n| n.starts_with(prefix)).count();
    assert_eq!(count("activity.") - 1, 34 * 3);
    assert_eq!(count("channel."), 12 * 3);
    assert_eq!(CATALOGUE_VERSION, 1);
}

#[test]
fn unknown_names_are_refused() {
    assert!(is_known("recency.days_since_last_seen"));
    assert!(is_known("activity.7d.page_view"));
    assert!(is_known("channel.30d.CHANNEL_WEB"));
    assert!(is_known("ctx.channel"));
    assert!(is_known("ctx.device"));
    for name in [
        "",
        "recency",
        "activity.7d.custom.trial",
        "activity.2d.page_view",
        "channel.30d.CHANNEL_UNSPECIFIED",
        "ctx.",
        "ctx.{key}",
        "days_since_last_seen",
    ] {
        assert!(!is_known(name), "{name:?} should be unknown");
    }
    assert!(!is_known(&format!("ctx.{}", "k".repeat(65))));
}

#[test]
fn docs_list_every_feature_and_the_version() {
    let docs = include_str!("../../../../docs/features.md");
    for spec in catalogue() {
        assert!(
            docs.contains(&format!("`{}`", spec.name)),
            "docs/features.md does not list {}",
            spec.name
        );
    }
    assert!(docs.contains(&format!("**Catalogue version: {CATALOGUE_VERSION}**")));
}
