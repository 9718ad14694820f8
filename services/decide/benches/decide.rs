//! `Decide` over gRPC with every service a separate process on loopback (private `redis-server`,
//! `iee-ingest`, one `iee-profile`, `iee-predict`, `iee-decide`), for docs/performance.md.
//!
//! - `latency`: open-loop `Decide` load (web, inbound, one action) over 10,000 customers filled
//!   through ingest, per catalogue size and rate; latency counts from each request's scheduled
//!   send time, so queueing is not hidden (no coordinated omission).
//! - `freshness`: time from sending an event to ingest until `Decide` sees the profile version
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
    decide::{DecideApi, DecideClient, DecideRequest, Direction, FilterStage, PutConfigRequest},
    ingest::{IngestRequest, TouchpointApi, TouchpointClient},
    pb::common::{Channel, CustomerRef, Event, Money, PropertyValue, property_value},
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
/// Past this many requests in flight the rate is far beyond capacity: further requests are
/// shed (counted, not sent) instead of piling up without bound.
const MAX_IN_FLIGHT: usize = 2_000;
const CLIENT_TIMEOUT: Duration = Duration::from_secs(5);
/// Client connections (HTTP/2) the load is spread over.
const CONNECTIONS: usize = 4;

struct Options {
    mode: String,
    seconds: u64,
    rates: Vec<u64>,
    actions: Vec<usize>,
    samples: usize,
}

fn list<T: std::str::FromStr>(text: &str) -> Vec<T> {
    text.split(',')
        .map(|v| v.trim().parse().ok().unwrap())
        .collect()
}

fn options() -> Options {
    let mut o = Options {
        mode: "latency".to_owned(),
        seconds: 15,
        rates: vec![1_000, 2_000, 5_000],
        actions: vec![1_000, 10_000],
        samples: 300,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().unwrap_or_else(|| panic!("{arg} needs a value"));
        match arg.as_str() {
            "latency" | "freshness" => o.mode.clone_from(&arg),
            "--seconds" => o.seconds = value().parse().unwrap(),
            "--rates" => o.rates = list(&value()),
            "--actions" => o.actions = list(&value()),
            "--samples" => o.samples = value().parse().unwrap(),
            // cargo bench adds it.
            "--bench" => {}
            other => panic!(
                "unknown argument {other}: latency [--seconds S] [--rates R,..] [--actions N,..] \
                 | freshness [--samples N]"
            ),
        }
    }
    o
}

/// A catalogue of `n` actions: a quarter web/inbound, the rest on app, email and sms in both
/// directions; most eligible, a tenth never; some applicable only on some pages.
fn catalogue(n: usize) -> String {
    const PLACES: [(&str, &str); 8] = [
        ("web", "inbound"),
        ("web", "inbound"),
        ("app", "inbound"),
        ("app", "inbound"),
        ("email", "outbound"),
        ("sms", "outbound"),
        ("email", "inbound"),
        ("app", "outbound"),
    ];
    let mut y = String::with_capacity(n * 260);
    y.push_str(
        "tenant: bench\n\
         defaults: {max_actions: 1, reservation_ttl: 5m, attribution_window: 1m, \
         decision_retention: 1m}\n\
         exploration: {mode: thompson, samples: 200}\n\
         actions:\n",
    );
    for i in 0..n {
        let (channel, direction) = PLACES[i % 8];
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
        writeln!(
            y,
            "  - {{id: a{i:05}, group: g{}, channels: [{channel}], direction: {direction}, \
             value: {}, business_weight: {}, payload: {{title: \"offer {i}\", code: C{i}}}, \
             eligibility: '{eligibility}'{applicability}}}",
            i % 5,
            1.0 + (i * 37 % 100) as f64 / 4.0,
            0.5 + (i % 7) as f64 * 0.25,
        )
        .unwrap();
    }
    y.push_str(
        "context_weights:\n\
         - {name: product-page, when: 'context.page == \"product\"', groups: [g1, g3], weight: 1.5}\n\
         contact_policies:\n\
         - {name: web-daily, channels: [web], cap: {max: 10000, window: 1d, scope: channel}}\n\
         - {name: email-weekly, channels: [email], cap: {max: 3, window: 7d, scope: channel}}\n",
    );
    y
}

