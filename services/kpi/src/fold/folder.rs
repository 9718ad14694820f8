//! The fold of one log record into a customer's measurement state and the batch's
//! observations: which records count, and the order in which an interaction's rules apply.

use iee_api::pb::common::{Event, LogRecord};

use super::config::FoldConfig;
use super::observations::Observations;
use super::state::{CustomerState, Row};
use super::vocabulary::Vocabulary;
use super::{activity, decisions, experience, sessions};
use crate::fields::{field, stat};

/// What [`fold`] did with a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Folded {
    /// The record was counted.
    Applied,
    /// The record was left out, and why. `"erase"` asks the caller to delete the customer's
    /// state.
    Skipped(&'static str),
}

/// What every rule needs to know of the record being folded.
pub(super) struct Ctx<'a> {
    /// The tunables.
    pub config: &'a FoldConfig,
    /// The event's tenant.
    pub tenant: &'a str,
    /// The event's `occurred_at`, Unix seconds.
    pub at: i64,
    /// The same in milliseconds.
    pub at_ms: i64,
}

/// Adds `delta` to `stat` on the overall row of `row` and on each of its arm rows.
pub(super) fn emit(
    tenant: &str,
    at: i64,
    stat: &str,
    row: &Row,
    delta: f64,
    out: &mut Observations,
) {
    out.add(tenant, at, field(stat, &row.dims()), delta);
    emit_arms(tenant, at, stat, row, delta, out);
}

/// Adds `delta` to `stat` on the arm rows of `row` only.
pub(super) fn emit_arms(
    tenant: &str,
    at: i64,
    stat: &str,
    row: &Row,
    delta: f64,
    out: &mut Observations,
) {
    let mut dims = row.dims();
    for arm in &row.arms {
        dims.arm.clone_from(arm);
        out.add(tenant, at, field(stat, &dims), delta);
    }
}

/// Folds one record of a shard's log.
///
/// Left out: records without an event or without `occurred_at`, forwarded copies and merge
/// records (counted on the shard the events were first logged on) and erase records
/// (`Skipped("erase")`: the caller deletes the state). Decisions (records with an exposure)
/// count as decisions; every other event is an interaction of the customer.
pub fn fold(
    config: &FoldConfig,
    vocabulary: &mut Vocabulary,
    record: &LogRecord,
    state: &mut CustomerState,
    out: &mut Observations,
) -> Folded {
    if record.erase_profile {
        return Folded::Skipped("erase");
    }
    let Some(event) = record.event.as_ref() else {
        return Folded::Skipped("no event");
    };
    if record.forwarded_from_shard.is_some() {
        return Folded::Skipped("forwarded");
    }
    if !record.merged_profile.is_empty() {
        return Folded::Skipped("merge");
    }
    let Some(occurred_at) = event.occurred_at.as_ref() else {
        return Folded::Skipped("no occurred_at");
    };
    let ctx = Ctx {
        config,
        tenant: &event.tenant_id,
        at: occurred_at.seconds,
        at_ms: occurred_at
            .seconds
            .saturating_mul(1_000)
            .saturating_add(i64::from(occurred_at.nanos.max(0)) / 1_000_000),
    };
    state.last_seen = state.last_seen.max(ctx.at);
    decisions::prune(config, state);
    match record.exposure.as_ref() {
        Some(exposure) => decisions::expose(&ctx, vocabulary, event, exposure, state, out),
        None => {
            interaction(&ctx, vocabulary, event, state, out);
            Folded::Applied
        }
    }
}

/// Applies every interaction rule to `event`.
fn interaction(
    ctx: &Ctx<'_>,
    vocabulary: &mut Vocabulary,
    event: &Event,
    state: &mut CustomerState,
    out: &mut Observations,
) {
    let row = Row {
        channel: event.channel,
        touchpoint: vocabulary.admit_touchpoint(ctx.tenant, &event.touchpoint, out),
        stage: event.journey_stage,
        action: decisions::current_action(ctx, state),
        arms: state.arms_at(ctx.at),
    };
    emit(ctx.tenant, ctx.at, stat::EVENTS, &row, 1.0, out);
    activity::cohort(ctx, state, &row, out);
    activity::active_day(ctx, state, &row, out);
    let outcome = decisions::Outcome::of(event);
    let conversion = ctx.config.is_conversion(&event.r#type);
    let converts = conversion || outcome.as_ref().is_some_and(decisions::Outcome::converts);
    sessions::on_interaction(ctx, state, &row, converts, out);
    experience::surveys(ctx, event, &row, out);
    experience::peak_end(ctx, event, state, &row, out);
    if let Some(outcome) = &outcome {
        decisions::outcome(ctx, vocabulary, outcome, state, &row, out);
    }
    if conversion && let Some(value) = &event.value {
        activity::order(ctx, value, state, &row, out);
    }
    if converts {
        decisions::attribute_conversion(ctx, state, out);
    }
    if ctx.config.is_churn(&event.r#type) {
        activity::churn(ctx, state, out);
    }
}
