//! Multi-shard log reads that wait for appends, acknowledgements, and trimming behind the
//! slowest consumer.

use super::*;

on_both_backends!(
    read_many_returns_only_shards_with_entries,
    read_many_wakes_up_on_append,
    read_many_waits_for_the_block_when_nothing_comes,
    trim_never_passes_the_slowest_consumer,
    a_consumer_group_starts_at_the_end_and_splits_entries_between_members,
);

async fn read_many_returns_only_shards_with_entries(stores: &Stores) {
    let one = append(stores, 1, &["a", "b", "c"]).await;
    append(stores, 3, &["x"]).await;
    let from: Vec<(u32, Option<String>)> = (0..5).map(|s| (s, None)).collect();
    let read = stores.consumer.read_many(&from, 2, WAIT).await.unwrap();
    assert_eq!(
        read.iter()
            .map(|(s, e)| (*s, payloads(e)))
            .collect::<Vec<_>>(),
        [(1, vec!["a".into(), "b".into()]), (3, vec!["x".into()])]
    );
    assert_eq!(read[0].1[0].offset, one[0]);

    // From an offset: what follows it only.
    let read = stores
        .consumer
        .read_many(&[(1, Some(one[1].clone())), (3, None)], 10, WAIT)
        .await
        .unwrap();
    assert_eq!(read.len(), 2);
    assert_eq!(payloads(&read[0].1), ["c"]);
    assert_eq!(read[0].1[0].offset, one[2]);
}

async fn read_many_wakes_up_on_append(stores: &Stores) {
    let seen = append(stores, 2, &["before"]).await;
    let from = vec![(0, None), (2, Some(seen[0].clone()))];
    let writer = stores.clone();
    let late = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(100)).await;
        append(&writer, 2, &["after"]).await
    });
    // A timeout would return nothing: getting the entry proves the wake-up.
    let read = stores
        .consumer
        .read_many(&from, 10, Duration::from_secs(5))
        .await
        .unwrap();
    let appended = late.await.unwrap();
    assert_eq!(read.len(), 1, "{read:?}");
    assert_eq!(read[0].0, 2);
    assert_eq!(payloads(&read[0].1), ["after"]);
    assert_eq!(read[0].1[0].offset, appended[0]);
}

async fn read_many_waits_for_the_block_when_nothing_comes(stores: &Stores) {
    let block = Duration::from_millis(300);
    for from in [vec![(4, None)], vec![]] {
        let started = Instant::now();
        let read = stores.consumer.read_many(&from, 10, block).await.unwrap();
        assert!(read.is_empty());
        // A lower bound only: returning early would be the bug.
        assert!(started.elapsed() >= block / 2, "{:?}", started.elapsed());
    }
    // The shared connections stay usable meanwhile and afterwards.
    assert!(stores.log.read(4, None, 10).await.unwrap().is_empty());
}

async fn trim_never_passes_the_slowest_consumer(stores: &Stores) {
    let offsets = append(stores, 7, &["e0", "e1", "e2", "e3", "e4"]).await;
    let consumer = &stores.consumer;
    consumer.acknowledge(7, "kpi", &offsets[3]).await.unwrap();
    // "audit" has acknowledged nothing: nothing may go.
    assert_eq!(consumer.trim(7, &["kpi", "audit"]).await.unwrap(), 0);
    assert_eq!(consumer.trim(7, &[]).await.unwrap(), 0);
    assert_eq!(stores.log.len(7).await.unwrap(), 5);

    consumer.acknowledge(7, "audit", &offsets[1]).await.unwrap();
    // Below the slower one's offset only; its own entry may stay.
    assert_eq!(consumer.trim(7, &["kpi", "audit"]).await.unwrap(), 1);
    let left = stores.log.read(7, None, 10).await.unwrap();
    assert_eq!(payloads(&left), ["e1", "e2", "e3", "e4"]);
    assert_eq!(consumer.trim(7, &["kpi", "audit"]).await.unwrap(), 0);

    // A checkpoint written with the shard state is the profile consumer's acknowledgement.
    let lease = acquired(stores, 7, "node-a", LONG).await;
    cursors(
        stores
            .shard_state
            .write(&ShardWrite {
                checkpoint: Some(offsets[4].clone()),
                ..write(lease, "node-a")
            })
            .await
            .unwrap(),
    );
    consumer.acknowledge(7, "audit", &offsets[4]).await.unwrap();
    assert_eq!(
        consumer
            .trim(7, &[PROFILE_CONSUMER, "kpi", "audit"])
            .await
            .unwrap(),
        2
    );
    assert_eq!(
        payloads(&stores.log.read(7, None, 10).await.unwrap()),
        ["e3", "e4"]
    );
}

/// Blocking reads do not hold up requests on the shared connections.
#[tokio::test]
async fn redis_blocking_read_does_not_stall_other_requests() {
    let backend = redis();
    let stores = backend.stores.clone();
    let reader = stores.clone();
    let blocked = tokio::spawn(async move {
        reader
            .consumer
            .read_many(&[(0, None)], 10, Duration::from_secs(3))
            .await
            .unwrap()
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    // Spread over the shared connections; a read blocking one of them would hold these 3 s.
    let started = Instant::now();
    for _ in 0..4 {
        stores.log.len(1).await.unwrap();
    }
    let quick = started.elapsed();
    append(&stores, 0, &["wake"]).await;
    let read = blocked.await.unwrap();
    assert_eq!(payloads(&read[0].1), ["wake"]);
    assert!(quick < Duration::from_secs(2), "{quick:?}");
}

async fn a_consumer_group_starts_at_the_end_and_splits_entries_between_members(stores: &Stores) {
    append(stores, 1, &["history"]).await;
    let block = Duration::from_millis(200);
    // The first read creates the group at the end of each log: history is not delivered.
    let first = stores
        .consumer
        .read_group("learners", "a", &[1, 2], 10, block)
        .await
        .unwrap();
    assert!(first.is_empty(), "{first:?}");
    append(stores, 1, &["n1", "n2", "n3"]).await;
    append(stores, 2, &["m1"]).await;
    let a = stores
        .consumer
        .read_group("learners", "a", &[1, 2], 2, block)
        .await
        .unwrap();
    let b = stores
        .consumer
        .read_group("learners", "b", &[1, 2], 10, block)
        .await
        .unwrap();
    let mut delivered: Vec<String> = a
        .iter()
        .chain(&b)
        .flat_map(|(_, entries)| payloads(entries))
        .collect();
    delivered.sort();
    assert_eq!(
        delivered,
        ["m1", "n1", "n2", "n3"],
        "each new entry exactly once"
    );
    // Another group sees the same entries independently (from its own start).
    append(stores, 2, &["m2"]).await;
    let again = stores
        .consumer
        .read_group("learners", "a", &[1, 2], 10, block)
        .await
        .unwrap();
    assert_eq!(
        again
            .iter()
            .flat_map(|(_, e)| payloads(e))
            .collect::<Vec<_>>(),
        ["m2"]
    );
}
