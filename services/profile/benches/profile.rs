//! Measurements of the profile service for docs/performance.md, against a private
//! `redis-server`. Run in release:
//!
//! ```text
//! cargo build --release --bins
//! cargo bench -p iee-profile --bench profile -- apply|visibility|activation|resident|failover
//! ```
//!
//! - `apply`: events/s one node applies, catching up on a pre-filled log.
//! - `visibility`: time from a log append (what ingest acknowledges) to the profile showing the
//!   event, through `GetProfile` with `min_applied_offset`, at a moderate open-loop rate.
//! - `activation`: `GetProfile` latency of passivated customers (state loaded from Redis)
//!   against resident ones.
//! - `resident`: process RSS per resident customer actor (with its state).
//! - `failover`: three `iee-profile` processes; SIGKILL one, time until every shard is owned
//!   again by a live node; 20 runs.
#![allow(clippy::unwrap_used, clippy::print_stdout)]

use std::{
    sync::Arc,
    time::{Duration, Instant, SystemTime},
};

use hdrhistogram::Histogram;
use iee_api::{
    pb::common::{Channel, CustomerRef, Event, LogRecord, Money},
    profile::{GetProfileRequest, ProfileApi},
    shard::shard_of,
};
use iee_config::ClusterConfig;
use iee_profile::{ProfileConfig, ProfileDeps, ProfileNode};
use iee_runtime::Shutdown;
use iee_store::{AppendOutcome, AppendRequest, RedisConfig, StoreConfig, Stores};
use iee_telemetry::MetricsRegistry;
use iee_test_support::{RedisServer, ServerProcess};
use prost::Message;

// The binaries' allocator, so memory figures match them.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const SHARDS: u32 = 64;

fn stores(redis: &RedisServer) -> Stores {
    let config = StoreConfig {
        backend: iee_store::Backend::Redis,
        redis: RedisConfig {
            url: redis.url(),
            ..RedisConfig::default()
        },
    };
    Stores::open(&config, SHARDS).unwrap()
}

fn node(stores: &Stores, tweak: impl FnOnce(&mut ProfileConfig)) -> ProfileNode {
    let mut config = ProfileConfig {
        node_id: "bench".to_owned(),
        ..ProfileConfig::default()
    };
    tweak(&mut config);
    let node = ProfileNode::build(
        config,
        &ClusterConfig {
            shard_count: SHARDS,
        },
        ProfileDeps {
            stores: stores.clone(),
            metrics: MetricsRegistry::default(),
            shutdown: Shutdown::new(),
        },
    );
    node.start("127.0.0.1:1".to_owned());
    node
}

fn record(customer: &str, seq: u64) -> (u32, AppendRequest) {
    let event = Event {
        event_id: format!("{customer}-{seq}"),
        tenant_id: "bench".to_owned(),
        customer_id: customer.to_owned(),
        r#type: if seq.is_multiple_of(5) {
            "purchase"
        } else {
            "page_view"
        }
        .to_owned(),
        channel: Channel::Web as i32,
        touchpoint: "home".to_owned(),
        occurred_at: Some(SystemTime::now().into()),
        value: seq.is_multiple_of(5).then(|| Money {
            amount_minor: 1_000,
            currency: "EUR".to_owned(),
        }),
        ..Event::default()
    };
    let shard = shard_of("bench", customer, SHARDS);
    let payload = LogRecord {
        event: Some(event),
        received_at: Some(SystemTime::now().into()),
        ..LogRecord::default()
    }
    .encode_to_vec();
    (
        shard,
        AppendRequest {
            shard,
            tenant_id: "bench".to_owned(),
            event_id: format!("{customer}-{seq}"),
            payload,
        },
    )
}

async fn append(stores: &Stores, requests: &[AppendRequest]) -> Vec<String> {
    let outcomes = stores
        .log
        .append(requests, Duration::from_secs(3600))
        .await
        .unwrap();
    outcomes
        .into_iter()
        .map(|o| match o {
            AppendOutcome::Appended(offset) | AppendOutcome::Duplicate(offset) => offset,
        })
        .collect()
}

fn customer(tenant: &str, id: &str) -> Option<CustomerRef> {
    Some(CustomerRef {
        tenant_id: tenant.to_owned(),
        customer_id: id.to_owned(),
        anonymous_id: String::new(),
    })
}

