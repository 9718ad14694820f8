//! Exposures: every answered decision is appended to its customer's shard log as an
//! [`Exposure`] record, so the KPI service sees decisions in order with the customer's events
//! (the decision log is a key-value store with a retention, not a stream).

use std::time::Duration;

use iee_api::{
    decide::{DecideRequest, DecideResponse},
    pb::common::{CustomerRef, Event, Exposure, ExposureArm, JourneyStage, LogRecord},
    shard::shard_of,
};
use iee_store::{AppendRequest, StoreError};
use prost::Message;

use super::holdout;
use crate::{config::DecisionConfig, service::Decider};

/// Dedup window of exposure appends: a retried decision (same request id) within it appends
/// nothing new.
const EXPOSURE_DEDUP: Duration = Duration::from_secs(24 * 3600);

/// What an exposure is made of besides the request and the response.
pub(crate) struct ExposureFacts<'a> {
    /// The configuration the decision used, for the arms' planned allocations.
    pub config: &'a DecisionConfig,
    /// The customer's journey stage as the decision saw it.
    pub journey_stage: JourneyStage,
    /// The customer's predicted lifetime value, when the decision computed it.
    pub predicted_clv: Option<f64>,
    /// True for a decision made from a signal.
    pub proactive: bool,
}

/// The event id of a decision's exposure record (its dedup key in the shard log).
pub(crate) fn exposure_event_id(decision_id: &str) -> String {
    format!("decision:{decision_id}")
}

/// Builds the exposure record of an answered decision.
pub(crate) fn exposure_record(
    customer: &CustomerRef,
    request: &DecideRequest,
    response: &DecideResponse,
    facts: &ExposureFacts<'_>,
) -> LogRecord {
    let arms = response
        .experiment_arms
        .iter()
        .map(|arm| ExposureArm {
            experiment_id: arm.experiment_id.clone(),
            arm: arm.arm.clone(),
            allocation: allocation(facts.config, &arm.experiment_id, &arm.arm),
        })
        .collect();
    let event = Event {
        event_id: exposure_event_id(&response.decision_id),
        tenant_id: customer.tenant_id.clone(),
        customer_id: customer.customer_id.clone(),
        anonymous_id: customer.anonymous_id.clone(),
        r#type: "decision".into(),
        channel: request.channel,
        touchpoint: request.touchpoint.clone(),
        journey_stage: facts.journey_stage.into(),
        occurred_at: response.decided_at,
        ..Event::default()
    };
    LogRecord {
        event: Some(event),
        received_at: response.decided_at,
        traceparent: iee_telemetry::current_traceparent(),
        exposure: Some(Exposure {
            decision_id: response.decision_id.clone(),
            action_ids: response
                .actions
                .iter()
                .map(|a| a.action_id.clone())
                .collect(),
            arms,
            holdout: response.holdout,
            predicted_clv: facts.predicted_clv,
            config_version: response.config_version.clone(),
            proactive: facts.proactive,
        }),
        ..LogRecord::default()
    }
}

/// The planned share of `arm` in `experiment` under `config` (0 when the experiment is not
/// configured any more).
fn allocation(config: &DecisionConfig, experiment: &str, arm: &str) -> f64 {
    let control = if experiment == holdout::GLOBAL {
        config.holdouts.global_share
    } else if let Some(action) = experiment.strip_prefix(holdout::ACTION_EXPERIMENT_PREFIX) {
        config
            .actions
            .iter()
            .find(|a| a.id == action)
            .map_or(0.0, |a| a.control_share)
    } else {
        0.0
    };
    if arm == "control" {
        control
    } else {
        1.0 - control
    }
}

/// Appends the exposure to the customer's shard log; a second append of the same decision
/// within a day is a no-op.
pub(crate) async fn append_exposure(
    decider: &Decider,
    record: &LogRecord,
) -> Result<(), StoreError> {
    let Some(event) = record.event.as_ref() else {
        return Ok(());
    };
    let key = iee_api::shard::customer_key(&event.customer_id, &event.anonymous_id);
    let append = AppendRequest {
        shard: shard_of(&event.tenant_id, &key, decider.shard_count),
        tenant_id: event.tenant_id.clone(),
        event_id: event.event_id.clone(),
        payload: record.encode_to_vec(),
    };
    decider
        .stores
        .log
        .append(std::slice::from_ref(&append), EXPOSURE_DEDUP)
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use iee_api::decide::{ExperimentArm, RankedAction};

    fn config() -> DecisionConfig {
        let yaml = r#"
holdouts: {global_share: 0.1}
actions:
  - {id: offer, channels: [web], direction: inbound, control_share: 0.2}
"#;
        crate::config::compile("acme", yaml).unwrap_or_else(|e| panic!("{e:?}"))
    }

    #[test]
    fn exposure_carries_actions_arms_and_allocations() {
        let config = config();
        let customer = CustomerRef {
            tenant_id: "acme".into(),
            customer_id: "c1".into(),
            ..CustomerRef::default()
        };
        let response = DecideResponse {
            decision_id: "d1".into(),
            actions: vec![RankedAction {
                action_id: "offer".into(),
                ..RankedAction::default()
            }],
            experiment_arms: vec![
                ExperimentArm {
                    experiment_id: "global".into(),
                    arm: "treatment".into(),
                },
                ExperimentArm {
                    experiment_id: "action:offer".into(),
                    arm: "control".into(),
                },
                ExperimentArm {
                    experiment_id: "gone".into(),
                    arm: "control".into(),
                },
            ],
            ..DecideResponse::default()
        };
        let facts = ExposureFacts {
            config: &config,
            journey_stage: JourneyStage::Purchase,
            predicted_clv: Some(120.0),
            proactive: false,
        };
        let record = exposure_record(&customer, &DecideRequest::default(), &response, &facts);
        let exposure = record.exposure.expect("exposure");
        assert_eq!(exposure.action_ids, vec!["offer".to_owned()]);
        let shares: Vec<f64> = exposure.arms.iter().map(|a| a.allocation).collect();
        assert!((shares[0] - 0.9).abs() < 1e-12, "{shares:?}");
        assert!((shares[1] - 0.2).abs() < 1e-12, "{shares:?}");
        assert!(shares[2].abs() < 1e-12, "{shares:?}");
        let event = record.event.expect("event");
        assert_eq!(event.event_id, "decision:d1");
        assert_eq!(event.r#type, "decision");
        assert_eq!(event.journey_stage, JourneyStage::Purchase as i32);
    }
}
