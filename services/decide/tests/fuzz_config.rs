//! Property-based fuzzing of decision configuration parsing: arbitrary text and mutated example
//! configurations never panic, a refusal names where and what, and whatever is accepted keeps
//! the documented invariants (docs/decide-config.md).

#![allow(clippy::unwrap_used)]

use std::{
    collections::HashSet,
    time::{Duration, SystemTime},
};

use iee_decide::config::{ConfigIssue, DecisionConfig, PolicyKind, compile, version_of};
use proptest::{
    prelude::*,
    test_runner::{Config, TestCaseError, TestRunner},
};
use serde_yaml_ng::{Mapping, Value as Yaml};

/// Cases per property: enough to reach every section, cheap enough for CI.
const CASES: u32 = 384;

const RETAIL: &str = include_str!("../../../examples/decide/retail.yaml");
const DEMO: &str = include_str!("../../../examples/demo/demo.yaml");

const DAY: Duration = Duration::from_secs(86_400);

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
// The checks.
// ---------------------------------------------------------------------------------------------

/// Compiles `yaml` for `tenant` and checks the outcome either way; returns whether it was
/// accepted.
fn check(tenant: &str, yaml: &str) -> Result<bool, TestCaseError> {
    let outcome = compile(tenant, yaml);
    match &outcome {
        Ok(config) => check_accepted(tenant, yaml, config)?,
        Err(issues) => check_refused(yaml, issues)?,
    }
    // Deterministic: the same text gives the same answer.
    match (&outcome, compile(tenant, yaml)) {
        (Ok(a), Ok(b)) => prop_assert_eq!(&a.version, &b.version),
        (Err(a), Err(b)) => prop_assert_eq!(a, &b),
        _ => prop_assert!(false, "compile is not deterministic for:\n{}", yaml),
    }
    Ok(outcome.is_ok())
}

fn check_refused(yaml: &str, issues: &[ConfigIssue]) -> Result<(), TestCaseError> {
    prop_assert!(!issues.is_empty(), "refused without an issue:\n{}", yaml);
    for issue in issues {
        prop_assert!(
            !issue.message.trim().is_empty(),
            "issue without a message: {:?}",
            issue
        );
        // A YAML syntax error may only know its position, never neither.
        prop_assert!(
            !issue.path.is_empty() || issue.line > 0,
            "issue with neither path nor position: {:?} for:\n{}",
            issue,
            yaml
        );
        prop_assert!(
            !issue.to_string().is_empty(),
            "issue displays as nothing: {:?}",
            issue
        );
    }
    Ok(())
}

fn in_range(value: f64, min: f64, max: f64) -> bool {
    value.is_finite() && (min..=max).contains(&value)
}

fn name_ok(name: &str) -> bool {
    (1..=128).contains(&name.chars().count())
}

