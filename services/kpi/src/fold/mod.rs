//! The fold of the shard logs into additive KPI statistics: per-customer measurement state,
//! the observations of a batch, the bounded vocabulary of touchpoints and actions.

mod activity;
mod config;
mod decisions;
mod experience;
mod folder;
mod observations;
mod sessions;
mod state;
mod vocabulary;

#[cfg(test)]
mod tests;

pub use config::FoldConfig;
pub use folder::{Folded, fold};
pub use observations::Observations;
pub use state::{ActiveDay, Assignment, CustomerState, PeakEnd, RecentDecision, Row, Session};
pub use vocabulary::{ACTION_MARK, TOUCHPOINT_MARK, Vocabulary};
