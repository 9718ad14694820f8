//! The decision service's storage: configuration versions and their activation, the decision
//! log, the outbound streams and the signal cursors, checked against both backends.
#![allow(clippy::unwrap_used)] // Test code: a panic with the error is the failure report.

mod common;

use std::{collections::HashMap, time::Duration};

use iee_store::{
    ActiveConfig, ConfigActivation, OutboundEntry, Published, Recorded, StoreError, StoredConfig,
    Stores,
};
use iee_test_support::wait_until;

/// Long enough that nothing expires during a check that does not wait for it.
const DAY: Duration = Duration::from_secs(86_400);

/// Runs one behavioural check against both backends.
macro_rules! both {
    ($name:ident) => {
        mod $name {
            #[tokio::test]
            async fn in_memory() {
                super::$name(&crate::common::memory(1).stores).await;
            }

            #[tokio::test]
            async fn on_redis() {
                let backend = crate::common::redis();
                super::$name(&backend.stores).await;
            }
        }
    };
}

fn active(version: &str, activated_at_ms: i64) -> Option<ActiveConfig> {
    Some(ActiveConfig {
        version: version.into(),
        activated_at_ms,
    })
}

fn done(previous: Option<&str>) -> ConfigActivation {
    ConfigActivation::Done {
        previous: previous.map(Into::into),
    }
}

fn conflict(current: Option<&str>) -> ConfigActivation {
    ConfigActivation::Conflict {
        current: current.map(Into::into),
    }
}

fn payloads(entries: &[OutboundEntry]) -> Vec<&[u8]> {
    entries.iter().map(|e| e.payload.as_slice()).collect()
}

fn new_cursor(published: Published) -> String {
    match published {
        Published::New(cursor) => cursor,
        other => panic!("expected New, got {other:?}"),
    }
}

async fn config_versions_are_immutable_and_put_is_idempotent(s: &Stores) {
    let c = &s.configs;
    assert!(
        c.put_config("acme", "v1", "rules: []\n", 1_000)
            .await
            .unwrap()
    );
    // The same text again: nothing to do, the first creation time stays.
    assert!(
        !c.put_config("acme", "v1", "rules: []\n", 2_000)
            .await
            .unwrap()
    );
    let err = c
        .put_config("acme", "v1", "rules: [x]\n", 3_000)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err:?}");
    assert_eq!(
        c.get_config("acme", "v1").await.unwrap(),
        Some(StoredConfig {
            yaml: "rules: []\n".into(),
            created_at_ms: 1_000,
        })
    );
    assert_eq!(c.get_config("acme", "v2").await.unwrap(), None);
    // Versions belong to their tenant.
    assert_eq!(c.get_config("globex", "v1").await.unwrap(), None);
    assert!(c.put_config("globex", "v1", "other\n", 5).await.unwrap());
    assert_eq!(
        c.get_config("acme", "v1").await.unwrap().unwrap().yaml,
        "rules: []\n"
    );
}
both!(config_versions_are_immutable_and_put_is_idempotent);

async fn activation_is_compare_and_set(s: &Stores) {
    let c = &s.configs;
    // Only stored versions can be activated.
    let err = c.activate_config("acme", None, "v1", 10).await.unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err:?}");
    c.put_config("acme", "v1", "one\n", 1).await.unwrap();
    c.put_config("acme", "v2", "two\n", 2).await.unwrap();
    // The tenant has no active version yet, so expecting one fails.
    assert_eq!(
        c.activate_config("acme", Some("v1"), "v2", 10)
            .await
            .unwrap(),
        conflict(None)
    );
    let tenants = ["acme".to_owned()];
    assert_eq!(c.active_configs(&tenants).await.unwrap(), vec![None]);
    assert_eq!(
        c.activate_config("acme", None, "v1", 20).await.unwrap(),
        done(None)
    );
    assert_eq!(
        c.active_configs(&tenants).await.unwrap(),
        vec![active("v1", 20)]
    );
    // A wrong expectation changes nothing and reports the active version.
    assert_eq!(
        c.activate_config("acme", None, "v2", 30).await.unwrap(),
        conflict(Some("v1"))
    );
    assert_eq!(
        c.activate_config("acme", Some("v0"), "v2", 30)
            .await
            .unwrap(),
        conflict(Some("v1"))
    );
    assert_eq!(
        c.active_configs(&tenants).await.unwrap(),
        vec![active("v1", 20)]
    );
    assert_eq!(
        c.activate_config("acme", Some("v1"), "v2", 40)
            .await
            .unwrap(),
        done(Some("v1"))
    );
    // A retry of that activation (its expectation now stale) is a no-op that succeeds.
    assert_eq!(
        c.activate_config("acme", Some("v1"), "v2", 50)
            .await
            .unwrap(),
        done(Some("v2"))
    );
    assert_eq!(
        c.active_configs(&tenants).await.unwrap(),
        vec![active("v2", 40)]
    );
}
both!(activation_is_compare_and_set);