/// The documented rules, checked on a compiled configuration.
fn check_accepted(tenant: &str, yaml: &str, c: &DecisionConfig) -> Result<(), TestCaseError> {
    prop_assert_eq!(&c.tenant_id, tenant);
    prop_assert_eq!(&c.yaml, yaml);
    prop_assert_eq!(&c.version, &version_of(yaml));
    prop_assert!((1..=100).contains(&c.defaults.max_actions));
    let d = &c.defaults;
    let (second, max_window) = (Duration::from_secs(1), DAY * 400);
    prop_assert!(d.reservation_ttl >= second && d.reservation_ttl <= DAY);
    prop_assert!(d.attribution_window >= second && d.attribution_window <= max_window);
    prop_assert!(d.decision_retention >= second && d.decision_retention <= max_window);
    prop_assert!(d.attribution_window <= d.decision_retention);
    prop_assert!((10..=10_000).contains(&c.exploration.samples));
    prop_assert!(in_range(c.holdouts.global_share, 0.0, 0.5));
    prop_assert!(c.holdouts.salt.chars().count() <= 128);

    prop_assert!(!c.actions.is_empty(), "no actions");
    let mut ids = HashSet::new();
    for (i, a) in c.actions.iter().enumerate() {
        prop_assert!(name_ok(&a.id), "action id {:?}", a.id);
        prop_assert!(ids.insert(a.id.as_str()), "duplicate action id {:?}", a.id);
        prop_assert!(!a.channels.is_empty());
        let channels: HashSet<_> = a.channels.iter().collect();
        prop_assert_eq!(channels.len(), a.channels.len(), "repeated channel");
        prop_assert!(a.channels.iter().all(|ch| (1..=12).contains(ch)));
        prop_assert!((1..=2).contains(&a.direction));
        prop_assert!(a.touchpoints.iter().all(|t| name_ok(t)));
        prop_assert!(in_range(a.value, 0.0, f64::MAX), "value {}", a.value);
        prop_assert!(in_range(a.business_weight, 0.0, f64::MAX));
        prop_assert!(in_range(a.control_share, 0.0, 0.5));
        if let (Some(from), Some(until)) = (a.valid_from, a.valid_until) {
            prop_assert!(from < until);
        }
        prop_assert!(payload_finite(&a.payload.fields));
        prop_assert_eq!(&a.path, &format!("actions[{i}]"));
        prop_assert!(std::ptr::eq(c.action(&a.id).unwrap(), a));
        for &channel in &a.channels {
            prop_assert!(c.candidates(channel, a.direction).contains(&i));
        }
    }
    let groups: HashSet<&str> = c.actions.iter().map(|a| a.group.as_str()).collect();
    for (channel, direction) in (0..=13).flat_map(|ch| (0..=3).map(move |d| (ch, d))) {
        for &i in c.candidates(channel, direction) {
            prop_assert!(i < c.actions.len());
            prop_assert!(c.actions[i].channels.contains(&channel));
            prop_assert_eq!(c.actions[i].direction, direction);
        }
    }

    let mut names = HashSet::new();
    for w in &c.context_weights {
        prop_assert!(name_ok(&w.name) && names.insert(w.name.as_str()));
        prop_assert!(in_range(w.weight, 0.0, f64::MAX), "weight {}", w.weight);
        prop_assert!(w.actions.iter().all(|id| ids.contains(id.as_str())));
        prop_assert!(
            w.groups
                .iter()
                .all(|g| !g.is_empty() && groups.contains(g.as_str()))
        );
    }

    let mut names = HashSet::new();
    for p in &c.contact_policies {
        prop_assert!(name_ok(&p.name) && names.insert(p.name.as_str()));
        prop_assert!(p.actions.iter().all(|id| ids.contains(id.as_str())));
        prop_assert!(
            p.groups
                .iter()
                .all(|g| !g.is_empty() && groups.contains(g.as_str()))
        );
        prop_assert!(p.channels.iter().all(|ch| (1..=12).contains(ch)));
        match &p.kind {
            PolicyKind::Cap { max, window, scope } => {
                prop_assert!((1..=10_000).contains(max));
                prop_assert!(*window >= second && *window <= max_window);
                prop_assert!((1..=3).contains(scope), "cap scope {}", scope);
            }
            PolicyKind::Suppress { after, window } => {
                prop_assert!((1..=16).contains(after));
                prop_assert!(*window >= second && *window <= max_window);
            }
            PolicyKind::QuietHours {
                start_minute,
                end_minute,
            } => {
                prop_assert!(*start_minute < 1440 && *end_minute < 1440);
                prop_assert_ne!(start_minute, end_minute);
            }
            PolicyKind::Consent { purpose } => {
                prop_assert!((1..=64).contains(&purpose.len()));
                prop_assert!(
                    purpose
                        .bytes()
                        .all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'_' | b'.' | b'-'))
                );
            }
        }
    }
    // One reservation per contact: at most one consent, quiet-hours and suppress policy and
    // at most 16 caps for any (action, channel).
    for a in &c.actions {
        for &channel in &a.channels {
            let mut counts = [0usize; 4];
            for p in c.policies_for(a, channel) {
                let k = match p.kind {
                    PolicyKind::Cap { .. } => 0,
                    PolicyKind::Suppress { .. } => 1,
                    PolicyKind::QuietHours { .. } => 2,
                    PolicyKind::Consent { .. } => 3,
                };
                counts[k] += 1;
            }
            prop_assert!(counts[0] <= 16 && counts[1..].iter().all(|&n| n <= 1));
        }
    }

    let mut names = HashSet::new();
    for t in &c.triggers {
        prop_assert!(name_ok(&t.name) && names.insert(t.name.as_str()));
        prop_assert!((1..=6).contains(&t.signal), "signal {}", t.signal);
        prop_assert!(!c.candidates(t.channel, 2).is_empty(), "no outbound action");
        prop_assert!(t.touchpoint.chars().count() <= 128);
        prop_assert!((1..=10).contains(&t.max_actions));
        for (key, value) in &t.context {
            prop_assert!((1..=64).contains(&key.chars().count()));
            use iee_api::pb::common::property_value::Kind;
            match &value.kind {
                Some(Kind::NumberValue(n)) => prop_assert!(n.is_finite()),
                Some(_) => {}
                None => prop_assert!(false, "empty context value"),
            }
        }
        prop_assert!(c.trigger(&t.name).is_some());
    }
    Ok(())
}

