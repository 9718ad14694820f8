//! Admission of every RPC, before the service does any work: the caller's token must allow
//! the tenants the request acts on ([`crate::auth`]), and the request must fit the tenants'
//! size and rate limits ([`crate::limits`]).
//!
//! The server's interceptor authenticates the call and leaves an [`Admission`] in the request's
//! extensions; [`crate::serve_unary`] (and stream handlers, per message) then call [`admit`]
//! with the decoded request.

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use iee_api::{
    metadata::{RETRY_AFTER_METADATA_KEY, retry_after_ms},
    tenancy::TenantScoped,
};
use iee_telemetry::MetricsRegistry;
use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{counter::Counter, family::Family},
};
use tonic::{Request, Status, metadata::MetadataValue};

use crate::{
    auth::{Authenticator, Principal},
    limits::{Refusal, TenantLimiter},
};

/// What a server knows about one call before decoding it: who is calling, and the limits.
#[derive(Debug, Clone)]
pub struct Admission {
    /// The caller; `None` when authentication is off.
    pub principal: Option<Principal>,
    limits: Arc<TenantLimiter>,
    metrics: AdmissionMetrics,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    reason: &'static str,
}

/// `iee_admission_refusals_total{reason}`: calls refused before reaching a service, by reason
/// (`unauthenticated`, `permission_denied`, `rate_limited`, `too_large`).
#[derive(Clone, Debug, Default)]
pub struct AdmissionMetrics {
    refusals: Family<ReasonLabels, Counter>,
}

impl AdmissionMetrics {
    /// Registers the metrics in `registry`.
    pub fn register(&self, registry: &MetricsRegistry) {
        registry.register(
            "iee_admission_refusals",
            "Calls refused before reaching a service: bad or missing token, another tenant's data, over a tenant's rate or size limit",
            self.refusals.clone(),
        );
    }

    /// Counts `status` under `reason` and returns it.
    fn refused(&self, reason: &'static str, status: Status) -> Status {
        let _ = self.refusals.get_or_create(&ReasonLabels { reason }).inc();
        status
    }

    /// Counts a refusal of [`authorize`] (UNAUTHENTICATED or PERMISSION_DENIED).
    fn unauthorized(&self, status: Status) -> Status {
        let reason = if status.code() == tonic::Code::Unauthenticated {
            "unauthenticated"
        } else {
            "permission_denied"
        };
        self.refused(reason, status)
    }
}

/// The interceptor of a server: authenticates every call (UNAUTHENTICATED for an unknown
/// token; a call without one is let through as anonymous, so health checks and reflection
/// work) and attaches the [`Admission`].
pub(crate) fn interceptor(
    auth: Option<Arc<Authenticator>>,
    limits: Arc<TenantLimiter>,
    metrics: AdmissionMetrics,
) -> impl FnMut(Request<()>) -> Result<Request<()>, Status> + Clone {
    move |mut request: Request<()>| {
        let principal = match &auth {
            Some(auth) => Some(
                auth.authenticate(request.metadata())
                    .map_err(|status| metrics.refused("unauthenticated", status))?,
            ),
            None => None,
        };
        request.extensions_mut().insert(Admission {
            principal,
            limits: limits.clone(),
            metrics: metrics.clone(),
        });
        Ok(request)
    }
}

/// Admits `request` (a decoded message of a call that carried `extensions`): PERMISSION_DENIED
/// or UNAUTHENTICATED if the caller may not act on its tenants, RESOURCE_EXHAUSTED (with
/// `retry-after-ms` where waiting helps) if it breaks a limit. Calls that did not come through
/// an IEE server (no [`Admission`]) are admitted.
pub fn admit<R>(extensions: &tonic::Extensions, request: &R) -> Result<(), Status>
where
    R: TenantScoped + prost::Message,
{
    let Some(admission) = extensions.get::<Admission>() else {
        return Ok(());
    };
    let totals = request.tenant_totals();
    authorize(admission.principal.as_ref(), &totals)
        .map_err(|s| admission.metrics.unauthorized(s))?;
    let bytes = request.encoded_len();
    let now = Instant::now();
    for (tenant, units) in &totals {
        let checked = admission
            .limits
            .check_size(tenant, bytes)
            .and_then(|()| admission.limits.take(tenant, *units, now));
        if let Err(refusal) = checked {
            let reason = match refusal {
                Refusal::TooLarge { .. } => "too_large",
                Refusal::Rate { .. } | Refusal::TooManyUnits { .. } => "rate_limited",
            };
            return Err(admission.metrics.refused(reason, refused(tenant, &refusal)));
        }
    }
    Ok(())
}

