//! gRPC metadata keys and status code names every IEE service and client uses the same way.

/// Metadata key carrying the path of the offending field on INVALID_ARGUMENT.
pub const FIELD_METADATA_KEY: &str = "iee-field";
/// Metadata key carrying the suggested retry delay in milliseconds (RESOURCE_EXHAUSTED on
/// overload, UNAVAILABLE while a shard has no owner).
pub const RETRY_AFTER_METADATA_KEY: &str = "retry-after-ms";

/// The canonical gRPC name of a status code, e.g. `UNAVAILABLE` (the `code` label of RPC
/// metrics, and the load tester's error classes).
pub fn code_name(code: tonic::Code) -> &'static str {
    use tonic::Code;
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "CANCELLED",
        Code::Unknown => "UNKNOWN",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        Code::NotFound => "NOT_FOUND",
        Code::AlreadyExists => "ALREADY_EXISTS",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::Aborted => "ABORTED",
        Code::OutOfRange => "OUT_OF_RANGE",
        Code::Unimplemented => "UNIMPLEMENTED",
        Code::Internal => "INTERNAL",
        Code::Unavailable => "UNAVAILABLE",
        Code::DataLoss => "DATA_LOSS",
        Code::Unauthenticated => "UNAUTHENTICATED",
    }
}
