//! The Redis store against a real `redis-server`: both script groupings give the same answers,
#![allow(clippy::unwrap_used)] // Test code: a panic with the error is the failure report.
//! keep per-shard order, and never touch more than one hash slot per call when asked not to.

use std::time::Duration;

use iee_store::{AppendOutcome, AppendRequest, EventLog, MemoryStore, RedisConfig, RedisStore};
use iee_test_support::RedisServer;

fn entries(ids: &[(u32, &str)]) -> Vec<AppendRequest> {
    ids.iter()
        .map(|(shard, id)| AppendRequest {
            shard: *shard,
            tenant_id: "acme".into(),
            event_id: (*id).into(),
            payload: id.as_bytes().to_vec(),
        })
        .collect()
}

fn kinds(outcomes: &[AppendOutcome]) -> Vec<&'static str> {
    outcomes
        .iter()
        .map(|o| match o {
            AppendOutcome::Appended(_) => "appended",
            AppendOutcome::Duplicate(_) => "duplicate",
        })
        .collect()
}

async fn check_grouping(per_shard_scripts: bool, events_per_script: usize) {
    let redis = RedisServer::start();
    let store = RedisStore::open(&RedisConfig {
        url: redis.url(),
        per_shard_scripts,
        events_per_script,
        ..RedisConfig::default()
    })
    .unwrap();
    let memory = MemoryStore::new(8);
    let window = Duration::from_secs(60);
    let batch = entries(&[
        (3, "a"),
        (5, "b"),
        (3, "c"),
        (3, "a"),
        (7, "d"),
        (5, "b"),
        (3, "e"),
    ]);

    let on_redis = store.append(&batch, window).await.unwrap();
    let in_memory = memory.append(&batch, window).await.unwrap();
    assert_eq!(kinds(&on_redis), kinds(&in_memory));
    assert_eq!(
        kinds(&on_redis),
        [
            "appended",
            "appended",
            "appended",
            "duplicate",
            "appended",
            "duplicate",
            "appended"
        ]
    );
    // Duplicates name the original's offset.
    assert_eq!(
        on_redis[3],
        AppendOutcome::Duplicate(match &on_redis[0] {
            AppendOutcome::Appended(o) => o.clone(),
            other => panic!("{other:?}"),
        })
    );

    // Shard 3 holds a, c, e in request order.
    let shard3: Vec<Vec<u8>> = store
        .read(3, None, 100)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.payload)
        .collect();
    assert_eq!(shard3, vec![b"a".to_vec(), b"c".to_vec(), b"e".to_vec()]);
    assert_eq!(store.len(5).await.unwrap(), 1);

    // Reading after an offset continues from there.
    let first = store.read(3, None, 1).await.unwrap();
    let rest = store.read(3, Some(&first[0].offset), 100).await.unwrap();
    assert_eq!(rest.len(), 2);
}

#[tokio::test]
async fn batch_grouped_scripts_dedup_and_keep_order() {
    check_grouping(false, 128).await;
}

#[tokio::test]
async fn per_shard_scripts_dedup_and_keep_order() {
    check_grouping(true, 128).await;
}

#[tokio::test]
async fn tiny_script_groups_dedup_across_calls_of_one_pipeline() {
    // A duplicate in a later script call of the same pipeline sees the earlier call's write.
    check_grouping(false, 1).await;
}

#[tokio::test]
async fn scripts_are_reloaded_after_redis_forgets_them() {
    let redis = RedisServer::start();
    let store = RedisStore::open(&RedisConfig {
        url: redis.url(),
        ..RedisConfig::default()
    })
    .unwrap();
    let window = Duration::from_secs(60);
    store.append(&entries(&[(1, "x")]), window).await.unwrap();
    let mut conn = redis.connection();
    redis::cmd("SCRIPT")
        .arg("FLUSH")
        .query::<()>(&mut conn)
        .unwrap();
    let outcome = store
        .append(&entries(&[(1, "x"), (1, "y")]), window)
        .await
        .unwrap();
    assert_eq!(kinds(&outcome), ["duplicate", "appended"]);
}

#[tokio::test]
async fn unreachable_redis_is_unavailable() {
    let mut redis = RedisServer::start();
    let store = RedisStore::open(&RedisConfig {
        url: redis.url(),
        connect_timeout_ms: 200,
        response_timeout_ms: 200,
        ..RedisConfig::default()
    })
    .unwrap();
    redis.kill();
    let err = store
        .append(&entries(&[(1, "x")]), Duration::from_secs(60))
        .await
        .unwrap_err();
    assert!(
        matches!(err, iee_store::StoreError::Unavailable(_)),
        "{err:?}"
    );
}
