//! The prediction service's operations: `Score`, `ListModels`, `ActivateModel` and
//! `RegisterModel`.

use std::{
    sync::Arc,
    time::{Duration, SystemTime},
};

use iee_api::{
    pb::common::CustomerRef,
    predict::*,
    profile::{GetProfileRequest, ProfileApi, ProfileClient},
    shard::customer_key,
};
use iee_store::{Activation, ModelRegistry, ModelVersionMeta};
use rand::{RngCore, SeedableRng, rngs::SmallRng};
use xxhash_rust::xxh3::xxh3_64;

use crate::{
    PredictConfig, features,
    learner::Learner,
    metrics::PredictMetrics,
    model::{Kind, ModelArtifact, ModelBody},
    registry::{LoadedModel, ModelCache},
    scoring,
};

/// The prediction service of one replica.
pub(crate) struct Predictor {
    pub(crate) config: PredictConfig,
    pub(crate) cache: ModelCache,
    pub(crate) registry: Arc<dyn ModelRegistry>,
    pub(crate) profiles: ProfileClient,
    pub(crate) learner: Arc<Learner>,
    pub(crate) metrics: PredictMetrics,
}

fn invalid(field: impl Into<String>, reason: impl Into<String>) -> PredictError {
    PredictError::InvalidArgument {
        field: field.into(),
        reason: reason.into(),
    }
}

fn check_tenant(tenant: &str, field: &str) -> Result<(), PredictError> {
    let ok = (1..=64).contains(&tenant.len())
        && tenant
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(invalid(field, "is required: 1-64 characters of [a-z0-9_-]"))
    }
}

fn kind_of(kind: Kind) -> ModelKind {
    match kind {
        Kind::Churn => ModelKind::Churn,
        Kind::Propensity => ModelKind::Propensity,
        Kind::LifetimeValue => ModelKind::LifetimeValue,
        Kind::Satisfaction => ModelKind::Satisfaction,
    }
}

fn kind_from(kind: ModelKind) -> Option<Kind> {
    match kind {
        ModelKind::Churn => Some(Kind::Churn),
        ModelKind::Propensity => Some(Kind::Propensity),
        ModelKind::LifetimeValue => Some(Kind::LifetimeValue),
        ModelKind::Satisfaction => Some(Kind::Satisfaction),
        ModelKind::Unspecified => None,
    }
}

fn role_name(role: ModelRole) -> &'static str {
    match role {
        ModelRole::Challenger => "challenger",
        _ => "champion",
    }
}

fn served(model: &LoadedModel, role: ModelRole) -> ServedModel {
    ServedModel {
        model_id: model.artifact.model_id.clone(),
        version: model.artifact.version.clone(),
        kind: kind_of(model.artifact.kind) as i32,
        role: role as i32,
    }
}

fn timestamp(ms: i64) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: ms.div_euclid(1000),
        nanos: i32::try_from(ms.rem_euclid(1000) * 1_000_000).unwrap_or(0),
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Checks the explicit features of a request.
fn check_features(features: &FeatureVector) -> Result<(), PredictError> {
    for (name, value) in &features.numeric {
        if !value.is_finite() {
            return Err(invalid(
                format!("features.numeric[{name:?}]"),
                "must be a finite number",
            ));
        }
    }
    for (name, value) in &features.categorical {
        if value.len() > 128 {
            return Err(invalid(
                format!("features.categorical[{name:?}]"),
                "must be at most 128 characters",
            ));
        }
    }
    Ok(())
}

