//! The propensity models' shared statistics, with the same checks against the in-memory store
//! and a real `redis-server`: concurrent merges add up exactly, merges decay old evidence, a
//! width mismatch changes nothing, a retried merge is applied once, unknown actions load as
//! `None`.
#![allow(clippy::unwrap_used)] // Test code: a panic with the error is the failure report.

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use iee_store::{
    ActionDelta, MemoryStore, MergeToken, PropensityStats, RedisConfig, RedisStore, StoreError,
};
use iee_test_support::RedisServer;

fn delta(action: &str, precision: &[f64], eta: &[f64], observations: u64) -> ActionDelta {
    ActionDelta {
        action_id: action.to_owned(),
        precision: precision.to_vec(),
        eta: eta.to_vec(),
        observations,
    }
}

/// A token no merge has used yet (one replica, a growing sequence).
fn next() -> MergeToken {
    static SEQUENCE: AtomicU64 = AtomicU64::new(1);
    MergeToken {
        replica_id: "test".into(),
        sequence: SEQUENCE.fetch_add(1, Ordering::Relaxed),
    }
}

fn names(actions: &[&str]) -> Vec<String> {
    actions.iter().map(|a| (*a).to_owned()).collect()
}

/// Runs each behaviour against both backends as tests `<behaviour>::memory` and
/// `<behaviour>::redis`.
macro_rules! on_both_backends {
    ($($behaviour:ident),* $(,)?) => {$(
        mod $behaviour {
            use std::sync::Arc;

            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn memory() {
                super::$behaviour(Arc::new(iee_store::MemoryStore::new(4))).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn redis() {
                let server = iee_test_support::RedisServer::start();
                super::$behaviour(super::redis_store(&server)).await;
            }
        }
    )*};
}

fn redis_store(server: &RedisServer) -> Arc<RedisStore> {
    Arc::new(
        RedisStore::open(&RedisConfig {
            url: server.url(),
            ..RedisConfig::default()
        })
        .unwrap(),
    )
}

on_both_backends!(
    concurrent_merges_add_up_exactly,
    unknown_actions_load_as_none,
    width_mismatch_fails_and_changes_nothing,
    merge_decays_old_evidence_by_its_half_life,
    models_and_tenants_are_separate,
    a_retried_merge_is_applied_once,
);

async fn concurrent_merges_add_up_exactly<S: PropensityStats>(store: Arc<S>) {
    const TASKS: u64 = 8;
    const MERGES: u64 = 40;
    let tasks: Vec<_> = (0..TASKS)
        .map(|task| {
            let store = store.clone();
            tokio::spawn(async move {
                for i in 0..MERGES {
                    // Dyadic values: every partial sum is exact in f64, whatever the order.
                    let step = (task * MERGES + i) as f64 / 64.0;
                    let deltas = [
                        delta("offer-a", &[1.0, step], &[-0.5, step], 1),
                        delta("offer-b", &[0.25, 0.0], &[2.0, -step], 3),
                        // The empty id is a valid action (the learner's pooled posterior).
                        delta("", &[0.125, 0.125], &[0.0, 1.0], 2),
                    ];
                    let token = MergeToken {
                        replica_id: format!("replica-{task}"),
                        sequence: i + 1,
                    };
                    assert!(store.merge("acme", "m1", &token, &deltas, 0).await.unwrap());
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    let n = (TASKS * MERGES) as f64;
    let step_sum: f64 = (0..TASKS * MERGES).map(|k| k as f64 / 64.0).sum();
    let loaded = store
        .load("acme", "m1", &names(&["offer-a", "offer-b", ""]))
        .await
        .unwrap();
    let [Some(a), Some(b), Some(pooled)] = loaded.as_slice() else {
        panic!("every merged action loads: {loaded:?}");
    };
    assert_eq!(a.precision, vec![n, step_sum]);
    assert_eq!(a.eta, vec![-0.5 * n, step_sum]);
    assert_eq!(a.observations, TASKS * MERGES);
    assert_eq!(b.precision, vec![0.25 * n, 0.0]);
    assert_eq!(b.eta, vec![2.0 * n, -step_sum]);
    assert_eq!(b.observations, 3 * TASKS * MERGES);
    assert_eq!(pooled.precision, vec![0.125 * n, 0.125 * n]);
    assert_eq!(pooled.observations, 2 * TASKS * MERGES);
    assert!(a.updated_at_ms > 1_600_000_000_000, "{}", a.updated_at_ms);
    assert_eq!(
        store.actions("acme", "m1").await.unwrap(),
        names(&["", "offer-a", "offer-b"])
    );
}

async fn unknown_actions_load_as_none<S: PropensityStats>(store: Arc<S>) {
    assert_eq!(
        store.load("acme", "m1", &names(&["never"])).await.unwrap(),
        vec![None]
    );
    assert!(store.actions("acme", "m1").await.unwrap().is_empty());
    store
        .merge(
            "acme",
            "m1",
            &next(),
            &[delta("seen", &[1.0], &[2.0], 1)],
            0,
        )
        .await
        .unwrap();
    let loaded = store
        .load("acme", "m1", &names(&["never", "seen", "also-never"]))
        .await
        .unwrap();
    assert!(loaded[0].is_none() && loaded[2].is_none());
    assert_eq!(loaded[1].as_ref().unwrap().eta, vec![2.0]);
    assert!(store.load("acme", "m1", &[]).await.unwrap().is_empty());
    // Merging nothing is a no-op that needs no round trip.
    store.merge("acme", "m1", &next(), &[], 0).await.unwrap();
}

async fn width_mismatch_fails_and_changes_nothing<S: PropensityStats>(store: Arc<S>) {
    store
        .merge(
            "acme",
            "m1",
            &next(),
            &[delta("x", &[1.0, 1.0], &[0.5, 0.5], 1)],
            0,
        )
        .await
        .unwrap();
    // The first delta of the call is valid; the whole call still fails.
    let err = store
        .merge(
            "acme",
            "m1",
            &next(),
            &[
                delta("y", &[1.0], &[1.0], 1),
                delta("x", &[1.0, 1.0, 1.0], &[0.0, 0.0, 0.0], 1),
            ],
            0,
        )
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Backend(_)), "{err:?}");
    assert!(err.to_string().contains("action x"), "{err}");
    let loaded = store.load("acme", "m1", &names(&["x", "y"])).await.unwrap();
    assert_eq!(loaded[0].as_ref().unwrap().precision, vec![1.0, 1.0]);
    assert_eq!(loaded[1], None);
    // Malformed deltas are refused before reaching the backend.
    for bad in [
        delta("x", &[1.0, 1.0], &[0.5], 1),
        delta("x", &[1.0, f64::NAN], &[0.5, 0.5], 1),
    ] {
        assert!(store.merge("acme", "m1", &next(), &[bad], 0).await.is_err());
    }
}

async fn merge_decays_old_evidence_by_its_half_life<S: PropensityStats>(store: Arc<S>) {
    let half_life_ms = 20;
    store
        .merge(
            "acme",
            "m1",
            &next(),
            &[delta("x", &[8.0], &[-4.0], 5)],
            half_life_ms,
        )
        .await
        .unwrap();
    let first = store.load("acme", "m1", &names(&["x"])).await.unwrap()[0]
        .clone()
        .unwrap();
    // Time must pass for evidence to age; nothing else is being waited for.
    tokio::time::sleep(Duration::from_millis(50)).await;
    store
        .merge(
            "acme",
            "m1",
            &next(),
            &[delta("x", &[1.0], &[1.0], 1)],
            half_life_ms,
        )
        .await
        .unwrap();
    let second = store.load("acme", "m1", &names(&["x"])).await.unwrap()[0]
        .clone()
        .unwrap();
    let elapsed = second.updated_at_ms - first.updated_at_ms;
    assert!(elapsed >= 50, "{elapsed} ms");
    let kept = (-(elapsed as f64) / half_life_ms as f64).exp2();
    assert!(
        (second.precision[0] - (8.0 * kept + 1.0)).abs() < 1e-12,
        "{second:?}"
    );
    assert!(
        (second.eta[0] - (-4.0 * kept + 1.0)).abs() < 1e-12,
        "{second:?}"
    );
    assert_eq!(
        second.observations, 6,
        "observations are counted, not decayed"
    );
    // A reader ages what it loads to its own time the same way.
    let mut aged = second.clone();
    aged.decay_to(second.updated_at_ms + half_life_ms as i64, half_life_ms);
    assert!((aged.precision[0] - second.precision[0] / 2.0).abs() < 1e-12);
}

async fn models_and_tenants_are_separate<S: PropensityStats>(store: Arc<S>) {
    store
        .merge("acme", "m1", &next(), &[delta("x", &[1.0], &[1.0], 1)], 0)
        .await
        .unwrap();
    store
        .merge(
            "acme",
            "m2",
            &next(),
            &[delta("x", &[2.0, 2.0], &[2.0, 2.0], 1)],
            0,
        )
        .await
        .unwrap();
    store
        .merge("globex", "m1", &next(), &[delta("z", &[3.0], &[3.0], 1)], 0)
        .await
        .unwrap();
    assert_eq!(store.actions("acme", "m1").await.unwrap(), names(&["x"]));
    assert_eq!(store.actions("globex", "m1").await.unwrap(), names(&["z"]));
    let m2 = store.load("acme", "m2", &names(&["x"])).await.unwrap();
    assert_eq!(m2[0].as_ref().unwrap().precision, vec![2.0, 2.0]);
    assert_eq!(
        store.load("globex", "m1", &names(&["x"])).await.unwrap(),
        vec![None]
    );
}

#[tokio::test]
async fn redis_and_memory_store_the_same_numbers() {
    let server = RedisServer::start();
    let redis = redis_store(&server);
    let memory = MemoryStore::new(1);
    let deltas = [
        delta(
            "a",
            &[0.1, 1e-300, 3.5],
            &[-0.3, 1e300, f64::MIN_POSITIVE],
            7,
        ),
        delta("a", &[0.2, 0.0, -0.0], &[0.7, 0.0, 1.0 / 3.0], 1),
    ];
    redis
        .merge("t", "m", &next(), &deltas, 3_600_000)
        .await
        .unwrap();
    memory
        .merge("t", "m", &next(), &deltas, 3_600_000)
        .await
        .unwrap();
    let on_redis = redis.load("t", "m", &names(&["a"])).await.unwrap();
    let in_memory = memory.load("t", "m", &names(&["a"])).await.unwrap();
    let (r, m) = (
        on_redis[0].as_ref().unwrap(),
        in_memory[0].as_ref().unwrap(),
    );
    assert_eq!(r.precision, m.precision);
    assert_eq!(r.eta, m.eta);
    assert_eq!(r.observations, 8);
    assert_eq!(r.precision[0], 0.1 + 0.2);
}

async fn a_retried_merge_is_applied_once<S: PropensityStats>(store: Arc<S>) {
    let token = |replica: &str, sequence| MergeToken {
        replica_id: replica.to_owned(),
        sequence,
    };
    let d = [delta("x", &[1.0], &[1.0], 1)];
    assert!(
        store
            .merge("acme", "m1", &token("r1", 5), &d, 0)
            .await
            .unwrap()
    );
    // The reply was lost and the replica retries: nothing is added twice.
    assert!(
        !store
            .merge("acme", "m1", &token("r1", 5), &d, 0)
            .await
            .unwrap()
    );
    assert!(
        !store
            .merge("acme", "m1", &token("r1", 4), &d, 0)
            .await
            .unwrap()
    );
    // Another replica's merges, and the next one of the first, are applied.
    assert!(
        store
            .merge("acme", "m1", &token("r2", 5), &d, 0)
            .await
            .unwrap()
    );
    assert!(
        store
            .merge("acme", "m1", &token("r1", 6), &d, 0)
            .await
            .unwrap()
    );
    // Sequences are per model: the same token is new to another model.
    assert!(
        store
            .merge("acme", "m2", &token("r1", 5), &d, 0)
            .await
            .unwrap()
    );
    let stats = store.load("acme", "m1", &names(&["x"])).await.unwrap()[0]
        .clone()
        .unwrap();
    assert_eq!((stats.precision[0], stats.observations), (3.0, 3));
    // A failed merge does not consume its sequence number.
    let wide = [delta("x", &[1.0, 1.0], &[1.0, 1.0], 1)];
    assert!(
        store
            .merge("acme", "m1", &token("r1", 7), &wide, 0)
            .await
            .is_err()
    );
    assert!(
        store
            .merge("acme", "m1", &token("r1", 7), &d, 0)
            .await
            .unwrap()
    );
}
