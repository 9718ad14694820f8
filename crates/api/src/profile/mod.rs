//! ProfileService (profile): the transport-neutral trait, its client (in-process, or gRPC routed
//! to each shard's owner) and its error.

mod client;
mod error;
mod router;

pub use client::ProfileClient;
pub use error::{
    FIELD_METADATA_KEY, NO_OWNER_RETRY_AFTER, ProfileError, RETRY_AFTER_METADATA_KEY,
    SHARD_EPOCH_METADATA_KEY, SHARD_METADATA_KEY, SHARD_OWNER_METADATA_KEY,
};
pub use router::{RouteOptions, ShardMapSnapshot, ShardRouter};

pub use crate::pb::profile::*;

use std::pin::Pin;

use tokio_stream::Stream;

/// Signals as they are emitted; an `Err` item ends the stream (e.g. `Aborted` when a watched
/// shard moves).
pub type SignalStream = Pin<Box<dyn Stream<Item = Result<Signal, ProfileError>> + Send>>;

/// What the profile service does, independent of transport. Implemented by the profile node
/// (in-process) and by [`ProfileClient`] (local, or gRPC routed to the shard owner).
#[async_trait::async_trait]
pub trait ProfileApi: Send + Sync + 'static {
    /// Returns the customer's profile; see the `GetProfile` RPC.
    async fn get_profile(
        &self,
        request: GetProfileRequest,
    ) -> Result<GetProfileResponse, ProfileError>;
    /// Erases a customer; see the `EraseCustomer` RPC.
    async fn erase_customer(
        &self,
        request: EraseCustomerRequest,
    ) -> Result<EraseCustomerResponse, ProfileError>;
    /// Reserves one contact within the customer's caps; see the `ReserveContact` RPC.
    async fn reserve_contact(
        &self,
        request: ReserveContactRequest,
    ) -> Result<ReserveContactResponse, ProfileError>;
    /// Turns a reservation into a recorded contact; see the `CommitContact` RPC.
    async fn commit_contact(
        &self,
        request: CommitContactRequest,
    ) -> Result<CommitContactResponse, ProfileError>;
    /// Gives a reservation back; see the `ReleaseContact` RPC.
    async fn release_contact(
        &self,
        request: ReleaseContactRequest,
    ) -> Result<ReleaseContactResponse, ProfileError>;
    /// Streams the signals of the shards this node owns; see the `WatchSignals` RPC.
    async fn watch_signals(
        &self,
        request: WatchSignalsRequest,
    ) -> Result<SignalStream, ProfileError>;
}
