//! A customer's life on one node: actors passivated and reactivated without losing a message,
//! and a durable cart-abandonment timer that fires once even when its owner is killed.

use std::time::{Duration, Instant};

use iee_api::{
    pb::common::Money,
    profile::{GetProfileRequest, ProfileApi, Signal, SignalKind, WatchSignalsRequest},
};
use iee_store::keys;
use iee_test_support::wait_until;
use iee_tests::{Backend, ProfileNodes, TestCluster, event};
use prost::Message;
use tokio_stream::StreamExt;

use super::support::{
    Ledger, SETTLE, SHORT_LEASES, TENANT, assert_ledger, customer, ingest_into, ingest_one, number,
    purchase, read_applied, redis_url, shard_of_customer, text,
};

/// Every signal in a shard's history.
async fn signal_history(nodes: &ProfileNodes, shard: u32) -> Vec<Signal> {
    let mut all = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = nodes
            .stores()
            .shard_state
            .read_signals(shard, after.as_deref(), 1_000)
            .await
            .expect("the signal history is readable");
        let Some(last) = page.last() else { break };
        after = Some(last.offset.clone());
        all.extend(
            page.iter()
                .map(|e| Signal::decode(e.payload.as_slice()).expect("signals decode")),
        );
    }
    all
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passivated_customers_keep_their_state_and_lose_no_message() {
    let cluster = TestCluster::start(Backend::Redis).await;
    let nodes = ProfileNodes::start(
        &redis_url(&cluster),
        1,
        &[
            ("IEE_PROFILE__PASSIVATE_AFTER_SECS", "1"),
            ("IEE_PROFILE__MAX_RESIDENT_ACTORS", "8"),
            ("IEE_PROFILE__TIMER_POLL_MS", "200"),
        ],
    )
    .await;
    let ingest = cluster.client().await;
    let client = nodes.client();
    let ids: Vec<String> = (0..40).map(|i| format!("pv-{i:02}")).collect();
    let mut ledger = Ledger::new();
    // 40 customers over at most 8 resident actors: the least recently used are passivated
    // while their next events are already on the way.
    for seq in 0..5 {
        let events = ids.iter().map(|id| purchase(id, seq)).collect();
        ingest_into(&ingest, events, &mut ledger).await;
    }
    assert_ledger(&client, &ledger).await;

    // Idle for more than a second: every actor is passivated.
    let nodes_ref = &nodes;
    let passivated = wait_until(SETTLE, "every actor to be passivated", || async move {
        let resident = nodes_ref.metric(0, "iee_profile_resident_actors").await;
        let passivations = nodes_ref.metric(0, "iee_profile_passivations_total").await;
        (resident == 0.0 && passivations > 0.0).then_some(passivations)
    })
    .await;

    // Reactivation: events and reads for passivated customers, paced across housekeeping
    // rounds so some arrive while their actors are being passivated.
    for seq in 5..10 {
        let events = ids.iter().map(|id| purchase(id, seq)).collect();
        ingest_into(&ingest, events, &mut ledger).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert_ledger(&client, &ledger).await;
    let passivations = nodes.metric(0, "iee_profile_passivations_total").await;
    let activations = nodes.metric(0, "iee_profile_activations_total").await;
    eprintln!(
        "[record] passivations {passivated} after the first phase, {passivations} in all; \
         activations {activations}"
    );
    assert!(passivations > passivated, "the second phase passivated too");
    assert!(
        activations >= 2.0 * ids.len() as f64,
        "every customer was activated again after passivation"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cart_abandonment_fires_once_from_a_durable_timer_across_a_node_kill() {
    let cluster = TestCluster::start(Backend::Redis).await;
    let mut envs = SHORT_LEASES.to_vec();
    envs.extend([
        ("IEE_PROFILE__FOLD__CART_IDLE_SECS", "2"),
        ("IEE_PROFILE__TIMER_POLL_MS", "200"),
    ]);
    let mut nodes = ProfileNodes::start(&redis_url(&cluster), 2, &envs).await;
    let id = "cart-1";
    let shard = shard_of_customer(id);
    let owner = nodes.owner_of(shard).await.expect("owned");
    let survivor = 1 - owner;

    // Watch the survivor's signals from before the failover (it streams the shards it owns).
    let watcher = nodes.client_of(&[survivor]);
    let mut stream = watcher
        .watch_signals(WatchSignalsRequest {
            tenant_id: TENANT.into(),
            kinds: vec![SignalKind::CartAbandoned as i32],
            ..Default::default()
        })
        .await
        .expect("WatchSignals opens");
    let watched = tokio::spawn(async move {
        let mut seen = Vec::new();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(40);
        while let Ok(Some(item)) = tokio::time::timeout_at(deadline, stream.next()).await {
            match item {
                Ok(signal) => seen.push(signal),
                Err(err) => panic!("the survivor's signal stream failed: {err}"),
            }
            // Any second one would arrive soon after the first.
            if !seen.is_empty() {
                let extra = tokio::time::timeout(Duration::from_secs(3), stream.next()).await;
                if let Ok(Some(Ok(signal))) = extra {
                    seen.push(signal);
                }
                break;
            }
        }
        seen
    });

    let ingest = cluster.client().await;
    let mut add = event("cart-1-add", id);
    add.r#type = "add_to_cart".into();
    add.value = Some(Money {
        amount_minor: 2_500,
        currency: "EUR".into(),
    });
    add.properties.insert("product_id".into(), text("sku-1"));
    add.properties.insert("quantity".into(), number(2.0));
    let added_at = Instant::now();
    let offset = ingest_one(&ingest, add).await;
    let client = nodes.client();
    let profile = read_applied(&client, &customer(id), &offset)
        .await
        .profile
        .unwrap_or_default();
    let cart = profile.cart.unwrap_or_default();
    assert_eq!(cart.items.len(), 1);
    assert!(!cart.abandoned);

    // Kill the owner once the timer is durable (written), before it is due.
    let mut redis = cluster.redis.as_ref().unwrap().connection();
    wait_until(SETTLE, "the cart timer to be written", || {
        let timers: Vec<(String, f64)> = redis::cmd("ZRANGE")
            .arg(keys::timers(shard))
            .arg(0)
            .arg(-1)
            .arg("WITHSCORES")
            .query(&mut redis)
            .unwrap();
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as f64;
        // The inactivity timer of the same customer is due in 30 days; the cart's in 2 s.
        let written = timers
            .iter()
            .any(|(member, due)| member.contains(id) && *due < now_ms + 10_000.0);
        async move { written.then_some(()) }
    })
    .await;
    let before_kill = added_at.elapsed();
    nodes.kill(owner).await;
    eprintln!(
        "[record] owner killed {} ms after the add_to_cart (cart idle 2000 ms)",
        before_kill.as_millis()
    );

    let client = nodes.client();
    let abandoned = wait_until(SETTLE, "the cart to be abandoned", || {
        let client = client.clone();
        async move {
            let response = client
                .get_profile(GetProfileRequest {
                    customer: Some(customer(id)),
                    min_applied_offset: String::new(),
                })
                .await
                .ok()?;
            let cart = response.profile?.cart?;
            cart.abandoned.then_some(cart)
        }
    })
    .await;
    assert_eq!(
        abandoned.items.len(),
        1,
        "the cart is kept, marked abandoned"
    );
    eprintln!(
        "[record] cart abandoned {} ms after the add_to_cart",
        added_at.elapsed().as_millis()
    );

    // Several timer polls later, still exactly one signal in the shard's history.
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let history: Vec<Signal> = signal_history(&nodes, shard)
        .await
        .into_iter()
        .filter(|s| {
            s.kind == SignalKind::CartAbandoned as i32
                && s.customer.as_ref().is_some_and(|c| c.customer_id == id)
        })
        .collect();
    assert_eq!(history.len(), 1, "exactly one cart_abandoned: {history:?}");
    let details = history[0].details.clone().expect("cart_abandoned details");
    let iee_api::pb::profile::signal::Details::CartAbandoned(details) = details else {
        panic!("cart_abandoned carries its cart: {details:?}");
    };
    assert_eq!(details.cart.unwrap_or_default().items.len(), 1);
    assert_eq!(
        nodes
            .metric(
                survivor,
                "iee_profile_signals_total{kind=\"cart_abandoned\"}"
            )
            .await,
        1.0
    );

    let streamed = watched.await.unwrap();
    let streamed: Vec<&Signal> = streamed
        .iter()
        .filter(|s| s.customer.as_ref().is_some_and(|c| c.customer_id == id))
        .collect();
    assert_eq!(
        streamed.len(),
        1,
        "WatchSignals streamed it once: {streamed:?}"
    );
    assert_eq!(streamed[0].signal_id, history[0].signal_id);
}
