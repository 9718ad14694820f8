//! What a batch of folded records adds: field deltas per tenant and instant, and bookkeeping
//! marks, expanded into one increment per bucket width when the batch is committed.

use std::collections::BTreeMap;

use iee_store::{Granularity, KpiIncrement, KpiMark, MarkOp};

use super::config::FoldConfig;

/// Deltas of `(tenant, at_secs, field)` (duplicates summed) and marks (combined per field).
#[derive(Debug, Clone, Default)]
pub struct Observations {
    /// `(tenant, at_secs, field) → delta`.
    deltas: BTreeMap<(String, i64, String), f64>,
    /// `(tenant, field) → (op, value)`.
    marks: BTreeMap<(String, String), (MarkOp, f64)>,
}

impl Observations {
    /// Nothing observed.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `delta` to `field` of `tenant` at `at_secs`; non-finite deltas are ignored (they
    /// would poison the stored sum forever).
    pub fn add(&mut self, tenant: &str, at_secs: i64, field: String, delta: f64) {
        if !delta.is_finite() {
            return;
        }
        *self
            .deltas
            .entry((tenant.to_owned(), at_secs, field))
            .or_insert(0.0) += delta;
    }

    /// Records a mark; marks of the same field combine (the smaller of two `Min`s, the larger
    /// of two `Max`es, otherwise the later one).
    pub fn mark(&mut self, tenant: &str, field: String, op: MarkOp, value: f64) {
        if !value.is_finite() {
            return;
        }
        let slot = self
            .marks
            .entry((tenant.to_owned(), field))
            .or_insert((op, value));
        slot.1 = match (slot.0, op) {
            (MarkOp::Min, MarkOp::Min) => slot.1.min(value),
            (MarkOp::Max, MarkOp::Max) => slot.1.max(value),
            _ => value,
        };
        slot.0 = op;
    }

    /// True when nothing was observed.
    pub fn is_empty(&self) -> bool {
        self.deltas.is_empty() && self.marks.is_empty()
    }

    /// The summed delta of `field` of `tenant` at `at_secs` (0 when none).
    pub fn get(&self, tenant: &str, at_secs: i64, field: &str) -> f64 {
        self.deltas
            .get(&(tenant.to_owned(), at_secs, field.to_owned()))
            .copied()
            .unwrap_or(0.0)
    }

    /// Every `(tenant, at_secs, field, delta)`, sorted.
    pub fn deltas(&self) -> impl Iterator<Item = (&str, i64, &str, f64)> {
        self.deltas
            .iter()
            .map(|((tenant, at, field), delta)| (tenant.as_str(), *at, field.as_str(), *delta))
    }

    /// Every mark, sorted by tenant and field.
    pub fn marks(&self) -> Vec<KpiMark> {
        self.marks
            .iter()
            .map(|((tenant, field), (op, value))| KpiMark {
                tenant_id: tenant.clone(),
                field: field.clone(),
                op: *op,
                value: *value,
            })
            .collect()
    }

    /// The tenants with deltas or marks, sorted.
    pub fn tenants(&self) -> Vec<String> {
        let mut tenants: Vec<String> = self
            .deltas
            .keys()
            .map(|(t, _, _)| t.clone())
            .chain(self.marks.keys().map(|(t, _)| t.clone()))
            .collect();
        tenants.sort_unstable();
        tenants.dedup();
        tenants
    }

    /// One increment per observation and bucket width (summed per bucket and field, zero sums
    /// left out), without the buckets already expired at `now_ms`; sorted by tenant, width,
    /// bucket and field. And the marks.
    pub fn into_increments(
        self,
        config: &FoldConfig,
        now_ms: i64,
    ) -> (Vec<KpiIncrement>, Vec<KpiMark>) {
        let marks = self.marks();
        let mut sums: BTreeMap<(String, Granularity, i64, String), f64> = BTreeMap::new();
        for ((tenant, at, field), delta) in self.deltas {
            for granularity in Granularity::ALL {
                let bucket = granularity.bucket_of(at);
                if expires_at_ms(config, granularity, bucket) <= now_ms {
                    continue;
                }
                *sums
                    .entry((tenant.clone(), granularity, bucket, field.clone()))
                    .or_insert(0.0) += delta;
            }
        }
        let increments = sums
            .into_iter()
            .filter(|(_, delta)| *delta != 0.0)
            .map(
                |((tenant_id, granularity, bucket, field), delta)| KpiIncrement {
                    tenant_id,
                    granularity,
                    bucket,
                    field,
                    delta,
                    expires_at_ms: expires_at_ms(config, granularity, bucket),
                },
            )
            .collect();
        (increments, marks)
    }
}

/// When the bucket of `granularity` starting at `bucket` expires, Unix milliseconds.
fn expires_at_ms(config: &FoldConfig, granularity: Granularity, bucket: i64) -> i64 {
    bucket
        .saturating_add(config.retention_secs(granularity))
        .saturating_mul(1_000)
}
