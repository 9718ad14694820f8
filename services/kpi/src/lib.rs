//! The KPI service (measurement layer): it folds the shard logs (events, decisions as exposure
//! records, outcomes) into additive statistics per tenant, time bucket and dimension, exactly
//! once, and answers metric queries and experiment comparisons with confidence intervals and
//! uplift. See `docs/kpi-metrics.md` and `docs/kpi-statistics.md`.

pub mod catalogue;
mod consumer;
pub mod fields;
pub mod fold;
mod gauges;
mod grpc;
mod metrics;
mod node;
pub mod query;
mod service;
mod settings;
pub mod stats;

pub use grpc::{KpiGrpc, service};
pub use node::KpiNode;
pub use settings::{KPI_CONSUMER, KpiConfig, KpiServerConfig};