fn check_score_request(request: &ScoreRequest) -> Result<(), PredictError> {
    let customer = request.customer.clone().unwrap_or_default();
    check_tenant(&customer.tenant_id, "customer.tenant_id")?;
    if request.churn.is_none()
        && request.propensity.is_none()
        && request.lifetime_value.is_none()
        && request.satisfaction.is_none()
    {
        return Err(invalid(
            "churn",
            "no score requested: set churn, propensity, lifetime_value or satisfaction",
        ));
    }
    if request.top_features > 20 {
        return Err(invalid("top_features", "must be within 0..=20"));
    }
    if request.features.is_none()
        && customer.customer_id.is_empty()
        && customer.anonymous_id.is_empty()
    {
        return Err(invalid(
            "customer.customer_id",
            "customer_id or anonymous_id is required unless features are given",
        ));
    }
    if let Some(features) = &request.features {
        check_features(features)?;
    }
    if let Some(p) = &request.propensity {
        if p.action_ids.is_empty() || p.action_ids.len() > 1000 {
            return Err(invalid(
                "propensity.action_ids",
                "1-1000 candidate actions are required",
            ));
        }
        if let Some(i) = p
            .action_ids
            .iter()
            .position(|a| a.is_empty() || a.len() > 128)
        {
            return Err(invalid(
                format!("propensity.action_ids[{i}]"),
                "must be 1-128 characters",
            ));
        }
        if p.touchpoint.len() > 128 {
            return Err(invalid(
                "propensity.touchpoint",
                "must be at most 128 characters",
            ));
        }
    }
    if let Some(h) = request
        .lifetime_value
        .as_ref()
        .and_then(|l| l.horizon.as_ref())
        && !(86_400..=3_650 * 86_400).contains(&h.seconds)
    {
        return Err(invalid(
            "lifetime_value.horizon",
            "must be within 1 day and 10 years",
        ));
    }
    Ok(())
}

impl Predictor {
    /// The features of the request's customer: explicit ones, or built from its profile.
    async fn features(
        &self,
        request: &ScoreRequest,
        customer: &CustomerRef,
    ) -> Result<(FeatureVector, u64), PredictError> {
        if let Some(features) = &request.features {
            return Ok((features.clone(), 0));
        }
        let started = std::time::Instant::now();
        let read = tokio::time::timeout(
            Duration::from_millis(self.config.profile_timeout_ms),
            self.profiles.get_profile(GetProfileRequest {
                customer: Some(customer.clone()),
                min_applied_offset: String::new(),
            }),
        )
        .await;
        self.metrics
            .profile_seconds
            .observe(started.elapsed().as_secs_f64());
        let response = match read {
            Ok(Ok(response)) => response,
            Ok(Err(iee_api::profile::ProfileError::InvalidArgument { field, reason })) => {
                return Err(invalid(field, reason));
            }
            Ok(Err(err)) => {
                return Err(PredictError::Unavailable(format!(
                    "profile unavailable: {err}"
                )));
            }
            Err(_) => {
                return Err(PredictError::Unavailable(format!(
                    "profile not read within {} ms",
                    self.config.profile_timeout_ms
                )));
            }
        };
        match (response.found, response.profile) {
            (true, Some(profile)) => Ok((
                features::from_profile(&profile, SystemTime::now()),
                profile.version,
            )),
            _ => Ok((FeatureVector::default(), 0)),
        }
    }

    fn propensities(
        &self,
        who: (&str, &str),
        (model, role): (&LoadedModel, ModelRole),
        query: &PropensityQuery,
        features: &FeatureVector,
        seed: u64,
        top: usize,
    ) -> Vec<PropensityScore> {
        let (tenant_id, customer) = who;
        let ModelBody::Propensity(artifact_model) = &model.artifact.body else {
            return Vec::new();
        };
        let learned = self
            .learner
            .model(tenant_id, &model.artifact.model_id, artifact_model);
        let context = features::context_features(query.channel, &query.touchpoint, &query.context);
        let x = features::merge(features.clone(), context);
        // The seed names the draw: the same seed, customer and actions give the same samples.
        let mut rng = SmallRng::seed_from_u64(seed ^ xxh3_64(customer.as_bytes()));
        let served = served(model, role);
        query
            .action_ids
            .iter()
            .map(|action| {
                let estimate = learned.score(action, &x, query.sample.then_some(&mut rng));
                PropensityScore {
                    action_id: action.clone(),
                    mean: estimate.mean,
                    sample: estimate.sample,
                    stddev: estimate.stddev,
                    observations: estimate.observations,
                    model: Some(served.clone()),
                    top_features: learned.top_contributions(&x, &estimate.contributions, top),
                }
            })
            .collect()
    }
}

