//! Shared statistics of the online propensity models: per action, the Gaussian evidence in
//! natural parameters, which replicas add their learning to and reload merged.

use crate::StoreError;

/// Names one merge of one replica, so a retried merge is applied once: a store applies a
/// replica's merge only if its sequence number is above the last one it applied from that
/// replica (per tenant and model). Replicas retry a failed merge with the same token before
/// sending any newer one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MergeToken {
    /// The replica, unique among live replicas (e.g. random at start).
    pub replica_id: String,
    /// Grows with every merge the replica sends; starts above 0.
    pub sequence: u64,
}

/// The change one replica made to one action's evidence since its last merge.
#[derive(Debug, Clone, PartialEq)]
pub struct ActionDelta {
    /// The action (any string, the empty one included).
    pub action_id: String,
    /// Change of the precision (inverse variance) of each weight.
    pub precision: Vec<f64>,
    /// Change of the precision-weighted mean (`η = λ·μ`) of each weight.
    pub eta: Vec<f64>,
    /// Outcomes learned from.
    pub observations: u64,
}

/// The merged evidence of one action: the sum of every replica's deltas, decayed for age.
#[derive(Debug, Clone, PartialEq)]
pub struct ActionStats {
    /// Precision of each weight, as of `updated_at_ms`.
    pub precision: Vec<f64>,
    /// Precision-weighted mean of each weight, as of `updated_at_ms`.
    pub eta: Vec<f64>,
    /// Outcomes learned from, by every replica, ever (not decayed).
    pub observations: u64,
    /// When the last merge was applied (Unix milliseconds, the store's clock).
    pub updated_at_ms: i64,
}

impl ActionStats {
    /// Decays the evidence from `updated_at_ms` to `now_ms` with the given half-life.
    pub fn decay_to(&mut self, now_ms: i64, half_life_ms: u64) {
        let factor = decay_factor(now_ms.saturating_sub(self.updated_at_ms), half_life_ms);
        if factor < 1.0 {
            for v in self.precision.iter_mut().chain(self.eta.iter_mut()) {
                *v *= factor;
            }
            self.updated_at_ms = now_ms;
        }
    }
}

/// The weight `2^(-elapsed / half_life)` that evidence `elapsed_ms` old keeps; 1 when the
/// half-life is 0 (never forget) or no time has passed.
pub fn decay_factor(elapsed_ms: i64, half_life_ms: u64) -> f64 {
    if half_life_ms == 0 || elapsed_ms <= 0 {
        return 1.0;
    }
    (-(elapsed_ms as f64) / half_life_ms as f64).exp2()
}

/// Checks a delta can be stored: as many precisions as etas, every number finite.
pub(crate) fn check_delta(delta: &ActionDelta) -> Result<(), StoreError> {
    if delta.precision.len() != delta.eta.len() {
        return Err(StoreError::Backend(format!(
            "propensity delta of action {:?}: {} precisions but {} etas",
            delta.action_id,
            delta.precision.len(),
            delta.eta.len()
        )));
    }
    if !delta
        .precision
        .iter()
        .chain(&delta.eta)
        .all(|v| v.is_finite())
    {
        return Err(StoreError::Backend(format!(
            "propensity delta of action {:?} holds a non-finite number",
            delta.action_id
        )));
    }
    Ok(())
}

/// The shared statistics of the propensity models, per tenant and model.
///
/// Merging is addition: the merged evidence of an action is the sum of every delta ever merged,
/// each decayed by `2^(-age / half_life)`. The store keeps the evidence as of its last merge and
/// decays it at the next one (one multiplication, then the addition, atomically), so every
/// replica sees the same forgetting whatever its own clock; readers decay what they load to
/// their own time with [`ActionStats::decay_to`].
#[async_trait::async_trait]
pub trait PropensityStats: Send + Sync + 'static {
    /// Adds the deltas, atomically for the whole call, creating actions on first use. The
    /// stored evidence is first decayed with `half_life_ms` (0: never forget) from its last
    /// merge to now. Returns false, changing nothing, when the store already applied this or a
    /// later merge of the token's replica (a retry after an unknown outcome), which makes
    /// retrying safe. Fails without changing anything when a delta's width differs from the
    /// stored width of its action.
    async fn merge(
        &self,
        tenant_id: &str,
        model_id: &str,
        token: &MergeToken,
        deltas: &[ActionDelta],
        half_life_ms: u64,
    ) -> Result<bool, StoreError>;

    /// The merged statistics of the given actions, in order (`None`: never merged).
    async fn load(
        &self,
        tenant_id: &str,
        model_id: &str,
        actions: &[String],
    ) -> Result<Vec<Option<ActionStats>>, StoreError>;

    /// Every action with statistics, sorted (for listing and warm-up).
    async fn actions(&self, tenant_id: &str, model_id: &str) -> Result<Vec<String>, StoreError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evidence_halves_after_one_half_life() {
        assert_eq!(decay_factor(1_000, 0), 1.0);
        assert_eq!(decay_factor(-5, 1_000), 1.0);
        assert!((decay_factor(1_000, 1_000) - 0.5).abs() < 1e-15);
        let mut stats = ActionStats {
            precision: vec![4.0],
            eta: vec![-2.0],
            observations: 3,
            updated_at_ms: 10_000,
        };
        stats.decay_to(12_000, 1_000);
        assert_eq!(stats.precision, vec![1.0]);
        assert_eq!(stats.eta, vec![-0.5]);
        assert_eq!(stats.observations, 3);
        assert_eq!(stats.updated_at_ms, 12_000);
    }
}