fn payload_finite(fields: &std::collections::BTreeMap<String, prost_types::Value>) -> bool {
    fields.values().all(value_finite)
}

fn value_finite(value: &prost_types::Value) -> bool {
    use prost_types::value::Kind;
    match &value.kind {
        Some(Kind::NumberValue(n)) => n.is_finite(),
        Some(Kind::ListValue(list)) => list.values.iter().all(value_finite),
        Some(Kind::StructValue(s)) => payload_finite(&s.fields),
        Some(_) => true,
        None => false,
    }
}

// ---------------------------------------------------------------------------------------------
// Generators.
// ---------------------------------------------------------------------------------------------

/// Words and punctuation of CEL and of the rule variables, to build plausible and broken rules.
const CEL_TOKENS: &[&str] = &[
    "profile",
    "context",
    "scores",
    "customer",
    "action",
    "now_unix",
    "profil",
    "scores.churn",
    "scores.nope",
    "profile.cart.value",
    "profile.activity[\"7d\"].refund",
    "customer.known",
    ".",
    "==",
    "!=",
    "&&",
    "||",
    "!",
    "-",
    "+",
    "*",
    "/",
    "%",
    "<",
    ">=",
    "?",
    ":",
    "(",
    ")",
    "[",
    "]",
    "{",
    "}",
    ",",
    "in",
    "has(",
    "size(",
    "int(",
    "double(",
    "string(",
    ".exists(x, x",
    ".all(x,",
    ".map(x, x)",
    "matches(",
    "'(a+)+$'",
    "\"x\"",
    "'",
    "\"",
    "\\",
    "b\"\\xff\"",
    "r'\\d'",
    "1",
    "1.0",
    "-1",
    "1u",
    "0x7fffffffffffffff",
    "9223372036854775808",
    "1e308",
    "1e999",
    "true",
    "null",
    "timestamp(",
    "duration(",
    "é",
    "\u{0}",
    "\n",
];

fn cel_text() -> BoxedStrategy<String> {
    prop_oneof![
        4 => prop::collection::vec(prop::sample::select(CEL_TOKENS), 0..12)
            .prop_map(|tokens| tokens.join(" ")),
        1 => any::<String>(),
        // Deep nesting, past the parser's own depth limit (96): an unoptimised `cel` parser
        // overflowed a 2 MiB thread stack at about 11 nested brackets and aborted the process
        // (the workspace now builds `cel` optimised in debug builds too).
        1 => (1..=120usize, prop::sample::select(vec!["(", "!", "-", "["])).prop_map(|(n, open)| {
            let close = match open {
                "(" => ")",
                "[" => "]",
                _ => "",
            };
            format!("{}true{}", open.repeat(n), close.repeat(n))
        }),
    ]
    .boxed()
}

