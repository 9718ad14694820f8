//! Online learning of the propensity models on one replica: outcomes are buffered, applied in
//! batches at each sync, and merged with the other replicas' learning through the store.
//!
//! Each (tenant, model) keeps the artifact it serves, the model currently served (the artifact
//! times the merged evidence), buffered outcomes and evidence not yet published. A sync applies
//! the buffered outcomes (Laplace updates), publishes the change in natural parameters, reloads
//! the merged evidence of every action, ages it by the model's forgetting and rebuilds the
//! served model from it. See `docs/propensity.md` for why adding evidence is sound.

use std::{
    collections::{BTreeMap, HashMap},
    sync::{
        Arc, Mutex, MutexGuard, PoisonError, RwLock,
        atomic::{AtomicU64, Ordering},
    },
    time::{SystemTime, UNIX_EPOCH},
};

use iee_api::pb::predict::FeatureVector;
use iee_store::{ActionDelta, MergeToken, PropensityStats, StoreError};
use xxhash_rust::xxh3::xxh3_64;

use crate::model::propensity::{Evidence, PropensityModel};

/// Buffered outcomes per (tenant, model) between syncs; later outcomes are dropped (and
/// counted) until the next sync drains the buffer.
pub const MAX_PENDING: usize = 50_000;

/// Outcomes of one action applied in one Laplace update at most.
pub const BATCH: usize = 256;

/// The id under which the pooled (all actions) evidence is stored: empty, which no action id
/// can be (they are 1-128 characters).
pub const POOLED_ID: &str = "";

/// (tenant, model id).
type SlotKey = (String, String);

/// One buffered outcome.
struct Outcome {
    action: String,
    features: FeatureVector,
    reward: bool,
}

/// What the learner keeps for one (tenant, model).
struct Slot {
    /// The model as its artifact defines it: the base the merged evidence multiplies.
    artifact: PropensityModel,
    /// Where its evidence lives in the store: the model id and a hash of the artifact, so a
    /// changed artifact (features, priors, posteriors) starts from fresh evidence.
    stats_id: String,
    /// What is served.
    current: Arc<PropensityModel>,
    /// Learned locally, not yet merged.
    outbox: Outbox,
    /// Bumped when the artifact changes, so a sync does not overwrite a newer slot.
    generation: u64,
}

/// Evidence (action → evidence; key [`POOLED_ID`]: pooled) learned locally and not yet merged.
#[derive(Default)]
struct Outbox {
    /// Sent under this sequence number with an unknown outcome (the merge failed): retried
    /// with the same number before anything newer, so the store applies it exactly once.
    in_flight: Option<(u64, BTreeMap<String, Evidence>)>,
    /// Learned since.
    fresh: BTreeMap<String, Evidence>,
}

/// The online learner of one replica.
pub struct Learner {
    /// Names this replica's merges in the store.
    replica_id: String,
    /// The sequence number of this replica's next merge.
    sequence: AtomicU64,
    slots: RwLock<HashMap<SlotKey, Slot>>,
    pending: Mutex<HashMap<SlotKey, Vec<Outcome>>>,
    /// One sync at a time: a sync owns the unpublished evidence while it runs.
    syncing: tokio::sync::Mutex<()>,
    generations: AtomicU64,
    dropped: AtomicU64,
}

