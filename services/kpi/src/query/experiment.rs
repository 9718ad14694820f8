//! `GetExperiment`: an experiment's arms over a range of whole UTC days, each arm's metrics with
//! their uplift over control, and the sample ratio mismatch check of the customer split.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::time::SystemTime;

use iee_api::kpi::{
    Arm, ArmMetric, Dimension, Experiment, GetExperimentRequest, GetExperimentResponse, KpiError,
};
use iee_store::Granularity;

use super::estimate::{count, estimate, interval_pb, stats_of, uplift, uplift_pb};
use super::marks::{arm_of, experiment_marks};
use super::plan::Plan;
use super::reader::{Reader, Sums};
use super::request::{check_confidence, check_metrics, check_tenant};
use super::time::Instant;
use crate::catalogue::Metric;
use crate::fields::stat;
use crate::stats::sample_ratio_mismatch;

/// The arm every other arm is compared against.
pub const CONTROL_ARM: &str = "control";

/// The metrics compared when the request names none.
const DEFAULT_METRICS: [&str; 2] = ["conversion_rate", "revenue_per_customer"];

/// Seconds per day: experiments are read from day buckets.
const DAY: i64 = 86_400;

/// Answers a `GetExperiment` request at time `now` (the default end of the range).
pub async fn get_experiment(
    reader: &Reader,
    request: GetExperimentRequest,
    now: SystemTime,
) -> Result<GetExperimentResponse, KpiError> {
    check_tenant(&request.tenant_id)?;
    let id = request.experiment_id.as_str();
    if id.is_empty() {
        return Err(KpiError::invalid("experiment_id", "is required"));
    }
    let metrics = experiment_metrics(&request.metrics)?;
    let level = check_confidence(request.confidence_level)?;
    let start = request
        .start_time
        .as_ref()
        .map(|t| Instant::from_timestamp("start_time", t))
        .transpose()?;
    let end = request
        .end_time
        .as_ref()
        .map(|t| Instant::from_timestamp("end_time", t))
        .transpose()?;

    let partitions = reader.marks(&request.tenant_id).await?;
    let marks = experiment_marks(&partitions, id).ok_or_else(|| {
        KpiError::NotFound(format!(
            "experiment {id:?} of tenant {:?}",
            request.tenant_id
        ))
    })?;
    let first = marks.first_ms.and_then(Instant::from_millis);
    let last = marks.last_ms.and_then(Instant::from_millis);
    let now = Instant::from_system(now);
    let plan = day_plan(
        start.or(first).unwrap_or(now),
        end.unwrap_or(now),
        reader.max_store_buckets,
    )?;

    let mut stats: HashSet<&str> = metrics.iter().flat_map(|m| stats_of(&m.formula)).collect();
    stats.extend([stat::ASSIGNED, stat::DECISIONS]);
    let table = reader
        .sum_rows(
            &request.tenant_id,
            plan.granularity,
            &plan.store_buckets(),
            &stats,
            |dims| arm_of(&dims.arm, id).map(|arm| vec![arm.to_owned()]),
            |_| plan.start,
        )
        .await?;
    let sums: HashMap<String, Sums> = table
        .into_iter()
        .filter_map(|(mut group, mut buckets)| Some((group.pop()?, buckets.remove(&plan.start)?)))
        .collect();

    let names = arm_order(marks.allocations.keys().chain(sums.keys()));
    let arms = arms(&names, &sums, &marks.allocations, &metrics, level);
    let observed: Vec<u64> = arms.iter().map(|a| a.customers).collect();
    let planned: Vec<f64> = arms.iter().map(|a| a.allocation).collect();
    let sample_ratio_p_value =
        sample_ratio_mismatch(&observed, &planned).map_or(1.0, |s| s.p_value);
    let has_control = names.first().is_some_and(|n| n == CONTROL_ARM);
    Ok(GetExperimentResponse {
        experiment: Some(Experiment {
            experiment_id: id.to_owned(),
            control_arm: if has_control {
                CONTROL_ARM.to_owned()
            } else {
                String::new()
            },
            arms,
            first_assigned_at: first.map(Instant::timestamp),
            last_assigned_at: last.map(Instant::timestamp),
            sample_ratio_p_value,
        }),
    })
}

