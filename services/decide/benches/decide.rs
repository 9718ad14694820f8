//! `Decide` over gRPC with every service its own process on loopback (a private `redis-server`,
//! `iee-ingest`, one `iee-profile`, `iee-predict`, `iee-decide`), for docs/performance.md.
//!
//! - `latency`: open-loop `Decide` load (web, inbound, one action) over 10,000 customers filled
//!   through ingest, per catalogue size and rate. Each request is sent at its scheduled time
//!   by its own task and its latency counts from that time, so queueing is not hidden.
//! - `freshness`: time from sending an event to ingest until `Decide` reads the profile version
//!   it produced.
//!
//! ```text
//! cargo build --release --bins
//! cargo bench -p iee-decide --bench decide -- latency [--seconds 15] [--rates 1000,2000,5000] [--actions 1000,10000]
//! cargo bench -p iee-decide --bench decide -- freshness [--samples 300]
//! ```
#![allow(clippy::unwrap_used, clippy::print_stdout, clippy::print_stderr)]

use std::{
    collections::BTreeMap,
    fmt::Write as _,
    time::{Duration, SystemTime},
};

use hdrhistogram::Histogram;
use iee_api::{
    decide::{
        DecideApi, DecideClient, DecideRequest, DecideResponse, DecisionRecord, Direction,
        ExplainDecisionRequest, FilterStage, PutConfigRequest,
    },
    ingest::{IngestRequest, TouchpointApi, TouchpointClient},
    pb::common::{Channel, CustomerRef, Event, Money, PropertyValue, property_value::Kind},
};
use iee_store::{Backend, RedisConfig, StoreConfig, Stores};
use iee_test_support::{RedisServer, ServerProcess, wait_until};
use prost::Message;
use tokio::{task::JoinSet, time::Instant};

const SHARDS: u32 = 16;
const CUSTOMERS: usize = 10_000;
const EVENTS_PER_CUSTOMER: usize = 4;
const TENANT: &str = "bench";
const PAGES: [&str; 3] = ["home", "product", "cart"];
/// Beyond this many requests in flight the rate is far past capacity: further requests are
/// shed (counted, not sent) rather than piling up without bound.
const MAX_IN_FLIGHT: usize = 2_000;
const MINUTE: Duration = Duration::from_secs(60);
const CLIENT_TIMEOUT: Duration = Duration::from_secs(5);
/// Client HTTP/2 connections the load is spread over.
const CONNECTIONS: usize = 4;
/// The largest cap `ReserveContact` accepts with the profile defaults
/// (`profile.fold.contact_history_limit`); more than any customer reaches here.
const WEB_CAP: u32 = 50;

/// The comma-separated numbers after `--name` on the command line, else `default`. Other
/// arguments (such as the `--bench` cargo adds) are ignored.
fn numbers<T: std::str::FromStr<Err: std::fmt::Debug>>(name: &str, default: &str) -> Vec<T> {
    let args: Vec<String> = std::env::args().collect();
    let at = args.iter().position(|a| a == name);
    let text = at.map_or(default, |i| &args[i + 1]);
    text.split(',').map(|v| v.parse().unwrap()).collect()
}

/// A catalogue of `n` actions: a quarter web/inbound, the rest on app, email and sms in both
/// directions; most eligible, a tenth never; half applicable on some pages only.
fn catalogue(n: usize) -> String {
    const CHANNELS: [&str; 8] = ["web", "web", "app", "app", "email", "sms", "email", "app"];
    // Decision records expire after a minute so that Redis holds about a minute of them.
    let mut y = "tenant: bench\n\
        defaults: {max_actions: 1, attribution_window: 1m, decision_retention: 1m}\n\
        exploration: {mode: thompson, samples: 200}\nactions:\n"
        .to_owned();
    for i in 0..n {
        let channel = CHANNELS[i % 8];
        let direction = if matches!(i % 8, 4 | 5 | 7) {
            "outbound"
        } else {
            "inbound"
        };
        let eligibility = match (i / 8) % 10 {
            0..=5 => "profile.frequency.purchases >= 0.0",
            6 => "profile.activity.total >= 2.0",
            7 => "customer.known && profile.identity.known == 1.0",
            8 => "has(profile.monetary.net_revenue) && profile.monetary.net_revenue > 10.0",
            _ => "profile.frequency.purchases > 100.0",
        };
        let applicability = match (i / 3) % 4 {
            0 => ", applicability: 'context.page == \"product\"'",
            1 => ", applicability: 'context.page != \"checkout\"'",
            _ => "",
        };
        let (value, weight) = (
            1.0 + (i * 37 % 100) as f64 / 4.0,
            0.5 + (i % 7) as f64 / 4.0,
        );
        writeln!(
            y,
            "  - {{id: a{i:05}, group: g{}, channels: [{channel}], direction: {direction}, \
             value: {value}, business_weight: {weight}, payload: {{title: \"offer {i}\"}}, \
             eligibility: '{eligibility}'{applicability}}}",
            i % 5
        )
        .unwrap();
    }
    write!(
        y,
        "context_weights:\n\
         - {{name: product, when: 'context.page == \"product\"', groups: [g1, g3], weight: 1.5}}\n\
         contact_policies:\n\
         - {{name: web-daily, channels: [web], cap: {{max: {WEB_CAP}, window: 1d, scope: channel}}}}\n\
         - {{name: email-weekly, channels: [email], cap: {{max: 3, window: 7d, scope: channel}}}}\n"
    )
    .unwrap();
    y
}

