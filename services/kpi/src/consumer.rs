//! The aggregation loop of one replica: reads the shard logs of its partitions, folds each
//! partition's batch into statistics with the customers' measurement states, and commits the
//! batch with the shards' new offsets in one atomic step that applies only at the offsets the
//! batch started from. A crash between read and commit loses nothing and counts nothing twice:
//! the next attempt starts again from the committed offsets.
//!
//! One round: one read of every owned shard, then the partitions' customer states are loaded
//! concurrently, folded one after the other (CPU only), and committed concurrently.

use std::{
    collections::{BTreeMap, HashMap},
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use iee_api::{pb::common::LogRecord, shard::customer_key};
use iee_runtime::Shutdown;
use iee_store::{CustomerWrite, KpiCommit, KpiStore, LogEntry, OffsetMove, StoreError, Stores};
use prost::Message;
use tokio::task::JoinSet;

use crate::{
    KpiConfig,
    fold::{CustomerState, Folded, Observations, Vocabulary, fold},
    metrics::KpiMetrics,
    settings::KPI_CONSUMER,
};

/// Pause after a failed round (storage unavailable), so a Redis outage is not a busy loop.
const RETRY_PAUSE: Duration = Duration::from_millis(500);

/// Most span links a batch span carries (one per traced record).
const MAX_LINKS: usize = 64;

/// What the loop needs.
pub(crate) struct Aggregator {
    pub config: KpiConfig,
    pub stores: Stores,
    pub shard_count: u32,
    pub metrics: KpiMetrics,
    /// True once a round has succeeded, false again while rounds fail (the readiness probe).
    pub ready: AtomicBool,
}

/// Where one partition's shards stand: shard → committed offset (`None`: never committed).
type Offsets = BTreeMap<u32, Option<String>>;

/// The decoded entries of one partition in a round, and where its shards move to.
struct Batch {
    partition: u32,
    records: Vec<LogRecord>,
    moves: Vec<OffsetMove>,
    /// `(tenant, customer key)` of the batch, each once.
    keys: Vec<(String, String)>,
    /// For each record, its customer's index in `keys` (`None`: a record without an event).
    customer_of: Vec<Option<usize>>,
    newest_received_ms: i64,
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

fn key_of(record: &LogRecord) -> Option<(String, String)> {
    record.event.as_ref().map(|event| {
        (
            event.tenant_id.clone(),
            customer_key(&event.customer_id, &event.anonymous_id),
        )
    })
}

/// Runs until `stop` is triggered.
pub(crate) async fn run(aggregator: Arc<Aggregator>, stop: Shutdown) {
    let mut partitions: BTreeMap<u32, Offsets> = aggregator
        .config
        .my_partitions()
        .into_iter()
        .map(|id| {
            let shards = (0..aggregator.shard_count)
                .filter(|s| s % aggregator.config.partitions == id)
                .map(|s| (s, None))
                .collect();
            (id, shards)
        })
        .collect();
    let mut vocabulary = Vocabulary::new(&aggregator.config.fold);
    let mut loaded = false;
    tracing::info!(partitions = partitions.len(), "kpi aggregation started");
    while !stop.is_triggered() {
        let round = tokio::select! {
            () = stop.wait() => return,
            round = aggregator.round(&mut partitions, &mut loaded, &mut vocabulary) => round,
        };
        aggregator.ready.store(round.is_ok(), Ordering::Release);
        if let Err(err) = round {
            tracing::warn!(error = %err, "kpi aggregation round failed; retrying");
            aggregator.metrics.failed_rounds.inc();
            loaded = false;
            tokio::select! {
                () = stop.wait() => return,
                () = tokio::time::sleep(RETRY_PAUSE) => {}
            }
        }
    }
}

impl Aggregator {
    /// One round. Offsets are (re)loaded from the store first when `loaded` is false.
    async fn round(
        &self,
        partitions: &mut BTreeMap<u32, Offsets>,
        loaded: &mut bool,
        vocabulary: &mut Vocabulary,
    ) -> Result<(), StoreError> {
        if !*loaded {
            for (&id, offsets) in partitions.iter_mut() {
                let shards: Vec<u32> = offsets.keys().copied().collect();
                let stored = self.stores.kpi.kpi_offsets(id, &shards).await?;
                *offsets = shards.into_iter().zip(stored).collect();
            }
            *loaded = true;
        }
        let from: Vec<(u32, Option<String>)> = partitions
            .values()
            .flat_map(|o| o.iter().map(|(s, o)| (*s, o.clone())))
            .collect();
        let block = Duration::from_millis(self.config.poll_block_ms);
        let read = self
            .stores
            .consumer
            .read_many(&from, self.config.batch_size, block)
            .await?;
        if read.is_empty() {
            self.metrics.lag_seconds.set(0.0);
            return Ok(());
        }
        let batches = self.decode(read, partitions);
        for batch in &batches {
            for (tenant, _) in &batch.keys {
                if !vocabulary.is_loaded(tenant) {
                    let marks = self
                        .stores
                        .kpi
                        .kpi_marks(self.config.partitions, tenant)
                        .await?;
                    vocabulary.load(tenant, &marks);
                }
            }
        }
        // Load every partition's customer states at once.
        let mut loads = JoinSet::new();
        for (i, batch) in batches.iter().enumerate() {
            let store = self.stores.kpi.clone();
            let (partition, keys) = (batch.partition, batch.keys.clone());
            loads.spawn(async move { (i, store.kpi_customers(partition, &keys).await) });
        }
        let mut states: Vec<Vec<Option<Vec<u8>>>> = vec![Vec::new(); batches.len()];
        while let Some(joined) = loads.join_next().await {
            let (i, loaded_states) = joined.map_err(|e| StoreError::Backend(e.to_string()))?;
            states[i] = loaded_states?;
        }
        // Fold one partition after the other, then commit them all at once.
        let mut commits = JoinSet::new();
        let now = now_ms();
        for (batch, stored) in batches.into_iter().zip(states) {
            let newest = batch.newest_received_ms;
            let count = batch.records.len();
            let commit = self.fold_batch(batch, stored, vocabulary, now);
            let store: Arc<dyn KpiStore> = self.stores.kpi.clone();
            commits.spawn(async move {
                let applied = store.kpi_commit(&commit).await;
                (commit, applied, newest, count)
            });
        }
        let mut failure = None;
        while let Some(joined) = commits.join_next().await {
            let (commit, applied, newest, count) =
                joined.map_err(|e| StoreError::Backend(e.to_string()))?;
            match applied {
                Ok(true) => self.committed(&commit, partitions, newest, count).await,
                Ok(false) => {
                    // Another replica moved these shards (a configuration change in progress):
                    // start again from what is committed.
                    tracing::warn!(
                        partition = commit.partition,
                        "kpi offsets moved under this replica; reloading them"
                    );
                    self.metrics.conflicts.inc();
                    *loaded = false;
                }
                Err(err) => failure = Some(err),
            }
        }
        failure.map_or(Ok(()), Err)
    }

    /// Decodes the entries read, by partition.
    fn decode(
        &self,
        read: Vec<(u32, Vec<LogEntry>)>,
        partitions: &BTreeMap<u32, Offsets>,
    ) -> Vec<Batch> {
        let mut batches: BTreeMap<u32, Batch> = BTreeMap::new();
        for (shard, entries) in read {
            let id = shard % self.config.partitions;
            let Some(last) = entries.last().map(|e| e.offset.clone()) else {
                continue;
            };
            let batch = batches.entry(id).or_insert_with(|| Batch {
                partition: id,
                records: Vec::new(),
                moves: Vec::new(),
                keys: Vec::new(),
                customer_of: Vec::new(),
                newest_received_ms: 0,
            });
            for entry in entries {
                match LogRecord::decode(entry.payload.as_slice()) {
                    Ok(record) => {
                        if let Some(at) = record.received_at {
                            batch.newest_received_ms = batch
                                .newest_received_ms
                                .max(at.seconds * 1000 + i64::from(at.nanos / 1_000_000));
                        }
                        batch.records.push(record);
                    }
                    Err(err) => {
                        tracing::error!(shard, offset = %entry.offset, error = %err, "undecodable log entry skipped");
                        self.metrics.skipped("undecodable");
                    }
                }
            }
            batch.moves.push(OffsetMove {
                shard,
                expected: partitions
                    .get(&id)
                    .and_then(|o| o.get(&shard))
                    .cloned()
                    .flatten(),
                offset: last,
            });
        }
        for batch in batches.values_mut() {
            let mut index: HashMap<(String, String), usize> = HashMap::new();
            batch.customer_of = batch
                .records
                .iter()
                .map(|record| {
                    let key = key_of(record)?;
                    let next = batch.keys.len();
                    Some(*index.entry(key).or_insert_with_key(|key| {
                        batch.keys.push(key.clone());
                        next
                    }))
                })
                .collect();
        }
        batches.into_values().collect()
    }

    /// Folds one partition's batch with its customers' states into the commit that applies it.
    fn fold_batch(
        &self,
        batch: Batch,
        stored: Vec<Option<Vec<u8>>>,
        vocabulary: &mut Vocabulary,
        now_ms: i64,
    ) -> KpiCommit {
        let span = tracing::info_span!(
            "kpi.aggregate",
            otel.name = "kpi.aggregate",
            iee.partition = batch.partition,
            iee.records = batch.records.len(),
        );
        for record in batch.records.iter().take(MAX_LINKS) {
            iee_telemetry::add_link(&span, &record.traceparent);
        }
        let _entered = span.enter();
        let mut states: Vec<Option<CustomerState>> = stored
            .into_iter()
            .map(|bytes| {
                Some(bytes.map_or_else(CustomerState::default, |b| {
                    CustomerState::decode(b.as_slice()).unwrap_or_else(|err| {
                        tracing::error!(error = %err, "undecodable customer state reset");
                        CustomerState::default()
                    })
                }))
            })
            .collect();
        let mut touched = vec![false; batch.keys.len()];
        let mut out = Observations::default();
        let mut tenants: Vec<String> = Vec::new();
        for (record, customer) in batch.records.iter().zip(&batch.customer_of) {
            let Some(i) = *customer else {
                self.metrics.skipped("no event");
                continue;
            };
            let state = states[i].get_or_insert_with(CustomerState::default);
            match fold(&self.config.fold, vocabulary, record, state, &mut out) {
                Folded::Applied => {
                    touched[i] = true;
                    self.metrics.folded.inc();
                    let tenant = &batch.keys[i].0;
                    if !tenants.contains(tenant) {
                        tenants.push(tenant.clone());
                    }
                }
                Folded::Skipped("erase") => {
                    states[i] = None;
                    touched[i] = true;
                    self.metrics.skipped("erase");
                }
                Folded::Skipped(reason) => self.metrics.skipped(reason),
            }
        }
        let (increments, marks) = out.into_increments(&self.config.fold, now_ms);
        let customers = batch
            .keys
            .iter()
            .zip(states)
            .zip(touched)
            .filter(|(_, touched)| *touched)
            .map(|(((tenant_id, key), state), _)| CustomerWrite {
                tenant_id: tenant_id.clone(),
                key: key.clone(),
                state: state.map(|s| s.encode_to_vec()),
            })
            .collect();
        KpiCommit {
            partition: batch.partition,
            offsets: batch.moves,
            increments,
            customers,
            customer_ttl: self.config.fold.customer_ttl(),
            marks,
            tenants,
        }
    }

    /// Bookkeeping after a commit: the new offsets, their acknowledgement (trimming follows
    /// it; a failed one is repeated with the next batch) and the metrics.
    async fn committed(
        &self,
        commit: &KpiCommit,
        partitions: &mut BTreeMap<u32, Offsets>,
        newest_received_ms: i64,
        records: usize,
    ) {
        for moved in &commit.offsets {
            if let Err(err) = self
                .stores
                .consumer
                .acknowledge(moved.shard, KPI_CONSUMER, &moved.offset)
                .await
            {
                tracing::warn!(shard = moved.shard, error = %err, "acknowledging the kpi offset failed");
            }
            if let Some(offsets) = partitions.get_mut(&commit.partition) {
                offsets.insert(moved.shard, Some(moved.offset.clone()));
            }
        }
        self.metrics.commits.inc();
        self.metrics
            .increments
            .inc_by(commit.increments.len() as u64);
        tracing::debug!(partition = commit.partition, records, "kpi batch committed");
        if newest_received_ms > 0 {
            #[allow(clippy::cast_precision_loss)]
            let lag = (now_ms() - newest_received_ms).max(0) as f64 / 1000.0;
            self.metrics.lag_seconds.set(lag);
        }
    }
}
