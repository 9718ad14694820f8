//! One decision: the funnel (shared with explanations and replays), arbitration with
//! exploration, holdouts, the contact policy gate, and the live path that reads, scores,
//! reserves and logs.

mod arbitrate;
mod exposure;
mod funnel;
mod gate;
mod holdout;
mod live;

pub(crate) use funnel::{Funnel, Inputs, Scored, Scorer, run};
pub(crate) use gate::RecordedGate;
pub(crate) use live::{Provenance, decide};
#[cfg(test)]
mod tests;
