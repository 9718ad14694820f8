//! `ExplainDecision` and `ReplayDecision`: both re-run the funnel from the decision log's
//! record (the profile as the rules saw it, the request, the propensity posteriors, the contact
//! verdicts and the exploration seed), so "why was X (not) shown?" is answered by the same code
//! that decided, and a replay against the decision's own configuration version reproduces it.

use std::{collections::HashMap, time::SystemTime};

use iee_api::{
    decide::{
        ActionExplanation, DecideError, DecideResponse, DecisionRecord, ExplainDecisionRequest,
        ExplainDecisionResponse, FilterStage, ReplayDecisionRequest, ReplayDecisionResponse,
    },
    predict::{PredictApi, PropensityQuery, ScoreRequest},
    shard::customer_key,
};

use crate::{
    config::{Bindings, DecisionConfig, ScoreNeeds},
    decision::{Funnel, Inputs, RecordedGate, Scored, Scorer, run},
    service::{Decider, require},
};

/// Propensities as the decision logged them; actions it never scored (a what-if against
/// another configuration) are scored now from the logged features.
struct RecordedScorer<'a> {
    decider: &'a Decider,
    record: &'a DecisionRecord,
}

#[async_trait::async_trait]
impl Scorer for RecordedScorer<'_> {
    async fn score(&self, action_ids: Vec<String>, _needs: ScoreNeeds) -> Scored {
        let record = self.record;
        let mut out = Scored {
            churn: record.customer_scores.get("churn").copied(),
            clv: record.customer_scores.get("clv").copied(),
            models: record
                .response
                .as_ref()
                .map(|r| r.models.clone())
                .unwrap_or_default(),
            ..Scored::default()
        };
        for p in &record.propensities {
            out.propensities
                .insert(p.action_id.clone(), (p.mean, p.stddev));
        }
        let missing: Vec<String> = action_ids
            .into_iter()
            .filter(|id| !out.propensities.contains_key(id))
            .collect();
        if missing.is_empty() {
            return out;
        }
        let request = record.request.clone().unwrap_or_default();
        let scored = self
            .decider
            .predict
            .score(ScoreRequest {
                customer: request.customer.clone(),
                features: record.features.clone(),
                propensity: Some(PropensityQuery {
                    action_ids: missing,
                    channel: request.channel,
                    touchpoint: request.touchpoint.clone(),
                    context: request.context.clone(),
                    sample: false,
                    seed: record.seed,
                }),
                ..ScoreRequest::default()
            })
            .await;
        match scored {
            Ok(response) => {
                for p in response.propensities {
                    out.propensities.insert(p.action_id, (p.mean, p.stddev));
                }
            }
            Err(err) => {
                tracing::debug!(error = %err, "scoring for a what-if replay failed");
                out.degraded = Some("predict_unavailable".into());
            }
        }
        out
    }
}

/// Re-runs the funnel of a logged decision against `config`.
async fn rerun(
    decider: &Decider,
    record: &DecisionRecord,
    config: &DecisionConfig,
    explain: bool,
) -> Funnel {
    let request = record.request.clone().unwrap_or_default();
    let customer = request.customer.clone().unwrap_or_default();
    let decided_at = record
        .response
        .as_ref()
        .and_then(|r| r.decided_at)
        .and_then(|t| SystemTime::try_from(t).ok())
        .unwrap_or(SystemTime::UNIX_EPOCH);
    let view = record.profile_view.clone().unwrap_or_default();
    let bindings = Bindings::new(&view, &request.context, &customer, decided_at);
    let key = customer_key(&customer.customer_id, &customer.anonymous_id);
    let inputs = Inputs {
        config,
        request: &request,
        bindings: &bindings,
        now: decided_at,
        seed: record.seed,
        customer_key: &key,
        explain,
        max_filtered: decider.settings.max_filtered,
    };
    let gate = RecordedGate {
        verdicts: record
            .contacts
            .iter()
            .map(|v| (v.action_id.clone(), v.clone()))
            .collect(),
    };
    let scorer = RecordedScorer { decider, record };
    run(&inputs, &scorer, &gate).await
}

async fn logged(
    decider: &Decider,
    tenant_id: &str,
    decision_id: &str,
) -> Result<DecisionRecord, DecideError> {
    require("tenant_id", tenant_id)?;
    require("decision_id", decision_id)?;
    decider.logged_or_not_found(tenant_id, decision_id).await
}

