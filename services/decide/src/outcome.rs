//! `ReportOutcome`: an outcome is checked against the decision log (the decision and the action
//! must exist, the outcome must fall in the attribution window), commits the contact reserved
//! for the action, and is ingested as a `decision_outcome` event so the profile, the models'
//! online learning and the KPIs all see it.

use std::time::{Duration, SystemTime};

use iee_api::{
    decide::{DecideError, OutcomeKind, ReportOutcomeRequest, ReportOutcomeResponse},
    ingest::{EventStatus, IngestRequest, TouchpointApi},
    pb::common::{Event, PropertyValue, property_value::Kind},
    profile::{CommitContactRequest, ProfileApi},
};
use xxhash_rust::xxh3::xxh3_64;

use crate::service::{Decider, require, shard_of_customer};

/// An outcome may be stamped this much before its decision (clock skew between systems).
const SKEW: Duration = Duration::from_secs(300);
/// Attribution window of a decision whose configuration version is gone.
const DEFAULT_WINDOW: Duration = Duration::from_secs(7 * 86_400);

/// The outcome's name in the event's `kind` property.
fn kind_name(kind: OutcomeKind) -> &'static str {
    match kind {
        OutcomeKind::Impression => "impression",
        OutcomeKind::Click => "click",
        OutcomeKind::Accept => "accept",
        OutcomeKind::Convert => "convert",
        OutcomeKind::Dismiss => "dismiss",
        OutcomeKind::Unspecified => "unspecified",
    }
}

/// The default event id of an outcome: one per decision, action and kind (hashed when the
/// action id would make it longer than an event id may be).
fn default_event_id(decision_id: &str, action_id: &str, kind: &str) -> String {
    let id = format!("outcome:{decision_id}:{action_id}:{kind}");
    if id.len() <= 128 && id.bytes().all(|b| b.is_ascii_graphic()) {
        id
    } else {
        format!(
            "outcome:{decision_id}:{:016x}:{kind}",
            xxh3_64(action_id.as_bytes())
        )
    }
}

fn text(s: &str) -> PropertyValue {
    PropertyValue {
        kind: Some(Kind::StringValue(s.to_owned())),
    }
}

