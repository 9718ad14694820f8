//! Property-based fuzzing of event validation through the in-process ingest API: arbitrary and
//! malformed events never panic, every event gets one result, and acceptance matches an
//! independent statement of the documented rules (proto/iee/common/v1/event.proto).

#![allow(clippy::unwrap_used)]

use std::{
    cell::RefCell,
    collections::{BTreeMap, HashMap},
    sync::atomic::{AtomicU64, Ordering},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use iee_api::{
    ingest::{EventStatus, IngestRequest, IngestResponse, TouchpointApi, TouchpointClient},
    pb::common::{Event, Money, PropertyValue, SurveyAnswer, property_value::Kind},
};
use iee_config::ClusterConfig;
use iee_ingest::{IngestConfig, IngestDeps, IngestNode, KNOWN_EVENT_TYPES};
use iee_runtime::Shutdown;
use iee_store::{StoreConfig, Stores};
use iee_telemetry::MetricsRegistry;
use proptest::{
    prelude::*,
    test_runner::{Config, TestCaseError, TestRunner},
};
use prost::Message;
use prost_types::Timestamp;

/// Cases per property: enough to reach every rule, cheap enough for CI.
const CASES: u32 = 384;

/// The event types documented on `Event.type` in the contract, read from the proto comment so
/// the oracle does not depend on the table under test.
static DOCUMENTED_TYPES: std::sync::LazyLock<Vec<&'static str>> = std::sync::LazyLock::new(|| {
    const PROTO: &str = include_str!("../../../proto/iee/common/v1/event.proto");
    let comment: String = PROTO
        .lines()
        .map(|l| l.trim_start().trim_start_matches("//").trim())
        .collect::<Vec<_>>()
        .join(" ");
    let start = comment
        .find("One of the documented types (")
        .expect("Event.type documents its types")
        + "One of the documented types (".len();
    let end = start + comment[start..].find(')').expect("the list is closed");
    let list: Vec<String> = comment[start..end]
        .split(',')
        .map(|t| t.trim().to_owned())
        .collect();
    list.into_iter()
        .map(|t| &*Box::leak(t.into_boxed_str()))
        .collect()
});

/// The fields a rejection may name, relative to `events[i]`.
const REJECTABLE_FIELDS: [&str; 16] = [
    "event_id",
    "tenant_id",
    "customer_id",
    "anonymous_id",
    "type",
    "channel",
    "touchpoint",
    "journey_stage",
    "occurred_at",
    "properties",
    "value.currency",
    "text",
    "survey",
    "survey.kind",
    "survey.score",
    "survey.survey_id",
];

// ---------------------------------------------------------------------------------------------
// The oracle: the documented rules, written independently of services/ingest/src/validate.rs.
// ---------------------------------------------------------------------------------------------

/// The default limits of `IngestConfig`, as documented in its field docs.
const MAX_EVENT_BYTES: usize = 32 << 10;
const MAX_PROPERTIES: usize = 64;
const MAX_KEY_BYTES: usize = 64;
const MAX_STRING_VALUE_BYTES: usize = 1_024;
const MAX_TEXT_BYTES: usize = 4_096;
const MAX_SKEW_SECS: u64 = 300;

fn is_control(c: char) -> bool {
    ('\u{0}'..='\u{1f}').contains(&c) || ('\u{7f}'..='\u{9f}').contains(&c)
}

/// 0-128 bytes of text without control characters (1-128 when required).
fn free_id_ok(value: &str, required: bool) -> bool {
    (!required || !value.is_empty()) && value.len() <= 128 && !value.chars().any(is_control)
}

fn event_id_ok(value: &str) -> bool {
    (1..=128).contains(&value.len()) && value.bytes().all(|b| (b'!'..=b'~').contains(&b))
}

fn tenant_ok(value: &str) -> bool {
    (1..=64).contains(&value.len())
        && value
            .bytes()
            .all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'_' | b'-'))
}

fn type_ok(value: &str) -> bool {
    DOCUMENTED_TYPES.contains(&value)
        || value.strip_prefix("custom.").is_some_and(|name| {
            (1..=64).contains(&name.len())
                && name
                    .bytes()
                    .all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'_' | b'.' | b'-'))
        })
}

