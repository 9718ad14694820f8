//! The profile service across processes: several `iee-profile` nodes over one real Redis, fed by
//! an ingest node, read over gRPC through the routed client. Nodes crash (SIGKILL), freeze
//! (SIGSTOP/SIGCONT) and leave gracefully (SIGTERM); profiles must still count every
//! acknowledged event exactly once. Timing figures are printed for the record, never asserted
//! tightly.

use std::{
    collections::{BTreeMap, HashMap, HashSet},
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use iee_api::{
    ingest::{EventStatus, IdentifyRequest, IngestRequest, TouchpointApi, TouchpointClient},
    pb::common::{Channel, CustomerRef, Event, Money, PropertyValue, property_value::Kind},
    profile::{
        CapScope, ContactCap, DenialReason, EraseCustomerRequest, GetProfileRequest,
        GetProfileResponse, Profile, ProfileApi, ProfileClient, ProfileError,
        ReleaseContactRequest, ReserveContactRequest, Signal, SignalKind, WatchSignalsRequest,
        profile_service_client::ProfileServiceClient, reserve_contact_response::Verdict,
    },
    shard::{customer_key, shard_of},
};
use iee_store::{ProfileKey, keys};
use iee_test_support::wait_until;
use iee_tests::{Backend, ProfileNodes, TEST_SHARDS, TestCluster, event};
use prost::Message;
use tokio_stream::StreamExt;

const TENANT: &str = "acme";

/// Generous: a 2-core CI machine runs several of these tests side by side.
const SETTLE: Duration = Duration::from_secs(30);

/// Leases short enough for a failover within a few seconds (renew + margin < ttl).
const SHORT_LEASES: [(&str, &str); 4] = [
    ("IEE_PROFILE__LEASE_TTL_MS", "1500"),
    ("IEE_PROFILE__RENEW_INTERVAL_MS", "300"),
    ("IEE_PROFILE__LEASE_SAFETY_MARGIN_MS", "300"),
    ("IEE_PROFILE__MEMBER_TTL_MS", "1500"),
];

fn redis_url(cluster: &TestCluster) -> String {
    cluster.redis.as_ref().expect("a Redis cluster").url()
}

fn customer(id: &str) -> CustomerRef {
    CustomerRef {
        tenant_id: TENANT.into(),
        customer_id: id.into(),
        anonymous_id: String::new(),
    }
}

fn anonymous(id: &str) -> CustomerRef {
    CustomerRef {
        tenant_id: TENANT.into(),
        customer_id: String::new(),
        anonymous_id: id.into(),
    }
}

fn shard_of_customer(id: &str) -> u32 {
    shard_of(TENANT, id, TEST_SHARDS)
}

fn number(n: f64) -> PropertyValue {
    PropertyValue {
        kind: Some(Kind::NumberValue(n)),
    }
}

fn text(s: &str) -> PropertyValue {
    PropertyValue {
        kind: Some(Kind::StringValue(s.into())),
    }
}

/// A deterministic purchase amount in cents, different per customer and sequence number.
fn amount(customer: &str, seq: u32) -> i64 {
    let c: i64 = customer.bytes().map(i64::from).sum();
    100 + (c * 31 + i64::from(seq) * 7) % 900
}

/// A `purchase` of `customer_id` with a value and a `seq` property.
fn purchase(customer_id: &str, seq: u32) -> Event {
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
struct Acked {
    purchases: u64,
    revenue: i64,
    /// The offset of the customer's latest acknowledged event (in its shard's log).
    last_offset: String,
}

type Ledger = BTreeMap<String, Acked>;

/// Ingests `events` (with a customer id each) in one batch, records every acknowledged purchase
/// in `ledger`, and returns the offsets. Every event must be accepted: ids are unique.
async fn ingest_into(
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
async fn ingest_one(client: &TouchpointClient, event: Event) -> String {
    let mut ledger = Ledger::new();
    ingest_into(client, vec![event], &mut ledger)
        .await
        .pop()
        .expect("one result per event")
}

/// Reads `who` once its shard has applied the log up to `offset`, retrying through failovers
/// (no owner, node gone, the server's read-wait running out) for up to 30 s.
async fn read_applied(
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
fn purchases_of(profile: &Profile) -> (u64, i64, u64) {
    let rfm = profile.rfm.clone().unwrap_or_default();
    (
        rfm.purchase_count,
        rfm.gross_revenue.map_or(0, |m| m.amount_minor),
        type_total(profile, "purchase"),
    )
}

fn type_total(profile: &Profile, event_type: &str) -> u64 {
    profile
        .event_type_counters
        .get(event_type)
        .map_or(0, |c| c.total)
}

/// Every customer of `ledger` has exactly the acknowledged purchases and revenue, read with
/// read-your-writes at its last acknowledged offset.
async fn assert_ledger(client: &ProfileClient, ledger: &Ledger) {
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

/// `n` customer ids `<prefix>-<i>` whose shard is in `shards`, and `n` whose shard is not.
fn customers_split(prefix: &str, shards: &[u32], n: usize) -> (Vec<String>, Vec<String>) {
    let (mut inside, mut outside) = (Vec::new(), Vec::new());
    for i in 0.. {
        if inside.len() >= n && outside.len() >= n {
            break;
        }
        let id = format!("{prefix}-{i}");
        let bucket = if shards.contains(&shard_of_customer(&id)) {
            &mut inside
        } else {
            &mut outside
        };
        if bucket.len() < n {
            bucket.push(id);
        }
    }
    (inside, outside)
}

/// The stored (written) profile of a customer, straight from Redis.
async fn stored_profile(nodes: &ProfileNodes, id: &str) -> Option<Profile> {
    let key = ProfileKey {
        tenant_id: TENANT.into(),
        key: id.into(),
    };
    let loaded = nodes
        .stores()
        .shard_state
        .load(shard_of_customer(id), &[key])
        .await
        .expect("profiles are readable");
    loaded
        .into_iter()
        .next()
        .flatten()
        .map(|bytes| Profile::decode(bytes.as_slice()).expect("stored profiles decode"))
}

/// Where Redis names `needle`: key names, sorted-set members, set members and hash fields.
/// Exempt: stream entries (the event log is the record of what happened, trimmed by its own
/// retention; signal payloads expire with the signal history) and string values (a profile
/// holds its own id; the identity link of an anonymous id, kept by ingest, holds the customer
/// id as its value), returned apart as the second list.
fn named_in_redis(redis: &mut redis::Connection, needle: &str) -> (Vec<String>, Vec<String>) {
    let (mut found, mut values) = (Vec::new(), Vec::new());
    let names: Vec<String> = redis::cmd("KEYS").arg("*").query(redis).unwrap();
    for name in &names {
        if name.contains(needle) {
            found.push(format!("key {name}"));
        }
        let kind: String = redis::cmd("TYPE").arg(name).query(redis).unwrap();
        let members: Vec<String> = match kind.as_str() {
            "zset" => redis::cmd("ZRANGE")
                .arg(name)
                .arg(0)
                .arg(-1)
                .query(redis)
                .unwrap(),
            "hash" => redis::cmd("HKEYS").arg(name).query(redis).unwrap(),
            "set" => redis::cmd("SMEMBERS").arg(name).query(redis).unwrap(),
            "string" => {
                let value: Vec<u8> = redis::cmd("GET").arg(name).query(redis).unwrap();
                if String::from_utf8_lossy(&value).contains(needle) {
                    values.push(name.clone());
                }
                Vec::new()
            }
            _ => Vec::new(),
        };
        found.extend(
            members
                .iter()
                .filter(|m| m.contains(needle))
                .map(|m| format!("{kind} {name} holds {m}")),
        );
    }
    (found, values)
}

/// Every signal in a shard's history.
async fn signal_history(nodes: &ProfileNodes, shard: u32) -> Vec<Signal> {
    let mut all = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = nodes
            .stores()
            .shard_state
            .read_signals(shard, after.as_deref(), 1_000)
            .await
            .expect("the signal history is readable");
        let Some(last) = page.last() else { break };
        after = Some(last.offset.clone());
        all.extend(
            page.iter()
                .map(|e| Signal::decode(e.payload.as_slice()).expect("signals decode")),
        );
    }
    all
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_of_a_node_mid_stream_loses_nothing_and_applies_nothing_twice() {
    const CUSTOMERS: usize = 300;
    const ROUNDS: u32 = 20;
    let cluster = TestCluster::start(Backend::Redis).await;
    let mut nodes = ProfileNodes::start(&redis_url(&cluster), 3, &[]).await;
    let ingest = cluster.client().await;

    // One purchase per customer per round, in the background, paced so the kill lands
    // mid-stream and the stream goes on during the failover.
    let (progress, mut rounds_done) = tokio::sync::watch::channel(0u32);
    let sender = tokio::spawn(async move {
        let ids: Vec<String> = (0..CUSTOMERS).map(|i| format!("k-{i:03}")).collect();
        let mut ledger = Ledger::new();
        for round in 0..ROUNDS {
            let events = ids.iter().map(|id| purchase(id, round)).collect();
            ingest_into(&ingest, events, &mut ledger).await;
            progress.send_replace(round + 1);
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        ledger
    });
    rounds_done.wait_for(|r| *r >= 6).await.unwrap();
    let victim = 1;
    let victim_shards = nodes.shards_of(victim).await;
    let at_kill = *rounds_done.borrow();
    let killed_at = Instant::now();
    nodes.kill(victim).await;
    nodes.wait_all_owned(SETTLE).await;
    let failover = killed_at.elapsed();
    eprintln!(
        "[record] SIGKILL of {} (shards {victim_shards:?}) after {at_kill}/{ROUNDS} rounds: \
         every shard owned again after {} ms (lease ttl 3000 ms)",
        nodes.node(victim).node_id,
        failover.as_millis()
    );
    let ledger = sender.await.unwrap();
    assert_eq!(ledger.len(), CUSTOMERS);
    assert!(
        ledger
            .keys()
            .any(|id| victim_shards.contains(&shard_of_customer(id))),
        "some customers lived on the killed node"
    );
    nodes.wait_settled(SETTLE).await;
    assert_ledger(&nodes.client(), &ledger).await;
    for i in nodes.serving() {
        eprintln!(
            "[record] {}: replays skipped {}, events applied {}",
            nodes.node(i).node_id,
            nodes
                .metric(i, "iee_profile_events_skipped_total{reason=\"replay\"}")
                .await,
            nodes.metric(i, "iee_profile_events_applied_total").await
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_paused_past_its_lease_stops_serving_and_writes_nothing_stale() {
    let cluster = TestCluster::start(Backend::Redis).await;
    let mut nodes = ProfileNodes::new(&redis_url(&cluster));
    nodes.spawn(&SHORT_LEASES);
    // Writes behind by 5 s (flushes and housekeeping), so it holds unwritten state when frozen.
    let mut slow_writer = SHORT_LEASES.to_vec();
    slow_writer.extend([
        ("IEE_PROFILE__FLUSH_INTERVAL_MS", "5000"),
        ("IEE_PROFILE__TIMER_POLL_MS", "5000"),
    ]);
    let victim = nodes.spawn(&slow_writer);
    nodes.spawn(&SHORT_LEASES);
    let settled = nodes.wait_settled(SETTLE).await;
    let victim_id = nodes.node(victim).node_id.clone();
    let epochs_before: HashMap<u32, u64> = settled.iter().map(|o| (o.shard, o.epoch)).collect();
    let victim_shards: Vec<u32> = settled
        .iter()
        .filter(|o| o.node_id == victim_id)
        .map(|o| o.shard)
        .collect();
    let (moved, stayed) = customers_split("pause", &victim_shards, 10);
    let ingest = cluster.client().await;
    let mut ledger = Ledger::new();

    let applied_before = nodes
        .metric(victim, "iee_profile_events_applied_total")
        .await;
    for seq in 0..3 {
        let events = moved
            .iter()
            .chain(&stayed)
            .map(|id| purchase(id, seq))
            .collect();
        ingest_into(&ingest, events, &mut ledger).await;
    }
    let want_applied = applied_before + 3.0 * moved.len() as f64;
    let nodes_ref = &nodes;
    wait_until(
        SETTLE,
        "the victim to apply its customers' events",
        || async move {
            (nodes_ref
                .metric(victim, "iee_profile_events_applied_total")
                .await
                >= want_applied)
                .then_some(())
        },
    )
    .await;

    nodes.pause(victim);
    let paused_at = Instant::now();
    let mut unwritten = 0;
    for id in &moved {
        let stored = stored_profile(&nodes, id).await.unwrap_or_default();
        if purchases_of(&stored).0 < ledger[id].purchases {
            unwritten += 1;
        }
    }
    eprintln!(
        "[record] frozen {victim_id} holds unwritten purchases of {unwritten}/{} customers",
        moved.len()
    );
    nodes.wait_settled(SETTLE).await;
    eprintln!(
        "[record] shards of the frozen node taken over after {} ms (lease ttl 1500 ms)",
        paused_at.elapsed().as_millis()
    );

    // While it sleeps, its former customers buy more; the new owners count everything.
    for seq in 3..6 {
        let events = moved.iter().map(|id| purchase(id, seq)).collect();
        ingest_into(&ingest, events, &mut ledger).await;
    }
    let survivors = nodes.client_of(&nodes.serving());
    assert_ledger(&survivors, &ledger).await;
    let mut stored_before = HashMap::new();
    for id in &moved {
        let (nodes, want) = (&nodes, ledger[id].purchases);
        let stored = wait_until(
            SETTLE,
            "the new owner to write the profile",
            || async move {
                stored_profile(nodes, id)
                    .await
                    .filter(|p| purchases_of(p).0 == want)
            },
        )
        .await;
        stored_before.insert(id.clone(), stored);
    }

    // On waking, the node must not answer from what it held: a read is redirected to the new
    // owner, or (once the shard is back with a new lease) shows every event.
    let probe = &moved[0];
    let mut direct = ProfileServiceClient::new(
        tonic::transport::Endpoint::from_shared(format!("http://{}", nodes.node(victim).addr))
            .unwrap()
            .connect_lazy(),
    );
    nodes.resume(victim);
    let (mut redirects, mut answers, mut unavailable) = (0, 0, 0);
    let probing_until = Instant::now() + Duration::from_secs(2);
    while Instant::now() < probing_until {
        let mut request = tonic::Request::new(GetProfileRequest {
            customer: Some(customer(probe)),
            min_applied_offset: ledger[probe].last_offset.clone(),
        });
        request.set_timeout(Duration::from_secs(5));
        match direct.get_profile(request).await {
            Ok(response) => {
                let response = response.into_inner();
                let profile = response.profile.unwrap_or_default();
                assert_eq!(
                    purchases_of(&profile).0,
                    ledger[probe].purchases,
                    "the woken node answered from stale state"
                );
                answers += 1;
            }
            Err(status) => match ProfileError::from_status(status) {
                ProfileError::WrongOwner { owner, .. } => {
                    assert_ne!(owner, nodes.node(victim).addr, "a redirect to itself");
                    redirects += 1;
                }
                ProfileError::NoOwner { .. }
                | ProfileError::Unavailable(_)
                | ProfileError::DeadlineExceeded(_) => unavailable += 1,
                err => panic!("unexpected answer from the woken node: {err}"),
            },
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    eprintln!(
        "[record] woken node, first 2 s: {redirects} redirects, {unavailable} no-owner, \
         {answers} answers (after taking its shards back)"
    );
    assert!(
        redirects + unavailable > 0,
        "the woken node answered at once, as if it still held its leases"
    );

    let settled = nodes.wait_settled(SETTLE).await;
    let lost = nodes.metric(victim, "iee_profile_shards_lost_total").await;
    let fenced = nodes
        .metric(victim, "iee_profile_fenced_writes_total")
        .await;
    eprintln!("[record] woken node: shards lost {lost}, fenced writes {fenced}");
    assert!(
        lost + fenced > 0.0,
        "the woken node did not notice it lost its shards"
    );
    for owner in &settled {
        if victim_shards.contains(&owner.shard) {
            // Taken over (one acquisition), and taken back if rendezvous gives it back.
            let min = epochs_before[&owner.shard] + if owner.node_id == victim_id { 2 } else { 1 };
            assert!(
                owner.epoch >= min,
                "shard {} epoch {} (before {})",
                owner.shard,
                owner.epoch,
                epochs_before[&owner.shard]
            );
        }
    }
    // No stale write went through: stored profiles only move forward.
    for id in &moved {
        let after = stored_profile(&nodes, id).await.expect("still stored");
        let before = &stored_before[id];
        assert!(
            after.version >= before.version && purchases_of(&after).0 >= purchases_of(before).0,
            "{id}: stored profile went back from version {} ({:?}) to {} ({:?})",
            before.version,
            purchases_of(before),
            after.version,
            purchases_of(&after)
        );
    }
    let events = moved
        .iter()
        .chain(&stayed)
        .map(|id| purchase(id, 6))
        .collect();
    ingest_into(&ingest, events, &mut ledger).await;
    assert_ledger(&nodes.client(), &ledger).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_hands_every_shard_off_long_before_its_lease_could_expire() {
    let cluster = TestCluster::start(Backend::Redis).await;
    // Leases of 60 s: only a hand-off can move the shards within the test's deadlines.
    let mut nodes = ProfileNodes::start(
        &redis_url(&cluster),
        3,
        &[("IEE_PROFILE__LEASE_TTL_MS", "60000")],
    )
    .await;
    let before = nodes.owners().await;
    let victim = 2;
    let victim_shards = nodes.shards_of(victim).await;
    let (moving, staying) = customers_split("term", &victim_shards, 10);
    let ingest = cluster.client().await;
    let mut ledger = Ledger::new();
    for seq in 0..2 {
        let events = moving
            .iter()
            .chain(&staying)
            .map(|id| purchase(id, seq))
            .collect();
        ingest_into(&ingest, events, &mut ledger).await;
    }
    assert_ledger(&nodes.client(), &ledger).await;

    // Poll a customer of a moving shard every ~20 ms through the hand-off.
    let client = nodes.client();
    let probe = customer(&moving[0]);
    let stop = Arc::new(AtomicBool::new(false));
    let poller = {
        let stop = stop.clone();
        tokio::spawn(async move {
            let (mut ok, mut errors, mut last_error) = (0u32, 0u32, None);
            let mut max_gap = Duration::ZERO;
            let mut last_ok = Instant::now();
            while !stop.load(Ordering::Relaxed) {
                let request = GetProfileRequest {
                    customer: Some(probe.clone()),
                    min_applied_offset: String::new(),
                };
                match client.get_profile(request).await {
                    Ok(response) => {
                        assert!(response.found, "the probe's profile vanished");
                        max_gap = max_gap.max(last_ok.elapsed());
                        last_ok = Instant::now();
                        ok += 1;
                    }
                    Err(err) => {
                        errors += 1;
                        last_error = Some(err);
                    }
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            (ok, errors, last_error, max_gap)
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;

    let terminated_at = Instant::now();
    let exit = nodes.terminate(victim);
    nodes.wait_all_owned(Duration::from_secs(30)).await;
    let handed_off = terminated_at.elapsed();
    let status = tokio::time::timeout(Duration::from_secs(30), exit)
        .await
        .expect("the node exits after SIGTERM")
        .unwrap();
    assert!(status.success(), "graceful exit, got {status}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::Relaxed);
    let (ok, errors, last_error, max_gap) = poller.await.unwrap();
    eprintln!(
        "[record] SIGTERM → every shard owned by the others after {} ms (lease ttl 60 s); \
         probe reads: {ok} ok, {errors} failed (last: {last_error:?}), largest gap {} ms",
        handed_off.as_millis(),
        max_gap.as_millis()
    );
    assert!(ok > 0);

    let after = nodes.owners().await;
    for (shard, (was, now)) in before.iter().zip(&after).enumerate() {
        let (was, now) = (was.as_ref().unwrap(), now.as_ref().unwrap());
        if victim_shards.contains(&(shard as u32)) {
            assert_ne!(now.node_id, was.node_id, "shard {shard} moved");
            assert_eq!(now.epoch, was.epoch + 1, "shard {shard}: one acquisition");
        } else {
            assert_eq!(
                (&now.node_id, now.epoch),
                (&was.node_id, was.epoch),
                "shard {shard} did not move"
            );
        }
    }
    let events = moving
        .iter()
        .chain(&staying)
        .map(|id| purchase(id, 2))
        .collect();
    ingest_into(&ingest, events, &mut ledger).await;
    assert_ledger(&nodes.client(), &ledger).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passivated_customers_keep_their_state_and_lose_no_message() {
    let cluster = TestCluster::start(Backend::Redis).await;
    let nodes = ProfileNodes::start(
        &redis_url(&cluster),
        1,
        &[
            ("IEE_PROFILE__PASSIVATE_AFTER_SECS", "1"),
            ("IEE_PROFILE__MAX_RESIDENT_ACTORS", "8"),
            ("IEE_PROFILE__TIMER_POLL_MS", "200"),
        ],
    )
    .await;
    let ingest = cluster.client().await;
    let client = nodes.client();
    let ids: Vec<String> = (0..40).map(|i| format!("pv-{i:02}")).collect();
    let mut ledger = Ledger::new();
    // 40 customers over at most 8 resident actors: the least recently used are passivated
    // while their next events are already on the way.
    for seq in 0..5 {
        let events = ids.iter().map(|id| purchase(id, seq)).collect();
        ingest_into(&ingest, events, &mut ledger).await;
    }
    assert_ledger(&client, &ledger).await;

    // Idle for more than a second: every actor is passivated.
    let nodes_ref = &nodes;
    let passivated = wait_until(SETTLE, "every actor to be passivated", || async move {
        let resident = nodes_ref.metric(0, "iee_profile_resident_actors").await;
        let passivations = nodes_ref.metric(0, "iee_profile_passivations_total").await;
        (resident == 0.0 && passivations > 0.0).then_some(passivations)
    })
    .await;

    // Reactivation: events and reads for passivated customers, paced across housekeeping
    // rounds so some arrive while their actors are being passivated.
    for seq in 5..10 {
        let events = ids.iter().map(|id| purchase(id, seq)).collect();
        ingest_into(&ingest, events, &mut ledger).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert_ledger(&client, &ledger).await;
    let passivations = nodes.metric(0, "iee_profile_passivations_total").await;
    let activations = nodes.metric(0, "iee_profile_activations_total").await;
    eprintln!(
        "[record] passivations {passivated} after the first phase, {passivations} in all; \
         activations {activations}"
    );
    assert!(passivations > passivated, "the second phase passivated too");
    assert!(
        activations >= 2.0 * ids.len() as f64,
        "every customer was activated again after passivation"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cart_abandonment_fires_once_from_a_durable_timer_across_a_node_kill() {
    let cluster = TestCluster::start(Backend::Redis).await;
    let mut envs = SHORT_LEASES.to_vec();
    envs.extend([
        ("IEE_PROFILE__FOLD__CART_IDLE_SECS", "2"),
        ("IEE_PROFILE__TIMER_POLL_MS", "200"),
    ]);
    let mut nodes = ProfileNodes::start(&redis_url(&cluster), 2, &envs).await;
    let id = "cart-1";
    let shard = shard_of_customer(id);
    let owner = nodes.owner_of(shard).await.expect("owned");
    let survivor = 1 - owner;

    // Watch the survivor's signals from before the failover (it streams the shards it owns).
    let watcher = nodes.client_of(&[survivor]);
    let mut stream = watcher
        .watch_signals(WatchSignalsRequest {
            tenant_id: TENANT.into(),
            kinds: vec![SignalKind::CartAbandoned as i32],
            ..Default::default()
        })
        .await
        .expect("WatchSignals opens");
    let watched = tokio::spawn(async move {
        let mut seen = Vec::new();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(40);
        while let Ok(Some(item)) = tokio::time::timeout_at(deadline, stream.next()).await {
            match item {
                Ok(signal) => seen.push(signal),
                Err(err) => panic!("the survivor's signal stream failed: {err}"),
            }
            // Any second one would arrive soon after the first.
            if !seen.is_empty() {
                let extra = tokio::time::timeout(Duration::from_secs(3), stream.next()).await;
                if let Ok(Some(Ok(signal))) = extra {
                    seen.push(signal);
                }
                break;
            }
        }
        seen
    });

    let ingest = cluster.client().await;
    let mut add = event("cart-1-add", id);
    add.r#type = "add_to_cart".into();
    add.value = Some(Money {
        amount_minor: 2_500,
        currency: "EUR".into(),
    });
    add.properties.insert("product_id".into(), text("sku-1"));
    add.properties.insert("quantity".into(), number(2.0));
    let added_at = Instant::now();
    let offset = ingest_one(&ingest, add).await;
    let client = nodes.client();
    let profile = read_applied(&client, &customer(id), &offset)
        .await
        .profile
        .unwrap_or_default();
    let cart = profile.cart.unwrap_or_default();
    assert_eq!(cart.items.len(), 1);
    assert!(!cart.abandoned);

    // Kill the owner once the timer is durable (written), before it is due.
    let mut redis = cluster.redis.as_ref().unwrap().connection();
    wait_until(SETTLE, "the cart timer to be written", || {
        let timers: Vec<(String, f64)> = redis::cmd("ZRANGE")
            .arg(keys::timers(shard))
            .arg(0)
            .arg(-1)
            .arg("WITHSCORES")
            .query(&mut redis)
            .unwrap();
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as f64;
        // The inactivity timer of the same customer is due in 30 days; the cart's in 2 s.
        let written = timers
            .iter()
            .any(|(member, due)| member.contains(id) && *due < now_ms + 10_000.0);
        async move { written.then_some(()) }
    })
    .await;
    let before_kill = added_at.elapsed();
    nodes.kill(owner).await;
    eprintln!(
        "[record] owner killed {} ms after the add_to_cart (cart idle 2000 ms)",
        before_kill.as_millis()
    );

    let client = nodes.client();
    let abandoned = wait_until(SETTLE, "the cart to be abandoned", || {
        let client = client.clone();
        async move {
            let response = client
                .get_profile(GetProfileRequest {
                    customer: Some(customer(id)),
                    min_applied_offset: String::new(),
                })
                .await
                .ok()?;
            let cart = response.profile?.cart?;
            cart.abandoned.then_some(cart)
        }
    })
    .await;
    assert_eq!(
        abandoned.items.len(),
        1,
        "the cart is kept, marked abandoned"
    );
    eprintln!(
        "[record] cart abandoned {} ms after the add_to_cart",
        added_at.elapsed().as_millis()
    );

    // Several timer polls later, still exactly one signal in the shard's history.
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let history: Vec<Signal> = signal_history(&nodes, shard)
        .await
        .into_iter()
        .filter(|s| {
            s.kind == SignalKind::CartAbandoned as i32
                && s.customer.as_ref().is_some_and(|c| c.customer_id == id)
        })
        .collect();
    assert_eq!(history.len(), 1, "exactly one cart_abandoned: {history:?}");
    let details = history[0].details.clone().expect("cart_abandoned details");
    let iee_api::pb::profile::signal::Details::CartAbandoned(details) = details else {
        panic!("cart_abandoned carries its cart: {details:?}");
    };
    assert_eq!(details.cart.unwrap_or_default().items.len(), 1);
    assert_eq!(
        nodes
            .metric(
                survivor,
                "iee_profile_signals_total{kind=\"cart_abandoned\"}"
            )
            .await,
        1.0
    );

    let streamed = watched.await.unwrap();
    let streamed: Vec<&Signal> = streamed
        .iter()
        .filter(|s| s.customer.as_ref().is_some_and(|c| c.customer_id == id))
        .collect();
    assert_eq!(
        streamed.len(),
        1,
        "WatchSignals streamed it once: {streamed:?}"
    );
    assert_eq!(streamed[0].signal_id, history[0].signal_id);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_reservations_never_exceed_the_cap() {
    let cluster = TestCluster::start(Backend::Redis).await;
    let nodes = ProfileNodes::start(&redis_url(&cluster), 2, &[]).await;
    let ingest = cluster.client().await;
    let id = "cap-1";
    let offset = ingest_one(&ingest, event("cap-1-seen", id)).await;
    let client = nodes.client();
    assert!(read_applied(&client, &customer(id), &offset).await.found);

    let reserve = |i: usize| ReserveContactRequest {
        decision_id: format!("d-{i}"),
        ..capped_reservation(id)
    };
    let mut calls = tokio::task::JoinSet::new();
    for i in 0..200 {
        let client = client.clone();
        let request = reserve(i);
        calls.spawn(async move { client.reserve_contact(request).await });
    }
    let (mut granted, mut denied) = (Vec::new(), 0);
    while let Some(answer) = calls.join_next().await {
        match answer.unwrap().expect("ReserveContact answers").verdict {
            Some(Verdict::Reservation(r)) => granted.push(r.reservation_id),
            Some(Verdict::Denial(d)) => {
                assert_eq!(d.reason, DenialReason::CapReached as i32, "{d:?}");
                assert_eq!(d.cap_name, "email-hourly");
                denied += 1;
            }
            None => panic!("a verdict is set"),
        }
    }
    assert_eq!((granted.len(), denied), (3, 197));
    assert_eq!(granted.iter().collect::<HashSet<_>>().len(), 3);

    // The cap counts pending reservations exactly: one released, one more fits, then none.
    client
        .release_contact(ReleaseContactRequest {
            customer: Some(customer(id)),
            reservation_id: granted[0].clone(),
        })
        .await
        .unwrap();
    let again = client.reserve_contact(reserve(200)).await.unwrap().verdict;
    assert!(matches!(again, Some(Verdict::Reservation(_))), "{again:?}");
    let full = client.reserve_contact(reserve(201)).await.unwrap().verdict;
    assert!(matches!(full, Some(Verdict::Denial(_))), "{full:?}");
    let profile = read_applied(&client, &customer(id), &offset)
        .await
        .profile
        .unwrap_or_default();
    let pending: usize = profile
        .contacts
        .iter()
        .filter(|c| c.channel == Channel::Email as i32)
        .map(|c| c.pending.len())
        .sum();
    assert_eq!(pending, 3);
}

/// A reservation of an e-mail contact with `id` under a cap of 3 per hour.
fn capped_reservation(id: &str) -> ReserveContactRequest {
    ReserveContactRequest {
        customer: Some(customer(id)),
        channel: Channel::Email as i32,
        action_id: "welcome".into(),
        caps: vec![ContactCap {
            name: "email-hourly".into(),
            scope: CapScope::Channel as i32,
            window: Some(prost_types::Duration {
                seconds: 3_600,
                nanos: 0,
            }),
            max_count: 3,
        }],
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reservations_of_a_customer_without_events_survive_passivation() {
    // A decision may contact a customer whose first event has not been applied yet (or who is
    // known only to the caller); the budget must hold for them too.
    let cluster = TestCluster::start(Backend::Redis).await;
    let nodes = ProfileNodes::start(
        &redis_url(&cluster),
        1,
        &[
            ("IEE_PROFILE__PASSIVATE_AFTER_SECS", "1"),
            ("IEE_PROFILE__TIMER_POLL_MS", "200"),
        ],
    )
    .await;
    let client = nodes.client();
    let id = "unseen-1";
    let mut granted = 0;
    for _ in 0..3 {
        let verdict = client
            .reserve_contact(capped_reservation(id))
            .await
            .unwrap()
            .verdict;
        granted += usize::from(matches!(verdict, Some(Verdict::Reservation(_))));
    }
    assert_eq!(granted, 3);
    let nodes_ref = &nodes;
    wait_until(
        SETTLE,
        "the customer's actor to be passivated",
        || async move {
            let resident = nodes_ref.metric(0, "iee_profile_resident_actors").await;
            let passivations = nodes_ref.metric(0, "iee_profile_passivations_total").await;
            (resident == 0.0 && passivations > 0.0).then_some(())
        },
    )
    .await;
    for _ in 0..3 {
        let verdict = client
            .reserve_contact(capped_reservation(id))
            .await
            .unwrap()
            .verdict;
        granted += usize::from(matches!(verdict, Some(Verdict::Reservation(_))));
    }
    assert_eq!(
        granted, 3,
        "the cap of 3 held across passivation (the first reservations were kept)"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn erasure_removes_every_key_of_the_customer_and_refuses_later_events() {
    let cluster = TestCluster::start(Backend::Redis).await;
    let nodes = ProfileNodes::start(&redis_url(&cluster), 2, &[]).await;
    let ingest = cluster.client().await;
    let client = nodes.client();
    // Distinctive ids, so a scan for them finds nothing else. Client event ids do not contain
    // them: dedup markers are named by event id, which the erasure cannot know (they expire
    // with the dedup window).
    let id = "erase-me-7f3a";
    let visitor = "visitor-9c1d";
    let mut ledger = Ledger::new();
    let mut events: Vec<Event> = (0..3)
        .map(|seq| {
            let mut e = purchase(id, seq);
            e.event_id = format!("ev-{seq}");
            e
        })
        .collect();
    let mut add = event("ev-cart", id);
    add.r#type = "add_to_cart".into();
    add.properties.insert("product_id".into(), text("sku-9"));
    events.push(add);
    ingest_into(&ingest, events, &mut ledger).await;
    let mut browse = event("ev-anon", "");
    browse.anonymous_id = visitor.into();
    ingest_one(&ingest, browse).await;
    ingest
        .identify(IdentifyRequest {
            tenant_id: TENANT.into(),
            anonymous_id: visitor.into(),
            customer_id: id.into(),
            // The default event id, `identify:<visitor>:<customer>`, names both ids: the
            // erasure must remove its dedup markers too.
            method: "login".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let (client_ref, offset) = (&client, ledger[id].last_offset.as_str());
    wait_until(SETTLE, "the visitor to be merged", || async move {
        let profile = read_applied(client_ref, &customer(id), offset)
            .await
            .profile?;
        let links = profile.identity?.anonymous_links;
        links.iter().any(|l| l.merged).then_some(())
    })
    .await;
    let reserved = client
        .reserve_contact(ReserveContactRequest {
            customer: Some(customer(id)),
            channel: Channel::Sms as i32,
            action_id: "winback".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(matches!(reserved.verdict, Some(Verdict::Reservation(_))));

    // Before: the customer's profile and its timers name it (so the scan below can see it).
    let mut redis = cluster.redis.as_ref().unwrap().connection();
    let redis_ref = &mut redis;
    let before = wait_until(SETTLE, "the customer's state to be written", || {
        let (named, _) = named_in_redis(redis_ref, id);
        let profile_key = keys::profile(shard_of_customer(id), TENANT, id);
        let complete = named.iter().any(|n| n == &format!("key {profile_key}"))
            && named.iter().any(|n| n.contains(":timers holds "));
        async move { complete.then_some(named) }
    })
    .await;
    eprintln!("[record] before erasure: {before:?}");

    let erased = client
        .erase_customer(EraseCustomerRequest {
            customer: Some(customer(id)),
            reason: "gdpr-article-17".into(),
        })
        .await
        .unwrap();
    assert!(erased.erased);
    assert_eq!(erased.anonymous_profiles_erased, 1);
    // The linked anonymous profile is erased through its shard's log.
    let visitor_shard = shard_of(TENANT, &customer_key("", visitor), TEST_SHARDS);
    let visitor_key = keys::profile(visitor_shard, TENANT, &customer_key("", visitor));
    wait_until(SETTLE, "the anonymous profile to be deleted", || {
        let exists: bool = redis::cmd("EXISTS")
            .arg(&visitor_key)
            .query(&mut redis)
            .unwrap();
        async move { (!exists).then_some(()) }
    })
    .await;
    let anon = client
        .get_profile(GetProfileRequest {
            customer: Some(anonymous(visitor)),
            min_applied_offset: String::new(),
        })
        .await
        .unwrap();
    assert!(!anon.found, "{anon:?}");

    // After: nothing names it any more (see `named_in_redis` for what is exempt).
    let (leftovers, values) = named_in_redis(&mut redis, id);
    eprintln!("[record] string values still naming the erased customer (exempt): {values:?}");
    assert!(
        leftovers.is_empty(),
        "the erased customer is still named in Redis:\n{}",
        leftovers.join("\n")
    );
    let (visitor_leftovers, _) = named_in_redis(&mut redis, visitor);
    assert!(
        visitor_leftovers.is_empty(),
        "its anonymous id is still named in Redis (identity link, dedup markers):\n{}",
        visitor_leftovers.join("\n")
    );

    // Later events of the erased id are refused, not made into a new profile.
    let offset = ingest_one(&ingest, purchase(id, 99)).await;
    let after = read_applied(&client, &customer(id), &offset).await;
    assert!(!after.found, "{after:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identity_merge_across_shards_is_idempotent_under_retries() {
    let cluster = TestCluster::start(Backend::Redis).await;
    let nodes = ProfileNodes::start(&redis_url(&cluster), 2, &[]).await;
    let ingest = cluster.client().await;
    let client = nodes.client();
    let id = "merge-c-1";
    let customer_shard = shard_of_customer(id);
    let visitor = (0..)
        .map(|i| format!("merge-v-{i}"))
        .find(|v| shard_of(TENANT, &customer_key("", v), TEST_SHARDS) != customer_shard)
        .unwrap();

    let browse = |n: u32| {
        let mut e = event(&format!("merge-browse-{n}"), "");
        e.anonymous_id.clone_from(&visitor);
        e
    };
    let mut ledger = Ledger::new();
    ingest_into(&ingest, vec![browse(0), browse(1), browse(2)], &mut ledger).await;
    ingest_into(&ingest, vec![purchase(id, 0), purchase(id, 1)], &mut ledger).await;
    let identify = IdentifyRequest {
        tenant_id: TENANT.into(),
        anonymous_id: visitor.clone(),
        customer_id: id.into(),
        method: "login".into(),
        ..Default::default()
    };
    // A client retrying its identify call: before and after a later anonymous event.
    let first = ingest.identify(identify.clone()).await.unwrap();
    let second = ingest.identify(identify.clone()).await.unwrap();
    let after_identify = ingest_one(&ingest, browse(3)).await;
    let third = ingest.identify(identify).await.unwrap();
    assert!(first.created && !second.created && !third.created);
    assert_eq!(
        (&second.offset, &third.offset),
        (&first.offset, &first.offset)
    );

    // The anonymous profile is a tombstone naming the customer once its shard applied the
    // later event (which it forwarded to the customer's shard).
    let anon = read_applied(&client, &anonymous(&visitor), &after_identify).await;
    assert!(anon.found);
    assert_eq!(anon.profile.unwrap_or_default().merged_into_customer_id, id);

    // Everything appended to the customer's shard so far (merge and forwarded event included).
    let tail = nodes
        .stores()
        .log
        .read(customer_shard, None, 10_000)
        .await
        .unwrap()
        .last()
        .expect("the customer's log has entries")
        .offset
        .clone();
    let profile = read_applied(&client, &customer(id), &tail)
        .await
        .profile
        .unwrap_or_default();
    let links = profile.identity.clone().unwrap_or_default().anonymous_links;
    assert_eq!(links.len(), 1, "{links:?}");
    assert_eq!(links[0].anonymous_id, visitor);
    assert!(links[0].merged);
    assert_eq!(links[0].merged_events, 3, "the visitor's three page views");
    assert_eq!(
        type_total(&profile, "page_view"),
        4,
        "3 merged + 1 forwarded"
    );
    assert_eq!(type_total(&profile, "identify"), 1);
    assert_eq!(purchases_of(&profile).0, 2);
    assert_eq!(purchases_of(&profile).2, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identity_merge_is_applied_once_when_the_anonymous_owner_crashes_mid_merge() {
    let cluster = TestCluster::start(Backend::Redis).await;
    // Writes behind by 5 s: the crashed owner has handed the visitor over (appended to the
    // customer's log) but written neither the tombstone nor its checkpoint, so the next owner
    // replays the identify event and hands the visitor over a second time.
    let mut envs = SHORT_LEASES.to_vec();
    envs.extend([
        ("IEE_PROFILE__FLUSH_INTERVAL_MS", "5000"),
        ("IEE_PROFILE__TIMER_POLL_MS", "5000"),
    ]);
    let mut nodes = ProfileNodes::start(&redis_url(&cluster), 2, &envs).await;
    let owners = nodes.owners().await;
    let owner_of = |key: &str| {
        let shard = shard_of(TENANT, key, TEST_SHARDS) as usize;
        owners[shard].as_ref().map(|o| o.node_id.clone())
    };
    // The visitor's shard on one node, the customer's on the other.
    let id = (0..)
        .map(|i| format!("crash-c-{i}"))
        .find(|c| owner_of(c).as_deref() == Some("p1"))
        .unwrap();
    let visitor = (0..)
        .map(|i| format!("crash-v-{i}"))
        .find(|v| owner_of(&customer_key("", v)).as_deref() == Some("p0"))
        .unwrap();
    let ingest = cluster.client().await;
    let client = nodes.client();
    let browse = |n: u32| {
        let mut e = event(&format!("crash-browse-{n}"), "");
        e.anonymous_id.clone_from(&visitor);
        e
    };
    let mut ledger = Ledger::new();
    ingest_into(&ingest, vec![browse(0), browse(1), browse(2)], &mut ledger).await;
    ingest_into(
        &ingest,
        vec![purchase(&id, 0), purchase(&id, 1)],
        &mut ledger,
    )
    .await;
    ingest
        .identify(IdentifyRequest {
            tenant_id: TENANT.into(),
            anonymous_id: visitor.clone(),
            customer_id: id.clone(),
            method: "login".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let after_identify = ingest_one(&ingest, browse(3)).await;
    let anon = read_applied(&client, &anonymous(&visitor), &after_identify).await;
    assert_eq!(anon.profile.unwrap_or_default().merged_into_customer_id, id);

    nodes.kill(0).await;
    nodes.wait_settled(SETTLE).await;
    // The survivor replayed the visitor's shard: still a tombstone naming the customer.
    let anon = read_applied(&nodes.client(), &anonymous(&visitor), &after_identify).await;
    assert_eq!(anon.profile.unwrap_or_default().merged_into_customer_id, id);
    eprintln!(
        "[record] the survivor handed the visitor over {} time(s) on replay (deduplicated)",
        nodes.metric(1, "iee_profile_merges_total").await
    );

    let customer_shard = shard_of_customer(&id);
    let tail = nodes
        .stores()
        .log
        .read(customer_shard, None, 10_000)
        .await
        .unwrap()
        .last()
        .expect("the customer's log has entries")
        .offset
        .clone();
    let profile = read_applied(&nodes.client(), &customer(&id), &tail)
        .await
        .profile
        .unwrap_or_default();
    let links = profile.identity.clone().unwrap_or_default().anonymous_links;
    assert_eq!(links.len(), 1, "{links:?}");
    assert_eq!(links[0].merged_events, 3);
    assert_eq!(
        type_total(&profile, "page_view"),
        4,
        "3 merged + 1 forwarded"
    );
    assert_eq!(type_total(&profile, "identify"), 1);
    assert_eq!(purchases_of(&profile), (2, ledger[&id].revenue, 2));
}
