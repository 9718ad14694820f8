//! The decision service (decision layer): next best actions from a declarative configuration
//! (actions, CEL engagement policies, context weights, contact policies, holdouts, proactive
//! triggers), with Thompson-sampled exploration, a decision log that explains and replays every
//! decision, outcomes fed back as events, and outbound decisions from profile signals. See
//! `README.md` and `docs/decide-config.md`.

mod audit;
pub mod config;
mod configs;
mod decision;
pub mod grpc;
mod metrics;
mod node;
mod outbound;
mod outcome;
mod proactive;
mod service;
mod settings;

pub use node::{DecideDeps, DecideNode};
pub use settings::{DecideConfig, DecideServerConfig};