fn event(id: String, c: usize, purchase: bool) -> Event {
    Event {
        event_id: id,
        tenant_id: TENANT.to_owned(),
        customer_id: format!("c-{c}"),
        r#type: if purchase { "purchase" } else { "page_view" }.to_owned(),
        channel: Channel::Web as i32,
        touchpoint: "home".to_owned(),
        occurred_at: Some(SystemTime::now().into()),
        value: purchase.then(|| Money {
            amount_minor: 2_500,
            currency: "EUR".to_owned(),
        }),
        ..Event::default()
    }
}

/// An inbound decision for customer `c` on `page` (touchpoint and `context.page`).
fn decide_request(c: usize, channel: Channel, page: &str) -> DecideRequest {
    let page_value = PropertyValue {
        kind: Some(Kind::StringValue(page.to_owned())),
    };
    DecideRequest {
        customer: Some(CustomerRef {
            tenant_id: TENANT.to_owned(),
            customer_id: format!("c-{c}"),
            anonymous_id: String::new(),
        }),
        channel: channel as i32,
        touchpoint: page.to_owned(),
        direction: Direction::Inbound as i32,
        context: [("page".to_owned(), page_value)].into(),
        max_actions: 1,
        request_id: String::new(),
    }
}

/// A decision that reads the profile but has no candidate (nothing is offered on push): it
/// reserves no contact, so it changes nothing on the profile.
async fn probe(client: &DecideClient, c: usize) -> DecideResponse {
    let response = client
        .decide(decide_request(c, Channel::Push, "home"))
        .await
        .unwrap();
    assert!(response.actions.is_empty() && response.filtered.is_empty());
    response
}

/// Every service as its own process over one private Redis.
struct Cluster {
    _redis: RedisServer,
    stores: Stores,
    processes: Vec<ServerProcess>,
    ingest_at: String,
    clients: Vec<DecideClient>,
}

impl Cluster {
    async fn start() -> Self {
        let redis = RedisServer::start();
        let url = redis.url();
        let redis_config = RedisConfig {
            url: url.clone(),
            ..RedisConfig::default()
        };
        let store = StoreConfig {
            backend: Backend::Redis,
            redis: redis_config,
        };
        let stores = Stores::open(&store, SHARDS).unwrap();
        let count = SHARDS.to_string();
        let shards = ("IEE_CLUSTER__SHARD_COUNT", count.as_str());
        let args = ["--listen", "127.0.0.1:0", "--metrics-listen", ""];
        let args = [&args[..], &["--redis-url", &url]].concat();
        let ingest = ServerProcess::spawn("iee-ingest", &args, &[shards]);
        let node = ("IEE_PROFILE__NODE_ID", "bench-profile");
        let profile = ServerProcess::spawn("iee-profile", &args, &[shards, node]);
        let all: Vec<u32> = (0..SHARDS).collect();
        wait_until(MINUTE, "every shard owned", || {
            let (stores, all) = (stores.clone(), all.clone());
            async move {
                let owners = stores.leases.owners(&all).await.ok()?;
                owners.iter().all(Option::is_some).then_some(())
            }
        })
        .await;
        let seeds = format!("[\"{}\"]", profile.addr);
        let seeds_env = ("IEE_PREDICT__PROFILE_SEEDS", seeds.as_str());
        let predict = ServerProcess::spawn("iee-predict", &args, &[shards, seeds_env]);
        let (predict_at, ingest_at) = (predict.endpoint(), ingest.endpoint());
        let envs = [
            shards,
            ("IEE_DECIDE__PROFILE_SEEDS", &seeds),
            ("IEE_DECIDE__PREDICT_ENDPOINT", &predict_at),
            ("IEE_DECIDE__INGEST_ENDPOINT", &ingest_at),
            ("IEE_DECIDE__PROACTIVE", "false"),
        ];
        let decide = ServerProcess::spawn("iee-decide", &args, &envs);
        let mut clients = Vec::new();
        for _ in 0..CONNECTIONS {
            clients.push(DecideClient::connect(decide.endpoint()).await.unwrap());
        }
        Self {
            _redis: redis,
            stores,
            processes: vec![decide, predict, profile, ingest],
            ingest_at,
            clients,
        }
    }