fn number() -> BoxedStrategy<Yaml> {
    // Mostly values between -0.1 and 1.1 and small integers: they straddle nearly every limit
    // (shares 0.5, caps 1, dismissals 16, samples 10).
    prop_oneof![
        1 => prop::sample::select(vec![
            -1.0,
            -0.0,
            0.0,
            0.5,
            0.5000001,
            1.0,
            1e300,
            f64::MAX,
            f64::MIN_POSITIVE,
            f64::NAN,
            f64::INFINITY,
            f64::NEG_INFINITY,
        ])
        .prop_map(|f| Yaml::Number(f.into())),
        1 => any::<f64>().prop_map(|f| Yaml::Number(f.into())),
        3 => (-0.1..1.1f64).prop_map(|f| Yaml::Number(f.into())),
        3 => (-2..20i64).prop_map(|n| Yaml::Number(n.into())),
        1 => prop::sample::select(vec![
            i64::MIN,
            -1,
            0,
            1,
            9,
            10,
            16,
            17,
            100,
            101,
            10_000,
            10_001,
            i64::from(u32::MAX) + 1,
            i64::MAX,
        ])
        .prop_map(|n| Yaml::Number(n.into())),
        1 => any::<u64>().prop_map(|n| Yaml::Number(n.into())),
    ]
    .boxed()
}

fn text() -> BoxedStrategy<String> {
    prop_oneof![
        2 => prop::sample::select(vec![
            "", "web", "email", "sms", "outbound", "inbound", "WEB", "thompson", "greedy",
            "all_channels", "action", "cart_abandoned", "7d", "0s", "1s", "86401s", "401d",
            "99999999999999999999d", "18446744073709551615ms", "1d", "5m", "-1d", "1.5h",
            "21:00", "21:00", "24:00", "9:00", "2026-01-01T00:00:00Z", "2026-02-30T00:00:00Z",
            "9999-12-31T23:59:59.999999999-23:59", "0000-01-01T00:00:00+23:59",
            "2026-01-01T00:00:00.1234567890Z", "marketing_email", "Marketing", "cart-discount-10",
            "retention", "free-shipping",
        ])
        .prop_map(str::to_owned),
        2 => cel_text(),
        1 => any::<String>(),
        1 => (127..131usize).prop_map(|n| "é".repeat(n)),
        1 => (63..67usize).prop_map(|n| "k".repeat(n)),
    ]
    .boxed()
}

/// A replacement value of any YAML kind.
fn any_yaml() -> BoxedStrategy<Yaml> {
    prop_oneof![
        4 => number(),
        4 => text().prop_map(Yaml::String),
        1 => any::<bool>().prop_map(Yaml::Bool),
        1 => Just(Yaml::Null),
        1 => Just(Yaml::Sequence(Vec::new())),
        1 => Just(Yaml::Mapping(Mapping::new())),
        1 => text().prop_map(|s| Yaml::Sequence(vec![Yaml::String(s)])),
    ]
    .boxed()
}

/// One change to a configuration, at a node chosen by index among all its nodes.
#[derive(Debug, Clone)]
enum Mutation {
    /// Replace the node.
    Replace(prop::sample::Index, Yaml),
    /// Replace a number (most limits are on numbers, which are few among the nodes).
    Renumber(prop::sample::Index, Yaml),
    /// Remove the node from its map or list.
    Remove(prop::sample::Index),
    /// Repeat the node in its list (e.g. a second action with the same id).
    Repeat(prop::sample::Index),
    /// Add a key to a map (unknown keys, or known keys the map does not have yet).
    AddKey(prop::sample::Index, String, Yaml),
}

fn mutation() -> BoxedStrategy<Mutation> {
    let key = prop_oneof![
        prop::sample::select(vec![
            "id",
            "channels",
            "direction",
            "value",
            "cap",
            "suppress",
            "consent",
            "quiet_hours",
            "when",
            "weight",
            "control_share",
            "salt",
            "global_share",
            "max_actions",
            "samples",
            "valid_from",
            "valid_until",
            "touchpoints",
            "groups",
            "actions",
            "tenant",
            "unknown",
            "tenant_id",
        ])
        .prop_map(str::to_owned),
        "[a-z_]{1,12}",
    ];
    prop_oneof![
        4 => (any::<prop::sample::Index>(), any_yaml()).prop_map(|(i, v)| Mutation::Replace(i, v)),
        6 => (any::<prop::sample::Index>(), number()).prop_map(|(i, v)| Mutation::Renumber(i, v)),
        2 => any::<prop::sample::Index>().prop_map(Mutation::Remove),
        1 => any::<prop::sample::Index>().prop_map(Mutation::Repeat),
        1 => (any::<prop::sample::Index>(), key, any_yaml())
            .prop_map(|(i, k, v)| Mutation::AddKey(i, k, v)),
    ]
    .boxed()
}

