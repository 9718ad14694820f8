//! Tunables of the KPI fold (`[kpi]`): attribution window, sessions, which event types convert
//! or churn, cardinality caps, per-customer state bounds and the retention of each bucket width.

use std::time::Duration;

use iee_store::Granularity;
use serde::{Deserialize, Serialize};

/// Seconds per day.
const DAY: u64 = 86_400;

/// Tunables of the fold. `docs/kpi-metrics.md` says which metrics each one drives.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FoldConfig {
    /// A conversion counts for the decisions made at most this long before it (seconds).
    pub attribution_window_secs: u64,
    /// A gap longer than this between two interactions starts a new session (seconds).
    pub session_timeout_secs: u64,
    /// An engaged session has at least this many interactions spanning
    /// `engaged_session_min_secs` (or a conversion).
    pub engaged_session_min_events: u32,
    /// See `engaged_session_min_events` (seconds; 0 lets the event count decide alone).
    pub engaged_session_min_secs: u64,
    /// Event types that are conversions (orders when they carry a value).
    pub conversion_events: Vec<String>,
    /// Event types that mean the customer churned.
    pub churn_events: Vec<String>,
    /// Distinct touchpoints kept per tenant; later ones are counted as `other`.
    pub max_touchpoints: u32,
    /// Distinct action ids kept per tenant; later ones are counted as `other`.
    pub max_actions: u32,
    /// Experiments a customer's state remembers an assignment for; later experiments count
    /// their decisions but not the customer.
    pub max_experiments_per_customer: u32,
    /// Decisions a customer's state remembers for attribution (the oldest go first).
    pub max_recent_decisions: u32,
    /// How long minute buckets are kept (seconds).
    pub minute_retention_secs: u64,
    /// How long hour buckets are kept (seconds).
    pub hour_retention_secs: u64,
    /// How long day buckets are kept (seconds).
    pub day_retention_secs: u64,
    /// How long a customer's measurement state is kept after its last change (seconds).
    pub customer_ttl_secs: u64,
}

impl Default for FoldConfig {
    fn default() -> Self {
        Self {
            attribution_window_secs: 7 * DAY,
            session_timeout_secs: 1_800,
            engaged_session_min_events: 2,
            engaged_session_min_secs: 10,
            conversion_events: vec!["purchase".to_owned()],
            churn_events: vec![
                "subscription_cancel".to_owned(),
                "custom.churn".to_owned(),
                "custom.account_closed".to_owned(),
            ],
            max_touchpoints: 200,
            max_actions: 1_000,
            max_experiments_per_customer: 32,
            max_recent_decisions: 32,
            minute_retention_secs: 2 * DAY,
            hour_retention_secs: 35 * DAY,
            day_retention_secs: 400 * DAY,
            customer_ttl_secs: 400 * DAY,
        }
    }
}

/// Checks `min <= value <= max`, naming `kpi.<field>` otherwise.
fn in_range(field: &str, value: u64, min: u64, max: u64) -> Result<(), String> {
    if (min..=max).contains(&value) {
        Ok(())
    } else {
        Err(format!(
            "kpi.{field}: must be within {min}..={max}, got {value}"
        ))
    }
}

/// Checks that every entry of an event type list is a plausible type name.
fn event_types(field: &str, types: &[String]) -> Result<(), String> {
    for (i, t) in types.iter().enumerate() {
        if t.is_empty() || t.len() > 128 {
            return Err(format!(
                "kpi.{field}[{i}]: must be an event type of 1-128 characters, got {t:?}"
            ));
        }
    }
    Ok(())
}

/// Ten years: no duration of the fold needs more.
const MAX_SECS: u64 = 3_650 * DAY;

