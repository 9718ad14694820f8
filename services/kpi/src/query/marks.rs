//! An experiment's bookkeeping marks: its first and last assignment times and its arms'
//! planned allocations, combined over the partitions each was recorded in.

use std::collections::{BTreeMap, HashMap};

use crate::fields::mark;

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
    let (first, last) = (
        mark::first_assigned(experiment),
        mark::last_assigned(experiment),
    );
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
            let Some(arm) = mark::allocation_arm(field).and_then(|value| arm_of(value, experiment))
            else {
                continue;
            };
            marks.allocations.entry(arm.to_owned()).or_insert(share);
            found = true;
        }
    }
    found.then_some(marks)
}