/// The requested metrics, or the defaults; each must be measurable per experiment arm.
fn experiment_metrics(names: &[String]) -> Result<Vec<&'static Metric>, KpiError> {
    let defaults: Vec<String>;
    let names = if names.is_empty() {
        defaults = DEFAULT_METRICS.iter().map(|&n| n.to_owned()).collect();
        &defaults
    } else {
        names
    };
    let metrics = check_metrics(names)?;
    if let Some((i, m)) = metrics
        .iter()
        .enumerate()
        .find(|(_, m)| !m.dimensions.contains(&Dimension::ExperimentArm))
    {
        return Err(KpiError::invalid(
            format!("metrics[{i}]"),
            format!("metric {} is not measured per experiment arm", m.name),
        ));
    }
    Ok(metrics)
}

/// The day buckets covering `[start, end)`, rounded out to whole UTC days.
fn day_plan(start: Instant, end: Instant, max_store_buckets: usize) -> Result<Plan, KpiError> {
    if end <= start {
        return Err(KpiError::invalid(
            "end_time",
            "must be after start_time (start_time defaults to the first assignment, end_time to now)",
        ));
    }
    let plan = Plan {
        granularity: Granularity::Day,
        start: start.floor(DAY),
        end: end.ceil(DAY),
        width: None,
    };
    let days = (plan.end - plan.start) / DAY;
    if usize::try_from(days).map_or(true, |d| d > max_store_buckets) {
        return Err(KpiError::invalid(
            "start_time",
            format!(
                "the range would read {days} day buckets, more than the {max_store_buckets} allowed: shorten the range"
            ),
        ));
    }
    Ok(plan)
}

/// The arm names, deduplicated: [`CONTROL_ARM`] first, then the others sorted.
fn arm_order<'a>(names: impl Iterator<Item = &'a String>) -> Vec<String> {
    let set: BTreeSet<&String> = names.collect();
    let mut ordered: Vec<String> = Vec::with_capacity(set.len());
    if set.iter().any(|n| n.as_str() == CONTROL_ARM) {
        ordered.push(CONTROL_ARM.to_owned());
    }
    ordered.extend(
        set.into_iter()
            .filter(|n| n.as_str() != CONTROL_ARM)
            .cloned(),
    );
    ordered
}

/// The arms `names` with their counts and metrics, each compared against [`CONTROL_ARM`]
/// when there is one.
fn arms(
    names: &[String],
    sums: &HashMap<String, Sums>,
    allocations: &BTreeMap<String, f64>,
    metrics: &[&Metric],
    level: f64,
) -> Vec<Arm> {
    let empty = Sums::new();
    let control = sums.get(CONTROL_ARM);
    names
        .iter()
        .map(|name| {
            let arm_sums = sums.get(name).unwrap_or(&empty);
            let against = control.filter(|_| name != CONTROL_ARM);
            Arm {
                name: name.clone(),
                allocation: allocations.get(name).copied().unwrap_or(0.0),
                customers: count(arm_sums, stat::ASSIGNED),
                decisions: count(arm_sums, stat::DECISIONS),
                metrics: metrics
                    .iter()
                    .map(|m| arm_metric(m, arm_sums, against, level))
                    .collect(),
            }
        })
        .collect()
}

/// One metric of one arm, with its uplift over `control` when given. An arm without
/// observations of the metric keeps its place with value and count 0 and no interval.
fn arm_metric(metric: &Metric, sums: &Sums, control: Option<&Sums>, level: f64) -> ArmMetric {
    let value = estimate(&metric.formula, sums, level);
    ArmMetric {
        metric: metric.name.clone(),
        value: value.map_or(0.0, |e| e.value),
        count: value.map_or(0, |e| e.count),
        interval: value.and_then(|e| e.interval).map(interval_pb),
        uplift: control
            .and_then(|c| uplift(&metric.formula, sums, c, level))
            .map(uplift_pb),
    }
}