async fn active_configs_answer_per_tenant_in_order(s: &Stores) {
    let c = &s.configs;
    assert!(c.active_configs(&[]).await.unwrap().is_empty());
    for (tenant, version, at) in [("acme", "a1", 100), ("initech", "i7", 200)] {
        c.put_config(tenant, version, "x\n", 1).await.unwrap();
        c.activate_config(tenant, None, version, at).await.unwrap();
    }
    // A stored but never activated version does not make a tenant active.
    c.put_config("globex", "g1", "x\n", 1).await.unwrap();
    let asked: Vec<String> = ["initech", "globex", "acme", "nobody"]
        .map(String::from)
        .into();
    assert_eq!(
        c.active_configs(&asked).await.unwrap(),
        vec![active("i7", 200), None, active("a1", 100), None]
    );
}
both!(active_configs_answer_per_tenant_in_order);

async fn decisions_are_recorded_and_read_back(s: &Stores) {
    let d = &s.decisions;
    assert_eq!(
        d.record_decision("acme", "d-1", "r-1", b"record-1", DAY)
            .await
            .unwrap(),
        Recorded::New
    );
    assert_eq!(
        d.get_decision("acme", "d-1").await.unwrap(),
        Some(b"record-1".to_vec())
    );
    assert_eq!(
        d.decision_for_request("acme", "r-1").await.unwrap(),
        Some(b"record-1".to_vec())
    );
    // Without a request id there is no index entry, only the record.
    assert_eq!(
        d.record_decision("acme", "d-2", "", b"record-2", DAY)
            .await
            .unwrap(),
        Recorded::New
    );
    assert_eq!(
        d.get_decision("acme", "d-2").await.unwrap(),
        Some(b"record-2".to_vec())
    );
    assert_eq!(d.decision_for_request("acme", "").await.unwrap(), None);
    // Unknown ids and other tenants find nothing.
    assert_eq!(d.get_decision("acme", "d-9").await.unwrap(), None);
    assert_eq!(d.get_decision("globex", "d-1").await.unwrap(), None);
    assert_eq!(d.decision_for_request("globex", "r-1").await.unwrap(), None);
}
both!(decisions_are_recorded_and_read_back);

async fn duplicate_request_id_returns_the_first_record_and_writes_nothing(s: &Stores) {
    let d = &s.decisions;
    d.record_decision("acme", "d-1", "r-1", b"first", DAY)
        .await
        .unwrap();
    assert_eq!(
        d.record_decision("acme", "d-2", "r-1", b"second", DAY)
            .await
            .unwrap(),
        Recorded::Duplicate(b"first".to_vec())
    );
    assert_eq!(d.get_decision("acme", "d-2").await.unwrap(), None);
    assert_eq!(
        d.decision_for_request("acme", "r-1").await.unwrap(),
        Some(b"first".to_vec())
    );
    // The same request id in another tenant is another request.
    assert_eq!(
        d.record_decision("globex", "d-2", "r-1", b"second", DAY)
            .await
            .unwrap(),
        Recorded::New
    );
}
both!(duplicate_request_id_returns_the_first_record_and_writes_nothing);

