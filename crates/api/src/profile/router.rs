//! Routes customer-scoped profile calls to the owner of the customer's shard over gRPC: learns
//! owners from redirects, retries through hand-offs and unreachable nodes, merges signal streams.

use std::{
    collections::{BTreeMap, HashMap},
    future::Future,
    pin::Pin,
    sync::{
        Arc, Mutex, MutexGuard, PoisonError,
        atomic::{AtomicUsize, Ordering},
    },
    task::{Context, Poll},
    time::Duration,
};

use tokio::time::Instant;
use tokio_stream::{Stream, StreamMap};
use tonic::{
    Response, Status, Streaming,
    transport::{Channel, Endpoint},
};
use tracing::Instrument;

use super::{
    ProfileError, Signal, SignalStream, WatchSignalsRequest, WatchSignalsResponse,
    profile_service_client::ProfileServiceClient,
};
use crate::{
    pb::common::CustomerRef,
    shard::{customer_key, shard_of},
    trace_context::{client_span, inject_context, record_error},
};

type Grpc = ProfileServiceClient<Channel>;

/// The owners a router has learned: shard → (owner address, lease epoch).
pub type ShardMapSnapshot = BTreeMap<u32, (String, u64)>;

/// How a [`ShardRouter`] connects, retries and gives up.
#[derive(Debug, Clone)]
pub struct RouteOptions {
    /// How long one call keeps retrying while its shard has no owner or nodes cannot be reached
    /// (default 5 s). Other errors return at once.
    pub retry_for: Duration,
    /// The first delay between retries (default 50 ms); it doubles up to `max_backoff`.
    pub first_backoff: Duration,
    /// The longest delay between retries (default 500 ms).
    pub max_backoff: Duration,
    /// Redirects followed in a row before the redirect itself is returned (default 3); a loop
    /// between nodes with stale shard maps ends here.
    pub max_redirects: u32,
    /// Timeout of establishing a connection to one node (default 1 s).
    pub connect_timeout: Duration,
    /// Deadline of one attempt of a unary call, also sent to the server as `grpc-timeout`
    /// (default 10 s; `None`: no deadline); it also bounds opening a `WatchSignals` stream. An
    /// attempt that runs out is returned as `DeadlineExceeded`, not retried: it may have been
    /// applied.
    pub request_timeout: Option<Duration>,
    /// Largest message sent or received (default 16 MiB).
    pub max_message_bytes: usize,
}

impl Default for RouteOptions {
    fn default() -> Self {
        Self {
            retry_for: Duration::from_secs(5),
            first_backoff: Duration::from_millis(50),
            max_backoff: Duration::from_millis(500),
            max_redirects: 3,
            connect_timeout: Duration::from_secs(1),
            request_timeout: Some(Duration::from_secs(10)),
            max_message_bytes: 16 << 20,
        }
    }
}

/// A ProfileService client that sends each customer-scoped call to the owner of the customer's
/// shard. Owners are learned from redirects and cached per shard (highest epoch wins); calls for
/// shards with no known owner go to the seeds in turn. Cheap to clone; clones share the cache.
///
/// A call that fails with `Unavailable` may have reached its node before the connection broke;
/// it is retried like one that did not (contact reservations without a `request_id` may then
/// hold a second slot until they expire).
///
/// `WatchSignals` is opened on every seed and the streams are merged: nodes that are not seeds
/// are not watched, and resuming and reconnecting are the caller's job.
#[derive(Clone)]
pub struct ShardRouter {
    inner: Arc<Inner>,
}

struct Inner {
    seeds: Vec<String>,
    shard_count: u32,
    options: RouteOptions,
    next_seed: AtomicUsize,
    shards: Mutex<HashMap<u32, Known>>,
    channels: Mutex<HashMap<String, Grpc>>,
}

/// What is known of one shard. `owner` is cleared when the owner cannot be reached, but the
/// epoch is kept, so a stale redirect met later cannot install an older owner.
struct Known {
    owner: Option<String>,
    epoch: u64,
}

