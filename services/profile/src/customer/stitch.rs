//! Identity stitching on the anonymous side: handing the anonymous profile to the known
//! customer's shard through the log, and forwarding later events of a merged anonymous id.

use std::time::Duration;

use iee_api::{
    pb::common::LogRecord,
    shard::{customer_key, shard_of},
};
use iee_store::{AppendOutcome, AppendRequest};
use prost::Message;
use ractor::ActorProcessingErr;

use super::actor::CustomerState;

impl CustomerState {
    /// The anonymous side of a merge: hands the anonymous profile to the known customer's shard
    /// through the log (an idempotent append), then becomes a tombstone naming the customer.
    pub(super) async fn merge_out(
        &mut self,
        mut record: LogRecord,
        offset: &str,
    ) -> Result<(), ActorProcessingErr> {
        let event = record.event.clone().unwrap_or_default();
        let customer_id = event.customer_id.clone();
        record.merged_profile = if self.found {
            self.encode()
        } else {
            Vec::new()
        };
        // Marks the record as the profile service's own, so it is routed to the customer even
        // when the anonymous profile was empty.
        record.forwarded_from_shard = Some(self.ctx.shard);
        // The customer's side links to this apply, which links to the ingest span in turn.
        record.traceparent = iee_telemetry::current_traceparent();
        let target = shard_of(
            &event.tenant_id,
            &customer_key(&customer_id, ""),
            self.ctx.node.shard_count,
        );
        self.append(target, format!("merge:{}", event.event_id), &record)
            .await?;
        if self.profile().customer.is_none() {
            self.profile().customer = Some(iee_api::pb::common::CustomerRef {
                tenant_id: event.tenant_id.clone(),
                customer_id: String::new(),
                anonymous_id: event.anonymous_id.clone(),
            });
            self.profile().shard = self.ctx.shard;
        }
        let ctx = self.ctx.clone();
        ctx.node
            .folder
            .mark_merged(self.profile(), &customer_id, ctx.shard, offset);
        self.found = true;
        self.dirty = true;
        self.ctx.node.metrics.merges.inc();
        Ok(())
    }

    /// Re-appends an event of a merged anonymous id to the known customer's shard.
    pub(super) async fn forward(
        &self,
        mut record: LogRecord,
        customer_id: &str,
    ) -> Result<(), ActorProcessingErr> {
        let Some(event) = record.event.as_mut() else {
            return Ok(());
        };
        event.customer_id = customer_id.to_owned();
        let event_id = event.event_id.clone();
        let target = shard_of(
            &event.tenant_id,
            &customer_key(customer_id, ""),
            self.ctx.node.shard_count,
        );
        record.forwarded_from_shard = Some(self.ctx.shard);
        record.traceparent = iee_telemetry::current_traceparent();
        self.append(target, event_id, &record).await
    }

    pub(super) async fn append(
        &self,
        shard: u32,
        dedup_id: String,
        record: &LogRecord,
    ) -> Result<(), ActorProcessingErr> {
        let request = AppendRequest {
            shard,
            tenant_id: self.key.tenant_id.clone(),
            event_id: dedup_id,
            payload: record.encode_to_vec(),
        };
        let window = Duration::from_secs(self.ctx.node.dedup_window_secs);
        let outcome = self
            .ctx
            .node
            .stores
            .log
            .append(std::slice::from_ref(&request), window)
            .await?;
        if let Some(AppendOutcome::Duplicate(_)) = outcome.first() {
            tracing::debug!(shard, "re-append was a duplicate (replay)");
        }
        Ok(())
    }
}

/// An `identify` record as ingest appends it to the anonymous id's shard: the anonymous
/// profile must be handed to the known customer.
pub(crate) fn is_merge_out(record: &LogRecord) -> bool {
    record.merged_profile.is_empty()
        && record.forwarded_from_shard.is_none()
        && !record.erase_profile
        && record.event.as_ref().is_some_and(|e| {
            e.r#type == "identify" && !e.customer_id.is_empty() && !e.anonymous_id.is_empty()
        })
}
