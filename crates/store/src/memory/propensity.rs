//! The propensity models' shared statistics in process memory, with the Redis semantics: a
//! merge decays, then adds, atomically for the whole call.

use std::{
    collections::{BTreeMap, HashMap},
    time::{SystemTime, UNIX_EPOCH},
};

use super::{MemoryStore, lock};
use crate::{
    ActionDelta, ActionStats, MergeToken, PropensityStats, StoreError,
    propensity::{check_delta, decay_factor},
};

/// The statistics of one model.
#[derive(Default)]
pub(super) struct Table {
    /// Action → merged statistics.
    actions: BTreeMap<String, ActionStats>,
    /// Replica → sequence number of the last merge applied.
    merges: HashMap<String, u64>,
}

/// (tenant, model) → its statistics.
pub(super) type Tables = HashMap<(String, String), Table>;

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

#[async_trait::async_trait]
impl PropensityStats for MemoryStore {
    async fn merge(
        &self,
        tenant_id: &str,
        model_id: &str,
        token: &MergeToken,
        deltas: &[ActionDelta],
        half_life_ms: u64,
    ) -> Result<bool, StoreError> {
        if deltas.is_empty() {
            return Ok(true);
        }
        for delta in deltas {
            check_delta(delta)?;
        }
        let now = now_ms();
        let mut tables = lock(&self.propensity);
        let table = tables
            .entry((tenant_id.to_owned(), model_id.to_owned()))
            .or_default();
        if table
            .merges
            .get(&token.replica_id)
            .is_some_and(|last| *last >= token.sequence)
        {
            return Ok(false);
        }
        // Check every width first: a failed call changes nothing, as on Redis.
        let mut widths: BTreeMap<&str, usize> = BTreeMap::new();
        for delta in deltas {
            let width = *widths.entry(delta.action_id.as_str()).or_insert_with(|| {
                table
                    .actions
                    .get(&delta.action_id)
                    .map_or(delta.precision.len(), |s| s.precision.len())
            });
            if width != delta.precision.len() {
                return Err(StoreError::Backend(format!(
                    "propensity statistics of action {} hold {width} weights, the delta {}",
                    delta.action_id,
                    delta.precision.len()
                )));
            }
        }
        for delta in deltas {
            let stats = table
                .actions
                .entry(delta.action_id.clone())
                .or_insert_with(|| ActionStats {
                    precision: vec![0.0; delta.precision.len()],
                    eta: vec![0.0; delta.eta.len()],
                    observations: 0,
                    updated_at_ms: now,
                });
            let factor = decay_factor(now - stats.updated_at_ms, half_life_ms);
            for (v, d) in stats.precision.iter_mut().zip(&delta.precision) {
                *v = *v * factor + d;
            }
            for (v, d) in stats.eta.iter_mut().zip(&delta.eta) {
                *v = *v * factor + d;
            }
            stats.observations += delta.observations;
            stats.updated_at_ms = now;
        }
        table
            .merges
            .insert(token.replica_id.clone(), token.sequence);
        Ok(true)
    }

    async fn load(
        &self,
        tenant_id: &str,
        model_id: &str,
        actions: &[String],
    ) -> Result<Vec<Option<ActionStats>>, StoreError> {
        let tables = lock(&self.propensity);
        let table = tables.get(&(tenant_id.to_owned(), model_id.to_owned()));
        Ok(actions
            .iter()
            .map(|a| table.and_then(|t| t.actions.get(a)).cloned())
            .collect())
    }

    async fn actions(&self, tenant_id: &str, model_id: &str) -> Result<Vec<String>, StoreError> {
        let tables = lock(&self.propensity);
        Ok(tables
            .get(&(tenant_id.to_owned(), model_id.to_owned()))
            .map(|t| t.actions.keys().cloned().collect())
            .unwrap_or_default())
    }
}