#[async_trait::async_trait]
impl PredictApi for Predictor {
    async fn score(&self, request: ScoreRequest) -> Result<ScoreResponse, PredictError> {
        check_score_request(&request)?;
        let customer = request.customer.clone().unwrap_or_default();
        let tenant_id = customer.tenant_id.clone();
        let key = if customer.customer_id.is_empty() && customer.anonymous_id.is_empty() {
            String::new()
        } else {
            customer_key(&customer.customer_id, &customer.anonymous_id)
        };
        let (features, profile_version) = self.features(&request, &customer).await?;
        let models = self.cache.tenant(&tenant_id).await?;
        let top = request.top_features as usize;
        let mut response = ScoreResponse {
            profile_version,
            scored_at: Some(SystemTime::now().into()),
            ..ScoreResponse::default()
        };
        let choose = |kind: Kind| {
            let (model, role) = self.cache.choose(&models, kind, &tenant_id, &key);
            self.metrics.scored(kind.as_str(), role_name(role));
            (model, role)
        };
        let failed = |model: &LoadedModel, reason: String| {
            PredictError::Internal(format!(
                "model {} {} failed to score: {reason}",
                model.artifact.model_id, model.artifact.version
            ))
        };
        if request.churn.is_some() {
            let (model, role) = choose(Kind::Churn);
            response.churn = scoring::churn_of(&model, &features, top)
                .map_err(|e| failed(&model, e))?
                .map(|mut score| {
                    score.model = Some(served(&model, role));
                    score
                });
        }
        if request.satisfaction.is_some() {
            let (model, role) = choose(Kind::Satisfaction);
            response.satisfaction = scoring::satisfaction_of(&model, &features, top)
                .map_err(|e| failed(&model, e))?
                .map(|mut score| {
                    score.model = Some(served(&model, role));
                    score
                });
        }
        if let Some(query) = &request.lifetime_value {
            let (model, role) = choose(Kind::LifetimeValue);
            if let ModelBody::Clv(m) = &model.artifact.body {
                let horizon_days = query
                    .horizon
                    .as_ref()
                    .map_or(365.0, |h| h.seconds as f64 / 86_400.0);
                let mut score = scoring::lifetime_value(m, &features, horizon_days, top);
                score.model = Some(served(&model, role));
                response.lifetime_value = Some(score);
            }
        }
        if let Some(query) = &request.propensity {
            let (model, role) = choose(Kind::Propensity);
            let seed = if query.seed != 0 {
                query.seed
            } else {
                rand::rng().next_u64() | 1
            };
            response.seed = seed;
            response.propensities = self.propensities(
                (&tenant_id, &key),
                (&model, role),
                query,
                &features,
                seed,
                top,
            );
        }
        if request.return_features {
            response.features = Some(features);
        }
        Ok(response)
    }

