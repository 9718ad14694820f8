//! The metric catalogue: every metric's name, definition, unit, direction, the dimensions it
//! can be split by, and the formula that computes it from the stored statistics
//! (see [`crate::fields::stat`]). `docs/kpi-metrics.md` gives the same definitions at length.

use iee_api::pb::kpi::{Dimension, MetricDescriptor};

use crate::fields::{MAX_RETENTION_WEEK, retained, stat};

/// How a metric is computed from the statistics of a set of rows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Formula {
    /// `successes / trials`, Wilson interval.
    Proportion {
        /// Statistic counting successes.
        successes: String,
        /// Statistic counting trials.
        trials: String,
    },
    /// `sum / n`, Student t interval.
    Mean {
        /// Statistic counting observations.
        n: &'static str,
        /// Statistic summing them.
        sum: &'static str,
        /// Statistic summing their squares.
        sumsq: &'static str,
    },
    /// Net promoter score from promoters, passives and detractors, trinomial interval.
    Nps,
    /// A plain count, no interval.
    Count(&'static str),
    /// `numerator / denominator` of two counts from different populations, no interval.
    Ratio {
        /// Statistic counted above the line.
        numerator: &'static str,
        /// Statistic counted below the line.
        denominator: &'static str,
    },
}

/// Which rows a metric is measured on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Every row: overall, or per experiment arm when the query asks for arms.
    All,
    /// Only per experiment arm (customer-level metrics of experiments): a query must group or
    /// filter by `DIMENSION_EXPERIMENT_ARM`.
    ExperimentArms,
}

/// One metric.
#[derive(Debug, Clone, PartialEq)]
pub struct Metric {
    /// Its name.
    pub name: String,
    /// Its definition in words.
    pub definition: String,
    /// Its unit (`1`, `score`, `count`, `currency_minor`).
    pub unit: &'static str,
    /// True if more is better.
    pub higher_is_better: bool,
    /// The dimensions it can be split and filtered by.
    pub dimensions: Vec<Dimension>,
    /// How it is computed.
    pub formula: Formula,
    /// Which rows it is measured on.
    pub scope: Scope,
    /// True if its buckets are cohort buckets (the time of the customers' first interaction)
    /// and only whole days make sense.
    pub cohort: bool,
}

impl Metric {
    /// Its descriptor for `ListMetrics`.
    pub fn descriptor(&self) -> MetricDescriptor {
        MetricDescriptor {
            name: self.name.clone(),
            definition: self.definition.clone(),
            unit: self.unit.to_owned(),
            higher_is_better: self.higher_is_better,
            dimensions: self.dimensions.iter().map(|d| *d as i32).collect(),
        }
    }
}

/// Every dimension.
const ALL_DIMENSIONS: [Dimension; 5] = [
    Dimension::Channel,
    Dimension::Touchpoint,
    Dimension::JourneyStage,
    Dimension::Action,
    Dimension::ExperimentArm,
];

fn proportion(successes: &str, trials: &str) -> Formula {
    Formula::Proportion {
        successes: successes.to_owned(),
        trials: trials.to_owned(),
    }
}

