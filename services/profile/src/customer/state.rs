//! What a customer actor does with its state: load, apply, timers, compaction, snapshots.

use std::time::{Duration, SystemTime};

use iee_api::pb::{common::LogRecord, profile::Profile};
use prost::Message;
use ractor::ActorProcessingErr;

use super::{
    actor::{CustomerState, Snapshot, StoredState, set_timer, timestamp_ms, unix_ms},
    stitch::is_merge_out,
};
use crate::fold::{Applied, Effects, TimerKind};

impl CustomerState {
    pub(super) async fn load(&mut self) -> Result<(), ActorProcessingErr> {
        let stored = match self.initial.take() {
            Some(initial) => Some(initial),
            None => self.read_store().await?,
        };
        match stored {
            Some(StoredState::Put(bytes)) => {
                // Validate now (a corrupt profile fails the activation), decode lazily later.
                Profile::decode(bytes.as_slice())?;
                self.encoded = bytes;
                self.decoded = None;
                self.found = true;
            }
            Some(StoredState::Erased(at)) => self.erased_at = Some(at),
            None => {}
        }
        self.loaded = true;
        Ok(())
    }

    /// Reads the stored profile (or its erasure tombstone), retrying briefly: a failed load
    /// fails the actor, which makes the shard start over from its checkpoint.
    pub(super) async fn read_store(&self) -> Result<Option<StoredState>, ActorProcessingErr> {
        let store = &self.ctx.node.stores.shard_state;
        let mut delay = Duration::from_millis(20);
        let mut attempt = 0;
        loop {
            let result = async {
                let loaded = store
                    .load(self.ctx.shard, std::slice::from_ref(&self.key))
                    .await?;
                if let Some(Some(bytes)) = loaded.into_iter().next() {
                    return Ok(Some(StoredState::Put(bytes)));
                }
                Ok::<_, iee_store::StoreError>(
                    store
                        .erased_at(self.ctx.shard, &self.key)
                        .await?
                        .map(StoredState::Erased),
                )
            }
            .await;
            match result {
                Ok(state) => return Ok(state),
                Err(err) if attempt < 4 => {
                    tracing::warn!(shard = self.ctx.shard, error = %err, "profile load failed; retrying");
                    attempt += 1;
                    tokio::time::sleep(delay).await;
                    delay *= 2;
                }
                Err(err) => return Err(err.into()),
            }
        }
    }

    /// The profile, decoded if it was kept encoded.
    pub(super) fn profile(&mut self) -> &mut Profile {
        if self.decoded.is_none() {
            let profile = Profile::decode(self.encoded.as_slice())
                .expect("profile bytes this actor encoded or validated decode");
            self.encoded = Vec::new();
            self.decoded = Some(Box::new(profile));
        }
        self.decoded.get_or_insert_with(Box::default)
    }

    /// Keeps the profile encoded while the customer is idle.
    pub(super) fn compact(&mut self) {
        if self.loaded
            && let Some(profile) = self.decoded.take()
        {
            self.encoded = profile.encode_to_vec();
        }
    }

    /// The profile's stored form.
    pub(super) fn encode(&self) -> Vec<u8> {
        match &self.decoded {
            Some(profile) => profile.encode_to_vec(),
            None => self.encoded.clone(),
        }
    }

    /// A contact-budget change: the profile must be stored even without any applied event, or
    /// its reservations would be lost on passivation or failover.
    pub(super) fn touched(&mut self, customer: Option<&iee_api::pb::common::CustomerRef>) {
        if !self.found && self.erased_at.is_none() {
            if self.profile().customer.is_none() {
                self.profile().customer = customer.cloned();
            }
            self.profile().shard = self.ctx.shard;
            self.found = true;
        }
        self.dirty = true;
    }

    /// Takes in the timers and signals of a change. The signals carry the `traceparent` of the
    /// current span (`profile.apply` or `profile.timer`), so their consumers can link to it.
    pub(super) fn absorb(&mut self, mut effects: Effects) {
        for change in effects.timers {
            set_timer(&mut self.timers, change.kind, change.due_ms);
        }
        if !effects.signals.is_empty() {
            let traceparent = iee_telemetry::current_traceparent();
            for signal in &mut effects.signals {
                signal.traceparent.clone_from(&traceparent);
            }
        }
        self.signals.extend(effects.signals);
        self.dirty = true;
    }

