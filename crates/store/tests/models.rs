//! The model registry: immutable versions, compare-and-set activation and the change counter,
//! with the same checks against the in-memory store and a real `redis-server`.
#![allow(clippy::unwrap_used)] // Test code: a panic with the error is the failure report.

use std::sync::Arc;

use iee_store::{
    Activation, Assignment, MemoryStore, ModelRegistry, ModelVersionMeta, RedisConfig, RedisStore,
    StoreError,
};
use iee_test_support::RedisServer;

/// The registry under test; keeps the Redis server alive as long as it is used.
struct Backend {
    registry: Arc<dyn ModelRegistry>,
    _server: Option<RedisServer>,
}

fn memory() -> Backend {
    Backend {
        registry: Arc::new(MemoryStore::new(1)),
        _server: None,
    }
}

fn redis() -> Backend {
    let server = RedisServer::start();
    let store = RedisStore::open(&RedisConfig {
        url: server.url(),
        ..RedisConfig::default()
    })
    .unwrap();
    Backend {
        registry: Arc::new(store),
        _server: Some(server),
    }
}

/// Runs one behavioural check against both backends.
macro_rules! both {
    ($name:ident) => {
        mod $name {
            #[tokio::test]
            async fn in_memory() {
                super::$name(&*super::memory().registry).await;
            }

            #[tokio::test]
            async fn on_redis() {
                let backend = super::redis();
                super::$name(&*backend.registry).await;
            }
        }
    };
}

fn meta(model_id: &str, version: &str, created_at_ms: i64) -> ModelVersionMeta {
    ModelVersionMeta {
        model_id: model_id.into(),
        version: version.into(),
        kind: "churn".into(),
        created_at_ms,
    }
}

fn done(activation: Activation) -> (Assignment, Option<Assignment>) {
    match activation {
        Activation::Done { current, previous } => (current, previous),
        other => panic!("expected Done, got {other:?}"),
    }
}

async fn put_is_idempotent_and_conflicting_bytes_are_refused(r: &dyn ModelRegistry) {
    let m = meta("churn-logreg", "v1", 1_000);
    assert!(r.put_version("acme", &m, b"weights-1").await.unwrap());
    // The same bytes again: nothing to do, even with other metadata.
    assert!(!r.put_version("acme", &m, b"weights-1").await.unwrap());
    let later = meta("churn-logreg", "v1", 2_000);
    assert!(!r.put_version("acme", &later, b"weights-1").await.unwrap());
    // Other bytes under the same version: refused, the first stays.
    let err = r.put_version("acme", &m, b"weights-2").await.unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err:?}");
    assert_eq!(
        r.get_version("acme", "churn-logreg", "v1").await.unwrap(),
        Some(b"weights-1".to_vec())
    );
    assert_eq!(r.list_versions("acme").await.unwrap(), vec![m]);
    assert_eq!(
        r.get_version("acme", "churn-logreg", "v2").await.unwrap(),
        None
    );
}
both!(put_is_idempotent_and_conflicting_bytes_are_refused);

async fn artifacts_are_kept_byte_for_byte(r: &dyn ModelRegistry) {
    let bytes: Vec<u8> = (0..=255u8).cycle().take(100_000).collect();
    assert!(
        r.put_version("acme", &meta("onnx", "v1", 1), &bytes)
            .await
            .unwrap()
    );
    assert_eq!(
        r.get_version("acme", "onnx", "v1").await.unwrap(),
        Some(bytes.clone())
    );
    assert!(
        !r.put_version("acme", &meta("onnx", "v1", 1), &bytes)
            .await
            .unwrap()
    );
    // A model id with the separator cannot reach another pair's artifact.
    assert_eq!(r.get_version("acme", "onnx:v1", "").await.unwrap(), None);
}
both!(artifacts_are_kept_byte_for_byte);

async fn versions_list_by_model_newest_first(r: &dyn ModelRegistry) {
    assert!(r.list_versions("acme").await.unwrap().is_empty());
    for m in [
        meta("propensity", "a", 5),
        meta("churn", "2024-01", 100),
        meta("churn", "2024-03", 300),
        meta("churn", "2024-02", 200),
        meta("propensity", "b", 5),
    ] {
        r.put_version("acme", &m, m.version.as_bytes())
            .await
            .unwrap();
    }
    let listed: Vec<(String, String)> = r
        .list_versions("acme")
        .await
        .unwrap()
        .into_iter()
        .map(|m| (m.model_id, m.version))
        .collect();
    let expected = [
        ("churn", "2024-03"),
        ("churn", "2024-02"),
        ("churn", "2024-01"),
        // Same creation time: the larger version first.
        ("propensity", "b"),
        ("propensity", "a"),
    ]
    .map(|(m, v)| (m.to_owned(), v.to_owned()));
    assert_eq!(listed, expected);
}
both!(versions_list_by_model_newest_first);

