//! `index.html`: the KPI table and the three plots with plain-language captions that explain
//! the loop, the holdout and how to read an interval. Self-contained: no scripts, no fetches.

use std::fmt::Write;

use super::super::table::{arm_name, label, p_text, relative_text, uplift_text, value};
use super::data::ReportData;
use super::plots::KpiPlot;
use super::svg::escape;

/// The page's style sheet.
const STYLE: &str = "body{font-family:sans-serif;max-width:1040px;margin:2em auto;padding:0 1em;\
color:#222;line-height:1.45}table{border-collapse:collapse;margin:1em 0}\
th,td{padding:4px 10px;border-bottom:1px solid #ddd;text-align:right}\
th:first-child,td:first-child{text-align:left}figure{margin:2em 0}\
figcaption{color:#444;max-width:900px}img{max-width:100%;border:1px solid #eee}\
code{background:#f4f4f4;padding:0 3px}";

/// The report's page.
pub fn index(data: &ReportData<'_>) -> String {
    let mut h = String::new();
    let _ = write!(
        h,
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <title>IEE demo report</title><style>{STYLE}</style></head><body>"
    );
    let _ = write!(
        h,
        "<h1>What the Intelligent Experience Engine did</h1>\
         <p>This run simulated <b>{}</b> customers of an online shop for {:.0} seconds \
         ({} rounds of visits, seed {}). Every visit went through the whole engine, in one \
         process: the pages the customer viewed were reported as events and folded into their \
         profile; the page asked the decision service for the next best offer; the customer \
         reacted (impression, click, accept or dismiss, purchase); the reactions flowed back as \
         outcomes, from which the prediction service learned which offer works on which page; \
         and the KPI service measured everything against a control group.</p>",
        data.customers,
        data.simulated_secs,
        data.rounds.len(),
        data.seed
    );
    let _ = write!(
        h,
        "<p>The customers have hidden traits the engine never sees: a <i>segment</i> that \
         decides which of the six offers they respond to (bargain hunters like discounts, trend \
         seekers recommendations, loyal regulars loyalty points, service seekers a support \
         call-back), a baseline purchase propensity, a churn risk, a preferred channel (web or \
         app) and a satisfaction that rises with relevant offers and falls with irrelevant or \
         repeated ones. The engine sees only what they do, above all which page they browse, \
         which their segment makes likely but not certain.</p>\
         <p><b>The holdout.</b> A fifth of the customers, chosen by a hash of their id, form \
         the global holdout: the engine decides for them too but shows nothing. They buy only \
         at their baseline rate. Comparing the customers who got offers (treatment) with the \
         holdout measures what the offers changed.</p>"
    );
    h.push_str(&table(data));
    let _ = write!(
        h,
        "<p><b>How to read an interval.</b> The uplift is treatment minus holdout. The 95 % \
         interval is the range of uplifts compatible with the data: if the whole interval lies \
         above zero (for a KPI where higher is better), the offers very likely helped; if it \
         straddles zero, this run cannot tell. The p-value is the probability of seeing a \
         difference at least this large if the offers changed nothing. Small populations give \
         wide intervals: run with more <code>--customers</code> or a longer \
         <code>--duration</code> for narrower ones.</p>"
    );
    figures(&mut h, data);
    h.push_str(&segments(data));
    let c = &data.catch_up;
    let _ = write!(
        h,
        "<h2>The run in numbers</h2><p>{} decisions ({} treated, {} holdout), {} offers shown, \
         {} decisions where the contact cap held an offer back, {} degraded decisions, {} failed \
         visits, {} events accepted (outcomes included). The KPI service had measured {} \
         decisions and {} events when the table was read{}. Every number is in \
         <code>summary.json</code>.</p></body></html>",
        data.decisions,
        data.total(|r| r.treatment.visits),
        data.total(|r| r.holdout.visits),
        data.total(|r| r.offers),
        data.total(|r| r.capped),
        data.total(|r| r.degraded),
        data.failed_visits,
        data.events,
        c.decisions,
        c.events,
        if c.complete {
            " (all of them)"
        } else {
            ": it had not caught up, so the table misses the latest activity"
        }
    );
    h.push('\n');
    h
}

