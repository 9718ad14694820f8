//! The decision configuration exactly as written in YAML, before validation: serde structs that
//! refuse unknown keys. Names, durations and times stay strings here so that [`super::compile`]
//! can report every bad value with its path instead of stopping at the first.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_yaml_ng::Value;

/// The whole document.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawConfig {
    /// The tenant the file is meant for, if it says.
    #[serde(default)]
    pub tenant: Option<String>,
    /// `defaults:`.
    #[serde(default)]
    pub defaults: RawDefaults,
    /// `exploration:`.
    #[serde(default)]
    pub exploration: RawExploration,
    /// `actions:` (required).
    pub actions: Vec<RawAction>,
    /// `context_weights:`.
    #[serde(default)]
    pub context_weights: Vec<RawContextWeight>,
    /// `contact_policies:`.
    #[serde(default)]
    pub contact_policies: Vec<RawPolicy>,
    /// `holdouts:`.
    #[serde(default)]
    pub holdouts: RawHoldouts,
    /// `triggers:`.
    #[serde(default)]
    pub triggers: Vec<RawTrigger>,
}

/// `defaults:`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDefaults {
    pub max_actions: Option<i64>,
    pub reservation_ttl: Option<String>,
    pub attribution_window: Option<String>,
    pub decision_retention: Option<String>,
}

/// `exploration:`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawExploration {
    pub mode: Option<String>,
    pub samples: Option<i64>,
}

/// `actions[i]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAction {
    pub id: String,
    #[serde(default)]
    pub group: String,
    pub channels: Vec<String>,
    pub direction: String,
    #[serde(default)]
    pub touchpoints: Vec<String>,
    pub value: Option<f64>,
    pub business_weight: Option<f64>,
    pub valid_from: Option<String>,
    pub valid_until: Option<String>,
    #[serde(default)]
    pub payload: BTreeMap<String, Value>,
    pub eligibility: Option<String>,
    pub applicability: Option<String>,
    pub suitability: Option<String>,
    pub control_share: Option<f64>,
}

/// `context_weights[i]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawContextWeight {
    pub name: String,
    pub when: String,
    #[serde(default)]
    pub actions: Vec<String>,
    #[serde(default)]
    pub groups: Vec<String>,
    pub weight: f64,
}

/// `contact_policies[i]`: exactly one of `cap`, `suppress`, `quiet_hours`, `consent`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPolicy {
    pub name: String,
    pub channels: Option<Vec<String>>,
    #[serde(default)]
    pub actions: Vec<String>,
    #[serde(default)]
    pub groups: Vec<String>,
    pub cap: Option<RawCap>,
    pub suppress: Option<RawSuppress>,
    pub quiet_hours: Option<RawQuietHours>,
    pub consent: Option<String>,
}

/// `contact_policies[i].cap`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawCap {
    pub max: i64,
    pub window: String,
    pub scope: Option<String>,
}

/// `contact_policies[i].suppress`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSuppress {
    pub after_dismissals: i64,
    pub window: String,
}

/// `contact_policies[i].quiet_hours`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawQuietHours {
    pub start: String,
    pub end: String,
}

/// `holdouts:`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawHoldouts {
    pub salt: Option<String>,
    pub global_share: Option<f64>,
}

/// `triggers[i]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTrigger {
    pub name: String,
    pub signal: String,
    pub channel: String,
    #[serde(default)]
    pub touchpoint: String,
    pub max_actions: Option<i64>,
    #[serde(default)]
    pub context: BTreeMap<String, Value>,
    pub when: Option<String>,
}

/// Just the `tenant` key, read leniently to route a file to its tenant.
#[derive(Debug, Deserialize)]
pub(super) struct RawTenant {
    pub tenant: Option<String>,
}
