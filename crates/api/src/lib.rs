//! The contracts of IEE: generated protobuf and gRPC code, the shard function every service
//! routes by, per-service transport-neutral traits, clients (local or gRPC) and errors, and the
//! W3C trace context every remote call of those clients carries.

pub mod credentials;
pub mod decide;
pub mod event_types;
pub mod ingest;
pub mod kpi;
pub mod metadata;
pub mod pb;
pub mod predict;
pub mod profile;
pub mod shard;
pub mod tenancy;
pub mod trace_context;
pub mod transport;

/// Encoded `FileDescriptorSet` of every IEE proto, served by gRPC reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/iee_descriptor.bin"));

/// Re-exported so services and clients use the exact tonic the contracts were generated with.
pub use tonic;
