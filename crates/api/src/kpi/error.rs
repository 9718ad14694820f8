//! The KPI error and its one mapping to and from gRPC status codes.

use tonic::{Code, Status};

use crate::metadata::{code_name, insert_field, invalid_argument_parts, strip};

/// Errors of the KPI service; each fails the whole request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KpiError {
    /// The request is malformed.
    #[error("invalid argument `{field}`: {reason}")]
    InvalidArgument {
        /// Path of the offending field (e.g. `metrics[2]`, `bucket_width`).
        field: String,
        /// Why it is invalid.
        reason: String,
    },
    /// An unknown experiment.
    #[error("not found: {0}")]
    NotFound(String),
    /// The storage cannot be reached; a retry may succeed.
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// The deadline passed before the request completed.
    #[error("deadline exceeded: {0}")]
    DeadlineExceeded(String),
    /// A bug or an unexpected state. The gRPC adapter logs the details and sends a generic text.
    #[error("internal error: {0}")]
    Internal(String),
}

impl KpiError {
    /// Shorthand for [`KpiError::InvalidArgument`].
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
            Self::Unavailable(_) => Code::Unavailable,
            Self::DeadlineExceeded(_) => Code::DeadlineExceeded,
            Self::Internal(_) => Code::Internal,
        }
    }

    /// The inverse of `Status::from(KpiError)`: every error survives a round trip unchanged.
    /// Other codes become [`KpiError::Internal`] naming the code; CANCELLED (tonic's
    /// client-side timeout) becomes [`KpiError::DeadlineExceeded`].
    pub fn from_status(status: Status) -> Self {
        let message = status.message();
        match status.code() {
            Code::InvalidArgument => {
                let (field, reason) = invalid_argument_parts(&status);
                Self::InvalidArgument { field, reason }
            }
            Code::NotFound => Self::NotFound(strip(message, "not found: ")),
            Code::Unavailable => Self::Unavailable(strip(message, "unavailable: ")),
            Code::DeadlineExceeded | Code::Cancelled => {
                Self::DeadlineExceeded(strip(message, "deadline exceeded: "))
            }
            Code::Internal => Self::Internal(strip(message, "internal error: ")),
            code => Self::Internal(format!("{}: {message}", code_name(code))),
        }
    }
}

impl From<Status> for KpiError {
    fn from(status: Status) -> Self {
        Self::from_status(status)
    }
}

impl From<KpiError> for Status {
    /// Lossless, so [`KpiError::from_status`] restores the error.
    fn from(err: KpiError) -> Self {
        let mut status = Status::new(err.code(), err.to_string());
        if let KpiError::InvalidArgument { field, .. } = &err {
            insert_field(&mut status, field);
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
            KpiError::invalid("metrics[1]", "unknown metric \"nsp\""),
            KpiError::NotFound("experiment \"x\"".into()),
            KpiError::Unavailable("redis: connection refused".into()),
            KpiError::DeadlineExceeded("query".into()),
            KpiError::Internal("bug".into()),
        ] {
            let status = Status::from(err.clone());
            assert_eq!(status.code(), err.code(), "{err:?}");
            assert_eq!(KpiError::from_status(status), err);
        }
        assert!(matches!(
            KpiError::from_status(Status::unimplemented("x")),
            KpiError::Internal(m) if m.contains("UNIMPLEMENTED")
        ));
    }
}
