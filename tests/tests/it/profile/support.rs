//! Helpers shared by the profile tests: the ledger of acknowledged events, ingest helpers,
//! reads with read-your-writes and the checks against the ledger.

use std::{
    collections::BTreeMap,
    time::{Duration, Instant},
};

use iee_api::{
    ingest::{EventStatus, IngestRequest, TouchpointApi, TouchpointClient},
    pb::common::{CustomerRef, Event, Money, PropertyValue, property_value::Kind},
    profile::{
        GetProfileRequest, GetProfileResponse, Profile, ProfileApi, ProfileClient, ProfileError,
    },
    shard::shard_of,
};
use iee_tests::{TEST_SHARDS, TestCluster, event};

pub(super) const TENANT: &str = "acme";

/// Generous: a 2-core CI machine runs several of these tests side by side.
pub(super) const SETTLE: Duration = Duration::from_secs(30);

/// Leases short enough for a failover within a few seconds (renew + margin < ttl).
pub(super) const SHORT_LEASES: [(&str, &str); 4] = [
    ("IEE_PROFILE__LEASE_TTL_MS", "1500"),
    ("IEE_PROFILE__RENEW_INTERVAL_MS", "300"),
    ("IEE_PROFILE__LEASE_SAFETY_MARGIN_MS", "300"),
    ("IEE_PROFILE__MEMBER_TTL_MS", "1500"),
];

pub(super) fn redis_url(cluster: &TestCluster) -> String {
    cluster.redis.as_ref().expect("a Redis cluster").url()
}

pub(super) fn customer(id: &str) -> CustomerRef {
    CustomerRef {
        tenant_id: TENANT.into(),
        customer_id: id.into(),
        anonymous_id: String::new(),
    }
}

pub(super) fn anonymous(id: &str) -> CustomerRef {
    CustomerRef {
        tenant_id: TENANT.into(),
        customer_id: String::new(),
        anonymous_id: id.into(),
    }
}

pub(super) fn shard_of_customer(id: &str) -> u32 {
    shard_of(TENANT, id, TEST_SHARDS)
}

pub(super) fn number(n: f64) -> PropertyValue {
    PropertyValue {
        kind: Some(Kind::NumberValue(n)),
    }
}

pub(super) fn text(s: &str) -> PropertyValue {
    PropertyValue {
        kind: Some(Kind::StringValue(s.into())),
    }
}

/// A deterministic purchase amount in cents, different per customer and sequence number.
pub(super) fn amount(customer: &str, seq: u32) -> i64 {
    let c: i64 = customer.bytes().map(i64::from).sum();
    100 + (c * 31 + i64::from(seq) * 7) % 900
}

/// A `purchase` of `customer_id` with a value and a `seq` property.
pub(super) fn purchase(customer_id: &str, seq: u32) -> Event {
    let mut e = event(&format!("{customer_id}-buy-{seq}"), customer_id);
    e.r#type = "purchase".into();
    e.value = Some(Money {
        amount_minor: amount(customer_id, seq),
        currency: "EUR".into(),
    });
    e.properties.insert("seq".into(), number(f64::from(seq)));
    e
}

/// What ingest acknowledged for one customer.
#[derive(Debug, Clone, Default)]
pub(super) struct Acked {
    pub(super) purchases: u64,
    pub(super) revenue: i64,
    /// The offset of the customer's latest acknowledged event (in its shard's log).
    pub(super) last_offset: String,
}

pub(super) type Ledger = BTreeMap<String, Acked>;

/// Ingests `events` (with a customer id each) in one batch, records every acknowledged purchase
/// in `ledger`, and returns the offsets. Every event must be accepted: ids are unique.
pub(super) async fn ingest_into(
    client: &TouchpointClient,
    events: Vec<Event>,
    ledger: &mut Ledger,
) -> Vec<String> {
    let response = client
        .ingest(IngestRequest {
            events: events.clone(),
        })
        .await
        .expect("ingest accepts the batch");
    let mut offsets = Vec::new();
    for (event, result) in events.iter().zip(&response.results) {
        assert_eq!(
            result.status,
            EventStatus::Accepted as i32,
            "event {} was not accepted: {result:?}",
            event.event_id
        );
        let acked = ledger.entry(event.customer_id.clone()).or_default();
        if event.r#type == "purchase" {
            acked.purchases += 1;
            acked.revenue += event.value.as_ref().map_or(0, |v| v.amount_minor);
        }
        acked.last_offset.clone_from(&result.offset);
        offsets.push(result.offset.clone());
    }
    offsets
}

/// One event's offset, ingested alone.
pub(super) async fn ingest_one(client: &TouchpointClient, event: Event) -> String {
    let mut ledger = Ledger::new();
    ingest_into(client, vec![event], &mut ledger)
        .await
        .pop()
        .expect("one result per event")
}

/// Reads `who` once its shard has applied the log up to `offset`, retrying through failovers
/// (no owner, node gone, the server's read-wait running out) for up to 30 s.
pub(super) async fn read_applied(
    client: &ProfileClient,
    who: &CustomerRef,
    offset: &str,
) -> GetProfileResponse {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let request = GetProfileRequest {
            customer: Some(who.clone()),
            min_applied_offset: offset.to_owned(),
        };
        match client.get_profile(request).await {
            Ok(response) => return response,
            Err(
                err @ (ProfileError::DeadlineExceeded(_)
                | ProfileError::NoOwner { .. }
                | ProfileError::Unavailable(_)
                | ProfileError::WrongOwner { .. }),
            ) => {
                assert!(
                    Instant::now() < deadline,
                    "{who:?} not readable at offset {offset} within 30 s: {err}"
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(err) => panic!("reading {who:?} failed: {err}"),
        }
    }
}

/// (purchase count, gross revenue, lifetime `purchase` events) of a profile.
pub(super) fn purchases_of(profile: &Profile) -> (u64, i64, u64) {
    let rfm = profile.rfm.clone().unwrap_or_default();
    (
        rfm.purchase_count,
        rfm.gross_revenue.map_or(0, |m| m.amount_minor),
        type_total(profile, "purchase"),
    )
}

pub(super) fn type_total(profile: &Profile, event_type: &str) -> u64 {
    profile
        .event_type_counters
        .get(event_type)
        .map_or(0, |c| c.total)
}

/// Every customer of `ledger` has exactly the acknowledged purchases and revenue, read with
/// read-your-writes at its last acknowledged offset.
pub(super) async fn assert_ledger(client: &ProfileClient, ledger: &Ledger) {
    let mut wrong = Vec::new();
    for (id, acked) in ledger {
        let response = read_applied(client, &customer(id), &acked.last_offset).await;
        let profile = response.profile.unwrap_or_default();
        let got = purchases_of(&profile);
        let want = (acked.purchases, acked.revenue, acked.purchases);
        if !response.found || got != want {
            wrong.push(format!(
                "{id} (shard {}): found {} (purchases, revenue, purchase events) {got:?}, \
                 acknowledged {want:?}",
                shard_of_customer(id),
                response.found
            ));
        }
    }
    assert!(
        wrong.is_empty(),
        "{} of {} customers differ from what ingest acknowledged:\n{}",
        wrong.len(),
        ledger.len(),
        wrong.join("\n")
    );
}
