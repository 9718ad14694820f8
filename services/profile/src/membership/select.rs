//! Puts the configured membership into the stores a node is built with.

use std::{collections::HashSet, sync::Arc, time::Duration};

use iee_store::{Member, Membership, StoreError, Stores};

use crate::{ProfileConfig, config::MembershipSource};

/// `stores` with `stores.membership` replaced as `config.membership` says (`redis` keeps the
/// store's own). Call it within a Tokio runtime: the Kubernetes membership starts its watch here.
pub fn with_membership(config: &ProfileConfig, stores: Stores) -> Result<Stores, StoreError> {
    match config.membership {
        MembershipSource::Redis => Ok(stores),
        MembershipSource::Kubernetes => kubernetes(config, stores),
    }
}

#[cfg(feature = "kube")]
fn kubernetes(config: &ProfileConfig, mut stores: Stores) -> Result<Stores, StoreError> {
    let listed = Arc::new(super::KubeMembership::connect(&config.kubernetes)?);
    stores.membership = Arc::new(ListedAndLive {
        listed,
        live: stores.membership.clone(),
    });
    Ok(stores)
}

/// Members are the nodes Kubernetes lists (not terminating) that also heartbeat into the
/// store: a pod being deleted leaves at once, whatever its heartbeat, and a pod whose process
/// crashed (its endpoint stays listed while the container restarts or the node is lost) leaves
/// when its heartbeat expires (`profile.member_ttl_ms`), so its shards move instead of waiting
/// for the pod to come back.
// Without the feature, only its unit test builds it.
#[cfg_attr(not(feature = "kube"), allow(dead_code))]
struct ListedAndLive {
    listed: Arc<dyn Membership>,
    live: Arc<dyn Membership>,
}

#[async_trait::async_trait]
impl Membership for ListedAndLive {
    async fn heartbeat(
        &self,
        node_id: &str,
        address: &str,
        ttl: Duration,
    ) -> Result<(), StoreError> {
        self.listed.heartbeat(node_id, address, ttl).await?;
        self.live.heartbeat(node_id, address, ttl).await
    }

    async fn leave(&self, node_id: &str) -> Result<(), StoreError> {
        self.listed.leave(node_id).await?;
        self.live.leave(node_id).await
    }

    async fn members(&self) -> Result<Vec<Member>, StoreError> {
        let live: HashSet<String> = self
            .live
            .members()
            .await?
            .into_iter()
            .map(|m| m.node_id)
            .collect();
        let mut listed = self.listed.members().await?;
        listed.retain(|m| live.contains(&m.node_id));
        Ok(listed)
    }
}

#[cfg(not(feature = "kube"))]
fn kubernetes(_config: &ProfileConfig, _stores: Stores) -> Result<Stores, StoreError> {
    Err(StoreError::Config(
        "profile.membership = \"kubernetes\" needs iee-profile built with `--features kube`"
            .to_owned(),
    ))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use iee_store::MemoryStore;

    #[tokio::test]
    async fn members_are_listed_and_heartbeating() {
        let listed = Arc::new(MemoryStore::new(4));
        let live = Arc::new(MemoryStore::new(4));
        let ttl = Duration::from_secs(60);
        // Kubernetes lists a, b and c (addresses from the endpoints).
        for node in ["a", "b", "c"] {
            listed
                .heartbeat(node, &format!("{node}.pod:1"), ttl)
                .await
                .unwrap();
        }
        // b's process is gone (no heartbeat); d heartbeats but is not listed (terminating).
        for node in ["a", "c", "d"] {
            live.heartbeat(node, "elsewhere:1", ttl).await.unwrap();
        }
        let both = ListedAndLive { listed, live };
        let members = both.members().await.unwrap();
        let ids: Vec<_> = members
            .iter()
            .map(|m| (m.node_id.as_str(), m.address.as_str()))
            .collect();
        assert_eq!(ids, vec![("a", "a.pod:1"), ("c", "c.pod:1")]);
        both.leave("a").await.unwrap();
        let ids: Vec<_> = both
            .members()
            .await
            .unwrap()
            .into_iter()
            .map(|m| m.node_id)
            .collect();
        assert_eq!(ids, vec!["c".to_owned()]);
    }
}
