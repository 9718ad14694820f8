//! The profile service (data layer): one `ractor` actor per active customer, grouped into
//! shards that a node serves only while it holds the shard's lease. See `README.md`.

mod config;
mod ctx;
mod customer;
pub mod fold;
pub mod grpc;
mod metrics;
mod node;
mod ownership;
mod service;
mod shard;

pub use config::{ProfileConfig, ProfileServerConfig};
pub use node::{ProfileDeps, ProfileNode, default_node_id};
