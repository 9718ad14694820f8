//! The ingest logic, independent of transport: validate each event, keep the rejected ones as
//! dead letters, deduplicate and append the good ones, answer per event.

use std::{
    sync::Arc,
    time::{Duration, Instant, SystemTime},
};

use iee_api::{
    ingest::{
        EventResult, EventStatus, IdentifyRequest, IdentifyResponse, IngestError, IngestRequest,
        IngestResponse, ListRejectedRequest, ListRejectedResponse, RejectedEvent, TouchpointApi,
    },
    pb::common::{Channel, DeadLetter, Event, LogRecord, Rejection, RejectionCode},
    shard::{customer_key, shard_of, shard_of_event},
};
use iee_store::{AppendOutcome, AppendRequest, LinkOutcome, StoreError, Stores};
use prost::Message;
use tokio::sync::Semaphore;

use crate::{
    IngestConfig,
    metrics::{IngestMetrics, OutcomeLabels, RpcLabel},
    validate::{Limits, check_id, check_occurred_at, valid_tenant, validate_event},
};

/// Tenant bucket for events rejected before their tenant could be trusted.
pub const INVALID_TENANT_BUCKET: &str = "_invalid";

/// How a batch waits for capacity when too many events are in flight.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Admission {
    /// Wait at most this long, then RESOURCE_EXHAUSTED (unary calls).
    WaitUpTo(Duration),
    /// Wait as long as it takes (streams: the wait is their backpressure).
    Wait,
}

/// The ingest service's logic.
pub struct Ingestor {
    config: IngestConfig,
    limits: Limits,
    shard_count: u32,
    stores: Stores,
    capacity: Arc<Semaphore>,
    pub(crate) metrics: IngestMetrics,
}

impl std::fmt::Debug for Ingestor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ingestor")
            .field("shard_count", &self.shard_count)
            .finish()
    }
}

fn unavailable(err: StoreError) -> IngestError {
    match err {
        StoreError::Unavailable(msg) => IngestError::Unavailable(msg),
        StoreError::Backend(msg) | StoreError::Config(msg) | StoreError::Conflict(msg) => {
            IngestError::Internal(msg)
        }
    }
}

fn now_timestamp(now: SystemTime) -> prost_types::Timestamp {
    prost_types::Timestamp::from(now)
}

fn reason_label(code: i32) -> &'static str {
    match RejectionCode::try_from(code) {
        Ok(RejectionCode::MissingField) => "missing_field",
        Ok(RejectionCode::InvalidValue) => "invalid_value",
        Ok(RejectionCode::OutOfRange) => "out_of_range",
        Ok(RejectionCode::TooLarge) => "too_large",
        Ok(RejectionCode::UnknownEnum) => "unknown_enum",
        Ok(RejectionCode::FutureTimestamp) => "future_timestamp",
        _ => "other",
    }
}

impl Ingestor {
    pub(crate) fn new(
        config: IngestConfig,
        shard_count: u32,
        stores: Stores,
        metrics: IngestMetrics,
    ) -> Self {
        Self {
            limits: Limits::from(&config),
            capacity: Arc::new(Semaphore::new(config.max_in_flight_events)),
            config,
            shard_count,
            stores,
            metrics,
        }
    }

    /// The configuration in force.
    pub fn config(&self) -> &IngestConfig {
        &self.config
    }

    /// Checks the event log answers.
    pub async fn ping(&self) -> Result<(), IngestError> {
        self.stores.log.ping().await.map_err(unavailable)
    }

    /// Ingests one batch: the core of `Ingest` and of each `IngestStream` batch.
    pub(crate) async fn ingest_batch(
        &self,
        events: Vec<Event>,
        admission: Admission,
        rpc: &'static str,
    ) -> Result<IngestResponse, IngestError> {
        if events.len() > self.config.max_batch_events {
            return Err(IngestError::invalid(
                "events",
                format!(
                    "at most {} events per batch, got {}",
                    self.config.max_batch_events,
                    events.len()
                ),
            ));
        }
        let started = Instant::now();
        // Bounded by max_batch_events, which config validation keeps within the semaphore.
        let permits = u32::try_from(events.len().max(1)).unwrap_or(u32::MAX);
        let _permit = match admission {
            Admission::Wait => self.capacity.acquire_many(permits).await.ok(),
            Admission::WaitUpTo(limit) => {
                match tokio::time::timeout(limit, self.capacity.acquire_many(permits)).await {
                    Ok(permit) => permit.ok(),
                    Err(_) => {
                        self.metrics.overloaded.inc();
                        return Err(IngestError::ResourceExhausted {
                            reason: format!(
                                "more than {} events in flight",
                                self.config.max_in_flight_events
                            ),
                            retry_after: limit * 2,
                        });
                    }
                }
            }
        };
        let response = self.process(events).await;
        self.metrics
            .batch_duration
            .get_or_create(&RpcLabel { rpc })
            .observe(started.elapsed().as_secs_f64());
        if matches!(response, Err(IngestError::Unavailable(_))) {
            self.metrics.log_unavailable.inc();
        }
        response
    }

