//! Proactive decisions: signals from the profile service (cart abandoned, inactive, negative
//! experience, detractor, …) trigger the configured outbound decisions, whose results go to the
//! tenant's outbound stream.
//!
//! Exactly once per signal and trigger, across redeliveries, restarts and replicas: the
//! decision id is derived from the signal id and the trigger, the decision is idempotent by
//! that id (its reservations too), the outbound entry is published once per decision id (an
//! atomic check-and-append in the store), and the watcher's per-shard cursor moves only after
//! the signal is fully handled, so a crash in between redelivers the signal and every step
//! finds its earlier result.

use std::{
    collections::HashMap,
    sync::Arc,
    time::{Duration, SystemTime},
};

use iee_api::{
    decide::{DecideError, DecideRequest, Direction, OutboundAction},
    pb::common::CustomerRef,
    profile::{
        CommitContactRequest, ProfileApi, ProfileClient, ProfileError, RouteOptions, Signal,
        SignalKind, SignalStream, WatchSignalsRequest,
    },
};
use iee_runtime::Shutdown;
use iee_store::Published;
use prost::Message;
use tokio_stream::{StreamExt, StreamMap};
use tracing::Instrument;
use xxhash_rust::xxh3::xxh3_128;

use crate::{
    config::Trigger,
    decision::{self, Provenance},
    service::{Decider, action_ids},
};

/// Pause before reconnecting after the signal stream ended or failed.
const RECONNECT_DELAY: Duration = Duration::from_millis(500);

/// The decision id of a signal's trigger: the same on every delivery and replica.
pub(crate) fn decision_id(signal_id: &str, trigger: &str) -> String {
    format!(
        "sig{:032x}",
        xxh3_128(format!("{signal_id}\u{1f}{trigger}").as_bytes())
    )
}

/// Watches signals until `stop`, reconnecting (and resuming from the saved cursors) whenever
/// a stream ends or the shard map changes (a shard moved to another profile node).
pub(crate) async fn run(decider: Arc<Decider>, stop: Shutdown) {
    let watcher = decider.settings.watcher_name.clone();
    let mut clients: HashMap<String, ProfileClient> = HashMap::new();
    loop {
        if stop.is_triggered() {
            return;
        }
        let opened = open(&decider, &watcher, &mut clients).await;
        let (mut stream, map) = match opened {
            Ok(opened) => opened,
            Err(Open::TooOld(detail)) => {
                // The profile's signal history no longer holds a cursor: signals between it
                // and the oldest one kept are lost to this watcher.
                tracing::warn!(%detail, "signal cursors too old; resuming from the oldest signal kept");
                decider.metrics.signal_gaps.inc();
                if let Err(err) = forget_cursors(&decider, &watcher).await {
                    tracing::warn!(error = %err, "could not reset signal cursors");
                }
                continue;
            }
            Err(Open::Failed(detail)) => {
                tracing::debug!(%detail, "signals unavailable; retrying");
                pause(&stop).await;
                continue;
            }
        };
        let mut check = tokio::time::interval(MAP_CHECK);
        check.tick().await;
        loop {
            let next = tokio::select! {
                () = stop.wait() => return,
                next = stream.next() => next,
                _ = check.tick() => {
                    if shard_map(&decider).await.is_ok_and(|now| now != map) {
                        tracing::debug!("shard map changed; reconnecting the signal watch");
                        break;
                    }
                    continue;
                }
            };
            let signal = match next {
                Some((_, Ok(signal))) => signal,
                Some((_, Err(err))) => {
                    tracing::debug!(error = %err, "signal stream ended; reconnecting");
                    break;
                }
                None => break,
            };
            // Retried until handled (or stopping), so the cursor never passes a signal whose
            // decision was not published.
            while let Err(err) = handle(&decider, &signal).await {
                tracing::warn!(error = %err, signal = %signal.signal_id, "proactive decision failed; retrying");
                if stop.is_triggered() {
                    return;
                }
                pause(&stop).await;
            }
            if let Err(err) = decider
                .stores
                .outbound
                .save_signal_cursor(&watcher, signal.shard, &signal.cursor)
                .await
            {
                tracing::warn!(error = %err, "signal cursor not saved; the signal may be redelivered");
            }
        }
        pause(&stop).await;
    }
}

/// How often the shard map is compared with the one the watch was opened on.
const MAP_CHECK: Duration = Duration::from_secs(1);

/// Why the watch could not be opened.
enum Open {
    /// A saved cursor is older than the profile's signal history.
    TooOld(String),
    /// Anything else; retried after a pause.
    Failed(String),
}