    /// Activates a catalogue of `n` actions over `expected`; returns its version.
    async fn configure(&self, n: usize, expected: &str) -> String {
        let request = PutConfigRequest {
            tenant_id: TENANT.to_owned(),
            yaml: catalogue(n),
            expected_version: expected.to_owned(),
            validate_only: false,
        };
        let put = self.clients[0].put_config(request).await.unwrap();
        assert!(put.errors.is_empty(), "config errors: {:?}", put.errors);
        put.version
    }

    /// Ingests `EVENTS_PER_CUSTOMER` events per customer (a purchase, page views, a second
    /// purchase for a third of them), 1,000 a request, and waits until decisions see them.
    async fn fill(&self) -> TouchpointClient {
        let ingest = TouchpointClient::connect(self.ingest_at.clone())
            .await
            .unwrap();
        let events: Vec<Event> = (0..EVENTS_PER_CUSTOMER * CUSTOMERS)
            .map(|i| {
                let (k, c) = (i / CUSTOMERS, i % CUSTOMERS);
                event(format!("f-{c}-{k}"), c, k == 0 || (k == 3 && c % 3 == 0))
            })
            .collect();
        for chunk in events.chunks(1_000) {
            let events = chunk.to_vec();
            let response = ingest.ingest(IngestRequest { events }).await.unwrap();
            assert_eq!(response.accepted as usize, chunk.len());
        }
        // The last batch covers every shard; each applied event is a profile version.
        for c in CUSTOMERS - 1_000..CUSTOMERS {
            wait_until(MINUTE, "events applied", || async move {
                let seen = probe(&self.clients[0], c).await.profile_version;
                (seen >= EVENTS_PER_CUSTOMER as u64).then_some(())
            })
            .await;
        }
        ingest
    }

    /// What one web decision goes through with this catalogue, on a product and a home page.
    async fn describe(&self, n: usize) -> String {
        let mut out = format!("- {n} actions:");
        for page in ["product", "home"] {
            let request = decide_request(7, Channel::Web, page);
            let r = self.clients[0].decide(request).await.unwrap();
            // Every action of the channel, as ExplainDecision accounts for it.
            let explained = self.clients[0]
                .explain_decision(ExplainDecisionRequest {
                    tenant_id: TENANT.into(),
                    decision_id: r.decision_id.clone(),
                    action_ids: Vec::new(),
                })
                .await
                .unwrap()
                .actions;
            let at = |stage: FilterStage| {
                let stage = stage as i32;
                explained.iter().filter(|a| a.stage == stage).count()
            };
            let cut = explained
                .iter()
                .filter(|a| a.reason.starts_with("beyond the"))
                .count();
            let (ineligible, inapplicable) =
                (at(FilterStage::Eligibility), at(FilterStage::Applicability));
            let offered = explained.len() - at(FilterStage::Candidate);
            let logged = self.stores.decisions.get_decision(TENANT, &r.decision_id);
            let bytes = logged.await.unwrap().unwrap();
            let record = DecisionRecord::decode(bytes.as_slice()).unwrap();
            let p = record.propensities.first().cloned().unwrap_or_default();
            write!(
                out,
                " on a {page} page {offered} web/inbound candidates, {ineligible} fail \
                 eligibility, {inapplicable} applicability, {cut} cut before scoring, {} \
                 scored (propensity mean {:.3}, sd {:.3}), {} returned, {} refused by contact \
                 policies; response {:.0} KB, decision record {:.0} KB;",
                record.propensities.len(),
                p.mean,
                p.stddev,
                r.actions.len(),
                at(FilterStage::ContactPolicy),
                r.encoded_len() as f64 / 1024.0,
                bytes.len() as f64 / 1024.0,
            )
            .unwrap();
        }
        out
    }

