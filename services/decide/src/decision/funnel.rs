//! The decision funnel, shared by live decisions, replays and explanations: candidates →
//! eligibility → applicability → propensities → suitability → arbitration → contact policies →
//! holdouts. Where the inputs come from (a live profile read and scoring call, or the decision
//! log) and how contacts are reserved are the caller's: see [`Scorer`] and [`ContactGate`].

use std::{collections::HashMap, time::SystemTime};

use iee_api::{
    decide::{
        ActionExplanation, ContactVerdict, DecideRequest, DecideResponse, ExperimentArm,
        FilterStage, FilteredAction, LoggedPropensity, PriorityFactors, RankedAction,
        RuleEvaluation,
    },
    predict::ServedModel,
};

use super::{
    arbitrate::{self, Contender},
    gate::{self, ContactGate},
    holdout,
};
use crate::config::{Action, Bindings, DecisionConfig, Rule, ScoreNeeds, Scores};

/// Most actions one scoring call may ask about (the prediction service's limit).
pub(crate) const MAX_SCORED: usize = 1000;

/// What the funnel decides from.
pub(crate) struct Inputs<'a> {
    pub config: &'a DecisionConfig,
    pub request: &'a DecideRequest,
    pub bindings: &'a Bindings,
    pub now: SystemTime,
    pub seed: u64,
    /// The customer's key (`customer_key`), for holdout assignment.
    pub customer_key: &'a str,
    /// Record every rule evaluation (for explanations).
    pub explain: bool,
    /// Most dropped actions listed in the response.
    pub max_filtered: usize,
}

/// Propensities and customer scores for the actions that reached scoring.
#[derive(Debug, Default)]
pub(crate) struct Scored {
    /// Posterior `(mean, stddev)` by action id.
    pub propensities: HashMap<String, (f64, f64)>,
    /// `scores.churn`, if asked for and known.
    pub churn: Option<f64>,
    /// `scores.clv`, if asked for and known.
    pub clv: Option<f64>,
    /// The models that produced them.
    pub models: Vec<ServedModel>,
    /// Why the scores are not the models' (e.g. `predict_unavailable`).
    pub degraded: Option<String>,
}

/// Where propensities come from: one call per decision.
#[async_trait::async_trait]
pub(crate) trait Scorer: Send + Sync {
    /// Scores `action_ids` (and the customer scores `needs` names).
    async fn score(&self, action_ids: Vec<String>, needs: ScoreNeeds) -> Scored;
}

/// The funnel's result.
#[derive(Debug, Default)]
pub(crate) struct Funnel {
    /// The response, without `decision_id`, `decided_at` and `profile_version`.
    pub response: DecideResponse,
    /// The posterior of every scored action.
    pub propensities: Vec<LoggedPropensity>,
    /// The verdict of every action that reached the contact policy stage.
    pub contacts: Vec<ContactVerdict>,
    /// Customer scores the rules could read.
    pub customer_scores: HashMap<String, f64>,
    /// One explanation per candidate action (only when asked for).
    pub explanations: Vec<ActionExplanation>,
}

/// What happened to one candidate so far.
#[derive(Default)]
struct Track<'a> {
    stage: FilterStage,
    why: Why<'a>,
    evaluations: Vec<RuleEvaluation>,
    factors: Option<PriorityFactors>,
    rank: u32,
    probability: f64,
    selected: bool,
}

/// Why a candidate was dropped, kept cheap until it is written out (most never are).
#[derive(Default)]
enum Why<'a> {
    #[default]
    Nothing,
    /// A rule was false, or failed with the error.
    Rule(&'a Rule, Option<String>),
    /// Ranked at this position (0-based) below the cut.
    Ranked(usize),
    /// Anything else, said in full.
    Said { rule: String, reason: String },
}

impl Track<'_> {
    fn drop_at(&mut self, stage: FilterStage, rule: &str, reason: String) {
        self.stage = stage;
        self.why = Why::Said {
            rule: rule.to_owned(),
            reason,
        };
    }

    /// `(rule, reason)`, given how many actions were ranked and where the cut was.
    fn describe(&self, ranked: usize, cut: usize) -> (String, String) {
        match &self.why {
            Why::Nothing => (String::new(), String::new()),
            Why::Rule(rule, None) => (rule.name.clone(), format!("rule {:?} is false", rule.name)),
            Why::Rule(rule, Some(e)) => (
                rule.name.clone(),
                format!("rule {:?} could not be evaluated: {e}", rule.name),
            ),
            Why::Ranked(position) => (
                String::new(),
                format!(
                    "ranked {} of {ranked}, below the cut of {cut}",
                    position + 1
                ),
            ),
            Why::Said { rule, reason } => (rule.clone(), reason.clone()),
        }
    }
}

