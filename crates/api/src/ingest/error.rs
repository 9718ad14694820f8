//! The ingest error and its one mapping to and from gRPC status codes.

use std::time::Duration;
use tonic::{Code, Status};

pub use crate::metadata::{FIELD_METADATA_KEY, RETRY_AFTER_METADATA_KEY};

/// Errors of the ingest service. Per-event validation failures are not errors (they are
/// REJECTED results); these fail a whole request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IngestError {
    /// The request itself is malformed (too many events, missing tenant, …).
    #[error("invalid argument `{field}`: {reason}")]
    InvalidArgument {
        /// Path of the offending field.
        field: String,
        /// Why it is invalid.
        reason: String,
    },
    /// The request conflicts with recorded state (an anonymous id linked to another customer).
    #[error("conflict on `{field}`: {reason}")]
    Conflict {
        /// Path of the conflicting field.
        field: String,
        /// What it conflicts with.
        reason: String,
    },
    /// The event log cannot be reached; nothing of the failed step was acknowledged, and a retry
    /// is safe (duplicates are detected).
    #[error("event log unavailable: {0}")]
    Unavailable(String),
    /// Too much work in flight; retry after the given delay.
    #[error("overloaded: {reason}")]
    ResourceExhausted {
        /// What limit was hit.
        reason: String,
        /// When to retry.
        retry_after: Duration,
    },
    /// The deadline passed before the request completed.
    #[error("deadline exceeded: {0}")]
    DeadlineExceeded(String),
    /// A bug or an unexpected state; details are logged on the server, not sent.
    #[error("internal error: {0}")]
    Internal(String),
}

impl IngestError {
    /// Shorthand for [`IngestError::InvalidArgument`].
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
            Self::Conflict { .. } => Code::AlreadyExists,
            Self::Unavailable(_) => Code::Unavailable,
            Self::ResourceExhausted { .. } => Code::ResourceExhausted,
            Self::DeadlineExceeded(_) => Code::DeadlineExceeded,
            Self::Internal(_) => Code::Internal,
        }
    }
}

impl From<IngestError> for Status {
    fn from(err: IngestError) -> Self {
        let code = err.code();
        match err {
            IngestError::InvalidArgument { ref field, .. }
            | IngestError::Conflict { ref field, .. } => {
                let mut status = Status::new(code, err.to_string());
                if let Ok(value) = field.parse() {
                    status.metadata_mut().insert(FIELD_METADATA_KEY, value);
                }
                status
            }
            IngestError::ResourceExhausted { retry_after, .. } => {
                let mut status = Status::new(code, err.to_string());
                status.metadata_mut().insert(
                    RETRY_AFTER_METADATA_KEY,
                    u64::try_from(retry_after.as_millis())
                        .unwrap_or(u64::MAX)
                        .into(),
                );
                status
            }
            // Internals stay in the server's logs.
            IngestError::Internal(_) => Status::internal("internal error"),
            IngestError::Unavailable(_) | IngestError::DeadlineExceeded(_) => {
                Status::new(code, err.to_string())
            }
        }
    }
}

impl From<Status> for IngestError {
    fn from(status: Status) -> Self {
        let field = || {
            status
                .metadata()
                .get(FIELD_METADATA_KEY)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned()
        };
        let message = status.message().to_owned();
        match status.code() {
            Code::InvalidArgument | Code::OutOfRange => Self::InvalidArgument {
                field: field(),
                reason: message,
            },
            Code::AlreadyExists | Code::FailedPrecondition => Self::Conflict {
                field: field(),
                reason: message,
            },
            Code::Unavailable => Self::Unavailable(message),
            Code::ResourceExhausted => {
                let retry_after = crate::metadata::retry_after_ms(&status)
                    .map_or(Duration::from_secs(1), Duration::from_millis);
                Self::ResourceExhausted {
                    reason: message,
                    retry_after,
                }
            }
            Code::DeadlineExceeded | Code::Cancelled => Self::DeadlineExceeded(message),
            _ => Self::Internal(format!("{}: {message}", status.code())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_argument_round_trips_with_its_field() {
        let err = IngestError::invalid("events", "at most 5000 events per batch, got 5001");
        let status = Status::from(err.clone());
        assert_eq!(status.code(), Code::InvalidArgument);
        assert!(status.message().contains("events"));
        match IngestError::from(status) {
            IngestError::InvalidArgument { field, .. } => assert_eq!(field, "events"),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn resource_exhausted_carries_retry_delay() {
        let err = IngestError::ResourceExhausted {
            reason: "too many batches in flight".into(),
            retry_after: Duration::from_millis(250),
        };
        match IngestError::from(Status::from(err)) {
            IngestError::ResourceExhausted { retry_after, .. } => {
                assert_eq!(retry_after, Duration::from_millis(250));
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn internal_details_are_not_sent() {
        let status = Status::from(IngestError::Internal(
            "redis script NOSCRIPT at key x".into(),
        ));
        assert_eq!(status.code(), Code::Internal);
        assert!(!status.message().contains("redis"));
    }
}
