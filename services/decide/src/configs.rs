//! The tenants' decision configurations as the replicas hold them: versions stored in the store
//! (so every replica, explanation and replay finds the version a decision used), the active
//! one per tenant compiled once and cached, `PutConfig` and `GetConfig`, and the mounted files
//! (a ConfigMap) re-read on every poll. A version is validated as a whole before it is
//! activated; an invalid one is refused with every error's path, and the previous version keeps
//! serving.

use std::{
    collections::{HashMap, HashSet},
    path::{Path, PathBuf},
    sync::{Arc, Mutex, PoisonError, RwLock},
    time::{Instant, SystemTime, UNIX_EPOCH},
};

use iee_api::decide::{
    ConfigError, DecideError, GetConfigRequest, GetConfigResponse, MAX_CONFIG_BYTES,
    PutConfigRequest, PutConfigResponse,
};
use iee_store::{ConfigActivation, DecisionConfigs, StoreError};

use crate::{
    config::{self, ConfigIssue, DecisionConfig},
    metrics::DecideMetrics,
    service::require,
};

/// Compiled versions other than the active ones kept for explanations and replays.
const KEPT_VERSIONS: usize = 64;

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

fn unavailable(err: StoreError) -> DecideError {
    DecideError::Unavailable(format!("configuration store: {err}"))
}

fn issue_to_proto(issue: ConfigIssue) -> ConfigError {
    ConfigError {
        path: issue.path,
        message: issue.message,
        line: issue.line,
        column: issue.column,
    }
}

/// Every tenant's configurations.
pub(crate) struct ConfigSet {
    store: Arc<dyn DecisionConfigs>,
    metrics: DecideMetrics,
    /// The active version per tenant.
    active: RwLock<HashMap<String, Arc<DecisionConfig>>>,
    /// Tenants known to have none, and when that was last checked.
    absent: Mutex<HashMap<String, Instant>>,
    /// Other compiled versions, by `(tenant, version)`.
    versions: Mutex<HashMap<(String, String), Arc<DecisionConfig>>>,
    /// The mounted file or directory, if any.
    path: Option<PathBuf>,
    /// Tenants configured from `path`, with the version their file had at the last read.
    files: Mutex<HashMap<String, String>>,
    /// How long a tenant without configuration is remembered as such.
    absent_for: std::time::Duration,
}

impl ConfigSet {
    /// A set over `store`, with mounted configurations under `path` (if any).
    pub(crate) fn new(
        store: Arc<dyn DecisionConfigs>,
        path: Option<PathBuf>,
        metrics: DecideMetrics,
        poll: std::time::Duration,
    ) -> Self {
        Self {
            store,
            metrics,
            active: RwLock::new(HashMap::new()),
            absent: Mutex::new(HashMap::new()),
            versions: Mutex::new(HashMap::new()),
            path,
            files: Mutex::new(HashMap::new()),
            absent_for: poll,
        }
    }

    /// The tenant's active configuration.
    pub(crate) async fn active(&self, tenant_id: &str) -> Result<Arc<DecisionConfig>, DecideError> {
        if let Some(c) = self
            .active
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(tenant_id)
        {
            return Ok(c.clone());
        }
        let none = || {
            DecideError::NotFound(format!(
                "tenant {tenant_id:?} has no decision configuration (PutConfig or decide.config_path)"
            ))
        };
        if let Some(checked) = lock(&self.absent).get(tenant_id)
            && checked.elapsed() < self.absent_for
        {
            return Err(none());
        }
        let found = self
            .store
            .active_configs(&[tenant_id.to_owned()])
            .await
            .map_err(unavailable)?
            .pop()
            .flatten();
        let Some(active) = found else {
            lock(&self.absent).insert(tenant_id.to_owned(), Instant::now());
            return Err(none());
        };
        let compiled = self.load(tenant_id, &active.version).await?;
        self.install(compiled.clone());
        Ok(compiled)
    }

    /// One version of the tenant's configuration (the active one or any stored one).
    pub(crate) async fn version(
        &self,
        tenant_id: &str,
        version: &str,
    ) -> Result<Arc<DecisionConfig>, DecideError> {
        if let Ok(active) = self.active(tenant_id).await
            && active.version == version
        {
            return Ok(active);
        }
        let key = (tenant_id.to_owned(), version.to_owned());
        if let Some(c) = lock(&self.versions).get(&key) {
            return Ok(c.clone());
        }
        let compiled = self.load(tenant_id, version).await?;
        let mut versions = lock(&self.versions);
        if versions.len() >= KEPT_VERSIONS {
            versions.clear();
        }
        versions.insert(key, compiled.clone());
        Ok(compiled)
    }

