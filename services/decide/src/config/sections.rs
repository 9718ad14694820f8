//! Compilation of the sections other than contact policies: defaults, exploration, holdouts,
//! actions, context weights and triggers. Each records its problems and returns its best-effort
//! value; the caller discards everything when any problem was found.

use std::{
    collections::{BTreeMap, HashMap, HashSet},
    time::Duration,
};

use iee_api::pb::common::{PropertyValue, property_value};
use prost_types::{ListValue, Struct, value::Kind};
use serde_yaml_ng::Value as Yaml;

use super::{
    compile::Issues,
    model::{Action, ContextWeight, Defaults, Exploration, ExplorationMode, Holdouts, Trigger},
    names,
    raw::{RawAction, RawConfig, RawDefaults, RawExploration, RawHoldouts, RawTrigger},
    rules::Stage,
    units::{check_range, parse_duration, parse_time},
};

const SECOND: (Duration, &str) = (Duration::from_secs(1), "1s");
const DAY: (Duration, &str) = (Duration::from_secs(86_400), "1d");
const MAX_WINDOW: (Duration, &str) = (Duration::from_secs(400 * 86_400), "400d");

/// A duration at `path` (`default` when absent) that must lie within `min..=max`.
pub(super) fn duration(
    issues: &mut Issues,
    path: &str,
    text: Option<&str>,
    default: Duration,
    max: (Duration, &str),
) -> Duration {
    let Some(text) = text else {
        return default;
    };
    let parsed = parse_duration(text).and_then(|d| check_range(d, text, SECOND, max));
    issues.check(path, parsed).unwrap_or(default)
}

/// A window of a contact policy: 1s to 400d.
pub(super) fn window(issues: &mut Issues, path: &str, text: &str) -> Duration {
    duration(issues, path, Some(text), DAY.0, MAX_WINDOW)
}

/// `defaults:`.
pub(super) fn defaults(raw: &RawDefaults, issues: &mut Issues) -> Defaults {
    let week = Duration::from_secs(7 * 86_400);
    let out = Defaults {
        max_actions: raw
            .max_actions
            .map_or(1, |n| issues.integer("defaults.max_actions", n, 1, 100)),
        reservation_ttl: duration(
            issues,
            "defaults.reservation_ttl",
            raw.reservation_ttl.as_deref(),
            Duration::from_secs(300),
            DAY,
        ),
        attribution_window: duration(
            issues,
            "defaults.attribution_window",
            raw.attribution_window.as_deref(),
            week,
            MAX_WINDOW,
        ),
        decision_retention: duration(
            issues,
            "defaults.decision_retention",
            raw.decision_retention.as_deref(),
            week,
            MAX_WINDOW,
        ),
    };
    if out.attribution_window > out.decision_retention {
        issues.push(
            "defaults.attribution_window",
            "must not be longer than defaults.decision_retention (outcomes are matched to logged \
             decisions)",
        );
    }
    out
}

/// `exploration:`.
pub(super) fn exploration(raw: &RawExploration, issues: &mut Issues) -> Exploration {
    let mode = match raw.mode.as_deref() {
        None | Some("thompson") => ExplorationMode::Thompson,
        Some("greedy") => ExplorationMode::Greedy,
        Some(other) => {
            issues.push(
                "exploration.mode",
                format!("unknown mode '{other}' (expected thompson or greedy)"),
            );
            ExplorationMode::Thompson
        }
    };
    Exploration {
        mode,
        samples: raw.samples.map_or(200, |n| {
            issues.integer("exploration.samples", n, 10, 10_000)
        }),
    }
}

/// `holdouts:`.
pub(super) fn holdouts(raw: &RawHoldouts, issues: &mut Issues) -> Holdouts {
    let salt = raw.salt.clone().unwrap_or_default();
    if salt.chars().count() > 128 {
        issues.push("holdouts.salt", "must be at most 128 characters");
    }
    Holdouts {
        salt,
        global_share: raw
            .global_share
            .map_or(0.0, |s| issues.number("holdouts.global_share", s, 0.0, 0.5)),
    }
}

