//! Which stored granularity a query reads: the coarsest whose buckets tile both the range and
//! the requested buckets, within the reader's limit on store buckets.

use iee_api::kpi::KpiError;
use iee_store::Granularity;

use super::request::Query;

/// What a query reads and how store buckets map to output buckets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Plan {
    /// The stored granularity read.
    pub granularity: Granularity,
    /// First second of the range (a multiple of the granularity).
    pub start: i64,
    /// End of the range, exclusive (a multiple of the granularity).
    pub end: i64,
    /// Output bucket width in seconds; `None`: one bucket starting at `start`.
    pub width: Option<i64>,
}

impl Plan {
    /// The starts of the store buckets to read, oldest first.
    pub(super) fn store_buckets(&self) -> Vec<i64> {
        let step = self.granularity.seconds();
        (0..(self.end - self.start) / step)
            .map(|i| self.start + i * step)
            .collect()
    }

    /// The start of the output bucket a store bucket belongs to.
    pub(super) fn output_bucket(&self, store_bucket: i64) -> i64 {
        match self.width {
            Some(width) => store_bucket.div_euclid(width) * width,
            None => self.start,
        }
    }
}

/// Chooses the granularity for a validated query (whose ends are whole minutes), refusing one
/// that would read more than `max_store_buckets` store buckets.
pub(super) fn plan(query: &Query, max_store_buckets: usize) -> Result<Plan, KpiError> {
    let fits = |g: Granularity| {
        let s = g.seconds();
        query.start % s == 0 && query.end % s == 0 && query.width.is_none_or(|w| w % s == 0)
    };
    // Minute always fits: the ends and the width are whole minutes.
    let granularity = [Granularity::Day, Granularity::Hour]
        .into_iter()
        .find(|&g| fits(g))
        .unwrap_or(Granularity::Minute);
    let buckets = (query.end - query.start) / granularity.seconds();
    if usize::try_from(buckets).map_or(true, |b| b > max_store_buckets) {
        return Err(too_many(query, granularity, buckets, max_store_buckets));
    }
    Ok(Plan {
        granularity,
        start: query.start,
        end: query.end,
        width: query.width,
    })
}

/// The refusal of a query that reads too many buckets of `granularity`, naming what keeps it
/// from the next coarser one.
fn too_many(query: &Query, granularity: Granularity, buckets: i64, max: usize) -> KpiError {
    let coarser = match granularity {
        Granularity::Minute => Some(Granularity::Hour),
        Granularity::Hour => Some(Granularity::Day),
        Granularity::Day => None,
    };
    let read = format!(
        "the range would read {buckets} {} buckets, more than the {max} allowed",
        name(granularity)
    );
    let Some(coarser) = coarser else {
        return KpiError::invalid("start_time", format!("{read}: shorten the range"));
    };
    let s = coarser.seconds();
    let unit = name(coarser);
    if query.start % s != 0 {
        KpiError::invalid(
            "start_time",
            format!(
                "{read}: align start_time and end_time to whole {unit}s (UTC) or shorten the range"
            ),
        )
    } else if query.end % s != 0 {
        KpiError::invalid(
            "end_time",
            format!("{read}: align end_time to a whole {unit} (UTC) or shorten the range"),
        )
    } else {
        KpiError::invalid(
            "bucket_width",
            format!("{read}: use a bucket width of whole {unit}s or shorten the range"),
        )
    }
}

/// The granularity's name in messages.
fn name(granularity: Granularity) -> &'static str {
    match granularity {
        Granularity::Minute => "minute",
        Granularity::Hour => "hour",
        Granularity::Day => "day",
    }
}
