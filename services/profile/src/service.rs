//! The profile service's operations: routing to the owning shard actor, validation, and the
//! signal stream.

use std::{
    collections::{HashMap, HashSet},
    sync::Arc,
    time::{Duration, SystemTime},
};

use iee_api::{
    pb::{common::CustomerRef, profile::*},
    profile::{ProfileApi, ProfileError, SignalStream},
    shard::{customer_key, shard_of},
};
use iee_store::ProfileKey;
use prost::Message;
use tokio::sync::{broadcast, mpsc, oneshot};
use tokio_stream::wrappers::ReceiverStream;

use crate::{
    ctx::{NodeCtx, SignalFeed},
    fold::offsets,
    ownership::{ShardHandle, ShardTable, read_table},
    shard::ShardMsg,
};

/// The profile service of one node.
pub(crate) struct ProfileService {
    pub(crate) ctx: Arc<NodeCtx>,
    pub(crate) table: ShardTable,
    pub(crate) shutdown: iee_runtime::Shutdown,
}

fn invalid(field: &str, reason: impl Into<String>) -> ProfileError {
    ProfileError::InvalidArgument {
        field: field.to_owned(),
        reason: reason.into(),
    }
}

fn valid_tenant(tenant: &str) -> bool {
    (1..=64).contains(&tenant.len())
        && tenant
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

/// The profile key of a request's customer, or the field that is wrong.
pub(crate) fn profile_key(customer: Option<&CustomerRef>) -> Result<ProfileKey, ProfileError> {
    let customer = customer.ok_or_else(|| invalid("customer", "is required"))?;
    if !valid_tenant(&customer.tenant_id) {
        return Err(invalid(
            "customer.tenant_id",
            "is required: 1-64 characters of [a-z0-9_-]",
        ));
    }
    for (field, value) in [
        ("customer.customer_id", &customer.customer_id),
        ("customer.anonymous_id", &customer.anonymous_id),
    ] {
        if value.len() > 256 {
            return Err(invalid(field, "must be at most 256 bytes"));
        }
    }
    if customer.customer_id.is_empty() && customer.anonymous_id.is_empty() {
        return Err(invalid(
            "customer.customer_id",
            "customer_id or anonymous_id is required",
        ));
    }
    Ok(ProfileKey {
        tenant_id: customer.tenant_id.clone(),
        key: customer_key(&customer.customer_id, &customer.anonymous_id),
    })
}

async fn answer<T>(rx: oneshot::Receiver<T>, wait: Duration) -> Result<T, ProfileError> {
    match tokio::time::timeout(wait, rx).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(_)) => Err(ProfileError::Unavailable(
            "the shard stopped while answering; retry".into(),
        )),
        Err(_) => Err(ProfileError::DeadlineExceeded(format!(
            "no answer within {} ms",
            wait.as_millis()
        ))),
    }
}

impl ProfileService {
    fn wait(&self) -> Duration {
        Duration::from_millis(self.ctx.config.max_read_wait_ms)
    }

    /// The owned shard serving `key`, or the redirect naming its owner.
    async fn route(&self, key: &ProfileKey) -> Result<Arc<ShardHandle>, ProfileError> {
        let shard = shard_of(&key.tenant_id, &key.key, self.ctx.shard_count);
        // Tenant and shard, never the customer key: spans carry no personal data.
        iee_telemetry::set_current_attribute("iee.tenant", key.tenant_id.clone());
        iee_telemetry::set_current_attribute("iee.shard", i64::from(shard));
        self.owned(shard).await
    }

    async fn owned(&self, shard: u32) -> Result<Arc<ShardHandle>, ProfileError> {
        if let Some(handle) = read_table(&self.table).get(&shard)
            && handle.ctx.serving()
        {
            return Ok(handle.clone());
        }
        let owners = self
            .ctx
            .stores
            .leases
            .owners(&[shard])
            .await
            .map_err(|e| ProfileError::Unavailable(format!("shard map unavailable: {e}")))?;
        match owners.into_iter().next().flatten() {
            Some(owner) if owner.node_id != self.ctx.node_id => Err(ProfileError::WrongOwner {
                shard,
                owner: owner.address,
                epoch: owner.epoch,
            }),
            _ => Err(ProfileError::NoOwner { shard }),
        }
    }

