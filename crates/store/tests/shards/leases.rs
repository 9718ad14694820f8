//! Shard leases: exclusive while live, an epoch that grows with every acquisition, renewal and
//! release only by the holder at its epoch.

use super::*;

on_both_backends!(
    acquire_is_refused_while_held_and_bumps_the_epoch_after_expiry,
    reacquiring_a_held_shard_gives_the_same_node_a_new_epoch,
    renew_refuses_a_stale_epoch_or_another_node,
    release_hands_the_shard_over_with_a_higher_epoch,
);

async fn acquire_is_refused_while_held_and_bumps_the_epoch_after_expiry(stores: &Stores) {
    let first = acquired(stores, 0, "node-a", SHORT).await;
    assert_eq!(first.epoch, 1);
    assert_eq!(
        acquire(stores, 0, "node-b", SHORT).await,
        Acquire::Held(owner(0, "node-a", 1))
    );
    assert_eq!(
        stores.leases.owners(&[0, 1]).await.unwrap(),
        [Some(owner(0, "node-a", 1)), None]
    );

    // Without renewal the lease expires and node-b gets the shard with a higher epoch.
    let second = wait_until(WAIT, "node-b acquires after expiry", || async {
        match acquire(stores, 0, "node-b", LONG).await {
            Acquire::Acquired(lease) => Some(lease),
            Acquire::Held(_) => None,
        }
    })
    .await;
    assert_eq!(second, Lease { shard: 0, epoch: 2 });
    assert_eq!(
        stores.leases.owners(&[0]).await.unwrap(),
        [Some(owner(0, "node-b", 2))]
    );
    // Epochs are per shard.
    assert_eq!(acquired(stores, 1, "node-a", LONG).await.epoch, 1);
}

async fn reacquiring_a_held_shard_gives_the_same_node_a_new_epoch(stores: &Stores) {
    let first = acquired(stores, 2, "node-a", LONG).await;
    let second = acquired(stores, 2, "node-a", LONG).await;
    assert_eq!(second.epoch, first.epoch + 1);
    // The older epoch is fenced off even for the same node.
    assert_eq!(
        stores
            .shard_state
            .write(&write(first, "node-a"))
            .await
            .unwrap(),
        WriteOutcome::Fenced {
            current_epoch: second.epoch
        }
    );
    cursors(
        stores
            .shard_state
            .write(&write(second, "node-a"))
            .await
            .unwrap(),
    );
}

async fn renew_refuses_a_stale_epoch_or_another_node(stores: &Stores) {
    let lease = acquired(stores, 3, "node-a", SHORT).await;
    let other = acquired(stores, 4, "node-a", LONG).await;
    let stale = Lease {
        shard: 3,
        epoch: lease.epoch - 1,
    };
    assert_eq!(
        stores
            .leases
            .renew(&[lease, stale, other], "node-a", LONG)
            .await
            .unwrap(),
        [true, false, true]
    );
    assert_eq!(
        stores.leases.renew(&[lease], "node-b", LONG).await.unwrap(),
        [false]
    );
    // Renewed to LONG: it outlives the original SHORT ttl.
    tokio::time::sleep(SHORT * 2).await;
    assert_eq!(
        stores.leases.owners(&[3]).await.unwrap(),
        [Some(owner(3, "node-a", lease.epoch))]
    );
    assert!(matches!(
        acquire(stores, 3, "node-b", LONG).await,
        Acquire::Held(_)
    ));
    assert!(
        stores
            .leases
            .renew(&[], "node-a", LONG)
            .await
            .unwrap()
            .is_empty()
    );
}

async fn release_hands_the_shard_over_with_a_higher_epoch(stores: &Stores) {
    let a = acquired(stores, 5, "node-a", LONG).await;
    // Someone else's release, or a stale one, does nothing.
    stores.leases.release(a, "node-b").await.unwrap();
    stores
        .leases
        .release(
            Lease {
                shard: 5,
                epoch: a.epoch + 1,
            },
            "node-a",
        )
        .await
        .unwrap();
    assert_eq!(
        stores.leases.owners(&[5]).await.unwrap(),
        [Some(owner(5, "node-a", a.epoch))]
    );

    stores.leases.release(a, "node-a").await.unwrap();
    assert_eq!(stores.leases.owners(&[5]).await.unwrap(), [None]);
    assert_eq!(
        stores.leases.renew(&[a], "node-a", LONG).await.unwrap(),
        [false]
    );
    let b = acquired(stores, 5, "node-b", LONG).await;
    assert_eq!(b.epoch, a.epoch + 1);
}
