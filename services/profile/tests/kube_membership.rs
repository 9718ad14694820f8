//! The Kubernetes membership against a mocked API server: EndpointSlice lists and watches as the
//! API server sends them, connection drops, outages, and two nodes splitting shards by it.
#![cfg(feature = "kube")]
#![allow(clippy::unwrap_used)]

#[path = "kube_membership/mock_api.rs"]
mod mock_api;

use std::{sync::Arc, time::Duration};

use iee_config::ClusterConfig;
use iee_profile::{
    KubeMembership, KubernetesMembershipConfig, MembershipSource, ProfileConfig, ProfileDeps,
    ProfileNode, with_membership,
};
use iee_runtime::Shutdown;
use iee_store::{Membership, MemoryStore, Stores};
use iee_telemetry::MetricsRegistry;
use iee_test_support::wait_until;
use mock_api::{MockApi, Pod, slice};
use serde_json::json;

pub(crate) const NAMESPACE: &str = "iee-test";
pub(crate) const SERVICE: &str = "profile-headless";
pub(crate) const WAIT: Duration = Duration::from_secs(10);

fn config(url: &str) -> KubernetesMembershipConfig {
    KubernetesMembershipConfig {
        namespace: NAMESPACE.to_owned(),
        service: SERVICE.to_owned(),
        port_name: "grpc".to_owned(),
        api_url: url.to_owned(),
        stale_after_ms: 500,
    }
}

/// `node_id@address` of every member, in order.
async fn listed(membership: &KubeMembership) -> Option<Vec<String>> {
    membership.members().await.ok().map(|members| {
        members
            .into_iter()
            .map(|m| format!("{}@{}", m.node_id, m.address))
            .collect()
    })
}

async fn wait_for_members(membership: &KubeMembership, expected: &[&str]) {
    let what = format!("members {expected:?}");
    wait_until(WAIT, &what, || async {
        listed(membership).await.filter(|got| got == expected)
    })
    .await;
}

#[tokio::test]
async fn initial_list_gives_the_endpoints_that_are_not_terminating() {
    let api = MockApi::start().await;
    let mut unnamed = slice(
        "profile-headless-b",
        &[Pod("ignored", "10.0.0.9", false, false)],
    );
    // An endpoint without targetRef is named by its hostname.
    unnamed["endpoints"][0]
        .as_object_mut()
        .unwrap()
        .remove("targetRef");
    unnamed["endpoints"][0]["hostname"] = json!("iee-profile-3");
    api.put_silently(slice(
        "profile-headless-a",
        &[
            // Not ready yet (it owns no shard yet): a member all the same.
            Pod("iee-profile-2", "10.0.0.3", false, false),
            Pod("iee-profile-0", "10.0.0.1", true, false),
            Pod("iee-profile-1", "10.0.0.2", true, true),
        ],
    ));
    api.put_silently(unnamed);
    let membership = KubeMembership::connect(&config(&api.url)).unwrap();

    wait_for_members(
        &membership,
        &[
            "iee-profile-0@10.0.0.1:50051",
            "iee-profile-2@10.0.0.3:50051",
            "iee-profile-3@10.0.0.9:50051",
        ],
    )
    .await;
}

