//! A live decision: one profile read, one scoring call, contact reservations on the customer's
//! actor, and the decision log written before the answer.

use std::{
    sync::atomic::{AtomicU64, Ordering},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use iee_api::{
    decide::{DecideError, DecideRequest, DecideResponse, DecisionRecord},
    pb::{
        common::{Channel, CustomerRef, JourneyStage, PropertyValue, property_value::Kind},
        predict::{FeatureVector, LifetimeValueQuery, PropensityQuery, ScoreRequest},
        profile::{GetProfileRequest, Profile},
    },
    predict::PredictApi,
    profile::ProfileApi,
    shard::customer_key,
};
use iee_predict::features;
use iee_store::Recorded;
use prost::Message;
use xxhash_rust::xxh3::xxh3_64;

use super::{
    exposure::{ExposureFacts, append_exposure, exposure_record},
    funnel::{self, Inputs, Scored, Scorer},
    gate::{ContactGate, LiveGate},
};
use crate::{
    config::{Bindings, DecisionConfig, ScoreNeeds, Scores, profile_view},
    service::{Decider, record_of},
};

/// Longest touchpoint, request id and context key, in characters.
const MAX_ID_CHARS: usize = 128;
const MAX_CONTEXT_KEY_CHARS: usize = 64;
const MAX_CONTEXT_ENTRIES: usize = 64;
/// Largest `max_actions`.
const MAX_ACTIONS: u32 = 100;

/// Checks a request before anything is read.
pub(crate) fn validate(request: &DecideRequest) -> Result<&CustomerRef, DecideError> {
    let customer = request
        .customer
        .as_ref()
        .ok_or_else(|| DecideError::invalid("customer", "required"))?;
    if customer.tenant_id.is_empty() {
        return Err(DecideError::invalid("customer.tenant_id", "required"));
    }
    if customer.customer_id.is_empty() && customer.anonymous_id.is_empty() {
        return Err(DecideError::invalid(
            "customer",
            "a customer_id or an anonymous_id is required",
        ));
    }
    match Channel::try_from(request.channel) {
        Ok(Channel::Unspecified) => return Err(DecideError::invalid("channel", "required")),
        Err(_) => {
            return Err(DecideError::invalid(
                "channel",
                format!("{} is not a known channel", request.channel),
            ));
        }
        Ok(_) => {}
    }
    if !matches!(request.direction, 1 | 2) {
        return Err(DecideError::invalid(
            "direction",
            "must be DIRECTION_INBOUND or DIRECTION_OUTBOUND",
        ));
    }
    for (field, value) in [
        ("touchpoint", &request.touchpoint),
        ("request_id", &request.request_id),
    ] {
        if value.chars().count() > MAX_ID_CHARS {
            return Err(DecideError::invalid(field, "longer than 128 characters"));
        }
    }
    if request.max_actions > MAX_ACTIONS {
        return Err(DecideError::invalid(
            "max_actions",
            "must be within 0..=100",
        ));
    }
    if request.context.len() > MAX_CONTEXT_ENTRIES {
        return Err(DecideError::invalid("context", "more than 64 entries"));
    }
    for (key, value) in &request.context {
        let field = format!("context[{key:?}]");
        if key.is_empty() || key.chars().count() > MAX_CONTEXT_KEY_CHARS {
            return Err(DecideError::invalid(field, "keys must be 1-64 characters"));
        }
        match &value.kind {
            None => return Err(DecideError::invalid(field, "value not set")),
            Some(Kind::NumberValue(n)) if !n.is_finite() => {
                return Err(DecideError::invalid(field, "not a finite number"));
            }
            _ => {}
        }
    }
    Ok(customer)
}

/// A new decision id: 32 hex digits, unique per process start, time and counter.
pub(crate) fn new_decision_id() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    static BOOT: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    let boot = *BOOT.get_or_init(|| {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        xxh3_64(format!("{nanos}:{}", std::process::id()).as_bytes())
    });
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    format!(
        "{boot:016x}{:016x}",
        xxh3_64(&[n.to_le_bytes(), now.to_le_bytes()].concat())
    )
}

/// The exploration seed of a decision, fixed by its id.
pub(crate) fn seed_of(decision_id: &str) -> u64 {
    xxh3_64(decision_id.as_bytes()) | 1
}

/// The customer's offset from UTC for quiet hours: the request's `utc_offset_minutes`
/// context value, else the profile trait of that name, else 0.
fn utc_offset(request: &DecideRequest, profile: Option<&Profile>) -> i32 {
    let from = |v: &PropertyValue| match &v.kind {
        Some(Kind::NumberValue(n)) if n.is_finite() => Some(n.round().clamp(-840.0, 840.0) as i32),
        Some(Kind::StringValue(s)) => s.trim().parse::<i32>().ok().map(|n| n.clamp(-840, 840)),
        _ => None,
    };
    request
        .context
        .get("utc_offset_minutes")
        .and_then(from)
        .or_else(|| {
            profile
                .and_then(|p| p.identity.as_ref())
                .and_then(|i| i.traits.get("utc_offset_minutes"))
                .and_then(from)
        })
        .unwrap_or(0)
}