/// Longest a rate refusal is held back before it is answered.
pub const MAX_HOLD: Duration = Duration::from_millis(250);
/// Most refusals held back at once per server; beyond, refusals are answered at once.
const MAX_HELD: usize = 1_024;

/// Refusals being held back now, over the whole process.
static HELD: AtomicUsize = AtomicUsize::new(0);

/// Answers a refusal of [`admit`]: a rate refusal (RESOURCE_EXHAUSTED with `retry-after-ms`)
/// is held back for its retry delay, at most [`MAX_HOLD`], before it is sent. A client that
/// retries at once, ignoring the delay, is thereby slowed to its own concurrency per hold
/// instead of turning refusals into a second flood that costs the server as much as serving
/// (a tarpit). Other refusals, and refusals beyond [`MAX_HELD`] held at once, are answered at
/// once. Drop the request before awaiting this.
pub async fn hold_refusal(status: Status) -> Status {
    let delay = retry_after_ms(&status)
        .filter(|_| status.code() == tonic::Code::ResourceExhausted)
        .map(|ms| Duration::from_millis(ms).min(MAX_HOLD));
    let Some(delay) = delay else {
        return status;
    };
    if HELD.fetch_add(1, Ordering::AcqRel) < MAX_HELD {
        tokio::time::sleep(delay).await;
    }
    HELD.fetch_sub(1, Ordering::AcqRel);
    status
}

/// Refuses a call without a token when authentication is on (for streams, at open, before any
/// message is read); [`admit`] checks each message's tenants.
pub fn authenticated(extensions: &tonic::Extensions) -> Result<(), Status> {
    match extensions.get::<Admission>() {
        Some(
            admission @ Admission {
                principal: Some(Principal::Anonymous),
                ..
            },
        ) => authorize(Some(&Principal::Anonymous), &[])
            .map_err(|s| admission.metrics.unauthorized(s)),
        _ => Ok(()),
    }
}

fn authorize(principal: Option<&Principal>, totals: &[(String, u32)]) -> Result<(), Status> {
    match principal {
        None | Some(Principal::Service) => Ok(()),
        Some(Principal::Anonymous) => Err(Status::unauthenticated(
            "a bearer token is required: send `authorization: Bearer <token>`",
        )),
        Some(Principal::Tenant(own)) => {
            if totals.is_empty() {
                return Err(Status::permission_denied(
                    "this request acts on every tenant, which only a service token may do",
                ));
            }
            match totals.iter().find(|(tenant, _)| tenant != own) {
                Some((other, _)) => Err(Status::permission_denied(format!(
                    "the token of tenant `{own}` cannot act on tenant `{other}`"
                ))),
                None => Ok(()),
            }
        }
    }
}

