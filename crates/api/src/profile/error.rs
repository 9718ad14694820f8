//! The profile error and its one mapping to and from gRPC status codes, including the
//! shard-routing metadata (`iee-shard`, `iee-shard-owner`, `iee-shard-epoch`).

use std::time::Duration;

use tonic::{
    Code, Status,
    metadata::{MetadataMap, MetadataValue},
};

pub use crate::metadata::{FIELD_METADATA_KEY, RETRY_AFTER_METADATA_KEY};
use crate::metadata::{insert_field, invalid_argument_parts, strip};
/// Metadata key carrying the shard number on a redirect or when the shard has no owner.
pub const SHARD_METADATA_KEY: &str = "iee-shard";
/// Metadata key carrying the shard owner's gRPC address (`host:port`) on a redirect.
pub const SHARD_OWNER_METADATA_KEY: &str = "iee-shard-owner";
/// Metadata key carrying the shard owner's lease epoch on a redirect.
pub const SHARD_EPOCH_METADATA_KEY: &str = "iee-shard-epoch";

/// The retry delay suggested with [`ProfileError::NoOwner`]: a hand-off takes about one lease
/// acquisition, so a short first delay finds the new owner soonest.
pub const NO_OWNER_RETRY_AFTER: Duration = Duration::from_millis(50);

/// Errors of the profile service. A denied contact reservation is not an error (it is a
/// `denial` verdict); these fail the whole request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProfileError {
    /// The request is malformed (missing customer, bad cap, ...).
    #[error("invalid argument `{field}`: {reason}")]
    InvalidArgument {
        /// Path of the offending field (e.g. `customer.tenant_id`).
        field: String,
        /// Why it is invalid.
        reason: String,
    },
    /// The named thing does not exist (an unknown, released or expired reservation on commit).
    #[error("not found: {0}")]
    NotFound(String),
    /// The customer's shard is served by another node: retry there (FAILED_PRECONDITION).
    #[error("shard {shard} is owned by {owner} (epoch {epoch})")]
    WrongOwner {
        /// The customer's shard.
        shard: u32,
        /// The owner's gRPC address, `host:port`.
        owner: String,
        /// The owner's lease epoch; a higher epoch supersedes a lower one.
        epoch: u64,
    },
    /// The customer's shard has no live owner (hand-off in progress): retry after a short delay.
    #[error("shard {shard} has no live owner")]
    NoOwner {
        /// The customer's shard.
        shard: u32,
    },
    /// The node or its storage cannot be reached; a retry may succeed.
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// The deadline passed before the request completed (e.g. waiting for `min_applied_offset`).
    #[error("deadline exceeded: {0}")]
    DeadlineExceeded(String),
    /// A resume point is no longer in the signal history.
    #[error("out of range: {0}")]
    OutOfRange(String),
    /// A watched shard moved to another node; re-read the shard map and reconnect.
    #[error("aborted: {0}")]
    Aborted(String),
    /// A bug or an unexpected state. The gRPC adapter logs the details and sends a generic text.
    #[error("internal error: {0}")]
    Internal(String),
}

