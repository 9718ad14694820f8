//! The documented event types and the prefix of tenant-defined ones, shared by every service.

/// Event types IEE documents: ingest accepts them (besides `custom.*`), the profile service
/// interprets them, and the feature catalogue has activity features per type.
pub const KNOWN_EVENT_TYPES: [&str; 32] = [
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