#[derive(Debug, Clone)]
enum Step {
    Key(Yaml),
    At(usize),
}

/// Every node's path, the root's (empty) first, with whether it is a number and a map.
fn paths(value: &Yaml, here: &mut Vec<Step>, out: &mut Vec<(Vec<Step>, bool, bool)>) {
    let (number, map) = (value.is_number(), value.is_mapping());
    out.push((here.clone(), number, map));
    match value {
        Yaml::Mapping(map) => {
            for (k, v) in map {
                here.push(Step::Key(k.clone()));
                paths(v, here, out);
                here.pop();
            }
        }
        Yaml::Sequence(items) => {
            for (j, v) in items.iter().enumerate() {
                here.push(Step::At(j));
                paths(v, here, out);
                here.pop();
            }
        }
        _ => {}
    }
}

fn node<'a>(mut value: &'a mut Yaml, path: &[Step]) -> &'a mut Yaml {
    for step in path {
        value = match (step, value) {
            (Step::Key(k), Yaml::Mapping(map)) => map.get_mut(k).unwrap(),
            (Step::At(j), Yaml::Sequence(items)) => &mut items[*j],
            _ => unreachable!("paths come from the same document"),
        };
    }
    value
}

fn apply(doc: &mut Yaml, mutation: &Mutation) {
    let mut all = Vec::new();
    paths(doc, &mut Vec::new(), &mut all);
    let pick = |i: &prop::sample::Index| all[i.index(all.len())].0.clone();
    let numbers: Vec<&Vec<Step>> = all.iter().filter(|p| p.1).map(|p| &p.0).collect();
    let maps: Vec<&Vec<Step>> = all.iter().filter(|p| p.2).map(|p| &p.0).collect();
    match mutation {
        Mutation::Replace(i, v) => *node(doc, &pick(i)) = v.clone(),
        Mutation::Renumber(i, v) => {
            if !numbers.is_empty() {
                let path = numbers[i.index(numbers.len())].clone();
                *node(doc, &path) = v.clone();
            }
        }
        Mutation::Remove(i) | Mutation::Repeat(i) => {
            let path = pick(i);
            let Some((last, parent)) = path.split_last() else {
                return;
            };
            match (node(doc, parent), last) {
                (Yaml::Mapping(map), Step::Key(k)) => {
                    if matches!(mutation, Mutation::Remove(_)) {
                        map.remove(k);
                    }
                }
                (Yaml::Sequence(items), Step::At(j)) => {
                    if matches!(mutation, Mutation::Remove(_)) {
                        items.remove(*j);
                    } else {
                        let copy = items[*j].clone();
                        items.insert(*j + 1, copy);
                    }
                }
                _ => {}
            }
        }
        Mutation::AddKey(i, k, v) => {
            // The root itself may have been replaced by a scalar.
            if maps.is_empty() {
                return;
            }
            let path = maps[i.index(maps.len())].clone();
            if let Yaml::Mapping(map) = node(doc, &path) {
                map.insert(Yaml::String(k.clone()), v.clone());
            }
        }
    }
}

/// An example configuration (tenant, text) with one or two mutations.
fn mutated_example() -> BoxedStrategy<(String, String)> {
    let base = prop::sample::select(vec![("acme", RETAIL), ("demo", DEMO)]);
    (base, prop::collection::vec(mutation(), 1..=2))
        .prop_map(|((tenant, yaml), mutations)| {
            let mut doc: Yaml = serde_yaml_ng::from_str(yaml).unwrap();
            for m in &mutations {
                apply(&mut doc, m);
            }
            (tenant.to_owned(), serde_yaml_ng::to_string(&doc).unwrap())
        })
        .boxed()
}

