//! The prediction error and its one mapping to and from gRPC status codes.

use tonic::{Code, Status};

use crate::metadata::{code_name, insert_field, invalid_argument_parts, strip};

pub use crate::metadata::{FIELD_METADATA_KEY, RETRY_AFTER_METADATA_KEY};

/// Errors of the prediction service; each fails the whole request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PredictError {
    /// The request is malformed: no score requested, a bad feature value, a malformed artifact,
    /// a version of the wrong kind, ...
    #[error("invalid argument `{field}`: {reason}")]
    InvalidArgument {
        /// Path of the offending field (e.g. `churn.model_id`, `artifact.weights[3]`).
        field: String,
        /// Why it is invalid.
        reason: String,
    },
    /// An unknown model or version.
    #[error("not found: {0}")]
    NotFound(String),
    /// A registered version already holds different content.
    #[error("already exists: {0}")]
    AlreadyExists(String),
    /// The kind's assignment changed since `expected_revision`: re-read and retry.
    #[error("aborted: {0}")]
    Aborted(String),
    /// The node or its storage cannot be reached; a retry may succeed.
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// The deadline passed before the request completed.
    #[error("deadline exceeded: {0}")]
    DeadlineExceeded(String),
    /// A bug or an unexpected state. The gRPC adapter logs the details and sends a generic text.
    #[error("internal error: {0}")]
    Internal(String),
}

impl PredictError {
    /// Shorthand for [`PredictError::InvalidArgument`].
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
            Self::AlreadyExists(_) => Code::AlreadyExists,
            Self::Aborted(_) => Code::Aborted,
            Self::Unavailable(_) => Code::Unavailable,
            Self::DeadlineExceeded(_) => Code::DeadlineExceeded,
            Self::Internal(_) => Code::Internal,
        }
    }

    /// Whether the same request, sent again after a delay, may succeed. An [`Aborted`]
    /// activation is not: it needs the current revision first.
    ///
    /// [`Aborted`]: PredictError::Aborted
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Unavailable(_))
    }

    /// The inverse of `Status::from(PredictError)`: every error survives a round trip unchanged.
    /// Statuses this service never sends (e.g. UNIMPLEMENTED from a wrong server) become
    /// [`PredictError::Internal`] naming the code; CANCELLED (tonic's client-side timeout)
    /// becomes [`PredictError::DeadlineExceeded`].
    pub fn from_status(status: Status) -> Self {
        let message = status.message();
        match status.code() {
            Code::InvalidArgument => {
                let (field, reason) = invalid_argument_parts(&status);
                Self::InvalidArgument { field, reason }
            }
            Code::NotFound => Self::NotFound(strip(message, "not found: ")),
            Code::AlreadyExists => Self::AlreadyExists(strip(message, "already exists: ")),
            Code::Aborted => Self::Aborted(strip(message, "aborted: ")),
            Code::Unavailable => Self::Unavailable(strip(message, "unavailable: ")),
            Code::DeadlineExceeded | Code::Cancelled => {
                Self::DeadlineExceeded(strip(message, "deadline exceeded: "))
            }
            Code::Internal => Self::Internal(strip(message, "internal error: ")),
            code => Self::Internal(format!("{}: {message}", code_name(code))),
        }
    }
}

impl From<Status> for PredictError {
    fn from(status: Status) -> Self {
        Self::from_status(status)
    }
}

impl From<PredictError> for Status {
    /// Lossless, so [`PredictError::from_status`] restores the error. `Internal` details are
    /// sent as they are: the server adapter replaces them with a generic text before they leave
    /// the process.
    fn from(err: PredictError) -> Self {
        let mut status = Status::new(err.code(), err.to_string());
        if let PredictError::InvalidArgument { field, .. } = &err {
            insert_field(&mut status, field);
        }
        status
    }
}

#[cfg(test)]
mod tests {
    use tonic::metadata::MetadataMap;

    use super::*;

