//! The closed loop: simulated customers with a hidden preference answer the actions they get,
//! the outcomes flow back through ingest to the prediction service's online learning, and the
//! learned policy earns clearly more than choosing uniformly at random, converging on the best
//! action.

use std::{sync::Arc, time::Duration};

use iee_api::{
    decide::{DecideApi, DecideClient, DecideRequest, OutcomeKind, ReportOutcomeRequest},
    pb::common::CustomerRef,
};
use iee_tests::LoopServices;

use super::support::web_request;

/// The hidden click probability of each action.
const CLICK: [(&str, f64); 4] = [("a", 0.05), ("b", 0.10), ("c", 0.20), ("d", 0.40)];
const ROUNDS: usize = 10;
const PER_ROUND: usize = 240;
const TASKS: usize = 8;

const CONFIG: &str = r#"
tenant: sim
exploration: {mode: thompson, samples: 50}
actions:
  - {id: a, channels: [web], direction: inbound}
  - {id: b, channels: [web], direction: inbound}
  - {id: c, channels: [web], direction: inbound}
  - {id: d, channels: [web], direction: inbound}
"#;

/// A small deterministic generator (SplitMix64), so the simulation is the same every run.
fn uniform(state: &mut u64) -> f64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    (z ^ (z >> 31)) as f64 / u64::MAX as f64
}

/// One simulated interaction: decide, then report a click or a dismissal. Returns the action
/// and whether it was clicked.
async fn interact(decide: &DecideClient, customer: usize, draw: f64) -> (String, bool) {
    let request = DecideRequest {
        customer: Some(CustomerRef {
            tenant_id: "sim".into(),
            customer_id: format!("sim-{customer}"),
            anonymous_id: String::new(),
        }),
        ..web_request("")
    };
    let decision = decide.decide(request).await.unwrap();
    assert!(decision.degraded.is_empty(), "{:?}", decision.degraded);
    let action = decision.actions[0].action_id.clone();
    let p = CLICK.iter().find(|(id, _)| *id == action).unwrap().1;
    let clicked = draw < p;
    decide
        .report_outcome(ReportOutcomeRequest {
            tenant_id: "sim".into(),
            decision_id: decision.decision_id.clone(),
            action_id: action.clone(),
            kind: if clicked {
                OutcomeKind::Click
            } else {
                OutcomeKind::Dismiss
            } as i32,
            ..ReportOutcomeRequest::default()
        })
        .await
        .unwrap();
    (action, clicked)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_learned_policy_beats_uniform_choice_and_converges_on_the_best_action() {
    let services = LoopServices::start(1, &[], &[("IEE_DECIDE__PROACTIVE", "false")]).await;
    services.configure("sim", CONFIG).await;
    let decide = Arc::new(services.decide_client().await);
    let mut rounds = Vec::new();
    for round in 0..ROUNDS {
        let mut tasks = Vec::new();
        for t in 0..TASKS {
            let decide = decide.clone();
            tasks.push(tokio::spawn(async move {
                let mut state = (round * TASKS + t) as u64 + 1;
                let mut out = Vec::new();
                for i in 0..PER_ROUND / TASKS {
                    let customer = (t * 1_000 + i) % 300;
                    out.push(interact(&decide, customer, uniform(&mut state)).await);
                }
                out
            }));
        }
        let mut results = Vec::new();
        for task in tasks {
            results.extend(task.await.unwrap());
        }
        rounds.push(results);
        // Outcomes travel through ingest and the shard logs to the learners, which merge
        // every 200 ms.
        tokio::time::sleep(Duration::from_millis(800)).await;
    }
    let late: Vec<&(String, bool)> = rounds[ROUNDS - 3..].iter().flatten().collect();
    let reward = late.iter().filter(|(_, c)| *c).count() as f64 / late.len() as f64;
    let best_share = late.iter().filter(|(a, _)| a == "d").count() as f64 / late.len() as f64;
    let early_best =
        rounds[0].iter().filter(|(a, _)| a == "d").count() as f64 / rounds[0].len() as f64;
    let uniform_reward = CLICK.iter().map(|(_, p)| p).sum::<f64>() / CLICK.len() as f64;
    println!(
        "closed loop: late click rate {reward:.3} (uniform {uniform_reward:.3}, best 0.400); \
         best action share {best_share:.2} (first round {early_best:.2})"
    );
    assert!(
        reward > uniform_reward + 0.08,
        "late click rate {reward:.3} vs {uniform_reward:.3} for uniform choice"
    );
    assert!(
        best_share > 0.6 && best_share > early_best,
        "the best action's share grows to {best_share:.2} (first round {early_best:.2})"
    );
}