    /// Sends a customer-scoped request to the shard actor serving `key` and waits for the
    /// answer; returns the shard with it.
    async fn ask<T>(
        &self,
        key: ProfileKey,
        message: impl FnOnce(ProfileKey, oneshot::Sender<T>) -> ShardMsg,
    ) -> Result<(u32, T), ProfileError> {
        let handle = self.route(&key).await?;
        let shard = handle.ctx.shard;
        let (tx, rx) = oneshot::channel();
        handle
            .actor
            .cast(message(key, tx))
            .map_err(|_| ProfileError::NoOwner { shard })?;
        Ok((shard, answer(rx, self.wait()).await?))
    }
}

#[async_trait::async_trait]
impl ProfileApi for ProfileService {
    async fn get_profile(
        &self,
        request: GetProfileRequest,
    ) -> Result<GetProfileResponse, ProfileError> {
        let key = profile_key(request.customer.as_ref())?;
        let min_offset = if request.min_applied_offset.is_empty() {
            None
        } else if offsets::parse(&request.min_applied_offset).is_some() {
            Some(request.min_applied_offset.clone())
        } else {
            return Err(invalid(
                "min_applied_offset",
                format!(
                    "{:?} is not an offset from an ingest response",
                    request.min_applied_offset
                ),
            ));
        };
        let (shard, (mut profile, found)) = self
            .ask(key, |key, reply| ShardMsg::Get {
                key,
                min_offset,
                reply,
            })
            .await?;
        if !found {
            profile = Profile {
                customer: request.customer.clone(),
                shard,
                ..Profile::default()
            };
        }
        Ok(GetProfileResponse {
            profile: Some(profile),
            found,
            read_at: Some(SystemTime::now().into()),
        })
    }

    async fn erase_customer(
        &self,
        request: EraseCustomerRequest,
    ) -> Result<EraseCustomerResponse, ProfileError> {
        let key = profile_key(request.customer.as_ref())?;
        if request.reason.len() > 256 {
            return Err(invalid("reason", "must be at most 256 characters"));
        }
        let (shard, response) = self
            .ask(key, |key, reply| ShardMsg::Erase { key, reply })
            .await?;
        let response = response?;
        tracing::info!(
            shard,
            reason = request.reason,
            erased = response.erased,
            "customer erased"
        );
        Ok(response)
    }

    async fn reserve_contact(
        &self,
        request: ReserveContactRequest,
    ) -> Result<ReserveContactResponse, ProfileError> {
        let key = profile_key(request.customer.as_ref())?;
        let request = Box::new(request);
        let (_, verdict) = self
            .ask(key, |key, reply| ShardMsg::Reserve {
                key,
                request,
                reply,
            })
            .await?;
        Ok(verdict?)
    }

    async fn commit_contact(
        &self,
        request: CommitContactRequest,
    ) -> Result<CommitContactResponse, ProfileError> {
        let key = profile_key(request.customer.as_ref())?;
        if request.reservation_id.is_empty() {
            return Err(invalid("reservation_id", "is required"));
        }
        let request = Box::new(request);
        let (_, contact) = self
            .ask(key, |key, reply| ShardMsg::Commit {
                key,
                request,
                reply,
            })
            .await?;
        Ok(CommitContactResponse {
            contact: Some(contact?),
        })
    }

    async fn release_contact(
        &self,
        request: ReleaseContactRequest,
    ) -> Result<ReleaseContactResponse, ProfileError> {
        let key = profile_key(request.customer.as_ref())?;
        if request.reservation_id.is_empty() {
            return Err(invalid("reservation_id", "is required"));
        }
        let reservation_id = request.reservation_id;
        let (_, previous) = self
            .ask(key, |key, reply| ShardMsg::Release {
                key,
                reservation_id,
                reply,
            })
            .await?;
        Ok(ReleaseContactResponse {
            previous_state: previous as i32,
        })
    }