impl std::fmt::Debug for ShardRouter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShardRouter")
            .field("seeds", &self.inner.seeds)
            .field("shard_count", &self.inner.shard_count)
            .field("known_owners", &self.shard_map_snapshot().len())
            .finish_non_exhaustive()
    }
}

impl ShardRouter {
    /// A router over `seeds` (`host:port`, or a URI such as `http://host:port`) for an
    /// installation of `shard_count` shards. Connections are opened lazily, on first use.
    pub fn new(
        seeds: Vec<String>,
        shard_count: u32,
        options: RouteOptions,
    ) -> Result<Self, ProfileError> {
        if seeds.is_empty() {
            return Err(ProfileError::invalid(
                "seeds",
                "at least one profile node address (host:port) is required",
            ));
        }
        for (i, seed) in seeds.iter().enumerate() {
            endpoint(seed, &options)
                .map_err(|e| ProfileError::invalid(format!("seeds[{i}]"), e))?;
        }
        if shard_count == 0 {
            return Err(ProfileError::invalid("shard_count", "must be positive"));
        }
        if options.first_backoff.is_zero() {
            return Err(ProfileError::invalid(
                "first_backoff",
                "must be positive, or retries would spin",
            ));
        }
        Ok(Self {
            inner: Arc::new(Inner {
                seeds,
                shard_count,
                options,
                next_seed: AtomicUsize::new(0),
                shards: Mutex::new(HashMap::new()),
                channels: Mutex::new(HashMap::new()),
            }),
        })
    }

    /// The seed addresses.
    pub fn seeds(&self) -> &[String] {
        &self.inner.seeds
    }

    /// The number of shards of the installation.
    pub fn shard_count(&self) -> u32 {
        self.inner.shard_count
    }

    /// The shard of a customer, or `InvalidArgument` when the customer names no tenant or
    /// neither a customer id nor an anonymous id.
    pub fn shard_of_customer(&self, customer: Option<&CustomerRef>) -> Result<u32, ProfileError> {
        let customer = customer.ok_or_else(|| ProfileError::invalid("customer", "required"))?;
        if customer.tenant_id.is_empty() {
            return Err(ProfileError::invalid("customer.tenant_id", "required"));
        }
        if customer.customer_id.is_empty() && customer.anonymous_id.is_empty() {
            return Err(ProfileError::invalid(
                "customer.customer_id",
                "either customer_id or anonymous_id is required",
            ));
        }
        Ok(shard_of(
            &customer.tenant_id,
            &customer_key(&customer.customer_id, &customer.anonymous_id),
            self.inner.shard_count,
        ))
    }

    /// The owners currently cached: shard → (owner, epoch). Shards whose owner was dropped (it
    /// could not be reached) are left out.
    pub fn shard_map_snapshot(&self) -> ShardMapSnapshot {
        lock(&self.inner.shards)
            .iter()
            .filter_map(|(shard, known)| {
                let owner = known.owner.clone()?;
                Some((*shard, (owner, known.epoch)))
            })
            .collect()
    }

    /// Sends one unary call `name` for `shard` to its owner: follows redirects, and retries
    /// with backoff while the shard has no owner or the node cannot be reached, until
    /// `retry_for` has passed. Other errors are returned as they are. The call, retries
    /// included, is one client span `profile.<name>`, whose context every attempt carries.
    pub(crate) async fn unary<Req, Resp, F, Fut>(
        &self,
        name: &'static str,
        shard: u32,
        request: Req,
        rpc: F,
    ) -> Result<Resp, ProfileError>
    where
        Req: Clone + Send + Sync,
        F: Fn(Grpc, tonic::Request<Req>) -> Fut + Send + Sync,
        Fut: Future<Output = Result<Response<Resp>, Status>> + Send,
    {
        let span = client_span("profile", name);
        let result = self
            .unary_attempts(shard, request, rpc)
            .instrument(span.clone())
            .await;
        if let Err(err) = &result {
            record_error(&span, err.code());
        }
        result
    }

