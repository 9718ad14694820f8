//! The prediction service (decision layer): churn, propensity, lifetime value and satisfaction
//! models over a versioned feature catalogue, with a model registry in the store and online
//! learning from outcomes. See `README.md`.

mod builtin;
mod config;
pub mod features;
pub mod grpc;
pub mod learner;
mod metrics;
pub mod model;
mod node;
mod outcomes;
mod registry;
mod scoring;
mod service;
pub mod train;

pub use config::{PredictConfig, PredictServerConfig};
pub use node::{PredictDeps, PredictNode};
