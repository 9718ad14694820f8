//! The model registry: immutable model versions (artifact bytes plus metadata) and, per model
//! kind, the assignment of champion and challenger, changed by compare-and-set on a revision.

use serde::{Deserialize, Serialize};

use crate::StoreError;

/// What the registry knows about one stored version, besides its bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelVersionMeta {
    /// The model, e.g. `churn-logreg`.
    pub model_id: String,
    /// One immutable version of it.
    pub version: String,
    /// What the model predicts (the caller's kind name, e.g. `churn`).
    pub kind: String,
    /// When the version was created, Unix milliseconds.
    pub created_at_ms: i64,
}

/// Which model versions serve one kind.
#[derive(Debug, Clone, PartialEq)]
pub struct Assignment {
    /// The kind.
    pub kind: String,
    /// The champion: `(model_id, version)`.
    pub champion: (String, String),
    /// The challenger, if any: `(model_id, version)`.
    pub challenger: Option<(String, String)>,
    /// Share of customers routed to the challenger, 0 to 1 (0 without a challenger).
    pub challenger_share: f64,
    /// When this assignment was made, Unix milliseconds (the caller's clock).
    pub activated_at_ms: i64,
    /// 1 for the kind's first assignment, one more with every change.
    pub revision: u64,
}

/// The result of an activation.
#[derive(Debug, Clone, PartialEq)]
pub enum Activation {
    /// The assignment was made.
    Done {
        /// The assignment now in force.
        current: Assignment,
        /// The assignment it replaced (none for the kind's first).
        previous: Option<Assignment>,
    },
    /// `expected_revision` did not match; nothing changed.
    Conflict {
        /// The kind's revision now (0 when it has no assignment).
        current_revision: u64,
    },
}

/// Model version and assignment storage, per tenant.
///
/// Versions are never deleted, so a version the caller found before activating it still exists
/// when the activation runs: checking existence (and that the version's kind matches) is the
/// caller's job and needs no transaction.
#[async_trait::async_trait]
pub trait ModelRegistry: Send + Sync + 'static {
    /// Stores an immutable version. `Ok(true)` when created; storing the same bytes again is a
    /// no-op (`Ok(false)`, the first metadata is kept); different bytes under an existing version
    /// fail with [`StoreError::Conflict`] and change nothing.
    async fn put_version(
        &self,
        tenant_id: &str,
        meta: &ModelVersionMeta,
        artifact: &[u8],
    ) -> Result<bool, StoreError>;

    /// The artifact of one version, if stored.
    async fn get_version(
        &self,
        tenant_id: &str,
        model_id: &str,
        version: &str,
    ) -> Result<Option<Vec<u8>>, StoreError>;

    /// Every version of the tenant: models by id, newest first within each model (by
    /// `created_at_ms`, then version, both descending).
    async fn list_versions(&self, tenant_id: &str) -> Result<Vec<ModelVersionMeta>, StoreError>;

    /// The current assignment of every kind that has one, ordered by kind.
    async fn assignments(&self, tenant_id: &str) -> Result<Vec<Assignment>, StoreError>;

    /// Makes `champion` (and `challenger`, with `challenger_share`) the assignment of `kind`.
    /// Compare-and-set: when `expected_revision` is non-zero and differs from the kind's current
    /// revision (0 without an assignment), nothing changes and the answer is
    /// [`Activation::Conflict`]. Every activation is a change: the revision grows by one (1 for
    /// the first) and the tenant's change counter moves, atomically with the write.
    #[allow(clippy::too_many_arguments)] // Mirrors ActivateModelRequest field by field.
    async fn activate(
        &self,
        tenant_id: &str,
        kind: &str,
        champion: (&str, &str),
        challenger: Option<(&str, &str)>,
        challenger_share: f64,
        expected_revision: u64,
        now_ms: i64,
    ) -> Result<Activation, StoreError>;

    /// One counter per given tenant (same order) that changes whenever any assignment of the
    /// tenant changes; 0 for a tenant that never had one. Replicas poll it cheaply and re-read
    /// [`ModelRegistry::assignments`] when it differs from what they saw. Compare for
    /// inequality, not order: a Redis restarted without persistence starts again from 0.
    async fn assignments_changed(&self, tenant_ids: &[String]) -> Result<Vec<u64>, StoreError>;
}

/// Orders versions as [`ModelRegistry::list_versions`] promises.
pub(crate) fn sort_versions(versions: &mut [ModelVersionMeta]) {
    versions.sort_by(|a, b| {
        a.model_id
            .cmp(&b.model_id)
            .then(b.created_at_ms.cmp(&a.created_at_ms))
            .then_with(|| b.version.cmp(&a.version))
    });
}

/// An assignment as stored (JSON in Redis): named fields, so the stored form reads well and
/// does not follow the Rust tuple layout.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct StoredAssignment {
    pub kind: String,
    pub champion: StoredRef,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub challenger: Option<StoredRef>,
    pub challenger_share: f64,
    pub activated_at_ms: i64,
    /// Absent in the body the Redis script completes; it appends the revision itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<u64>,
}

/// One model version, as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct StoredRef {
    pub model_id: String,
    pub version: String,
}

impl StoredAssignment {
    /// The assignment to store, before its revision is known.
    pub(crate) fn new(
        kind: &str,
        champion: (&str, &str),
        challenger: Option<(&str, &str)>,
        challenger_share: f64,
        now_ms: i64,
    ) -> Self {
        let to_ref = |(model_id, version): (&str, &str)| StoredRef {
            model_id: model_id.to_owned(),
            version: version.to_owned(),
        };
        Self {
            kind: kind.to_owned(),
            champion: to_ref(champion),
            challenger: challenger.map(to_ref),
            challenger_share,
            activated_at_ms: now_ms,
            revision: None,
        }
    }

    pub(crate) fn into_assignment(self) -> Assignment {
        Assignment {
            kind: self.kind,
            champion: (self.champion.model_id, self.champion.version),
            challenger: self.challenger.map(|c| (c.model_id, c.version)),
            challenger_share: self.challenger_share,
            activated_at_ms: self.activated_at_ms,
            revision: self.revision.unwrap_or(0),
        }
    }
}