    /// Reads and compiles a stored version.
    async fn load(
        &self,
        tenant_id: &str,
        version: &str,
    ) -> Result<Arc<DecisionConfig>, DecideError> {
        let stored = self
            .store
            .get_config(tenant_id, version)
            .await
            .map_err(unavailable)?
            .ok_or_else(|| {
                DecideError::NotFound(format!(
                    "configuration version {version:?} of tenant {tenant_id:?}"
                ))
            })?;
        config::compile(tenant_id, &stored.yaml)
            .map(Arc::new)
            .map_err(|issues| {
                DecideError::Internal(format!(
                    "stored configuration {version} of {tenant_id} no longer compiles: {}",
                    issues.first().map(ToString::to_string).unwrap_or_default()
                ))
            })
    }

    fn install(&self, compiled: Arc<DecisionConfig>) {
        lock(&self.absent).remove(&compiled.tenant_id);
        self.active
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(compiled.tenant_id.clone(), compiled);
    }

    /// Whether the tenant is configured from a mounted file.
    fn file_managed(&self, tenant_id: &str) -> bool {
        lock(&self.files).contains_key(tenant_id)
    }

    /// Handles `GetConfig`.
    pub(crate) async fn get(
        &self,
        request: GetConfigRequest,
    ) -> Result<GetConfigResponse, DecideError> {
        require("tenant_id", &request.tenant_id)?;
        let active = self
            .store
            .active_configs(std::slice::from_ref(&request.tenant_id))
            .await
            .map_err(unavailable)?
            .pop()
            .flatten();
        let version = if request.version.is_empty() {
            match &active {
                Some(a) => a.version.clone(),
                None => {
                    return Err(DecideError::NotFound(format!(
                        "tenant {:?} has no decision configuration",
                        request.tenant_id
                    )));
                }
            }
        } else {
            request.version.clone()
        };
        let stored = self
            .store
            .get_config(&request.tenant_id, &version)
            .await
            .map_err(unavailable)?
            .ok_or_else(|| DecideError::NotFound(format!("configuration version {version:?}")))?;
        let is_active = active.as_ref().is_some_and(|a| a.version == version);
        let at_ms = match &active {
            Some(a) if is_active => a.activated_at_ms,
            _ => stored.created_at_ms,
        };
        Ok(GetConfigResponse {
            yaml: stored.yaml,
            version,
            active: is_active,
            updated_at: Some(prost_types::Timestamp {
                seconds: at_ms.div_euclid(1000),
                nanos: (at_ms.rem_euclid(1000) * 1_000_000) as i32,
            }),
            file_managed: self.file_managed(&request.tenant_id),
        })
    }

    /// Handles `PutConfig`.
    pub(crate) async fn put(
        &self,
        request: PutConfigRequest,
    ) -> Result<PutConfigResponse, DecideError> {
        require("tenant_id", &request.tenant_id)?;
        if request.yaml.is_empty() {
            return Err(DecideError::invalid("yaml", "required"));
        }
        if request.yaml.len() > MAX_CONFIG_BYTES {
            return Err(DecideError::invalid("yaml", "larger than 4 MiB"));
        }
        if self.file_managed(&request.tenant_id) {
            return Err(DecideError::FailedPrecondition(format!(
                "tenant {:?} is configured from a mounted file; change the file instead",
                request.tenant_id
            )));
        }
        let compiled = match config::compile(&request.tenant_id, &request.yaml) {
            Ok(c) => c,
            Err(issues) => {
                self.metrics.config("rejected");
                return Ok(PutConfigResponse {
                    version: String::new(),
                    errors: issues.into_iter().map(issue_to_proto).collect(),
                });
            }
        };
        if request.validate_only {
            return Ok(PutConfigResponse::default());
        }
        let expected =
            (!request.expected_version.is_empty()).then_some(request.expected_version.as_str());
        let version = self.activate(compiled, expected).await?;
        Ok(PutConfigResponse {
            version,
            errors: Vec::new(),
        })
    }

    /// Stores and activates a compiled version; returns it.
    async fn activate(
        &self,
        compiled: DecisionConfig,
        expected: Option<&str>,
    ) -> Result<String, DecideError> {
        let tenant = compiled.tenant_id.clone();
        let version = compiled.version.clone();
        match self
            .store
            .put_config(&tenant, &version, &compiled.yaml, now_ms())
            .await
        {
            Ok(_) => {}
            Err(StoreError::Conflict(detail)) => {
                return Err(DecideError::Internal(format!(
                    "version collision: {detail}"
                )));
            }
            Err(err) => return Err(unavailable(err)),
        }
        match self
            .store
            .activate_config(&tenant, expected, &version, now_ms())
            .await
            .map_err(unavailable)?
        {
            ConfigActivation::Done { .. } => {
                self.metrics.config("activated");
                tracing::info!(tenant = %tenant, version = %version, "decision configuration activated");
                self.install(Arc::new(compiled));
                Ok(version)
            }
            ConfigActivation::Conflict { current } => Err(DecideError::Aborted(format!(
                "the active version is {}, not {}",
                current.as_deref().unwrap_or("(none)"),
                expected.unwrap_or("(none)")
            ))),
        }
    }

