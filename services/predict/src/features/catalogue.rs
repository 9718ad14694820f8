//! The versioned list of feature names models may read: what each means, where it comes from and
//! whether it is numeric or categorical. `docs/features.md` is the same list for people.

use std::{collections::HashSet, sync::LazyLock};

use iee_api::pb::common::Channel;

use super::entries::{FIXED_CONTEXT, FIXED_PROFILE, spec};
use FeatureKind::Numeric;
use Source::Profile;

/// Version of the catalogue. Bumped when a feature's definition changes; adding features keeps
/// the version (a model reads features by name, so additions cannot change its inputs).
pub const CATALOGUE_VERSION: u32 = 1;

/// Whether a feature is a number or a category.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FeatureKind {
    /// A finite number, in [`iee_api::pb::predict::FeatureVector::numeric`].
    Numeric,
    /// A category (0-128 characters), in [`iee_api::pb::predict::FeatureVector::categorical`].
    Categorical,
    /// Decided by the value a request carries: numbers and booleans (1/0) are numeric, strings
    /// categorical. Only the tenant-defined context family `ctx.{key}`.
    ByValue,
}

/// Where a feature comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Source {
    /// The customer's profile, evaluated at scoring time.
    Profile,
    /// The request (channel, touchpoint, context properties).
    Context,
}

/// One entry of the catalogue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeatureSpec {
    /// The stable name. A name holding `{key}` stands for a family: `{key}` is any context
    /// property key (1-64 characters).
    pub name: &'static str,
    /// Numeric or categorical.
    pub kind: FeatureKind,
    /// Profile or request context.
    pub source: Source,
    /// Its definition, including when it is absent.
    pub description: &'static str,
}

/// Half-lives of the decayed counters, as they appear in names (`activity.7d.page_view`).
pub(crate) const HALF_LIVES: [&str; 3] = ["1d", "7d", "30d"];

/// The documented event types; each has its own decayed activity features. Any other type
/// counts in `activity.*.custom`.
pub(crate) use iee_api::event_types::KNOWN_EVENT_TYPES as EVENT_TYPES;

/// The bucket of tenant-defined (and any other undocumented) event types.
pub(crate) const CUSTOM_TYPES: &str = "custom";
/// The bucket of every event, whatever its type.
pub(crate) const ALL_TYPES: &str = "all";

/// The channels with decayed activity features (every channel but unspecified).
pub(crate) const CHANNELS: [Channel; 12] = [
    Channel::Web,
    Channel::App,
    Channel::Store,
    Channel::Email,
    Channel::Sms,
    Channel::Push,
    Channel::Chat,
    Channel::Phone,
    Channel::Support,
    Channel::Social,
    Channel::Community,
    Channel::Product,
];

/// Consent purposes with a feature of their own (`consent.<purpose>`).
pub(crate) const CONSENT_PURPOSES: [&str; 5] = [
    "marketing_email",
    "marketing_sms",
    "marketing_push",
    "personalization",
    "analytics",
];

/// Prefix of every context feature.
pub(crate) const CONTEXT_PREFIX: &str = "ctx.";
/// The context family's placeholder.
const KEY_PLACEHOLDER: &str = "{key}";

/// Leaks a generated string once; the catalogue lives as long as the process.
fn leak(s: String) -> &'static str {
    s.leak()
}

/// Name of a decayed per-type feature (`activity.7d.page_view`).
pub(crate) fn activity_name(half_life: &str, bucket: &str) -> String {
    format!("activity.{half_life}.{bucket}")
}

/// Name of a decayed per-channel feature (`channel.30d.CHANNEL_WEB`).
pub(crate) fn channel_name(half_life: &str, channel: Channel) -> String {
    format!("channel.{half_life}.{}", channel.as_str_name())
}

/// Name of a consent flag (`consent.marketing_email`).
pub(crate) fn consent_name(purpose: &str) -> String {
    format!("consent.{purpose}")
}

fn build() -> Vec<FeatureSpec> {
    let mut specs = FIXED_PROFILE.to_vec();
    for half_life in HALF_LIVES {
        let days = half_life.trim_end_matches('d');
        let buckets = EVENT_TYPES.iter().copied().chain([CUSTOM_TYPES, ALL_TYPES]);
        for bucket in buckets {
            let what = match bucket {
                CUSTOM_TYPES => "tenant-defined (`custom.*`) events".to_owned(),
                ALL_TYPES => "events of every type".to_owned(),
                t => format!("`{t}` events"),
            };
            specs.push(spec(
                leak(activity_name(half_life, bucket)),
                Numeric,
                Profile,
                leak(format!(
                    "Decayed count of {what} with a {days}-day half-life, as of now; 0 if none."
                )),
            ));
        }
        for channel in CHANNELS {
            specs.push(spec(
                leak(channel_name(half_life, channel)),
                Numeric,
                Profile,
                leak(format!(
                    "Decayed count of events on `{}` with a {days}-day half-life, as of now; 0 \
                     if none.",
                    channel.as_str_name()
                )),
            ));
        }
    }
    for purpose in CONSENT_PURPOSES {
        specs.push(spec(
            leak(consent_name(purpose)),
            Numeric,
            Profile,
            leak(format!(
                "Consent for `{purpose}`: 1 granted, 0 denied. Absent if never stated."
            )),
        ));
    }
    specs.extend_from_slice(FIXED_CONTEXT);
    specs
}

static CATALOGUE: LazyLock<Vec<FeatureSpec>> = LazyLock::new(build);

/// The exact names (family placeholders are not names of their own).
static NAMES: LazyLock<HashSet<&'static str>> = LazyLock::new(|| {
    CATALOGUE
        .iter()
        .map(|s| s.name)
        .filter(|name| !name.contains(KEY_PLACEHOLDER))
        .collect()
});

/// Every feature, in documentation order.
pub fn catalogue() -> &'static [FeatureSpec] {
    &CATALOGUE
}

/// Whether `name` is a catalogue feature or a member of a family (`ctx.{key}`). A model that
/// declares a feature for which this is false is refused at load.
pub fn is_known(name: &str) -> bool {
    NAMES.contains(name) || context_key(name).is_some()
}

/// The property key of a `ctx.{key}` family name, if `name` is one.
pub(crate) fn context_key(name: &str) -> Option<&str> {
    let key = name.strip_prefix(CONTEXT_PREFIX)?;
    valid_context_key(key).then_some(key)
}

/// A context property key that may form a `ctx.{key}` feature: 1-64 characters, not the
/// placeholder, and not one of the fixed context names.
pub(crate) fn valid_context_key(key: &str) -> bool {
    (1..=64).contains(&key.chars().count())
        && key != "channel"
        && key != "touchpoint"
        && key != KEY_PLACEHOLDER
}