/// `actions:`: every action whose channels and direction could be read, in order.
pub(super) fn actions(raw: &[RawAction], issues: &mut Issues) -> Vec<Action> {
    if raw.is_empty() {
        issues.push("actions", "at least one action is required");
    }
    let mut seen: HashMap<&str, usize> = HashMap::new();
    let mut out = Vec::with_capacity(raw.len());
    for (i, a) in raw.iter().enumerate() {
        let path = format!("actions[{i}]");
        if a.id.is_empty() || a.id.chars().count() > 128 {
            issues.push(format!("{path}.id"), "must be 1-128 characters");
        }
        if let Some(first) = seen.insert(&a.id, i) {
            issues.push(
                format!("{path}.id"),
                format!("duplicate action id '{}' (first at actions[{first}])", a.id),
            );
        }
        if let Some(action) = action(a, &path, issues) {
            out.push(action);
        }
    }
    out
}

fn action(a: &RawAction, path: &str, issues: &mut Issues) -> Option<Action> {
    let channels = channels(issues, &format!("{path}.channels"), &a.channels);
    let direction = issues.check(format!("{path}.direction"), names::direction(&a.direction));
    for (j, touchpoint) in a.touchpoints.iter().enumerate() {
        if touchpoint.is_empty() || touchpoint.chars().count() > 128 {
            issues.push(
                format!("{path}.touchpoints[{j}]"),
                "must be 1-128 characters",
            );
        }
    }
    let time = |issues: &mut Issues, key: &str, text: &Option<String>| {
        let text = text.as_deref()?;
        issues.check(format!("{path}.{key}"), parse_time(text))
    };
    let valid_from = time(issues, "valid_from", &a.valid_from);
    let valid_until = time(issues, "valid_until", &a.valid_until);
    if let (Some(from), Some(until)) = (valid_from, valid_until)
        && from >= until
    {
        issues.push(
            format!("{path}.valid_until"),
            "must be later than valid_from",
        );
    }
    let rule = |issues: &mut Issues, key: &str, source: &Option<String>, stage| {
        let name = format!("{}.{key}", a.id);
        issues.rule(&format!("{path}.{key}"), name, source.as_deref(), stage)
    };
    let eligibility = rule(issues, "eligibility", &a.eligibility, Stage::Eligibility);
    let applicability = rule(
        issues,
        "applicability",
        &a.applicability,
        Stage::Applicability,
    );
    let suitability = rule(issues, "suitability", &a.suitability, Stage::Suitability);
    let unbounded = f64::INFINITY;
    Some(Action {
        id: a.id.clone(),
        group: a.group.clone(),
        direction: direction?,
        touchpoints: a.touchpoints.clone(),
        value: a.value.map_or(1.0, |v| {
            issues.number(format!("{path}.value"), v, 0.0, unbounded)
        }),
        business_weight: a.business_weight.map_or(1.0, |v| {
            issues.number(format!("{path}.business_weight"), v, 0.0, unbounded)
        }),
        valid_from,
        valid_until,
        payload: payload(issues, &format!("{path}.payload"), &a.payload),
        eligibility,
        applicability,
        suitability,
        control_share: a.control_share.map_or(0.0, |s| {
            issues.number(format!("{path}.control_share"), s, 0.0, 0.5)
        }),
        path: path.to_owned(),
        channels: channels?,
    })
}