    async fn process(&self, events: Vec<Event>) -> Result<IngestResponse, IngestError> {
        let now = SystemTime::now();
        let received_at = now_timestamp(now);
        let traceparent = iee_telemetry::current_traceparent();
        let count = events.len();
        self.metrics.batch_events.observe(count as f64);
        let mut results: Vec<EventResult> = Vec::with_capacity(count);
        let mut appends: Vec<AppendRequest> = Vec::with_capacity(count);
        let mut append_index: Vec<usize> = Vec::with_capacity(count);
        let mut dead: Vec<(String, Vec<u8>)> = Vec::new();

        for (index, event) in events.into_iter().enumerate() {
            let mut result = EventResult {
                index: u32::try_from(index).unwrap_or(u32::MAX),
                event_id: event.event_id.clone(),
                ..Default::default()
            };
            match validate_event(&event, &self.limits, now) {
                Ok(()) => {
                    let shard = shard_of_event(&event, self.shard_count);
                    result.shard = shard;
                    append_index.push(index);
                    appends.push(AppendRequest {
                        shard,
                        tenant_id: event.tenant_id.clone(),
                        event_id: event.event_id.clone(),
                        payload: LogRecord {
                            event: Some(event),
                            received_at: Some(received_at),
                            traceparent: traceparent.clone(),
                            ..LogRecord::default()
                        }
                        .encode_to_vec(),
                    });
                }
                Err(mut rejection) => {
                    rejection.field = if rejection.field.is_empty() {
                        format!("events[{index}]")
                    } else {
                        format!("events[{index}].{}", rejection.field)
                    };
                    let bucket = if valid_tenant(&event.tenant_id) {
                        event.tenant_id.clone()
                    } else {
                        INVALID_TENANT_BUCKET.to_owned()
                    };
                    dead.push((
                        bucket,
                        DeadLetter {
                            event: Some(event),
                            rejection: Some(rejection.clone()),
                            rejected_at: Some(received_at),
                        }
                        .encode_to_vec(),
                    ));
                    result.status = EventStatus::Rejected as i32;
                    result.rejection = Some(rejection);
                }
            }
            results.push(result);
        }

        // Dead letters first: if they cannot be kept, nothing of the batch is acknowledged.
        self.stores
            .dead_letters
            .put(&dead, self.config.dead_letter_retention)
            .await
            .map_err(unavailable)?;
        let outcomes = self
            .stores
            .log
            .append(&appends, Duration::from_secs(self.config.dedup_window_secs))
            .await
            .map_err(unavailable)?;

        let mut response = IngestResponse::default();
        for (index, outcome) in append_index.into_iter().zip(outcomes) {
            let result = &mut results[index];
            match outcome {
                AppendOutcome::Appended(offset) => {
                    result.status = EventStatus::Accepted as i32;
                    result.offset = offset;
                }
                AppendOutcome::Duplicate(offset) => {
                    result.status = EventStatus::Duplicate as i32;
                    result.offset = offset;
                }
            }
        }
        // Count first, then touch each metric series once per batch, not once per event.
        let mut rejected_by_reason: Vec<(&'static str, u64)> = Vec::new();
        for result in &results {
            match EventStatus::try_from(result.status) {
                Ok(EventStatus::Accepted) => response.accepted += 1,
                Ok(EventStatus::Duplicate) => response.duplicates += 1,
                _ => {
                    response.rejected += 1;
                    let reason = reason_label(result.rejection.as_ref().map_or(0, |r| r.code));
                    match rejected_by_reason.iter_mut().find(|(r, _)| *r == reason) {
                        Some((_, n)) => *n += 1,
                        None => rejected_by_reason.push((reason, 1)),
                    }
                }
            }
        }
        let count = |outcome, reason, n: u64| {
            if n > 0 {
                self.metrics
                    .events
                    .get_or_create(&OutcomeLabels { outcome, reason })
                    .inc_by(n);
            }
        };
        count("accepted", "", u64::from(response.accepted));
        count("duplicate", "", u64::from(response.duplicates));
        for (reason, n) in rejected_by_reason {
            count("rejected", reason, n);
        }
        response.results = results;
        Ok(response)
    }

    /// Everything is checked before anything is written, so a bad request links nothing.
    fn check_identify(
        &self,
        request: &IdentifyRequest,
        now: SystemTime,
    ) -> Result<(), IngestError> {
        let as_error = |r: Rejection| IngestError::invalid(r.field, r.reason);
        if !valid_tenant(&request.tenant_id) {
            return Err(IngestError::invalid(
                "tenant_id",
                "is required: 1-64 characters of [a-z0-9_-]",
            ));
        }
        check_id("anonymous_id", &request.anonymous_id, true, false).map_err(as_error)?;
        check_id("customer_id", &request.customer_id, true, false).map_err(as_error)?;
        check_id("event_id", &request.event_id, false, true).map_err(as_error)?;
        check_id("method", &request.method, false, false).map_err(as_error)?;
        // Unspecified is allowed here (identification may happen outside any channel).
        if Channel::try_from(request.channel).is_err() {
            return Err(IngestError::invalid(
                "channel",
                format!("unknown channel {}", request.channel),
            ));
        }
        if request.occurred_at.is_some() {
            check_occurred_at(request.occurred_at.as_ref(), &self.limits, now).map_err(as_error)?;
        }
        Ok(())
    }
}

#[async_trait::async_trait]
impl TouchpointApi for Ingestor {
    async fn ingest(&self, request: IngestRequest) -> Result<IngestResponse, IngestError> {
        let wait = Duration::from_millis(self.config.overload_wait_ms);
        self.ingest_batch(request.events, Admission::WaitUpTo(wait), "Ingest")
            .await
    }

