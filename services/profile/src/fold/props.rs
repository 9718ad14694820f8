//! Reading typed values out of an event's free properties, leniently: a number given as a
//! string (or a string given as a number) is accepted, since touchpoints differ.

use iee_api::pb::common::{Event, property_value::Kind};

/// A string property (numbers and booleans are rendered), `None` when absent or empty.
pub(crate) fn string(event: &Event, key: &str) -> Option<String> {
    let value = match event.properties.get(key)?.kind.as_ref()? {
        Kind::StringValue(s) => s.trim().to_owned(),
        Kind::NumberValue(n) => n.to_string(),
        Kind::BoolValue(b) => b.to_string(),
    };
    (!value.is_empty()).then_some(value)
}

/// A finite number property (a numeric string is parsed), `None` when absent or not a number.
pub(crate) fn number(event: &Event, key: &str) -> Option<f64> {
    let n = match event.properties.get(key)?.kind.as_ref()? {
        Kind::NumberValue(n) => *n,
        Kind::StringValue(s) => s.trim().parse().ok()?,
        Kind::BoolValue(_) => return None,
    };
    n.is_finite().then_some(n)
}

/// A boolean property (`"true"`/`"false"` and 1/0 accepted), `None` when absent or not boolean.
pub(crate) fn boolean(event: &Event, key: &str) -> Option<bool> {
    match event.properties.get(key)?.kind.as_ref()? {
        Kind::BoolValue(b) => Some(*b),
        Kind::StringValue(s) => match s.trim().to_ascii_lowercase().as_str() {
            "true" | "yes" | "1" => Some(true),
            "false" | "no" | "0" => Some(false),
            _ => None,
        },
        Kind::NumberValue(n) if *n == 1.0 => Some(true),
        Kind::NumberValue(n) if *n == 0.0 => Some(false),
        Kind::NumberValue(_) => None,
    }
}

/// The first of `keys` present as a string.
pub(crate) fn first_string(event: &Event, keys: &[&str]) -> Option<String> {
    keys.iter().find_map(|k| string(event, k))
}

#[cfg(test)]
pub(crate) mod build {
    //! Building property values in tests.
    use iee_api::pb::common::{PropertyValue, property_value::Kind};

    pub(crate) fn s(v: &str) -> PropertyValue {
        PropertyValue {
            kind: Some(Kind::StringValue(v.to_owned())),
        }
    }

    pub(crate) fn n(v: f64) -> PropertyValue {
        PropertyValue {
            kind: Some(Kind::NumberValue(v)),
        }
    }

    pub(crate) fn b(v: bool) -> PropertyValue {
        PropertyValue {
            kind: Some(Kind::BoolValue(v)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::build::*;
    use super::*;

    #[test]
    fn values_are_read_leniently() {
        let mut event = Event::default();
        event.properties.insert("q".into(), s(" 3 "));
        event.properties.insert("id".into(), n(42.0));
        event.properties.insert("ok".into(), s("Yes"));
        event.properties.insert("empty".into(), s("  "));
        event.properties.insert("flag".into(), b(false));
        assert_eq!(number(&event, "q"), Some(3.0));
        assert_eq!(string(&event, "id").as_deref(), Some("42"));
        assert_eq!(boolean(&event, "ok"), Some(true));
        assert_eq!(boolean(&event, "flag"), Some(false));
        assert_eq!(string(&event, "empty"), None);
        assert_eq!(number(&event, "missing"), None);
        assert_eq!(
            first_string(&event, &["missing", "id"]).as_deref(),
            Some("42")
        );
    }
}
