//! The models a replica serves: per tenant, the assignment of every kind (champion, optional
//! challenger) with their artifacts loaded and checked, refreshed when an activation changes
//! them. A version that cannot be loaded is refused and the kind keeps serving what it served.

use std::{
    collections::HashMap,
    sync::{Arc, RwLock},
};

use iee_api::predict::{ModelRole, PredictError};
use iee_store::{Assignment, ModelRegistry};
use xxhash_rust::xxh3::xxh3_64;

use crate::{
    builtin, features,
    metrics::PredictMetrics,
    model::{Kind, ModelArtifact},
};

/// A loaded, checked model version.
#[derive(Debug)]
pub(crate) struct LoadedModel {
    pub(crate) artifact: ModelArtifact,
    pub(crate) builtin: bool,
    /// The runnable graph of an ONNX model, built once per version.
    #[cfg(feature = "onnx")]
    pub(crate) onnx: Option<crate::model::onnx::LoadedOnnx>,
}

impl LoadedModel {
    /// Wraps a checked artifact, building what scoring it needs.
    pub(crate) fn new(artifact: ModelArtifact, builtin: bool) -> Result<Self, PredictError> {
        #[cfg(feature = "onnx")]
        let onnx = match &artifact.body {
            crate::model::ModelBody::Onnx(m) => {
                Some(m.load().map_err(|reason| PredictError::InvalidArgument {
                    field: "model".into(),
                    reason,
                })?)
            }
            _ => None,
        };
        Ok(Self {
            artifact,
            builtin,
            #[cfg(feature = "onnx")]
            onnx,
        })
    }
}

/// What serves one kind.
#[derive(Debug, Clone)]
pub(crate) struct Serving {
    pub(crate) champion: Arc<LoadedModel>,
    pub(crate) challenger: Option<(Arc<LoadedModel>, f64)>,
    pub(crate) revision: u64,
}

/// One tenant's models.
#[derive(Debug, Clone, Default)]
pub(crate) struct TenantModels {
    change_counter: u64,
    serving: HashMap<Kind, Serving>,
}

/// The replica's cache of every tenant it has served.
pub(crate) struct ModelCache {
    registry: Arc<dyn ModelRegistry>,
    tenants: RwLock<HashMap<String, Arc<TenantModels>>>,
    builtins: HashMap<Kind, Arc<LoadedModel>>,
    metrics: PredictMetrics,
}

fn parse_kind(kind: &str) -> Option<Kind> {
    Kind::ALL.into_iter().find(|k| k.as_str() == kind)
}

fn unavailable(err: iee_store::StoreError) -> PredictError {
    PredictError::Unavailable(format!("model registry unavailable: {err}"))
}

impl ModelCache {
    pub(crate) fn new(registry: Arc<dyn ModelRegistry>, metrics: PredictMetrics) -> Self {
        Self {
            registry,
            tenants: RwLock::new(HashMap::new()),
            builtins: builtin::all()
                .into_iter()
                .filter_map(|artifact| {
                    let kind = artifact.kind;
                    LoadedModel::new(artifact, true)
                        .ok()
                        .map(|model| (kind, Arc::new(model)))
                })
                .collect(),
            metrics,
        }
    }

    /// The built-in model of a kind.
    pub(crate) fn builtin(&self, kind: Kind) -> Arc<LoadedModel> {
        self.builtins[&kind].clone()
    }

    /// Loads and checks one stored version.
    pub(crate) async fn load_version(
        &self,
        tenant_id: &str,
        model_id: &str,
        version: &str,
    ) -> Result<Option<Arc<LoadedModel>>, PredictError> {
        if let Some(b) = self
            .builtins
            .values()
            .find(|b| b.artifact.model_id == model_id && b.artifact.version == version)
        {
            return Ok(Some(b.clone()));
        }
        let Some(bytes) = self
            .registry
            .get_version(tenant_id, model_id, version)
            .await
            .map_err(unavailable)?
        else {
            return Ok(None);
        };
        let artifact = ModelArtifact::from_json(&bytes, features::is_known).map_err(|e| {
            PredictError::InvalidArgument {
                field: "model".into(),
                reason: format!("{model_id} {version}: {e}"),
            }
        })?;
        Ok(Some(Arc::new(LoadedModel::new(artifact, false)?)))
    }