    async fn identify(&self, request: IdentifyRequest) -> Result<IdentifyResponse, IngestError> {
        let now = SystemTime::now();
        self.check_identify(&request, now)?;
        let outcome = self
            .stores
            .identities
            .link(
                &request.tenant_id,
                &request.anonymous_id,
                &request.customer_id,
            )
            .await
            .map_err(unavailable)?;
        let created = match outcome {
            LinkOutcome::Created => true,
            LinkOutcome::Existing => false,
            LinkOutcome::Conflict { customer_id } => {
                return Err(IngestError::Conflict {
                    field: "anonymous_id".to_owned(),
                    reason: format!(
                        "{:?} is already linked to customer {customer_id:?}",
                        request.anonymous_id
                    ),
                });
            }
        };
        let event_id = if request.event_id.is_empty() {
            format!("identify:{}:{}", request.anonymous_id, request.customer_id)
        } else {
            request.event_id.clone()
        };
        let mut properties = std::collections::HashMap::new();
        if !request.method.is_empty() {
            properties.insert(
                "method".to_owned(),
                iee_api::pb::common::PropertyValue {
                    kind: Some(iee_api::pb::common::property_value::Kind::StringValue(
                        request.method.clone(),
                    )),
                },
            );
        }
        let event = Event {
            event_id: event_id.clone(),
            tenant_id: request.tenant_id.clone(),
            customer_id: request.customer_id.clone(),
            anonymous_id: request.anonymous_id.clone(),
            r#type: "identify".to_owned(),
            channel: request.channel,
            occurred_at: Some(request.occurred_at.unwrap_or_else(|| now_timestamp(now))),
            properties,
            ..Default::default()
        };
        // The identify event goes to the anonymous id's shard: its owner hands the anonymous
        // profile to the known customer's shard through the log (see the profile service).
        let shard = shard_of(
            &request.tenant_id,
            &customer_key("", &request.anonymous_id),
            self.shard_count,
        );
        let payload = LogRecord {
            event: Some(event),
            received_at: Some(now_timestamp(now)),
            traceparent: iee_telemetry::current_traceparent(),
            ..LogRecord::default()
        }
        .encode_to_vec();
        let outcome = self
            .stores
            .log
            .append(
                &[AppendRequest {
                    shard,
                    tenant_id: request.tenant_id.clone(),
                    event_id,
                    payload,
                }],
                Duration::from_secs(self.config.dedup_window_secs),
            )
            .await
            .map_err(unavailable)?;
        let offset = match outcome.into_iter().next() {
            Some(AppendOutcome::Appended(o) | AppendOutcome::Duplicate(o)) => o,
            None => return Err(IngestError::Internal("append returned no outcome".into())),
        };
        Ok(IdentifyResponse {
            shard,
            offset,
            created,
        })
    }

    async fn list_rejected(
        &self,
        request: ListRejectedRequest,
    ) -> Result<ListRejectedResponse, IngestError> {
        if request.tenant_id != INVALID_TENANT_BUCKET && !valid_tenant(&request.tenant_id) {
            return Err(IngestError::invalid(
                "tenant_id",
                "is required: 1-64 characters of [a-z0-9_-]",
            ));
        }
        let page_size = match request.page_size {
            0 => 50,
            n @ 1..=1000 => n as usize,
            n => {
                return Err(IngestError::invalid(
                    "page_size",
                    format!("must be within 0..=1000, got {n}"),
                ));
            }
        };
        let before = (!request.page_token.is_empty()).then_some(request.page_token.as_str());
        if let Some(token) = before {
            let well_formed = token
                .split_once('-')
                .is_some_and(|(a, b)| a.parse::<u64>().is_ok() && b.parse::<u64>().is_ok());
            if !well_formed {
                return Err(IngestError::invalid(
                    "page_token",
                    "is not a token from a previous page",
                ));
            }
        }
        let page = self
            .stores
            .dead_letters
            .list(&request.tenant_id, before, page_size)
            .await
            .map_err(unavailable)?;
        let mut rejected = Vec::with_capacity(page.entries.len());
        for entry in page.entries {
            let letter = DeadLetter::decode(entry.payload.as_slice()).map_err(|e| {
                IngestError::Internal(format!("undecodable dead letter {}: {e}", entry.id))
            })?;
            rejected.push(RejectedEvent {
                id: entry.id,
                event: letter.event,
                rejection: letter.rejection,
                rejected_at: letter.rejected_at,
            });
        }
        Ok(ListRejectedResponse {
            rejected,
            next_page_token: page.next.unwrap_or_default(),
        })
    }
}
