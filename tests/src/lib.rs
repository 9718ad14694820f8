//! The harness of the cross-service tests: a [`TestCluster`] runs nodes on a real gRPC server
//! on loopback, over a real `redis-server` of its own or the in-memory backend.

mod cluster;
mod events;

pub use cluster::{Backend, TEST_SHARDS, TestCluster};
pub use events::{event, events_for, valid_event};
