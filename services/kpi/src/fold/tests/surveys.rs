//! Survey statistics and the peak-end score.

use iee_api::pb::common::SurveyKind;

use super::support::{DAY, HOUR, Harness, T0, ev, f, map, rec, survey, timed, totals};
use crate::fold::experience::event_value;

/// Totals after answering `scores` on the `kind` scale, a second apart.
fn answers(kind: SurveyKind, scores: &[i32]) -> std::collections::BTreeMap<String, f64> {
    let mut h = Harness::new();
    for (i, score) in (0_i64..).zip(scores) {
        h.feed(&[survey(kind, *score, T0 + i)]);
    }
    h.take_totals()
}

#[test]
fn nps_edges_split_into_detractors_passives_and_promoters() {
    let got = answers(SurveyKind::Nps, &[0, 6, 7, 8, 9, 10]);
    assert_eq!(
        totals(&got, &["nps."]),
        map([
            (f("nps.d", "", ""), 2.0),
            (f("nps.p", "", ""), 2.0),
            (f("nps.s", "", ""), 2.0),
        ])
    );
}

#[test]
fn only_passives_give_no_promoters_and_no_detractors() {
    let got = answers(SurveyKind::Nps, &[7, 8, 8]);
    assert_eq!(totals(&got, &["nps."]), map([(f("nps.s", "", ""), 3.0)]));
}

#[test]
fn csat_counts_four_and_five_as_satisfied() {
    let got = answers(SurveyKind::Csat, &[3, 4, 5]);
    assert_eq!(
        totals(&got, &["csat."]),
        map([(f("csat.k", "", ""), 2.0), (f("csat.n", "", ""), 3.0)])
    );
}

#[test]
fn ces_sums_scores_and_their_squares() {
    let got = answers(SurveyKind::Ces, &[2, 5, 7]);
    assert_eq!(
        totals(&got, &["ces."]),
        map([
            (f("ces.n", "", ""), 3.0),
            (f("ces.q", "", ""), 4.0 + 25.0 + 49.0),
            (f("ces.s", "", ""), 14.0),
        ])
    );
}

#[test]
fn peak_end_counts_each_day_once_and_adjusts_its_score() {
    let mut h = Harness::new();
    // NPS 0 is -1: the day's first experience counts the day with score -1.
    h.feed(&[survey(SurveyKind::Nps, 0, T0)]);
    assert_eq!(
        timed(&h.take(), &["pe."]),
        map([
            ((T0, f("pe.n", "", "")), 1.0),
            ((T0, f("pe.q", "", "")), 1.0),
            ((T0, f("pe.s", "", "")), -1.0),
        ])
    );
    // CSAT 4 is 0.5: the peak stays -1, the end becomes 0.5, the score -0.25, in the day's
    // bucket.
    h.feed(&[survey(SurveyKind::Csat, 4, T0 + HOUR)]);
    assert_eq!(
        timed(&h.take(), &["pe."]),
        map([
            ((T0, f("pe.q", "", "")), 0.0625 - 1.0),
            ((T0, f("pe.s", "", "")), -0.25 + 1.0),
        ])
    );
    // A support ticket the next day (-0.5) is a new customer-day.
    h.feed(&[rec(ev("support_ticket", T0 + DAY))]);
    assert_eq!(
        timed(&h.take(), &["pe."]),
        map([
            ((T0 + DAY, f("pe.n", "", "")), 1.0),
            ((T0 + DAY, f("pe.q", "", "")), 0.25),
            ((T0 + DAY, f("pe.s", "", "")), -0.5),
        ])
    );
    // A late experience of the first day no longer changes anything.
    h.feed(&[survey(SurveyKind::Nps, 10, T0 + 2 * HOUR)]);
    assert_eq!(timed(&h.take(), &["pe."]), map([]));
}

#[test]
fn experience_values_follow_the_profile_mapping_without_sentiment() {
    let mut ticket = ev("support_ticket", T0);
    ticket.text = Some("this is terrible".into());
    assert_eq!(event_value(&ticket), Some(-0.5));
    let mut answered = ev("support_resolved", T0);
    answered.survey = Some(iee_api::pb::common::SurveyAnswer {
        kind: SurveyKind::Ces as i32,
        score: 1,
        survey_id: String::new(),
    });
    // Mean of CES 1 (1.0) and the type's 0.5.
    assert_eq!(event_value(&answered), Some(0.75));
    assert_eq!(event_value(&ev("page_view", T0)), None);
}
