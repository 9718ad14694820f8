//! The KPI service's storage: offset-guarded commits of aggregates, customer states,
//! bookkeeping values and tenants per measurement partition, and the reads that sum them over
//! partitions, checked against both backends.
#![allow(clippy::unwrap_used)] // Test code: a panic with the error is the failure report.

mod common;

use std::{collections::HashMap, time::Duration};

use iee_store::{
    CustomerWrite, Granularity, KpiCommit, KpiIncrement, KpiMark, MarkOp, OffsetMove, Stores,
};

/// Measurement partitions (the in-memory store is sized for at least as many shards).
const PARTS: u32 = 4;
const DAY: Duration = Duration::from_secs(86_400);
/// The field families the checks read.
const FAMILIES: &[&str] = &["dec.n", "ev", "ses.b"];
/// Far in the future, Unix ms.
const LATER_MS: i64 = 4_000_000_000_000;

macro_rules! both {
    ($name:ident) => {
        mod $name {
            #[tokio::test]
            async fn in_memory() {
                super::$name(&crate::common::memory(super::PARTS).stores).await;
            }

            #[tokio::test]
            async fn on_redis() {
                let backend = crate::common::redis();
                super::$name(&backend.stores).await;
            }
        }
    };
}

fn inc(tenant: &str, bucket: i64, field: &str, delta: f64) -> KpiIncrement {
    KpiIncrement {
        tenant_id: tenant.into(),
        granularity: Granularity::Hour,
        bucket,
        field: field.into(),
        delta,
        expires_at_ms: LATER_MS,
    }
}

/// A commit moving one shard of `partition` (shard = partition + 4).
fn commit(partition: u32, expected: Option<&str>, offset: &str) -> KpiCommit {
    KpiCommit {
        partition,
        offsets: vec![OffsetMove {
            shard: partition + PARTS,
            expected: expected.map(str::to_owned),
            offset: offset.into(),
        }],
        customer_ttl: DAY,
        ..KpiCommit::default()
    }
}

async fn offset(stores: &Stores, partition: u32) -> Option<String> {
    stores
        .kpi
        .kpi_offsets(partition, &[partition + PARTS])
        .await
        .unwrap()
        .remove(0)
}

async fn commits_apply_only_at_the_expected_offset(stores: &Stores) {
    let kpi = &stores.kpi;
    assert_eq!(offset(stores, 1).await, None);
    let mut first = commit(1, None, "1-0");
    first.increments = vec![inc("acme", 3_600, "dec.n|1||0||", 2.0)];
    assert!(kpi.kpi_commit(&first).await.unwrap());
    assert_eq!(offset(stores, 1).await.as_deref(), Some("1-0"));
    // The same batch again (a replica that read before the commit): refused, nothing counted.
    assert!(!kpi.kpi_commit(&first).await.unwrap());
    let mut stale = commit(1, Some("0-9"), "2-0");
    stale.increments = vec![inc("acme", 3_600, "dec.n|1||0||", 5.0)];
    assert!(!kpi.kpi_commit(&stale).await.unwrap());
    let mut next = commit(1, Some("1-0"), "2-0");
    next.increments = vec![inc("acme", 3_600, "dec.n|1||0||", 0.5)];
    assert!(kpi.kpi_commit(&next).await.unwrap());
    let buckets = kpi
        .kpi_buckets(PARTS, "acme", Granularity::Hour, &[3_600], FAMILIES)
        .await
        .unwrap();
    assert_eq!(buckets[0].get("dec.n|1||0||"), Some(&2.5));
    // Other partitions are untouched.
    assert_eq!(offset(stores, 2).await, None);
}
both!(commits_apply_only_at_the_expected_offset);

