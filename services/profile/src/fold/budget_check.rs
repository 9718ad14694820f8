//! Validation of contact-budget requests: every problem names the request field, e.g.
//! `caps[2].max_count`.

use iee_api::pb::common::Channel;
use iee_api::pb::profile::{CapScope, CommitContactRequest, ReserveContactRequest};

use super::config::FoldConfig;
use super::identity::valid_purpose;
use super::time::{DAY_MS, SECOND_MS, duration_ms, secs_ms};

/// Why a contact-budget request failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ContactError {
    /// A request field is invalid (maps to INVALID_ARGUMENT).
    Invalid {
        /// Path of the field, e.g. `caps[2].max_count`.
        field: String,
        /// Why it is invalid.
        reason: String,
    },
    /// The reservation is unknown, released or expired (maps to NOT_FOUND).
    NotFound(String),
}

impl std::fmt::Display for ContactError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Invalid { field, reason } => write!(f, "{field}: {reason}"),
            Self::NotFound(what) => f.write_str(what),
        }
    }
}

impl std::error::Error for ContactError {}

pub(crate) fn invalid(field: impl Into<String>, reason: impl Into<String>) -> ContactError {
    ContactError::Invalid {
        field: field.into(),
        reason: reason.into(),
    }
}

const MAX_ID_BYTES: usize = 128;
const MAX_CAPS: usize = 16;
const MAX_WINDOW_MS: i64 = 400 * DAY_MS;
const MAX_TTL_MS: i64 = DAY_MS;

/// A validated cap.
#[derive(Debug, Clone)]
pub(crate) struct Cap {
    pub name: String,
    pub scope: CapScope,
    pub window_ms: i64,
    pub max_count: u32,
}

/// Validated quiet hours.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Quiet {
    pub start: i64,
    pub end: i64,
    pub offset: i64,
}

/// A validated reservation request.
#[derive(Debug, Clone)]
pub(crate) struct Checked {
    pub caps: Vec<Cap>,
    pub ttl_ms: i64,
    pub quiet: Option<Quiet>,
    /// `(max_dismissals, window_ms)`.
    pub suppression: Option<(u32, i64)>,
}

pub(crate) fn check_id(field: &str, value: &str, required: bool) -> Result<(), ContactError> {
    if value.is_empty() {
        return if required {
            Err(invalid(field, "is required"))
        } else {
            Ok(())
        };
    }
    if value.len() > MAX_ID_BYTES {
        return Err(invalid(
            field,
            format!("must be at most {MAX_ID_BYTES} bytes, got {}", value.len()),
        ));
    }
    if value.chars().any(char::is_control) {
        return Err(invalid(field, "must not contain control characters"));
    }
    Ok(())
}

fn check_window(field: &str, window: Option<&prost_types::Duration>) -> Result<i64, ContactError> {
    let Some(window) = window else {
        return Err(invalid(field, "is required"));
    };
    match duration_ms(window) {
        Some(ms) if (SECOND_MS..=MAX_WINDOW_MS).contains(&ms) => Ok(ms),
        _ => Err(invalid(
            field,
            format!("must be within 1s..400d, got {}s", window.seconds),
        )),
    }
}