fn customer(c: usize) -> Option<CustomerRef> {
    Some(CustomerRef {
        tenant_id: TENANT.to_owned(),
        customer_id: format!("c-{c}"),
        anonymous_id: String::new(),
    })
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

fn decide_request(c: usize, channel: Channel, page: &str) -> DecideRequest {
    let value = PropertyValue {
        kind: Some(property_value::Kind::StringValue(page.to_owned())),
    };
    DecideRequest {
        customer: customer(c),
        channel: channel as i32,
        touchpoint: page.to_owned(),
        direction: Direction::Inbound as i32,
        context: [("page".to_owned(), value)].into(),
        max_actions: 1,
        request_id: String::new(),
    }
}

/// Every service as its own process over one private Redis.
struct Cluster {
    _redis: RedisServer,
    stores: Stores,
    ingest: ServerProcess,
    profile: ServerProcess,
    predict: ServerProcess,
    decide: ServerProcess,
}

impl Cluster {
    async fn start() -> Self {
        let redis = RedisServer::start();
        let url = redis.url();
        let store = StoreConfig {
            backend: Backend::Redis,
            redis: RedisConfig {
                url: url.clone(),
                ..RedisConfig::default()
            },
        };
        let stores = Stores::open(&store, SHARDS).unwrap();
        let count = SHARDS.to_string();
        let shards = ("IEE_CLUSTER__SHARD_COUNT", count.as_str());
        let args = [
            "--listen",
            "127.0.0.1:0",
            "--metrics-listen",
            "",
            "--redis-url",
            &url,
        ];
        let ingest = ServerProcess::spawn("iee-ingest", &args, &[shards]);
        let node = ("IEE_PROFILE__NODE_ID", "bench-profile");
        let profile = ServerProcess::spawn("iee-profile", &args, &[shards, node]);
        let all: Vec<u32> = (0..SHARDS).collect();
        wait_until(
            Duration::from_secs(60),
            "the profile node to own every shard",
            || {
                let (stores, all) = (stores.clone(), all.clone());
                async move {
                    let owners = stores.leases.owners(&all).await.ok()?;
                    owners.iter().all(Option::is_some).then_some(())
                }
            },
        )
        .await;
        let seeds = format!("[\"{}\"]", profile.addr);
        let predict = ServerProcess::spawn(
            "iee-predict",
            &args,
            &[shards, ("IEE_PREDICT__PROFILE_SEEDS", &seeds)],
        );
        let (predict_at, ingest_at) = (predict.endpoint(), ingest.endpoint());
        let decide = ServerProcess::spawn(
            "iee-decide",
            &args,
            &[
                shards,
                ("IEE_DECIDE__PROFILE_SEEDS", &seeds),
                ("IEE_DECIDE__PREDICT_ENDPOINT", &predict_at),
                ("IEE_DECIDE__INGEST_ENDPOINT", &ingest_at),
                ("IEE_DECIDE__PROACTIVE", "false"),
            ],
        );
        Self {
            _redis: redis,
            stores,
            ingest,
            profile,
            predict,
            decide,
        }
    }

    async fn clients(&self) -> Vec<DecideClient> {
        let mut clients = Vec::new();
        for _ in 0..CONNECTIONS {
            clients.push(DecideClient::connect(self.decide.endpoint()).await.unwrap());
        }
        clients
    }

    /// Activates a catalogue of `n` actions; returns its version.
    async fn configure(&self, client: &DecideClient, n: usize, expected: &str) -> String {
        let yaml = catalogue(n);
        let put = client
            .put_config(PutConfigRequest {
                tenant_id: TENANT.to_owned(),
                yaml,
                expected_version: expected.to_owned(),
                validate_only: false,
            })
            .await
            .unwrap();
        assert!(
            put.errors.is_empty(),
            "configuration errors: {:?}",
            put.errors
        );
        put.version
    }

    /// Ingests `EVENTS_PER_CUSTOMER` events per customer (a purchase, page views, a second
    /// purchase for a third of them) and waits until decisions see them all.
    async fn fill(&self, client: &DecideClient) {
        let ingest = TouchpointClient::connect(self.ingest.endpoint())
            .await
            .unwrap();
        let events: Vec<Event> = (0..EVENTS_PER_CUSTOMER * CUSTOMERS)
            .map(|i| {
                let (k, c) = (i / CUSTOMERS, i % CUSTOMERS);
                event(format!("f-{c}-{k}"), c, k == 0 || (k == 3 && c % 3 == 0))
            })
            .collect();
        for chunk in events.chunks(1_000) {
            let response = ingest
                .ingest(IngestRequest {
                    events: chunk.to_vec(),
                })
                .await
                .unwrap();
            assert_eq!(response.accepted as usize, chunk.len());
        }
        // The last batch covers every shard; a version per event applied.
        for c in CUSTOMERS - 1_000..CUSTOMERS {
            wait_until(Duration::from_secs(60), "the events to be applied", || {
                let client = client.clone();
                async move {
                    let seen = probe(&client, c).await.profile_version;
                    (seen >= EVENTS_PER_CUSTOMER as u64).then_some(())
                }
            })
            .await;
        }
    }

    async fn stop(self) {
        self.decide.signal_and_wait("TERM").await;
        self.predict.signal_and_wait("TERM").await;
        self.profile.signal_and_wait("TERM").await;
        self.ingest.signal_and_wait("TERM").await;
    }
}

/// A decision that reads the profile but has no candidates (no action is offered on push), so
/// it reserves no contact and changes nothing on the profile.
async fn probe(client: &DecideClient, c: usize) -> iee_api::decide::DecideResponse {
    let response = client
        .decide(decide_request(c, Channel::Push, "home"))
        .await
        .unwrap();
    assert!(response.actions.is_empty() && response.filtered.is_empty());
    response
}

/// What one decision of the catalogue goes through, from a product page and a home page.
async fn describe(cluster: &Cluster, client: &DecideClient, n: usize) -> String {
    let mut out = format!("- {n} actions:");
    for page in ["product", "home"] {
        let r = client
            .decide(decide_request(7, Channel::Web, page))
            .await
            .unwrap();
        let at = |stage: FilterStage| {
            r.filtered
                .iter()
                .filter(|f| f.stage == stage as i32)
                .count()
        };
        let cut = r
            .filtered
            .iter()
            .filter(|f| f.reason.starts_with("beyond the"))
            .count();
        let offered = r.actions.len() + r.filtered.len();
        let scored = offered - at(FilterStage::Eligibility) - at(FilterStage::Applicability) - cut;
        let record = cluster
            .stores
            .decisions
            .get_decision(TENANT, &r.decision_id)
            .await
            .unwrap()
            .map_or(0, |b| b.len());
        write!(
            out,
            " {page} page: {offered} web/inbound candidates, {} fail eligibility, {} \
             applicability, {cut} cut before scoring, {scored} scored, response {:.0} KB, \
             logged record {:.0} KB, degraded {:?}, returned {:?}, refused {:?};",
            at(FilterStage::Eligibility),
            at(FilterStage::Applicability),
            r.encoded_len() as f64 / 1024.0,
            record as f64 / 1024.0,
            r.degraded,
            r.actions.iter().map(|a| &a.action_id).collect::<Vec<_>>(),
            r.filtered
                .iter()
                .filter(|f| f.stage == FilterStage::ContactPolicy as i32)
                .map(|f| format!("{} {}: {}", f.action_id, f.rule, f.reason))
                .collect::<Vec<_>>(),
        )
        .unwrap();
    }
    out
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

/// Open loop: request `i` is due at `i / rate` s and sent then by its own task, whatever is
/// still in flight; its latency counts from that due time.
async fn open_loop(
    clients: &[DecideClient],
    rate: u64,
    seconds: f64,
    seq: &mut usize,
) -> (Run, f64) {
    let mut run = Run {
        hist: Some(Histogram::<u64>::new(3).unwrap()),
        ..Run::default()
    };
    let n = (rate as f64 * seconds) as u64;
    let mut tasks = JoinSet::new();
    let start = Instant::now();
    let account = |run: &mut Run, (latency, result): (Duration, _)| {
        let hist = run.hist.as_mut().unwrap();
        hist.record(u64::try_from(latency.as_micros()).unwrap())
            .unwrap();
        match result {
            Ok(Ok::<iee_api::decide::DecideResponse, iee_api::decide::DecideError>(r)) => {
                run.ok += 1;
                run.no_action += u64::from(r.actions.is_empty());
                run.degraded_responses += u64::from(!r.degraded.is_empty());
                for reason in r.degraded {
                    *run.degraded.entry(reason).or_default() += 1;
                }
            }
            Ok(Err(err)) => *run.errors.entry(format!("{:?}", err.code())).or_default() += 1,
            Err(_) => {
                *run.errors
                    .entry("client timeout 5 s".to_owned())
                    .or_default() += 1
            }
        }
    };
    for i in 0..n {
        let due = start + Duration::from_nanos(i * 1_000_000_000 / rate);
        if due > Instant::now() {
            tokio::time::sleep_until(due).await;
        }
        while let Some(done) = tasks.try_join_next() {
            account(&mut run, done.unwrap());
        }
        if tasks.len() >= MAX_IN_FLIGHT {
            run.shed += 1;
            continue;
        }
        *seq += 1;
        let c = (*seq * 7_919) % CUSTOMERS;
        let request = decide_request(c, Channel::Web, PAGES[*seq % PAGES.len()]);
        let client = clients[*seq % clients.len()].clone();
        tasks.spawn(async move {
            let result = tokio::time::timeout(CLIENT_TIMEOUT, client.decide(request)).await;
            (due.elapsed(), result)
        });
    }
    while let Some(done) = tasks.join_next().await {
        account(&mut run, done.unwrap());
    }
    (run, start.elapsed().as_secs_f64())
}

fn ms(h: &Histogram<u64>, q: f64) -> String {
    format!("{:.2}", h.value_at_quantile(q) as f64 / 1000.0)
}

fn tally(map: &BTreeMap<String, u64>) -> String {
    let parts: Vec<String> = map.iter().map(|(k, v)| format!("{k} {v}")).collect();
    if parts.is_empty() {
        "0".to_owned()
    } else {
        parts.join(", ")
    }
}

async fn latency(o: &Options) {
    let cluster = Cluster::start().await;
    let clients = cluster.clients().await;
    let mut version = cluster.configure(&clients[0], o.actions[0], "").await;
    eprintln!("filling {CUSTOMERS} customers through ingest…");
    cluster.fill(&clients[0]).await;
    let mut seq = 0;
    let (mut rows, mut setups) = (Vec::new(), Vec::new());
    for (k, &n) in o.actions.iter().enumerate() {
        if k > 0 {
            version = cluster.configure(&clients[0], n, &version).await;
        }
        setups.push(describe(&cluster, &clients[0], n).await);
        for &rate in &o.rates {
            eprintln!(
                "{n} actions at {rate}/s: 2 s warm-up, {} s measured…",
                o.seconds
            );
            open_loop(&clients, rate, 2.0, &mut seq).await;
            let (run, elapsed) = open_loop(&clients, rate, o.seconds as f64, &mut seq).await;
            let h = run.hist.as_ref().unwrap();
            let degraded = if run.degraded_responses == 0 {
                "0".to_owned()
            } else {
                format!("{} ({})", run.degraded_responses, tally(&run.degraded))
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
        "Decide over gRPC, every service its own process on loopback (2-core machine, the \
         load generator on it too): a private redis-server, iee-ingest, one iee-profile owning \
         all {SHARDS} shards, iee-predict (built-in models), iee-decide (proactive off, \
         default timeouts: profile 50 ms, predict 50 ms, reserve 100 ms). {CUSTOMERS} \
         customers filled through ingest ({EVENTS_PER_CUSTOMER} events each: purchases and \
         page views). Requests: web, inbound, touchpoint = context page (home | product | \
         cart), max_actions 1, customers spread over all {CUSTOMERS}; open loop ({} s per row \
         after a 2 s warm-up, latency from the scheduled send time, {CONNECTIONS} HTTP/2 \
         connections, client timeout 5 s, requests beyond {MAX_IN_FLIGHT} in flight shed). \
         Catalogue: a quarter web/inbound, eligibility rules over the profile (a tenth never \
         eligible), applicability over the page for half, web cap 10,000 a day (every \
         decision reserves a contact), Thompson exploration with 200 samples, decision \
         retention 1 m. One scoring call takes at most 1,000 actions (the rest are cut by \
         static weight before scoring).\n",
        o.seconds
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

async fn freshness(o: &Options) {
    let cluster = Cluster::start().await;
    let clients = cluster.clients().await;
    let client = &clients[0];
    cluster.configure(client, 1_000, "").await;
    eprintln!("filling {CUSTOMERS} customers through ingest…");
    cluster.fill(client).await;
    // A web decision reserves a contact, which is itself a profile change: its version moves
    // without any event, so freshness is read with probes that reserve nothing.
    let mut web = [0; 2];
    for seen in &mut web {
        let request = decide_request(3, Channel::Web, "product");
        *seen = client.decide(request).await.unwrap().profile_version;
    }
    let ingest = TouchpointClient::connect(cluster.ingest.endpoint())
        .await
        .unwrap();
    let (mut fresh, mut ack) = (
        Histogram::<u64>::new(3).unwrap(),
        Histogram::<u64>::new(3).unwrap(),
    );
    let mut probes = 0_u64;
    for s in 0..o.samples {
        let c = (s * 31) % CUSTOMERS;
        let v0 = probe(client, c).await.profile_version;
        let sent = Instant::now();
        let response = ingest
            .ingest(IngestRequest {
                events: vec![event(format!("x-{s}"), c, false)],
            })
            .await
            .unwrap();
        assert_eq!(response.accepted, 1);
        ack.record(u64::try_from(sent.elapsed().as_micros()).unwrap())
            .unwrap();
        loop {
            probes += 1;
            if probe(client, c).await.profile_version > v0 {
                break;
            }
            assert!(sent.elapsed() < Duration::from_secs(10), "event never seen");
        }
        fresh
            .record(u64::try_from(sent.elapsed().as_micros()).unwrap())
            .unwrap();
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    cluster.stop().await;
    println!(
        "Freshness: time from sending one event to iee-ingest to the first Decide response \
         whose profile_version shows it, same processes as `latency` ({CUSTOMERS} customers, \
         1,000 actions), one sample at a time, Decide called back to back after the ingest ack. \
         Probes are decisions on a channel without candidates (push), because a decision that \
         returns an action reserves a contact, which bumps the profile version by itself (two \
         back-to-back web decisions of one customer saw versions {} then {}). Profile defaults: \
         log read block 100 ms, write-behind flush 25 ms (not on this path: decisions read the \
         resident actor).\n",
        web[0], web[1]
    );
    println!(
        "| samples | p50 ms | p99 ms | max ms | ingest ack p50 ms | Decide calls per sample |\n\
         |---|---|---|---|---|---|\n| {} | {} | {} | {:.2} | {} | {:.1} |",
        o.samples,
        ms(&fresh, 0.5),
        ms(&fresh, 0.99),
        fresh.max() as f64 / 1000.0,
        ms(&ack, 0.5),
        probes as f64 / o.samples as f64
    );
}

#[tokio::main]
async fn main() {
    let o = options();
    match o.mode.as_str() {
        "latency" => latency(&o).await,
        "freshness" => freshness(&o).await,
        other => panic!("unknown mode {other}: latency|freshness"),
    }
}
