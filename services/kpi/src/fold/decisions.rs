//! Decisions: exposures (decision counts, returned actions, predicted CLV, experiment
//! assignments), outcomes reported against them, and the attribution of conversions to the
//! decisions and assignments before them.

use iee_api::pb::common::{Event, Exposure, property_value::Kind};
use iee_store::MarkOp;

use super::config::FoldConfig;
use super::folder::{Ctx, Folded, emit, emit_arms};
use super::observations::Observations;
use super::state::{Assignment, CustomerState, RecentDecision, Row};
use super::vocabulary::Vocabulary;
use crate::fields::{mark, stat};

/// Event type of reported outcomes.
const OUTCOME_TYPE: &str = "decision_outcome";

/// Drops the decisions older than the attribution window before the latest record.
pub(super) fn prune(config: &FoldConfig, state: &mut CustomerState) {
    let horizon = state.last_seen.saturating_sub(config.window_secs());
    state.decisions.retain(|d| d.at >= horizon);
}

/// Whether a decision at `decided_at` lies within the attribution window before `at`.
fn in_window(ctx: &Ctx<'_>, decided_at: i64) -> bool {
    decided_at <= ctx.at && ctx.at.saturating_sub(decided_at) <= ctx.config.window_secs()
}

/// The action dimension of an interaction at `ctx.at`: the first action of the latest decision
/// within the attribution window before it (empty if none).
pub(super) fn current_action(ctx: &Ctx<'_>, state: &CustomerState) -> String {
    state
        .decisions
        .iter()
        .filter(|d| in_window(ctx, d.at))
        .max_by_key(|d| d.at)
        .and_then(|d| d.row.as_ref())
        .map(|r| r.action.clone())
        .unwrap_or_default()
}

/// Folds a decision.
pub(super) fn expose(
    ctx: &Ctx<'_>,
    vocabulary: &mut Vocabulary,
    event: &Event,
    exposure: &Exposure,
    state: &mut CustomerState,
    out: &mut Observations,
) -> Folded {
    if state
        .decisions
        .iter()
        .any(|d| d.decision_id == exposure.decision_id)
    {
        // A re-appended exposure (the log dedups appends only for a day).
        return Folded::Skipped("duplicate decision");
    }
    let actions: Vec<String> = exposure
        .action_ids
        .iter()
        .map(|a| vocabulary.admit_action(ctx.tenant, a, out))
        .collect();
    let row = Row {
        channel: event.channel,
        touchpoint: vocabulary.admit_touchpoint(ctx.tenant, &event.touchpoint, out),
        stage: event.journey_stage,
        action: actions.first().cloned().unwrap_or_default(),
        arms: exposure
            .arms
            .iter()
            .map(|a| format!("{}/{}", a.experiment_id, a.arm))
            .collect(),
    };
    emit(ctx.tenant, ctx.at, stat::DECISIONS, &row, 1.0, out);
    for action in &actions {
        emit(
            ctx.tenant,
            ctx.at,
            stat::ACTIONS,
            &row.with_action(action),
            1.0,
            out,
        );
    }
    if let Some(clv) = exposure.predicted_clv.filter(|v| v.is_finite()) {
        emit(ctx.tenant, ctx.at, stat::CLV_N, &row, 1.0, out);
        emit(ctx.tenant, ctx.at, stat::CLV_SUM, &row, clv, out);
        emit(ctx.tenant, ctx.at, stat::CLV_SUMSQ, &row, clv * clv, out);
    }
    assign(ctx, exposure, &row, state, out);
    state.decisions.push(RecentDecision {
        decision_id: exposure.decision_id.clone(),
        at: ctx.at,
        row: Some(row),
        action_ids: exposure.action_ids.clone(),
        ..RecentDecision::default()
    });
    // Stable: decisions of the same second keep their log order.
    state.decisions.sort_by_key(|d| d.at);
    let cap = usize::try_from(ctx.config.max_recent_decisions).unwrap_or(usize::MAX);
    let excess = state.decisions.len().saturating_sub(cap);
    state.decisions.drain(..excess);
    Folded::Applied
}

