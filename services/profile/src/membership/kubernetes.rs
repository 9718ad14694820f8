//! [`KubeMembership`]: profile membership from the EndpointSlices of the headless Service,
//! kept current by a list-then-watch loop against the Kubernetes API.

use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex, MutexGuard},
    time::{Duration, Instant},
};

use iee_store::{Member, Membership, StoreError};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::{
    Api, Client, Config, ResourceExt,
    api::{ListParams, WatchEvent, WatchParams},
};
use tokio_stream::StreamExt;

use super::view::{View, slice_members};
use crate::KubernetesMembershipConfig;

/// Where the service account's namespace is mounted in a pod.
const NAMESPACE_FILE: &str = "/var/run/secrets/kubernetes.io/serviceaccount/namespace";
/// How long the API server keeps one watch open; the loop lists again after each.
const WATCH_TIMEOUT_SECS: u32 = 60;
/// A watch silent for this long (no event, no close) counts as a dropped connection.
const WATCH_IDLE: Duration = Duration::from_secs(WATCH_TIMEOUT_SECS as u64 + 10);
/// Longest wait for a list answer.
const LIST_TIMEOUT: Duration = Duration::from_secs(10);
/// Retry delays after failures: doubling from the first to the last.
const BACKOFF_FIRST: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(5);
/// A watch that ends sooner than this without an error still waits before the next list, so a
/// server that closes watches at once is not hammered.
const WATCH_MIN_LIFETIME: Duration = Duration::from_secs(1);

/// Profile membership as the Kubernetes API lists it: the pods behind the profile headless
/// Service that are not terminating. `heartbeat` only remembers this node; `leave` drops it
/// from this node's view at once (Kubernetes marks its endpoint terminating anyway).
pub struct KubeMembership {
    shared: Arc<Shared>,
    _watch: AbortOnDrop,
}

impl std::fmt::Debug for KubeMembership {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubeMembership")
            .field("stale_after", &self.shared.stale_after)
            .finish_non_exhaustive()
    }
}

struct Shared {
    view: Mutex<View>,
    stale_after: Duration,
}

impl Shared {
    fn view(&self) -> MutexGuard<'_, View> {
        self.view
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Stops the watch loop when the membership is dropped.
struct AbortOnDrop(tokio::task::AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl KubeMembership {
    /// Builds the client (in-cluster unless `config.api_url` is set) and starts watching. Must
    /// be called within a Tokio runtime. Fails only on an unusable configuration; an API server
    /// that cannot be reached makes `members()` fail until a list succeeds.
    pub fn connect(config: &KubernetesMembershipConfig) -> Result<Self, StoreError> {
        // The ring provider, as everywhere in IEE; a no-op when one is installed already.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client_config = if config.api_url.is_empty() {
            Config::incluster().map_err(|err| {
                StoreError::Config(format!(
                    "profile.kubernetes: no in-cluster Kubernetes configuration ({err}); set \
                     profile.kubernetes.api_url outside a cluster"
                ))
            })?
        } else {
            let url = config
                .api_url
                .parse()
                .map_err(|err| StoreError::Config(format!("profile.kubernetes.api_url: {err}")))?;
            Config::new(url)
        };
        let client = Client::try_from(client_config)
            .map_err(|err| StoreError::Config(format!("profile.kubernetes: {err}")))?;
        let namespace = resolve_namespace(&config.namespace);
        let api: Api<EndpointSlice> = Api::namespaced(client, &namespace);
        let shared = Arc::new(Shared {
            view: Mutex::new(View::default()),
            stale_after: Duration::from_millis(config.stale_after_ms),
        });
        let watch = Watch {
            api,
            selector: format!("kubernetes.io/service-name={}", config.service),
            port_name: config.port_name.clone(),
            shared: shared.clone(),
        };
        tracing::info!(
            namespace = %namespace,
            service = %config.service,
            "profile membership from the Kubernetes API"
        );
        let task = tokio::spawn(watch.run());
        Ok(Self {
            shared,
            _watch: AbortOnDrop(task.abort_handle()),
        })
    }
}

/// The configured namespace, else the pod's own, else `default`.
fn resolve_namespace(configured: &str) -> String {
    if !configured.is_empty() {
        return configured.to_owned();
    }
    std::fs::read_to_string(NAMESPACE_FILE)
        .ok()
        .map(|ns| ns.trim().to_owned())
        .filter(|ns| !ns.is_empty())
        .unwrap_or_else(|| "default".to_owned())
}

#[async_trait::async_trait]
impl Membership for KubeMembership {
    async fn heartbeat(
        &self,
        node_id: &str,
        _address: &str,
        _ttl: Duration,
    ) -> Result<(), StoreError> {
        self.shared.view().heartbeat(node_id);
        Ok(())
    }

