//! What rules see: the profile view (`profile.*`) built from a feature vector, and conversions
//! of protobuf values into CEL values.

use std::collections::{BTreeMap, HashMap};

use cel::common::{
    types::{CelBool, CelDouble, CelList, CelMap, CelMapKey, CelNull, CelString},
    value::Val,
};
use iee_api::pb::{common::PropertyValue, predict::FeatureVector, profile::Profile};
use prost_types::{Struct, Value, value::Kind};

/// The profile as rules see it (`profile.*`): the model feature vector nested by its dotted
/// names (feature `cart.value` is `profile.cart.value`; numeric features are numbers,
/// categorical ones strings), plus `traits`, the identity traits (each with its own kind:
/// string, number or bool), when a profile is given. The decision log stores this view, so a
/// replay evaluates exactly the same input.
///
/// A name that is both a leaf and a prefix of another name (`a.b` and `a.b.c`) keeps the leaf:
/// the longer name is dropped. A numeric and a categorical feature of the same name keep the
/// numeric one. `traits` replaces any feature group of that name.
pub fn profile_view(features: &FeatureVector, profile: Option<&Profile>) -> Struct {
    let mut root = Struct::default();
    // Sorted, so that the result does not depend on the maps' iteration order.
    let numeric: BTreeMap<_, _> = features.numeric.iter().collect();
    let categorical: BTreeMap<_, _> = features.categorical.iter().collect();
    for (name, value) in numeric {
        insert(&mut root, name, Kind::NumberValue(*value));
    }
    for (name, value) in categorical {
        insert(&mut root, name, Kind::StringValue(value.clone()));
    }
    if let Some(profile) = profile {
        let traits = profile
            .identity
            .as_ref()
            .map(|identity| {
                identity
                    .traits
                    .iter()
                    .filter_map(|(k, v)| Some((k.clone(), property_kind(v)?)))
                    .map(|(k, kind)| (k, Value { kind: Some(kind) }))
                    .collect()
            })
            .unwrap_or_default();
        root.fields.insert(
            "traits".to_owned(),
            Value {
                kind: Some(Kind::StructValue(Struct { fields: traits })),
            },
        );
    }
    root
}

/// Inserts a leaf at the dotted `name`; a leaf already on the way (or at the end) wins.
fn insert(root: &mut Struct, name: &str, leaf: Kind) {
    let mut segments = name.split('.').peekable();
    let mut node = root;
    while let Some(segment) = segments.next() {
        if segments.peek().is_none() {
            match node.fields.get(segment).and_then(|v| v.kind.as_ref()) {
                Some(Kind::NumberValue(_) | Kind::StringValue(_)) => {}
                // A group already here: the leaf wins over the longer names.
                _ => {
                    node.fields
                        .insert(segment.to_owned(), Value { kind: Some(leaf) });
                }
            }
            return;
        }
        let child = node
            .fields
            .entry(segment.to_owned())
            .or_insert_with(|| Value {
                kind: Some(Kind::StructValue(Struct::default())),
            });
        match &mut child.kind {
            Some(Kind::StructValue(inner)) => node = inner,
            // A leaf on the way: it wins, this name is dropped.
            _ => return,
        }
    }
}

/// The protobuf kind of a property value (None when unset).
pub(super) fn property_kind(value: &PropertyValue) -> Option<Kind> {
    use iee_api::pb::common::property_value::Kind as P;
    Some(match value.kind.as_ref()? {
        P::StringValue(s) => Kind::StringValue(s.clone()),
        P::NumberValue(n) => Kind::NumberValue(*n),
        P::BoolValue(b) => Kind::BoolValue(*b),
    })
}

/// A protobuf struct as a CEL map.
pub(super) fn struct_val(value: &Struct) -> Box<dyn Val> {
    map_val(value.fields.iter().map(|(k, v)| (k.clone(), value_val(v))))
}

/// A CEL map of string keys.
pub(super) fn map_val(entries: impl IntoIterator<Item = (String, Box<dyn Val>)>) -> Box<dyn Val> {
    let map: HashMap<CelMapKey<'static>, Box<dyn Val>> = entries
        .into_iter()
        .map(|(k, v)| (CelMapKey::from(k), v))
        .collect();
    Box::new(CelMap::from(map))
}

/// The request context as a CEL map (unset values are absent).
pub(super) fn context_val(context: &HashMap<String, PropertyValue>) -> Box<dyn Val> {
    map_val(context.iter().filter_map(|(k, v)| {
        let kind = property_kind(v)?;
        Some((k.clone(), kind_val(&kind)))
    }))
}

pub(super) fn number(n: f64) -> Box<dyn Val> {
    Box::new(CelDouble::from(n))
}

pub(super) fn string(s: &str) -> Box<dyn Val> {
    Box::new(CelString::from(s.to_owned()))
}

pub(super) fn boolean(b: bool) -> Box<dyn Val> {
    Box::new(CelBool::from(b))
}

fn value_val(value: &Value) -> Box<dyn Val> {
    value
        .kind
        .as_ref()
        .map_or_else(|| Box::new(CelNull) as Box<dyn Val>, kind_val)
}

fn kind_val(kind: &Kind) -> Box<dyn Val> {
    match kind {
        Kind::NullValue(_) => Box::new(CelNull),
        Kind::NumberValue(n) => number(*n),
        Kind::StringValue(s) => string(s),
        Kind::BoolValue(b) => boolean(*b),
        Kind::StructValue(s) => struct_val(s),
        Kind::ListValue(list) => Box::new(CelList::from(
            list.values.iter().map(value_val).collect::<Vec<_>>(),
        )),
    }
}
