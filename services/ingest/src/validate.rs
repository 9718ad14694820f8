//! Per-event validation. A failure names the field (relative to the event) and the reason.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use iee_api::pb::common::{
    Channel, Event, JourneyStage, Rejection, RejectionCode, SurveyKind, property_value::Kind,
};
use prost::Message;

use crate::{IngestConfig, currency::is_iso4217, event_types::check_event_type};

/// The limits validation applies, taken from [`IngestConfig`].
#[derive(Debug, Clone)]
pub struct Limits {
    max_event_bytes: usize,
    max_properties: usize,
    max_property_key_bytes: usize,
    max_property_value_bytes: usize,
    max_text_bytes: usize,
    max_future_skew: Duration,
}

impl From<&IngestConfig> for Limits {
    fn from(c: &IngestConfig) -> Self {
        Self {
            max_event_bytes: c.max_event_bytes,
            max_properties: c.max_properties,
            max_property_key_bytes: c.max_property_key_bytes,
            max_property_value_bytes: c.max_property_value_bytes,
            max_text_bytes: c.max_text_bytes,
            max_future_skew: Duration::from_secs(c.max_future_skew_secs),
        }
    }
}

const MAX_ID_BYTES: usize = 128;

fn reject(field: impl Into<String>, code: RejectionCode, reason: impl Into<String>) -> Rejection {
    Rejection {
        field: field.into(),
        reason: reason.into(),
        code: code as i32,
    }
}

/// Whether `tenant_id` is well formed (1-64 characters of `[a-z0-9_-]`).
pub fn valid_tenant(tenant_id: &str) -> bool {
    (1..=64).contains(&tenant_id.len())
        && tenant_id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

/// Checks an identifier: required or optional, at most 128 bytes, printable ASCII only
/// (`printable_ascii`) or any text without control characters.
pub fn check_id(
    field: &str,
    value: &str,
    required: bool,
    printable_ascii: bool,
) -> Result<(), Rejection> {
    if value.is_empty() {
        return if required {
            Err(reject(field, RejectionCode::MissingField, "is required"))
        } else {
            Ok(())
        };
    }
    if value.len() > MAX_ID_BYTES {
        return Err(reject(
            field,
            RejectionCode::TooLarge,
            format!("must be at most {MAX_ID_BYTES} bytes, got {}", value.len()),
        ));
    }
    let bad = if printable_ascii {
        value.bytes().any(|b| !(0x21..=0x7e).contains(&b))
    } else {
        value.chars().any(char::is_control)
    };
    if bad {
        let allowed = if printable_ascii {
            "printable ASCII without spaces"
        } else {
            "text without control characters"
        };
        return Err(reject(
            field,
            RejectionCode::InvalidValue,
            format!("must be {allowed}"),
        ));
    }
    Ok(())
}

/// Validates one event against `limits` at time `now`.
pub fn validate_event(event: &Event, limits: &Limits, now: SystemTime) -> Result<(), Rejection> {
    let size = event.encoded_len();
    if size > limits.max_event_bytes {
        return Err(reject(
            "",
            RejectionCode::TooLarge,
            format!(
                "event is {size} bytes encoded, limit is {}",
                limits.max_event_bytes
            ),
        ));
    }
    check_id("event_id", &event.event_id, true, true)?;
    if event.tenant_id.is_empty() {
        return Err(reject(
            "tenant_id",
            RejectionCode::MissingField,
            "is required",
        ));
    }
    if !valid_tenant(&event.tenant_id) {
        return Err(reject(
            "tenant_id",
            RejectionCode::InvalidValue,
            "must be 1-64 characters of [a-z0-9_-]",
        ));
    }
    if event.customer_id.is_empty() && event.anonymous_id.is_empty() {
        return Err(reject(
            "customer_id",
            RejectionCode::MissingField,
            "customer_id or anonymous_id is required",
        ));
    }
    check_id("customer_id", &event.customer_id, false, false)?;
    check_id("anonymous_id", &event.anonymous_id, false, false)?;
    if event.r#type.is_empty() {
        return Err(reject("type", RejectionCode::MissingField, "is required"));
    }
    if let Some(reason) = check_event_type(&event.r#type) {
        return Err(reject("type", RejectionCode::InvalidValue, reason));
    }
    match Channel::try_from(event.channel) {
        Ok(Channel::Unspecified) => {
            return Err(reject(
                "channel",
                RejectionCode::MissingField,
                "is required",
            ));
        }
        Ok(_) => {}
        Err(_) => {
            return Err(reject(
                "channel",
                RejectionCode::UnknownEnum,
                format!("unknown channel {}", event.channel),
            ));
        }
    }
    check_id("touchpoint", &event.touchpoint, false, false)?;
    if JourneyStage::try_from(event.journey_stage).is_err() {
        return Err(reject(
            "journey_stage",
            RejectionCode::UnknownEnum,
            format!("unknown journey stage {}", event.journey_stage),
        ));
    }
    check_occurred_at(event.occurred_at.as_ref(), limits, now)?;
    check_properties(event, limits)?;
    if let Some(value) = &event.value {
        if value.currency.is_empty() {
            return Err(reject(
                "value.currency",
                RejectionCode::MissingField,
                "is required when value is set",
            ));
        }
        if !is_iso4217(&value.currency) {
            return Err(reject(
                "value.currency",
                RejectionCode::InvalidValue,
                format!(
                    "must be an ISO 4217 code in upper case (EUR, USD, …), got {:?}",
                    value.currency
                ),
            ));
        }
    }
    if let Some(text) = &event.text
        && text.len() > limits.max_text_bytes
    {
        return Err(reject(
            "text",
            RejectionCode::TooLarge,
            format!(
                "must be at most {} bytes, got {}",
                limits.max_text_bytes,
                text.len()
            ),
        ));
    }
    check_survey(event)
}

