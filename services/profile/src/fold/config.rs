//! Tunables of the fold (`[profile.fold]`): sessions, timers, sentiment and experience
//! thresholds, contact history and reservations, the reporting currency.

use std::collections::BTreeMap;

use iee_config::{ConfigError, Validate};
use serde::{Deserialize, Serialize};

const PREFIX: &str = "profile.fold";

/// Tunables of the fold. See `docs/profile-state.md` for what each one drives.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FoldConfig {
    /// A gap longer than this between two events starts a new session (seconds).
    pub session_timeout_secs: u64,
    /// An engaged session has at least this many events spanning `engaged_session_min_secs`
    /// (or contains a conversion).
    pub engaged_session_min_events: u32,
    /// See `engaged_session_min_events` (seconds).
    pub engaged_session_min_secs: u64,
    /// A non-empty cart unchanged for this long is abandoned (seconds).
    pub cart_idle_secs: u64,
    /// A customer without events for this long is inactive (days).
    pub inactive_after_days: u64,
    /// Weight of the newest score in the sentiment EWMA, in (0, 1].
    pub sentiment_alpha: f64,
    /// `negative_experience` fires when the sentiment EWMA falls below this, in [-1, 1].
    pub negative_sentiment_threshold: f64,
    /// `negative_experience` fires when the peak-end score falls below this, in [-1, 1].
    pub negative_experience_threshold: f64,
    /// The peak is the experience of largest magnitude within this many days before the latest.
    pub experience_lookback_days: u64,
    /// Committed contacts kept per channel (newest first). Caps count only these, so no cap may
    /// allow more contacts than this.
    pub contact_history_limit: u32,
    /// Default lifetime of a contact reservation (seconds).
    pub reservation_ttl_secs: u64,
    /// Closed reservations remembered to answer repeated commits and releases.
    pub closed_reservations_kept: u32,
    /// ISO 4217 code of the money figures; empty: the first currency the profile sees.
    pub reporting_currency: String,
    /// Conversion into `reporting_currency`: minor units of the reporting currency per minor
    /// unit of the keyed currency (e.g. `JPY = 0.6` for EUR cents per yen). Requires a
    /// `reporting_currency`; money in other currencies stays out of the money figures.
    pub exchange_rates: BTreeMap<String, f64>,
}

impl Default for FoldConfig {
    fn default() -> Self {
        Self {
            session_timeout_secs: 1_800,
            engaged_session_min_events: 2,
            engaged_session_min_secs: 10,
            cart_idle_secs: 3_600,
            inactive_after_days: 30,
            sentiment_alpha: 0.3,
            negative_sentiment_threshold: -0.5,
            negative_experience_threshold: -0.5,
            experience_lookback_days: 90,
            contact_history_limit: 50,
            reservation_ttl_secs: 300,
            closed_reservations_kept: 100,
            reporting_currency: String::new(),
            exchange_rates: BTreeMap::new(),
        }
    }
}

fn invalid(field: &str, reason: String) -> ConfigError {
    ConfigError::invalid(format!("{PREFIX}.{field}"), reason)
}

fn in_range(field: &str, value: u64, min: u64, max: u64) -> Result<(), ConfigError> {
    if (min..=max).contains(&value) {
        Ok(())
    } else {
        Err(invalid(
            field,
            format!("must be within {min}..={max}, got {value}"),
        ))
    }
}

fn is_currency_code(code: &str) -> bool {
    code.len() == 3 && code.bytes().all(|b| b.is_ascii_uppercase())
}

