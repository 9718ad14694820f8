//! A tenant's decision configuration: the YAML format (`docs/decide-config.md`), its validation
//! and compilation into a [`DecisionConfig`], and the CEL rules it holds.

mod compile;
mod locate;
mod model;
mod names;
mod policies;
mod raw;
mod rules;
mod sections;
mod units;
mod view;

#[cfg(test)]
mod tests;

pub use compile::{ConfigIssue, compile, declared_tenant, version_of};
pub use model::*;
pub use rules::{Bindings, Rule, Scores};
pub use view::profile_view;