/// The KPI table, the arm sizes and the SRM verdict.
fn table(data: &ReportData<'_>) -> String {
    let mut h = String::from(
        "<h2>KPIs: treatment against the global holdout</h2><table><tr><th>KPI</th>\
         <th>treatment</th><th>holdout</th><th>uplift [95 % interval]</th><th>relative</th>\
         <th>p-value</th></tr>",
    );
    for row in &data.table.metrics {
        let _ = write!(
            h,
            "<tr><td>{} <small>(<code>{}</code>)</small></td><td>{}</td><td>{}</td><td>{}</td>\
             <td>{}</td><td>{}</td></tr>",
            escape(label(&row.metric)),
            escape(&row.metric),
            escape(&value(&row.unit, row.treatment)),
            escape(&value(&row.unit, row.holdout)),
            escape(&uplift_text(row)),
            escape(&relative_text(row)),
            escape(&p_text(row)),
        );
    }
    h.push_str("</table><p>");
    for a in &data.table.arms {
        let _ = write!(
            h,
            "<b>{}</b>: {} customers, {} decisions (planned {:.0} %). ",
            arm_name(&a.name),
            a.customers,
            a.decisions,
            100.0 * a.allocation
        );
    }
    let _ = write!(
        h,
        "Sample ratio mismatch test: p = {:.3} — {}.</p>\
         <p>NPS is % promoters (9-10) minus % detractors (0-6); CSAT the share of answers of 4 \
         or 5; the customer rates count each customer once, from their first decision on; \
         revenue per customer is in euros.</p>",
        data.table.srm_p_value,
        if data.table.srm_p_value < 0.001 {
            "the split between the arms is off the plan, so the comparison is not trustworthy"
        } else {
            "the split between the arms matches the plan"
        }
    );
    h
}

/// The three plots with their captions.
fn figures(h: &mut String, data: &ReportData<'_>) {
    let e = &data.learning.early;
    let l = &data.learning.late;
    let _ = write!(
        h,
        "<figure><img src=\"learning.svg\" alt=\"learning curve\"><figcaption><b>The engine \
         learns.</b> Left: per round, the share of offers clicked and the share of visits that \
         ended in a purchase, for treated customers (blue) and the holdout (orange). Right: the \
         share of offers that were the customer's best one (the offer their hidden segment \
         responds to most); the dashed line is what choosing at random would reach, and a \
         dotted orange line, if any, the share of decisions in which the contact cap \
         (<code>same-offer-hourly</code>) held an offer back, so that the engine showed the next \
         best one instead. Each point sums the last {} rounds. In rounds {}-{} {:.0} % of the offers were the best one, in \
         rounds {}-{} {:.0} %; purchases per treated visit went from {:.1} % to {:.1} % (holdout: \
         {:.1} % and {:.1} %).</figcaption></figure>",
        data.smooth,
        e.first_round,
        e.last_round,
        100.0 * e.best_action_share,
        l.first_round,
        l.last_round,
        100.0 * l.best_action_share,
        100.0 * e.treated_conversion,
        100.0 * l.treated_conversion,
        100.0 * e.holdout_conversion,
        100.0 * l.holdout_conversion,
    );
    let source = match &data.kpi_plot {
        KpiPlot::Rounds(_) => "This run was too short for several one-minute buckets of the \
                               KPI service, so the plot uses the simulator's own counts, each \
                               point counting everything from the first round up to that round \
                               (so the last NPS and CSAT points match the table)."
            .to_owned(),
        KpiPlot::Minutes(_) => "The series come from the KPI service (QueryMetrics, one-minute \
                                buckets, grouped by experiment arm); the first and last minutes \
                                are partial."
            .to_owned(),
    };
    let _ = write!(
        h,
        "<figure><img src=\"kpis.svg\" alt=\"KPIs over time\"><figcaption><b>KPIs over \
         time.</b> Satisfaction, purchases and cancellations of treated customers (blue) \
         against the holdout (orange). Early on the engine still explores, and irrelevant \
         offers can make treated customers less satisfied than the holdout; as it learns, the \
         lines part. The holdout is a fifth of the customers, so its lines are noisier, \
         above all early on. {source}</figcaption></figure>"
    );
    let _ = write!(
        h,
        "<figure><img src=\"uplift.svg\" alt=\"uplift per KPI\"><figcaption><b>Uplift.</b> \
         For each KPI, the dot is treatment minus holdout as the KPI service measured it, the \
         bar its 95 % interval, the dashed line zero. Green: the whole interval is on the \
         better side; red: on the worse side; grey: the interval includes zero, so this run \
         cannot tell.</figcaption></figure>"
    );
}

/// The per-segment learning table.
fn segments(data: &ReportData<'_>) -> String {
    let l = &data.learning;
    let mut h = format!(
        "<h2>Per hidden segment</h2><p>Share of the offers shown to each segment that were its \
         best offer, in the first {} rounds and the last {}.</p><table><tr><th>segment</th>\
         <th>its best offer</th><th>early</th><th>late</th><th>offers shown</th></tr>",
        l.window_rounds, l.window_rounds
    );
    for s in &l.segments {
        let _ = write!(
            h,
            "<tr><td>{}</td><td><code>{}</code></td><td>{:.0} %</td><td>{:.0} %</td>\
             <td>{}</td></tr>",
            escape(s.segment),
            escape(s.best_action),
            100.0 * s.share_early,
            100.0 * s.share_late,
            s.offers
        );
    }
    h.push_str("</table>");
    h
}
