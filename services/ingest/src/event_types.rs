//! The documented event types and the rule for tenant-defined ones.

/// Event types IEE knows and the profile service interprets.
pub const KNOWN_EVENT_TYPES: &[&str] = &[
    "page_view",
    "product_view",
    "search",
    "add_to_cart",
    "remove_from_cart",
    "checkout",
    "purchase",
    "refund",
    "app_open",
    "app_close",
    "email_open",
    "email_click",
    "sms_click",
    "push_open",
    "click",
    "impression",
    "chat_message",
    "call",
    "support_ticket",
    "support_resolved",
    "survey_response",
    "review",
    "login",
    "signup",
    "consent_change",
    "subscription_start",
    "subscription_cancel",
    "product_usage",
    "social_mention",
    "community_post",
    "decision_outcome",
    "identify",
];

/// Prefix of tenant-defined event types.
pub const CUSTOM_PREFIX: &str = "custom.";

/// Why an event type is not acceptable, or `None` if it is.
pub fn check_event_type(event_type: &str) -> Option<String> {
    if KNOWN_EVENT_TYPES.contains(&event_type) {
        return None;
    }
    if let Some(name) = event_type.strip_prefix(CUSTOM_PREFIX) {
        let ok_chars = name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"_.-".contains(&b));
        if (1..=64).contains(&name.len()) && ok_chars {
            return None;
        }
        return Some(format!(
            "custom type name must be 1-64 characters of [a-z0-9_.-], got {name:?}"
        ));
    }
    Some(format!(
        "unknown event type {event_type:?}: use one of the documented types or `custom.<name>`"
    ))
}