    async fn leave(&self, node_id: &str) -> Result<(), StoreError> {
        self.shared.view().leave(node_id);
        Ok(())
    }

    async fn members(&self) -> Result<Vec<Member>, StoreError> {
        self.shared
            .view()
            .members(Instant::now(), self.shared.stale_after)
    }
}

/// The list-then-watch loop.
struct Watch {
    api: Api<EndpointSlice>,
    selector: String,
    port_name: String,
    shared: Arc<Shared>,
}

impl Watch {
    async fn run(self) {
        let mut backoff = BACKOFF_FIRST;
        let mut first_list = true;
        loop {
            let version = match self.list().await {
                Ok((version, slices)) => {
                    let members: usize = slices.values().map(Vec::len).sum();
                    let was_failing = {
                        let mut view = self.shared.view();
                        let was_failing = view.is_failing();
                        view.relisted(slices);
                        was_failing
                    };
                    if first_list {
                        tracing::info!(members, "kubernetes membership listed");
                        first_list = false;
                    } else if was_failing {
                        tracing::info!(members, "kubernetes membership watch recovered");
                    }
                    version
                }
                Err(err) => {
                    self.failed(&err);
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(BACKOFF_MAX);
                    continue;
                }
            };
            let started = Instant::now();
            let result = self.watch(&version).await;
            // Only a watch that lasted resets the backoff: a list that works followed by a watch
            // that fails or ends at once must not loop at full speed.
            let lasted = started.elapsed() >= WATCH_MIN_LIFETIME;
            if lasted {
                backoff = BACKOFF_FIRST;
            }
            match result {
                // The server closed the watch (its timeout): list again, which also covers any
                // change missed in between.
                Ok(()) if lasted => {}
                Ok(()) => {
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(BACKOFF_MAX);
                }
                Err(err) => {
                    self.failed(&err);
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(BACKOFF_MAX);
                }
            }
        }
    }

    /// Lists every slice of the Service: the list's resource version and each slice's members.
    async fn list(&self) -> Result<(String, BTreeMap<String, Vec<Member>>), String> {
        let params = ListParams::default().labels(&self.selector);
        let list = tokio::time::timeout(LIST_TIMEOUT, self.api.list(&params))
            .await
            .map_err(|_| format!("listing EndpointSlices took over {LIST_TIMEOUT:?}"))?
            .map_err(|err| format!("listing EndpointSlices: {err}"))?;
        let version = list.metadata.resource_version.clone().unwrap_or_default();
        let slices = list
            .items
            .iter()
            .map(|slice| (slice.name_any(), slice_members(slice, &self.port_name)))
            .collect();
        Ok((version, slices))
    }

    /// Applies watch events from `version` on until the server closes the watch.
    async fn watch(&self, version: &str) -> Result<(), String> {
        let params = WatchParams::default()
            .labels(&self.selector)
            .timeout(WATCH_TIMEOUT_SECS);
        let stream = self
            .api
            .watch(&params, version)
            .await
            .map_err(|err| format!("watching EndpointSlices: {err}"))?;
        let mut stream = std::pin::pin!(stream);
        loop {
            let event = match tokio::time::timeout(WATCH_IDLE, stream.next()).await {
                Err(_) => {
                    return Err(format!(
                        "the EndpointSlice watch was silent for {WATCH_IDLE:?}"
                    ));
                }
                Ok(None) => return Ok(()),
                Ok(Some(Err(err))) => return Err(format!("watching EndpointSlices: {err}")),
                Ok(Some(Ok(event))) => event,
            };
            match event {
                WatchEvent::Added(slice) | WatchEvent::Modified(slice) => {
                    let members = slice_members(&slice, &self.port_name);
                    self.shared.view().upsert(slice.name_any(), members);
                }
                WatchEvent::Deleted(slice) => self.shared.view().remove(&slice.name_any()),
                WatchEvent::Bookmark(_) => {}
                // Typically 410 Gone (the version is too old): list again.
                WatchEvent::Error(status) => {
                    return Err(format!("the EndpointSlice watch ended: {status}"));
                }
            }
        }
    }

    /// Records a failure, logging only when a failing period starts.
    fn failed(&self, err: &str) {
        if self.shared.view().failed(Instant::now()) {
            tracing::warn!(
                error = %err,
                "kubernetes membership watch failing; retrying with backoff (members stay as \
                 last listed for profile.kubernetes.stale_after_ms)"
            );
        }
    }
}