    async fn list_models(
        &self,
        request: ListModelsRequest,
    ) -> Result<ListModelsResponse, PredictError> {
        check_tenant(&request.tenant_id, "tenant_id")?;
        let page_size = match request.page_size {
            0 => 100,
            n @ 1..=1000 => n as usize,
            _ => return Err(invalid("page_size", "must be within 1..=1000")),
        };
        let offset: usize = if request.page_token.is_empty() {
            0
        } else {
            request
                .page_token
                .parse()
                .map_err(|_| invalid("page_token", "is not a token from a previous page"))?
        };
        let filter = ModelKind::try_from(request.kind).ok().and_then(kind_from);
        let models = self.cache.tenant(&request.tenant_id).await?;
        let mut assignments = Vec::new();
        let mut roles = std::collections::HashMap::new();
        for kind in Kind::ALL {
            let (champion, challenger, share, revision) = match self.cache.serving(&models, kind) {
                Some(s) => (
                    s.champion,
                    s.challenger.clone().map(|(c, _)| c),
                    s.challenger.map_or(0.0, |(_, share)| share),
                    s.revision,
                ),
                None => (self.cache.builtin(kind), None, 0.0, 0),
            };
            let reference = |m: &LoadedModel| ModelRef {
                model_id: m.artifact.model_id.clone(),
                version: m.artifact.version.clone(),
            };
            roles.insert(
                (
                    champion.artifact.model_id.clone(),
                    champion.artifact.version.clone(),
                ),
                ModelRole::Champion,
            );
            if let Some(c) = &challenger {
                roles.insert(
                    (c.artifact.model_id.clone(), c.artifact.version.clone()),
                    ModelRole::Challenger,
                );
            }
            assignments.push(ModelAssignment {
                kind: kind_of(kind) as i32,
                champion: Some(reference(&champion)),
                challenger: challenger.as_deref().map(reference),
                challenger_share: share,
                activated_at: None,
                revision,
            });
        }
        let mut all: Vec<Arc<LoadedModel>> = Kind::ALL
            .into_iter()
            .map(|k| self.cache.builtin(k))
            .collect();
        let versions = self
            .registry
            .list_versions(&request.tenant_id)
            .await
            .map_err(|e| PredictError::Unavailable(e.to_string()))?;
        for meta in versions {
            match self
                .cache
                .load_version(&request.tenant_id, &meta.model_id, &meta.version)
                .await
            {
                Ok(Some(model)) => all.push(model),
                Ok(None) => {}
                Err(err) => {
                    tracing::warn!(model = meta.model_id, version = meta.version, error = %err, "stored version unreadable; not listed")
                }
            }
        }
        all.retain(|m| filter.is_none_or(|k| m.artifact.kind == k));
        let next = offset + page_size;
        let next_page_token = if next < all.len() {
            next.to_string()
        } else {
            String::new()
        };
        let models = all
            .into_iter()
            .skip(offset)
            .take(page_size)
            .map(|m| {
                let a = &m.artifact;
                ModelInfo {
                    model: Some(ModelRef {
                        model_id: a.model_id.clone(),
                        version: a.version.clone(),
                    }),
                    kind: kind_of(a.kind) as i32,
                    description: a.description.clone(),
                    created_at: Some(timestamp(a.created_at_ms)),
                    feature_names: a.feature_names.clone(),
                    training_examples: a.training_examples,
                    metrics: a.metrics.iter().map(|(k, v)| (k.clone(), *v)).collect(),
                    builtin: m.builtin,
                    training_data: a
                        .training_data
                        .iter()
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect(),
                    role: roles
                        .get(&(a.model_id.clone(), a.version.clone()))
                        .copied()
                        .unwrap_or(ModelRole::Unspecified) as i32,
                }
            })
            .collect();
        Ok(ListModelsResponse {
            models,
            assignments,
            next_page_token,
        })
    }