async fn activation_counts_revisions_and_refuses_stale_ones(r: &dyn ModelRegistry) {
    assert!(r.assignments("acme").await.unwrap().is_empty());
    // A first activation expecting some revision: the kind has none yet.
    assert_eq!(
        r.activate("acme", "churn", ("churn", "v1"), None, 0.0, 3, 10)
            .await
            .unwrap(),
        Activation::Conflict {
            current_revision: 0
        }
    );

    let (first, previous) = done(
        r.activate("acme", "churn", ("churn", "v1"), None, 0.0, 0, 10)
            .await
            .unwrap(),
    );
    assert_eq!(previous, None);
    assert_eq!(
        first,
        Assignment {
            kind: "churn".into(),
            champion: ("churn".into(), "v1".into()),
            challenger: None,
            challenger_share: 0.0,
            activated_at_ms: 10,
            revision: 1,
        }
    );

    // Compare-and-set on the current revision; the share keeps every digit.
    let share = 1.0 / 3.0;
    let (second, previous) = done(
        r.activate(
            "acme",
            "churn",
            ("churn", "v2"),
            Some(("churn", "v1")),
            share,
            1,
            20,
        )
        .await
        .unwrap(),
    );
    assert_eq!(previous, Some(first.clone()));
    assert_eq!(second.revision, 2);
    assert_eq!(second.challenger, Some(("churn".into(), "v1".into())));
    assert_eq!(second.challenger_share.to_bits(), share.to_bits());

    // A writer that still believes in revision 1 loses and changes nothing.
    assert_eq!(
        r.activate("acme", "churn", ("churn", "v3"), None, 0.0, 1, 30)
            .await
            .unwrap(),
        Activation::Conflict {
            current_revision: 2
        }
    );
    assert_eq!(r.assignments("acme").await.unwrap(), vec![second.clone()]);

    // Rollback is one more activation: the revision still grows.
    let (third, previous) = done(
        r.activate("acme", "churn", ("churn", "v1"), None, 0.0, 0, 40)
            .await
            .unwrap(),
    );
    assert_eq!(previous, Some(second));
    assert_eq!(third.revision, 3);
    assert_eq!(third.champion, first.champion);

    // Kinds count their revisions apart, and are listed by kind.
    let (other, _) = done(
        r.activate("acme", "propensity", ("ts", "v1"), None, 0.0, 0, 50)
            .await
            .unwrap(),
    );
    assert_eq!(other.revision, 1);
    let kinds: Vec<String> = r
        .assignments("acme")
        .await
        .unwrap()
        .into_iter()
        .map(|a| a.kind)
        .collect();
    assert_eq!(kinds, ["churn", "propensity"]);
}
both!(activation_counts_revisions_and_refuses_stale_ones);

async fn change_counter_moves_with_every_activation_only(r: &dyn ModelRegistry) {
    let tenants = ["acme".to_owned(), "globex".to_owned()];
    assert_eq!(r.assignments_changed(&tenants).await.unwrap(), [0, 0]);
    assert!(r.assignments_changed(&[]).await.unwrap().is_empty());

    r.put_version("acme", &meta("churn", "v1", 1), b"x")
        .await
        .unwrap();
    assert_eq!(
        r.assignments_changed(&tenants).await.unwrap(),
        [0, 0],
        "storing a version is no assignment change"
    );

    r.activate("acme", "churn", ("churn", "v1"), None, 0.0, 0, 1)
        .await
        .unwrap();
    let after_one = r.assignments_changed(&tenants).await.unwrap();
    assert_ne!(after_one[0], 0);
    assert_eq!(after_one[1], 0);

    // A refused activation is no change.
    r.activate("acme", "churn", ("churn", "v1"), None, 0.0, 7, 2)
        .await
        .unwrap();
    assert_eq!(r.assignments_changed(&tenants).await.unwrap(), after_one);

    r.activate("acme", "satisfaction", ("sat", "v1"), None, 0.0, 0, 3)
        .await
        .unwrap();
    let after_two = r.assignments_changed(&tenants).await.unwrap();
    assert_ne!(after_two[0], after_one[0]);
    assert_eq!(after_two[1], 0);
}
both!(change_counter_moves_with_every_activation_only);

async fn tenants_are_isolated(r: &dyn ModelRegistry) {
    r.put_version("acme", &meta("churn", "v1", 1), b"acme")
        .await
        .unwrap();
    // Another tenant may store other bytes under the same names.
    assert!(
        r.put_version("globex", &meta("churn", "v1", 1), b"globex")
            .await
            .unwrap()
    );
    assert_eq!(
        r.get_version("globex", "churn", "v1").await.unwrap(),
        Some(b"globex".to_vec())
    );
    assert_eq!(
        r.get_version("acme", "churn", "v1").await.unwrap(),
        Some(b"acme".to_vec())
    );
    assert_eq!(r.list_versions("initech").await.unwrap(), vec![]);

    r.activate("acme", "churn", ("churn", "v1"), None, 0.0, 0, 1)
        .await
        .unwrap();
    assert!(r.assignments("globex").await.unwrap().is_empty());
    let (globex, previous) = done(
        r.activate("globex", "churn", ("churn", "v1"), None, 0.0, 0, 1)
            .await
            .unwrap(),
    );
    assert_eq!((globex.revision, previous), (1, None));
    assert_eq!(r.assignments("acme").await.unwrap()[0].revision, 1);
}
both!(tenants_are_isolated);
