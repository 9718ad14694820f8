//! The report's three plots: the learning curve, the KPIs over time, and the uplift of each
//! KPI with its interval.

use super::super::kpi::{KpiTable, MinuteSeries};
use super::super::table::{delta, label};
use super::super::tally::{ArmTally, RoundStats};
use super::svg::{BAD, GOOD, GREY, HOLDOUT, Panel, Svg, THIRD, TREATMENT, range};

/// Where the KPIs-over-time plot comes from.
#[derive(Debug, Clone)]
pub enum KpiPlot {
    /// The simulator's per-round counts, accumulated from the first round (demos too short for
    /// several minute buckets of the KPI service).
    Rounds(Vec<(ArmTally, ArmTally)>),
    /// The KPI service's per-minute series (`QueryMetrics`, one-minute buckets).
    Minutes(Vec<MinuteSeries>),
}

/// A ratio as a whole percentage, for axis ticks.
fn pct(v: f64) -> String {
    format!("{:.0} %", 100.0 * v)
}

/// Per round: click-through and purchases of treated visits against holdout visits, the share
/// of offers that were the customer's best and, if the contact cap ever bound, the share of
/// treated decisions it held an offer back in, each summed over `smooth` rounds.
pub fn learning(rounds: &[RoundStats], chance: f64, smooth: usize) -> String {
    let mut svg = Svg::new(1000.0, 360.0, "How the engine learns, round by round");
    let window = |i: usize| &rounds[i.saturating_sub(smooth.max(1) - 1)..=i];
    let xs: Vec<f64> = (1..=rounds.len()).map(|r| r as f64).collect();
    let rate = |f: &dyn Fn(&RoundStats) -> (u64, u64)| -> Vec<(f64, Option<f64>)> {
        (0..rounds.len())
            .map(|i| {
                let (n, d) = window(i)
                    .iter()
                    .map(f)
                    .fold((0, 0), |(a, b), (n, d)| (a + n, b + d));
                (xs[i], (d > 0).then(|| n as f64 / d as f64))
            })
            .collect()
    };
    let ctr = rate(&|r| (r.clicks, r.offers));
    let treated = rate(&|r| (r.treatment.purchases, r.treatment.visits));
    let holdout = rate(&|r| (r.holdout.purchases, r.holdout.visits));
    let best = rate(&|r| (r.best, r.offers));
    let capped = rate(&|r| (r.capped, r.treatment.visits));
    let x = (1.0, (rounds.len() as f64).max(2.0));

    let all = ctr
        .iter()
        .chain(&treated)
        .chain(&holdout)
        .filter_map(|p| p.1);
    let (_, top) = range(all, &[0.0]);
    let left = Panel {
        left: 70.0,
        top: 40.0,
        width: 380.0,
        height: 240.0,
        x,
        y: (0.0, top),
    };
    left.frame(
        &mut svg,
        "Responses per visit",
        "round",
        "share of visits or offers",
        &pct,
    );
    left.series(&mut svg, &ctr, THIRD, "");
    left.series(&mut svg, &treated, TREATMENT, "");
    left.series(&mut svg, &holdout, HOLDOUT, "");
    svg.legend(
        70.0,
        345.0,
        &[
            ("offers clicked", THIRD, ""),
            ("purchases, treated", TREATMENT, ""),
            ("purchases, holdout", HOLDOUT, ""),
        ],
    );

    let right = Panel {
        left: 590.0,
        top: 40.0,
        width: 380.0,
        height: 240.0,
        x,
        y: (0.0, 1.0),
    };
    right.frame(
        &mut svg,
        "Offers that were the customer's best",
        "round",
        "share of offers shown",
        &pct,
    );
    right.series(
        &mut svg,
        &[(x.0, Some(chance)), (x.1, Some(chance))],
        GREY,
        "5 4",
    );
    right.series(&mut svg, &best, TREATMENT, "");
    let capping = capped.iter().any(|p| p.1.is_some_and(|v| v > 0.0));
    if capping {
        right.series(&mut svg, &capped, HOLDOUT, "2 3");
    }
    let mut entries = vec![
        ("best offer chosen", TREATMENT, ""),
        ("random choice", GREY, "5 4"),
    ];
    if capping {
        entries.push(("cap held offer back", HOLDOUT, "2 3"));
    }
    svg.legend(560.0, 345.0, &entries);
    svg.finish()
}

/// One panel of the KPI plot: title, treatment and holdout points, unit.
type KpiPanel = (
    String,
    Vec<(f64, Option<f64>)>,
    Vec<(f64, Option<f64>)>,
    String,
);