async fn wait_ready(node: &ProfileNode) {
    let started = Instant::now();
    while !node.is_ready() {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "node never ready"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn print_latency(name: &str, h: &Histogram<u64>) {
    println!(
        "{name}: n={} p50={:.3} ms p99={:.3} ms p99.9={:.3} ms max={:.3} ms",
        h.len(),
        h.value_at_quantile(0.5) as f64 / 1000.0,
        h.value_at_quantile(0.99) as f64 / 1000.0,
        h.value_at_quantile(0.999) as f64 / 1000.0,
        h.max() as f64 / 1000.0
    );
}

async fn apply_throughput() {
    let redis = RedisServer::start();
    let stores = stores(&redis);
    let (customers, per_customer) = (20_000_u64, 25_u64);
    let total = customers * per_customer;
    let mut batch = Vec::with_capacity(1_000);
    for seq in 0..per_customer {
        for c in 0..customers {
            batch.push(record(&format!("c{c}"), seq).1);
            if batch.len() == 1_000 {
                append(&stores, &batch).await;
                batch.clear();
            }
        }
    }
    append(&stores, &batch).await;
    println!("log filled: {total} events, {customers} customers, {SHARDS} shards");
    let started = Instant::now();
    let node = node(&stores, |_| {});
    while node.events_applied() < total {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let elapsed = started.elapsed();
    println!(
        "apply: {total} events in {:.2} s = {:.0} events/s on one node ({} actors resident)",
        elapsed.as_secs_f64(),
        total as f64 / elapsed.as_secs_f64(),
        node.resident_actors()
    );
    node.stop().await;
}

async fn visibility() {
    let redis = RedisServer::start();
    let stores = stores(&redis);
    let node = Arc::new(node(&stores, |_| {}));
    wait_ready(&node).await;
    let api = node.client();
    let rate = 2_000_u64;
    let n = 20_000_u64;
    let mut hist = Histogram::<u64>::new(3).unwrap();
    let interval = Duration::from_nanos(1_000_000_000 / rate);
    let start = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..n {
        let due = start + interval * u32::try_from(i).unwrap();
        tokio::time::sleep_until(due.into()).await;
        let stores = stores.clone();
        let api = api.clone();
        tasks.spawn(async move {
            let id = format!("v{}", i % 5_000);
            let (_, request) = record(&id, i);
            let offset = append(&stores, &[request]).await.remove(0);
            let acknowledged = Instant::now();
            let response = api
                .get_profile(GetProfileRequest {
                    customer: customer("bench", &id),
                    min_applied_offset: offset,
                })
                .await
                .unwrap();
            assert!(response.found);
            acknowledged.elapsed()
        });
        while let Some(done) = tasks.try_join_next() {
            hist.record(u64::try_from(done.unwrap().as_micros()).unwrap())
                .unwrap();
        }
    }
    while let Some(done) = tasks.join_next().await {
        hist.record(u64::try_from(done.unwrap().as_micros()).unwrap())
            .unwrap();
    }
    println!("visibility at {rate} events/s over 5000 customers (append ack -> profile read):");
    print_latency("  event-to-profile", &hist);
    node.stop().await;
}

async fn activation() {
    let redis = RedisServer::start();
    let stores = stores(&redis);
    let customers = 20_000_u64;
    let mut requests = Vec::new();
    for c in 0..customers {
        requests.push(record(&format!("a{c}"), 0).1);
    }
    for chunk in requests.chunks(1_000) {
        append(&stores, chunk).await;
    }
    // Apply everything, then passivate everyone.
    let node = node(&stores, |c| {
        c.passivate_after_secs = 1;
        c.timer_poll_ms = 200;
    });
    while node.events_applied() < customers || node.resident_actors() > 0 {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let api = node.client();
    let mut cold = Histogram::<u64>::new(3).unwrap();
    let mut warm = Histogram::<u64>::new(3).unwrap();
    for c in 0..5_000 {
        let request = GetProfileRequest {
            customer: customer("bench", &format!("a{c}")),
            min_applied_offset: String::new(),
        };
        let t = Instant::now();
        assert!(api.get_profile(request.clone()).await.unwrap().found);
        cold.record(u64::try_from(t.elapsed().as_micros()).unwrap())
            .unwrap();
        let t = Instant::now();
        api.get_profile(request).await.unwrap();
        warm.record(u64::try_from(t.elapsed().as_micros()).unwrap())
            .unwrap();
    }
    println!("GetProfile in process, one at a time:");
    print_latency("  cold (activation: state loaded from Redis)", &cold);
    print_latency("  warm (resident actor)", &warm);
    node.stop().await;
}

fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    let kib: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kib * 1024
}

async fn resident() {
    let redis = RedisServer::start();
    let stores = stores(&redis);
    let customers = 200_000_u64;
    let mut requests = Vec::new();
    for c in 0..customers {
        requests.push(record(&format!("r{c}"), 1).1);
    }
    for chunk in requests.chunks(2_000) {
        append(&stores, chunk).await;
    }
    drop(requests);
    let node = node(&stores, |c| {
        c.max_resident_actors = 1_000_000;
        c.compact_after_secs = 2;
        c.timer_poll_ms = 200;
    });
    wait_ready(&node).await;
    while node.events_applied() < customers {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The first population makes the process reach its steady state (shards, connections,
    // allocator arenas); the second one is what is measured.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let before = rss_bytes();
    let resident_before = node.resident_actors() as u64;
    let mut more = Vec::new();
    for c in 0..customers {
        more.push(record(&format!("s{c}"), 1).1);
    }
    for chunk in more.chunks(2_000) {
        append(&stores, chunk).await;
    }
    drop(more);
    while node.events_applied() < 2 * customers {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let hot = rss_bytes();
    // Idle past `compact_after_secs`: profiles are kept encoded.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let idle = rss_bytes();
    let added = node.resident_actors() as u64 - resident_before;
    let report = |name: &str, after: u64| {
        let per_actor = after.saturating_sub(before) as f64 / added as f64;
        println!(
            "resident ({name}): {added} more actors, RSS {} -> {} MiB: {:.0} bytes per actor \
             with its state, {:.0} actors per GiB",
            before >> 20,
            after >> 20,
            per_actor,
            (1u64 << 30) as f64 / per_actor
        );
    };
    report("just applied, profiles decoded", hot);
    report("idle, profiles compacted", idle);
    node.stop().await;
}

async fn failover() {
    let redis = RedisServer::start();
    let stores = stores(&redis);
    let url = redis.url();
    let envs = |id: &'static str| {
        vec![
            ("IEE_PROFILE__NODE_ID", id),
            ("IEE_CLUSTER__SHARD_COUNT", "64"),
        ]
    };
    let spawn = |id: &'static str| {
        ServerProcess::spawn(
            "iee-profile",
            &[
                "--listen",
                "127.0.0.1:0",
                "--metrics-listen",
                "",
                "--redis-url",
                &url,
            ],
            &envs(id),
        )
    };
    let ids = ["n1", "n2", "n3"];
    let mut nodes: Vec<Option<ServerProcess>> = ids.iter().map(|id| Some(spawn(id))).collect();
    let shards: Vec<u32> = (0..SHARDS).collect();
    let all_owned_by = |alive: Vec<&'static str>| {
        let stores = stores.clone();
        let shards = shards.clone();
        async move {
            loop {
                let owners = stores.leases.owners(&shards).await.unwrap();
                if owners.iter().all(|o| {
                    o.as_ref()
                        .is_some_and(|o| alive.contains(&o.node_id.as_str()))
                }) {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    };
    all_owned_by(ids.to_vec()).await;
    let mut worst = Duration::ZERO;
    let mut times = Vec::new();
    for run in 0..20 {
        let victim = run % 3;
        tokio::time::sleep(Duration::from_secs(1)).await;
        let process = nodes[victim].take().unwrap();
        let killed = Instant::now();
        process.signal_and_wait("KILL").await;
        let alive: Vec<&'static str> = ids
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != victim)
            .map(|(_, id)| *id)
            .collect();
        all_owned_by(alive).await;
        let took = killed.elapsed();
        worst = worst.max(took);
        times.push(took.as_millis());
        nodes[victim] = Some(spawn(ids[victim]));
        all_owned_by(ids.to_vec()).await;
    }
    times.sort_unstable();
    println!(
        "failover after SIGKILL (lease 3000 ms, member ttl 3000 ms, 3 nodes, {SHARDS} shards): \
         20 runs, median {} ms, worst {} ms",
        times[times.len() / 2],
        worst.as_millis()
    );
}

#[tokio::main]
async fn main() {
    let mode = std::env::args()
        .skip(1)
        .find(|a| !a.starts_with('-'))
        .unwrap_or_else(|| "all".to_owned());
    match mode.as_str() {
        "apply" => apply_throughput().await,
        "visibility" => visibility().await,
        "activation" => activation().await,
        "resident" => resident().await,
        "failover" => failover().await,
        "all" => {
            apply_throughput().await;
            visibility().await;
            activation().await;
            resident().await;
            failover().await;
        }
        other => panic!("unknown mode {other}: apply|visibility|activation|resident|failover"),
    }
}
