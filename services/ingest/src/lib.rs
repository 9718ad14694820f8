//! The contact layer: `TouchpointService` validates touchpoint events, keeps rejected ones as
//! dead letters, deduplicates by `event_id` and appends the rest to their shard's event log.

mod config;
mod currency;
mod event_types;
mod grpc;
mod metrics;
mod node;
mod service;
mod validate;

pub use config::{IngestConfig, IngestServerConfig};
pub use event_types::{CUSTOM_PREFIX, KNOWN_EVENT_TYPES};
pub use iee_api::ingest::IngestError;
pub use node::{IngestDeps, IngestNode};
pub use service::{INVALID_TENANT_BUCKET, Ingestor};
