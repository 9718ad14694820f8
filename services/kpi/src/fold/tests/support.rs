//! Builders and a harness shared by the fold tests.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use iee_api::pb::common::{
    Channel, Event, Exposure, ExposureArm, LogRecord, Money, PropertyValue, SurveyAnswer,
    SurveyKind, property_value::Kind,
};

use crate::fields::{Dims, field};
use crate::fold::{CustomerState, FoldConfig, Folded, Observations, Vocabulary, fold};

/// Noon UTC of 2023-11-14, Unix seconds: a day boundary is 12 hours away either side.
pub(super) const T0: i64 = 1_699_963_200;
pub(super) const MIN: i64 = 60;
pub(super) const HOUR: i64 = 3_600;
pub(super) const DAY: i64 = 86_400;

/// A customer's state and vocabulary being fed records; `out` collects what they add.
pub(super) struct Harness {
    pub config: FoldConfig,
    pub vocabulary: Vocabulary,
    pub state: CustomerState,
    pub out: Observations,
}

impl Harness {
    pub(super) fn new() -> Self {
        Self::with(FoldConfig::default())
    }

    pub(super) fn with(config: FoldConfig) -> Self {
        Self {
            vocabulary: Vocabulary::new(&config),
            config,
            state: CustomerState::default(),
            out: Observations::new(),
        }
    }

    pub(super) fn fold(&mut self, record: &LogRecord) -> Folded {
        fold(
            &self.config,
            &mut self.vocabulary,
            record,
            &mut self.state,
            &mut self.out,
        )
    }

    /// Folds records, each of which must be applied.
    pub(super) fn feed(&mut self, records: &[LogRecord]) {
        for r in records {
            assert_eq!(self.fold(r), Folded::Applied);
        }
    }

    /// What was observed since the last call, as `(at, field) → delta` without the deltas
    /// that summed to zero (as committed), and forgets it.
    pub(super) fn take(&mut self) -> BTreeMap<(i64, String), f64> {
        let out = std::mem::take(&mut self.out);
        out.deltas()
            .filter(|(_, _, _, delta)| *delta != 0.0)
            .map(|(_, at, field, delta)| ((at, field.to_owned()), delta))
            .collect()
    }

    /// What was observed since the last call, summed over time per field, and forgets it.
    pub(super) fn take_totals(&mut self) -> BTreeMap<String, f64> {
        let mut totals = BTreeMap::new();
        for ((_, field), delta) in self.take() {
            *totals.entry(field).or_insert(0.0) += delta;
        }
        totals
    }
}

/// Only the entries whose field starts with one of `prefixes`.
pub(super) fn only<K: Clone + Ord>(
    map: &BTreeMap<K, f64>,
    prefixes: &[&str],
    key: impl Fn(&K) -> &str,
) -> BTreeMap<K, f64> {
    map.iter()
        .filter(|(k, _)| prefixes.iter().any(|p| key(k).starts_with(p)))
        .map(|(k, v)| (k.clone(), *v))
        .collect()
}

/// Totals of the fields starting with one of `prefixes`.
pub(super) fn totals(map: &BTreeMap<String, f64>, prefixes: &[&str]) -> BTreeMap<String, f64> {
    only(map, prefixes, |k| k.as_str())
}

/// Per-instant deltas of the fields starting with one of `prefixes`.
pub(super) fn timed(
    map: &BTreeMap<(i64, String), f64>,
    prefixes: &[&str],
) -> BTreeMap<(i64, String), f64> {
    only(map, prefixes, |(_, k)| k.as_str())
}

/// A map from literal entries.
pub(super) fn map<K: Ord>(entries: impl IntoIterator<Item = (K, f64)>) -> BTreeMap<K, f64> {
    entries.into_iter().collect()
}

/// The field of `stat` on the web row of touchpoint `home`, journey stage unspecified.
pub(super) fn f(stat: &str, action: &str, arm: &str) -> String {
    field(
        stat,
        &Dims {
            channel: Channel::Web as i32,
            touchpoint: "home".into(),
            stage: 0,
            action: action.into(),
            arm: arm.into(),
        },
    )
}

/// An interaction of customer `c-1` of tenant `acme` on the web at touchpoint `home`.
pub(super) fn ev(event_type: &str, at: i64) -> Event {
    let t: SystemTime = UNIX_EPOCH + Duration::from_secs(u64::try_from(at).unwrap_or(0));
    Event {
        event_id: format!("{event_type}@{at}"),
        tenant_id: "acme".into(),
        customer_id: "c-1".into(),
        r#type: event_type.into(),
        channel: Channel::Web as i32,
        touchpoint: "home".into(),
        occurred_at: Some(t.into()),
        ..Event::default()
    }
}

/// The log record of `event`.
pub(super) fn rec(event: Event) -> LogRecord {
    LogRecord {
        event: Some(event),
        ..LogRecord::default()
    }
}

/// A `page_view` record at `at`.
pub(super) fn view(at: i64) -> LogRecord {
    rec(ev("page_view", at))
}

/// A survey answer record.
pub(super) fn survey(kind: SurveyKind, score: i32, at: i64) -> LogRecord {
    let mut event = ev("survey_response", at);
    event.survey = Some(SurveyAnswer {
        kind: kind as i32,
        score,
        survey_id: String::new(),
    });
    rec(event)
}

/// A `purchase` of `amount` minor units (none when `None`).
pub(super) fn purchase(amount: Option<i64>, at: i64) -> LogRecord {
    let mut event = ev("purchase", at);
    event.value = amount.map(|amount_minor| Money {
        amount_minor,
        currency: "EUR".into(),
    });
    rec(event)
}

/// A decision's exposure record with `actions` and `(experiment, arm)` pairs.
pub(super) fn decision(id: &str, at: i64, actions: &[&str], arms: &[(&str, &str)]) -> LogRecord {
    let mut event = ev("decision", at);
    event.event_id = format!("decision:{id}");
    LogRecord {
        event: Some(event),
        exposure: Some(Exposure {
            decision_id: id.into(),
            action_ids: actions.iter().map(|a| (*a).to_owned()).collect(),
            arms: arms
                .iter()
                .map(|(e, a)| ExposureArm {
                    experiment_id: (*e).into(),
                    arm: (*a).into(),
                    allocation: 0.5,
                })
                .collect(),
            ..Exposure::default()
        }),
        ..LogRecord::default()
    }
}

/// A `decision_outcome` record.
pub(super) fn outcome(decision_id: &str, action_id: &str, kind: &str, at: i64) -> LogRecord {
    let mut event = ev("decision_outcome", at);
    for (key, value) in [
        ("decision_id", decision_id),
        ("action_id", action_id),
        ("kind", kind),
    ] {
        event.properties.insert(
            key.into(),
            PropertyValue {
                kind: Some(Kind::StringValue(value.into())),
            },
        );
    }
    rec(event)
}
