//! gRPC metadata keys every IEE service uses the same way.

/// Metadata key carrying the path of the offending field on INVALID_ARGUMENT.
pub const FIELD_METADATA_KEY: &str = "iee-field";
/// Metadata key carrying the suggested retry delay in milliseconds (RESOURCE_EXHAUSTED on
/// overload, UNAVAILABLE while a shard has no owner).
pub const RETRY_AFTER_METADATA_KEY: &str = "retry-after-ms";