impl ProfileError {
    /// Shorthand for [`ProfileError::InvalidArgument`].
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
            Self::WrongOwner { .. } => Code::FailedPrecondition,
            Self::NoOwner { .. } | Self::Unavailable(_) => Code::Unavailable,
            Self::DeadlineExceeded(_) => Code::DeadlineExceeded,
            Self::OutOfRange(_) => Code::OutOfRange,
            Self::Aborted(_) => Code::Aborted,
            Self::Internal(_) => Code::Internal,
        }
    }

    /// Whether a retry of the same request (after a delay) may succeed: no owner right now, or
    /// the node could not be reached.
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::NoOwner { .. } | Self::Unavailable(_))
    }

    /// The inverse of `Status::from(ProfileError)`: every error survives a round trip unchanged.
    /// Statuses this service never sends (e.g. UNIMPLEMENTED from a wrong server) become
    /// [`ProfileError::Internal`] naming the code; CANCELLED (tonic's client-side timeout)
    /// becomes [`ProfileError::DeadlineExceeded`].
    pub fn from_status(status: Status) -> Self {
        let message = status.message();
        let metadata = status.metadata();
        match status.code() {
            Code::InvalidArgument => {
                let (field, reason) = invalid_argument_parts(&status);
                Self::InvalidArgument { field, reason }
            }
            Code::NotFound => Self::NotFound(strip(message, "not found: ")),
            Code::FailedPrecondition => {
                let shard = metadata_parse::<u32>(metadata, SHARD_METADATA_KEY);
                let owner = metadata_str(metadata, SHARD_OWNER_METADATA_KEY);
                let epoch = metadata_parse::<u64>(metadata, SHARD_EPOCH_METADATA_KEY);
                match (shard, owner, epoch) {
                    (Some(shard), Some(owner), Some(epoch)) if !owner.is_empty() => {
                        Self::WrongOwner {
                            shard,
                            owner: owner.to_owned(),
                            epoch,
                        }
                    }
                    // The contract uses FAILED_PRECONDITION for redirects only.
                    _ => Self::Internal(format!("redirect without an owner: {message}")),
                }
            }
            Code::Unavailable => match metadata_parse::<u32>(metadata, SHARD_METADATA_KEY) {
                Some(shard) => Self::NoOwner { shard },
                None => Self::Unavailable(strip(message, "unavailable: ")),
            },
            Code::DeadlineExceeded | Code::Cancelled => {
                Self::DeadlineExceeded(strip(message, "deadline exceeded: "))
            }
            Code::OutOfRange => Self::OutOfRange(strip(message, "out of range: ")),
            Code::Aborted => Self::Aborted(strip(message, "aborted: ")),
            Code::Internal => Self::Internal(strip(message, "internal error: ")),
            code => Self::Internal(format!("{code}: {message}")),
        }
    }
}

impl From<Status> for ProfileError {
    fn from(status: Status) -> Self {
        Self::from_status(status)
    }
}

impl From<ProfileError> for Status {
    /// Lossless, so [`ProfileError::from_status`] restores the error. `Internal` details are
    /// sent as they are: the server adapter replaces them with a generic text before they leave
    /// the process.
    fn from(err: ProfileError) -> Self {
        let mut status = Status::new(err.code(), err.to_string());
        if let ProfileError::InvalidArgument { field, .. } = &err {
            insert_field(&mut status, field);
        }
        let metadata = status.metadata_mut();
        match &err {
            ProfileError::WrongOwner {
                shard,
                owner,
                epoch,
            } => {
                metadata.insert(SHARD_METADATA_KEY, (*shard).into());
                if let Ok(value) = MetadataValue::try_from(owner.as_str()) {
                    metadata.insert(SHARD_OWNER_METADATA_KEY, value);
                }
                metadata.insert(SHARD_EPOCH_METADATA_KEY, (*epoch).into());
            }
            ProfileError::NoOwner { shard } => {
                metadata.insert(SHARD_METADATA_KEY, (*shard).into());
                metadata.insert(
                    RETRY_AFTER_METADATA_KEY,
                    u64::try_from(NO_OWNER_RETRY_AFTER.as_millis())
                        .unwrap_or(u64::MAX)
                        .into(),
                );
            }
            _ => {}
        }
        status
    }
}

fn metadata_str<'a>(metadata: &'a MetadataMap, key: &str) -> Option<&'a str> {
    metadata.get(key).and_then(|v| v.to_str().ok())
}

