//! The documented event types and the rule for tenant-defined ones.

pub use iee_api::event_types::{CUSTOM_PREFIX, KNOWN_EVENT_TYPES};

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