/// Owner address per shard (in-process: empty).
async fn shard_map(decider: &Decider) -> Result<Vec<Option<String>>, iee_store::StoreError> {
    if matches!(decider.profiles, ProfileClient::Local(_)) {
        return Ok(Vec::new());
    }
    let shards: Vec<u32> = (0..decider.shard_count).collect();
    Ok(decider
        .stores
        .leases
        .owners(&shards)
        .await?
        .into_iter()
        .map(|o| o.map(|o| o.address))
        .collect())
}

/// Opens one watch per profile node, each on the shards it owns and resuming from their saved
/// cursors, merged into one stream; also returns the shard map it was opened on.
async fn open(
    decider: &Decider,
    watcher: &str,
    clients: &mut HashMap<String, ProfileClient>,
) -> Result<(StreamMap<String, SignalStream>, Vec<Option<String>>), Open> {
    let failed = |e: &dyn std::fmt::Display| Open::Failed(e.to_string());
    let cursors: HashMap<u32, String> = decider
        .stores
        .outbound
        .signal_cursors(watcher)
        .await
        .map_err(|e| failed(&e))?;
    let map = shard_map(decider).await.map_err(|e| failed(&e))?;
    let mut plan: Vec<(ProfileClient, WatchSignalsRequest)> = Vec::new();
    // A shard without a cursor resumes from the oldest signal its history holds (an empty
    // cursor): signals emitted before this watcher first ran, or while it was down, are not
    // lost; the ones already handled find their earlier result.
    let resume = |shard: u32| cursors.get(&shard).cloned().unwrap_or_default();
    if map.is_empty() {
        plan.push((
            decider.profiles.clone(),
            WatchSignalsRequest {
                start_after: (0..decider.shard_count).map(|s| (s, resume(s))).collect(),
                ..WatchSignalsRequest::default()
            },
        ));
    } else {
        let mut by_owner: HashMap<&str, Vec<u32>> = HashMap::new();
        for (shard, owner) in map.iter().enumerate() {
            if let Some(owner) = owner {
                by_owner.entry(owner).or_default().push(shard as u32);
            }
        }
        for (owner, shards) in by_owner {
            let client = match clients.get(owner) {
                Some(c) => c.clone(),
                None => {
                    let c = ProfileClient::connect(
                        vec![owner.to_owned()],
                        decider.shard_count,
                        RouteOptions::default(),
                    )
                    .map_err(|e| failed(&e))?;
                    clients.insert(owner.to_owned(), c.clone());
                    c
                }
            };
            let start_after = shards.iter().map(|&s| (s, resume(s))).collect();
            plan.push((
                client,
                WatchSignalsRequest {
                    shards,
                    start_after,
                    ..WatchSignalsRequest::default()
                },
            ));
        }
    }
    let mut streams = StreamMap::new();
    for (i, (client, request)) in plan.into_iter().enumerate() {
        match client.watch_signals(request).await {
            Ok(stream) => {
                streams.insert(i.to_string(), stream);
            }
            Err(ProfileError::OutOfRange(detail)) => return Err(Open::TooOld(detail)),
            Err(err) => return Err(failed(&err)),
        }
    }
    Ok((streams, map))
}

async fn pause(stop: &Shutdown) {
    tokio::select! {
        () = stop.wait() => {}
        () = tokio::time::sleep(RECONNECT_DELAY) => {}
    }
}

/// Resets the watcher's cursors to empty: every shard resumes from the oldest signal its
/// history holds, and signals handled before find their earlier result.
async fn forget_cursors(decider: &Decider, watcher: &str) -> Result<(), iee_store::StoreError> {
    let cursors: HashMap<u32, String> = decider.stores.outbound.signal_cursors(watcher).await?;
    for shard in cursors.keys() {
        decider
            .stores
            .outbound
            .save_signal_cursor(watcher, *shard, "")
            .await?;
    }
    Ok(())
}

/// Runs every trigger of the signal's kind for its tenant.
async fn handle(decider: &Decider, signal: &Signal) -> Result<(), DecideError> {
    let Some(customer) = signal.customer.clone() else {
        return Ok(());
    };
    let emitted = signal
        .emitted_at
        .and_then(|t| SystemTime::try_from(t).ok())
        .unwrap_or(SystemTime::UNIX_EPOCH);
    let age = SystemTime::now()
        .duration_since(emitted)
        .unwrap_or_default();
    if age > Duration::from_secs(decider.settings.signal_max_age_secs) {
        // Acting on an old signal (a cart abandoned hours ago) does more harm than good.
        decider.metrics.signal("stale");
        return Ok(());
    }
    let config = match decider.configs.active(&customer.tenant_id).await {
        Ok(config) => config,
        Err(DecideError::NotFound(_)) => return Ok(()),
        Err(err) => return Err(err),
    };
    for trigger in config.triggers.iter().filter(|t| t.signal == signal.kind) {
        let id = decision_id(&signal.signal_id, &trigger.name);
        let span = proactive_span(signal, &customer.tenant_id, &trigger.name, &id);
        act(decider, signal, &customer, trigger, id)
            .instrument(span)
            .await?;
    }
    Ok(())
}

