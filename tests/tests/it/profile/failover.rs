//! Nodes leaving the cluster: crashed (SIGKILL), frozen past their lease (SIGSTOP/SIGCONT) and
//! stopped gracefully (SIGTERM); every acknowledged event is still counted exactly once.

use std::{
    collections::HashMap,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use iee_api::profile::{
    GetProfileRequest, Profile, ProfileApi, ProfileError,
    profile_service_client::ProfileServiceClient,
};
use iee_store::ProfileKey;
use iee_test_support::wait_until;
use iee_tests::{Backend, ProfileNodes, TestCluster};
use prost::Message;

use super::support::{
    Ledger, SETTLE, SHORT_LEASES, TENANT, assert_ledger, customer, ingest_into, purchase,
    purchases_of, redis_url, shard_of_customer,
};

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