#[tokio::test]
async fn watch_events_add_remove_and_merge_members() {
    let api = MockApi::start().await;
    api.put_silently(slice(
        "profile-headless-a",
        &[Pod("iee-profile-0", "10.0.0.1", true, false)],
    ));
    let membership = KubeMembership::connect(&config(&api.url)).unwrap();
    wait_for_members(&membership, &["iee-profile-0@10.0.0.1:50051"]).await;
    api.wait_for_watch().await;

    // A starting pod appears in the slice.
    api.event(
        "MODIFIED",
        slice(
            "profile-headless-a",
            &[
                Pod("iee-profile-0", "10.0.0.1", true, false),
                Pod("iee-profile-1", "10.0.0.2", false, false),
            ],
        ),
    );
    wait_for_members(
        &membership,
        &[
            "iee-profile-0@10.0.0.1:50051",
            "iee-profile-1@10.0.0.2:50051",
        ],
    )
    .await;

    // A second slice of the same Service: its endpoints are members too.
    api.bookmark();
    api.event(
        "ADDED",
        slice(
            "profile-headless-b",
            &[Pod("iee-profile-7", "10.0.1.7", true, false)],
        ),
    );
    wait_for_members(
        &membership,
        &[
            "iee-profile-0@10.0.0.1:50051",
            "iee-profile-1@10.0.0.2:50051",
            "iee-profile-7@10.0.1.7:50051",
        ],
    )
    .await;

    // A pod being deleted turns terminating: out at once, though its endpoint is still listed.
    api.event(
        "MODIFIED",
        slice(
            "profile-headless-a",
            &[
                Pod("iee-profile-0", "10.0.0.1", false, true),
                Pod("iee-profile-1", "10.0.0.2", true, false),
            ],
        ),
    );
    wait_for_members(
        &membership,
        &[
            "iee-profile-1@10.0.0.2:50051",
            "iee-profile-7@10.0.1.7:50051",
        ],
    )
    .await;

    // A deleted slice takes its members with it.
    api.event(
        "DELETED",
        slice(
            "profile-headless-b",
            &[Pod("iee-profile-7", "10.0.1.7", true, false)],
        ),
    );
    wait_for_members(&membership, &["iee-profile-1@10.0.0.2:50051"]).await;
}

#[tokio::test]
async fn requests_use_the_configured_namespace_and_label_selector() {
    let api = MockApi::start().await;
    api.put_silently(slice(
        "profile-headless-a",
        &[Pod("iee-profile-0", "10.0.0.1", true, false)],
    ));
    let membership = KubeMembership::connect(&config(&api.url)).unwrap();
    wait_for_members(&membership, &["iee-profile-0@10.0.0.1:50051"]).await;
    api.wait_for_watch().await;

    let requests = api.requests();
    assert!(requests.len() >= 2, "{requests:?}");
    for request in &requests {
        assert_eq!(request.namespace, NAMESPACE, "{request:?}");
        assert_eq!(
            request.query.get("labelSelector").map(String::as_str),
            Some("kubernetes.io/service-name=profile-headless"),
            "{request:?}"
        );
    }
    let list = &requests[0];
    assert!(!list.query.contains_key("watch"), "{list:?}");
    let watch = &requests[1];
    assert_eq!(
        watch.query.get("watch").map(String::as_str),
        Some("true"),
        "{watch:?}"
    );
    // The watch starts where the list ended, so nothing is missed in between.
    assert_eq!(
        watch.query.get("resourceVersion").map(String::as_str),
        Some("1"),
        "{watch:?}"
    );
}

#[tokio::test]
async fn a_dropped_watch_is_followed_by_a_new_list() {
    let api = MockApi::start().await;
    api.put_silently(slice(
        "profile-headless-a",
        &[Pod("iee-profile-0", "10.0.0.1", true, false)],
    ));
    let membership = KubeMembership::connect(&config(&api.url)).unwrap();
    wait_for_members(&membership, &["iee-profile-0@10.0.0.1:50051"]).await;
    api.wait_for_watch().await;

    // A change the client cannot see through its watch, then the server closes the watch.
    api.put_silently(slice(
        "profile-headless-a",
        &[
            Pod("iee-profile-0", "10.0.0.1", true, false),
            Pod("iee-profile-1", "10.0.0.2", true, false),
        ],
    ));
    api.drop_watches();
    wait_for_members(
        &membership,
        &[
            "iee-profile-0@10.0.0.1:50051",
            "iee-profile-1@10.0.0.2:50051",
        ],
    )
    .await;
    // And it watches again afterwards.
    api.wait_for_watch().await;
    api.event(
        "MODIFIED",
        slice(
            "profile-headless-a",
            &[Pod("iee-profile-1", "10.0.0.2", true, false)],
        ),
    );
    wait_for_members(&membership, &["iee-profile-1@10.0.0.2:50051"]).await;
}