fn refused(tenant: &str, refusal: &Refusal) -> Status {
    match refusal {
        Refusal::Rate {
            retry_after,
            rate_per_sec,
        } => {
            let ms = u64::try_from(retry_after.as_millis())
                .unwrap_or(u64::MAX)
                .max(1);
            let mut status = Status::resource_exhausted(format!(
                "tenant `{tenant}` is over its rate limit of {rate_per_sec} per second \
                 (server.limits); retry after {ms} ms"
            ));
            status
                .metadata_mut()
                .insert(RETRY_AFTER_METADATA_KEY, MetadataValue::from(ms));
            status
        }
        Refusal::TooManyUnits { units, burst } => Status::resource_exhausted(format!(
            "a request of {units} units (events) exceeds tenant `{tenant}`'s burst of {burst} \
             (server.limits); send smaller batches"
        )),
        Refusal::TooLarge { bytes, limit } => Status::resource_exhausted(format!(
            "the request is {bytes} bytes, over tenant `{tenant}`'s limit of {limit} bytes \
             (server.limits.max_request_bytes)"
        )),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::limits::LimitsConfig;
    use iee_api::pb::{common::Event, ingest::IngestRequest, profile::WatchSignalsRequest};
    use tonic::Code;

    fn counted(ext: &tonic::Extensions, reason: &'static str) -> u64 {
        let metrics = &ext.get::<Admission>().unwrap().metrics;
        metrics
            .refusals
            .get_or_create(&ReasonLabels { reason })
            .get()
    }

    fn extensions(principal: Option<Principal>, limits: &LimitsConfig) -> tonic::Extensions {
        let mut extensions = tonic::Extensions::new();
        extensions.insert(Admission {
            principal,
            limits: Arc::new(TenantLimiter::new(limits)),
            metrics: AdmissionMetrics::default(),
        });
        extensions
    }

    fn batch(tenants: &[&str]) -> IngestRequest {
        IngestRequest {
            events: tenants
                .iter()
                .map(|t| Event {
                    tenant_id: (*t).into(),
                    ..Event::default()
                })
                .collect(),
        }
    }

    #[test]
    fn a_tenant_token_acts_on_its_own_tenant_only() {
        let ext = extensions(
            Some(Principal::Tenant("a".into())),
            &LimitsConfig::default(),
        );
        admit(&ext, &batch(&["a", "a"])).unwrap();
        let mixed = admit(&ext, &batch(&["a", "b"])).unwrap_err();
        assert_eq!(mixed.code(), Code::PermissionDenied);
        assert_eq!(
            mixed.message(),
            "the token of tenant `a` cannot act on tenant `b`"
        );
        let everyone = admit(&ext, &WatchSignalsRequest::default()).unwrap_err();
        assert_eq!(everyone.code(), Code::PermissionDenied);
        let service = extensions(Some(Principal::Service), &LimitsConfig::default());
        admit(&service, &batch(&["a", "b"])).unwrap();
        admit(&service, &WatchSignalsRequest::default()).unwrap();
        let anonymous = extensions(Some(Principal::Anonymous), &LimitsConfig::default());
        assert_eq!(
            admit(&anonymous, &batch(&["a"])).unwrap_err().code(),
            Code::Unauthenticated
        );
        // No admission: not a call through an IEE server.
        admit(&tonic::Extensions::new(), &batch(&["a", "b"])).unwrap();
        assert_eq!(counted(&ext, "permission_denied"), 2);
        assert_eq!(counted(&anonymous, "unauthenticated"), 1);
        assert_eq!(counted(&service, "permission_denied"), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn rate_refusals_are_held_back_for_their_delay_at_most_max_hold() {
        let mut rate = Status::resource_exhausted("over");
        rate.metadata_mut()
            .insert(RETRY_AFTER_METADATA_KEY, MetadataValue::from(40_u64));
        let started = tokio::time::Instant::now();
        let held = hold_refusal(rate).await;
        assert_eq!(held.code(), tonic::Code::ResourceExhausted);
        assert_eq!(started.elapsed(), Duration::from_millis(40));
        let mut long = Status::resource_exhausted("over");
        long.metadata_mut()
            .insert(RETRY_AFTER_METADATA_KEY, MetadataValue::from(5_000_u64));
        let started = tokio::time::Instant::now();
        hold_refusal(long).await;
        assert_eq!(started.elapsed(), MAX_HOLD);
        // No retry delay (too large, a burst that can never pass; or not a rate refusal).
        let started = tokio::time::Instant::now();
        hold_refusal(Status::resource_exhausted("too large")).await;
        hold_refusal(Status::permission_denied("no")).await;
        assert_eq!(started.elapsed(), Duration::ZERO);
    }

    #[test]
    fn limits_answer_resource_exhausted_with_retry_information() {
        let ext = extensions(
            None,
            &LimitsConfig {
                tenant_rate_per_sec: 10,
                tenant_burst: 3,
                max_request_bytes: 40,
                tenants: Vec::new(),
            },
        );
        admit(&ext, &batch(&["a", "a", "a"])).unwrap();
        let over = admit(&ext, &batch(&["a"])).unwrap_err();
        assert_eq!(over.code(), Code::ResourceExhausted);
        let retry: u64 = over
            .metadata()
            .get(RETRY_AFTER_METADATA_KEY)
            .unwrap()
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!((1..=100).contains(&retry), "retry after {retry} ms");
        // Tenant b is not affected by a's flood.
        admit(&ext, &batch(&["b"])).unwrap();
        let big = admit(&ext, &batch(&["c"; 4])).unwrap_err();
        assert_eq!(big.code(), Code::ResourceExhausted);
        assert!(big.metadata().get(RETRY_AFTER_METADATA_KEY).is_none());
        let mut large = batch(&["d"]);
        large.events[0].event_id = "x".repeat(100);
        let too_large = admit(&ext, &large).unwrap_err();
        assert_eq!(too_large.code(), Code::ResourceExhausted);
        assert!(
            too_large.message().contains("max_request_bytes"),
            "{}",
            too_large.message()
        );
        // Counted by the limit each broke: the rate and the burst, and the size.
        assert_eq!(counted(&ext, "rate_limited"), 2);
        assert_eq!(counted(&ext, "too_large"), 1);
    }
}
