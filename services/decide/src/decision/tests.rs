//! The funnel against a compiled configuration, with a scripted scorer and contact gate.

use std::{collections::HashMap, sync::Mutex, time::SystemTime};

use iee_api::{
    decide::{ContactVerdict, DecideRequest, Direction, FilterStage},
    pb::common::{Channel, CustomerRef},
};

use super::{
    funnel::{Inputs, MAX_SCORED, Scored, Scorer, run},
    gate::ContactGate,
    holdout,
};
use crate::config::{Action, Bindings, ScoreNeeds, compile};

/// Propensity means by action id (0.1 for the others); records what it was asked.
struct FixedScores {
    means: HashMap<String, f64>,
    asked: Mutex<Vec<Vec<String>>>,
}

#[async_trait::async_trait]
impl Scorer for FixedScores {
    async fn score(&self, action_ids: Vec<String>, _needs: ScoreNeeds) -> Scored {
        let propensities = action_ids
            .iter()
            .map(|id| {
                (
                    id.clone(),
                    (self.means.get(id).copied().unwrap_or(0.1), 0.05),
                )
            })
            .collect();
        self.asked
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(action_ids);
        Scored {
            propensities,
            ..Scored::default()
        }
    }
}

/// Refuses the listed actions; counts reservations and releases.
#[derive(Default)]
struct ScriptedGate {
    refuse: Vec<&'static str>,
    reserved: Mutex<Vec<String>>,
    released: Mutex<Vec<String>>,
}

#[async_trait::async_trait]
impl ContactGate for ScriptedGate {
    async fn reserve(&self, action: &Action, _channel: i32) -> ContactVerdict {
        let refused = self.refuse.contains(&action.id.as_str());
        if !refused {
            self.reserved
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(action.id.clone());
        }
        ContactVerdict {
            action_id: action.id.clone(),
            reserved: !refused,
            reservation_id: format!("r-{}", action.id),
            rule: if refused {
                "web-cap".into()
            } else {
                String::new()
            },
            reason: if refused {
                "cap reached".into()
            } else {
                String::new()
            },
            released: false,
        }
    }

    async fn release(&self, verdict: &mut ContactVerdict) {
        verdict.released = true;
        self.released
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(verdict.action_id.clone());
    }
}

fn request(customer_id: &str, max_actions: u32) -> DecideRequest {
    DecideRequest {
        customer: Some(CustomerRef {
            tenant_id: "acme".into(),
            customer_id: customer_id.into(),
            anonymous_id: String::new(),
        }),
        channel: Channel::Web as i32,
        touchpoint: "home".into(),
        direction: Direction::Inbound as i32,
        max_actions,
        ..DecideRequest::default()
    }
}

const CATALOGUE: &str = r#"
exploration: {mode: greedy}
actions:
  - {id: a, channels: [web], direction: inbound, value: 1}
  - {id: b, channels: [web], direction: inbound, value: 3, eligibility: 'context.vip == true'}
  - {id: c, channels: [web], direction: inbound, value: 1, group: promo}
  - {id: d, channels: [web], direction: inbound, value: 1}
  - {id: e, channels: [email], direction: inbound}
context_weights:
  - {name: promo-boost, when: 'true', groups: [promo], weight: 2.0}
"#;

async fn decide(
    yaml: &str,
    customer: &str,
    max_actions: u32,
    scorer: &FixedScores,
    gate: &ScriptedGate,
    explain: bool,
) -> super::Funnel {
    let config = compile("acme", yaml).unwrap_or_else(|e| panic!("{e:?}"));
    let request = request(customer, max_actions);
    let bindings = Bindings::new(
        &prost_types::Struct::default(),
        &HashMap::new(),
        request.customer.as_ref().unwrap_or(&CustomerRef::default()),
        SystemTime::now(),
    );
    let key = format!("c:{customer}");
    let inputs = Inputs {
        config: &config,
        request: &request,
        bindings: &bindings,
        now: SystemTime::now(),
        seed: 42,
        customer_key: &key,
        explain,
        max_filtered: usize::MAX,
    };
    run(&inputs, scorer, gate).await
}

fn scores(pairs: &[(&str, f64)]) -> FixedScores {
    FixedScores {
        means: pairs.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect(),
        asked: Mutex::new(Vec::new()),
    }
}