async fn decisions_expire_after_their_retention(s: &Stores) {
    let d = &s.decisions;
    let short = Duration::from_millis(200);
    d.record_decision("acme", "d-1", "r-1", b"gone-soon", short)
        .await
        .unwrap();
    d.record_decision("acme", "d-2", "r-2", b"kept", DAY)
        .await
        .unwrap();
    assert!(d.get_decision("acme", "d-1").await.unwrap().is_some());
    wait_until(Duration::from_secs(5), "the decision to expire", || async {
        d.get_decision("acme", "d-1")
            .await
            .unwrap()
            .is_none()
            .then_some(())
    })
    .await;
    assert_eq!(d.decision_for_request("acme", "r-1").await.unwrap(), None);
    assert_eq!(
        d.get_decision("acme", "d-2").await.unwrap(),
        Some(b"kept".to_vec())
    );
    // The request id is free again once its decision has expired.
    assert_eq!(
        d.record_decision("acme", "d-3", "r-1", b"again", DAY)
            .await
            .unwrap(),
        Recorded::New
    );
    assert_eq!(
        d.decision_for_request("acme", "r-1").await.unwrap(),
        Some(b"again".to_vec())
    );
}
both!(decisions_expire_after_their_retention);

async fn outbound_publishes_once_per_key_in_order(s: &Stores) {
    let o = &s.outbound;
    let first = new_cursor(
        o.publish_outbound("acme", "k-1", b"one", DAY, 100)
            .await
            .unwrap(),
    );
    assert_eq!(
        o.publish_outbound("acme", "k-1", b"one again", DAY, 100)
            .await
            .unwrap(),
        Published::Already(first.clone())
    );
    let second = new_cursor(
        o.publish_outbound("acme", "k-2", b"two", DAY, 100)
            .await
            .unwrap(),
    );
    assert_ne!(first, second);
    let all = o
        .read_outbound("acme", "", 10, Duration::ZERO)
        .await
        .unwrap();
    assert_eq!(payloads(&all), [b"one".as_slice(), b"two"]);
    assert_eq!(all[0].cursor, first);
    assert_eq!(all[1].cursor, second);
    let after_first = o
        .read_outbound("acme", &first, 10, Duration::ZERO)
        .await
        .unwrap();
    assert_eq!(payloads(&after_first), [b"two".as_slice()]);
    assert!(
        o.read_outbound("acme", &second, 10, Duration::ZERO)
            .await
            .unwrap()
            .is_empty()
    );
    let limited = o
        .read_outbound("acme", "", 1, Duration::ZERO)
        .await
        .unwrap();
    assert_eq!(payloads(&limited), [b"one".as_slice()]);
}
both!(outbound_publishes_once_per_key_in_order);

async fn outbound_key_can_publish_again_after_its_dedup_period(s: &Stores) {
    let o = &s.outbound;
    let short = Duration::from_millis(200);
    let first = new_cursor(
        o.publish_outbound("acme", "k-1", b"one", short, 100)
            .await
            .unwrap(),
    );
    let again = wait_until(
        Duration::from_secs(5),
        "the dedup marker to expire",
        || async {
            match o
                .publish_outbound("acme", "k-1", b"one later", short, 100)
                .await
                .unwrap()
            {
                Published::New(cursor) => Some(cursor),
                Published::Already(cursor) => {
                    assert_eq!(cursor, first);
                    None
                }
            }
        },
    )
    .await;
    assert_ne!(again, first);
    let all = o
        .read_outbound("acme", "", 10, Duration::ZERO)
        .await
        .unwrap();
    assert_eq!(payloads(&all), [b"one".as_slice(), b"one later"]);
}
both!(outbound_key_can_publish_again_after_its_dedup_period);