async fn buckets_sum_over_partitions_and_keep_granularities_apart(stores: &Stores) {
    let kpi = &stores.kpi;
    for partition in 0..PARTS {
        let mut c = commit(partition, None, "1-0");
        c.increments = vec![
            inc("acme", 0, "ev|1||0||", f64::from(partition + 1)),
            inc("acme", 3_600, "ev|1||0||", 10.0),
            inc("other", 0, "ev|1||0||", 100.0),
            KpiIncrement {
                granularity: Granularity::Day,
                ..inc("acme", 0, "ev|1||0||", 1000.0)
            },
            // Decrements and fractions are kept exactly.
            inc("acme", 0, "ses.b|1||0||", -0.25),
        ];
        assert!(kpi.kpi_commit(&c).await.unwrap());
    }
    let hours = kpi
        .kpi_buckets(
            PARTS,
            "acme",
            Granularity::Hour,
            &[0, 3_600, 7_200],
            FAMILIES,
        )
        .await
        .unwrap();
    assert_eq!(hours.len(), 3);
    assert_eq!(hours[0].get("ev|1||0||"), Some(&10.0)); // 1 + 2 + 3 + 4
    assert_eq!(hours[0].get("ses.b|1||0||"), Some(&-1.0));
    assert_eq!(hours[1].get("ev|1||0||"), Some(&40.0));
    assert!(hours[2].is_empty());
    // Only the families asked for are read.
    let events_only = kpi
        .kpi_buckets(PARTS, "acme", Granularity::Hour, &[0], &["ev"])
        .await
        .unwrap();
    assert_eq!(events_only[0].len(), 1, "{events_only:?}");
    assert_eq!(events_only[0].get("ev|1||0||"), Some(&10.0));
    let days = kpi
        .kpi_buckets(PARTS, "acme", Granularity::Day, &[0], FAMILIES)
        .await
        .unwrap();
    assert_eq!(days[0].get("ev|1||0||"), Some(&4000.0));
    // Reading fewer partitions reads only those.
    let two = kpi
        .kpi_buckets(2, "acme", Granularity::Hour, &[0], FAMILIES)
        .await
        .unwrap();
    assert_eq!(two[0].get("ev|1||0||"), Some(&3.0));
    assert_eq!(
        kpi.kpi_tenants(PARTS).await.unwrap(),
        Vec::<String>::new(),
        "tenants are registered only when a commit names them"
    );
}
both!(buckets_sum_over_partitions_and_keep_granularities_apart);

async fn expired_buckets_are_not_read(stores: &Stores) {
    let kpi = &stores.kpi;
    let mut c = commit(0, None, "1-0");
    let now_ms = i64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis(),
    )
    .unwrap();
    c.increments = vec![KpiIncrement {
        expires_at_ms: now_ms + 300,
        ..inc("acme", 0, "ev|1||0||", 1.0)
    }];
    assert!(kpi.kpi_commit(&c).await.unwrap());
    let before = kpi
        .kpi_buckets(PARTS, "acme", Granularity::Hour, &[0], FAMILIES)
        .await
        .unwrap();
    assert_eq!(before[0].get("ev|1||0||"), Some(&1.0));
    tokio::time::sleep(Duration::from_millis(600)).await;
    let after = kpi
        .kpi_buckets(PARTS, "acme", Granularity::Hour, &[0], FAMILIES)
        .await
        .unwrap();
    assert!(after[0].is_empty(), "{after:?}");
}
both!(expired_buckets_are_not_read);

async fn customer_states_marks_and_tenants_commit_with_the_offset(stores: &Stores) {
    let kpi = &stores.kpi;
    let state = vec![0_u8, 159, 146, 150, 255]; // Not UTF-8: states are binary.
    let mut c = commit(2, None, "5-0");
    c.customers = vec![
        CustomerWrite {
            tenant_id: "acme".into(),
            key: "c-1".into(),
            state: Some(state.clone()),
        },
        CustomerWrite {
            tenant_id: "acme".into(),
            key: "c-2".into(),
            state: Some(vec![1]),
        },
    ];
    c.marks = vec![
        KpiMark {
            tenant_id: "acme".into(),
            field: "exp|global|first".into(),
            op: MarkOp::Min,
            value: 500.0,
        },
        KpiMark {
            tenant_id: "acme".into(),
            field: "exp|global|last".into(),
            op: MarkOp::Max,
            value: 500.0,
        },
        KpiMark {
            tenant_id: "acme".into(),
            field: "arm|global/control|alloc".into(),
            op: MarkOp::Set,
            value: 0.1,
        },
    ];
    c.tenants = vec!["acme".into()];
    assert!(kpi.kpi_commit(&c).await.unwrap());
    let read = kpi
        .kpi_customers(
            2,
            &[
                ("acme".into(), "c-1".into()),
                ("acme".into(), "missing".into()),
                ("acme".into(), "c-2".into()),
            ],
        )
        .await
        .unwrap();
    assert_eq!(read, vec![Some(state), None, Some(vec![1])]);
    // The same customer in another partition is another state.
    assert_eq!(
        kpi.kpi_customers(1, &[("acme".into(), "c-1".into())])
            .await
            .unwrap(),
        vec![None]
    );

    let mut later = commit(2, Some("5-0"), "6-0");
    later.customers = vec![CustomerWrite {
        tenant_id: "acme".into(),
        key: "c-2".into(),
        state: None,
    }];
    let mark = |field: &str, op, value| KpiMark {
        tenant_id: "acme".into(),
        field: field.into(),
        op,
        value,
    };
    later.marks = vec![
        mark("exp|global|first", MarkOp::Min, 900.0),
        mark("exp|global|last", MarkOp::Max, 900.0),
        mark("arm|global/control|alloc", MarkOp::Set, 0.2),
    ];
    assert!(kpi.kpi_commit(&later).await.unwrap());
    assert_eq!(
        kpi.kpi_customers(2, &[("acme".into(), "c-2".into())])
            .await
            .unwrap(),
        vec![None]
    );
    let marks = kpi.kpi_marks(PARTS, "acme").await.unwrap();
    assert_eq!(marks.len(), PARTS as usize);
    let expected: HashMap<String, f64> = [
        ("exp|global|first".to_owned(), 500.0),
        ("exp|global|last".to_owned(), 900.0),
        ("arm|global/control|alloc".to_owned(), 0.2),
    ]
    .into();
    assert_eq!(marks[2], expected);
    assert!(marks[0].is_empty());
    assert_eq!(kpi.kpi_tenants(PARTS).await.unwrap(), vec!["acme"]);
}
both!(customer_states_marks_and_tenants_commit_with_the_offset);