impl Validate for FoldConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        const DAY: u64 = 86_400;
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
        in_range("cart_idle_secs", self.cart_idle_secs, 1, 30 * DAY)?;
        in_range("inactive_after_days", self.inactive_after_days, 1, 3_650)?;
        if !(self.sentiment_alpha > 0.0 && self.sentiment_alpha <= 1.0) {
            return Err(invalid(
                "sentiment_alpha",
                format!("must be within (0, 1], got {}", self.sentiment_alpha),
            ));
        }
        for (field, value) in [
            (
                "negative_sentiment_threshold",
                self.negative_sentiment_threshold,
            ),
            (
                "negative_experience_threshold",
                self.negative_experience_threshold,
            ),
        ] {
            if !(-1.0..=1.0).contains(&value) {
                return Err(invalid(
                    field,
                    format!("must be within [-1, 1], got {value}"),
                ));
            }
        }
        in_range(
            "experience_lookback_days",
            self.experience_lookback_days,
            1,
            3_650,
        )?;
        in_range(
            "contact_history_limit",
            u64::from(self.contact_history_limit),
            1,
            1_000,
        )?;
        in_range("reservation_ttl_secs", self.reservation_ttl_secs, 1, DAY)?;
        in_range(
            "closed_reservations_kept",
            u64::from(self.closed_reservations_kept),
            1,
            10_000,
        )?;
        if !self.reporting_currency.is_empty() && !is_currency_code(&self.reporting_currency) {
            return Err(invalid(
                "reporting_currency",
                format!(
                    "must be empty or an ISO 4217 code in upper case, got {:?}",
                    self.reporting_currency
                ),
            ));
        }
        if !self.exchange_rates.is_empty() && self.reporting_currency.is_empty() {
            return Err(invalid(
                "exchange_rates",
                "require profile.fold.reporting_currency to be set".to_owned(),
            ));
        }
        for (code, rate) in &self.exchange_rates {
            if !is_currency_code(code) {
                return Err(invalid(
                    &format!("exchange_rates.{code}"),
                    "key must be an ISO 4217 code in upper case".to_owned(),
                ));
            }
            if !(rate.is_finite() && *rate > 0.0) {
                return Err(invalid(
                    &format!("exchange_rates.{code}"),
                    format!("must be a positive finite number, got {rate}"),
                ));
            }
        }
        Ok(())
    }
}

impl FoldConfig {
    /// Session inactivity timeout in milliseconds.
    pub(crate) fn session_timeout_ms(&self) -> i64 {
        crate::fold::time::secs_ms(self.session_timeout_secs)
    }

    /// Cart idle time in milliseconds.
    pub(crate) fn cart_idle_ms(&self) -> i64 {
        crate::fold::time::secs_ms(self.cart_idle_secs)
    }

    /// Inactivity period in milliseconds.
    pub(crate) fn inactive_after_ms(&self) -> i64 {
        crate::fold::time::secs_ms(self.inactive_after_days.saturating_mul(86_400))
    }

    /// Experience look-back in milliseconds.
    pub(crate) fn experience_lookback_ms(&self) -> i64 {
        crate::fold::time::secs_ms(self.experience_lookback_days.saturating_mul(86_400))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error_of(config: &FoldConfig) -> String {
        match config.validate() {
            Ok(()) => "ok".to_owned(),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn defaults_are_valid() {
        assert_eq!(error_of(&FoldConfig::default()), "ok");
    }

    #[test]
    fn errors_name_the_field_and_the_bad_value() {
        let config = FoldConfig {
            sentiment_alpha: 0.0,
            ..FoldConfig::default()
        };
        let err = error_of(&config);
        assert!(
            err.contains("profile.fold.sentiment_alpha")
                && err.contains("must be within (0, 1], got 0"),
            "{err}"
        );
        let config = FoldConfig {
            session_timeout_secs: 0,
            ..FoldConfig::default()
        };
        assert!(error_of(&config).contains("profile.fold.session_timeout_secs"));
        let config = FoldConfig {
            negative_experience_threshold: -1.5,
            ..FoldConfig::default()
        };
        assert!(error_of(&config).contains("profile.fold.negative_experience_threshold"));
    }

    #[test]
    fn exchange_rates_need_a_reporting_currency_and_positive_rates() {
        let mut config = FoldConfig::default();
        config.exchange_rates.insert("USD".into(), 0.9);
        assert!(error_of(&config).contains("profile.fold.exchange_rates"));
        config.reporting_currency = "EUR".into();
        assert_eq!(error_of(&config), "ok");
        config.exchange_rates.insert("JPY".into(), 0.0);
        assert!(error_of(&config).contains("profile.fold.exchange_rates.JPY"));
        config.reporting_currency = "eur".into();
        assert!(error_of(&config).contains("profile.fold.reporting_currency"));
    }

    #[test]
    fn unknown_keys_are_rejected() {
        use serde::de::value::{Error, MapDeserializer};
        let parse = |key: &'static str| {
            let map = MapDeserializer::<_, Error>::new(std::iter::once((key, 60_u64)));
            FoldConfig::deserialize(map)
        };
        assert!(parse("session_timeout").is_err());
        assert_eq!(
            parse("cart_idle_secs").map(|c| c.cart_idle_secs).ok(),
            Some(60)
        );
    }
}
