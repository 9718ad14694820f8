//! gRPC metadata keys and status code names every IEE service and client uses the same way.

/// Metadata key carrying the path of the offending field on INVALID_ARGUMENT.
pub const FIELD_METADATA_KEY: &str = "iee-field";
/// Metadata key carrying the suggested retry delay in milliseconds (RESOURCE_EXHAUSTED on
/// overload, UNAVAILABLE while a shard has no owner).
pub const RETRY_AFTER_METADATA_KEY: &str = "retry-after-ms";

/// The retry delay in milliseconds that `status` suggests ([`RETRY_AFTER_METADATA_KEY`]), if
/// it carries a valid one.
pub fn retry_after_ms(status: &tonic::Status) -> Option<u64> {
    status
        .metadata()
        .get(RETRY_AFTER_METADATA_KEY)?
        .to_str()
        .ok()?
        .parse()
        .ok()
}

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

/// The `(field, reason)` of an INVALID_ARGUMENT status written by a service error's `Display`
/// (`invalid argument `{field}`: {reason}`): the field from [`FIELD_METADATA_KEY`], else from
/// the message (a path that is not valid metadata travels only there).
pub(crate) fn invalid_argument_parts(status: &tonic::Status) -> (String, String) {
    let message = status.message();
    let field = status
        .metadata()
        .get(FIELD_METADATA_KEY)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .or_else(|| {
            let rest = message.strip_prefix("invalid argument `")?;
            let (field, _) = rest.split_once("`: ")?;
            Some(field.to_owned())
        })
        .unwrap_or_default();
    let reason = strip(message, &format!("invalid argument `{field}`: "));
    (field, reason)
}

/// Puts `field` in [`FIELD_METADATA_KEY`] of `status`, unless it is not valid metadata (it then
/// travels in the message only).
pub(crate) fn insert_field(status: &mut tonic::Status, field: &str) {
    if let Ok(value) = tonic::metadata::MetadataValue::try_from(field) {
        status.metadata_mut().insert(FIELD_METADATA_KEY, value);
    }
}

/// The detail behind a variant's `Display` prefix; a message from elsewhere (e.g. a transport
/// error from tonic) is kept whole.
pub(crate) fn strip(message: &str, prefix: &str) -> String {
    message.strip_prefix(prefix).unwrap_or(message).to_owned()
}
