//! Proactive decisions: an abandoned cart produces exactly one outbound action, even when the
//! decision service is killed while signals arrive and is started again.

use std::{collections::HashMap, time::Duration};

use iee_api::decide::{DecideApi, OutboundAction, WatchOutboundRequest};
use iee_tests::LoopServices;
use tokio_stream::StreamExt;

use super::support::{TENANT, add_to_cart, basic};

/// Reads the tenant's whole outbound stream until `want` customers appear (or `timeout`), then a
/// little longer to catch any duplicate.
async fn outbound(services: &LoopServices, want: usize, timeout: Duration) -> Vec<OutboundAction> {
    let decide = services.decide_client().await;
    let mut stream = decide
        .watch_outbound(WatchOutboundRequest {
            tenant_id: TENANT.into(),
            start_after: String::new(),
        })
        .await
        .unwrap();
    let mut seen = Vec::new();
    let deadline = tokio::time::Instant::now() + timeout;
    let mut customers = std::collections::HashSet::new();
    loop {
        let until = if customers.len() >= want {
            // Any duplicate would follow its original within a few seconds.
            tokio::time::Instant::now() + Duration::from_secs(3)
        } else {
            deadline
        };
        match tokio::time::timeout_at(until, stream.next()).await {
            Ok(Some(Ok(action))) => {
                customers.insert(action.customer.clone().unwrap().customer_id);
                seen.push(action);
            }
            Ok(Some(Err(err))) => panic!("outbound stream failed: {err}"),
            Ok(None) | Err(_) => return seen,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_abandoned_cart_yields_exactly_one_outbound_action_across_a_decide_crash() {
    let profile_envs = [
        ("IEE_PROFILE__FOLD__CART_IDLE_SECS", "2"),
        ("IEE_PROFILE__TIMER_POLL_MS", "200"),
    ];
    let mut services = LoopServices::start(2, &profile_envs, &[]).await;
    services.configure(TENANT, &basic(None)).await;
    let wave = |w: usize| -> Vec<_> {
        (0..10)
            .map(|i| add_to_cart(&format!("cart-{w}-{i}"), &format!("shopper-{w}-{i}")))
            .collect()
    };
    services.send(wave(0)).await;
    // Kill the decision service as soon as the first wave's decisions start to come out.
    let first = outbound(&services, 1, Duration::from_secs(20)).await;
    assert!(!first.is_empty(), "the first abandoned cart is acted on");
    services.kill_decide().await;
    // The second wave's carts are abandoned while no decision service runs.
    services.send(wave(1)).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    services.spawn_decide();
    services.send(wave(2)).await;

    let all = outbound(&services, 30, Duration::from_secs(60)).await;
    let mut per_customer: HashMap<String, usize> = HashMap::new();
    for action in &all {
        *per_customer
            .entry(action.customer.clone().unwrap().customer_id)
            .or_default() += 1;
        assert_eq!(action.trigger, "cart-rescue");
        assert_eq!(action.actions.len(), 1);
        assert_eq!(action.actions[0].action_id, "cart-email");
        assert!(!action.signal_id.is_empty());
    }
    assert_eq!(
        per_customer.len(),
        30,
        "every abandoned cart is acted on: {per_customer:?}"
    );
    let repeated: Vec<_> = per_customer.iter().filter(|(_, n)| **n > 1).collect();
    assert!(
        repeated.is_empty(),
        "one outbound action per cart: {repeated:?}"
    );
}
