//! Contact caps hold under concurrency: the reservation is made inside the customer's actor.

use std::sync::Arc;

use iee_api::decide::{DecideApi, FilterStage};
use iee_tests::LoopServices;

use super::support::{TENANT, basic, page_view, web_request};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_concurrent_decisions_for_one_customer_never_exceed_the_cap() {
    let services = LoopServices::start(2, &[], &[("IEE_DECIDE__PROACTIVE", "false")]).await;
    services.configure(TENANT, &basic(Some(3))).await;
    services.send(vec![page_view("pv-1", "busy")]).await;
    let decide = Arc::new(services.decide_client().await);
    let mut tasks = Vec::new();
    for _ in 0..200 {
        let decide = decide.clone();
        tasks.push(tokio::spawn(async move {
            decide.decide(web_request("busy")).await
        }));
    }
    let mut served = 0;
    let mut capped = 0;
    for task in tasks {
        let response = task.await.unwrap().unwrap();
        assert!(response.degraded.is_empty(), "{:?}", response.degraded);
        if response.actions.is_empty() {
            let denial = response
                .filtered
                .iter()
                .find(|f| f.action_id == "welcome")
                .expect("welcome is listed when not returned");
            assert_eq!(
                denial.stage,
                FilterStage::ContactPolicy as i32,
                "{denial:?}"
            );
            assert_eq!(denial.rule, "web-daily");
            capped += 1;
        } else {
            served += 1;
        }
    }
    assert_eq!(
        served, 3,
        "the cap of 3 a day holds: {served} served, {capped} capped"
    );
    assert_eq!(capped, 197);
}
