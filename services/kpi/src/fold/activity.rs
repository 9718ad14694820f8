//! Customer-level activity: the cohort and its retention weeks, active customer-days with
//! their revenue and churn, orders, and the revenue and churn of experiment assignments.

use iee_api::pb::common::Money;

use super::folder::{Ctx, emit, emit_arms};
use super::observations::Observations;
use super::state::{ActiveDay, CustomerState, Row};
use crate::fields::{MAX_RETENTION_WEEK, retained, stat};

/// Seconds per day.
const DAY_SECS: i64 = 86_400;
/// Seconds per week.
const WEEK_SECS: i64 = 7 * DAY_SECS;

/// The UTC day (days since the epoch) of `at` seconds.
fn day_of(at: i64) -> i64 {
    at.div_euclid(DAY_SECS)
}

/// Counts the customer's cohort at the first interaction, then each retention week once.
///
/// First-seen never moves: an interaction older than it (late in the log) belongs to no
/// retention week, so the cohort is counted once, in the bucket counted first.
pub(super) fn cohort(ctx: &Ctx<'_>, state: &mut CustomerState, row: &Row, out: &mut Observations) {
    let Some(first) = state.first_seen else {
        // Retention is not split by action, so the cohort row has none.
        let cohort = row.with_action("");
        emit(ctx.tenant, ctx.at, stat::COHORT, &cohort, 1.0, out);
        state.first_seen = Some(ctx.at);
        state.cohort = Some(cohort);
        return;
    };
    if ctx.at <= first {
        return;
    }
    let week = (ctx.at - first) / WEEK_SECS;
    let Ok(week) = u32::try_from(week) else {
        return;
    };
    if !(1..=MAX_RETENTION_WEEK).contains(&week) || state.retention_weeks & (1 << week) != 0 {
        return;
    }
    state.retention_weeks |= 1 << week;
    if let Some(cohort) = &state.cohort {
        emit(ctx.tenant, first, &retained(week), cohort, 1.0, out);
    }
}

/// Counts an active customer-day at the day's first interaction. A late interaction of a day
/// before the latest active day is not counted again (the state no longer knows that day).
pub(super) fn active_day(
    ctx: &Ctx<'_>,
    state: &mut CustomerState,
    row: &Row,
    out: &mut Observations,
) {
    let day = day_of(ctx.at);
    if state.day.as_ref().is_some_and(|d| d.day >= day) {
        return;
    }
    emit(ctx.tenant, ctx.at, stat::ACTIVE_CUSTOMERS, row, 1.0, out);
    state.day = Some(ActiveDay {
        day,
        at: ctx.at,
        row: Some(row.clone()),
        revenue: 0.0,
        churned: false,
    });
}

/// Counts an order (a conversion event with a value): its value on the event's rows, the
/// change of the day's squared revenue on the active day's rows (only for the latest active
/// day), the change of each assignment's squared revenue on its arm row.
pub(super) fn order(
    ctx: &Ctx<'_>,
    value: &Money,
    state: &mut CustomerState,
    row: &Row,
    out: &mut Observations,
) {
    #[allow(clippy::cast_precision_loss)] // Exact below 2^53 minor units.
    let amount = value.amount_minor as f64;
    emit(ctx.tenant, ctx.at, stat::ORDERS, row, 1.0, out);
    emit(ctx.tenant, ctx.at, stat::REVENUE, row, amount, out);
    emit(
        ctx.tenant,
        ctx.at,
        stat::REVENUE_SUMSQ,
        row,
        amount * amount,
        out,
    );
    let today = day_of(ctx.at);
    if let Some(day) = state.day.as_mut().filter(|d| d.day == today) {
        let (before, after) = (day.revenue, day.revenue + amount);
        day.revenue = after;
        if let Some(day_row) = &day.row {
            emit(
                ctx.tenant,
                day.at,
                stat::DAY_REVENUE_SUMSQ,
                day_row,
                after * after - before * before,
                out,
            );
        }
    }
    for assignment in &mut state.assignments {
        if assignment.assigned_at > ctx.at {
            continue;
        }
        let (before, after) = (assignment.revenue, assignment.revenue + amount);
        assignment.revenue = after;
        if let Some(arm_row) = &assignment.row {
            emit_arms(
                ctx.tenant,
                assignment.assigned_at,
                stat::ASSIGNED_REVENUE_SUMSQ,
                arm_row,
                after * after - before * before,
                out,
            );
        }
    }
}

/// Counts a churn: once per customer-day on the active day's rows (only for the latest active
/// day), once per assignment before it.
pub(super) fn churn(ctx: &Ctx<'_>, state: &mut CustomerState, out: &mut Observations) {
    let today = day_of(ctx.at);
    if let Some(day) = state.day.as_mut().filter(|d| d.day == today && !d.churned) {
        day.churned = true;
        if let Some(day_row) = &day.row {
            emit(ctx.tenant, day.at, stat::CHURNED, day_row, 1.0, out);
        }
    }
    for assignment in &mut state.assignments {
        if assignment.churned || assignment.assigned_at > ctx.at {
            continue;
        }
        assignment.churned = true;
        if let Some(arm_row) = &assignment.row {
            emit_arms(
                ctx.tenant,
                assignment.assigned_at,
                stat::ASSIGNED_CHURNED,
                arm_row,
                1.0,
                out,
            );
        }
    }
}
