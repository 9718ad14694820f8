//! Survey answers and the peak-end experience score: each experience-bearing event maps to a
//! value in -1..1; the score is the mean of the peak (largest magnitude within the look-back
//! before the latest experience) and the end (the latest experience).

use iee_api::pb::common::{Event, SurveyAnswer, SurveyKind};
use iee_api::pb::profile::{ExperiencePoint, ExperienceScore, Profile, SurveyRecord, Surveys};

use super::time::{ms_ts, opt_ms};

/// Candidates kept for the peak; beyond this the oldest non-peak candidates are dropped.
const MAX_PEAK_CANDIDATES: usize = 32;

/// Fixed experience values of event types that are experiences in themselves.
const TYPE_VALUES: &[(&str, f64)] = &[
    ("support_ticket", -0.5),
    ("support_resolved", 0.5),
    ("refund", -0.4),
];

/// A survey answer on a -1..1 scale (NPS 0→-1, 5→0, 10→1; CSAT 1→-1, 5→1; CES 1→1, 7→-1,
/// lower effort being better). `None` for an unknown kind.
pub(crate) fn survey_value(answer: &SurveyAnswer) -> Option<f64> {
    let s = f64::from(answer.score);
    let v = match SurveyKind::try_from(answer.kind).ok()? {
        SurveyKind::Nps => (s - 5.0) / 5.0,
        SurveyKind::Csat => (s - 3.0) / 2.0,
        SurveyKind::Ces => (4.0 - s) / 3.0,
        SurveyKind::Unspecified => return None,
    };
    Some(v.clamp(-1.0, 1.0))
}