#[tokio::test]
async fn an_unreachable_api_server_makes_members_fail() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let membership = KubeMembership::connect(&config(&format!("http://127.0.0.1:{port}"))).unwrap();
    for _ in 0..5 {
        let err = membership.members().await.unwrap_err();
        assert!(err.to_string().contains("no EndpointSlice list"), "{err}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn members_fail_once_the_watch_has_failed_for_longer_than_the_limit() {
    let api = MockApi::start().await;
    api.put_silently(slice(
        "profile-headless-a",
        &[Pod("iee-profile-0", "10.0.0.1", true, false)],
    ));
    let membership = KubeMembership::connect(&config(&api.url)).unwrap();
    wait_for_members(&membership, &["iee-profile-0@10.0.0.1:50051"]).await;
    api.wait_for_watch().await;

    api.set_failing(true);
    let err = wait_until(WAIT, "members to fail", || async {
        membership.members().await.err()
    })
    .await;
    assert!(err.to_string().contains("failing for"), "{err}");

    api.set_failing(false);
    wait_for_members(&membership, &["iee-profile-0@10.0.0.1:50051"]).await;
}

#[tokio::test]
async fn leaving_drops_this_node_from_its_own_view_at_once() {
    let api = MockApi::start().await;
    api.put_silently(slice(
        "profile-headless-a",
        &[
            Pod("iee-profile-0", "10.0.0.1", true, false),
            Pod("iee-profile-1", "10.0.0.2", true, false),
        ],
    ));
    let membership = KubeMembership::connect(&config(&api.url)).unwrap();
    membership
        .heartbeat("iee-profile-0", "10.0.0.1:50051", Duration::from_secs(3))
        .await
        .unwrap();
    wait_for_members(
        &membership,
        &[
            "iee-profile-0@10.0.0.1:50051",
            "iee-profile-1@10.0.0.2:50051",
        ],
    )
    .await;

    membership.leave("iee-profile-0").await.unwrap();
    assert_eq!(
        listed(&membership).await.unwrap(),
        ["iee-profile-1@10.0.0.2:50051"]
    );
}

fn profile_node(api: &MockApi, stores: &Stores, node_id: &str, shards: u32) -> ProfileNode {
    let config = ProfileConfig {
        node_id: node_id.to_owned(),
        membership: MembershipSource::Kubernetes,
        kubernetes: config(&api.url),
        ..ProfileConfig::default()
    };
    let stores = with_membership(&config, stores.clone()).unwrap();
    let node = ProfileNode::build(
        config,
        &ClusterConfig {
            shard_count: shards,
        },
        ProfileDeps {
            stores,
            metrics: MetricsRegistry::default(),
            shutdown: Shutdown::new(),
        },
    );
    node.start(format!("{node_id}:50051"));
    node
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_listed_pods_split_the_shards_and_one_takes_all_when_the_other_terminates() {
    const SHARDS: u32 = 16;
    let api = MockApi::start().await;
    api.put_silently(slice(
        "profile-headless-a",
        &[
            Pod("iee-profile-0", "10.0.0.1", false, false),
            Pod("iee-profile-1", "10.0.0.2", false, false),
        ],
    ));
    // Leases and fencing stay in the store (here in memory), whatever the membership.
    let stores = Stores::from_one(Arc::new(MemoryStore::new(SHARDS)));
    let a = profile_node(&api, &stores, "iee-profile-0", SHARDS);
    let b = profile_node(&api, &stores, "iee-profile-1", SHARDS);

    let (owned_a, owned_b) = wait_until(WAIT, "both nodes ready with every shard", || async {
        let (owned_a, owned_b) = (a.shards_owned(), b.shards_owned());
        (a.is_ready() && b.is_ready() && owned_a + owned_b == SHARDS as usize)
            .then_some((owned_a, owned_b))
    })
    .await;
    assert!(owned_a > 0 && owned_b > 0, "{owned_a} + {owned_b}");

    // Pod 1 is being deleted: its endpoint turns terminating and pod 0 takes every shard (once
    // pod 1 hands them off, which `stop` does as on SIGTERM).
    api.wait_for_watch().await;
    api.event(
        "MODIFIED",
        slice(
            "profile-headless-a",
            &[
                Pod("iee-profile-0", "10.0.0.1", true, false),
                Pod("iee-profile-1", "10.0.0.2", false, true),
            ],
        ),
    );
    b.stop().await;
    wait_until(WAIT, "node 0 to own every shard", || async {
        (a.is_ready() && a.shards_owned() == SHARDS as usize).then_some(())
    })
    .await;
    a.stop().await;
}
