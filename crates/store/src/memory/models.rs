//! The model registry in process memory, with the Redis registry's semantics: immutable
//! versions, compare-and-set activation, a per-tenant change counter.

use std::collections::{BTreeMap, HashMap};

use super::{MemoryStore, lock};
use crate::{
    Activation, Assignment, ModelRegistry, ModelVersionMeta, StoreError,
    models::{StoredAssignment, sort_versions},
};

/// Every tenant's registry, by tenant id.
pub(super) type Registries = HashMap<String, TenantModels>;

/// One tenant's registry.
#[derive(Default)]
pub(super) struct TenantModels {
    /// `(model_id, version)` → (metadata, artifact).
    versions: HashMap<(String, String), (ModelVersionMeta, Vec<u8>)>,
    /// Kind → its assignment.
    assignments: BTreeMap<String, Assignment>,
    /// Bumped with every assignment change.
    changes: u64,
}

#[async_trait::async_trait]
impl ModelRegistry for MemoryStore {
    async fn put_version(
        &self,
        tenant_id: &str,
        meta: &ModelVersionMeta,
        artifact: &[u8],
    ) -> Result<bool, StoreError> {
        let mut registries = lock(&self.models);
        let tenant = registries.entry(tenant_id.to_owned()).or_default();
        let key = (meta.model_id.clone(), meta.version.clone());
        if let Some((_, stored)) = tenant.versions.get(&key) {
            return if stored == artifact {
                Ok(false)
            } else {
                Err(StoreError::Conflict(format!(
                    "model {} version {} is already stored with different contents",
                    meta.model_id, meta.version
                )))
            };
        }
        tenant
            .versions
            .insert(key, (meta.clone(), artifact.to_vec()));
        Ok(true)
    }

    async fn get_version(
        &self,
        tenant_id: &str,
        model_id: &str,
        version: &str,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        let registries = lock(&self.models);
        Ok(registries.get(tenant_id).and_then(|tenant| {
            tenant
                .versions
                .get(&(model_id.to_owned(), version.to_owned()))
                .map(|(_, artifact)| artifact.clone())
        }))
    }

    async fn list_versions(&self, tenant_id: &str) -> Result<Vec<ModelVersionMeta>, StoreError> {
        let mut versions: Vec<ModelVersionMeta> = lock(&self.models)
            .get(tenant_id)
            .map(|tenant| tenant.versions.values().map(|(m, _)| m.clone()).collect())
            .unwrap_or_default();
        sort_versions(&mut versions);
        Ok(versions)
    }

    async fn assignments(&self, tenant_id: &str) -> Result<Vec<Assignment>, StoreError> {
        Ok(lock(&self.models)
            .get(tenant_id)
            .map(|tenant| tenant.assignments.values().cloned().collect())
            .unwrap_or_default())
    }

    async fn activate(
        &self,
        tenant_id: &str,
        kind: &str,
        champion: (&str, &str),
        challenger: Option<(&str, &str)>,
        challenger_share: f64,
        expected_revision: u64,
        now_ms: i64,
    ) -> Result<Activation, StoreError> {
        let mut registries = lock(&self.models);
        let tenant = registries.entry(tenant_id.to_owned()).or_default();
        let previous = tenant.assignments.get(kind).cloned();
        let revision = previous.as_ref().map_or(0, |a| a.revision);
        if expected_revision != 0 && expected_revision != revision {
            return Ok(Activation::Conflict {
                current_revision: revision,
            });
        }
        let mut current =
            StoredAssignment::new(kind, champion, challenger, challenger_share, now_ms)
                .into_assignment();
        current.revision = revision + 1;
        tenant.assignments.insert(kind.to_owned(), current.clone());
        tenant.changes += 1;
        Ok(Activation::Done { current, previous })
    }

    async fn assignments_changed(&self, tenant_ids: &[String]) -> Result<Vec<u64>, StoreError> {
        let registries = lock(&self.models);
        Ok(tenant_ids
            .iter()
            .map(|id| registries.get(id).map_or(0, |tenant| tenant.changes))
            .collect())
    }
}