impl FoldConfig {
    /// Checks every value; the message names the first bad field as `kpi.<field>` and why.
    pub fn validate(&self) -> Result<(), String> {
        in_range(
            "attribution_window_secs",
            self.attribution_window_secs,
            1,
            365 * DAY,
        )?;
        in_range("session_timeout_secs", self.session_timeout_secs, 1, DAY)?;
        in_range(
            "engaged_session_min_events",
            u64::from(self.engaged_session_min_events),
            1,
            10_000,
        )?;
        in_range(
            "engaged_session_min_secs",
            self.engaged_session_min_secs,
            0,
            DAY,
        )?;
        event_types("conversion_events", &self.conversion_events)?;
        event_types("churn_events", &self.churn_events)?;
        in_range(
            "max_touchpoints",
            u64::from(self.max_touchpoints),
            1,
            100_000,
        )?;
        in_range("max_actions", u64::from(self.max_actions), 1, 100_000)?;
        in_range(
            "max_experiments_per_customer",
            u64::from(self.max_experiments_per_customer),
            1,
            1_000,
        )?;
        in_range(
            "max_recent_decisions",
            u64::from(self.max_recent_decisions),
            1,
            1_000,
        )?;
        in_range(
            "minute_retention_secs",
            self.minute_retention_secs,
            60,
            MAX_SECS,
        )?;
        in_range(
            "hour_retention_secs",
            self.hour_retention_secs,
            3_600,
            MAX_SECS,
        )?;
        in_range("day_retention_secs", self.day_retention_secs, DAY, MAX_SECS)?;
        if self.minute_retention_secs >= self.hour_retention_secs {
            return Err(format!(
                "kpi.minute_retention_secs: must be less than kpi.hour_retention_secs ({}), got {}",
                self.hour_retention_secs, self.minute_retention_secs
            ));
        }
        if self.hour_retention_secs >= self.day_retention_secs {
            return Err(format!(
                "kpi.hour_retention_secs: must be less than kpi.day_retention_secs ({}), got {}",
                self.day_retention_secs, self.hour_retention_secs
            ));
        }
        in_range(
            "customer_ttl_secs",
            self.customer_ttl_secs,
            self.attribution_window_secs.max(self.session_timeout_secs),
            MAX_SECS,
        )
        .map_err(|e| format!("{e} (at least the attribution window and the session timeout)"))
    }

    /// How long buckets of `granularity` are kept, in seconds.
    pub fn retention_secs(&self, granularity: Granularity) -> i64 {
        let secs = match granularity {
            Granularity::Minute => self.minute_retention_secs,
            Granularity::Hour => self.hour_retention_secs,
            Granularity::Day => self.day_retention_secs,
        };
        i64::try_from(secs).unwrap_or(i64::MAX)
    }

    /// How long a customer's state is kept after its last change.
    pub fn customer_ttl(&self) -> Duration {
        Duration::from_secs(self.customer_ttl_secs)
    }

    /// The attribution window in seconds.
    pub(crate) fn window_secs(&self) -> i64 {
        i64::try_from(self.attribution_window_secs).unwrap_or(i64::MAX)
    }

    /// The session timeout in seconds.
    pub(crate) fn session_timeout(&self) -> i64 {
        i64::try_from(self.session_timeout_secs).unwrap_or(i64::MAX)
    }

    /// The engaged-session span in seconds.
    pub(crate) fn engaged_min_secs(&self) -> i64 {
        i64::try_from(self.engaged_session_min_secs).unwrap_or(i64::MAX)
    }

    /// Whether events of `event_type` are conversions.
    pub(crate) fn is_conversion(&self, event_type: &str) -> bool {
        self.conversion_events.iter().any(|t| t == event_type)
    }

    /// Whether events of `event_type` are churn events.
    pub(crate) fn is_churn(&self, event_type: &str) -> bool {
        self.churn_events.iter().any(|t| t == event_type)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        assert_eq!(FoldConfig::default().validate(), Ok(()));
    }

    #[test]
    fn errors_name_the_field_and_the_reason() {
        let config = FoldConfig {
            session_timeout_secs: 0,
            ..FoldConfig::default()
        };
        assert_eq!(
            config.validate(),
            Err("kpi.session_timeout_secs: must be within 1..=86400, got 0".to_owned())
        );
        let config = FoldConfig {
            minute_retention_secs: 40 * 86_400,
            ..FoldConfig::default()
        };
        let err = config.validate().unwrap_err();
        assert!(
            err.starts_with("kpi.minute_retention_secs: must be less than"),
            "{err}"
        );
        let config = FoldConfig {
            conversion_events: vec![String::new()],
            ..FoldConfig::default()
        };
        let err = config.validate().unwrap_err();
        assert!(err.starts_with("kpi.conversion_events[0]:"), "{err}");
        let config = FoldConfig {
            customer_ttl_secs: 60,
            ..FoldConfig::default()
        };
        let err = config.validate().unwrap_err();
        assert!(err.starts_with("kpi.customer_ttl_secs:"), "{err}");
    }
}
