//! A decision follows the customer's events; every decision explains itself and replays to
//! the same result; outcomes are checked against the decision log.

use std::time::{Duration, SystemTime};

use iee_api::decide::{
    DecideApi, DecideError, DecideResponse, ExplainDecisionRequest, FilterStage, OutcomeKind,
    ReplayDecisionRequest, ReportOutcomeRequest,
};
use iee_test_support::wait_until;
use iee_tests::LoopServices;

use super::support::{TENANT, add_to_cart, basic, customer, exploring, page_view, web_request};

fn returned(response: &DecideResponse) -> Vec<&str> {
    response
        .actions
        .iter()
        .map(|a| a.action_id.as_str())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_through_ingest_change_the_decision_which_explains_and_replays_itself() {
    let services = LoopServices::start(1, &[], &[("IEE_DECIDE__PROACTIVE", "false")]).await;
    services.configure(TENANT, &basic(None)).await;
    let decide = services.decide_client().await;
    services.send(vec![page_view("pv-1", "c-1")]).await;

    let before = decide.decide(web_request("c-1")).await.unwrap();
    assert_eq!(returned(&before), ["welcome"], "{before:?}");
    assert!(before.degraded.is_empty(), "{:?}", before.degraded);
    let stage_of = |r: &DecideResponse, id: &str| {
        r.filtered
            .iter()
            .find(|f| f.action_id == id)
            .map(|f| f.stage)
    };
    assert_eq!(
        stage_of(&before, "cart-saver"),
        Some(FilterStage::Applicability as i32)
    );
    assert_eq!(
        stage_of(&before, "vip-only"),
        Some(FilterStage::Eligibility as i32)
    );

    // The cart reaches the profile, and the next decisions see it.
    services.send(vec![add_to_cart("cart-1", "c-1")]).await;
    let after = wait_until(Duration::from_secs(15), "a decision sees the cart", || {
        let decide = decide.clone();
        async move {
            let r = decide.decide(web_request("c-1")).await.ok()?;
            (returned(&r) == ["cart-saver"]).then_some(r)
        }
    })
    .await;
    assert!(after.profile_version > before.profile_version);
    let factors = after.actions[0].factors.unwrap();
    assert_eq!(factors.value, 10.0);
    let product =
        factors.propensity * factors.context_weight * factors.value * factors.business_weight;
    assert!((factors.priority - product).abs() < 1e-12, "{factors:?}");
    assert_eq!(after.actions[0].selection_probability, 1.0, "greedy");

    // Why was the cart offer not shown the first time?
    let explained = decide
        .explain_decision(ExplainDecisionRequest {
            tenant_id: TENANT.into(),
            decision_id: before.decision_id.clone(),
            action_ids: vec!["cart-saver".into(), "welcome".into()],
        })
        .await
        .unwrap();
    let welcome = &explained.actions[0];
    assert_eq!(
        (welcome.action_id.as_str(), welcome.selected, welcome.rank),
        ("welcome", true, 1)
    );
    let cart = &explained.actions[1];
    assert!(!cart.selected);
    assert_eq!(cart.stage, FilterStage::Applicability as i32);
    let rule = cart
        .evaluations
        .iter()
        .find(|e| e.stage == FilterStage::Applicability as i32)
        .expect("the applicability rule was evaluated");
    assert!(
        !rule.passed && rule.expression.contains("profile.cart.value"),
        "{rule:?}"
    );

    for decision in [&before, &after] {
        let replay = decide
            .replay_decision(ReplayDecisionRequest {
                tenant_id: TENANT.into(),
                decision_id: decision.decision_id.clone(),
                config_version: String::new(),
            })
            .await
            .unwrap();
        assert!(replay.identical, "{:?}", replay.differences);
        assert_eq!(replay.replayed.unwrap().actions, decision.actions);
    }

    // Outcomes are checked against the decision log.
    let outcome = |decision_id: &str, action_id: &str| ReportOutcomeRequest {
        tenant_id: TENANT.into(),
        decision_id: decision_id.into(),
        action_id: action_id.into(),
        kind: OutcomeKind::Click as i32,
        ..ReportOutcomeRequest::default()
    };
    let first = decide
        .report_outcome(outcome(&after.decision_id, "cart-saver"))
        .await
        .unwrap();
    assert!(!first.duplicate);
    let again = decide
        .report_outcome(outcome(&after.decision_id, "cart-saver"))
        .await
        .unwrap();
    assert!(again.duplicate);
    assert_eq!(again.event_id, first.event_id);
    let unknown = decide
        .report_outcome(outcome("no-such-decision", "welcome"))
        .await;
    assert!(
        matches!(unknown, Err(DecideError::NotFound(_))),
        "{unknown:?}"
    );
    let not_returned = decide
        .report_outcome(outcome(&after.decision_id, "welcome"))
        .await;
    assert!(
        matches!(not_returned, Err(DecideError::NotFound(_))),
        "{not_returned:?}"
    );
    let late = decide
        .report_outcome(ReportOutcomeRequest {
            occurred_at: Some((SystemTime::now() + Duration::from_secs(30 * 86_400)).into()),
            ..outcome(&before.decision_id, "welcome")
        })
        .await;
    match late {
        Err(DecideError::FailedPrecondition(reason)) => {
            assert!(reason.contains("attribution window"), "{reason}");
        }
        other => panic!("an outcome 30 days later is outside the window: {other:?}"),
    }
    let no_kind = decide
        .report_outcome(ReportOutcomeRequest {
            kind: 0,
            ..outcome(&after.decision_id, "cart-saver")
        })
        .await;
    assert!(
        matches!(&no_kind, Err(DecideError::InvalidArgument { field, .. }) if field == "kind"),
        "{no_kind:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn explored_decisions_replay_identically_and_holdouts_keep_their_shares() {
    let services = LoopServices::start(1, &[], &[("IEE_DECIDE__PROACTIVE", "false")]).await;
    services.configure("beta", &exploring("beta", 6, 0.1)).await;
    let decide = services.decide_client().await;
    let customers = 1_500;
    let mut holdout = 0usize;
    let mut offer_0_control = 0usize;
    let mut offer_0_ranked = 0usize;
    let mut sample = Vec::new();
    for i in 0..customers {
        let request = iee_api::decide::DecideRequest {
            customer: Some(iee_api::pb::common::CustomerRef {
                tenant_id: "beta".into(),
                ..customer(&format!("b-{i}"))
            }),
            max_actions: 2,
            ..web_request("")
        };
        let r = decide.decide(request).await.unwrap();
        assert!(r.degraded.is_empty(), "{:?}", r.degraded);
        if r.holdout {
            holdout += 1;
            assert!(r.actions.is_empty());
            assert_eq!(r.holdout_group, "global");
        } else {
            assert_eq!(r.actions.len(), 2, "{r:?}");
            for a in &r.actions {
                assert!(a.selection_probability > 0.0 && a.selection_probability <= 1.0);
            }
        }
        for arm in &r.experiment_arms {
            if arm.experiment_id == "action:offer-0" {
                offer_0_ranked += 1;
                offer_0_control += usize::from(arm.arm == "control");
            }
        }
        if i % 50 == 0 {
            sample.push(r.decision_id);
        }
    }
    // Binomial bounds at about 4.5 standard deviations.
    let sd = (customers as f64 * 0.1 * 0.9).sqrt();
    let expected = customers as f64 * 0.1;
    assert!(
        (holdout as f64 - expected).abs() < 4.5 * sd,
        "{holdout} of {customers} in the 10 % holdout"
    );
    assert!(
        offer_0_ranked > 100,
        "offer-0 reached the contact stage {offer_0_ranked} times"
    );
    let share = offer_0_control as f64 / offer_0_ranked as f64;
    let sd = (0.2 * 0.8 / offer_0_ranked as f64).sqrt();
    assert!(
        (share - 0.2).abs() < 4.5 * sd,
        "offer-0 control share {share}"
    );

    for decision_id in sample {
        let replay = decide
            .replay_decision(ReplayDecisionRequest {
                tenant_id: "beta".into(),
                decision_id: decision_id.clone(),
                config_version: String::new(),
            })
            .await
            .unwrap();
        assert!(replay.identical, "{decision_id}: {:?}", replay.differences);
    }
}