impl std::fmt::Debug for Learner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Learner")
            .field("dropped", &self.dropped.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl Default for Learner {
    fn default() -> Self {
        Self::new()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every critical section leaves the data consistent (single pushes and swaps).
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// The store namespace of a model's evidence: `<model_id>.<hash of the artifact>`.
fn stats_id(model_id: &str, artifact: &PropensityModel) -> String {
    let bytes = serde_json::to_vec(artifact).unwrap_or_default();
    format!("{model_id}.{:016x}", xxh3_64(&bytes))
}

impl Learner {
    /// A learner with no models.
    pub fn new() -> Self {
        // Unique among live replicas (and learners of one process), which is all merges need.
        static LEARNERS: AtomicU64 = AtomicU64::new(0);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let seed = format!(
            "{}-{nanos}-{}",
            std::process::id(),
            LEARNERS.fetch_add(1, Ordering::Relaxed)
        );
        Self {
            replica_id: format!("{:016x}", xxh3_64(seed.as_bytes())),
            sequence: AtomicU64::new(1),
            slots: RwLock::default(),
            pending: Mutex::default(),
            syncing: tokio::sync::Mutex::new(()),
            generations: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
        }
    }

    /// The model to score with: `artifact` times what every replica has learned, as of this
    /// replica's last sync. The first call for a (tenant, model), or a call with a different
    /// artifact, (re)installs it; until the next sync it serves the artifact as is.
    pub fn model(
        &self,
        tenant_id: &str,
        model_id: &str,
        artifact: &PropensityModel,
    ) -> Arc<PropensityModel> {
        let key = (tenant_id.to_owned(), model_id.to_owned());
        {
            let slots = self.slots.read().unwrap_or_else(PoisonError::into_inner);
            if let Some(slot) = slots.get(&key)
                && slot.artifact == *artifact
            {
                return slot.current.clone();
            }
        }
        let mut slots = self.slots.write().unwrap_or_else(PoisonError::into_inner);
        if let Some(slot) = slots.get(&key)
            && slot.artifact == *artifact
        {
            return slot.current.clone();
        }
        let current = Arc::new(artifact.clone());
        slots.insert(
            key,
            Slot {
                artifact: artifact.clone(),
                stats_id: stats_id(model_id, artifact),
                current: current.clone(),
                outbox: Outbox::default(),
                generation: self.generations.fetch_add(1, Ordering::Relaxed) + 1,
            },
        );
        current
    }

    /// Buffers one outcome of `action` (true: a positive response) for the next sync. It is
    /// learned by the model installed for (tenant, model) at that sync; outcomes of a model not
    /// installed yet (see [`Self::model`]) wait for it, up to [`MAX_PENDING`].
    pub fn observe(
        &self,
        tenant_id: &str,
        model_id: &str,
        action: &str,
        features: FeatureVector,
        reward: bool,
    ) {
        let mut pending = lock(&self.pending);
        let buffer = pending
            .entry((tenant_id.to_owned(), model_id.to_owned()))
            .or_default();
        if buffer.len() >= MAX_PENDING {
            self.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        buffer.push(Outcome {
            action: action.to_owned(),
            features,
            reward,
        });
    }

    /// Outcomes dropped because a buffer was full.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Outcomes buffered for the next sync.
    pub fn pending(&self) -> usize {
        lock(&self.pending).values().map(Vec::len).sum()
    }

    /// Learns the buffered outcomes, publishes the change since the last sync, and reloads the
    /// merged evidence of every model. A model whose merge or reload fails keeps serving what it
    /// learned locally and retries its unpublished evidence at the next sync; the first error
    /// is returned after every model was tried.
    pub async fn sync(&self, stats: &dyn PropensityStats) -> Result<(), StoreError> {
        let _one_at_a_time = self.syncing.lock().await;
        let mut outcomes = std::mem::take(&mut *lock(&self.pending));
        // (key, generation, artifact, stats id, served model, outbox)
        let work: Vec<_> = {
            let mut slots = self.slots.write().unwrap_or_else(PoisonError::into_inner);
            slots
                .iter_mut()
                .map(|(key, slot)| {
                    (
                        key.clone(),
                        slot.generation,
                        slot.artifact.clone(),
                        slot.stats_id.clone(),
                        slot.current.clone(),
                        std::mem::take(&mut slot.outbox),
                    )
                })
                .collect()
        };
        let mut first_error = None;
        for (key, generation, artifact, stats_id, current, mut outbox) in work {
            let batch = outcomes.remove(&key).unwrap_or_default();
            let mut learned = (*current).clone();
            learn(&mut learned, batch, &mut outbox.fresh);
            let target = Target {
                tenant_id: &key.0,
                stats_id: &stats_id,
                artifact: &artifact,
            };
            let served = match self.refresh(stats, &target, &mut outbox).await {
                Ok(merged) => merged,
                Err(err) => {
                    first_error.get_or_insert(err);
                    learned
                }
            };
            let mut slots = self.slots.write().unwrap_or_else(PoisonError::into_inner);
            if let Some(slot) = slots.get_mut(&key)
                && slot.generation == generation
            {
                slot.current = Arc::new(served);
                slot.outbox = outbox;
            }
        }
        // Outcomes of models not installed yet wait for them (their buffers stay bounded).
        if !outcomes.is_empty() {
            let mut pending = lock(&self.pending);
            for (key, mut older) in outcomes {
                let newer = pending.remove(&key).unwrap_or_default();
                older.extend(newer);
                older.truncate(MAX_PENDING);
                pending.insert(key, older);
            }
        }
        first_error.map_or(Ok(()), Err)
    }
}

/// Applies outcomes to `model` in per-action batches, adding the evidence to `unpublished`.
fn learn(
    model: &mut PropensityModel,
    outcomes: Vec<Outcome>,
    unpublished: &mut BTreeMap<String, Evidence>,
) {
    let mut by_action: BTreeMap<String, Vec<(Vec<f64>, bool)>> = BTreeMap::new();
    for outcome in outcomes {
        let row = (model.encode(&outcome.features), outcome.reward);
        by_action.entry(outcome.action).or_default().push(row);
    }
    for (action, rows) in by_action {
        for chunk in rows.chunks(BATCH) {
            let delta = model.update_encoded(&action, chunk);
            unpublished.entry(action.clone()).or_default().add(&delta);
            if let Some(delta) = model.update_pooled_encoded(chunk) {
                unpublished
                    .entry(POOLED_ID.to_owned())
                    .or_default()
                    .add(&delta);
            }
        }
    }
}

/// Where one model's evidence goes.
struct Target<'a> {
    tenant_id: &'a str,
    stats_id: &'a str,
    artifact: &'a PropensityModel,
}

impl Learner {
    /// Publishes the outbox (the failed merge first, with its own sequence number), reloads
    /// every action's merged evidence, ages it to now and returns the artifact times it.
    async fn refresh(
        &self,
        stats: &dyn PropensityStats,
        target: &Target<'_>,
        outbox: &mut Outbox,
    ) -> Result<PropensityModel, StoreError> {
        let half_life_ms = target.artifact.forgetting.half_life_ms();
        loop {
            let (sequence, evidence) = match &outbox.in_flight {
                Some(in_flight) => in_flight,
                None if outbox.fresh.is_empty() => break,
                None => outbox.in_flight.insert((
                    self.sequence.fetch_add(1, Ordering::Relaxed),
                    std::mem::take(&mut outbox.fresh),
                )),
            };
            let token = MergeToken {
                replica_id: self.replica_id.clone(),
                sequence: *sequence,
            };
            let deltas: Vec<ActionDelta> = evidence
                .iter()
                .map(|(action, e)| ActionDelta {
                    action_id: action.clone(),
                    precision: e.precision.clone(),
                    eta: e.eta.clone(),
                    observations: e.observations,
                })
                .collect();
            // `false` (applied before: an earlier attempt's reply was lost) is success too.
            stats
                .merge(
                    target.tenant_id,
                    target.stats_id,
                    &token,
                    &deltas,
                    half_life_ms,
                )
                .await?;
            outbox.in_flight = None;
        }
        let actions = stats.actions(target.tenant_id, target.stats_id).await?;
        let loaded = stats
            .load(target.tenant_id, target.stats_id, &actions)
            .await?;
        let now = now_ms();
        let mut pooled = None;
        let mut evidence = BTreeMap::new();
        for (action, merged) in actions.into_iter().zip(loaded) {
            let Some(mut merged) = merged else { continue };
            merged.decay_to(now, half_life_ms);
            let e = Evidence {
                precision: merged.precision,
                eta: merged.eta,
                observations: merged.observations,
            };
            if action == POOLED_ID {
                pooled = Some(e);
            } else {
                evidence.insert(action, e);
            }
        }
        Ok(target.artifact.with_evidence(pooled.as_ref(), &evidence))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::sync::atomic::AtomicBool;

    use iee_store::{ActionStats, MemoryStore};
    use rand::{Rng, SeedableRng, rngs::SmallRng};

    use super::*;
    use crate::model::{
        encoder::{CategoricalInput, Encoder, NumericInput},
        propensity::Forgetting,
    };

    fn artifact(half_life_hours: f64) -> PropensityModel {
        let encoder = Encoder {
            numeric: vec![NumericInput {
                name: "recency".into(),
                mean: 0.0,
                scale: 1.0,
            }],
            categorical: vec![CategoricalInput {
                name: "channel".into(),
                categories: vec!["web".into(), "app".into()],
            }],
        };
        PropensityModel::new(encoder, 0.05, 1.0, Forgetting { half_life_hours })
    }

    const ACTIONS: [&str; 3] = ["offer-a", "offer-b", "offer-c"];

    /// Outcomes of a known logistic truth per action: (action, features, reward).
    fn outcomes(n: usize, seed: u64) -> Vec<(String, FeatureVector, bool)> {
        let mut rng = SmallRng::seed_from_u64(seed);
        (0..n)
            .map(|_| {
                let a = rng.random_range(0..ACTIONS.len());
                let recency: f64 = rng.random_range(-2.0..2.0);
                let web = rng.random_bool(0.5);
                let logit = [-2.0, -2.5, -1.5][a]
                    + [0.8, -0.5, 0.0][a] * recency
                    + if web { [0.5, 1.0, -1.0][a] } else { 0.0 };
                let p = 1.0 / (1.0 + (-logit).exp());
                let mut x = FeatureVector::default();
                x.numeric.insert("recency".into(), recency);
                x.categorical
                    .insert("channel".into(), if web { "web" } else { "app" }.into());
                (ACTIONS[a].to_owned(), x, rng.random_bool(p))
            })
            .collect()
    }

    /// The largest differences between two models over every action: of a weight's mean, of
    /// a weight's standard deviation (relative), and of the predicted probability on a grid
    /// of contexts.
    fn differences(a: &PropensityModel, b: &PropensityModel) -> [f64; 3] {
        let mut worst = [0.0_f64; 3];
        for action in ACTIONS {
            let (pa, pb) = (&a.actions[action], &b.actions[action]);
            assert_eq!(pa.observations, pb.observations);
            for i in 0..pa.mean.len() {
                let (sa, sb) = (pa.precision[i].powf(-0.5), pb.precision[i].powf(-0.5));
                worst[0] = worst[0].max((pa.mean[i] - pb.mean[i]).abs());
                worst[1] = worst[1].max((sa - sb).abs() / sb);
            }
            for recency in [-1.5, -0.5, 0.0, 0.5, 1.5] {
                for channel in ["web", "app"] {
                    let mut x = FeatureVector::default();
                    x.numeric.insert("recency".into(), recency);
                    x.categorical.insert("channel".into(), channel.into());
                    let none = None::<&mut SmallRng>;
                    let (ma, mb) = (
                        a.score(action, &x, none),
                        b.score(action, &x, None::<&mut SmallRng>),
                    );
                    worst[2] = worst[2].max((ma.mean - mb.mean).abs());
                }
            }
        }
        worst
    }

    #[tokio::test]
    async fn two_replicas_merging_through_the_store_learn_what_one_learner_would() {
        let spec = artifact(0.0);
        let data = outcomes(12_000, 1);
        let shared = MemoryStore::new(1);
        let (left, right) = (Learner::new(), Learner::new());
        // One learner seeing everything, syncing every 1000 outcomes; another every 500, to
        // show how much batching alone moves the Laplace approximation.
        let (alone, alone_store) = (Learner::new(), MemoryStore::new(1));
        let (often, often_store) = (Learner::new(), MemoryStore::new(1));
        for learner in [&left, &right, &alone, &often] {
            learner.model("acme", "prop", &spec);
        }
        for (i, (action, x, reward)) in data.iter().enumerate() {
            let replica = if i % 2 == 0 { &left } else { &right };
            replica.observe("acme", "prop", action, x.clone(), *reward);
            alone.observe("acme", "prop", action, x.clone(), *reward);
            often.observe("acme", "prop", action, x.clone(), *reward);
            // Each replica syncs every 500 of its own outcomes, staggered.
            if (i + 1) % 1000 == 0 {
                left.sync(&shared).await.unwrap();
                alone.sync(&alone_store).await.unwrap();
            }
            if (i + 1) % 1000 == 500 {
                right.sync(&shared).await.unwrap();
            }
            if (i + 1) % 500 == 0 {
                often.sync(&often_store).await.unwrap();
            }
        }
        for learner in [&left, &right, &left] {
            learner.sync(&shared).await.unwrap();
        }
        alone.sync(&alone_store).await.unwrap();
        often.sync(&often_store).await.unwrap();
        let model = |learner: &Learner| learner.model("acme", "prop", &spec);
        assert_eq!(
            model(&left).actions,
            model(&right).actions,
            "replicas converge to the same posteriors"
        );
        let merged = differences(&model(&left), &model(&alone));
        let batching = differences(&model(&often), &model(&alone));
        eprintln!(
            "two replicas vs one learner: weight mean {:.4}, weight sd {:.2} %, probability \
             {:.4}; one learner syncing twice as often: {:.4}, {:.2} %, {:.4}",
            merged[0],
            100.0 * merged[1],
            merged[2],
            batching[0],
            100.0 * batching[1],
            batching[2]
        );
        // Tolerances: probabilities within 0.005, weight means within 0.1 (a fraction of their
        // posterior sd of ~0.1-0.3), weight sds within 2 %.
        assert!(merged[2] < 0.005, "{merged:?}");
        assert!(merged[0] < 0.1, "{merged:?}");
        assert!(merged[1] < 0.02, "{merged:?}");
    }

    /// A store whose merges fail while `down` is set, and which applies a merge but loses its
    /// reply while `lose_reply` is set.
    struct Flaky {
        inner: MemoryStore,
        down: AtomicBool,
        lose_reply: AtomicBool,
    }

    #[async_trait::async_trait]
    impl PropensityStats for Flaky {
        async fn merge(
            &self,
            tenant_id: &str,
            model_id: &str,
            token: &MergeToken,
            deltas: &[ActionDelta],
            half_life_ms: u64,
        ) -> Result<bool, StoreError> {
            if self.down.load(Ordering::Relaxed) {
                return Err(StoreError::Unavailable("down".into()));
            }
            let applied = self
                .inner
                .merge(tenant_id, model_id, token, deltas, half_life_ms)
                .await;
            if self.lose_reply.load(Ordering::Relaxed) {
                return Err(StoreError::Unavailable("reply lost".into()));
            }
            applied
        }

        async fn load(
            &self,
            tenant_id: &str,
            model_id: &str,
            actions: &[String],
        ) -> Result<Vec<Option<ActionStats>>, StoreError> {
            self.inner.load(tenant_id, model_id, actions).await
        }

        async fn actions(
            &self,
            tenant_id: &str,
            model_id: &str,
        ) -> Result<Vec<String>, StoreError> {
            self.inner.actions(tenant_id, model_id).await
        }
    }

    #[tokio::test]
    async fn a_failed_merge_keeps_local_learning_and_publishes_it_later() {
        let spec = artifact(0.0);
        let store = Flaky {
            inner: MemoryStore::new(1),
            down: AtomicBool::new(true),
            lose_reply: AtomicBool::new(false),
        };
        let learner = Learner::new();
        learner.model("acme", "prop", &spec);
        for (action, x, reward) in outcomes(300, 2) {
            learner.observe("acme", "prop", &action, x, reward);
        }
        assert!(learner.sync(&store).await.is_err());
        let local = learner.model("acme", "prop", &spec);
        let learned: u64 = local.actions.values().map(|p| p.observations).sum();
        assert_eq!(learned, 300, "served locally while the store is down");
        for (action, x, reward) in outcomes(100, 3) {
            learner.observe("acme", "prop", &action, x, reward);
        }
        assert!(learner.sync(&store).await.is_err());
        store.down.store(false, Ordering::Relaxed);
        learner.sync(&store).await.unwrap();
        let merged = learner.model("acme", "prop", &spec);
        let learned: u64 = merged.actions.values().map(|p| p.observations).sum();
        assert_eq!(learned, 400);
        let stats_id = stats_id("prop", &spec);
        let stored = store
            .inner
            .load("acme", &stats_id, &[POOLED_ID.to_owned()])
            .await;
        assert_eq!(stored.unwrap()[0].as_ref().unwrap().observations, 400);
        // Published once: another sync with nothing new changes nothing.
        learner.sync(&store).await.unwrap();
        assert_eq!(learner.model("acme", "prop", &spec), merged);
        // A merge applied whose reply was lost is retried, and not applied twice.
        for (action, x, reward) in outcomes(50, 6) {
            learner.observe("acme", "prop", &action, x, reward);
        }
        store.lose_reply.store(true, Ordering::Relaxed);
        assert!(learner.sync(&store).await.is_err());
        store.lose_reply.store(false, Ordering::Relaxed);
        learner.sync(&store).await.unwrap();
        let stored = store
            .inner
            .load("acme", &stats_id, &[POOLED_ID.to_owned()])
            .await;
        assert_eq!(stored.unwrap()[0].as_ref().unwrap().observations, 450);
        let served = learner.model("acme", "prop", &spec);
        let learned: u64 = served.actions.values().map(|p| p.observations).sum();
        assert_eq!(learned, 450);
    }

    #[tokio::test]
    async fn outcomes_wait_for_their_model_and_a_new_artifact_starts_fresh_evidence() {
        let store = MemoryStore::new(1);
        let learner = Learner::new();
        for (action, x, reward) in outcomes(50, 4) {
            learner.observe("acme", "prop", &action, x, reward);
        }
        learner.sync(&store).await.unwrap();
        assert_eq!(learner.pending(), 50, "no model installed yet");
        let spec = artifact(0.0);
        learner.model("acme", "prop", &spec);
        learner.sync(&store).await.unwrap();
        assert_eq!(learner.pending(), 0);
        let learned = learner.model("acme", "prop", &spec);
        assert_eq!(learned.pooled.as_ref().unwrap().observations, 50);
        // Another artifact (here: other priors) serves as is until the next sync, then
        // learns in its own namespace of the store.
        let mut other = spec.clone();
        other.prior_variance = 2.0;
        let fresh = learner.model("acme", "prop", &other);
        assert!(fresh.actions.is_empty());
        for (action, x, reward) in outcomes(10, 5) {
            learner.observe("acme", "prop", &action, x, reward);
        }
        learner.sync(&store).await.unwrap();
        let relearned = learner.model("acme", "prop", &other);
        assert_eq!(relearned.pooled.as_ref().unwrap().observations, 10);
        assert_ne!(stats_id("prop", &spec), stats_id("prop", &other));
    }

    #[tokio::test]
    async fn reloaded_evidence_is_aged_by_the_models_forgetting() {
        // A half-life of 36 ms (1e-5 hours): evidence a second old is all but forgotten.
        let spec = artifact(1e-5);
        let store = MemoryStore::new(1);
        let learner = Learner::new();
        learner.model("acme", "prop", &spec);
        let x = {
            let mut x = FeatureVector::default();
            x.categorical.insert("channel".into(), "web".into());
            x
        };
        for i in 0..200 {
            learner.observe("acme", "prop", "offer-a", x.clone(), i % 2 == 0);
        }
        learner.sync(&store).await.unwrap();
        let fresh = learner.model("acme", "prop", &spec).actions["offer-a"].clone();
        // Evidence must age: wait for the clock to move on, then reload.
        tokio::time::sleep(std::time::Duration::from_millis(1_000)).await;
        learner.sync(&store).await.unwrap();
        let aged = learner.model("acme", "prop", &spec);
        let prior = aged.prior();
        let old = &aged.actions["offer-a"];
        assert!(fresh.precision[0] > prior.precision[0] + 10.0, "{fresh:?}");
        assert!(
            (old.precision[0] - prior.precision[0]).abs() < 1e-3,
            "{old:?}"
        );
        assert!(
            (old.mean[0] - prior.mean[0]).abs() < 1e-2,
            "{old:?} vs {prior:?}"
        );
        assert_eq!(old.observations, 200);
    }

    #[test]
    fn a_full_buffer_drops_and_counts_outcomes() {
        let learner = Learner::new();
        for _ in 0..MAX_PENDING + 5 {
            learner.observe("acme", "prop", "a", FeatureVector::default(), false);
        }
        assert_eq!(learner.pending(), MAX_PENDING);
        assert_eq!(learner.dropped(), 5);
    }
}
