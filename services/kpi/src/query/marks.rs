//! An experiment's bookkeeping marks: its first and last assignment times and its arms'
//! planned allocations, combined over the partitions each was recorded in.

use std::collections::{BTreeMap, HashMap};

/// What the marks say about one experiment.
#[derive(Debug, Clone, Default, PartialEq)]
pub(super) struct ExperimentMarks {
    /// The first assignment, Unix ms (the minimum over partitions).
    pub first_ms: Option<f64>,
    /// The latest assignment, Unix ms (the maximum over partitions).
    pub last_ms: Option<f64>,
    /// Planned allocation by arm name (any partition's value: every one records the same plan).
    pub allocations: BTreeMap<String, f64>,
}

/// The field of an experiment's first assignment time.
fn first_field(experiment: &str) -> String {
    format!("exp|{experiment}|first")
}

/// The field of an experiment's latest assignment time.
fn last_field(experiment: &str) -> String {
    format!("exp|{experiment}|last")
}

/// The arm name of an `<experiment>/<arm>` value when it belongs to `experiment`. The split is
/// at the last `/`: experiment ids may contain one (action ids do), arm names do not.
pub(super) fn arm_of<'a>(value: &'a str, experiment: &str) -> Option<&'a str> {
    let (id, arm) = value.rsplit_once('/')?;
    (id == experiment && !arm.is_empty()).then_some(arm)
}

/// The marks of `experiment` in the per-partition mark maps; `None` when no mark names it.
pub(super) fn experiment_marks(
    partitions: &[HashMap<String, f64>],
    experiment: &str,
) -> Option<ExperimentMarks> {
    let (first, last) = (first_field(experiment), last_field(experiment));
    let mut marks = ExperimentMarks::default();
    let mut found = false;
    for partition in partitions {
        if let Some(&ms) = partition.get(&first) {
            marks.first_ms = Some(marks.first_ms.map_or(ms, |m| m.min(ms)));
            found = true;
        }
        if let Some(&ms) = partition.get(&last) {
            marks.last_ms = Some(marks.last_ms.map_or(ms, |m| m.max(ms)));
            found = true;
        }
        for (field, &share) in partition {
            let Some(arm) = field
                .strip_prefix("arm|")
                .and_then(|f| f.strip_suffix("|alloc"))
                .and_then(|value| arm_of(value, experiment))
            else {
                continue;
            };
            marks.allocations.entry(arm.to_owned()).or_insert(share);
            found = true;
        }
    }
    found.then_some(marks)
}