/// A list of channel names: at least one, each known, none twice.
pub(super) fn channels(issues: &mut Issues, path: &str, names: &[String]) -> Option<Vec<i32>> {
    if names.is_empty() {
        issues.push(path, "at least one channel is required");
        return None;
    }
    let mut out = Vec::with_capacity(names.len());
    let mut ok = true;
    for (j, name) in names.iter().enumerate() {
        match names::channel(name) {
            Ok(c) if out.contains(&c) => {
                issues.push(
                    format!("{path}[{j}]"),
                    format!("channel '{name}' is listed twice"),
                );
            }
            Ok(c) => out.push(c),
            Err(message) => {
                issues.push(format!("{path}[{j}]"), message);
                ok = false;
            }
        }
    }
    ok.then_some(out)
}

/// Checks `actions:` / `groups:` filters against the catalogue.
pub(super) fn check_targets(
    issues: &mut Issues,
    path: &str,
    raw: &RawConfig,
    ids: &[String],
    groups: &[String],
) {
    let known_ids: HashSet<&str> = raw.actions.iter().map(|a| a.id.as_str()).collect();
    let known_groups: HashSet<&str> = raw.actions.iter().map(|a| a.group.as_str()).collect();
    for (j, id) in ids.iter().enumerate() {
        if !known_ids.contains(id.as_str()) {
            issues.push(
                format!("{path}.actions[{j}]"),
                format!("unknown action '{id}'"),
            );
        }
    }
    for (j, group) in groups.iter().enumerate() {
        if group.is_empty() || !known_groups.contains(group.as_str()) {
            issues.push(
                format!("{path}.groups[{j}]"),
                format!("no action has group '{group}'"),
            );
        }
    }
}

/// `context_weights:`.
pub(super) fn context_weights(raw: &RawConfig, issues: &mut Issues) -> Vec<ContextWeight> {
    let mut seen: HashMap<&str, usize> = HashMap::new();
    let mut out = Vec::with_capacity(raw.context_weights.len());
    for (i, w) in raw.context_weights.iter().enumerate() {
        let path = format!("context_weights[{i}]");
        unique_name(
            issues,
            &path,
            &w.name,
            i,
            &mut seen,
            "context weight",
            "context_weights",
        );
        check_targets(issues, &path, raw, &w.actions, &w.groups);
        let weight = issues.number(format!("{path}.weight"), w.weight, 0.0, f64::INFINITY);
        let when = issues.rule(
            &format!("{path}.when"),
            w.name.clone(),
            Some(&w.when),
            Stage::ContextWeight,
        );
        out.extend(when.map(|when| ContextWeight {
            name: w.name.clone(),
            when,
            actions: w.actions.clone(),
            groups: w.groups.clone(),
            weight,
        }));
    }
    out
}

/// Checks that an entry's name is 1-128 characters and not taken by an earlier entry.
pub(super) fn unique_name<'a>(
    issues: &mut Issues,
    path: &str,
    name: &'a str,
    index: usize,
    seen: &mut HashMap<&'a str, usize>,
    what: &str,
    section: &str,
) {
    if name.is_empty() || name.chars().count() > 128 {
        issues.push(format!("{path}.name"), "must be 1-128 characters");
    }
    if let Some(first) = seen.insert(name, index) {
        issues.push(
            format!("{path}.name"),
            format!("duplicate {what} name '{name}' (first at {section}[{first}])"),
        );
    }
}