/// Validates a reservation request.
pub(crate) fn check_reserve(
    request: &ReserveContactRequest,
    config: &FoldConfig,
) -> Result<Checked, ContactError> {
    let Some(customer) = request.customer.as_ref() else {
        return Err(invalid("customer", "is required"));
    };
    check_id("customer.tenant_id", &customer.tenant_id, true)?;
    if customer.customer_id.is_empty() && customer.anonymous_id.is_empty() {
        return Err(invalid(
            "customer.customer_id",
            "customer_id or anonymous_id is required",
        ));
    }
    check_id("customer.customer_id", &customer.customer_id, false)?;
    check_id("customer.anonymous_id", &customer.anonymous_id, false)?;
    match Channel::try_from(request.channel) {
        Ok(Channel::Unspecified) => return Err(invalid("channel", "is required")),
        Err(_) => {
            return Err(invalid(
                "channel",
                format!("unknown channel {}", request.channel),
            ));
        }
        Ok(_) => {}
    }
    check_id("action_id", &request.action_id, true)?;
    check_id("decision_id", &request.decision_id, false)?;
    check_id("request_id", &request.request_id, false)?;
    if !request.consent_purpose.is_empty() && !valid_purpose(&request.consent_purpose) {
        return Err(invalid(
            "consent_purpose",
            "must be 1-64 characters of [a-z0-9_.-]",
        ));
    }
    if request.caps.len() > MAX_CAPS {
        return Err(invalid(
            "caps",
            format!("at most {MAX_CAPS} caps, got {}", request.caps.len()),
        ));
    }
    let mut caps = Vec::with_capacity(request.caps.len());
    for (i, cap) in request.caps.iter().enumerate() {
        let field = |name: &str| format!("caps[{i}].{name}");
        check_id(&field("name"), &cap.name, false)?;
        let scope = match CapScope::try_from(cap.scope) {
            Ok(CapScope::Unspecified) => CapScope::Channel,
            Ok(scope) => scope,
            Err(_) => {
                return Err(invalid(
                    field("scope"),
                    format!("unknown cap scope {}", cap.scope),
                ));
            }
        };
        let window_ms = check_window(&field("window"), cap.window.as_ref())?;
        if cap.max_count == 0 {
            return Err(invalid(
                field("max_count"),
                "must be at least 1 (a cap of 0 would forbid every contact)",
            ));
        }
        if cap.max_count > config.contact_history_limit {
            return Err(invalid(
                field("max_count"),
                format!(
                    "must be at most the contact history kept per channel \
                     (profile.fold.contact_history_limit = {}), got {}",
                    config.contact_history_limit, cap.max_count
                ),
            ));
        }
        caps.push(Cap {
            name: cap.name.clone(),
            scope,
            window_ms,
            max_count: cap.max_count,
        });
    }
    let ttl_ms = match request.ttl.as_ref() {
        None => secs_ms(config.reservation_ttl_secs),
        Some(ttl) => match duration_ms(ttl) {
            Some(ms) if (SECOND_MS..=MAX_TTL_MS).contains(&ms) => ms,
            _ => {
                return Err(invalid(
                    "ttl",
                    format!("must be within 1s..24h, got {}s", ttl.seconds),
                ));
            }
        },
    };
    let quiet = match request.quiet_hours.as_ref() {
        None => None,
        Some(q) => {
            if q.start_minute >= 1_440 {
                return Err(invalid(
                    "quiet_hours.start_minute",
                    format!("must be within 0..=1439, got {}", q.start_minute),
                ));
            }
            if q.end_minute >= 1_440 {
                return Err(invalid(
                    "quiet_hours.end_minute",
                    format!("must be within 0..=1439, got {}", q.end_minute),
                ));
            }
            if q.end_minute == q.start_minute {
                return Err(invalid(
                    "quiet_hours.end_minute",
                    "must differ from start_minute",
                ));
            }
            if !(-840..=840).contains(&q.utc_offset_minutes) {
                return Err(invalid(
                    "quiet_hours.utc_offset_minutes",
                    format!("must be within -840..=840, got {}", q.utc_offset_minutes),
                ));
            }
            Some(Quiet {
                start: i64::from(q.start_minute),
                end: i64::from(q.end_minute),
                offset: i64::from(q.utc_offset_minutes),
            })
        }
    };
    let suppression = match request.suppression.as_ref() {
        None => None,
        Some(s) => {
            let kept = u32::try_from(super::contacts::DISMISSALS_KEPT).unwrap_or(u32::MAX);
            if !(1..=kept).contains(&s.max_dismissals) {
                return Err(invalid(
                    "suppression.max_dismissals",
                    format!("must be within 1..={kept}, got {}", s.max_dismissals),
                ));
            }
            let window_ms = check_window("suppression.window", s.window.as_ref())?;
            Some((s.max_dismissals, window_ms))
        }
    };
    Ok(Checked {
        caps,
        ttl_ms,
        quiet,
        suppression,
    })
}