/// Whether `occurred_at` is acceptable at `now`: after 1970, at most the skew ahead.
fn occurred_at_ok(ts: &Timestamp, now: SystemTime) -> bool {
    if ts.seconds < 0 || !(0..1_000_000_000).contains(&ts.nanos) {
        return false;
    }
    let now = now.duration_since(UNIX_EPOCH).unwrap();
    let limit = now + Duration::from_secs(MAX_SKEW_SECS);
    // u128 nanoseconds: no overflow for any i64 seconds.
    let at =
        u128::from(ts.seconds.unsigned_abs()) * 1_000_000_000 + u128::from(ts.nanos.unsigned_abs());
    at <= limit.as_nanos()
}

fn property_ok(key: &str, value: &PropertyValue) -> bool {
    (1..=MAX_KEY_BYTES).contains(&key.len())
        && !key.chars().any(is_control)
        && match &value.kind {
            None => false,
            Some(Kind::StringValue(s)) => s.len() <= MAX_STRING_VALUE_BYTES,
            Some(Kind::NumberValue(n)) => n.is_finite(),
            Some(Kind::BoolValue(_)) => true,
        }
}

fn survey_ok(event: &Event) -> bool {
    let Some(survey) = &event.survey else {
        return event.r#type != "survey_response";
    };
    let range = match survey.kind {
        1 => 0..=10,
        2 => 1..=5,
        3 => 1..=7,
        _ => return false,
    };
    range.contains(&survey.score) && free_id_ok(&survey.survey_id, false)
}

/// The verdict of the oracle: valid, invalid, or undecided (an `occurred_at` right at the skew
/// limit while the call runs, a currency code the oracle has no table for).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    Valid,
    Invalid,
    Ambiguous,
}

