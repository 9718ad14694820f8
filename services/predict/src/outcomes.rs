//! Online learning from outcomes: the replicas of the prediction service form one consumer group
//! over the shard logs, so each `decision_outcome` event is learned from by one replica; each
//! replica merges what it learned with the others through the store.
//!
//! Reward of an outcome event: its numeric property `reward` (0 or 1) when present; otherwise
//! `click`, `accept` and `convert` count as a positive response, `dismiss` as a negative one,
//! and an `impression` alone teaches nothing (it is the exposure, not the response). The
//! features are those the decision was made with, from the decision log (so the model learns
//! what the customer looked like when the action was chosen); when the log no longer holds the
//! decision, the customer's profile as of now plus the event's channel and touchpoint.

use std::{sync::Arc, time::Duration};

use iee_api::{
    pb::{
        common::{CustomerRef, Event, LogRecord, PropertyValue, property_value::Kind as ValueKind},
        decide::DecisionRecord,
        predict::FeatureVector,
    },
    profile::{GetProfileRequest, ProfileApi},
    shard::customer_key,
};
use iee_runtime::Shutdown;
use iee_store::Stores;
use prost::Message;
use tracing::Instrument;

use crate::{features, model::Kind, service::Predictor};

/// Name of the learners' consumer group on the shard logs.
pub(crate) const LEARNERS_GROUP: &str = "predict-learners";

fn property<'a>(event: &'a Event, name: &str) -> Option<&'a ValueKind> {
    event
        .properties
        .get(name)
        .and_then(|v: &PropertyValue| v.kind.as_ref())
}

fn text(event: &Event, name: &str) -> Option<String> {
    match property(event, name)? {
        ValueKind::StringValue(s) => Some(s.clone()),
        _ => None,
    }
}

/// The reward an outcome event teaches, if any.
pub(crate) fn reward(event: &Event) -> Option<bool> {
    match property(event, "reward") {
        Some(ValueKind::NumberValue(n)) => return Some(*n > 0.5),
        Some(ValueKind::BoolValue(b)) => return Some(*b),
        _ => {}
    }
    let kind = text(event, "kind").or_else(|| text(event, "outcome"))?;
    match kind
        .trim()
        .to_ascii_lowercase()
        .trim_start_matches("outcome_kind_")
    {
        "click" | "accept" | "convert" => Some(true),
        "dismiss" => Some(false),
        _ => None,
    }
}

/// Reads outcome events until `stop` and feeds them to the learner, merging through the store
/// every `learn_sync_interval_ms`.
pub(crate) async fn learn(
    predictor: Arc<Predictor>,
    stores: Stores,
    shard_count: u32,
    consumer: String,
    stop: Shutdown,
) {
    let shards: Vec<u32> = (0..shard_count).collect();
    let sync_every = Duration::from_millis(predictor.config.learn_sync_interval_ms);
    let mut last_sync = tokio::time::Instant::now();
    let block = Duration::from_millis(500);
    loop {
        let read = tokio::select! {
            () = stop.wait() => break,
            read = stores.consumer.read_group(
                LEARNERS_GROUP,
                &consumer,
                &shards,
                predictor.config.learn_read_batch,
                block,
            ) => read,
        };
        match read {
            Ok(found) => {
                for (shard, entries) in found {
                    for entry in entries {
                        learn_one(&predictor, &stores, shard, &entry.payload).await;
                    }
                }
            }
            Err(err) => {
                tracing::warn!(error = %err, "reading outcome events failed; retrying");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
        if last_sync.elapsed() >= sync_every {
            last_sync = tokio::time::Instant::now();
            sync(&predictor, &stores).await;
        }
    }
    // Publish what was learned since the last merge before stopping.
    sync(&predictor, &stores).await;
}

async fn sync(predictor: &Predictor, stores: &Stores) {
    match predictor.learner.sync(stores.propensity.as_ref()).await {
        Ok(()) => {
            predictor.metrics.syncs.inc();
        }
        Err(err) => tracing::warn!(error = %err, "merging learned propensities failed"),
    }
}

async fn learn_one(predictor: &Predictor, stores: &Stores, shard: u32, payload: &[u8]) {
    let Ok(record) = LogRecord::decode(payload) else {
        return;
    };
    let Some(event) = record.event else { return };
    if event.r#type != "decision_outcome" {
        return;
    }
    // A new trace linked to the ingest span of the outcome (an asynchronous hop); the ids of
    // the decision and action, never the customer's.
    let span = tracing::info_span!(
        parent: None,
        "predict.learn",
        iee.tenant = %event.tenant_id,
        iee.shard = shard,
        iee.decision_id = text(&event, "decision_id").unwrap_or_default(),
        iee.action_id = text(&event, "action_id").unwrap_or_default(),
    );
    iee_telemetry::add_link(&span, &record.traceparent);
    learn_outcome(predictor, stores, event)
        .instrument(span)
        .await;
}

/// Feeds one outcome event to the learner.
async fn learn_outcome(predictor: &Predictor, stores: &Stores, event: Event) {
    let (Some(action), Some(reward)) = (text(&event, "action_id"), reward(&event)) else {
        predictor.metrics.outcomes_skipped.inc();
        return;
    };
    let x = match decision_features(stores, &event).await {
        Some(x) => x,
        None => match features_now(predictor, &event).await {
            Some(x) => x,
            None => {
                predictor.metrics.outcomes_skipped.inc();
                return;
            }
        },
    };
    let Ok(models) = predictor.cache.tenant(&event.tenant_id).await else {
        predictor.metrics.outcomes_skipped.inc();
        return;
    };
    let key = customer_key(&event.customer_id, &event.anonymous_id);
    let (model, _) = predictor
        .cache
        .choose(&models, Kind::Propensity, &event.tenant_id, &key);
    predictor.learner.observe(
        &event.tenant_id,
        &model.artifact.model_id,
        &action,
        x,
        reward,
    );
    predictor.metrics.outcomes_learned.inc();
}

/// The features the decision was made with, from the decision log (the outcome's
/// `decision_id`), while the log still holds it.
async fn decision_features(stores: &Stores, event: &Event) -> Option<FeatureVector> {
    let decision_id = text(event, "decision_id")?;
    let bytes = stores
        .decisions
        .get_decision(&event.tenant_id, &decision_id)
        .await
        .ok()??;
    DecisionRecord::decode(bytes.as_slice()).ok()?.features
}

/// The features as of now: the customer's profile, and the outcome's channel and touchpoint as
/// context. `None` when the profile cannot be read.
async fn features_now(predictor: &Predictor, event: &Event) -> Option<FeatureVector> {
    let customer = CustomerRef {
        tenant_id: event.tenant_id.clone(),
        customer_id: event.customer_id.clone(),
        anonymous_id: event.anonymous_id.clone(),
    };
    let profile = predictor
        .profiles
        .get_profile(GetProfileRequest {
            customer: Some(customer.clone()),
            min_applied_offset: String::new(),
        })
        .await;
    let base = match profile {
        Ok(r) if r.found => r
            .profile
            .map(|p| features::from_profile(&p, std::time::SystemTime::now()))
            .unwrap_or_default(),
        Ok(_) => FeatureVector::default(),
        Err(err) => {
            tracing::debug!(error = %err, "profile unavailable; outcome not learned");
            return None;
        }
    };
    let context = features::context_features(
        event.channel,
        &event.touchpoint,
        &std::collections::HashMap::new(),
    );
    Some(features::merge(base, context))
}