    async fn unary_attempts<Req, Resp, F, Fut>(
        &self,
        shard: u32,
        request: Req,
        rpc: F,
    ) -> Result<Resp, ProfileError>
    where
        Req: Clone + Send + Sync,
        F: Fn(Grpc, tonic::Request<Req>) -> Fut + Send + Sync,
        Fut: Future<Output = Result<Response<Resp>, Status>> + Send,
    {
        let options = &self.inner.options;
        let deadline = Instant::now() + options.retry_for;
        let mut backoff = options.first_backoff;
        let mut redirects = 0;
        let mut redirected_to: Option<String> = None;
        loop {
            let addr = redirected_to.take().unwrap_or_else(|| self.target(shard));
            let err = match self.attempt(&addr, request.clone(), &rpc).await {
                Ok(response) => return Ok(response),
                Err(err) => err,
            };
            match &err {
                ProfileError::WrongOwner {
                    shard: named,
                    owner,
                    epoch,
                } => {
                    self.learn(*named, owner, *epoch);
                    redirects += 1;
                    if redirects > options.max_redirects {
                        return Err(err);
                    }
                    // Retry where this node points even when the cache disagrees: the cached
                    // owner is the one that may just have sent us here.
                    redirected_to = Some(owner.clone());
                    continue;
                }
                ProfileError::NoOwner { .. } => self.forget_owner_of(shard, &addr),
                ProfileError::Unavailable(_) => self.forget_node(&addr),
                _ => return Err(err),
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(err);
            }
            tokio::time::sleep(backoff.min(deadline - now)).await;
            backoff = (backoff * 2).min(options.max_backoff);
            redirects = 0;
        }
    }

    async fn attempt<Req, Resp, F, Fut>(
        &self,
        addr: &str,
        request: Req,
        rpc: &F,
    ) -> Result<Resp, ProfileError>
    where
        F: Fn(Grpc, tonic::Request<Req>) -> Fut,
        Fut: Future<Output = Result<Response<Resp>, Status>>,
    {
        let client = self.client(addr)?;
        let mut request = tonic::Request::new(request);
        inject_context(request.metadata_mut());
        crate::credentials::attach(request.metadata_mut());
        let Some(timeout) = self.inner.options.request_timeout else {
            return rpc(client, request)
                .await
                .map(Response::into_inner)
                .map_err(ProfileError::from_status);
        };
        request.set_timeout(timeout);
        // Enforced here too: a stopped (not dead) node would never answer.
        match tokio::time::timeout(timeout, rpc(client, request)).await {
            Ok(result) => result
                .map(Response::into_inner)
                .map_err(ProfileError::from_status),
            Err(_) => Err(ProfileError::DeadlineExceeded(format!(
                "no answer from {addr} within {timeout:?}"
            ))),
        }
    }

    /// Opens `WatchSignals` on every seed and merges the streams. Nodes that are not seeds are
    /// not watched, and a seed that cannot be opened fails the whole call. The merged stream
    /// ends at the first error of any node (every stream is closed with it), so a reconnect
    /// restarts them all from the caller's cursors.
    pub(crate) async fn watch_signals(
        &self,
        request: WatchSignalsRequest,
    ) -> Result<SignalStream, ProfileError> {
        // The span covers opening the streams, not their life.
        let span = client_span("profile", "WatchSignals");
        let opened = self.open_signals(request).instrument(span.clone()).await;
        if let Err(err) = &opened {
            record_error(&span, err.code());
        }
        opened
    }

    async fn open_signals(
        &self,
        request: WatchSignalsRequest,
    ) -> Result<SignalStream, ProfileError> {
        let mut streams = StreamMap::new();
        for (i, seed) in self.inner.seeds.iter().enumerate() {
            let mut client = self.client(seed)?;
            let mut call = tonic::Request::new(request.clone());
            inject_context(call.metadata_mut());
            crate::credentials::attach(call.metadata_mut());
            let open = client.watch_signals(call);
            // Bounds the wait for the stream's headers only, not the stream's life.
            let opened = match self.inner.options.request_timeout {
                Some(timeout) => tokio::time::timeout(timeout, open).await.map_err(|_| {
                    ProfileError::DeadlineExceeded(format!(
                        "{seed} did not open WatchSignals within {timeout:?}"
                    ))
                })?,
                None => open.await,
            };
            streams.insert(i, opened.map_err(ProfileError::from_status)?.into_inner());
        }
        Ok(Box::pin(MergedSignals {
            streams,
            failed: false,
        }))
    }

