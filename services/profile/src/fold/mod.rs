//! Folding events into profiles: pure functions (no I/O, no async) that the customer actors
//! call. Every rule is documented in `docs/profile-state.md`.

mod budget;
mod budget_check;
mod cart;
mod config;
mod contacts;
mod counters;
mod effects;
mod event;
mod experience;
mod folder;
mod identity;
mod journey;
mod merge;
pub mod offsets;
mod props;
mod rfm;
mod sentiment;
mod sessions;
mod time;

#[cfg(test)]
mod budget_tests;
#[cfg(test)]
mod folder_tests;
#[cfg(test)]
mod merge_tests;
#[cfg(test)]
mod test_support;

pub use budget_check::ContactError;
pub use config::FoldConfig;
pub use effects::{Applied, Effects, TimerChange, TimerKind, UnknownTimerKind};
pub use folder::Folder;
