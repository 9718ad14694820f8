//! Erasure of a customer and the receipt of what went.

use std::time::Duration;

use iee_api::{
    pb::{
        common::{Event, LogRecord},
        profile::{EraseCustomerResponse, Profile},
    },
    profile::ProfileError,
    shard::{customer_key, shard_of},
};
use iee_store::{AppendRequest, ProfileKey};
use prost::Message;
use ractor::ActorRef;
use tokio::sync::oneshot;

use super::actor::{ShardMsg, ShardState, now_timestamp};
use crate::customer::CustomerMsg;

/// What an erasure deleted, one line per kind of state, naming no id.
fn receipt(shard: u32, profile: &Profile, anonymous: usize) -> Vec<String> {
    let pending: usize = profile.contacts.iter().map(|c| c.pending.len()).sum();
    let contacts: u64 = profile.contacts.iter().map(|c| c.total).sum();
    let mut deleted = vec![
        format!("profile (shard {shard}, version {})", profile.version),
        "durable timers: cart, inactive".to_owned(),
        format!("contact history: {contacts} contacts, {pending} pending reservations"),
    ];
    if anonymous > 0 {
        deleted.push(format!(
            "anonymous profiles: {anonymous} (erased on their own shards through the log)"
        ));
        deleted.push(format!("identity links: {anonymous}"));
        deleted.push(format!(
            "dedup markers of identify and merge records: {}",
            2 * anonymous
        ));
    }
    deleted
}

impl ShardState {
    pub(super) async fn erase(
        &mut self,
        myself: &ActorRef<ShardMsg>,
        key: ProfileKey,
    ) -> Result<EraseCustomerResponse, ProfileError> {
        let actor = self
            .activate(myself, &key)
            .await
            .map_err(|e| ProfileError::Unavailable(e.to_string()))?;
        let (tx, rx) = oneshot::channel();
        let _ = actor.cast(CustomerMsg::Erase { reply: tx });
        let (before, erased_at) = rx
            .await
            .map_err(|_| ProfileError::Unavailable("customer actor stopped".into()))?;
        self.mark_dirty(myself, &key);
        self.flush(myself, Vec::new()).await?;
        let anonymous: Vec<(String, String)> = before
            .as_ref()
            .and_then(|p| p.identity.as_ref())
            .map(|i| {
                i.anonymous_links
                    .iter()
                    .map(|l| (l.anonymous_id.clone(), l.event_id.clone()))
                    .collect()
            })
            .unwrap_or_default();
        let links: Vec<String> = anonymous.iter().map(|(a, _)| a.clone()).collect();
        let requests: Vec<AppendRequest> = links
            .iter()
            .map(|anonymous_id| {
                // The record's id (and so its dedup marker) must not name the erased id.
                let erase_id = format!(
                    "erase:{:016x}:{erased_at}",
                    xxhash_rust::xxh3::xxh3_64(anonymous_id.as_bytes())
                );
                let record = LogRecord {
                    event: Some(Event {
                        event_id: erase_id.clone(),
                        tenant_id: key.tenant_id.clone(),
                        anonymous_id: anonymous_id.clone(),
                        r#type: crate::customer::ERASE_EVENT_TYPE.to_owned(),
                        ..Event::default()
                    }),
                    received_at: Some(now_timestamp()),
                    erase_profile: true,
                    ..LogRecord::default()
                };
                AppendRequest {
                    shard: shard_of(
                        &key.tenant_id,
                        &customer_key("", anonymous_id),
                        self.ctx.node.shard_count,
                    ),
                    tenant_id: key.tenant_id.clone(),
                    event_id: erase_id,
                    payload: record.encode_to_vec(),
                }
            })
            .collect();
        if !requests.is_empty() {
            let window = Duration::from_secs(self.ctx.node.dedup_window_secs);
            self.ctx
                .node
                .stores
                .log
                .append(&requests, window)
                .await
                .map_err(|e| ProfileError::Unavailable(e.to_string()))?;
        }
        self.forget_links(&key, &anonymous).await?;
        self.ctx.node.metrics.erasures.inc();
        let deleted = before
            .as_ref()
            .map(|p| receipt(self.ctx.shard, p, anonymous.len()))
            .unwrap_or_default();
        Ok(EraseCustomerResponse {
            deleted,
            erased: before.is_some(),
            anonymous_profiles_erased: u32::try_from(links.len()).unwrap_or(u32::MAX),
            erased_at: Some(prost_types::Timestamp {
                seconds: erased_at / 1000,
                nanos: i32::try_from((erased_at % 1000) * 1_000_000).unwrap_or(0),
            }),
        })
    }

    /// Removes what names the erased customer outside its profile: the identity links of its
    /// anonymous ids and the dedup markers of the identify and merge records (their ids name
    /// both ids).
    pub(super) async fn forget_links(
        &self,
        key: &ProfileKey,
        anonymous: &[(String, String)],
    ) -> Result<(), ProfileError> {
        let stores = &self.ctx.node.stores;
        let unavailable = |e: iee_store::StoreError| ProfileError::Unavailable(e.to_string());
        let mut merges = Vec::new();
        for (anonymous_id, event_id) in anonymous {
            stores
                .identities
                .unlink(&key.tenant_id, anonymous_id)
                .await
                .map_err(unavailable)?;
            let anonymous_shard = shard_of(
                &key.tenant_id,
                &customer_key("", anonymous_id),
                self.ctx.node.shard_count,
            );
            stores
                .log
                .forget(
                    anonymous_shard,
                    &key.tenant_id,
                    std::slice::from_ref(event_id),
                )
                .await
                .map_err(unavailable)?;
            merges.push(format!("merge:{event_id}"));
        }
        stores
            .log
            .forget(self.ctx.shard, &key.tenant_id, &merges)
            .await
            .map_err(unavailable)
    }
}
