//! The decision error and its one mapping to and from gRPC status codes.

use tonic::{Code, Status};

use crate::metadata::{
    RETRY_AFTER_METADATA_KEY, code_name, insert_field, invalid_argument_parts, strip,
};

/// The retry delay suggested with [`DecideError::Overloaded`], in milliseconds.
pub const OVERLOAD_RETRY_AFTER_MS: u64 = 20;

/// Errors of the decision service; each fails the whole request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecideError {
    /// The request is malformed.
    #[error("invalid argument `{field}`: {reason}")]
    InvalidArgument {
        /// Path of the offending field (e.g. `context["page"]`, `kind`).
        field: String,
        /// Why it is invalid.
        reason: String,
    },
    /// An unknown decision, action, tenant configuration or version.
    #[error("not found: {0}")]
    NotFound(String),
    /// The request cannot apply in the current state: an outcome outside its attribution
    /// window, a configuration managed from a mounted file.
    #[error("failed precondition: {0}")]
    FailedPrecondition(String),
    /// The active configuration changed since the version the write was based on.
    #[error("aborted: {0}")]
    Aborted(String),
    /// Too many decisions are in progress; retry after the delay in `retry-after-ms`.
    #[error("resource exhausted: {0}")]
    Overloaded(String),
    /// A dependency (profile, prediction, ingest, storage) cannot be reached; a retry may
    /// succeed.
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// The deadline passed before the request completed.
    #[error("deadline exceeded: {0}")]
    DeadlineExceeded(String),
    /// A bug or an unexpected state. The gRPC adapter logs the details and sends a generic text.
    #[error("internal error: {0}")]
    Internal(String),
}

impl DecideError {
    /// Shorthand for [`DecideError::InvalidArgument`].
    pub fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::InvalidArgument {
            field: field.into(),
            reason: reason.into(),
        }
    }

    /// The gRPC code this error maps to.
    pub fn code(&self) -> Code {
        match self {
            Self::InvalidArgument { .. } => Code::InvalidArgument,
            Self::NotFound(_) => Code::NotFound,
            Self::FailedPrecondition(_) => Code::FailedPrecondition,
            Self::Aborted(_) => Code::Aborted,
            Self::Overloaded(_) => Code::ResourceExhausted,
            Self::Unavailable(_) => Code::Unavailable,
            Self::DeadlineExceeded(_) => Code::DeadlineExceeded,
            Self::Internal(_) => Code::Internal,
        }
    }

    /// Whether the same request, sent again after a delay, may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Unavailable(_) | Self::Overloaded(_))
    }

    /// The inverse of `Status::from(DecideError)`: every error survives a round trip unchanged.
    /// Other codes become [`DecideError::Internal`] naming the code; CANCELLED (tonic's
    /// client-side timeout) becomes [`DecideError::DeadlineExceeded`].
    pub fn from_status(status: Status) -> Self {
        let message = status.message();
        match status.code() {
            Code::InvalidArgument => {
                let (field, reason) = invalid_argument_parts(&status);
                Self::InvalidArgument { field, reason }
            }
            Code::NotFound => Self::NotFound(strip(message, "not found: ")),
            Code::FailedPrecondition => {
                Self::FailedPrecondition(strip(message, "failed precondition: "))
            }
            Code::Aborted => Self::Aborted(strip(message, "aborted: ")),
            Code::ResourceExhausted => Self::Overloaded(strip(message, "resource exhausted: ")),
            Code::Unavailable => Self::Unavailable(strip(message, "unavailable: ")),
            Code::DeadlineExceeded | Code::Cancelled => {
                Self::DeadlineExceeded(strip(message, "deadline exceeded: "))
            }
            Code::Internal => Self::Internal(strip(message, "internal error: ")),
            code => Self::Internal(format!("{}: {message}", code_name(code))),
        }
    }
}

impl From<Status> for DecideError {
    fn from(status: Status) -> Self {
        Self::from_status(status)
    }
}

impl From<DecideError> for Status {
    /// Lossless, so [`DecideError::from_status`] restores the error.
    fn from(err: DecideError) -> Self {
        let mut status = Status::new(err.code(), err.to_string());
        match &err {
            DecideError::InvalidArgument { field, .. } => insert_field(&mut status, field),
            DecideError::Overloaded(_) => {
                status
                    .metadata_mut()
                    .insert(RETRY_AFTER_METADATA_KEY, OVERLOAD_RETRY_AFTER_MS.into());
            }
            _ => {}
        }
        status
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_variant_survives_a_round_trip() {
        for err in [
            DecideError::invalid("context[\"page\"]", "longer than 128 characters"),
            DecideError::invalid("größe", "a path that is not valid metadata"),
            DecideError::NotFound("decision d-1".into()),
            DecideError::FailedPrecondition("outcome 9 days after the decision".into()),
            DecideError::Aborted("active version is abc, not def".into()),
            DecideError::Overloaded("256 decisions in progress".into()),
            DecideError::Unavailable("profile: connection refused".into()),
            DecideError::DeadlineExceeded("profile read".into()),
            DecideError::Internal("bug".into()),
        ] {
            let status = Status::from(err.clone());
            assert_eq!(status.code(), err.code(), "{err:?}");
            assert_eq!(DecideError::from_status(status), err);
        }
    }

    #[test]
    fn unexpected_codes_become_internal_naming_the_code() {
        let err = DecideError::from_status(Status::unimplemented("no such service"));
        assert_eq!(
            err,
            DecideError::Internal("UNIMPLEMENTED: no such service".into())
        );
    }
}
