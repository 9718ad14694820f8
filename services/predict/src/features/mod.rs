//! The feature catalogue: one versioned list of named features, derived from the profile state
//! (evaluated at scoring time) and from the request context. See `docs/features.md`.

mod catalogue;
mod context;
mod entries;
mod profile;
#[cfg(test)]
mod tests;

pub use catalogue::{CATALOGUE_VERSION, FeatureKind, FeatureSpec, Source, catalogue, is_known};
pub use context::{context_features, merge};
pub use profile::{from_profile, major_units};