async fn blocking_read_wakes_when_an_entry_is_published(s: &Stores) {
    let o = s.outbound.clone();
    let seen = new_cursor(
        o.publish_outbound("acme", "k-0", b"seen", DAY, 100)
            .await
            .unwrap(),
    );
    let publisher = {
        let o = o.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(100)).await;
            // Another tenant's entry must not end the wait.
            o.publish_outbound("globex", "k-1", b"elsewhere", DAY, 100)
                .await
                .unwrap();
            o.publish_outbound("acme", "k-1", b"fresh", DAY, 100)
                .await
                .unwrap()
        })
    };
    let read = o
        .read_outbound("acme", &seen, 10, Duration::from_secs(5))
        .await
        .unwrap();
    let published = new_cursor(publisher.await.unwrap());
    assert_eq!(payloads(&read), [b"fresh".as_slice()]);
    assert_eq!(read[0].cursor, published);
}
both!(blocking_read_wakes_when_an_entry_is_published);

async fn reads_without_entries_come_back_empty(s: &Stores) {
    let o = &s.outbound;
    assert!(
        o.read_outbound("acme", "", 10, Duration::ZERO)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        o.read_outbound("acme", "", 10, Duration::from_millis(200))
            .await
            .unwrap()
            .is_empty()
    );
}
both!(reads_without_entries_come_back_empty);

async fn outbound_stream_is_trimmed_to_about_max_len(s: &Stores) {
    let o = &s.outbound;
    let max_len = 10;
    let total = 250;
    for i in 0..total {
        o.publish_outbound(
            "acme",
            &format!("k-{i}"),
            format!("p-{i}").as_bytes(),
            DAY,
            max_len,
        )
        .await
        .unwrap();
    }
    let kept = o
        .read_outbound("acme", "", 1_000, Duration::ZERO)
        .await
        .unwrap();
    // Redis trims whole stream nodes (up to 100 entries each), never below `max_len`.
    assert!(
        (max_len..=max_len + 100).contains(&kept.len()),
        "kept {}",
        kept.len()
    );
    let last = format!("p-{}", total - 1);
    assert_eq!(kept.last().unwrap().payload, last.as_bytes());
    // What is kept is the newest entries, contiguous.
    let first = total - kept.len();
    for (i, entry) in kept.iter().enumerate() {
        assert_eq!(entry.payload, format!("p-{}", first + i).as_bytes());
    }
}
both!(outbound_stream_is_trimmed_to_about_max_len);

async fn outbound_streams_and_keys_are_per_tenant(s: &Stores) {
    let o = &s.outbound;
    new_cursor(
        o.publish_outbound("acme", "k-1", b"for acme", DAY, 100)
            .await
            .unwrap(),
    );
    // The same key in another tenant is another publication.
    new_cursor(
        o.publish_outbound("globex", "k-1", b"for globex", DAY, 100)
            .await
            .unwrap(),
    );
    let acme = o
        .read_outbound("acme", "", 10, Duration::ZERO)
        .await
        .unwrap();
    assert_eq!(payloads(&acme), [b"for acme".as_slice()]);
    let globex = o
        .read_outbound("globex", "", 10, Duration::ZERO)
        .await
        .unwrap();
    assert_eq!(payloads(&globex), [b"for globex".as_slice()]);
    assert!(
        o.read_outbound("initech", "", 10, Duration::ZERO)
            .await
            .unwrap()
            .is_empty()
    );
}
both!(outbound_streams_and_keys_are_per_tenant);

async fn signal_cursors_are_kept_per_watcher_and_shard(s: &Stores) {
    let o = &s.outbound;
    assert!(o.signal_cursors("w-1").await.unwrap().is_empty());
    o.save_signal_cursor("w-1", 0, "5-0").await.unwrap();
    o.save_signal_cursor("w-1", 3, "7-1").await.unwrap();
    o.save_signal_cursor("w-2", 0, "9-0").await.unwrap();
    o.save_signal_cursor("w-1", 0, "6-2").await.unwrap();
    assert_eq!(
        o.signal_cursors("w-1").await.unwrap(),
        HashMap::from([(0, "6-2".to_owned()), (3, "7-1".to_owned())])
    );
    assert_eq!(
        o.signal_cursors("w-2").await.unwrap(),
        HashMap::from([(0, "9-0".to_owned())])
    );
}
both!(signal_cursors_are_kept_per_watcher_and_shard);
