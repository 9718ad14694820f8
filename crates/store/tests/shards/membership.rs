//! Node membership through heartbeats that expire.

use super::*;

on_both_backends!(membership_expires_refreshes_and_leaves,);

async fn membership_expires_refreshes_and_leaves(stores: &Stores) {
    let membership = &stores.membership;
    let member = |node: &str, address: &str| Member {
        node_id: node.into(),
        address: address.into(),
    };
    membership
        .heartbeat("node-b", "10.0.0.2:50051", LONG)
        .await
        .unwrap();
    membership
        .heartbeat("node-c", "10.0.0.3:50051", SHORT)
        .await
        .unwrap();
    membership
        .heartbeat("node-a", "10.0.0.1:50051", LONG)
        .await
        .unwrap();
    assert_eq!(
        membership.members().await.unwrap(),
        [
            member("node-a", "10.0.0.1:50051"),
            member("node-b", "10.0.0.2:50051"),
            member("node-c", "10.0.0.3:50051")
        ]
    );

    // node-c stops heartbeating and drops out; node-b comes back at a new address.
    wait_until(WAIT, "node-c expires", || async {
        (membership.members().await.unwrap().len() == 2).then_some(())
    })
    .await;
    membership
        .heartbeat("node-b", "10.0.0.9:50051", LONG)
        .await
        .unwrap();
    assert_eq!(
        membership.members().await.unwrap(),
        [
            member("node-a", "10.0.0.1:50051"),
            member("node-b", "10.0.0.9:50051")
        ]
    );

    membership.leave("node-a").await.unwrap();
    assert_eq!(
        membership.members().await.unwrap(),
        [member("node-b", "10.0.0.9:50051")]
    );
    // A heartbeat brings an expired member back.
    membership
        .heartbeat("node-c", "10.0.0.3:50051", LONG)
        .await
        .unwrap();
    assert_eq!(membership.members().await.unwrap().len(), 2);
}