#[tokio::test]
async fn stages_drop_actions_in_order_and_priority_multiplies_its_factors() {
    let scorer = scores(&[("a", 0.5), ("c", 0.3), ("d", 0.2)]);
    let gate = ScriptedGate::default();
    let out = decide(CATALOGUE, "c1", 2, &scorer, &gate, false).await;
    let returned: Vec<&str> = out
        .response
        .actions
        .iter()
        .map(|a| a.action_id.as_str())
        .collect();
    // c: 0.3 × 2 (promo) = 0.6 beats a: 0.5; d is cut; b fails eligibility; e is not a web action.
    assert_eq!(returned, ["c", "a"]);
    let c = out.response.actions[0].factors.unwrap_or_default();
    assert_eq!(
        (c.propensity, c.context_weight, c.priority),
        (0.3, 2.0, 0.6)
    );
    let stage = |id: &str| {
        out.response
            .filtered
            .iter()
            .find(|f| f.action_id == id)
            .map(|f| FilterStage::try_from(f.stage).unwrap_or_default())
    };
    assert_eq!(stage("b"), Some(FilterStage::Eligibility));
    assert_eq!(stage("d"), Some(FilterStage::Arbitration));
    assert_eq!(stage("e"), None, "actions of other channels are not listed");
    // One scoring call, for the actions that passed the engagement policies.
    let asked = scorer
        .asked
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    assert_eq!(asked, [vec!["a".to_owned(), "c".into(), "d".into()]]);
    assert_eq!(out.contacts.len(), 2);
}

#[tokio::test]
async fn a_refused_contact_hands_the_slot_to_the_next_action() {
    let scorer = scores(&[("a", 0.5), ("c", 0.3), ("d", 0.2)]);
    let gate = ScriptedGate {
        refuse: vec!["c"],
        ..ScriptedGate::default()
    };
    let out = decide(CATALOGUE, "c1", 1, &scorer, &gate, true).await;
    assert_eq!(out.response.actions[0].action_id, "a");
    let c = out
        .response
        .filtered
        .iter()
        .find(|f| f.action_id == "c")
        .unwrap();
    assert_eq!(c.stage, FilterStage::ContactPolicy as i32);
    assert_eq!(
        (c.rule.as_str(), c.reason.as_str()),
        ("web-cap", "cap reached")
    );
    let explained = out
        .explanations
        .iter()
        .find(|e| e.action_id == "c")
        .unwrap();
    assert!(
        explained
            .evaluations
            .iter()
            .any(|e| !e.passed && e.rule == "web-cap")
    );
}

#[tokio::test]
async fn the_global_holdout_returns_nothing_and_gives_every_contact_back() {
    let yaml = format!("{CATALOGUE}holdouts: {{salt: s, global_share: 0.5}}\n");
    let held = (0..100)
        .map(|i| format!("h{i}"))
        .find(|c| holdout::in_control("s", "acme", &format!("c:{c}"), holdout::GLOBAL, 0.5))
        .unwrap();
    let scorer = scores(&[("a", 0.5)]);
    let gate = ScriptedGate::default();
    let out = decide(&yaml, &held, 2, &scorer, &gate, false).await;
    assert!(out.response.holdout && out.response.actions.is_empty());
    assert_eq!(out.response.holdout_group, "global");
    let reserved = gate
        .reserved
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    let released = gate
        .released
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    assert_eq!(reserved.len(), 2);
    assert_eq!(reserved, released);
    let withheld = out
        .response
        .filtered
        .iter()
        .filter(|f| f.stage == FilterStage::Holdout as i32)
        .count();
    assert_eq!(withheld, 2, "what would have been shown is logged");
}

#[tokio::test]
async fn past_the_scoring_limit_the_actions_of_least_value_wait() {
    let mut yaml = String::from("exploration: {mode: greedy}\nactions:\n");
    for i in 0..MAX_SCORED + 5 {
        let value = if i < 5 { 0.5 } else { 1.0 };
        yaml.push_str(&format!(
            "  - {{id: x{i}, channels: [web], direction: inbound, value: {value}}}\n"
        ));
    }
    let scorer = scores(&[]);
    let gate = ScriptedGate::default();
    let out = decide(&yaml, "c1", 1, &scorer, &gate, false).await;
    let asked = scorer
        .asked
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    assert_eq!(asked[0].len(), MAX_SCORED);
    let waiting: Vec<&str> = out
        .response
        .filtered
        .iter()
        .filter(|f| f.reason.starts_with("beyond"))
        .map(|f| f.action_id.as_str())
        .collect();
    assert_eq!(waiting, ["x0", "x1", "x2", "x3", "x4"]);
}