/// Scores through the prediction service, with explicit features so it reads no profile.
pub(crate) struct LiveScorer<'a> {
    pub decider: &'a Decider,
    pub customer: &'a CustomerRef,
    pub request: &'a DecideRequest,
    pub features: &'a FeatureVector,
    pub seed: u64,
}

#[async_trait::async_trait]
impl Scorer for LiveScorer<'_> {
    async fn score(&self, action_ids: Vec<String>, needs: ScoreNeeds) -> Scored {
        let request = ScoreRequest {
            customer: Some(self.customer.clone()),
            features: Some(self.features.clone()),
            churn: needs.churn.then(Default::default),
            lifetime_value: needs.clv.then(LifetimeValueQuery::default),
            propensity: (!action_ids.is_empty()).then(|| PropensityQuery {
                action_ids: action_ids.clone(),
                channel: self.request.channel,
                touchpoint: self.request.touchpoint.clone(),
                context: self.request.context.clone(),
                sample: false,
                seed: self.seed,
            }),
            ..ScoreRequest::default()
        };
        let timeout = Duration::from_millis(self.decider.settings.predict_timeout_ms);
        let scored = match tokio::time::timeout(timeout, self.decider.predict.score(request)).await
        {
            Ok(Ok(response)) => response,
            Ok(Err(err)) => {
                tracing::debug!(error = %err, "scoring failed; deciding with prior propensities");
                return prior("predict_unavailable");
            }
            Err(_) => return prior("predict_timeout"),
        };
        let mut out = Scored {
            churn: scored.churn.as_ref().map(|c| c.probability),
            clv: scored
                .lifetime_value
                .as_ref()
                .and_then(|l| l.expected_value.as_ref())
                .map(|m| features::major_units(m, "")),
            ..Scored::default()
        };
        for p in scored.propensities {
            // Every score names its model; usually all the same one.
            if let Some(model) = &p.model
                && out.models.last() != Some(model)
                && !out.models.contains(model)
            {
                out.models.push(model.clone());
            }
            out.propensities.insert(p.action_id, (p.mean, p.stddev));
        }
        for model in [
            scored.churn.and_then(|c| c.model),
            scored.lifetime_value.and_then(|l| l.model),
        ]
        .into_iter()
        .flatten()
        {
            if !out.models.contains(&model) {
                out.models.push(model);
            }
        }
        out
    }
}

/// Scores when the prediction service cannot answer: every propensity at the uniform prior.
fn prior(reason: &str) -> Scored {
    Scored {
        degraded: Some(reason.to_owned()),
        ..Scored::default()
    }
}

/// Reads the profile within the deadline; `Err` carries the degradation reason.
async fn read_profile(
    decider: &Decider,
    customer: &CustomerRef,
) -> Result<Option<Profile>, &'static str> {
    let timeout = Duration::from_millis(decider.settings.profile_timeout_ms);
    let read = decider.profiles.get_profile(GetProfileRequest {
        customer: Some(customer.clone()),
        min_applied_offset: String::new(),
    });
    match tokio::time::timeout(timeout, read).await {
        Ok(Ok(response)) if response.found => Ok(response.profile),
        Ok(Ok(_)) => Ok(None),
        Ok(Err(err)) => {
            tracing::debug!(error = %err, "profile read failed; deciding without it");
            Err("profile_unavailable")
        }
        Err(_) => Err("profile_timeout"),
    }
}

