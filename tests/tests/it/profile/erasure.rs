//! Erasure of a customer (right to be forgotten): every Redis key naming it or its linked
//! anonymous id goes, and its later events are refused.

use iee_api::{
    ingest::{IdentifyRequest, TouchpointApi},
    pb::common::{Channel, Event},
    profile::{
        EraseCustomerRequest, GetProfileRequest, ProfileApi, ReserveContactRequest,
        reserve_contact_response::Verdict,
    },
    shard::{customer_key, shard_of},
};
use iee_store::keys;
use iee_test_support::wait_until;
use iee_tests::{Backend, ProfileNodes, TEST_SHARDS, TestCluster, event};

use super::support::{
    Ledger, SETTLE, TENANT, anonymous, customer, ingest_into, ingest_one, purchase, read_applied,
    redis_url, shard_of_customer, text,
};

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