    async fn stop(self) {
        for process in self.processes {
            process.signal_and_wait("TERM").await;
        }
    }
}

#[derive(Default)]
struct Run {
    hist: Option<Histogram<u64>>,
    ok: u64,
    errors: BTreeMap<String, u64>,
    degraded: BTreeMap<String, u64>,
    degraded_responses: u64,
    no_action: u64,
    shed: u64,
}

/// What a request task hands back: the latency and either (an action was returned, the
/// degradation reasons) or the error.
type Outcome = (Duration, Result<(bool, Vec<String>), String>);

impl Run {
    fn account(&mut self, (latency, result): Outcome) {
        self.hist.as_mut().unwrap().record(micros(latency)).unwrap();
        match result {
            Ok((action, degraded)) => {
                self.ok += 1;
                self.no_action += u64::from(!action);
                self.degraded_responses += u64::from(!degraded.is_empty());
                for reason in degraded {
                    *self.degraded.entry(reason).or_default() += 1;
                }
            }
            Err(error) => *self.errors.entry(error).or_default() += 1,
        }
    }
}

/// Open loop: request `i` is due at `i / rate` s and sent then by a task of its own, whatever
/// is still in flight; its latency counts from its due time. Returns the run and its length.
async fn open_loop(clients: &[DecideClient], rate: u64, secs: f64, seq: &mut usize) -> (Run, f64) {
    let mut run = Run {
        hist: Some(Histogram::new(3).unwrap()),
        ..Run::default()
    };
    let mut tasks = JoinSet::new();
    let start = Instant::now();
    for i in 0..(rate as f64 * secs) as u64 {
        let due = start + Duration::from_nanos(i * 1_000_000_000 / rate);
        tokio::time::sleep_until(due).await;
        while let Some(done) = tasks.try_join_next() {
            run.account(done.unwrap());
        }
        if tasks.len() >= MAX_IN_FLIGHT {
            run.shed += 1;
            continue;
        }
        *seq += 1;
        let request = decide_request((*seq * 7_919) % CUSTOMERS, Channel::Web, PAGES[*seq % 3]);
        let client = clients[*seq % clients.len()].clone();
        tasks.spawn(async move {
            let result = match tokio::time::timeout(CLIENT_TIMEOUT, client.decide(request)).await {
                Ok(Ok(r)) => Ok((!r.actions.is_empty(), r.degraded)),
                Ok(Err(err)) => Err(format!("{:?}", err.code())),
                Err(_) => Err("client timeout".to_owned()),
            };
            (due.elapsed(), result)
        });
    }
    while let Some(done) = tasks.join_next().await {
        run.account(done.unwrap());
    }
    (run, start.elapsed().as_secs_f64())
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap()
}

fn ms(h: &Histogram<u64>, q: f64) -> String {
    format!("{:.2}", h.value_at_quantile(q) as f64 / 1000.0)
}

fn tally(map: &BTreeMap<String, u64>) -> String {
    let parts: Vec<String> = map.iter().map(|(k, v)| format!("{k} {v}")).collect();
    Some(parts.join(", "))
        .filter(|p| !p.is_empty())
        .unwrap_or_else(|| "0".to_owned())
}

