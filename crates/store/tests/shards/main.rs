//! Membership, shard leases, the fenced shard state and multi-shard log consumption, with the
//! same behavioural checks against the in-memory store and a real `redis-server`.
#![allow(clippy::unwrap_used)] // Test code: a panic with the error is the failure report.

use std::time::{Duration, Instant};

use iee_store::{
    Acquire, AppendOutcome, AppendRequest, Lease, Member, PROFILE_CONSUMER, ProfileKey, ShardOwner,
    ShardWrite, Stores, Timer, WriteOutcome,
};
use iee_test_support::wait_until;

const LONG: Duration = Duration::from_secs(60);
const SHORT: Duration = Duration::from_millis(300);
const WAIT: Duration = Duration::from_secs(10);

#[path = "../common/mod.rs"]
mod common;

use common::{Backend, redis};

fn memory() -> Backend {
    common::memory(8)
}

/// Runs each behaviour against both backends as tests `<behaviour>::memory` and
/// `<behaviour>::redis`.
macro_rules! on_both_backends {
    ($($behaviour:ident),* $(,)?) => {$(
        mod $behaviour {
            #[tokio::test]
            async fn memory() {
                super::$behaviour(&crate::memory().stores).await;
            }

            #[tokio::test]
            async fn redis() {
                let backend = crate::redis();
                super::$behaviour(&backend.stores).await;
            }
        }
    )*};
}

mod consumer;
mod leases;
mod membership;
mod state;

fn pk(tenant: &str, key: &str) -> ProfileKey {
    ProfileKey {
        tenant_id: tenant.into(),
        key: key.into(),
    }
}

fn owner(shard: u32, node: &str, epoch: u64) -> ShardOwner {
    ShardOwner {
        shard,
        node_id: node.into(),
        address: format!("{node}:50051"),
        epoch,
    }
}

async fn acquire(stores: &Stores, shard: u32, node: &str, ttl: Duration) -> Acquire {
    stores
        .leases
        .acquire(shard, node, &format!("{node}:50051"), ttl)
        .await
        .unwrap()
}

async fn acquired(stores: &Stores, shard: u32, node: &str, ttl: Duration) -> Lease {
    match acquire(stores, shard, node, ttl).await {
        Acquire::Acquired(lease) => lease,
        held @ Acquire::Held(_) => panic!("{node} could not acquire shard {shard}: {held:?}"),
    }
}

fn write(lease: Lease, node: &str) -> ShardWrite {
    ShardWrite {
        shard: lease.shard,
        epoch: lease.epoch,
        node_id: node.into(),
        signal_retention: LONG,
        ..ShardWrite::default()
    }
}

fn cursors(outcome: WriteOutcome) -> Vec<String> {
    match outcome {
        WriteOutcome::Written { signal_cursors } => signal_cursors,
        fenced @ WriteOutcome::Fenced { .. } => panic!("write was fenced: {fenced:?}"),
    }
}

/// `<ms>-<seq>` as a pair that orders like the stream does.
fn position(cursor: &str) -> (u64, u64) {
    let (ms, seq) = cursor.split_once('-').unwrap();
    (ms.parse().unwrap(), seq.parse().unwrap())
}

async fn append(stores: &Stores, shard: u32, payloads: &[&str]) -> Vec<String> {
    let requests: Vec<AppendRequest> = payloads
        .iter()
        .map(|p| AppendRequest {
            shard,
            tenant_id: "acme".into(),
            event_id: format!("{shard}-{p}"),
            payload: p.as_bytes().to_vec(),
        })
        .collect();
    stores
        .log
        .append(&requests, LONG)
        .await
        .unwrap()
        .into_iter()
        .map(|outcome| match outcome {
            AppendOutcome::Appended(offset) => offset,
            AppendOutcome::Duplicate(offset) => panic!("duplicate at {offset}"),
        })
        .collect()
}

fn payloads(entries: &[iee_store::LogEntry]) -> Vec<String> {
    entries
        .iter()
        .map(|e| String::from_utf8(e.payload.clone()).unwrap())
        .collect()
}