/// The experience value of an event: the mean of the parts it carries (its survey answer, its
/// type's fixed value, its text sentiment), `None` when it carries none.
pub(crate) fn event_value(event: &Event, sentiment: Option<f64>) -> Option<f64> {
    let parts = [
        event.survey.as_ref().and_then(survey_value),
        TYPE_VALUES
            .iter()
            .find(|(t, _)| *t == event.r#type)
            .map(|(_, v)| *v),
        sentiment,
    ];
    let present: Vec<f64> = parts.into_iter().flatten().collect();
    #[allow(clippy::cast_precision_loss)]
    let n = present.len() as f64;
    (!present.is_empty()).then(|| present.iter().sum::<f64>() / n)
}

/// Records an experience of `value` at `at_ms`.
pub(crate) fn record(score: &mut ExperienceScore, value: f64, at_ms: i64, lookback_ms: i64) {
    score.samples += 1;
    if opt_ms(score.end_at.as_ref()).is_none_or(|end| at_ms >= end) {
        score.end = value;
        score.end_at = Some(ms_ts(at_ms));
    }
    let point = ExperiencePoint {
        value,
        at: Some(ms_ts(at_ms)),
    };
    let mut points = std::mem::take(&mut score.peak_candidates);
    points.push(point);
    score.peak_candidates = points;
    refresh(score, lookback_ms);
}

fn at(p: &ExperiencePoint) -> i64 {
    opt_ms(p.at.as_ref()).unwrap_or(0)
}

/// Re-derives the candidates (time order, dominated and expired points dropped), the peak and
/// the score.
fn refresh(score: &mut ExperienceScore, lookback_ms: i64) {
    let end_ms = opt_ms(score.end_at.as_ref()).unwrap_or(0);
    let mut points = std::mem::take(&mut score.peak_candidates);
    points.retain(|p| at(p) >= end_ms.saturating_sub(lookback_ms));
    points.sort_by_key(at);
    // Newest first: a point survives only if it is strictly larger than every later one (a
    // later point of equal magnitude outlives it in the window).
    let mut kept: Vec<ExperiencePoint> = Vec::with_capacity(points.len());
    let mut largest_later = -1.0_f64;
    for p in points.into_iter().rev() {
        if p.value.abs() > largest_later {
            largest_later = p.value.abs();
            kept.push(p);
        }
    }
    kept.reverse();
    while kept.len() > MAX_PEAK_CANDIDATES {
        // Keep the peak (front) and the newest; drop the oldest of the others.
        kept.remove(1);
    }
    match kept.first() {
        Some(peak) => {
            score.peak = peak.value;
            score.peak_at = peak.at;
        }
        None => {
            score.peak = 0.0;
            score.peak_at = None;
        }
    }
    score.score = if score.samples == 0 {
        0.0
    } else {
        (score.peak + score.end) / 2.0
    };
    score.peak_candidates = kept;
}

/// Merges an anonymous profile's experiences.
pub(crate) fn merge(ours: &mut ExperienceScore, theirs: &ExperienceScore, lookback_ms: i64) {
    if theirs.samples == 0 {
        return;
    }
    if opt_ms(ours.end_at.as_ref()) < opt_ms(theirs.end_at.as_ref()) {
        ours.end = theirs.end;
        ours.end_at = theirs.end_at;
    }
    ours.samples += theirs.samples;
    ours.peak_candidates
        .extend(theirs.peak_candidates.iter().cloned());
    refresh(ours, lookback_ms);
}

/// Records a survey answer as the latest of its kind unless a later answer is already known.
/// Returns the record when it was stored.
pub(crate) fn record_survey(
    profile: &mut Profile,
    event: &Event,
    at_ms: i64,
) -> Option<SurveyRecord> {
    let answer = event.survey.as_ref()?;
    let record = SurveyRecord {
        answer: Some(answer.clone()),
        answered_at: Some(ms_ts(at_ms)),
        channel: event.channel,
        touchpoint: event.touchpoint.clone(),
        event_id: event.event_id.clone(),
    };
    let surveys = profile.surveys.get_or_insert_with(Default::default);
    let slot = slot(surveys, answer.kind)?;
    if slot
        .as_ref()
        .is_some_and(|s| opt_ms(s.answered_at.as_ref()) > Some(at_ms))
    {
        return None;
    }
    *slot = Some(record.clone());
    Some(record)
}

fn slot(surveys: &mut Surveys, kind: i32) -> Option<&mut Option<SurveyRecord>> {
    match SurveyKind::try_from(kind).ok()? {
        SurveyKind::Nps => Some(&mut surveys.nps),
        SurveyKind::Csat => Some(&mut surveys.csat),
        SurveyKind::Ces => Some(&mut surveys.ces),
        SurveyKind::Unspecified => None,
    }
}

/// Merges an anonymous profile's survey answers (the later answer of each kind wins).
pub(crate) fn merge_surveys(ours: &mut Surveys, theirs: &Surveys) {
    for (mine, other) in [
        (&mut ours.nps, &theirs.nps),
        (&mut ours.csat, &theirs.csat),
        (&mut ours.ces, &theirs.ces),
    ] {
        if let Some(other) = other
            && mine
                .as_ref()
                .is_none_or(|m| opt_ms(m.answered_at.as_ref()) < opt_ms(other.answered_at.as_ref()))
        {
            *mine = Some(other.clone());
        }
    }
}

/// Whether an NPS answer makes the customer a detractor (0-6) or a promoter (9-10).
pub(crate) fn nps_class(answer: &SurveyAnswer) -> Option<NpsClass> {
    if answer.kind != SurveyKind::Nps as i32 {
        return None;
    }
    match answer.score {
        0..=6 => Some(NpsClass::Detractor),
        9..=10 => Some(NpsClass::Promoter),
        _ => Some(NpsClass::Passive),
    }
}

/// NPS answer classes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NpsClass {
    Detractor,
    Passive,
    Promoter,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fold::time::DAY_MS;

    const LOOKBACK: i64 = 90 * DAY_MS;

    fn nps(score: i32) -> SurveyAnswer {
        SurveyAnswer {
            kind: SurveyKind::Nps as i32,
            score,
            survey_id: String::new(),
        }
    }

    #[test]
    fn survey_scales_map_onto_minus_one_to_one() {
        let v = |kind: SurveyKind, score| {
            survey_value(&SurveyAnswer {
                kind: kind as i32,
                score,
                survey_id: String::new(),
            })
        };
        assert_eq!(v(SurveyKind::Nps, 0), Some(-1.0));
        assert_eq!(v(SurveyKind::Nps, 10), Some(1.0));
        assert_eq!(v(SurveyKind::Csat, 3), Some(0.0));
        assert_eq!(v(SurveyKind::Ces, 1), Some(1.0));
        assert_eq!(v(SurveyKind::Ces, 7), Some(-1.0));
        assert_eq!(v(SurveyKind::Unspecified, 7), None);
    }

    #[test]
    fn event_value_averages_its_parts() {
        let ticket = Event {
            r#type: "support_ticket".into(),
            ..Event::default()
        };
        assert_eq!(event_value(&ticket, None), Some(-0.5));
        assert_eq!(event_value(&ticket, Some(-0.9)), Some(-0.7));
        let view = Event {
            r#type: "page_view".into(),
            ..Event::default()
        };
        assert_eq!(event_value(&view, None), None);
        let survey = Event {
            r#type: "survey_response".into(),
            survey: Some(nps(10)),
            ..Event::default()
        };
        assert_eq!(event_value(&survey, None), Some(1.0));
    }

    #[test]
    fn score_is_mean_of_peak_and_end() {
        let mut s = ExperienceScore::default();
        record(&mut s, -0.9, 0, LOOKBACK);
        record(&mut s, 0.2, DAY_MS, LOOKBACK);
        record(&mut s, 0.5, 2 * DAY_MS, LOOKBACK);
        assert_eq!((s.peak, s.end), (-0.9, 0.5));
        assert!((s.score + 0.2).abs() < 1e-12);
        assert_eq!(s.samples, 3);
        // 0.2 can never be the peak again: 0.5 is larger and later.
        assert_eq!(s.peak_candidates.len(), 2);
    }

    #[test]
    fn peak_leaves_the_look_back() {
        let mut s = ExperienceScore::default();
        record(&mut s, -1.0, 0, LOOKBACK);
        record(&mut s, 0.4, 50 * DAY_MS, LOOKBACK);
        record(&mut s, 0.1, 91 * DAY_MS, LOOKBACK);
        assert_eq!((s.peak, s.end), (0.4, 0.1));
        assert_eq!(opt_ms(s.peak_at.as_ref()), Some(50 * DAY_MS));
    }

    #[test]
    fn late_experience_does_not_replace_the_end() {
        let mut s = ExperienceScore::default();
        record(&mut s, 0.3, 10 * DAY_MS, LOOKBACK);
        record(&mut s, -0.8, 5 * DAY_MS, LOOKBACK);
        assert_eq!((s.peak, s.end), (-0.8, 0.3));
        assert_eq!(opt_ms(s.end_at.as_ref()), Some(10 * DAY_MS));
    }

    #[test]
    fn candidates_stay_bounded() {
        let mut s = ExperienceScore::default();
        for i in 0..100_i32 {
            record(&mut s, 1.0 - f64::from(i) / 100.0, i64::from(i), LOOKBACK);
        }
        assert!(s.peak_candidates.len() <= MAX_PEAK_CANDIDATES);
        assert_eq!(s.peak, 1.0);
    }

    #[test]
    fn later_survey_answer_is_kept() {
        let mut p = Profile::default();
        let e = |score| Event {
            event_id: format!("e{score}"),
            survey: Some(nps(score)),
            ..Event::default()
        };
        assert!(record_survey(&mut p, &e(3), 10).is_some());
        assert!(record_survey(&mut p, &e(9), 5).is_none());
        let kept = p
            .surveys
            .as_ref()
            .and_then(|s| s.nps.as_ref())
            .map(|r| r.event_id.clone());
        assert_eq!(kept.as_deref(), Some("e3"));
        assert_eq!(nps_class(&nps(6)), Some(NpsClass::Detractor));
        assert_eq!(nps_class(&nps(8)), Some(NpsClass::Passive));
    }
}
