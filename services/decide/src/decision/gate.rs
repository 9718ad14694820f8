//! The contact policy stage: turning the configuration's contact policies into a
//! `ReserveContact` on the customer's actor (so concurrent decisions cannot exceed a cap), and
//! the recorded verdicts a replay uses instead.

use std::{collections::HashMap, time::Duration};

use iee_api::{
    decide::ContactVerdict,
    pb::common::CustomerRef,
    profile::{
        CapScope, ContactCap, DenialReason, DismissalSuppression, ProfileApi, ProfileClient,
        QuietHours, ReleaseContactRequest, ReserveContactRequest,
        reserve_contact_response::Verdict,
    },
};

use crate::config::{Action, DecisionConfig, PolicyKind};

/// Decides whether an action may be delivered, holding a contact for it if so.
#[async_trait::async_trait]
pub(crate) trait ContactGate: Send + Sync {
    /// The verdict for `action` on `channel`.
    async fn reserve(&self, action: &Action, channel: i32) -> ContactVerdict;
    /// Gives a held contact back (marks the verdict released).
    async fn release(&self, verdict: &mut ContactVerdict);
}

/// The `ReserveContact` request that enforces the configuration's policies for `action` on
/// `channel`.
pub(crate) fn reserve_request(
    config: &DecisionConfig,
    action: &Action,
    channel: i32,
    customer: &CustomerRef,
    decision_id: &str,
    utc_offset_minutes: i32,
) -> ReserveContactRequest {
    let mut request = ReserveContactRequest {
        customer: Some(customer.clone()),
        channel,
        action_id: action.id.clone(),
        decision_id: decision_id.to_owned(),
        ttl: Some(proto_duration(config.defaults.reservation_ttl)),
        // Retrying the same decision (a proactive decision after a restart) gets its first
        // reservation back instead of a second one.
        request_id: format!("{decision_id}:{}", action.id),
        ..ReserveContactRequest::default()
    };
    for policy in config.policies_for(action, channel) {
        match &policy.kind {
            PolicyKind::Cap { max, window, scope } => request.caps.push(ContactCap {
                name: policy.name.clone(),
                scope: *scope,
                window: Some(proto_duration(*window)),
                max_count: *max,
            }),
            PolicyKind::Suppress { after, window } => {
                request.suppression = Some(DismissalSuppression {
                    max_dismissals: *after,
                    window: Some(proto_duration(*window)),
                });
            }
            PolicyKind::QuietHours {
                start_minute,
                end_minute,
            } => {
                request.quiet_hours = Some(QuietHours {
                    start_minute: *start_minute,
                    end_minute: *end_minute,
                    utc_offset_minutes,
                });
            }
            PolicyKind::Consent { purpose } => request.consent_purpose = purpose.clone(),
        }
    }
    request
}

fn proto_duration(d: Duration) -> prost_types::Duration {
    prost_types::Duration {
        seconds: i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        nanos: i32::try_from(d.subsec_nanos()).unwrap_or(0),
    }
}

/// The name of the policy behind a denial: the cap's name, or the first policy of the denied
/// kind that applies.
fn denying_policy(
    config: &DecisionConfig,
    action: &Action,
    channel: i32,
    reason: DenialReason,
    cap_name: &str,
) -> String {
    if !cap_name.is_empty() {
        return cap_name.to_owned();
    }
    config
        .policies_for(action, channel)
        .find(|p| {
            matches!(
                (&p.kind, reason),
                (PolicyKind::Consent { .. }, DenialReason::NoConsent)
                    | (PolicyKind::QuietHours { .. }, DenialReason::QuietHours)
                    | (PolicyKind::Suppress { .. }, DenialReason::Suppressed)
            )
        })
        .map(|p| p.name.clone())
        .unwrap_or_default()
}

