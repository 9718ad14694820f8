//! A ProfileService client that is either in-process or gRPC routed to shard owners, behind one
//! API.

use std::sync::Arc;

use super::{
    CommitContactRequest, CommitContactResponse, EraseCustomerRequest, EraseCustomerResponse,
    GetProfileRequest, GetProfileResponse, ProfileApi, ProfileError, ReleaseContactRequest,
    ReleaseContactResponse, ReserveContactRequest, ReserveContactResponse, RouteOptions,
    ShardMapSnapshot, ShardRouter, SignalStream, WatchSignalsRequest,
};

/// Calls the profile service in-process (standalone, tests) or over gRPC, routed to the owner
/// of each customer's shard, with one API.
#[derive(Clone)]
pub enum ProfileClient {
    /// Direct calls into an in-process node.
    Local(Arc<dyn ProfileApi>),
    /// gRPC calls routed by shard, each in a client span whose W3C trace context travels with
    /// every attempt; see [`ShardRouter`].
    Routed(ShardRouter),
}

impl std::fmt::Debug for ProfileClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Local(_) => f.write_str("ProfileClient::Local"),
            Self::Routed(router) => f
                .debug_tuple("ProfileClient::Routed")
                .field(router)
                .finish(),
        }
    }
}

impl ProfileClient {
    /// A routed gRPC client: `seeds` are profile node addresses (`host:port`) asked first for
    /// shards whose owner is not known yet; `shard_count` must be the installation's. Connects
    /// lazily, so nothing is dialled before the first call.
    pub fn connect(
        seeds: Vec<String>,
        shard_count: u32,
        options: RouteOptions,
    ) -> Result<Self, ProfileError> {
        Ok(Self::Routed(ShardRouter::new(seeds, shard_count, options)?))
    }

    /// The shard owners the routed client has learned (shard → (owner, epoch)); empty for an
    /// in-process client.
    pub fn shard_map_snapshot(&self) -> ShardMapSnapshot {
        match self {
            Self::Local(_) => ShardMapSnapshot::new(),
            Self::Routed(router) => router.shard_map_snapshot(),
        }
    }
}

#[async_trait::async_trait]
impl ProfileApi for ProfileClient {
    async fn get_profile(
        &self,
        request: GetProfileRequest,
    ) -> Result<GetProfileResponse, ProfileError> {
        match self {
            Self::Local(node) => node.get_profile(request).await,
            Self::Routed(router) => {
                let shard = router.shard_of_customer(request.customer.as_ref())?;
                router
                    .unary("GetProfile", shard, request, |mut c, r| async move {
                        c.get_profile(r).await
                    })
                    .await
            }
        }
    }

    async fn erase_customer(
        &self,
        request: EraseCustomerRequest,
    ) -> Result<EraseCustomerResponse, ProfileError> {
        match self {
            Self::Local(node) => node.erase_customer(request).await,
            Self::Routed(router) => {
                let shard = router.shard_of_customer(request.customer.as_ref())?;
                router
                    .unary("EraseCustomer", shard, request, |mut c, r| async move {
                        c.erase_customer(r).await
                    })
                    .await
            }
        }
    }

    async fn reserve_contact(
        &self,
        request: ReserveContactRequest,
    ) -> Result<ReserveContactResponse, ProfileError> {
        match self {
            Self::Local(node) => node.reserve_contact(request).await,
            Self::Routed(router) => {
                let shard = router.shard_of_customer(request.customer.as_ref())?;
                router
                    .unary("ReserveContact", shard, request, |mut c, r| async move {
                        c.reserve_contact(r).await
                    })
                    .await
            }
        }
    }

    async fn commit_contact(
        &self,
        request: CommitContactRequest,
    ) -> Result<CommitContactResponse, ProfileError> {
        match self {
            Self::Local(node) => node.commit_contact(request).await,
            Self::Routed(router) => {
                let shard = router.shard_of_customer(request.customer.as_ref())?;
                router
                    .unary("CommitContact", shard, request, |mut c, r| async move {
                        c.commit_contact(r).await
                    })
                    .await
            }
        }
    }

    async fn release_contact(
        &self,
        request: ReleaseContactRequest,
    ) -> Result<ReleaseContactResponse, ProfileError> {
        match self {
            Self::Local(node) => node.release_contact(request).await,
            Self::Routed(router) => {
                let shard = router.shard_of_customer(request.customer.as_ref())?;
                router
                    .unary("ReleaseContact", shard, request, |mut c, r| async move {
                        c.release_contact(r).await
                    })
                    .await
            }
        }
    }

    async fn watch_signals(
        &self,
        request: WatchSignalsRequest,
    ) -> Result<SignalStream, ProfileError> {
        match self {
            Self::Local(node) => node.watch_signals(request).await,
            Self::Routed(router) => router.watch_signals(request).await,
        }
    }
}
