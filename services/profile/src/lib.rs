//! The profile service (data layer): one `ractor` actor per active customer, grouped into
//! shards that a node serves only while it holds the shard's lease. See `README.md`.

mod config;
mod ctx;
mod customer;
pub mod fold;
pub mod grpc;
mod membership;
mod metrics;
mod node;
mod ownership;
mod service;
mod shard;

pub use config::{
    KubernetesMembershipConfig, MembershipSource, ProfileConfig, ProfileServerConfig,
};
#[cfg(feature = "kube")]
pub use membership::KubeMembership;
pub use membership::with_membership;
pub use node::{ProfileDeps, ProfileNode, default_node_id};