/// Every documented rule except the time one, which [`verdict`] adds.
fn valid_except_time(event: &Event) -> bool {
    event.encoded_len() <= MAX_EVENT_BYTES
        && event_id_ok(&event.event_id)
        && tenant_ok(&event.tenant_id)
        && (!event.customer_id.is_empty() || !event.anonymous_id.is_empty())
        && free_id_ok(&event.customer_id, false)
        && free_id_ok(&event.anonymous_id, false)
        && type_ok(&event.r#type)
        && (1..=12).contains(&event.channel)
        && free_id_ok(&event.touchpoint, false)
        && (0..=7).contains(&event.journey_stage)
        && event.occurred_at.is_some()
        && event.properties.len() <= MAX_PROPERTIES
        && event.properties.iter().all(|(k, v)| property_ok(k, v))
        && event.value.as_ref().is_none_or(|m| {
            m.currency.len() == 3 && m.currency.bytes().all(|b| b.is_ascii_uppercase())
        })
        && event
            .text
            .as_ref()
            .is_none_or(|t| t.len() <= MAX_TEXT_BYTES)
        && survey_ok(event)
}

/// Codes the oracle knows to be ISO 4217 and codes it knows are not; any other three upper-case
/// letters it cannot judge without repeating the whole table.
const SURE_CURRENCIES: [&str; 4] = ["EUR", "USD", "JPY", "CHF"];
const NOT_CURRENCIES: [&str; 3] = ["XYZ", "ABC", "QQQ"];

fn verdict(event: &Event, before: SystemTime, after: SystemTime) -> Verdict {
    if !valid_except_time(event) {
        return Verdict::Invalid;
    }
    if let Some(money) = &event.value {
        if NOT_CURRENCIES.contains(&money.currency.as_str()) {
            return Verdict::Invalid;
        }
        if !SURE_CURRENCIES.contains(&money.currency.as_str()) {
            return Verdict::Ambiguous;
        }
    }
    let ts = event.occurred_at.as_ref().unwrap();
    match (occurred_at_ok(ts, before), occurred_at_ok(ts, after)) {
        (true, true) => Verdict::Valid,
        (false, false) => Verdict::Invalid,
        _ => Verdict::Ambiguous,
    }
}

/// Whether a rejection's field is `events[index]` or a documented field under it.
fn names_a_field_of(field: &str, index: usize) -> bool {
    let prefix = format!("events[{index}]");
    let Some(rest) = field.strip_prefix(&prefix) else {
        return false;
    };
    if rest.is_empty() {
        return true;
    }
    let Some(rest) = rest.strip_prefix('.') else {
        return false;
    };
    REJECTABLE_FIELDS.contains(&rest) || (rest.starts_with("properties[") && rest.ends_with(']'))
}

// ---------------------------------------------------------------------------------------------
// The system under test.
// ---------------------------------------------------------------------------------------------

struct Harness {
    runtime: tokio::runtime::Runtime,
    client: TouchpointClient,
    /// Accepted events, and rejections by field (`events[i]` and property keys left out), so a
    /// property can check that its cases reached both sides of every rule.
    seen: RefCell<(usize, BTreeMap<String, usize>)>,
}

impl Harness {
    fn new() -> Self {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let cluster = ClusterConfig::default();
        let stores = Stores::open(&StoreConfig::default(), cluster.shard_count).unwrap();
        let node = IngestNode::build(
            IngestConfig::default(),
            &cluster,
            IngestDeps {
                stores,
                metrics: MetricsRegistry::default(),
                shutdown: Shutdown::new(),
            },
        );
        Self {
            runtime,
            client: node.client(),
            seen: RefCell::default(),
        }
    }

    /// Ingests `events`, checks the answer's shape and the oracle, and returns the answer.
    fn check(&self, events: Vec<Event>) -> Result<IngestResponse, TestCaseError> {
        let before = SystemTime::now();
        let response = self
            .runtime
            .block_on(self.client.ingest(IngestRequest {
                events: events.clone(),
            }))
            .map_err(|e| TestCaseError::fail(format!("batch failed as a whole: {e}")))?;
        let after = SystemTime::now();
        prop_assert_eq!(response.results.len(), events.len(), "one result per event");
        let total = response.accepted + response.duplicates + response.rejected;
        prop_assert_eq!(total as usize, events.len(), "counts add up");
        for (i, (event, result)) in events.iter().zip(&response.results).enumerate() {
            prop_assert_eq!(result.index as usize, i);
            prop_assert_eq!(&result.event_id, &event.event_id);
            let status = EventStatus::try_from(result.status);
            let accepted = matches!(status, Ok(EventStatus::Accepted | EventStatus::Duplicate));
            let oracle = verdict(event, before, after);
            if accepted {
                self.seen.borrow_mut().0 += 1;
                prop_assert!(result.rejection.is_none());
                prop_assert!(
                    oracle != Verdict::Invalid,
                    "accepted an event the documented rules reject: {:?}",
                    event
                );
            } else {
                prop_assert_eq!(status, Ok(EventStatus::Rejected));
                let rejection = result.rejection.as_ref().unwrap();
                prop_assert!(
                    names_a_field_of(&rejection.field, i),
                    "rejection field {:?} is not a field of events[{}]",
                    rejection.field,
                    i
                );
                prop_assert!(!rejection.reason.trim().is_empty(), "empty reason");
                prop_assert!(rejection.code != 0, "unspecified rejection code");
                let field = rejection
                    .field
                    .strip_prefix(&format!("events[{i}]"))
                    .unwrap();
                let field = field.split('[').next().unwrap().trim_start_matches('.');
                *self
                    .seen
                    .borrow_mut()
                    .1
                    .entry(field.to_owned())
                    .or_default() += 1;
                prop_assert!(
                    oracle != Verdict::Valid,
                    "rejected a valid event ({:?}: {}): {:?}",
                    rejection.field,
                    rejection.reason,
                    event
                );
            }
        }
        Ok(response)
    }
}

fn runner() -> TestRunner {
    TestRunner::new(Config {
        // PROPTEST_CASES raises the count for a longer local run.
        cases: std::env::var("PROPTEST_CASES")
            .ok()
            .and_then(|n| n.parse().ok())
            .unwrap_or(CASES),
        // Failures print their shrunk input; no regression files in the source tree.
        failure_persistence: None,
        ..Config::default()
    })
}

// ---------------------------------------------------------------------------------------------
// Generators.
// ---------------------------------------------------------------------------------------------

/// Unique suffixes, so valid events are not deduplicated against earlier cases.
static NEXT_ID: AtomicU64 = AtomicU64::new(0);

fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", NEXT_ID.fetch_add(1, Ordering::Relaxed))
}

fn now_secs() -> i64 {
    i64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs(),
    )
    .unwrap()
}

/// Lengths around the documented limits.
fn edge_len() -> impl Strategy<Value = usize> {
    prop_oneof![
        Just(0usize),
        Just(1),
        Just(63),
        Just(64),
        Just(65),
        Just(127),
        Just(128),
        Just(129),
        Just(1_024),
        Just(1_025),
        Just(4_096),
        Just(4_097),
        Just(40_000),
    ]
}