    /// Picks up changes: re-reads the mounted files, then activations made by other replicas.
    pub(crate) async fn refresh(&self) {
        if let Some(path) = self.path.clone() {
            self.read_files(&path).await;
        }
        let tenants: Vec<String> = self
            .active
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .keys()
            .cloned()
            .collect();
        if tenants.is_empty() {
            return;
        }
        let current = match self.store.active_configs(&tenants).await {
            Ok(c) => c,
            Err(err) => {
                tracing::warn!(error = %err, "checking active configurations failed");
                return;
            }
        };
        for (tenant, active) in tenants.iter().zip(current) {
            let Some(active) = active else { continue };
            let cached = self
                .active
                .read()
                .unwrap_or_else(PoisonError::into_inner)
                .get(tenant)
                .map(|c| c.version.clone());
            if cached.as_deref() != Some(active.version.as_str()) {
                match self.load(tenant, &active.version).await {
                    Ok(c) => {
                        self.metrics.config("reloaded");
                        self.install(c);
                    }
                    Err(err) => tracing::warn!(error = %err, tenant = %tenant, "reload failed"),
                }
            }
        }
    }

    /// Reads every configuration file under `path` and activates those that changed.
    async fn read_files(&self, path: &Path) {
        let files = match config_files(path) {
            Ok(files) => files,
            Err(err) => {
                tracing::warn!(error = %err, path = %path.display(), "decision configuration path unreadable");
                return;
            }
        };
        let mut seen = HashSet::new();
        for (file, yaml) in files {
            let tenant = config::declared_tenant(&yaml).unwrap_or_else(|| {
                file.file_stem()
                    .map(|s| s.to_string_lossy().into_owned())
                    .unwrap_or_default()
            });
            seen.insert(tenant.clone());
            let version = config::version_of(&yaml);
            if lock(&self.files).get(&tenant) == Some(&version) {
                continue;
            }
            match config::compile(&tenant, &yaml) {
                Ok(compiled) => match self.activate_file(compiled).await {
                    Ok(()) => {
                        lock(&self.files).insert(tenant, version);
                    }
                    Err(err) => {
                        tracing::warn!(error = %err, file = %file.display(), "activation failed; retrying")
                    }
                },
                Err(issues) => {
                    self.metrics.config("rejected");
                    // Remembered, so the same bad text is reported once.
                    lock(&self.files).insert(tenant.clone(), version);
                    for issue in &issues {
                        tracing::error!(file = %file.display(), tenant = %tenant, "{issue}");
                    }
                    tracing::error!(
                        file = %file.display(),
                        errors = issues.len(),
                        "decision configuration rejected; the previous version keeps serving"
                    );
                }
            }
        }
        lock(&self.files).retain(|tenant, _| seen.contains(tenant));
    }

    /// Activates a file's version over whatever is active.
    async fn activate_file(&self, compiled: DecisionConfig) -> Result<(), DecideError> {
        let tenant = compiled.tenant_id.clone();
        let current = self
            .store
            .active_configs(std::slice::from_ref(&tenant))
            .await
            .map_err(unavailable)?
            .pop()
            .flatten()
            .map(|a| a.version);
        self.activate(compiled, current.as_deref())
            .await
            .map(|_| ())
    }
}

/// The configuration files at `path`: the file itself, or the `*.yaml` / `*.yml` files of the
/// directory (hidden entries, such as a ConfigMap's `..data`, skipped), sorted by name.
fn config_files(path: &Path) -> std::io::Result<Vec<(PathBuf, String)>> {
    if path.is_file() {
        return Ok(vec![(path.to_owned(), std::fs::read_to_string(path)?)]);
    }
    let mut out = Vec::new();
    for entry in std::fs::read_dir(path)? {
        let file = entry?.path();
        let name = file
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let yaml = file.extension().is_some_and(|e| e == "yaml" || e == "yml");
        if name.starts_with('.') || !yaml || !file.is_file() {
            continue;
        }
        out.push((file.clone(), std::fs::read_to_string(&file)?));
    }
    out.sort();
    Ok(out)
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}