/// Handles one report.
pub(crate) async fn report(
    decider: &Decider,
    request: ReportOutcomeRequest,
) -> Result<ReportOutcomeResponse, DecideError> {
    require("tenant_id", &request.tenant_id)?;
    require("decision_id", &request.decision_id)?;
    require("action_id", &request.action_id)?;
    let kind = match OutcomeKind::try_from(request.kind) {
        Ok(OutcomeKind::Unspecified) | Err(_) => {
            return Err(DecideError::invalid(
                "kind",
                "must be one of impression, click, accept, convert, dismiss",
            ));
        }
        Ok(kind) => kind,
    };
    if request.outcome_id.len() > 128 {
        return Err(DecideError::invalid(
            "outcome_id",
            "longer than 128 characters",
        ));
    }
    if let Some(value) = &request.value
        && value.currency.len() != 3
    {
        return Err(DecideError::invalid(
            "value.currency",
            "must be an ISO 4217 code such as EUR",
        ));
    }
    let record = decider
        .logged_or_not_found(&request.tenant_id, &request.decision_id)
        .await?;
    let decision = record.response.clone().unwrap_or_default();
    let decided = record.request.clone().unwrap_or_default();
    let action = decision
        .actions
        .iter()
        .find(|a| a.action_id == request.action_id)
        .ok_or_else(|| {
            DecideError::NotFound(format!(
                "action {:?} was not returned by decision {:?}",
                request.action_id, request.decision_id
            ))
        })?;
    let decided_at: SystemTime = decision
        .decided_at
        .and_then(|t| SystemTime::try_from(t).ok())
        .unwrap_or(SystemTime::UNIX_EPOCH);
    let occurred_at = match &request.occurred_at {
        Some(t) => SystemTime::try_from(*t)
            .map_err(|_| DecideError::invalid("occurred_at", "not a valid timestamp"))?,
        None => SystemTime::now(),
    };
    let window = decider
        .configs
        .version(&request.tenant_id, &decision.config_version)
        .await
        .map_or(DEFAULT_WINDOW, |c| c.defaults.attribution_window);
    if occurred_at + SKEW < decided_at {
        return Err(DecideError::FailedPrecondition(format!(
            "the outcome occurred before decision {:?} was made",
            request.decision_id
        )));
    }
    let after = occurred_at.duration_since(decided_at).unwrap_or_default();
    if after > window {
        return Err(DecideError::FailedPrecondition(format!(
            "the outcome occurred {}s after decision {:?}, outside its attribution window of {}s",
            after.as_secs(),
            request.decision_id,
            window.as_secs()
        )));
    }
    let customer = decided.customer.clone().unwrap_or_default();
    let shard = shard_of_customer(&customer, decider.shard_count);
    iee_telemetry::set_current_attribute("iee.shard", i64::from(shard));
    // Any outcome shows the action reached the customer: the contact is made.
    if let Some(verdict) = record
        .contacts
        .iter()
        .find(|v| v.action_id == request.action_id && v.reserved && !v.released)
    {
        let commit = CommitContactRequest {
            customer: Some(customer.clone()),
            reservation_id: verdict.reservation_id.clone(),
            contacted_at: decision.decided_at,
        };
        if let Err(err) = decider.profiles.commit_contact(commit).await {
            if err.is_transient() {
                return Err(DecideError::Unavailable(format!(
                    "the contact could not be committed: {err}"
                )));
            }
            // Expired or released meanwhile: the outcome still counts.
            tracing::debug!(error = %err, "contact not committed");
        }
    }
    let name = kind_name(kind);
    let event_id = if request.outcome_id.is_empty() {
        default_event_id(&request.decision_id, &request.action_id, name)
    } else {
        request.outcome_id.clone()
    };
    let mut event = Event {
        event_id: event_id.clone(),
        tenant_id: customer.tenant_id.clone(),
        customer_id: customer.customer_id.clone(),
        anonymous_id: customer.anonymous_id.clone(),
        r#type: "decision_outcome".into(),
        channel: action.channel,
        touchpoint: decided.touchpoint.clone(),
        occurred_at: Some(occurred_at.into()),
        value: request.value.clone(),
        ..Event::default()
    };
    for (key, value) in [
        ("decision_id", request.decision_id.as_str()),
        ("action_id", request.action_id.as_str()),
        ("kind", name),
        ("config_version", decision.config_version.as_str()),
    ] {
        event.properties.insert(key.to_owned(), text(value));
    }
    let response = decider
        .ingest
        .ingest(IngestRequest {
            events: vec![event],
        })
        .await
        .map_err(|e| DecideError::Unavailable(format!("ingest: {e}")))?;
    let result = response
        .results
        .into_iter()
        .next()
        .ok_or_else(|| DecideError::Internal("ingest answered without a result".into()))?;
    match EventStatus::try_from(result.status) {
        Ok(EventStatus::Accepted | EventStatus::Duplicate) => {
            let duplicate = result.status == EventStatus::Duplicate as i32;
            if !duplicate {
                decider.metrics.outcome(name);
            }
            Ok(ReportOutcomeResponse {
                event_id,
                duplicate,
                shard: result.shard,
                offset: result.offset,
            })
        }
        _ => {
            let rejection = result.rejection.unwrap_or_default();
            Err(DecideError::invalid(
                if rejection.field.is_empty() {
                    "outcome".to_owned()
                } else {
                    rejection.field
                },
                rejection.reason,
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_event_ids_are_one_per_decision_action_and_kind() {
        let a = default_event_id("d1", "offer-a", "click");
        assert_eq!(a, "outcome:d1:offer-a:click");
        assert_ne!(a, default_event_id("d1", "offer-a", "convert"));
        let long = "x".repeat(120);
        let hashed = default_event_id("d1", &long, "click");
        assert!(hashed.len() <= 128, "{hashed}");
        assert_ne!(hashed, default_event_id("d1", &"y".repeat(120), "click"));
        let spaced = default_event_id("d1", "offer a", "click");
        assert!(spaced.bytes().all(|b| b.is_ascii_graphic()), "{spaced}");
    }
}