/// The KPIs over time, treatment against holdout.
pub fn kpis(plot: &KpiPlot) -> String {
    /// Reads one KPI from a tally.
    type Getter = fn(&ArmTally) -> Option<f64>;
    let mut svg = Svg::new(1000.0, 640.0, "KPIs over time, treatment against holdout");
    let mut panels: Vec<KpiPanel> = Vec::new();
    let x_label = match plot {
        KpiPlot::Rounds(cumulative) => {
            let metrics: [(&str, Getter, &str); 4] = [
                ("NPS", ArmTally::nps, "score"),
                ("CSAT (share 4-5)", ArmTally::csat, "1"),
                ("purchases per visit", ArmTally::conversion, "1"),
                ("cancellations per visit", ArmTally::churn, "1"),
            ];
            for (title, get, unit) in metrics {
                let series = |pick: fn(&(ArmTally, ArmTally)) -> &ArmTally| {
                    cumulative
                        .iter()
                        .enumerate()
                        .map(|(i, p)| ((i + 1) as f64, get(pick(p))))
                        .collect::<Vec<_>>()
                };
                panels.push((
                    format!("{title}, since round 1"),
                    series(|p| &p.0),
                    series(|p| &p.1),
                    unit.to_owned(),
                ));
            }
            "round"
        }
        KpiPlot::Minutes(series) => {
            for metric in ["nps", "csat", "conversion_rate"] {
                let of = |arm: &str| {
                    series
                        .iter()
                        .find(|s| s.metric == metric && s.arm == arm)
                        .map(|s| s.points.iter().map(|&(x, y)| (x + 1.0, Some(y))).collect())
                        .unwrap_or_default()
                };
                let unit = if metric == "nps" { "score" } else { "1" };
                panels.push((
                    format!("{} (per minute)", label(metric)),
                    of("treatment"),
                    of("control"),
                    unit.to_owned(),
                ));
            }
            "minute"
        }
    };
    for (i, (title, treatment, holdout, unit)) in panels.iter().enumerate() {
        let values = treatment.iter().chain(holdout).filter_map(|p| p.1);
        let xs = treatment.iter().chain(holdout).map(|p| p.0);
        let x = xs.fold((1.0f64, 2.0f64), |(a, b), v| (a.min(v), b.max(v)));
        let y = if unit == "score" {
            range(values, &[0.0])
        } else {
            (0.0, range(values, &[0.0]).1)
        };
        let panel = Panel {
            left: 70.0 + 520.0 * (i % 2) as f64,
            top: 40.0 + 290.0 * (i / 2) as f64,
            width: 380.0,
            height: 200.0,
            x,
            y,
        };
        let fmt: &dyn Fn(f64) -> String = if unit == "score" {
            &|v: f64| format!("{v:.0}")
        } else {
            &pct
        };
        panel.frame(&mut svg, title, x_label, "", fmt);
        panel.series(&mut svg, treatment, TREATMENT, "");
        panel.series(&mut svg, holdout, HOLDOUT, "");
    }
    svg.legend(
        70.0,
        625.0,
        &[
            ("treatment (offers)", TREATMENT, ""),
            ("holdout (no offers)", HOLDOUT, ""),
        ],
    );
    svg.finish()
}

/// Per metric: the absolute uplift of treatment over holdout with its 95 % interval as an
/// error bar, against a zero line; green when the whole interval is on the better side, red
/// when on the worse side, grey when it includes zero.
pub fn uplift(table: &KpiTable) -> String {
    let n = table.metrics.len().max(1);
    let cell = 200.0;
    let width = 40.0 + cell * n as f64;
    let mut svg = Svg::new(width, 360.0, "Uplift of each KPI, treatment minus holdout");
    for (i, row) in table.metrics.iter().enumerate() {
        let left = 40.0 + cell * i as f64 + 55.0;
        svg.title(left + 45.0, 24.0, "middle", label(&row.metric));
        let Some(u) = &row.uplift else {
            svg.text(left + 40.0, 160.0, 12.0, "middle", "not measured");
            continue;
        };
        let y = range([u.absolute, u.lower, u.upper].into_iter(), &[0.0]);
        let panel = Panel {
            left,
            top: 50.0,
            width: 90.0,
            height: 240.0,
            x: (0.0, 1.0),
            y,
        };
        let unit = row.unit.clone();
        panel.frame(&mut svg, "", "", "", &|v| delta(&unit, v));
        let zero = panel.py(0.0);
        svg.line((left, zero), (left + 90.0, zero), GREY, 1.5, "5 4");
        let better = |v: f64| {
            if row.higher_is_better {
                v > 0.0
            } else {
                v < 0.0
            }
        };
        let colour = if u.lower.is_finite() && better(u.lower) && better(u.upper) {
            GOOD
        } else if u.lower.is_finite() && !better(u.lower) && !better(u.upper) {
            BAD
        } else {
            GREY
        };
        let cx = panel.px(0.5);
        if u.lower.is_finite() {
            let (lo, hi) = (panel.py(u.lower), panel.py(u.upper));
            svg.line((cx, lo), (cx, hi), colour, 2.5, "");
            svg.line((cx - 10.0, lo), (cx + 10.0, lo), colour, 2.5, "");
            svg.line((cx - 10.0, hi), (cx + 10.0, hi), colour, 2.5, "");
        }
        svg.circle(cx, panel.py(u.absolute), 5.0, colour);
        svg.text(
            cx,
            318.0,
            12.0,
            "middle",
            &format!(
                "{} (p {})",
                delta(&row.unit, u.absolute),
                p_short(u.p_value)
            ),
        );
        svg.text(
            cx,
            336.0,
            11.0,
            "middle",
            if row.higher_is_better {
                "higher is better"
            } else {
                "lower is better"
            },
        );
    }
    svg.finish()
}

/// A p-value for a plot label.
fn p_short(p: f64) -> String {
    if p < 0.001 {
        "<0.001".to_owned()
    } else {
        format!("{p:.3}")
    }
}