#[allow(clippy::too_many_lines)] // One entry per metric, read as a table.
fn build() -> Vec<Metric> {
    let metric = |name: &str,
                  definition: &str,
                  unit: &'static str,
                  higher_is_better: bool,
                  formula: Formula| Metric {
        name: name.to_owned(),
        definition: definition.to_owned(),
        unit,
        higher_is_better,
        dimensions: ALL_DIMENSIONS.to_vec(),
        formula,
        scope: Scope::All,
        cohort: false,
    };
    let experiment_only = |mut m: Metric| {
        m.scope = Scope::ExperimentArms;
        m
    };
    let mut metrics = vec![
        metric(
            "nps",
            "Net promoter score: % promoters (9-10) minus % detractors (0-6) among NPS answers, -100 to 100",
            "score",
            true,
            Formula::Nps,
        ),
        metric(
            "csat",
            "Customer satisfaction: share of CSAT answers (1-5) that are 4 or 5",
            "1",
            true,
            proportion(stat::CSAT_SATISFIED, stat::CSAT_N),
        ),
        metric(
            "ces",
            "Customer effort score: mean CES answer on 1-7 (lower is less effort)",
            "score",
            false,
            Formula::Mean {
                n: stat::CES_N,
                sum: stat::CES_SUM,
                sumsq: stat::CES_SUMSQ,
            },
        ),
        metric(
            "conversion_rate",
            "Share of decisions followed by a conversion of the customer within the attribution window (by the decision's time and dimensions)",
            "1",
            true,
            proportion(stat::CONVERTED, stat::DECISIONS),
        ),
        metric(
            "click_through_rate",
            "Share of returned actions the customer clicked (by the action)",
            "1",
            true,
            proportion(stat::CLICKED, stat::ACTIONS),
        ),
        metric(
            "acceptance_rate",
            "Share of returned actions the customer accepted (by the action)",
            "1",
            true,
            proportion(stat::ACCEPTED, stat::ACTIONS),
        ),
        metric(
            "engaged_session_rate",
            "Share of sessions with at least two interactions spanning the engaged minimum, or a conversion",
            "1",
            true,
            proportion(stat::ENGAGED_SESSIONS, stat::SESSIONS),
        ),
        metric(
            "bounce_rate",
            "Share of sessions with exactly one interaction and no conversion",
            "1",
            false,
            proportion(stat::BOUNCED_SESSIONS, stat::SESSIONS),
        ),
        metric(
            "churn_rate",
            "Share of active customer-days with a churn event (a daily churn hazard)",
            "1",
            false,
            proportion(stat::CHURNED, stat::ACTIVE_CUSTOMERS),
        ),
        metric(
            "revenue",
            "Sum of the values of conversion events, in minor units of the reporting currency",
            "currency_minor",
            true,
            Formula::Count(stat::REVENUE),
        ),
        metric(
            "average_order_value",
            "Mean value of conversion events that carry a value, in minor currency units",
            "currency_minor",
            true,
            Formula::Mean {
                n: stat::ORDERS,
                sum: stat::REVENUE,
                sumsq: stat::REVENUE_SUMSQ,
            },
        ),
        metric(
            "revenue_per_active_customer",
            "Revenue per active customer-day, in minor currency units",
            "currency_minor",
            true,
            Formula::Mean {
                n: stat::ACTIVE_CUSTOMERS,
                sum: stat::REVENUE,
                sumsq: stat::DAY_REVENUE_SUMSQ,
            },
        ),
        metric(
            "predicted_clv",
            "Mean predicted customer lifetime value at decision time, in minor currency units",
            "currency_minor",
            true,
            Formula::Mean {
                n: stat::CLV_N,
                sum: stat::CLV_SUM,
                sumsq: stat::CLV_SUMSQ,
            },
        ),
        metric(
            "contact_rate",
            "Actions returned per active customer-day (contact pressure; split by channel for the rate per channel)",
            "count",
            false,
            Formula::Ratio {
                numerator: stat::ACTIONS,
                denominator: stat::ACTIVE_CUSTOMERS,
            },
        ),
        metric(
            "peak_end_score",
            "Mean over customer-days with an experience of (peak + end) / 2, where peak is the most intense experience of the day and end the last, each on -1..1",
            "score",
            true,
            Formula::Mean {
                n: stat::PEAK_END_N,
                sum: stat::PEAK_END_SUM,
                sumsq: stat::PEAK_END_SUMSQ,
            },
        ),
        metric(
            "decisions",
            "Number of decisions",
            "count",
            true,
            Formula::Count(stat::DECISIONS),
        ),
        metric(
            "events",
            "Number of customer interactions (events other than decisions)",
            "count",
            true,
            Formula::Count(stat::EVENTS),
        ),
        metric(
            "active_customers",
            "Active customer-days: customers with at least one interaction, counted once per UTC day",
            "count",
            true,
            Formula::Count(stat::ACTIVE_CUSTOMERS),
        ),
        experiment_only(metric(
            "customer_conversion_rate",
            "Share of the customers assigned to an arm who converted at least once after assignment (by assignment time)",
            "1",
            true,
            proportion(stat::ASSIGNED_CONVERTED, stat::ASSIGNED),
        )),
        experiment_only(metric(
            "customer_churn_rate",
            "Share of the customers assigned to an arm who churned after assignment (by assignment time)",
            "1",
            false,
            proportion(stat::ASSIGNED_CHURNED, stat::ASSIGNED),
        )),
        experiment_only(metric(
            "revenue_per_customer",
            "Revenue after assignment per customer assigned to an arm, in minor currency units (by assignment time for the customers, by order time for revenue)",
            "currency_minor",
            true,
            Formula::Mean {
                n: stat::ASSIGNED,
                sum: stat::REVENUE,
                sumsq: stat::ASSIGNED_REVENUE_SUMSQ,
            },
        )),
        experiment_only(metric(
            "customers",
            "Customers first assigned to an arm",
            "count",
            true,
            Formula::Count(stat::ASSIGNED),
        )),
    ];
    for week in 1..=MAX_RETENTION_WEEK {
        let mut m = metric(
            &format!("retention_week_{week}"),
            &format!(
                "Share of the customers first seen in the bucket (the cohort) who were active in week {week} after their first interaction (days {}-{})",
                7 * week,
                7 * week + 6
            ),
            "1",
            true,
            proportion(&retained(week), stat::COHORT),
        );
        m.cohort = true;
        m.dimensions = vec![
            Dimension::Channel,
            Dimension::Touchpoint,
            Dimension::JourneyStage,
            Dimension::ExperimentArm,
        ];
        metrics.push(m);
    }
    metrics
}

/// Every metric, in catalogue order.
pub fn metrics() -> &'static [Metric] {
    static METRICS: std::sync::LazyLock<Vec<Metric>> = std::sync::LazyLock::new(build);
    &METRICS
}

/// The metric named `name`.
pub fn metric(name: &str) -> Option<&'static Metric> {
    metrics().iter().find(|m| m.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_well_formed() {
        let mut names: Vec<&str> = metrics().iter().map(|m| m.name.as_str()).collect();
        assert!(names.iter().all(|n| {
            !n.is_empty()
                && n.len() <= 64
                && n.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        }));
        let before = names.len();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), before);
        assert!(metric("nps").is_some());
        assert!(metric("retention_week_12").is_some());
        assert!(metric("retention_week_13").is_none());
    }

    #[test]
    fn experiment_metrics_are_marked() {
        assert_eq!(
            metric("revenue_per_customer").map(|m| m.scope),
            Some(Scope::ExperimentArms)
        );
        assert_eq!(metric("csat").map(|m| m.scope), Some(Scope::All));
    }
}