fn metadata_parse<T: std::str::FromStr>(metadata: &MetadataMap, key: &str) -> Option<T> {
    metadata_str(metadata, key).and_then(|v| v.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn every_variant() -> Vec<ProfileError> {
        vec![
            ProfileError::invalid("customer.tenant_id", "required"),
            ProfileError::invalid("caps[2].max_count", "must be >= 1, got 0"),
            ProfileError::NotFound("reservation r-1 is unknown, released or expired".into()),
            ProfileError::WrongOwner {
                shard: 17,
                owner: "profile-2.profile:7001".into(),
                epoch: 42,
            },
            ProfileError::NoOwner { shard: 1023 },
            ProfileError::Unavailable("redis: connection refused".into()),
            ProfileError::DeadlineExceeded("offset 12-0 not applied yet".into()),
            ProfileError::OutOfRange("cursor 5-0 of shard 3 is past retention".into()),
            ProfileError::Aborted("shard 3 moved".into()),
            ProfileError::Internal("actor for c-1 stopped".into()),
            // Messages that look like other variants' prefixes must survive as well.
            ProfileError::Unavailable(String::new()),
            ProfileError::NotFound("not found: twice".into()),
            ProfileError::invalid("traits.prénom", "too long"),
        ]
    }

    #[test]
    fn every_variant_survives_a_status_round_trip() {
        for err in every_variant() {
            let status = Status::from(err.clone());
            assert_eq!(status.code(), err.code(), "{err:?}");
            assert_eq!(ProfileError::from_status(status), err);
        }
    }

    #[test]
    fn every_variant_survives_the_wire_encoding_of_its_metadata() {
        // What a client sees: the status rebuilt from HTTP/2 trailers.
        for err in every_variant() {
            let status = Status::from(err.clone());
            let mut headers = tonic::codegen::http::HeaderMap::new();
            status
                .add_header(&mut headers)
                .expect("status encodes as headers");
            let received = Status::from_header_map(&headers).expect("status decodes from headers");
            assert_eq!(ProfileError::from_status(received), err);
        }
    }

    #[test]
    fn redirect_names_shard_owner_and_epoch_in_metadata() {
        let status = Status::from(ProfileError::WrongOwner {
            shard: 9,
            owner: "10.0.0.7:7001".into(),
            epoch: 3,
        });
        assert_eq!(status.code(), Code::FailedPrecondition);
        let md = status.metadata();
        assert_eq!(metadata_str(md, SHARD_METADATA_KEY), Some("9"));
        assert_eq!(
            metadata_str(md, SHARD_OWNER_METADATA_KEY),
            Some("10.0.0.7:7001")
        );
        assert_eq!(metadata_str(md, SHARD_EPOCH_METADATA_KEY), Some("3"));
    }

    #[test]
    fn no_owner_is_unavailable_with_shard_and_retry_delay() {
        let status = Status::from(ProfileError::NoOwner { shard: 4 });
        assert_eq!(status.code(), Code::Unavailable);
        assert_eq!(
            metadata_str(status.metadata(), SHARD_METADATA_KEY),
            Some("4")
        );
        assert_eq!(
            metadata_parse::<u64>(status.metadata(), RETRY_AFTER_METADATA_KEY),
            Some(50)
        );
    }

    #[test]
    fn transport_failure_is_unavailable_without_a_shard() {
        let err = ProfileError::from_status(Status::unavailable("tcp connect error"));
        assert_eq!(err, ProfileError::Unavailable("tcp connect error".into()));
        assert!(err.is_transient());
    }

    #[test]
    fn failed_precondition_without_owner_is_not_taken_for_a_redirect() {
        let err = ProfileError::from_status(Status::failed_precondition("something else"));
        assert!(matches!(err, ProfileError::Internal(_)), "{err:?}");
    }

    #[test]
    fn unexpected_codes_become_internal_naming_the_code() {
        let err = ProfileError::from_status(Status::unimplemented("no such service"));
        match err {
            ProfileError::Internal(detail) => assert!(detail.contains("no such service")),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn field_key_is_the_one_ingest_errors_use() {
        let status = Status::from(crate::ingest::IngestError::invalid("events", "too many"));
        assert_eq!(
            metadata_str(status.metadata(), FIELD_METADATA_KEY),
            Some("events")
        );
        match ProfileError::from_status(status) {
            ProfileError::InvalidArgument { field, .. } => assert_eq!(field, "events"),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn field_path_that_is_not_valid_metadata_is_recovered_from_the_message() {
        let err = ProfileError::invalid("traits.prénom", "too long");
        let status = Status::from(err.clone());
        // Metadata may hold the bytes, but not as text.
        assert_eq!(metadata_str(status.metadata(), FIELD_METADATA_KEY), None);
        assert_eq!(ProfileError::from_status(status), err);
    }
}