/// Any text: well-formed ids, unicode, control characters, and strings at and past the limits.
fn nasty_string() -> BoxedStrategy<String> {
    prop_oneof![
        3 => "[a-z0-9_-]{1,12}",
        2 => any::<String>(),
        1 => "[\\x00-\\x7f]{0,10}",
        1 => "[ \\t\\n\\u{85}\\u{200b}\\u{202e}\\u{feff}é漢😀a]{0,6}",
        2 => (edge_len(), prop::sample::select(vec!['a', 'a', 'a', 'é', '漢', ' ', '\u{1}'])).prop_map(
            |(n, c)| std::iter::repeat_n(c, n).collect::<String>()
        ),
        1 => Just(String::new()),
    ]
    .boxed()
}

fn event_type() -> BoxedStrategy<String> {
    prop_oneof![
        3 => prop::sample::select(DOCUMENTED_TYPES.clone()).prop_map(str::to_owned),
        2 => "custom\\.[a-z0-9_.-]{0,66}",
        1 => "custom\\.[A-Za-z0-9 /.]{1,8}",
        1 => nasty_string(),
        1 => Just("survey_response".to_owned()),
    ]
    .boxed()
}

fn enum_number(max_known: i32) -> impl Strategy<Value = i32> {
    prop_oneof![
        4 => 0..=max_known,
        1 => any::<i32>(),
        1 => Just(max_known + 1),
        1 => Just(-1),
    ]
}

fn timestamp() -> BoxedStrategy<Option<Timestamp>> {
    let now = now_secs();
    let seconds = prop_oneof![
        4 => (now - 86_400 * 365)..=now,
        2 => (now + 200)..=(now + 400),
        1 => any::<i64>(),
        1 => prop::sample::select(vec![i64::MIN, -1, 0, 1, i64::MAX, 253_402_300_800]),
    ];
    let nanos = prop_oneof![
        4 => 0..1_000_000_000i32,
        1 => any::<i32>(),
        1 => prop::sample::select(vec![-1, 999_999_999, 1_000_000_000, i32::MAX, i32::MIN]),
    ];
    prop::option::weighted(
        0.9,
        (seconds, nanos).prop_map(|(seconds, nanos)| Timestamp { seconds, nanos }),
    )
    .boxed()
}

fn number() -> impl Strategy<Value = f64> {
    prop_oneof![
        3 => any::<f64>(),
        1 => prop::sample::select(vec![
            f64::NAN,
            f64::INFINITY,
            f64::NEG_INFINITY,
            -0.0,
            f64::MAX,
            f64::MIN_POSITIVE,
        ]),
    ]
}

fn property_value() -> BoxedStrategy<PropertyValue> {
    let kind = prop_oneof![
        nasty_string().prop_map(Kind::StringValue),
        number().prop_map(Kind::NumberValue),
        any::<bool>().prop_map(Kind::BoolValue),
    ];
    prop::option::weighted(0.95, kind)
        .prop_map(|kind| PropertyValue { kind })
        .boxed()
}

fn properties() -> BoxedStrategy<HashMap<String, PropertyValue>> {
    prop_oneof![
        6 => prop::collection::hash_map(nasty_string(), property_value(), 0..6),
        // Around the count limit, with valid keys and values.
        1 => (60usize..70).prop_map(|n| {
            (0..n)
                .map(|i| {
                    let value = PropertyValue {
                        kind: Some(Kind::BoolValue(true)),
                    };
                    (format!("k{i}"), value)
                })
                .collect()
        }),
    ]
    .boxed()
}

fn money() -> BoxedStrategy<Option<Money>> {
    let currency = prop_oneof![
        3 => prop::sample::select(vec!["EUR", "USD", "JPY"]).prop_map(str::to_owned),
        1 => prop::sample::select(vec!["eur", "XYZ", "EURO", "ABC", "QQQ", "", "E\u{1}R"])
            .prop_map(str::to_owned),
        1 => "[A-Z]{3}",
    ];
    prop::option::weighted(
        0.3,
        (any::<i64>(), currency).prop_map(|(amount_minor, currency)| Money {
            amount_minor,
            currency,
        }),
    )
    .boxed()
}