    /// The tenant's models, loaded on first use.
    pub(crate) async fn tenant(&self, tenant_id: &str) -> Result<Arc<TenantModels>, PredictError> {
        if let Some(models) = self.read().get(tenant_id) {
            return Ok(models.clone());
        }
        let counter = self
            .registry
            .assignments_changed(&[tenant_id.to_owned()])
            .await
            .map_err(unavailable)?
            .first()
            .copied()
            .unwrap_or(0);
        let models = Arc::new(self.load_tenant(tenant_id, counter, None).await?);
        self.write().insert(tenant_id.to_owned(), models.clone());
        Ok(models)
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<String, Arc<TenantModels>>> {
        self.tenants
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<String, Arc<TenantModels>>> {
        self.tenants
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Loads every assignment of a tenant. A version that fails to load keeps the kind on what
    /// `previous` served (or the built-in model).
    async fn load_tenant(
        &self,
        tenant_id: &str,
        change_counter: u64,
        previous: Option<&TenantModels>,
    ) -> Result<TenantModels, PredictError> {
        let assignments = self
            .registry
            .assignments(tenant_id)
            .await
            .map_err(unavailable)?;
        let mut serving = HashMap::new();
        for assignment in assignments {
            let Some(kind) = parse_kind(&assignment.kind) else {
                continue;
            };
            match self.load_assignment(tenant_id, kind, &assignment).await {
                Ok(s) => {
                    serving.insert(kind, s);
                }
                Err(err) => {
                    self.metrics.model_load_failures.inc();
                    tracing::error!(
                        tenant = tenant_id,
                        kind = kind.as_str(),
                        error = %err,
                        "activated model refused; the kind keeps serving its previous model"
                    );
                    if let Some(s) = previous.and_then(|p| p.serving.get(&kind)) {
                        serving.insert(kind, s.clone());
                    }
                }
            }
        }
        Ok(TenantModels {
            change_counter,
            serving,
        })
    }

    async fn load_assignment(
        &self,
        tenant_id: &str,
        kind: Kind,
        assignment: &Assignment,
    ) -> Result<Serving, PredictError> {
        let load = |(model_id, version): &(String, String)| {
            let (model_id, version) = (model_id.clone(), version.clone());
            async move {
                match self.load_version(tenant_id, &model_id, &version).await? {
                    Some(model) if model.artifact.kind == kind => Ok(model),
                    Some(_) => Err(PredictError::InvalidArgument {
                        field: "model".into(),
                        reason: format!("{model_id} {version} is not a {} model", kind.as_str()),
                    }),
                    None => Err(PredictError::NotFound(format!(
                        "model {model_id} version {version}"
                    ))),
                }
            }
        };
        let champion = load(&assignment.champion).await?;
        let challenger = match &assignment.challenger {
            Some(c) => Some((load(c).await?, assignment.challenger_share)),
            None => None,
        };
        Ok(Serving {
            champion,
            challenger,
            revision: assignment.revision,
        })
    }

    /// Reloads the tenants whose assignments changed since they were loaded.
    pub(crate) async fn refresh(&self) -> Result<usize, PredictError> {
        let cached: Vec<(String, Arc<TenantModels>)> = self
            .read()
            .iter()
            .map(|(t, m)| (t.clone(), m.clone()))
            .collect();
        if cached.is_empty() {
            return Ok(0);
        }
        let names: Vec<String> = cached.iter().map(|(t, _)| t.clone()).collect();
        let counters = self
            .registry
            .assignments_changed(&names)
            .await
            .map_err(unavailable)?;
        let mut reloaded = 0;
        for ((tenant, models), counter) in cached.into_iter().zip(counters) {
            if counter == models.change_counter {
                continue;
            }
            let fresh = self.load_tenant(&tenant, counter, Some(&models)).await?;
            self.write().insert(tenant, Arc::new(fresh));
            reloaded += 1;
        }
        Ok(reloaded)
    }

    /// The model serving `kind` for a customer, and its role. Routing to a challenger is a
    /// deterministic salted hash of the customer, so a customer keeps its model.
    pub(crate) fn choose(
        &self,
        models: &TenantModels,
        kind: Kind,
        tenant_id: &str,
        customer_key: &str,
    ) -> (Arc<LoadedModel>, ModelRole) {
        let Some(serving) = models.serving.get(&kind) else {
            return (self.builtin(kind), ModelRole::Champion);
        };
        if let Some((challenger, share)) = &serving.challenger {
            let mut bytes = Vec::with_capacity(tenant_id.len() + customer_key.len() + 32);
            bytes.extend_from_slice(b"iee-challenger\x1f");
            bytes.extend_from_slice(tenant_id.as_bytes());
            bytes.push(0x1f);
            bytes.extend_from_slice(kind.as_str().as_bytes());
            bytes.push(0x1f);
            bytes.extend_from_slice(customer_key.as_bytes());
            let point = (xxh3_64(&bytes) >> 11) as f64 / (1u64 << 53) as f64;
            if point < *share {
                return (challenger.clone(), ModelRole::Challenger);
            }
        }
        (serving.champion.clone(), ModelRole::Champion)
    }

    /// The serving state of every kind (for ListModels).
    pub(crate) fn serving(&self, models: &TenantModels, kind: Kind) -> Option<Serving> {
        models.serving.get(&kind).cloned()
    }
}