/// Checks a required `occurred_at`: after 1970, at most the allowed clock skew ahead of `now`.
pub fn check_occurred_at(
    occurred_at: Option<&prost_types::Timestamp>,
    limits: &Limits,
    now: SystemTime,
) -> Result<(), Rejection> {
    let Some(ts) = occurred_at else {
        return Err(reject(
            "occurred_at",
            RejectionCode::MissingField,
            "is required",
        ));
    };
    if ts.seconds < 0 || !(0..1_000_000_000).contains(&ts.nanos) {
        return Err(reject(
            "occurred_at",
            RejectionCode::OutOfRange,
            "must be a valid time after 1970-01-01T00:00:00Z",
        ));
    }
    // Checked: a client may send any i64, and SystemTime addition panics on overflow.
    let ahead = UNIX_EPOCH
        .checked_add(Duration::new(
            ts.seconds.unsigned_abs(),
            ts.nanos.unsigned_abs(),
        ))
        .map_or(Some(Duration::MAX), |occurred| {
            occurred.duration_since(now).ok()
        });
    if let Some(ahead) = ahead
        && ahead > limits.max_future_skew
    {
        return Err(reject(
            "occurred_at",
            RejectionCode::FutureTimestamp,
            format!(
                "lies {}s in the future; at most {}s of clock skew is allowed",
                ahead.as_secs(),
                limits.max_future_skew.as_secs()
            ),
        ));
    }
    Ok(())
}