    /// The cached owner of `shard`, else the next seed.
    fn target(&self, shard: u32) -> String {
        if let Some(Known {
            owner: Some(owner), ..
        }) = lock(&self.inner.shards).get(&shard)
        {
            return owner.clone();
        }
        let seeds = &self.inner.seeds;
        let next = self.inner.next_seed.fetch_add(1, Ordering::Relaxed);
        seeds[next % seeds.len()].clone()
    }

    /// Records a redirect's answer unless a higher epoch (or the same lease) is already known.
    fn learn(&self, shard: u32, owner: &str, epoch: u64) {
        if shard >= self.inner.shard_count {
            return;
        }
        let mut shards = lock(&self.inner.shards);
        if let Some(known) = shards.get(&shard)
            && (epoch < known.epoch || (epoch == known.epoch && known.owner.is_some()))
        {
            return;
        }
        shards.insert(
            shard,
            Known {
                owner: Some(owner.to_owned()),
                epoch,
            },
        );
    }

    /// `addr` said it does not own `shard` and nobody does; stop sending there.
    fn forget_owner_of(&self, shard: u32, addr: &str) {
        if let Some(known) = lock(&self.inner.shards).get_mut(&shard)
            && known.owner.as_deref() == Some(addr)
        {
            known.owner = None;
        }
    }

    /// `addr` cannot be reached: drop it as the owner of every shard.
    fn forget_node(&self, addr: &str) {
        for known in lock(&self.inner.shards).values_mut() {
            if known.owner.as_deref() == Some(addr) {
                known.owner = None;
            }
        }
    }

    /// The client of `addr`, over one lazily connected channel per address.
    fn client(&self, addr: &str) -> Result<Grpc, ProfileError> {
        let mut channels = lock(&self.inner.channels);
        if let Some(client) = channels.get(addr) {
            return Ok(client.clone());
        }
        let options = &self.inner.options;
        let endpoint = endpoint(addr, options)
            .map_err(|e| ProfileError::Unavailable(format!("bad node address {addr:?}: {e}")))?;
        let client = Grpc::new(crate::transport::connect_lazy(endpoint))
            .max_decoding_message_size(options.max_message_bytes)
            .max_encoding_message_size(options.max_message_bytes);
        channels.insert(addr.to_owned(), client.clone());
        Ok(client)
    }
}

fn endpoint(addr: &str, options: &RouteOptions) -> Result<Endpoint, String> {
    Ok(crate::transport::endpoint(addr)?
        .connect_timeout(options.connect_timeout)
        .tcp_nodelay(true)
        // Profile nodes are trusted peers: requests cancelled by the caller's deadline must not
        // make HTTP/2 close the connection after 1,024 of them.
        .http2_max_local_error_reset_streams(None))
}

/// The maps stay consistent under a panic (every update is a single insert or assignment).
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The seeds' signal streams as one, ending after the first error.
struct MergedSignals {
    streams: StreamMap<usize, Streaming<WatchSignalsResponse>>,
    failed: bool,
}

impl Stream for MergedSignals {
    type Item = Result<Signal, ProfileError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if this.failed {
            return Poll::Ready(None);
        }
        let item = match Pin::new(&mut this.streams).poll_next(cx) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(None) => return Poll::Ready(None),
            Poll::Ready(Some((_, item))) => item,
        };
        let item = item
            .map_err(ProfileError::from_status)
            .and_then(|response| {
                response.signal.ok_or_else(|| {
                    ProfileError::Internal("WatchSignals message without a signal".into())
                })
            });
        if item.is_err() {
            this.failed = true;
            // Dropping the streams cancels them on their servers.
            this.streams = StreamMap::new();
        }
        Poll::Ready(Some(item))
    }
}