    fn metadata_str<'a>(metadata: &'a MetadataMap, key: &str) -> Option<&'a str> {
        metadata.get(key).and_then(|v| v.to_str().ok())
    }

    fn round_trip(err: &PredictError) {
        let status = Status::from(err.clone());
        assert_eq!(status.code(), err.code(), "{err:?}");
        assert_eq!(PredictError::from_status(status), *err);
    }

    /// What a client sees: the status rebuilt from HTTP/2 trailers.
    fn over_the_wire(err: &PredictError) -> PredictError {
        let status = Status::from(err.clone());
        let mut headers = tonic::codegen::http::HeaderMap::new();
        status
            .add_header(&mut headers)
            .expect("status encodes as headers");
        PredictError::from_status(Status::from_header_map(&headers).expect("status decodes"))
    }

    #[test]
    fn invalid_argument_survives_a_round_trip_with_its_field() {
        let err = PredictError::invalid("artifact.weights[3]", "not a finite number");
        round_trip(&err);
        assert_eq!(over_the_wire(&err), err);
        let status = Status::from(err);
        assert_eq!(
            metadata_str(status.metadata(), FIELD_METADATA_KEY),
            Some("artifact.weights[3]")
        );
    }

    #[test]
    fn not_found_survives_a_round_trip() {
        let err = PredictError::NotFound("model churn-gbm version 7".into());
        round_trip(&err);
        assert_eq!(over_the_wire(&err), err);
    }

    #[test]
    fn already_exists_survives_a_round_trip() {
        let err = PredictError::AlreadyExists("churn-logreg 2024-06-01 has other content".into());
        round_trip(&err);
        assert_eq!(over_the_wire(&err), err);
    }

    #[test]
    fn aborted_survives_a_round_trip() {
        let err = PredictError::Aborted("churn assignment is at revision 4, not 3".into());
        round_trip(&err);
        assert_eq!(over_the_wire(&err), err);
        assert!(!err.is_transient());
    }

    #[test]
    fn unavailable_survives_a_round_trip() {
        let err = PredictError::Unavailable("redis: connection refused".into());
        round_trip(&err);
        assert_eq!(over_the_wire(&err), err);
        assert!(err.is_transient());
    }

    #[test]
    fn deadline_exceeded_survives_a_round_trip() {
        let err = PredictError::DeadlineExceeded("profile read took too long".into());
        round_trip(&err);
        assert_eq!(over_the_wire(&err), err);
    }

    #[test]
    fn internal_survives_a_round_trip() {
        let err = PredictError::Internal("model cache poisoned".into());
        round_trip(&err);
        assert_eq!(over_the_wire(&err), err);
    }

    #[test]
    fn messages_that_look_like_prefixes_survive() {
        for err in [
            PredictError::NotFound("not found: twice".into()),
            PredictError::Unavailable(String::new()),
            PredictError::invalid("", "empty path"),
            PredictError::invalid("a`: b", "backquote in the path"),
        ] {
            round_trip(&err);
            assert_eq!(over_the_wire(&err), err);
        }
    }

    #[test]
    fn field_path_that_is_not_valid_metadata_is_recovered_from_the_message() {
        let err = PredictError::invalid("features.numeric[\"größe\"]", "not finite");
        let status = Status::from(err.clone());
        assert_eq!(metadata_str(status.metadata(), FIELD_METADATA_KEY), None);
        assert_eq!(PredictError::from_status(status), err);
        assert_eq!(over_the_wire(&err), err);
    }

    #[test]
    fn cancelled_is_taken_for_a_deadline() {
        let err = PredictError::from_status(Status::cancelled("Timeout expired"));
        assert_eq!(
            err,
            PredictError::DeadlineExceeded("Timeout expired".into())
        );
    }

    #[test]
    fn transport_failure_is_unavailable() {
        let err = PredictError::from_status(Status::unavailable("tcp connect error"));
        assert_eq!(err, PredictError::Unavailable("tcp connect error".into()));
    }

    #[test]
    fn unexpected_codes_become_internal_naming_the_code() {
        let err = PredictError::from_status(Status::unimplemented("no such service"));
        match err {
            PredictError::Internal(detail) => {
                assert!(detail.contains("no such service"), "{detail}");
                assert!(detail.starts_with("UNIMPLEMENTED: "), "{detail}");
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn field_key_is_the_one_other_services_use() {
        let status = Status::from(crate::profile::ProfileError::invalid(
            "customer", "required",
        ));
        match PredictError::from_status(status) {
            PredictError::InvalidArgument { field, reason } => {
                assert_eq!(field, "customer");
                assert_eq!(reason, "required");
            }
            other => panic!("unexpected {other:?}"),
        }
    }
}