fn survey() -> BoxedStrategy<Option<SurveyAnswer>> {
    let score = prop_oneof![4 => -2..=12i32, 1 => any::<i32>()];
    prop::option::weighted(
        0.3,
        (enum_number(3), score, nasty_string()).prop_map(|(kind, score, survey_id)| SurveyAnswer {
            kind,
            score,
            survey_id,
        }),
    )
    .boxed()
}

fn text() -> BoxedStrategy<Option<String>> {
    let around_limit = (4_094..4_100usize).prop_map(|n| "t".repeat(n));
    prop::option::weighted(0.3, prop_oneof![3 => nasty_string(), 1 => around_limit]).boxed()
}

/// Any event: each field well formed most of the time, so cases reach the later rules too.
fn arbitrary_event() -> BoxedStrategy<Event> {
    let ids = (
        prop_oneof![4 => "[!-~]{1,20}", 1 => nasty_string()],
        prop_oneof![4 => "[a-z0-9_-]{1,10}", 1 => nasty_string()],
        prop_oneof![2 => "[a-z0-9-]{1,10}", 1 => nasty_string(), 1 => Just(String::new())],
        prop_oneof![1 => "[a-z0-9-]{1,10}", 1 => nasty_string(), 2 => Just(String::new())],
    );
    let what = (
        event_type(),
        enum_number(12),
        prop_oneof![3 => Just(String::new()), 1 => nasty_string()],
        enum_number(7),
        timestamp(),
    );
    let extras = (
        properties(),
        money(),
        text(),
        survey(),
        any::<Option<u64>>(),
    );
    (ids, what, extras)
        .prop_map(
            |(
                (event_id, tenant_id, customer_id, anonymous_id),
                (r#type, channel, touchpoint, journey_stage, occurred_at),
                (properties, value, text, survey, sequence),
            )| Event {
                event_id,
                tenant_id,
                customer_id,
                anonymous_id,
                r#type,
                channel,
                touchpoint,
                journey_stage,
                occurred_at,
                properties,
                value,
                text,
                survey,
                sequence,
            },
        )
        .boxed()
}

/// A valid event with one or two fields taken from an arbitrary one, so that cases reach every
/// rule rather than stopping at the first.
fn mixed_event() -> BoxedStrategy<Event> {
    let fields = prop::collection::vec(0..14usize, 1..=2);
    (valid_event(), arbitrary_event(), fields)
        .prop_map(|(mut event, other, fields)| {
            for field in fields {
                match field {
                    0 => event.event_id.clone_from(&other.event_id),
                    1 => event.tenant_id.clone_from(&other.tenant_id),
                    2 => event.customer_id.clone_from(&other.customer_id),
                    3 => event.anonymous_id.clone_from(&other.anonymous_id),
                    4 => event.r#type.clone_from(&other.r#type),
                    5 => event.channel = other.channel,
                    6 => event.touchpoint.clone_from(&other.touchpoint),
                    7 => event.journey_stage = other.journey_stage,
                    8 => event.occurred_at = other.occurred_at,
                    9 => event.properties.clone_from(&other.properties),
                    10 => event.value.clone_from(&other.value),
                    11 => event.text.clone_from(&other.text),
                    12 => event.survey.clone_from(&other.survey),
                    _ => event.sequence = other.sequence,
                }
            }
            event
        })
        .boxed()
}

/// Only valid events (fresh ids each, so none is a duplicate).
fn valid_event() -> BoxedStrategy<Event> {
    let now = now_secs();
    let survey = prop_oneof![
        (0..=10i32).prop_map(|s| (1, s)),
        (1..=5i32).prop_map(|s| (2, s)),
        (1..=7i32).prop_map(|s| (3, s)),
    ];
    let property = prop_oneof![
        "[^\\p{Cc}]{0,30}".prop_map(Kind::StringValue),
        prop::num::f64::NORMAL.prop_map(Kind::NumberValue),
        any::<bool>().prop_map(Kind::BoolValue),
    ]
    .prop_map(|kind| PropertyValue { kind: Some(kind) });
    (
        (
            "[a-z0-9_-]{1,64}",
            any::<bool>(),
            "[^\\p{Cc}]{1,30}",
            prop_oneof![
                prop::sample::select(DOCUMENTED_TYPES.clone()).prop_map(str::to_owned),
                "custom\\.[a-z0-9_.-]{1,64}",
            ],
            1..=12i32,
            0..=7i32,
        ),
        (
            0..=(now + 299),
            0..1_000_000_000i32,
            prop::collection::hash_map("[^\\p{Cc}]{1,16}", property, 0..8),
            prop::option::of(prop::sample::select(vec!["EUR", "USD", "JPY", "CHF"])),
            prop::option::of("[^\\p{Cc}]{0,200}"),
            prop::option::of((survey, "[^\\p{Cc}]{0,20}")),
        ),
    )
        .prop_map(
            |(
                (tenant_id, known, customer, r#type, channel, journey_stage),
                (seconds, nanos, properties, currency, text, survey),
            )| {
                let survey = survey
                    .map(|((kind, score), survey_id)| SurveyAnswer {
                        kind,
                        score,
                        survey_id,
                    })
                    .or_else(|| {
                        (r#type == "survey_response").then(|| SurveyAnswer {
                            kind: 1,
                            score: 9,
                            survey_id: String::new(),
                        })
                    });
                let (customer_id, anonymous_id) = if known {
                    (customer, String::new())
                } else {
                    (String::new(), customer)
                };
                Event {
                    event_id: unique("valid"),
                    tenant_id,
                    customer_id,
                    anonymous_id,
                    r#type,
                    channel,
                    touchpoint: "home".to_owned(),
                    journey_stage,
                    occurred_at: Some(Timestamp { seconds, nanos }),
                    properties,
                    value: currency.map(|c| Money {
                        amount_minor: -1_250,
                        currency: c.to_owned(),
                    }),
                    text,
                    survey,
                    sequence: None,
                }
            },
        )
        .boxed()
}

// ---------------------------------------------------------------------------------------------
// Properties.
// ---------------------------------------------------------------------------------------------

#[test]
fn ingest_knows_exactly_the_event_types_the_contract_documents() {
    assert_eq!(DOCUMENTED_TYPES.len(), 32, "{:?}", *DOCUMENTED_TYPES);
    assert_eq!(KNOWN_EVENT_TYPES.to_vec(), *DOCUMENTED_TYPES);
}

#[test]
fn arbitrary_events_never_panic_and_acceptance_matches_the_documented_rules() {
    let harness = Harness::new();
    runner()
        .run(
            &prop::collection::vec(prop_oneof![arbitrary_event(), mixed_event()], 1..8),
            |events| harness.check(events).map(|_| ()),
        )
        .unwrap();
    // Not vacuous: many events got through, and the common rules each rejected some.
    let (accepted, rejected) = harness.seen.into_inner();
    assert!(accepted >= 50, "only {accepted} events accepted");
    let common = [
        "",
        "event_id",
        "tenant_id",
        "customer_id",
        "type",
        "channel",
        "journey_stage",
        "occurred_at",
        "properties",
    ];
    for field in common {
        assert!(
            rejected.contains_key(field),
            "no rejection at {field:?}: {rejected:?}"
        );
    }
}

#[test]
fn valid_events_are_all_accepted() {
    let harness = Harness::new();
    runner()
        .run(&prop::collection::vec(valid_event(), 1..8), |events| {
            let response = harness.check(events.clone())?;
            prop_assert_eq!(response.accepted as usize, events.len(), "{:?}", response);
            Ok(())
        })
        .unwrap();
}

#[test]
fn arbitrary_bytes_decoded_as_events_never_panic() {
    let harness = Harness::new();
    let bytes = prop::collection::vec(any::<u8>(), 0..512);
    runner()
        .run(&bytes, |bytes| {
            if let Ok(event) = Event::decode(bytes.as_slice()) {
                harness.check(vec![event])?;
            }
            if let Ok(request) = IngestRequest::decode(bytes.as_slice())
                && request.events.len() <= 64
            {
                harness.check(request.events)?;
            }
            Ok(())
        })
        .unwrap();
}

#[test]
fn mutated_encodings_of_valid_events_never_panic() {
    let harness = Harness::new();
    let mutation = prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6);
    runner()
        .run(&(valid_event(), mutation), |(event, mutation)| {
            let mut bytes = event.encode_to_vec();
            for (at, byte) in mutation {
                let i = at.index(bytes.len());
                bytes[i] = byte;
            }
            if let Ok(event) = Event::decode(bytes.as_slice()) {
                harness.check(vec![event])?;
            }
            Ok(())
        })
        .unwrap();
}