/// Whether an earlier refusal also refuses `action` on `channel`, so it need not be asked: a
/// failure to check at all (no policy named) covers every action; a customer-wide policy (a cap
/// counting the channel or every channel, quiet hours, consent) covers every action it applies
/// to. A refusal about the action itself (an action-scoped cap, dismissal suppression) covers
/// nothing else.
pub(crate) fn refusal_covers(
    config: &DecisionConfig,
    refusal: &ContactVerdict,
    action: &Action,
    channel: i32,
) -> bool {
    if refusal.reserved {
        return false;
    }
    if refusal.rule.is_empty() {
        return true;
    }
    config
        .contact_policies
        .iter()
        .find(|p| p.name == refusal.rule)
        .is_some_and(|p| {
            let customer_wide = match &p.kind {
                PolicyKind::Cap { scope, .. } => *scope != CapScope::Action as i32,
                PolicyKind::QuietHours { .. } | PolicyKind::Consent { .. } => true,
                PolicyKind::Suppress { .. } => false,
            };
            customer_wide && p.applies_to(action, channel)
        })
}

/// Reserves through the profile service, on the customer's actor.
pub(crate) struct LiveGate<'a> {
    pub profiles: &'a ProfileClient,
    pub config: &'a DecisionConfig,
    pub customer: &'a CustomerRef,
    pub decision_id: &'a str,
    pub utc_offset_minutes: i32,
    pub timeout: Duration,
}

#[async_trait::async_trait]
impl ContactGate for LiveGate<'_> {
    async fn reserve(&self, action: &Action, channel: i32) -> ContactVerdict {
        let request = reserve_request(
            self.config,
            action,
            channel,
            self.customer,
            self.decision_id,
            self.utc_offset_minutes,
        );
        let mut verdict = ContactVerdict {
            action_id: action.id.clone(),
            ..ContactVerdict::default()
        };
        match tokio::time::timeout(self.timeout, self.profiles.reserve_contact(request)).await {
            Ok(Ok(response)) => match response.verdict {
                Some(Verdict::Reservation(r)) => {
                    verdict.reserved = true;
                    verdict.reservation_id = r.reservation_id;
                }
                Some(Verdict::Denial(d)) => {
                    let reason = DenialReason::try_from(d.reason).unwrap_or_default();
                    verdict.rule =
                        denying_policy(self.config, action, channel, reason, &d.cap_name);
                    verdict.reason = d.message;
                }
                None => verdict.reason = "the profile service gave no verdict".into(),
            },
            Ok(Err(err)) => {
                verdict.reason = format!("contact policies could not be checked: {err}");
            }
            Err(_) => {
                verdict.reason = format!(
                    "contact policies could not be checked within {} ms",
                    self.timeout.as_millis()
                );
            }
        }
        verdict
    }

    async fn release(&self, verdict: &mut ContactVerdict) {
        verdict.released = true;
        let request = ReleaseContactRequest {
            customer: Some(self.customer.clone()),
            reservation_id: verdict.reservation_id.clone(),
        };
        // A failed release only lets the reservation lapse at its expiry.
        if let Err(err) = self.profiles.release_contact(request).await {
            tracing::debug!(error = %err, "contact release failed; it lapses at its expiry");
        }
    }
}

/// The verdicts a logged decision recorded; actions the original never checked are let
/// through (a what-if replay cannot reserve).
pub(crate) struct RecordedGate {
    pub verdicts: HashMap<String, ContactVerdict>,
}

#[async_trait::async_trait]
impl ContactGate for RecordedGate {
    async fn reserve(&self, action: &Action, _channel: i32) -> ContactVerdict {
        match self.verdicts.get(&action.id) {
            Some(v) => ContactVerdict {
                released: false,
                ..v.clone()
            },
            None => ContactVerdict {
                action_id: action.id.clone(),
                reserved: true,
                reason: "not checked by the original decision; assumed allowed".into(),
                ..ContactVerdict::default()
            },
        }
    }

    async fn release(&self, verdict: &mut ContactVerdict) {
        verdict.released = true;
    }
}
