//! The read side of the KPI store: the [`Reader`] that queries go through, and the summing of
//! stored rows into groups and output buckets, read in chunks.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use iee_api::kpi::KpiError;
use iee_store::{Granularity, KpiStore, StoreError};

use crate::fields::{Dims, parse_field};

/// The default of [`Reader::max_store_buckets`]: two weeks of minute buckets do not fit, so
/// long ranges must align to hours or days.
pub const DEFAULT_MAX_STORE_BUCKETS: usize = 20_000;

/// Store buckets read per store call: large enough to amortise round trips, small enough to
/// keep each reply modest.
const READ_CHUNK: usize = 256;

/// The statistics of one group in one output bucket, by statistic name.
pub(super) type Sums = HashMap<String, f64>;

/// Sums per group (its group-by values, sorted) and output bucket start.
pub(super) type Table = BTreeMap<Vec<String>, BTreeMap<i64, Sums>>;

/// What queries read the KPI aggregates with.
#[derive(Clone)]
pub struct Reader {
    /// The KPI store.
    pub store: Arc<dyn KpiStore>,
    /// The number of measurement partitions the aggregates are spread over (the store sums
    /// one hash per partition and bucket).
    pub partitions: u32,
    /// The most store buckets one query may read; more is refused with INVALID_ARGUMENT.
    pub max_store_buckets: usize,
}

impl std::fmt::Debug for Reader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reader")
            .field("partitions", &self.partitions)
            .field("max_store_buckets", &self.max_store_buckets)
            .finish_non_exhaustive()
    }
}

impl Reader {
    /// A reader of `store` with [`DEFAULT_MAX_STORE_BUCKETS`].
    pub fn new(store: Arc<dyn KpiStore>, partitions: u32) -> Self {
        Self {
            store,
            partitions,
            max_store_buckets: DEFAULT_MAX_STORE_BUCKETS,
        }
    }

    /// Sums the statistics in `stats` of the rows in the store buckets `buckets` of
    /// `granularity`: `group` gives a row's group (`None` skips the row) and `output` the
    /// output bucket of a store bucket.
    pub(super) async fn sum_rows(
        &self,
        tenant: &str,
        granularity: Granularity,
        buckets: &[i64],
        stats: &HashSet<&str>,
        group: impl Fn(&Dims) -> Option<Vec<String>>,
        output: impl Fn(i64) -> i64,
    ) -> Result<Table, KpiError> {
        let mut table = Table::new();
        let mut families: Vec<&str> = stats.iter().copied().collect();
        families.sort_unstable();
        for chunk in buckets.chunks(READ_CHUNK) {
            let maps = self
                .store
                .kpi_buckets(self.partitions, tenant, granularity, chunk, &families)
                .await
                .map_err(store_error)?;
            if maps.len() != chunk.len() {
                return Err(KpiError::Internal(format!(
                    "kpi store returned {} buckets for {} asked",
                    maps.len(),
                    chunk.len()
                )));
            }
            for (&bucket, fields) in chunk.iter().zip(&maps) {
                let start = output(bucket);
                for (field, &value) in fields {
                    // The statistic comes first: skip unneeded ones before parsing the rest.
                    let wanted = field
                        .split_once('|')
                        .is_some_and(|(stat, _)| stats.contains(stat));
                    if !wanted {
                        continue;
                    }
                    let Some((stat, dims)) = parse_field(field) else {
                        continue;
                    };
                    let Some(key) = group(&dims) else {
                        continue;
                    };
                    *table
                        .entry(key)
                        .or_default()
                        .entry(start)
                        .or_default()
                        .entry(stat.to_owned())
                        .or_insert(0.0) += value;
                }
            }
        }
        Ok(table)
    }

    /// The bookkeeping values of `tenant`, one map per partition.
    pub(super) async fn marks(&self, tenant: &str) -> Result<Vec<HashMap<String, f64>>, KpiError> {
        self.store
            .kpi_marks(self.partitions, tenant)
            .await
            .map_err(store_error)
    }
}

/// A store failure as the caller sees it: retryable when the store is unreachable, internal
/// otherwise.
fn store_error(err: StoreError) -> KpiError {
    match err {
        StoreError::Unavailable(msg) => KpiError::Unavailable(format!("kpi store: {msg}")),
        other => KpiError::Internal(format!("kpi store: {other}")),
    }
}