/// Records the customer's first assignment to each experiment of the exposure, while the
/// state has room for it.
fn assign(
    ctx: &Ctx<'_>,
    exposure: &Exposure,
    row: &Row,
    state: &mut CustomerState,
    out: &mut Observations,
) {
    let cap = usize::try_from(ctx.config.max_experiments_per_customer).unwrap_or(usize::MAX);
    for arm in &exposure.arms {
        if state
            .assignments
            .iter()
            .any(|a| a.experiment == arm.experiment_id)
        {
            continue;
        }
        if state.assignments.len() >= cap {
            break;
        }
        let mut assignment = Assignment {
            experiment: arm.experiment_id.clone(),
            arm: arm.arm.clone(),
            assigned_at: ctx.at,
            ..Assignment::default()
        };
        let label = assignment.label();
        let arm_row = Row {
            arms: vec![label.clone()],
            ..row.clone()
        };
        emit_arms(ctx.tenant, ctx.at, stat::ASSIGNED, &arm_row, 1.0, out);
        assignment.row = Some(arm_row);
        #[allow(clippy::cast_precision_loss)] // Exact below 2^53 ms (year 285,000).
        let at_ms = ctx.at_ms as f64;
        let experiment = &arm.experiment_id;
        out.mark(
            ctx.tenant,
            mark::first_assigned(experiment),
            MarkOp::Min,
            at_ms,
        );
        out.mark(
            ctx.tenant,
            mark::last_assigned(experiment),
            MarkOp::Max,
            at_ms,
        );
        out.mark(
            ctx.tenant,
            mark::allocation(&label),
            MarkOp::Set,
            arm.allocation,
        );
        state.assignments.push(assignment);
    }
}

/// A reported outcome (a `decision_outcome` event).
pub(super) struct Outcome {
    /// The decision it reports on.
    pub decision_id: String,
    /// The action.
    pub action_id: String,
    /// `impression`, `click`, `accept`, `convert`, `dismiss`.
    pub kind: String,
}

impl Outcome {
    /// The outcome `event` reports, if it is one.
    pub(super) fn of(event: &Event) -> Option<Self> {
        if event.r#type != OUTCOME_TYPE {
            return None;
        }
        let text = |key: &str| match event.properties.get(key).and_then(|v| v.kind.as_ref()) {
            Some(Kind::StringValue(s)) => s.clone(),
            _ => String::new(),
        };
        Some(Self {
            decision_id: text("decision_id"),
            action_id: text("action_id"),
            kind: text("kind"),
        })
    }

    /// Whether it is a conversion.
    pub(super) fn converts(&self) -> bool {
        self.kind == "convert"
    }
}

/// Counts a click, acceptance or conversion of a decision's action: once per decision and
/// action on the decision's rows and time while the decision is remembered, otherwise on the
/// outcome event's own rows (`row`) and time.
pub(super) fn outcome(
    ctx: &Ctx<'_>,
    vocabulary: &mut Vocabulary,
    outcome: &Outcome,
    state: &mut CustomerState,
    row: &Row,
    out: &mut Observations,
) {
    let stat = match outcome.kind.as_str() {
        "click" => stat::CLICKED,
        "accept" => stat::ACCEPTED,
        "convert" => stat::CONVERTED,
        _ => return,
    };
    let decision = state
        .decisions
        .iter_mut()
        .find(|d| !outcome.decision_id.is_empty() && d.decision_id == outcome.decision_id);
    let Some(decision) = decision else {
        let action = vocabulary.admit_action(ctx.tenant, &outcome.action_id, out);
        emit(
            ctx.tenant,
            ctx.at,
            stat,
            &row.with_action(&action),
            1.0,
            out,
        );
        return;
    };
    let Some(decision_row) = decision.row.clone() else {
        return;
    };
    if stat == stat::CONVERTED {
        if !decision.converted {
            decision.converted = true;
            emit(ctx.tenant, decision.at, stat, &decision_row, 1.0, out);
        }
        return;
    }
    if !decision.action_ids.contains(&outcome.action_id) {
        // Not returned by the decision: counting it could push the rate above one.
        return;
    }
    let counted = if stat == stat::CLICKED {
        &mut decision.clicked
    } else {
        &mut decision.accepted
    };
    if counted.contains(&outcome.action_id) {
        return;
    }
    counted.push(outcome.action_id.clone());
    let action = vocabulary.admit_action(ctx.tenant, &outcome.action_id, out);
    emit(
        ctx.tenant,
        decision.at,
        stat,
        &decision_row.with_action(&action),
        1.0,
        out,
    );
}

/// Attributes a conversion at `ctx.at`: every decision within the attribution window before it
/// converts (once), and every assignment before it (once).
pub(super) fn attribute_conversion(
    ctx: &Ctx<'_>,
    state: &mut CustomerState,
    out: &mut Observations,
) {
    for decision in &mut state.decisions {
        if decision.converted || !in_window(ctx, decision.at) {
            continue;
        }
        decision.converted = true;
        if let Some(row) = &decision.row {
            emit(ctx.tenant, decision.at, stat::CONVERTED, row, 1.0, out);
        }
    }
    for assignment in &mut state.assignments {
        if assignment.converted || assignment.assigned_at > ctx.at {
            continue;
        }
        assignment.converted = true;
        if let Some(row) = &assignment.row {
            emit_arms(
                ctx.tenant,
                assignment.assigned_at,
                stat::ASSIGNED_CONVERTED,
                row,
                1.0,
                out,
            );
        }
    }
}