/// Decides, logs and answers.
pub(crate) async fn decide(
    decider: &Decider,
    request: DecideRequest,
    provenance: Provenance,
) -> Result<DecideResponse, DecideError> {
    let customer = validate(&request)?.clone();
    let tenant = customer.tenant_id.clone();
    let config = decider.configs.active(&tenant).await?;
    if !request.request_id.is_empty()
        && let Some(logged) = decider
            .logged_for_request(&tenant, &request.request_id)
            .await?
    {
        // The first attempt may have failed after logging; its exposure append is idempotent.
        expose_logged(decider, &config, &logged).await?;
        return Ok(logged.response.unwrap_or_default());
    }
    let decision_id = provenance
        .decision_id
        .clone()
        .unwrap_or_else(new_decision_id);
    let seed = seed_of(&decision_id);
    let now = SystemTime::now();
    let key = customer_key(&customer.customer_id, &customer.anonymous_id);
    let (profile, profile_degraded) = match read_profile(decider, &customer).await {
        Ok(p) => (p, None),
        Err(reason) => (None, Some(reason)),
    };
    let base = profile
        .as_ref()
        .map(|p| features::from_profile(p, now))
        .unwrap_or_default();
    let view = profile_view(&base, profile.as_ref());
    let context =
        features::context_features(request.channel, &request.touchpoint, &request.context);
    let model_inputs = features::merge(base, context);
    let bindings = Bindings::new(&view, &request.context, &customer, now);
    if let Some(rule) = config
        .trigger(&provenance.trigger)
        .and_then(|t| t.when.as_ref())
        && !matches!(bindings.evaluate(rule, None, &Scores::default()), Ok(true))
    {
        return Err(DecideError::FailedPrecondition(format!(
            "trigger {:?}: its condition does not hold for the customer",
            provenance.trigger
        )));
    }
    let inputs = Inputs {
        config: &config,
        request: &request,
        bindings: &bindings,
        now,
        seed,
        customer_key: &key,
        explain: false,
        max_filtered: decider.settings.max_filtered,
    };
    let scorer = LiveScorer {
        decider,
        customer: &customer,
        request: &request,
        features: &model_inputs,
        seed,
    };
    let gate = LiveGate {
        profiles: &decider.profiles,
        config: &config,
        customer: &customer,
        decision_id: &decision_id,
        utc_offset_minutes: utc_offset(&request, profile.as_ref()),
        timeout: Duration::from_millis(decider.settings.reserve_timeout_ms),
    };
    let mut funnel = funnel::run(&inputs, &scorer, &gate).await;
    let mut response = std::mem::take(&mut funnel.response);
    response.decision_id = decision_id.clone();
    response.decided_at = Some(now.into());
    response.config_version = config.version.clone();
    response.profile_version = profile.as_ref().map_or(0, |p| p.version);
    if let Some(reason) = profile_degraded {
        response.degraded.insert(0, reason.to_owned());
    }
    let traceparent = iee_telemetry::current_traceparent();
    let record = DecisionRecord {
        request: Some(request.clone()),
        response: Some(response.clone()),
        profile_view: Some(view),
        seed,
        features: Some(model_inputs),
        propensities: funnel.propensities,
        contacts: funnel.contacts,
        customer_scores: funnel.customer_scores,
        trace_id: traceparent.split('-').nth(1).unwrap_or_default().to_owned(),
        signal_id: provenance.signal_id,
        trigger: provenance.trigger,
    };
    let retention = config.defaults.decision_retention;
    let written = decider
        .stores
        .decisions
        .record_decision(
            &tenant,
            &decision_id,
            &request.request_id,
            &record.encode_to_vec(),
            retention,
        )
        .await;
    match written {
        Ok(Recorded::New) => {
            let facts = ExposureFacts {
                config: &config,
                journey_stage: profile
                    .as_ref()
                    .and_then(|p| JourneyStage::try_from(p.journey_stage).ok())
                    .unwrap_or_default(),
                predicted_clv: record.customer_scores.get("clv").copied(),
                proactive: !record.signal_id.is_empty(),
            };
            let exposure = exposure_record(&customer, &request, &response, &facts);
            // Answered only once measurement will see it; a retry with the request id
            // appends the same exposure again, which the log's dedup absorbs.
            append_exposure(decider, &exposure).await.map_err(|err| {
                DecideError::Unavailable(format!(
                    "the decision's exposure could not be logged: {err}"
                ))
            })?;
            decider.metrics.decided(&response);
            Ok(response)
        }
        Ok(Recorded::Duplicate(bytes)) => {
            // A concurrent retry with the same request id won: its decision stands. Its
            // reservations may be ours too (same reservation request id): keep those.
            let logged = record_of(Ok(Some(bytes)))?.unwrap_or_default();
            let kept: Vec<&str> = logged
                .contacts
                .iter()
                .map(|v| v.reservation_id.as_str())
                .collect();
            let ours = record
                .contacts
                .into_iter()
                .filter(|v| !kept.contains(&v.reservation_id.as_str()))
                .collect();
            release_all(&gate, ours).await;
            expose_logged(decider, &config, &logged).await?;
            Ok(logged.response.unwrap_or_default())
        }
        Err(err) => {
            release_all(&gate, record.contacts).await;
            Err(DecideError::Unavailable(format!(
                "the decision could not be logged: {err}"
            )))
        }
    }
}

/// Appends the exposure of a logged decision again (a no-op unless the first append failed).
async fn expose_logged(
    decider: &Decider,
    config: &DecisionConfig,
    logged: &DecisionRecord,
) -> Result<(), DecideError> {
    let (Some(request), Some(response)) = (&logged.request, &logged.response) else {
        return Ok(());
    };
    let Some(customer) = &request.customer else {
        return Ok(());
    };
    let facts = ExposureFacts {
        config,
        journey_stage: JourneyStage::Unspecified,
        predicted_clv: logged.customer_scores.get("clv").copied(),
        proactive: !logged.signal_id.is_empty(),
    };
    append_exposure(
        decider,
        &exposure_record(customer, request, response, &facts),
    )
    .await
    .map_err(|err| {
        DecideError::Unavailable(format!(
            "the decision's exposure could not be logged: {err}"
        ))
    })
}

async fn release_all(gate: &LiveGate<'_>, contacts: Vec<iee_api::decide::ContactVerdict>) {
    for mut verdict in contacts {
        if verdict.reserved && !verdict.released {
            gate.release(&mut verdict).await;
        }
    }
}

/// Where a decision comes from, for proactive decisions.
#[derive(Debug, Clone, Default)]
pub(crate) struct Provenance {
    /// A fixed decision id (proactive decisions derive it from the signal).
    pub decision_id: Option<String>,
    /// The triggering signal.
    pub signal_id: String,
    /// The trigger.
    pub trigger: String,
}