    async fn watch_signals(
        &self,
        request: WatchSignalsRequest,
    ) -> Result<SignalStream, ProfileError> {
        if !request.tenant_id.is_empty() && !valid_tenant(&request.tenant_id) {
            return Err(invalid(
                "tenant_id",
                "must be 1-64 characters of [a-z0-9_-]",
            ));
        }
        for shard in request.shards.iter().chain(request.start_after.keys()) {
            if *shard >= self.ctx.shard_count {
                return Err(invalid(
                    "shards",
                    format!(
                        "shard {shard} does not exist (shard_count is {})",
                        self.ctx.shard_count
                    ),
                ));
            }
            self.owned(*shard).await?;
        }
        // Subscribe before reading history, so nothing falls between the two.
        let live = self.ctx.signals.subscribe();
        let mut history = Vec::new();
        let mut resumed_at: HashMap<u32, String> = HashMap::new();
        for (shard, cursor) in &request.start_after {
            let store = &self.ctx.stores.shard_state;
            let unavailable = |e: iee_store::StoreError| ProfileError::Unavailable(e.to_string());
            // An empty cursor asks for the whole retained history: nothing to check.
            if !cursor.is_empty()
                && let Some(oldest) = store.oldest_signal(*shard).await.map_err(unavailable)?
                && offsets::is_after(&oldest, cursor)
            {
                return Err(ProfileError::OutOfRange(format!(
                    "shard {shard}: cursor {cursor} is older than the signal history (oldest {oldest})"
                )));
            }
            let mut after = cursor.clone();
            loop {
                let page = store
                    .read_signals(*shard, (!after.is_empty()).then_some(after.as_str()), 1000)
                    .await
                    .map_err(unavailable)?;
                let Some(last) = page.last() else { break };
                after = last.offset.clone();
                for entry in page {
                    let mut signal = Signal::decode(entry.payload.as_slice())
                        .map_err(|e| ProfileError::Internal(format!("bad signal entry: {e}")))?;
                    signal.cursor = entry.offset;
                    history.push(signal);
                }
            }
            resumed_at.insert(*shard, after);
        }
        let filter = Filter {
            tenant_id: request.tenant_id,
            kinds: request.kinds.into_iter().collect(),
            shards: request.shards.into_iter().collect(),
            table: self.table.clone(),
        };
        let (tx, rx) = mpsc::channel(256);
        tokio::spawn(pump(
            filter,
            history,
            resumed_at,
            live,
            tx,
            self.shutdown.clone(),
        ));
        Ok(Box::pin(ReceiverStream::new(rx)))
    }
}

struct Filter {
    tenant_id: String,
    kinds: HashSet<i32>,
    shards: HashSet<u32>,
    table: ShardTable,
}

impl Filter {
    fn wants(&self, signal: &Signal) -> bool {
        let tenant = signal
            .customer
            .as_ref()
            .map_or("", |c| c.tenant_id.as_str());
        (self.tenant_id.is_empty() || self.tenant_id == tenant)
            && (self.kinds.is_empty() || self.kinds.contains(&signal.kind))
            && (if self.shards.is_empty() {
                read_table(&self.table).contains_key(&signal.shard)
            } else {
                self.shards.contains(&signal.shard)
            })
    }

    fn watches(&self, shard: u32) -> bool {
        self.shards.is_empty() || self.shards.contains(&shard)
    }
}

type Item = Result<Signal, ProfileError>;

/// Feeds one watcher: its history first, then live signals, until the watcher goes away, a
/// watched shard moves, or the node shuts down.
async fn pump(
    filter: Filter,
    history: Vec<Signal>,
    resumed_at: HashMap<u32, String>,
    mut live: broadcast::Receiver<SignalFeed>,
    tx: mpsc::Sender<Item>,
    shutdown: iee_runtime::Shutdown,
) {
    for signal in history {
        if filter.wants(&signal) && tx.send(Ok(signal)).await.is_err() {
            return;
        }
    }
    loop {
        let feed = tokio::select! {
            () = shutdown.wait() => return,
            feed = live.recv() => feed,
        };
        match feed {
            Ok(SignalFeed::Signal(signal)) => {
                let seen = resumed_at
                    .get(&signal.shard)
                    .is_some_and(|at| !offsets::is_after(&signal.cursor, at));
                if !seen && filter.wants(&signal) && tx.send(Ok((*signal).clone())).await.is_err() {
                    return;
                }
            }
            Ok(SignalFeed::ShardLost(shard)) if filter.watches(shard) => {
                let _ = tx
                    .send(Err(ProfileError::Aborted(format!(
                        "shard {shard} moved to another node; re-read the shard map and resume \
                         with start_after"
                    ))))
                    .await;
                return;
            }
            Ok(SignalFeed::ShardLost(_)) => {}
            Err(broadcast::error::RecvError::Lagged(n)) => {
                let _ = tx
                    .send(Err(ProfileError::Aborted(format!(
                        "the watcher fell {n} signals behind; resume with start_after"
                    ))))
                    .await;
                return;
            }
            Err(broadcast::error::RecvError::Closed) => return,
        }
    }
}
