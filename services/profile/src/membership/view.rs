//! The members as the watched EndpointSlices say, plus what this node knows of itself: the
//! state behind [`super::KubeMembership`], kept free of I/O.

use std::{
    collections::{BTreeMap, HashSet},
    time::{Duration, Instant},
};

use iee_store::{Member, StoreError};
use k8s_openapi::api::discovery::v1::EndpointSlice;

/// The members one EndpointSlice lists: every endpoint that is not terminating (ready or not:
/// a profile pod becomes ready only once it owns its shards, so readiness cannot decide who
/// gets shards), named by its pod (`targetRef.name`, else `hostname`), at its first address
/// and the port named `port_name`. A slice without that port lists nobody.
pub(crate) fn slice_members(slice: &EndpointSlice, port_name: &str) -> Vec<Member> {
    let port = slice
        .ports
        .iter()
        .flatten()
        .find(|p| p.name.as_deref() == Some(port_name))
        .and_then(|p| p.port);
    let Some(port) = port else {
        return Vec::new();
    };
    slice
        .endpoints
        .iter()
        .flatten()
        .filter(|e| e.conditions.as_ref().and_then(|c| c.terminating) != Some(true))
        .filter_map(|e| {
            let ip = e.addresses.first()?;
            let node_id = e
                .target_ref
                .as_ref()
                .and_then(|r| r.name.clone())
                .or_else(|| e.hostname.clone())?;
            let address = if ip.contains(':') {
                format!("[{ip}]:{port}")
            } else {
                format!("{ip}:{port}")
            };
            Some(Member { node_id, address })
        })
        .collect()
}

/// The watched state.
#[derive(Debug, Default)]
pub(crate) struct View {
    /// Members per EndpointSlice name (a Service may have several slices).
    slices: BTreeMap<String, Vec<Member>>,
    /// Whether a list has succeeded at least once.
    listed: bool,
    /// Since when listing or watching has been failing (`None`: it is not).
    failing_since: Option<Instant>,
    /// This node's id, as its heartbeats give it.
    me: Option<String>,
    /// Nodes that left: out of this node's view at once, whatever the slices still say.
    departed: HashSet<String>,
    /// Whether the absence of this node from the endpoints was logged already.
    absence_logged: bool,
}

impl View {
    /// Replaces every slice with a fresh list; the watch is healthy again.
    pub(crate) fn relisted(&mut self, slices: BTreeMap<String, Vec<Member>>) {
        self.slices = slices;
        self.listed = true;
        self.failing_since = None;
    }

    /// A slice was added or changed.
    pub(crate) fn upsert(&mut self, name: String, members: Vec<Member>) {
        self.slices.insert(name, members);
    }

    /// A slice was deleted.
    pub(crate) fn remove(&mut self, name: &str) {
        self.slices.remove(name);
    }

    /// Listing or watching failed; returns whether this starts a failing period.
    pub(crate) fn failed(&mut self, now: Instant) -> bool {
        if self.failing_since.is_some() {
            return false;
        }
        self.failing_since = Some(now);
        true
    }

    /// Whether listing or watching is failing now.
    pub(crate) fn is_failing(&self) -> bool {
        self.failing_since.is_some()
    }

    /// Remembers this node's id.
    pub(crate) fn heartbeat(&mut self, node_id: &str) {
        if self.me.as_deref() != Some(node_id) {
            self.me = Some(node_id.to_owned());
        }
        self.departed.remove(node_id);
    }

    /// Drops `node_id` from this view at once.
    pub(crate) fn leave(&mut self, node_id: &str) {
        self.departed.insert(node_id.to_owned());
    }