/// Validates a commit request.
pub(crate) fn check_commit(request: &CommitContactRequest) -> Result<(), ContactError> {
    check_id("reservation_id", &request.reservation_id, true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use iee_api::pb::common::CustomerRef;
    use iee_api::pb::profile::{ContactCap, DismissalSuppression, QuietHours};

    fn secs(s: i64) -> Option<prost_types::Duration> {
        Some(prost_types::Duration {
            seconds: s,
            nanos: 0,
        })
    }

    fn request() -> ReserveContactRequest {
        ReserveContactRequest {
            customer: Some(CustomerRef {
                tenant_id: "acme".into(),
                customer_id: "c-1".into(),
                anonymous_id: String::new(),
            }),
            channel: Channel::Email as i32,
            action_id: "welcome".into(),
            ..ReserveContactRequest::default()
        }
    }

    fn cap(max_count: u32, window: i64) -> ContactCap {
        ContactCap {
            name: "weekly".into(),
            scope: CapScope::Channel as i32,
            window: secs(window),
            max_count,
        }
    }

    fn field_of(r: &ReserveContactRequest) -> String {
        match check_reserve(r, &FoldConfig::default()) {
            Ok(_) => "ok".into(),
            Err(ContactError::Invalid { field, .. }) => field,
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn valid_request_passes_with_default_ttl() {
        let checked = check_reserve(&request(), &FoldConfig::default()).map(|c| c.ttl_ms);
        assert_eq!(checked.ok(), Some(300_000));
    }

    #[test]
    fn errors_name_the_offending_field() {
        let mut r = request();
        r.customer = None;
        assert_eq!(field_of(&r), "customer");
        let mut r = request();
        r.channel = 0;
        assert_eq!(field_of(&r), "channel");
        let mut r = request();
        r.action_id = "x".repeat(129);
        assert_eq!(field_of(&r), "action_id");
        let mut r = request();
        r.caps = vec![cap(3, 60), cap(3, 60), cap(0, 60)];
        assert_eq!(field_of(&r), "caps[2].max_count");
        let mut r = request();
        r.caps = vec![cap(3, 0)];
        assert_eq!(field_of(&r), "caps[0].window");
        let mut r = request();
        r.caps = vec![cap(3, 401 * 86_400)];
        assert_eq!(field_of(&r), "caps[0].window");
        let mut r = request();
        r.caps = vec![cap(51, 60)];
        assert_eq!(field_of(&r), "caps[0].max_count");
        let mut r = request();
        r.caps = (0..17).map(|_| cap(1, 60)).collect();
        assert_eq!(field_of(&r), "caps");
        let mut r = request();
        r.ttl = secs(86_401);
        assert_eq!(field_of(&r), "ttl");
        let mut r = request();
        r.ttl = secs(0);
        assert_eq!(field_of(&r), "ttl");
        let mut r = request();
        r.quiet_hours = Some(QuietHours {
            start_minute: 1_320,
            end_minute: 1_440,
            utc_offset_minutes: 0,
        });
        assert_eq!(field_of(&r), "quiet_hours.end_minute");
        let mut r = request();
        r.suppression = Some(DismissalSuppression {
            max_dismissals: 17,
            window: secs(60),
        });
        assert_eq!(field_of(&r), "suppression.max_dismissals");
        let mut r = request();
        r.consent_purpose = "Marketing Email".into();
        assert_eq!(field_of(&r), "consent_purpose");
    }

    #[test]
    fn error_message_reads_field_then_reason() {
        let mut r = request();
        r.caps = vec![cap(0, 60)];
        let message = check_reserve(&r, &FoldConfig::default())
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            message.starts_with("caps[0].max_count: must be at least 1"),
            "{message}"
        );
    }
}
