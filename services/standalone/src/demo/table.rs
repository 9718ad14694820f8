//! The demo's console output: the KPI table (treatment against holdout) and the learning
//! curve in numbers, formatted in each metric's unit.

use std::fmt::Write;

use super::kpi::{KpiTable, MetricRow};
use super::tally::Learning;

/// A plain-language label of a metric.
pub fn label(metric: &str) -> &str {
    match metric {
        "nps" => "NPS",
        "csat" => "CSAT (share 4-5)",
        "customer_conversion_rate" => "customers who bought",
        "customer_churn_rate" => "customers who cancelled",
        "revenue_per_customer" => "revenue per customer",
        "conversion_rate" => "decisions followed by a purchase",
        other => other,
    }
}

/// A value in its unit: ratios as percentages, money in euros, scores as they are.
pub fn value(unit: &str, v: f64) -> String {
    match unit {
        "1" => format!("{:.1} %", 100.0 * v),
        "currency_minor" => format!("€{:.2}", v / 100.0),
        _ => format!("{v:.1}"),
    }
}

/// A difference in its unit, signed: ratios in percentage points.
pub fn delta(unit: &str, v: f64) -> String {
    if v == 0.0 {
        return "0".to_owned();
    }
    let sign = if v < 0.0 { "-" } else { "+" };
    let a = v.abs();
    match unit {
        "1" => format!("{sign}{:.1} pp", 100.0 * a),
        "currency_minor" => format!("{sign}€{:.2}", a / 100.0),
        _ => format!("{sign}{a:.1}"),
    }
}

/// The uplift column: absolute uplift and its interval.
pub fn uplift_text(row: &MetricRow) -> String {
    match &row.uplift {
        Some(u) if u.lower.is_finite() => format!(
            "{} [{}, {}]",
            delta(&row.unit, u.absolute),
            delta(&row.unit, u.lower),
            delta(&row.unit, u.upper)
        ),
        Some(u) => delta(&row.unit, u.absolute),
        None => "n/a".to_owned(),
    }
}

/// The relative uplift, when the holdout value is a positive base.
pub fn relative_text(row: &MetricRow) -> String {
    match &row.uplift {
        Some(u) if row.holdout > 0.0 => format!("{:+.0} %", 100.0 * u.relative),
        _ => "n/a".to_owned(),
    }
}

/// The p-value column.
pub fn p_text(row: &MetricRow) -> String {
    match &row.uplift {
        Some(u) if u.p_value < 0.001 => "<0.001".to_owned(),
        Some(u) => format!("{:.3}", u.p_value),
        None => "n/a".to_owned(),
    }
}

/// The KPI table as printed.
pub fn kpi_table(table: &KpiTable) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<26} {:>10} {:>10}   {:<32} {:>8} {:>8}",
        "KPI (global holdout)",
        "treatment",
        "holdout",
        "uplift [95 % interval]",
        "relative",
        "p-value"
    );
    for row in &table.metrics {
        let _ = writeln!(
            out,
            "{:<26} {:>10} {:>10}   {:<32} {:>8} {:>8}",
            label(&row.metric),
            value(&row.unit, row.treatment),
            value(&row.unit, row.holdout),
            uplift_text(row),
            relative_text(row),
            p_text(row),
        );
    }
    let arms: Vec<String> = table
        .arms
        .iter()
        .map(|a| {
            format!(
                "{} {} customers, {} decisions (planned {:.0} %)",
                arm_name(&a.name),
                a.customers,
                a.decisions,
                100.0 * a.allocation
            )
        })
        .collect();
    let _ = writeln!(out, "arms: {}", arms.join("; "));
    let _ = writeln!(
        out,
        "sample ratio mismatch test: p = {:.3} ({})",
        table.srm_p_value,
        if table.srm_p_value < 0.001 {
            "the split is off: do not trust the comparison"
        } else {
            "the split matches the plan"
        }
    );
    out
}

/// `treatment`, or `holdout` for the control arm.
pub fn arm_name(name: &str) -> &str {
    if name == "control" { "holdout" } else { name }
}

/// The learning curve in numbers.
pub fn learning_table(learning: &Learning) -> String {
    let (e, l) = (&learning.early, &learning.late);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "learning: rounds {}-{} -> rounds {}-{}",
        e.first_round, e.last_round, l.first_round, l.last_round
    );
    let pct = |v: f64| format!("{:.1} %", 100.0 * v);
    for (name, a, b) in [
        (
            "purchases per treated visit",
            e.treated_conversion,
            l.treated_conversion,
        ),
        (
            "purchases per holdout visit",
            e.holdout_conversion,
            l.holdout_conversion,
        ),
        ("click-through of offers", e.click_through, l.click_through),
        (
            "offers that were the best one",
            e.best_action_share,
            l.best_action_share,
        ),
    ] {
        let _ = writeln!(out, "  {name:<32} {:>8} -> {:>8}", pct(a), pct(b));
    }
    let _ = writeln!(
        out,
        "  {:<18} {:<24} {:>8}    {:>8}",
        "segment (hidden)", "its best offer", "early", "late"
    );
    for s in &learning.segments {
        let _ = writeln!(
            out,
            "  {:<18} {:<24} {:>8} -> {:>8}",
            s.segment,
            s.best_action,
            pct(s.share_early),
            pct(s.share_late)
        );
    }
    out
}