/// Handles `ExplainDecision`.
pub(crate) async fn explain(
    decider: &Decider,
    request: ExplainDecisionRequest,
) -> Result<ExplainDecisionResponse, DecideError> {
    let record = logged(decider, &request.tenant_id, &request.decision_id).await?;
    let original = record.response.clone().unwrap_or_default();
    let config = decider
        .configs
        .version(&request.tenant_id, &original.config_version)
        .await?;
    let funnel = rerun(decider, &record, &config, true).await;
    let mut by_id: HashMap<String, ActionExplanation> = funnel
        .explanations
        .into_iter()
        .map(|e| (e.action_id.clone(), e))
        .collect();
    let wanted: Vec<String> = if request.action_ids.is_empty() {
        let decided = record.request.clone().unwrap_or_default();
        config
            .candidates(decided.channel, decided.direction)
            .iter()
            .map(|&i| config.actions[i].id.clone())
            .collect()
    } else {
        request.action_ids.clone()
    };
    let decided = record.request.clone().unwrap_or_default();
    let mut actions: Vec<ActionExplanation> = wanted
        .iter()
        .map(|id| {
            by_id
                .remove(id)
                .unwrap_or_else(|| not_a_candidate(&config, id, &decided))
        })
        .collect();
    actions.sort_by_key(|e| if e.selected { e.rank } else { u32::MAX });
    Ok(ExplainDecisionResponse {
        decision: Some(record),
        actions,
    })
}

/// Why an action was not even a candidate for the decision.
fn not_a_candidate(
    config: &DecisionConfig,
    id: &str,
    decided: &iee_api::decide::DecideRequest,
) -> ActionExplanation {
    let reason = match config.action(id) {
        None => format!("not an action of configuration version {}", config.version),
        Some(a) if !a.channels.contains(&decided.channel) => {
            "not offered on the decision's channel".to_owned()
        }
        Some(a) if a.direction != decided.direction => {
            "not offered in the decision's direction".to_owned()
        }
        Some(_) => {
            "not offered at the decision's touchpoint, or outside its validity window".to_owned()
        }
    };
    ActionExplanation {
        action_id: id.to_owned(),
        stage: FilterStage::Candidate as i32,
        reason,
        ..ActionExplanation::default()
    }
}

/// Handles `ReplayDecision`.
pub(crate) async fn replay(
    decider: &Decider,
    request: ReplayDecisionRequest,
) -> Result<ReplayDecisionResponse, DecideError> {
    let record = logged(decider, &request.tenant_id, &request.decision_id).await?;
    let original = record.response.clone().unwrap_or_default();
    let version = if request.config_version.is_empty() {
        original.config_version.clone()
    } else {
        request.config_version.clone()
    };
    let config = decider
        .configs
        .version(&request.tenant_id, &version)
        .await?;
    let funnel = rerun(decider, &record, &config, false).await;
    let mut replayed = funnel.response;
    replayed.config_version = config.version.clone();
    replayed.decided_at = original.decided_at;
    replayed.profile_version = original.profile_version;
    let differences = differences(&original, &replayed);
    Ok(ReplayDecisionResponse {
        identical: differences.is_empty(),
        differences,
        original: Some(original),
        replayed: Some(replayed),
    })
}

/// Every difference in the returned actions, their order and their numbers.
pub(crate) fn differences(original: &DecideResponse, replayed: &DecideResponse) -> Vec<String> {
    let mut out = Vec::new();
    if original.holdout != replayed.holdout {
        out.push(format!(
            "holdout: {} -> {}",
            original.holdout, replayed.holdout
        ));
    }
    let n = original.actions.len().max(replayed.actions.len());
    for i in 0..n {
        match (original.actions.get(i), replayed.actions.get(i)) {
            (Some(a), Some(b)) if a.action_id != b.action_id => {
                out.push(format!(
                    "rank {}: {} -> {}",
                    i + 1,
                    a.action_id,
                    b.action_id
                ));
            }
            (Some(a), Some(b)) => {
                if a.factors != b.factors {
                    out.push(format!(
                        "rank {}: {} priority factors {:?} -> {:?}",
                        i + 1,
                        a.action_id,
                        a.factors,
                        b.factors
                    ));
                }
                if a.selection_probability != b.selection_probability {
                    out.push(format!(
                        "rank {}: {} selection probability {} -> {}",
                        i + 1,
                        a.action_id,
                        a.selection_probability,
                        b.selection_probability
                    ));
                }
            }
            (Some(a), None) => out.push(format!("rank {}: {} -> (none)", i + 1, a.action_id)),
            (None, Some(b)) => out.push(format!("rank {}: (none) -> {}", i + 1, b.action_id)),
            (None, None) => {}
        }
    }
    out
}