/// The span of one trigger's decision on a signal: a new trace linked to the span that emitted
/// the signal (an asynchronous hop), with tenant, shard, decision id, trigger and signal kind;
/// never the customer.
fn proactive_span(signal: &Signal, tenant: &str, trigger: &str, id: &str) -> tracing::Span {
    let kind = SignalKind::try_from(signal.kind).map_or("", |k| k.as_str_name());
    let span = tracing::info_span!(
        parent: None,
        "decide.proactive",
        iee.tenant = %tenant,
        iee.shard = signal.shard,
        iee.decision_id = %id,
        iee.trigger = %trigger,
        iee.signal_kind = kind,
    );
    iee_telemetry::add_link(&span, &signal.traceparent);
    span
}

/// Decides for one trigger of the signal, commits the contacts and publishes the outbound
/// entry, which carries the current span's `traceparent` so delivery can continue the trace.
async fn act(
    decider: &Decider,
    signal: &Signal,
    customer: &CustomerRef,
    trigger: &Trigger,
    id: String,
) -> Result<(), DecideError> {
    let request = DecideRequest {
        customer: Some(customer.clone()),
        channel: trigger.channel,
        touchpoint: trigger.touchpoint.clone(),
        direction: Direction::Outbound as i32,
        context: trigger.context.clone(),
        max_actions: trigger.max_actions,
        request_id: id.clone(),
    };
    let provenance = Provenance {
        decision_id: Some(id.clone()),
        signal_id: signal.signal_id.clone(),
        trigger: trigger.name.clone(),
    };
    let response = match decision::decide(decider, request, provenance).await {
        Ok(response) => response,
        Err(DecideError::FailedPrecondition(reason)) => {
            tracing::debug!(%reason, "trigger skipped");
            decider.metrics.signal("skipped");
            return Ok(());
        }
        Err(err) => return Err(err),
    };
    if response.actions.is_empty() {
        decider.metrics.signal("no_action");
        return Ok(());
    }
    iee_telemetry::set_current_attribute("iee.action_ids", action_ids(&response));
    // The business sends now: the reserved contacts become contacts.
    if let Some(record) = decider.logged(&customer.tenant_id, &id).await? {
        for verdict in record.contacts.iter().filter(|v| v.reserved && !v.released) {
            let commit = CommitContactRequest {
                customer: Some(customer.clone()),
                reservation_id: verdict.reservation_id.clone(),
                contacted_at: response.decided_at,
            };
            if let Err(err) = decider.profiles.commit_contact(commit).await {
                if err.is_transient() {
                    return Err(DecideError::Unavailable(format!("commit: {err}")));
                }
                tracing::debug!(error = %err, "outbound contact not committed");
            }
        }
    }
    let entry = OutboundAction {
        cursor: String::new(),
        decision_id: id.clone(),
        customer: Some(customer.clone()),
        channel: trigger.channel,
        touchpoint: trigger.touchpoint.clone(),
        actions: response.actions.clone(),
        signal_id: signal.signal_id.clone(),
        trigger: trigger.name.clone(),
        decided_at: response.decided_at,
        traceparent: iee_telemetry::current_traceparent(),
    };
    let published = decider
        .stores
        .outbound
        .publish_outbound(
            &customer.tenant_id,
            &id,
            &entry.encode_to_vec(),
            Duration::from_secs(decider.settings.outbound_dedup_hours * 3600),
            decider.settings.outbound_max_len,
        )
        .await
        .map_err(|e| DecideError::Unavailable(format!("outbound stream: {e}")))?;
    decider.metrics.signal(match published {
        Published::New(_) => "published",
        Published::Already(_) => "already_published",
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decision_ids_are_fixed_by_signal_and_trigger() {
        let a = decision_id("s1", "cart-rescue");
        assert_eq!(a, decision_id("s1", "cart-rescue"));
        assert_ne!(a, decision_id("s1", "win-back"));
        assert_ne!(a, decision_id("s2", "cart-rescue"));
        assert_eq!(a.len(), 35);
    }
}
