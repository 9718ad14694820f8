//! Everything the report shows, gathered in one place, and its `summary.json` form (for tests
//! and tools).

use serde_json::{Map, Value, json};

use super::super::kpi::{CatchUp, KpiTable};
use super::super::table::arm_name;
use super::super::tally::{Learning, RoundStats};
use super::plots::KpiPlot;

/// The numbers of one demo run.
#[derive(Debug)]
pub struct ReportData<'a> {
    /// Simulated customers.
    pub customers: u32,
    /// The seed.
    pub seed: u64,
    /// The requested duration, in seconds.
    pub duration_secs: f64,
    /// How long the rounds took, in seconds.
    pub simulated_secs: f64,
    /// Per-round counts.
    pub rounds: &'a [RoundStats],
    /// Decisions made (treated and holdout).
    pub decisions: u64,
    /// Visits that failed.
    pub failed_visits: usize,
    /// Events the engine accepted, outcomes included.
    pub events: u64,
    /// How far the KPI service had measured when the table was read.
    pub catch_up: CatchUp,
    /// The KPI service's comparison.
    pub table: &'a KpiTable,
    /// The learning curve in numbers.
    pub learning: &'a Learning,
    /// The source of the KPIs-over-time plot.
    pub kpi_plot: KpiPlot,
    /// The best-offer share a uniformly random choice would reach.
    pub chance: f64,
    /// Rounds the learning plot sums over.
    pub smooth: usize,
}

impl ReportData<'_> {
    /// Sum of a per-round count.
    pub fn total(&self, f: impl Fn(&RoundStats) -> u64) -> u64 {
        self.rounds.iter().map(f).sum()
    }

    /// `summary.json`.
    pub fn summary(&self) -> Value {
        let arms: Map<String, Value> = self
            .table
            .arms
            .iter()
            .map(|a| {
                (
                    arm_name(&a.name).to_owned(),
                    json!({
                        "allocation": a.allocation,
                        "customers": a.customers,
                        "decisions": a.decisions,
                    }),
                )
            })
            .collect();
        let metrics: Map<String, Value> = self
            .table
            .metrics
            .iter()
            .map(|m| {
                (
                    m.metric.clone(),
                    json!({
                        "unit": m.unit,
                        "higher_is_better": m.higher_is_better,
                        "treatment": m.treatment,
                        "treatment_count": m.treatment_count,
                        "holdout": m.holdout,
                        "holdout_count": m.holdout_count,
                        "uplift": m.uplift,
                    }),
                )
            })
            .collect();
        json!({
            "customers": self.customers,
            "seed": self.seed,
            "duration_secs": self.duration_secs,
            "simulated_secs": self.simulated_secs,
            "rounds": self.rounds.len(),
            "decisions": self.decisions,
            "treated_decisions": self.total(|r| r.treatment.visits),
            "holdout_decisions": self.total(|r| r.holdout.visits),
            "offers_shown": self.total(|r| r.offers),
            "capped_decisions": self.total(|r| r.capped),
            "degraded_decisions": self.total(|r| r.degraded),
            "failed_visits": self.failed_visits,
            "events": self.events,
            "kpi_catch_up": self.catch_up,
            "arms": arms,
            "srm_p_value": self.table.srm_p_value,
            "metrics": metrics,
            "learning": self.learning,
            "random_choice_best_share": self.chance,
            "kpi_plot_source": match self.kpi_plot {
                KpiPlot::Rounds(_) => "rounds",
                KpiPlot::Minutes(_) => "minutes",
            },
            "per_round": self.rounds,
        })
    }
}
