//! Request context features (`ctx.*`): the asking touchpoint's channel and id, and the request's
//! context properties; and merging feature vectors.

use std::collections::HashMap;

use iee_api::pb::{
    common::{Channel, PropertyValue, property_value::Kind},
    predict::FeatureVector,
};

use super::catalogue::{CONTEXT_PREFIX, valid_context_key};

/// Longest categorical value, in characters (`FeatureVector.categorical`).
const MAX_CATEGORY_CHARS: usize = 128;

/// Builds the context features of a request: `ctx.channel`, `ctx.touchpoint` and one
/// `ctx.{key}` per context property (numbers as given, booleans 1/0, strings categorical).
/// Unspecified channels, empty touchpoints, unusable keys, unset values and non-finite numbers
/// are left out.
pub fn context_features(
    channel: i32,
    touchpoint: &str,
    context: &HashMap<String, PropertyValue>,
) -> FeatureVector {
    let mut out = FeatureVector::default();
    if let Ok(channel) = Channel::try_from(channel)
        && channel != Channel::Unspecified
    {
        out.categorical.insert(
            format!("{CONTEXT_PREFIX}channel"),
            channel.as_str_name().to_owned(),
        );
    }
    if !touchpoint.is_empty() {
        out.categorical
            .insert(format!("{CONTEXT_PREFIX}touchpoint"), truncate(touchpoint));
    }
    for (key, value) in context {
        if !valid_context_key(key) {
            continue;
        }
        let name = format!("{CONTEXT_PREFIX}{key}");
        match &value.kind {
            Some(Kind::NumberValue(n)) if n.is_finite() => {
                out.numeric.insert(name, *n);
            }
            Some(Kind::BoolValue(b)) => {
                out.numeric.insert(name, if *b { 1.0 } else { 0.0 });
            }
            Some(Kind::StringValue(s)) => {
                out.categorical.insert(name, truncate(s));
            }
            Some(Kind::NumberValue(_)) | None => {}
        }
    }
    out
}

/// The union of two vectors; where both hold a name, `b`'s value wins. A name that is numeric
/// in one and categorical in the other keeps only `b`'s.
pub fn merge(a: FeatureVector, b: FeatureVector) -> FeatureVector {
    let FeatureVector {
        mut numeric,
        mut categorical,
    } = a;
    for name in b.categorical.keys() {
        numeric.remove(name);
    }
    for name in b.numeric.keys() {
        categorical.remove(name);
    }
    numeric.extend(b.numeric);
    categorical.extend(b.categorical);
    FeatureVector {
        numeric,
        categorical,
    }
}

fn truncate(s: &str) -> String {
    s.chars().take(MAX_CATEGORY_CHARS).collect()
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use iee_api::pb::{
        common::{Channel, PropertyValue, property_value::Kind},
        predict::FeatureVector,
    };

    use super::{context_features, merge};

    fn context_map() -> HashMap<String, PropertyValue> {
        let value = |kind| PropertyValue { kind: Some(kind) };
        HashMap::from([
            (
                "device".to_owned(),
                value(Kind::StringValue("mobile".into())),
            ),
            ("basket_size".to_owned(), value(Kind::NumberValue(3.0))),
            ("logged_in".to_owned(), value(Kind::BoolValue(true))),
            ("bad".to_owned(), value(Kind::NumberValue(f64::NAN))),
            (
                "channel".to_owned(),
                value(Kind::StringValue("spoof".into())),
            ),
            ("unset".to_owned(), PropertyValue { kind: None }),
        ])
    }

    #[test]
    fn context_features_carry_the_request() {
        let long = "t".repeat(300);
        let f = context_features(Channel::App as i32, &long, &context_map());
        assert_eq!(f.categorical["ctx.channel"], "CHANNEL_APP");
        assert_eq!(f.categorical["ctx.touchpoint"].len(), 128);
        assert_eq!(f.categorical["ctx.device"], "mobile");
        assert_eq!(f.numeric["ctx.basket_size"], 3.0);
        assert_eq!(f.numeric["ctx.logged_in"], 1.0);
        assert!(!f.numeric.contains_key("ctx.bad"));
        assert!(!f.categorical.contains_key("ctx.unset"));
        assert_eq!(f.numeric.len() + f.categorical.len(), 5);

        let none = context_features(0, "", &HashMap::new());
        assert_eq!(none, FeatureVector::default());
        let unknown = context_features(999, "", &HashMap::new());
        assert_eq!(unknown, FeatureVector::default());
    }

    #[test]
    fn merge_lets_the_second_vector_win() {
        let a = FeatureVector {
            numeric: HashMap::from([("x".into(), 1.0), ("y".into(), 2.0)]),
            categorical: HashMap::from([("c".into(), "a".into()), ("z".into(), "a".into())]),
        };
        let b = FeatureVector {
            numeric: HashMap::from([("x".into(), 10.0), ("z".into(), 3.0)]),
            categorical: HashMap::from([("y".into(), "b".into())]),
        };
        let m = merge(a, b);
        assert_eq!(
            m.numeric,
            HashMap::from([("x".into(), 10.0), ("z".into(), 3.0)])
        );
        assert_eq!(
            m.categorical,
            HashMap::from([("c".into(), "a".into()), ("y".into(), "b".into())])
        );
    }
}