async fn latency() {
    let seconds: u64 = numbers("--seconds", "15")[0];
    let actions: Vec<usize> = numbers("--actions", "1000,10000");
    let cluster = Cluster::start().await;
    let mut version = cluster.configure(actions[0], "").await;
    eprintln!("filling {CUSTOMERS} customers through ingest");
    cluster.fill().await;
    let (mut seq, mut rows, mut setups) = (0, Vec::new(), Vec::new());
    for (k, &n) in actions.iter().enumerate() {
        if k > 0 {
            version = cluster.configure(n, &version).await;
        }
        setups.push(cluster.describe(n).await);
        for rate in numbers("--rates", "1000,2000,5000") {
            eprintln!("{n} actions at {rate}/s");
            open_loop(&cluster.clients, rate, 2.0, &mut seq).await;
            let secs = seconds as f64;
            let (run, elapsed) = open_loop(&cluster.clients, rate, secs, &mut seq).await;
            let h = run.hist.as_ref().unwrap();
            let degraded = match run.degraded_responses {
                0 => "0".to_owned(),
                d => format!("{d} ({})", tally(&run.degraded)),
            };
            let row = format!(
                "| {n} | {rate} | {:.0} | {} | {} | {} | {} | {:.2} | {} | {} | {degraded} | {} |",
                run.ok as f64 / elapsed,
                run.ok,
                ms(h, 0.5),
                ms(h, 0.99),
                ms(h, 0.999),
                h.max() as f64 / 1000.0,
                tally(&run.errors),
                run.shed,
                run.no_action,
            );
            eprintln!("{row}");
            rows.push(row);
        }
    }
    cluster.stop().await;
    println!(
        "Decide over gRPC, every service its own process on loopback, on one 2-core machine \
         with the load generator: redis-server, iee-ingest, one iee-profile owning all \
         {SHARDS} shards, iee-predict (built-in models, nothing learnt), iee-decide (proactive \
         off, default timeouts: profile 50 ms, predict 50 ms, reserve 100 ms). {CUSTOMERS} \
         customers filled through ingest ({EVENTS_PER_CUSTOMER} events each). Requests: web, \
         inbound, max_actions 1, touchpoint and context.page cycling home/product/cart over \
         all customers; open loop, {} s per row after 2 s of warm-up, latency from the \
         scheduled send time, {CONNECTIONS} connections, client timeout {} s, requests beyond \
         {MAX_IN_FLIGHT} in flight shed. Catalogue: a quarter web/inbound, eligibility over \
         the profile (a tenth never true), applicability over the page for half, a context \
         weight, web cap {WEB_CAP}/day (never reached: each returned action reserves a \
         contact), Thompson exploration with 200 samples, decision records kept 1 min; at \
         most 1,000 actions are scored per decision (the rest cut by static weight).\n",
        seconds,
        CLIENT_TIMEOUT.as_secs()
    );
    for line in setups {
        println!("{line}");
    }
    println!(
        "\n| actions | target/s | achieved/s | ok | p50 ms | p99 ms | p99.9 ms | max ms | errors \
         | shed | degraded | no action |\n|---|---|---|---|---|---|---|---|---|---|---|---|"
    );
    for row in rows {
        println!("{row}");
    }
}

async fn freshness() {
    let samples: usize = numbers("--samples", "300")[0];
    let cluster = Cluster::start().await;
    cluster.configure(1_000, "").await;
    eprintln!("filling {CUSTOMERS} customers through ingest");
    let ingest = cluster.fill().await;
    let client = &cluster.clients[0];
    // Why probes: a decision that returns an action reserves a contact, which is itself a
    // profile change, so web decisions see new versions without any event.
    let mut web = [0; 3];
    for seen in &mut web {
        let request = decide_request(3, Channel::Web, "product");
        *seen = client.decide(request).await.unwrap().profile_version;
    }
    let mut fresh = Histogram::<u64>::new(3).unwrap();
    let mut ack = fresh.clone();
    let mut calls = 0;
    for s in 0..samples {
        let c = (s * 31) % CUSTOMERS;
        let before = probe(client, c).await.profile_version;
        let sent = Instant::now();
        let events = vec![event(format!("x-{s}"), c, false)];
        let response = ingest.ingest(IngestRequest { events }).await.unwrap();
        assert_eq!(response.accepted, 1);
        ack.record(micros(sent.elapsed())).unwrap();
        loop {
            calls += 1;
            if probe(client, c).await.profile_version > before {
                break;
            }
            assert!(sent.elapsed() < Duration::from_secs(10), "event never seen");
        }
        fresh.record(micros(sent.elapsed())).unwrap();
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    cluster.stop().await;
    println!(
        "Freshness: from sending one event to iee-ingest to the first Decide response whose \
         profile_version includes it; the same processes as `latency` ({CUSTOMERS} customers \
         filled, 1,000 actions), one sample at a time, Decide called back to back after the \
         ingest acknowledgement. The Decide calls are on push, where no action is offered: a \
         decision that returns an action reserves a contact, which changes the profile and \
         its version by itself (three web decisions of one customer in a row read versions \
         {web:?}). Profile defaults: log reads block up to 100 ms, write-behind flush every \
         25 ms (not on this path: decisions read the resident actor).\n"
    );
    println!(
        "| samples | p50 ms | p99 ms | max ms | ingest ack p50 ms | Decide calls per sample |\n\
         |---|---|---|---|---|---|\n| {} | {} | {} | {:.2} | {} | {:.1} |",
        samples,
        ms(&fresh, 0.5),
        ms(&fresh, 0.99),
        fresh.max() as f64 / 1000.0,
        ms(&ack, 0.5),
        f64::from(calls) / samples as f64
    );
}

#[tokio::main]
async fn main() {
    if std::env::args().any(|a| a == "freshness") {
        freshness().await;
    } else {
        latency().await;
    }
}