/// Evaluates one engagement rule; returns whether the action passed.
fn engage<'a>(
    inputs: &Inputs<'_>,
    track: &mut Track<'a>,
    stage: FilterStage,
    rule: Option<&'a Rule>,
    action: &Action,
    scores: &Scores,
) -> bool {
    let Some(rule) = rule else { return true };
    let result = inputs.bindings.evaluate(rule, Some(action), scores);
    let passed = matches!(result, Ok(true));
    if inputs.explain {
        track.evaluations.push(RuleEvaluation {
            stage: stage as i32,
            rule: rule.name.clone(),
            expression: rule.expression.clone(),
            passed,
            error: result.as_ref().err().cloned().unwrap_or_default(),
        });
    }
    if !passed {
        track.stage = stage;
        track.why = Why::Rule(rule, result.err());
    }
    passed
}

/// Runs the funnel.
pub(crate) async fn run(
    inputs: &Inputs<'_>,
    scorer: &dyn Scorer,
    gate: &dyn ContactGate,
) -> Funnel {
    let config = inputs.config;
    let request = inputs.request;
    let max_actions = match request.max_actions {
        0 => config.defaults.max_actions,
        n => n,
    } as usize;
    // Candidates: offered on this channel and direction, at this touchpoint, now.
    let offered: Vec<usize> = config
        .candidates(request.channel, request.direction)
        .iter()
        .copied()
        .filter(|&i| config.actions[i].offered_at(&request.touchpoint, inputs.now))
        .collect();
    let mut tracks: HashMap<usize, Track<'_>> = HashMap::with_capacity(offered.len());
    let none = Scores::default();
    let mut survivors = Vec::with_capacity(offered.len());
    for &i in &offered {
        let action = &config.actions[i];
        let track = tracks.entry(i).or_default();
        if engage(
            inputs,
            track,
            FilterStage::Eligibility,
            action.eligibility.as_ref(),
            action,
            &none,
        ) && engage(
            inputs,
            track,
            FilterStage::Applicability,
            action.applicability.as_ref(),
            action,
            &none,
        ) {
            survivors.push(i);
        }
    }
    // One scoring call; past its limit, the actions of least static weight wait.
    if survivors.len() > MAX_SCORED {
        survivors.sort_by(|&a, &b| {
            let w = |i: usize| config.actions[i].value * config.actions[i].business_weight;
            w(b).total_cmp(&w(a)).then(a.cmp(&b))
        });
        for &i in &survivors[MAX_SCORED..] {
            if let Some(t) = tracks.get_mut(&i) {
                t.drop_at(
                    FilterStage::Arbitration,
                    "",
                    format!("beyond the {MAX_SCORED} actions of highest value scored per decision"),
                );
            }
        }
        survivors.truncate(MAX_SCORED);
    }
    let ids: Vec<String> = survivors
        .iter()
        .map(|&i| config.actions[i].id.clone())
        .collect();
    let scored = if ids.is_empty() && config.needs == ScoreNeeds::default() {
        Scored::default()
    } else {
        scorer.score(ids, config.needs).await
    };
    let mut out = Funnel::default();
    if let Some(churn) = scored.churn {
        out.customer_scores.insert("churn".into(), churn);
    }
    if let Some(clv) = scored.clv {
        out.customer_scores.insert("clv".into(), clv);
    }
    out.response.models = scored.models.clone();
    out.response.degraded.extend(scored.degraded.clone());
    // Suitability and context weights, then arbitration.
    let mut contenders = Vec::with_capacity(survivors.len());
    for &i in &survivors {
        let action = &config.actions[i];
        let (mean, stddev) = scored
            .propensities
            .get(&action.id)
            .copied()
            .unwrap_or((0.5, 0.29));
        out.propensities.push(LoggedPropensity {
            action_id: action.id.clone(),
            mean,
            stddev,
        });
        let scores = Scores {
            churn: scored.churn,
            clv: scored.clv,
            propensity: Some(mean),
        };
        let Some(track) = tracks.get_mut(&i) else {
            continue;
        };
        if !engage(
            inputs,
            track,
            FilterStage::Suitability,
            action.suitability.as_ref(),
            action,
            &scores,
        ) {
            continue;
        }
        let mut context_weight = 1.0;
        for weight in config.context_weights.iter().filter(|w| w.targets(action)) {
            let applies = inputs
                .bindings
                .evaluate(&weight.when, Some(action), &scores);
            if inputs.explain {
                track.evaluations.push(RuleEvaluation {
                    stage: FilterStage::Arbitration as i32,
                    rule: weight.name.clone(),
                    expression: weight.when.expression.clone(),
                    passed: matches!(applies, Ok(true)),
                    error: applies.as_ref().err().cloned().unwrap_or_default(),
                });
            }
            if matches!(applies, Ok(true)) {
                context_weight *= weight.weight;
            }
        }
        let propensity = arbitrate::propensity(
            config.exploration.mode,
            inputs.seed,
            &action.id,
            mean,
            stddev,
        );
        let contender = Contender {
            index: i,
            id: action.id.clone(),
            mean,
            stddev,
            propensity,
            weight: context_weight * action.value * action.business_weight,
            context_weight,
        };
        track.factors = Some(factors(&contender, action));
        contenders.push(contender);
    }
    arbitrate::rank(&mut contenders);
    // Contact policies and per-action holdouts, down the ranking until enough are chosen.
    let mut chosen: Vec<usize> = Vec::new();
    let mut withheld: Vec<bool> = vec![false; contenders.len()];
    let tenant = request
        .customer
        .as_ref()
        .map_or("", |c| c.tenant_id.as_str());
    let salt = &config.holdouts.salt;
    for (position, contender) in contenders.iter().enumerate() {
        let Some(track) = tracks.get_mut(&contender.index) else {
            continue;
        };
        if chosen.len() == max_actions {
            track.stage = FilterStage::Arbitration;
            track.why = Why::Ranked(position);
            continue;
        }
        let action = &config.actions[contender.index];
        // A customer-wide refusal (or a failure to check) answers for the actions after it.
        let earlier = out
            .contacts
            .iter()
            .find(|v| gate::refusal_covers(config, v, action, request.channel));
        let mut verdict = match earlier {
            Some(refusal) => ContactVerdict {
                action_id: action.id.clone(),
                rule: refusal.rule.clone(),
                reason: refusal.reason.clone(),
                ..ContactVerdict::default()
            },
            None => gate.reserve(action, request.channel).await,
        };
        if inputs.explain {
            track.evaluations.push(RuleEvaluation {
                stage: FilterStage::ContactPolicy as i32,
                rule: if verdict.rule.is_empty() {
                    "contact policies".into()
                } else {
                    verdict.rule.clone()
                },
                expression: "ReserveContact".into(),
                passed: verdict.reserved,
                error: String::new(),
            });
        }
        if !verdict.reserved {
            track.drop_at(
                FilterStage::ContactPolicy,
                &verdict.rule,
                verdict.reason.clone(),
            );
            withheld[position] = true;
            out.contacts.push(verdict);
            continue;
        }
        let experiment = holdout::action_experiment(&action.id);
        if action.control_share > 0.0 {
            let control = holdout::in_control(
                salt,
                tenant,
                inputs.customer_key,
                &experiment,
                action.control_share,
            );
            out.response.experiment_arms.push(ExperimentArm {
                experiment_id: experiment.clone(),
                arm: if control { "control" } else { "treatment" }.into(),
            });
            if control {
                gate.release(&mut verdict).await;
                track.drop_at(
                    FilterStage::Holdout,
                    &experiment,
                    format!("customer is in the control group of {:?}", action.id),
                );
                withheld[position] = true;
                out.contacts.push(verdict);
                continue;
            }
        }
        out.contacts.push(verdict);
        chosen.push(position);
    }
    // Selection probabilities over the actions the policy could have returned.
    let open: Vec<Contender> = contenders
        .iter()
        .zip(&withheld)
        .filter(|(_, w)| !**w)
        .map(|(c, _)| c.clone())
        .collect();
    let chosen_ids: Vec<&str> = chosen.iter().map(|&p| contenders[p].id.as_str()).collect();
    let probabilities = arbitrate::selection_probabilities(
        config.exploration.mode,
        config.exploration.samples,
        inputs.seed,
        &open,
        &chosen_ids,
    );
    let global = config.holdouts.global_share > 0.0
        && holdout::in_control(
            salt,
            tenant,
            inputs.customer_key,
            holdout::GLOBAL,
            config.holdouts.global_share,
        );
    if config.holdouts.global_share > 0.0 {
        out.response.experiment_arms.insert(
            0,
            ExperimentArm {
                experiment_id: holdout::GLOBAL.into(),
                arm: if global { "control" } else { "treatment" }.into(),
            },
        );
    }
    for (rank, (&position, probability)) in chosen.iter().zip(&probabilities).enumerate() {
        let contender = &contenders[position];
        let action = &config.actions[contender.index];
        let Some(track) = tracks.get_mut(&contender.index) else {
            continue;
        };
        track.rank = rank as u32 + 1;
        track.probability = *probability;
        if global {
            // What would have been shown is logged; the contact is given back.
            if let Some(v) = out.contacts.iter_mut().find(|v| v.action_id == action.id) {
                gate.release(v).await;
            }
            track.drop_at(
                FilterStage::Holdout,
                holdout::GLOBAL,
                "customer is in the global holdout".into(),
            );
            continue;
        }
        track.selected = true;
        out.response.actions.push(RankedAction {
            action_id: action.id.clone(),
            rank: rank as u32 + 1,
            factors: track.factors,
            selection_probability: *probability,
            payload: Some(action.payload.clone()),
            channel: request.channel,
            treatment: String::new(),
        });
    }
    if global {
        out.response.holdout = true;
        out.response.holdout_group = holdout::GLOBAL.into();
    }
    // The offered actions not returned, latest stage first (within a stage, highest priority
    // first), as many as `max_filtered`; the rest are counted.
    let ranked = contenders.len();
    let mut dropped: Vec<(usize, &Track<'_>)> = offered
        .iter()
        .filter_map(|i| tracks.get(i).map(|t| (*i, t)))
        .filter(|(_, t)| !t.selected)
        .collect();
    dropped.sort_by(|(a, ta), (b, tb)| {
        let priority = |t: &Track<'_>| t.factors.map_or(0.0, |f| f.priority);
        (tb.stage as i32)
            .cmp(&(ta.stage as i32))
            .then(priority(tb).total_cmp(&priority(ta)))
            .then(a.cmp(b))
    });
    out.response.filtered_omitted = dropped.len().saturating_sub(inputs.max_filtered) as u32;
    for (i, track) in dropped.into_iter().take(inputs.max_filtered) {
        let (rule, reason) = track.describe(ranked, max_actions);
        out.response.filtered.push(FilteredAction {
            action_id: config.actions[i].id.clone(),
            stage: track.stage as i32,
            rule,
            reason,
            factors: track.factors,
        });
    }
    if inputs.explain {
        for &i in &offered {
            if let Some(track) = tracks.remove(&i) {
                out.explanations
                    .push(explanation(&config.actions[i], track, ranked, max_actions));
            }
        }
    }
    out
}

fn factors(c: &Contender, action: &Action) -> PriorityFactors {
    PriorityFactors {
        propensity: c.propensity,
        propensity_mean: c.mean,
        context_weight: c.context_weight,
        value: action.value,
        business_weight: action.business_weight,
        priority: c.priority(),
    }
}

fn explanation(action: &Action, track: Track<'_>, ranked: usize, cut: usize) -> ActionExplanation {
    let reason = if track.selected {
        format!("returned at rank {}", track.rank)
    } else {
        track.describe(ranked, cut).1
    };
    ActionExplanation {
        action_id: action.id.clone(),
        selected: track.selected,
        rank: if track.selected { track.rank } else { 0 },
        stage: if track.selected {
            FilterStage::Unspecified
        } else {
            track.stage
        } as i32,
        reason,
        evaluations: track.evaluations,
        factors: track.factors,
        selection_probability: if track.selected {
            track.probability
        } else {
            0.0
        },
    }
}