    async fn activate_model(
        &self,
        request: ActivateModelRequest,
    ) -> Result<ActivateModelResponse, PredictError> {
        check_tenant(&request.tenant_id, "tenant_id")?;
        let tenant = &request.tenant_id;
        let champion_ref = request
            .champion
            .clone()
            .ok_or_else(|| invalid("champion", "is required"))?;
        let load = |field: &'static str, r: ModelRef| async move {
            self.cache
                .load_version(tenant, &r.model_id, &r.version)
                .await?
                .ok_or_else(|| {
                    PredictError::NotFound(format!(
                        "{field}: model {:?} version {:?} is not registered",
                        r.model_id, r.version
                    ))
                })
        };
        let champion = load("champion", champion_ref.clone()).await?;
        let kind = champion.artifact.kind;
        let servable = |m: &LoadedModel| match (&m.artifact.body, m.artifact.kind) {
            (ModelBody::Logistic(_), Kind::Churn)
            | (ModelBody::Softmax(_), Kind::Satisfaction)
            | (ModelBody::Clv(_), Kind::LifetimeValue)
            | (ModelBody::Propensity(_), Kind::Propensity) => true,
            #[cfg(feature = "onnx")]
            (ModelBody::Onnx(_), Kind::Churn | Kind::Satisfaction) => true,
            _ => false,
        };
        if !servable(&champion) {
            return Err(invalid(
                "champion",
                format!(
                    "a {} model of this type cannot be served (ONNX serves churn and \
                     satisfaction only)",
                    kind.as_str()
                ),
            ));
        }
        let challenger = match request.challenger.clone() {
            Some(r) => {
                let c = load("challenger", r.clone()).await?;
                if c.artifact.kind != kind || !servable(&c) {
                    return Err(invalid(
                        "challenger",
                        format!(
                            "is a {} model; the champion is a {} model",
                            c.artifact.kind.as_str(),
                            kind.as_str()
                        ),
                    ));
                }
                Some(r)
            }
            None => None,
        };
        let share = request.challenger_share;
        match &challenger {
            Some(_) if !(share > 0.0 && share < 1.0) => {
                return Err(invalid(
                    "challenger_share",
                    "must be within (0, 1) when a challenger is set",
                ));
            }
            None if share != 0.0 => {
                return Err(invalid(
                    "challenger_share",
                    "must be 0 without a challenger",
                ));
            }
            _ => {}
        }
        let activation = self
            .registry
            .activate(
                tenant,
                kind.as_str(),
                (&champion_ref.model_id, &champion_ref.version),
                challenger
                    .as_ref()
                    .map(|c| (c.model_id.as_str(), c.version.as_str())),
                share,
                request.expected_revision,
                now_ms(),
            )
            .await
            .map_err(|e| PredictError::Unavailable(e.to_string()))?;
        let (current, previous) = match activation {
            Activation::Done { current, previous } => (current, previous),
            Activation::Conflict { current_revision } => {
                return Err(PredictError::Aborted(format!(
                    "the {} assignment is at revision {current_revision}, not {}",
                    kind.as_str(),
                    request.expected_revision
                )));
            }
        };
        // This replica serves the new assignment at once; others within a refresh interval.
        if let Err(err) = self.cache.refresh().await {
            tracing::warn!(error = %err, "refresh after activation failed");
        }
        let to_pb = |a: iee_store::Assignment| ModelAssignment {
            kind: kind_of(kind) as i32,
            champion: Some(ModelRef {
                model_id: a.champion.0,
                version: a.champion.1,
            }),
            challenger: a
                .challenger
                .map(|(model_id, version)| ModelRef { model_id, version }),
            challenger_share: a.challenger_share,
            activated_at: Some(timestamp(a.activated_at_ms)),
            revision: a.revision,
        };
        Ok(ActivateModelResponse {
            assignment: Some(to_pb(current)),
            previous: previous.map(to_pb),
        })
    }

    async fn register_model(
        &self,
        request: RegisterModelRequest,
    ) -> Result<RegisterModelResponse, PredictError> {
        check_tenant(&request.tenant_id, "tenant_id")?;
        if request.artifact.is_empty() {
            return Err(invalid("artifact", "is required"));
        }
        if request.artifact.len() > MAX_ARTIFACT_BYTES {
            return Err(invalid(
                "artifact",
                format!(
                    "is {} bytes, more than {MAX_ARTIFACT_BYTES}",
                    request.artifact.len()
                ),
            ));
        }
        let artifact = ModelArtifact::from_json(&request.artifact, features::is_known).map_err(
            |e| match e {
                crate::model::ArtifactError::Invalid { field, reason } => {
                    invalid(format!("artifact.{field}"), reason)
                }
                other => invalid("artifact", other.to_string()),
            },
        )?;
        if artifact.model_id.starts_with("builtin-") {
            return Err(invalid(
                "artifact.model_id",
                "the builtin- prefix is reserved",
            ));
        }
        let meta = ModelVersionMeta {
            model_id: artifact.model_id.clone(),
            version: artifact.version.clone(),
            kind: artifact.kind.as_str().to_owned(),
            created_at_ms: artifact.created_at_ms,
        };
        let created = self
            .registry
            .put_version(&request.tenant_id, &meta, &request.artifact)
            .await
            .map_err(|e| match e {
                iee_store::StoreError::Conflict(message) => PredictError::AlreadyExists(message),
                other => PredictError::Unavailable(other.to_string()),
            })?;
        Ok(RegisterModelResponse {
            model: Some(ModelInfo {
                model: Some(ModelRef {
                    model_id: artifact.model_id.clone(),
                    version: artifact.version.clone(),
                }),
                kind: kind_of(artifact.kind) as i32,
                description: artifact.description.clone(),
                created_at: Some(timestamp(artifact.created_at_ms)),
                feature_names: artifact.feature_names.clone(),
                training_examples: artifact.training_examples,
                metrics: artifact.metrics.into_iter().collect(),
                training_data: artifact.training_data.into_iter().collect(),
                builtin: false,
                role: ModelRole::Unspecified as i32,
            }),
            created,
        })
    }
}
