//! The storage error.

/// Why a storage operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// The backend cannot be reached or did not answer in time. The operation may or may not
    /// have taken effect; every write of ours is idempotent, so retrying is safe.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// The backend answered with an error (a bug or a misconfiguration).
    #[error("store error: {0}")]
    Backend(String),
    /// The configuration is unusable (bad URL, …).
    #[error("store configuration: {0}")]
    Config(String),
    /// The write contradicts what is stored (e.g. different bytes under an existing immutable
    /// model version); nothing changed.
    #[error("store conflict: {0}")]
    Conflict(String),
}