    /// The span of applying `record`: a new trace linked to the ingest span the record carries
    /// (an asynchronous hop), with the tenant, shard and event type; never the customer.
    pub(super) fn apply_span(&self, record: &LogRecord) -> tracing::Span {
        let span = tracing::info_span!(
            parent: None,
            "profile.apply",
            iee.tenant = %self.key.tenant_id,
            iee.shard = self.ctx.shard,
            iee.event_type = record.event.as_ref().map_or("", |e| e.r#type.as_str()),
        );
        iee_telemetry::add_link(&span, &record.traceparent);
        span
    }

    /// The span of a durable timer firing: a new trace (the event that set the timer may be
    /// days old), with the tenant, shard and timer kind.
    pub(super) fn timer_span(&self, kind: TimerKind) -> tracing::Span {
        tracing::info_span!(
            parent: None,
            "profile.timer",
            iee.tenant = %self.key.tenant_id,
            iee.shard = self.ctx.shard,
            iee.timer = kind.as_str(),
        )
    }

    pub(super) async fn apply(
        &mut self,
        record: LogRecord,
        offset: &str,
        now: SystemTime,
    ) -> Result<(), ActorProcessingErr> {
        let ctx = self.ctx.clone();
        let metrics = &ctx.node.metrics;
        let shard = ctx.shard;
        if let Some(erased_at) = self.erased_at {
            if timestamp_ms(record.received_at.as_ref()) <= erased_at
                || self.ctx.node.config.refuse_events_after_erasure
            {
                metrics.skipped("erased");
                return Ok(());
            }
            // A later event starts a new profile.
            self.erased_at = None;
        }
        if record.erase_profile {
            self.erase(timestamp_ms(record.received_at.as_ref()).max(unix_ms(now)));
            return Ok(());
        }
        let applied = self
            .profile()
            .applied_offsets
            .get(&shard)
            .is_some_and(|last| !crate::fold::offsets::is_after(offset, last));
        if applied {
            metrics.skipped("replay");
            return Ok(());
        }
        if !self.profile().merged_into_customer_id.is_empty() {
            // A merged anonymous profile: the event belongs to the known customer now.
            let customer_id = self.profile().merged_into_customer_id.clone();
            self.forward(record, &customer_id).await?;
            self.profile()
                .applied_offsets
                .insert(shard, offset.to_owned());
            self.dirty = true;
            metrics.skipped("forwarded");
            return Ok(());
        }
        if is_merge_out(&record)
            && self
                .key
                .key
                .starts_with(iee_api::shard::ANONYMOUS_KEY_PREFIX)
        {
            self.merge_out(record, offset).await?;
            return Ok(());
        }
        match ctx
            .node
            .folder
            .apply(self.profile(), &record, shard, offset, now)
        {
            Applied::Skipped => metrics.skipped("replay"),
            Applied::Changed(effects) => {
                self.found = true;
                self.absorb(effects);
                metrics.applied.inc();
                metrics.observe_freshness(record.received_at.as_ref(), now);
            }
        }
        Ok(())
    }

    pub(super) fn fire(&mut self, kind: TimerKind, due_ms: i64, now: SystemTime) {
        let pending_reschedule = self
            .timers
            .iter()
            .any(|(k, due)| *k == kind && due.is_some_and(|d| d != due_ms));
        let ctx = self.ctx.clone();
        match ctx
            .node
            .folder
            .fire_timer(self.profile(), kind, due_ms, now)
        {
            Applied::Changed(effects) => {
                set_timer(&mut self.timers, kind, None);
                self.absorb(effects);
            }
            Applied::Skipped => {
                if !pending_reschedule {
                    set_timer(&mut self.timers, kind, None);
                    self.dirty = true;
                }
            }
        }
    }

    pub(super) fn erase(&mut self, erased_at: i64) {
        self.decoded = Some(Box::default());
        self.encoded = Vec::new();
        self.found = false;
        self.erased_at = Some(erased_at);
        self.signals.clear();
        self.timers = vec![(TimerKind::CartIdle, None), (TimerKind::Inactive, None)];
        self.dirty = true;
    }

    pub(super) fn take_snapshot(&mut self) -> Option<Snapshot> {
        if !self.dirty || !self.loaded {
            return None;
        }
        self.dirty = false;
        let state = match (self.found, self.erased_at) {
            (true, _) => Some(StoredState::Put(self.encode())),
            (false, Some(at)) => Some(StoredState::Erased(at)),
            (false, None) => None,
        };
        Some(Snapshot {
            state,
            timers: std::mem::take(&mut self.timers),
            signals: std::mem::take(&mut self.signals),
        })
    }
}
