//! Survey statistics (NPS classes, CSAT, CES sums) and the peak-end score of each
//! customer-day with an experience.

use iee_api::pb::common::{Event, SurveyAnswer, SurveyKind};

use super::folder::{Ctx, emit};
use super::observations::Observations;
use super::state::{CustomerState, PeakEnd, Row};
use crate::fields::stat;

/// Fixed experience values of event types that are experiences in themselves: the same as the
/// profile's peak-end (`services/profile/src/fold/experience.rs`).
const TYPE_VALUES: &[(&str, f64)] = &[
    ("support_ticket", -0.5),
    ("support_resolved", 0.5),
    ("refund", -0.4),
];

/// A survey answer on a -1..1 scale, the profile's mapping (NPS 0→-1, 5→0, 10→1; CSAT 1→-1,
/// 5→1; CES 1→1, 7→-1, lower effort being better). `None` for an unknown kind.
fn survey_value(answer: &SurveyAnswer) -> Option<f64> {
    let s = f64::from(answer.score);
    let v = match SurveyKind::try_from(answer.kind).ok()? {
        SurveyKind::Nps => (s - 5.0) / 5.0,
        SurveyKind::Csat => (s - 3.0) / 2.0,
        SurveyKind::Ces => (4.0 - s) / 3.0,
        SurveyKind::Unspecified => return None,
    };
    Some(v.clamp(-1.0, 1.0))
}

/// The experience value of an event as the profile computes it, except that text sentiment is
/// left out (the KPI service runs no sentiment model): the mean of its survey answer's value
/// and its type's fixed value, `None` when it carries neither.
pub(super) fn event_value(event: &Event) -> Option<f64> {
    let parts = [
        event.survey.as_ref().and_then(survey_value),
        TYPE_VALUES
            .iter()
            .find(|(t, _)| *t == event.r#type)
            .map(|(_, v)| *v),
    ];
    let present: Vec<f64> = parts.into_iter().flatten().collect();
    #[allow(clippy::cast_precision_loss)]
    let n = present.len() as f64;
    (!present.is_empty()).then(|| present.iter().sum::<f64>() / n)
}

/// Counts a survey answer. Scores outside their scale (which ingest rejects) are left out.
pub(super) fn surveys(ctx: &Ctx<'_>, event: &Event, row: &Row, out: &mut Observations) {
    let Some(answer) = event.survey.as_ref() else {
        return;
    };
    let mut add = |stat: &str, delta: f64| emit(ctx.tenant, ctx.at, stat, row, delta, out);
    let score = answer.score;
    match SurveyKind::try_from(answer.kind) {
        Ok(SurveyKind::Nps) => match score {
            0..=6 => add(stat::NPS_DETRACTORS, 1.0),
            7..=8 => add(stat::NPS_PASSIVES, 1.0),
            9..=10 => add(stat::NPS_PROMOTERS, 1.0),
            _ => {}
        },
        Ok(SurveyKind::Csat) if (1..=5).contains(&score) => {
            add(stat::CSAT_N, 1.0);
            if score >= 4 {
                add(stat::CSAT_SATISFIED, 1.0);
            }
        }
        Ok(SurveyKind::Ces) if (1..=7).contains(&score) => {
            let s = f64::from(score);
            add(stat::CES_N, 1.0);
            add(stat::CES_SUM, s);
            add(stat::CES_SUMSQ, s * s);
        }
        _ => {}
    }
}

/// Folds an experience into the peak-end of its customer-day: the day's first experience
/// counts the day; later ones change the day's score by its difference (and its square's).
/// An experience of a day before the latest one is left out (that day's state is gone).
pub(super) fn peak_end(
    ctx: &Ctx<'_>,
    event: &Event,
    state: &mut CustomerState,
    row: &Row,
    out: &mut Observations,
) {
    let Some(value) = event_value(event) else {
        return;
    };
    let day = ctx.at.div_euclid(86_400);
    match state.peak_end.as_mut() {
        Some(pe) if pe.day > day => {}
        Some(pe) if pe.day == day => {
            if value.abs() > pe.peak.abs() || (value.abs() == pe.peak.abs() && ctx.at >= pe.peak_at)
            {
                pe.peak = value;
                pe.peak_at = ctx.at;
            }
            if ctx.at >= pe.end_at {
                pe.end = value;
                pe.end_at = ctx.at;
            }
            let score = (pe.peak + pe.end) / 2.0;
            let before = pe.score;
            pe.score = score;
            if let Some(pe_row) = &pe.row {
                emit(
                    ctx.tenant,
                    pe.at,
                    stat::PEAK_END_SUM,
                    pe_row,
                    score - before,
                    out,
                );
                emit(
                    ctx.tenant,
                    pe.at,
                    stat::PEAK_END_SUMSQ,
                    pe_row,
                    score * score - before * before,
                    out,
                );
            }
        }
        _ => {
            emit(ctx.tenant, ctx.at, stat::PEAK_END_N, row, 1.0, out);
            emit(ctx.tenant, ctx.at, stat::PEAK_END_SUM, row, value, out);
            emit(
                ctx.tenant,
                ctx.at,
                stat::PEAK_END_SUMSQ,
                row,
                value * value,
                out,
            );
            state.peak_end = Some(PeakEnd {
                day,
                peak: value,
                peak_at: ctx.at,
                end: value,
                end_at: ctx.at,
                score: value,
                row: Some(row.clone()),
                at: ctx.at,
            });
        }
    }
}