/// Text that looks like YAML some of the time.
fn yamlish_text() -> BoxedStrategy<String> {
    let line = prop_oneof![
        prop::sample::select(vec![
            "actions:",
            "  - id: a",
            "    channels: [web]",
            "    direction: inbound",
            "    value: .nan",
            "    value: -.inf",
            "    control_share: 0.6",
            "tenant: acme",
            "tenant: [acme]",
            "defaults: {max_actions: 0}",
            "holdouts: {global_share: 1e309}",
            "contact_policies:",
            "  - {name: c, cap: {max: 99999999999999999999, window: 1d}}",
            "triggers: [{name: t, signal: inactive, channel: email}]",
            "&anchor a: *anchor",
            "<<: *x",
            "!!binary aGVsbG8=",
            "? complex",
            "--- ",
            "...",
            "%YAML 1.2",
            "\t- tab",
            "key: 'unterminated",
            "key: \"\\uD800\"",
            "- - - - - - - -",
            "{[{[{[{[",
        ])
        .prop_map(str::to_owned),
        "[ -~\\t]{0,30}",
    ];
    prop_oneof![
        3 => prop::collection::vec(line, 0..12).prop_map(|lines| lines.join("\n")),
        1 => any::<String>(),
        1 => prop::collection::vec(any::<u8>(), 0..200)
            .prop_map(|bytes| String::from_utf8_lossy(&bytes).into_owned()),
    ]
    .boxed()
}

// ---------------------------------------------------------------------------------------------
// Properties.
// ---------------------------------------------------------------------------------------------

#[test]
fn the_examples_compile() {
    let (retail, demo) = (compile("acme", RETAIL), compile("demo", DEMO));
    assert!(check("acme", RETAIL).unwrap(), "{:?}", retail.err());
    assert!(check("demo", DEMO).unwrap(), "{:?}", demo.err());
}

#[test]
fn arbitrary_text_never_panics_and_refusals_say_where() {
    runner()
        .run(&yamlish_text(), |yaml| check("acme", &yaml).map(|_| ()))
        .unwrap();
}

#[test]
fn mutated_examples_never_panic_and_accepted_ones_keep_the_rules() {
    let accepted = std::cell::Cell::new(0u32);
    let refused = std::cell::Cell::new(0u32);
    runner()
        .run(&mutated_example(), |(tenant, yaml)| {
            let counter = if check(&tenant, &yaml)? {
                &accepted
            } else {
                &refused
            };
            counter.set(counter.get() + 1);
            Ok(())
        })
        .unwrap();
    // Not vacuous: mutations both break and keep configurations.
    assert!(accepted.get() >= 10, "accepted {}", accepted.get());
    assert!(refused.get() >= 10, "refused {}", refused.get());
}

#[test]
fn arbitrary_rules_never_panic() {
    let base = "actions:\n  - id: a\n    channels: [web, email]\n    direction: outbound\n";
    runner()
        .run(&(cel_text(), 0..4usize), |(rule, slot)| {
            let quoted = serde_yaml_ng::to_string(&Yaml::String(rule)).unwrap();
            let quoted = quoted.trim_end();
            let yaml = match slot {
                0 => format!("{base}    eligibility: {quoted}\n"),
                1 => format!("{base}    suitability: {quoted}\n"),
                2 => format!("{base}context_weights: [{{name: w, weight: 1, when: {quoted}}}]\n"),
                _ => format!(
                    "{base}triggers: [{{name: t, signal: inactive, channel: email, when: {quoted}}}]\n"
                ),
            };
            check("acme", &yaml).map(|_| ())
        })
        .unwrap();
}

#[test]
fn times_far_from_now_are_handled() {
    // valid_from / valid_until at the ends of what RFC 3339 can write.
    for (from, until) in [
        (
            "0000-01-01T00:00:00+23:59",
            "9999-12-31T23:59:59.999999999-23:59",
        ),
        ("1970-01-01T00:00:00Z", "1970-01-01T00:00:00.000000001Z"),
    ] {
        let yaml = format!(
            "actions:\n  - id: a\n    channels: [web]\n    direction: inbound\n    \
             valid_from: \"{from}\"\n    valid_until: \"{until}\"\n"
        );
        let config = compile("acme", &yaml).unwrap();
        let a = &config.actions[0];
        assert!(a.valid_from.unwrap() < a.valid_until.unwrap());
        let _ = a.offered_at("", SystemTime::now());
    }
}