/// `triggers:`; `by_channel` is the candidate index, to check that each trigger can be served.
pub(super) fn triggers(
    raw: &[RawTrigger],
    by_channel: &HashMap<(i32, i32), Vec<usize>>,
    issues: &mut Issues,
) -> Vec<Trigger> {
    let mut seen: HashMap<&str, usize> = HashMap::new();
    let mut out = Vec::with_capacity(raw.len());
    for (i, t) in raw.iter().enumerate() {
        let path = format!("triggers[{i}]");
        unique_name(issues, &path, &t.name, i, &mut seen, "trigger", "triggers");
        let signal = issues.check(format!("{path}.signal"), names::signal(&t.signal));
        let channel = issues.check(format!("{path}.channel"), names::channel(&t.channel));
        if let Some(channel) = channel
            && !by_channel.contains_key(&(channel, names::outbound()))
        {
            issues.push(
                format!("{path}.channel"),
                format!("no outbound action is offered on channel '{}'", t.channel),
            );
        }
        if t.touchpoint.chars().count() > 128 {
            issues.push(
                format!("{path}.touchpoint"),
                "must be at most 128 characters",
            );
        }
        let max_actions = t.max_actions.map_or(1, |n| {
            issues.integer(format!("{path}.max_actions"), n, 1, 10)
        });
        let context = trigger_context(issues, &format!("{path}.context"), &t.context);
        let when_path = format!("{path}.when");
        let when = issues.rule(
            &when_path,
            format!("{}.when", t.name),
            t.when.as_deref(),
            Stage::Trigger,
        );
        if let (Some(signal), Some(channel)) = (signal, channel) {
            out.push(Trigger {
                name: t.name.clone(),
                signal,
                channel,
                touchpoint: t.touchpoint.clone(),
                max_actions,
                context,
                when,
            });
        }
    }
    out
}

/// A trigger's `context:`: strings, finite numbers and booleans.
fn trigger_context(
    issues: &mut Issues,
    path: &str,
    raw: &BTreeMap<String, Yaml>,
) -> HashMap<String, PropertyValue> {
    let mut out = HashMap::with_capacity(raw.len());
    for (key, value) in raw {
        let path = format!("{path}.{key}");
        if key.is_empty() || key.chars().count() > 64 {
            issues.push(&path, "context keys must be 1-64 characters");
        }
        let kind = match value {
            Yaml::String(s) => property_value::Kind::StringValue(s.clone()),
            Yaml::Bool(b) => property_value::Kind::BoolValue(*b),
            Yaml::Number(n) => match n.as_f64().filter(|f| f.is_finite()) {
                Some(f) => property_value::Kind::NumberValue(f),
                None => {
                    issues.push(&path, "must be a finite number");
                    continue;
                }
            },
            _ => {
                issues.push(&path, "must be a string, a number or a boolean");
                continue;
            }
        };
        out.insert(key.clone(), PropertyValue { kind: Some(kind) });
    }
    out
}

/// An action's `payload:` as a protobuf struct.
fn payload(issues: &mut Issues, path: &str, raw: &BTreeMap<String, Yaml>) -> Struct {
    Struct {
        fields: raw
            .iter()
            .map(|(k, v)| (k.clone(), proto_value(issues, &format!("{path}.{k}"), v)))
            .collect(),
    }
}

fn proto_value(issues: &mut Issues, path: &str, value: &Yaml) -> prost_types::Value {
    let kind = match value {
        Yaml::Null => Kind::NullValue(0),
        Yaml::Bool(b) => Kind::BoolValue(*b),
        Yaml::Number(n) => match n.as_f64().filter(|f| f.is_finite()) {
            Some(f) => Kind::NumberValue(f),
            None => {
                issues.push(path, "must be a finite number");
                Kind::NullValue(0)
            }
        },
        Yaml::String(s) => Kind::StringValue(s.clone()),
        Yaml::Sequence(items) => Kind::ListValue(ListValue {
            values: items
                .iter()
                .enumerate()
                .map(|(j, item)| proto_value(issues, &format!("{path}[{j}]"), item))
                .collect(),
        }),
        Yaml::Mapping(map) => {
            let mut fields = BTreeMap::new();
            for (k, v) in map {
                match k.as_str() {
                    Some(k) => {
                        fields.insert(k.to_owned(), proto_value(issues, &format!("{path}.{k}"), v));
                    }
                    None => issues.push(path, "payload keys must be strings"),
                }
            }
            Kind::StructValue(Struct { fields })
        }
        Yaml::Tagged(_) => {
            issues.push(path, "YAML tags are not supported in payloads");
            Kind::NullValue(0)
        }
    };
    prost_types::Value { kind: Some(kind) }
}