    /// The members, sorted by node id (one entry per node id), unless no list has succeeded
    /// yet or the watch has been failing for longer than `stale_after`.
    pub(crate) fn members(
        &mut self,
        now: Instant,
        stale_after: Duration,
    ) -> Result<Vec<Member>, StoreError> {
        if !self.listed {
            return Err(StoreError::Unavailable(
                "no EndpointSlice list from the Kubernetes API has succeeded yet".to_owned(),
            ));
        }
        if let Some(since) = self.failing_since {
            let failing = now.saturating_duration_since(since);
            if failing > stale_after {
                return Err(StoreError::Unavailable(format!(
                    "the Kubernetes API watch of the EndpointSlices has been failing for {} ms",
                    failing.as_millis()
                )));
            }
        }
        let mut members: Vec<Member> = self
            .slices
            .values()
            .flatten()
            .filter(|m| !self.departed.contains(&m.node_id))
            .cloned()
            .collect();
        members.sort_by(|a, b| (&a.node_id, &a.address).cmp(&(&b.node_id, &b.address)));
        // A dual-stack Service lists a pod in one slice per address family.
        members.dedup_by(|b, a| a.node_id == b.node_id);
        self.log_absence(&members);
        Ok(members)
    }

    /// Logs once (per change) that this node is missing from the endpoints: it then takes no
    /// shard, which usually means `profile.node_id` is not the pod name.
    fn log_absence(&mut self, members: &[Member]) {
        let Some(me) = &self.me else {
            return;
        };
        if self.departed.contains(me) {
            return;
        }
        let absent = !members.iter().any(|m| &m.node_id == me);
        if absent && !self.absence_logged {
            tracing::warn!(
                node_id = %me,
                "this node is not among the profile Service's endpoints (yet); it takes no \
                 shard until it is (profile.node_id must be the pod name)"
            );
        }
        self.absence_logged = absent;
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::discovery::v1::{Endpoint, EndpointPort};

    use super::*;

    fn member(node_id: &str, address: &str) -> Member {
        Member {
            node_id: node_id.to_owned(),
            address: address.to_owned(),
        }
    }

    fn slice(ip: &str, port_name: &str) -> EndpointSlice {
        EndpointSlice {
            address_type: "IPv6".to_owned(),
            endpoints: Some(vec![Endpoint {
                addresses: vec![ip.to_owned()],
                hostname: Some("p-0".to_owned()),
                ..Endpoint::default()
            }]),
            ports: Some(vec![EndpointPort {
                name: Some(port_name.to_owned()),
                port: Some(50051),
                ..EndpointPort::default()
            }]),
            ..EndpointSlice::default()
        }
    }

    #[test]
    fn ipv6_addresses_are_bracketed_and_a_slice_without_the_port_lists_nobody() {
        assert_eq!(
            slice_members(&slice("fd00::1", "grpc"), "grpc"),
            [member("p-0", "[fd00::1]:50051")]
        );
        assert!(slice_members(&slice("fd00::1", "http"), "grpc").is_empty());
    }

    #[test]
    fn a_pod_in_two_slices_is_one_member() {
        let mut view = View::default();
        let now = Instant::now();
        let stale = Duration::from_secs(1);
        view.relisted(BTreeMap::from([
            ("v4".to_owned(), vec![member("p-1", "10.0.0.2:1")]),
            ("v6".to_owned(), vec![member("p-1", "[fd00::2]:1")]),
        ]));
        assert_eq!(view.members(now, stale).unwrap().len(), 1);
    }

    #[test]
    fn a_failing_watch_is_tolerated_up_to_the_limit_and_a_list_heals_it() {
        let mut view = View::default();
        let now = Instant::now();
        let stale = Duration::from_secs(1);
        assert!(view.members(now, stale).is_err());
        view.relisted(BTreeMap::from([(
            "a".to_owned(),
            vec![member("p-0", "10.0.0.1:1")],
        )]));
        assert!(view.failed(now));
        assert!(!view.failed(now + stale), "one failing period");
        assert!(view.members(now + stale, stale).is_ok());
        assert!(view.members(now + stale * 2, stale).is_err());
        view.relisted(BTreeMap::new());
        assert_eq!(view.members(now + stale * 3, stale).unwrap(), []);
    }
}