fn check_properties(event: &Event, limits: &Limits) -> Result<(), Rejection> {
    if event.properties.len() > limits.max_properties {
        return Err(reject(
            "properties",
            RejectionCode::TooLarge,
            format!(
                "at most {} properties, got {}",
                limits.max_properties,
                event.properties.len()
            ),
        ));
    }
    // Sorted, so the first bad property reported is stable across runs.
    let mut keys: Vec<&String> = event.properties.keys().collect();
    keys.sort();
    for key in keys {
        let field = format!("properties[{key:?}]");
        if key.is_empty() || key.len() > limits.max_property_key_bytes {
            return Err(reject(
                field,
                RejectionCode::InvalidValue,
                format!(
                    "key must be 1-{} bytes, got {}",
                    limits.max_property_key_bytes,
                    key.len()
                ),
            ));
        }
        if key.chars().any(char::is_control) {
            return Err(reject(
                field,
                RejectionCode::InvalidValue,
                "key must not contain control characters",
            ));
        }
        match event.properties[key].kind.as_ref() {
            None => {
                return Err(reject(
                    field,
                    RejectionCode::MissingField,
                    "value must be a string, number or bool",
                ));
            }
            Some(Kind::StringValue(s)) if s.len() > limits.max_property_value_bytes => {
                return Err(reject(
                    field,
                    RejectionCode::TooLarge,
                    format!(
                        "string value must be at most {} bytes, got {}",
                        limits.max_property_value_bytes,
                        s.len()
                    ),
                ));
            }
            Some(Kind::NumberValue(n)) if !n.is_finite() => {
                return Err(reject(
                    field,
                    RejectionCode::OutOfRange,
                    format!("number must be finite, got {n}"),
                ));
            }
            Some(_) => {}
        }
    }
    Ok(())
}

fn check_survey(event: &Event) -> Result<(), Rejection> {
    let Some(survey) = &event.survey else {
        if event.r#type == "survey_response" {
            return Err(reject(
                "survey",
                RejectionCode::MissingField,
                "is required on survey_response events",
            ));
        }
        return Ok(());
    };
    let (name, range) = match SurveyKind::try_from(survey.kind) {
        Ok(SurveyKind::Unspecified) => {
            return Err(reject(
                "survey.kind",
                RejectionCode::MissingField,
                "is required",
            ));
        }
        Err(_) => {
            return Err(reject(
                "survey.kind",
                RejectionCode::UnknownEnum,
                format!("unknown survey kind {}", survey.kind),
            ));
        }
        Ok(SurveyKind::Nps) => ("NPS", 0..=10),
        Ok(SurveyKind::Csat) => ("CSAT", 1..=5),
        Ok(SurveyKind::Ces) => ("CES", 1..=7),
    };
    if !range.contains(&survey.score) {
        return Err(reject(
            "survey.score",
            RejectionCode::OutOfRange,
            format!(
                "{name} score must be within {}..={}, got {}",
                range.start(),
                range.end(),
                survey.score
            ),
        ));
    }
    check_id("survey.survey_id", &survey.survey_id, false, false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost_types::Timestamp;

    fn event_at(seconds: i64) -> Event {
        Event {
            event_id: "e-1".into(),
            tenant_id: "acme".into(),
            customer_id: "c-1".into(),
            r#type: "page_view".into(),
            channel: Channel::Web as i32,
            occurred_at: Some(Timestamp { seconds, nanos: 0 }),
            ..Default::default()
        }
    }

    fn limits() -> Limits {
        Limits::from(&IngestConfig::default())
    }

    #[test]
    fn clock_skew_boundary_is_inclusive() {
        let now = UNIX_EPOCH + Duration::from_secs(1_000_000);
        assert!(validate_event(&event_at(1_000_300), &limits(), now).is_ok());
        let err = validate_event(&event_at(1_000_301), &limits(), now).unwrap_err();
        assert_eq!(err.field, "occurred_at");
        assert_eq!(err.code, RejectionCode::FutureTimestamp as i32);
    }

    #[test]
    fn absurdly_far_future_is_rejected_not_a_panic() {
        let err = validate_event(&event_at(i64::MAX), &limits(), SystemTime::now()).unwrap_err();
        assert_eq!(err.code, RejectionCode::FutureTimestamp as i32);
    }

    #[test]
    fn negative_nanos_are_out_of_range() {
        let mut event = event_at(10);
        event.occurred_at = Some(Timestamp {
            seconds: 10,
            nanos: -1,
        });
        let err = validate_event(&event, &limits(), SystemTime::now()).unwrap_err();
        assert_eq!(err.code, RejectionCode::OutOfRange as i32);
    }

    #[test]
    fn tenant_pattern() {
        assert!(valid_tenant("acme-eu_1"));
        assert!(!valid_tenant("Acme") && !valid_tenant("") && !valid_tenant(&"a".repeat(65)));
    }
}