async fn a_commit_moves_every_shard_of_its_batch_or_none(stores: &Stores) {
    let kpi = &stores.kpi;
    let moves = |a: Option<&str>, b: Option<&str>, to: &str| {
        vec![
            OffsetMove {
                shard: 1,
                expected: a.map(str::to_owned),
                offset: to.into(),
            },
            OffsetMove {
                shard: 5,
                expected: b.map(str::to_owned),
                offset: to.into(),
            },
        ]
    };
    let mut both_new = commit(1, None, "");
    both_new.offsets = moves(None, None, "1-0");
    assert!(kpi.kpi_commit(&both_new).await.unwrap());
    // One shard at the expected offset and one not: nothing moves.
    let mut half = commit(1, None, "");
    half.offsets = moves(Some("1-0"), Some("0-5"), "2-0");
    half.increments = vec![inc("acme", 0, "ev|1||0||", 1.0)];
    assert!(!kpi.kpi_commit(&half).await.unwrap());
    assert_eq!(
        kpi.kpi_offsets(1, &[1, 5, 9]).await.unwrap(),
        vec![Some("1-0".to_owned()), Some("1-0".to_owned()), None]
    );
    let mut next = commit(1, None, "");
    next.offsets = moves(Some("1-0"), Some("1-0"), "2-0");
    assert!(kpi.kpi_commit(&next).await.unwrap());
    assert_eq!(
        kpi.kpi_offsets(1, &[1, 5]).await.unwrap(),
        vec![Some("2-0".to_owned()), Some("2-0".to_owned())]
    );
    assert!(
        kpi.kpi_buckets(PARTS, "acme", Granularity::Hour, &[0], FAMILIES)
            .await
            .unwrap()[0]
            .is_empty()
    );
}
both!(a_commit_moves_every_shard_of_its_batch_or_none);

async fn a_refused_commit_changes_nothing(stores: &Stores) {
    let kpi = &stores.kpi;
    assert!(kpi.kpi_commit(&commit(3, None, "1-0")).await.unwrap());
    let mut stale = commit(3, None, "2-0");
    stale.increments = vec![inc("acme", 0, "ev|1||0||", 1.0)];
    stale.customers = vec![CustomerWrite {
        tenant_id: "acme".into(),
        key: "c".into(),
        state: Some(vec![7]),
    }];
    stale.tenants = vec!["acme".into()];
    assert!(!kpi.kpi_commit(&stale).await.unwrap());
    assert!(
        kpi.kpi_buckets(PARTS, "acme", Granularity::Hour, &[0], FAMILIES)
            .await
            .unwrap()[0]
            .is_empty()
    );
    assert_eq!(
        kpi.kpi_customers(3, &[("acme".into(), "c".into())])
            .await
            .unwrap(),
        vec![None]
    );
    assert!(kpi.kpi_tenants(PARTS).await.unwrap().is_empty());
    assert_eq!(offset(stores, 3).await.as_deref(), Some("1-0"));
}
both!(a_refused_commit_changes_nothing);
