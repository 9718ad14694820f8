//! `iee-loadtest neighbours`: does one tenant's ingest flood slow another tenant's decisions?
//!
//! A quiet tenant asks for decisions at a fixed rate (open loop: latency counts from each
//! request's scheduled time, so a stalled server cannot hide its queueing) for the whole run.
//! The run alternates quiet phases with flood phases, in which a flooding tenant sends ingest
//! batches back to back on its own connections, as fast as the server answers, ignoring
//! refusals. Alternating rounds spread slow drift of a shared machine over both sides. The
//! report compares the quiet tenant's Decide latency percentiles between the two.

use std::{
    sync::{
        Arc, Mutex, PoisonError,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant, SystemTime},
};

use anyhow::Context as _;
use hdrhistogram::Histogram;
use iee_api::{
    credentials::{AUTHORIZATION_METADATA_KEY, bearer_value},
    pb::{
        common::{Channel, CustomerRef, Event},
        decide::{
            DecideRequest, Direction, PutConfigRequest,
            decision_service_client::DecisionServiceClient,
        },
        ingest::{IngestRequest, touchpoint_service_client::TouchpointServiceClient},
    },
    tonic::{self, Code},
};
use serde::Serialize;

use crate::{
    run::{channel, check_target},
    stats::histogram,
};

/// Arguments of `iee-loadtest neighbours`.
#[derive(Debug, Clone, clap::Args)]
pub struct NeighboursArgs {
    /// The engine (ingest and decide on one address, e.g. `iee standalone`),
    /// e.g. `http://127.0.0.1:50051`.
    #[arg(long)]
    pub target: String,
    /// Allow a target that is not a loopback address.
    #[arg(long)]
    pub allow_remote: bool,
    /// The tenant whose decisions are measured.
    #[arg(long, default_value = "quiet")]
    pub quiet_tenant: String,
    /// Its bearer token, if the engine authenticates callers.
    #[arg(long, env = "IEE_QUIET_TOKEN", hide_env_values = true)]
    pub quiet_token: Option<String>,
    /// The tenant that floods the ingest path.
    #[arg(long, default_value = "noisy")]
    pub flood_tenant: String,
    /// Its bearer token, if the engine authenticates callers.
    #[arg(long, env = "IEE_FLOOD_TOKEN", hide_env_values = true)]
    pub flood_token: Option<String>,
    /// Decisions per second of the quiet tenant.
    #[arg(long, default_value_t = 100)]
    pub probe_rate: u32,
    /// Quiet/flood round pairs.
    #[arg(long, default_value_t = 3)]
    pub rounds: u32,
    /// Length of each phase, in seconds.
    #[arg(long, default_value_t = 10)]
    pub phase_secs: u64,
    /// Leading seconds of decisions left out of the statistics.
    #[arg(long, default_value_t = 3)]
    pub warmup_secs: u64,
    /// Events per flood batch.
    #[arg(long, default_value_t = 100)]
    pub flood_batch: u32,
    /// Flood requests outstanding at once (each on a loop of its own).
    #[arg(long, default_value_t = 16)]
    pub flood_in_flight: u32,
    /// Customers of each tenant.
    #[arg(long, default_value_t = 1_000)]
    pub customers: u32,
    /// Fail (exit 1) if the flood raises the quiet tenant's p99 by more than this fraction.
    #[arg(long)]
    pub max_p99_increase: Option<f64>,
    /// Where to write the JSON report.
    #[arg(long)]
    pub report: Option<std::path::PathBuf>,
}

/// Latency percentiles of one side of the comparison, in microseconds.
#[derive(Debug, Clone, Serialize)]
pub struct Latency {
    /// Decisions measured.
    pub count: u64,
    /// Decisions that failed.
    pub errors: u64,
    /// Median.
    pub p50_us: u64,
    /// 90th percentile.
    pub p90_us: u64,
    /// 99th percentile.
    pub p99_us: u64,
    /// Largest.
    pub max_us: u64,
}

/// What the flood did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Flood {
    /// Seconds the flood ran, over all flood phases.
    pub seconds: f64,
    /// Ingest requests answered OK.
    pub ok_requests: u64,
    /// Events accepted.
    pub accepted_events: u64,
    /// Requests refused with RESOURCE_EXHAUSTED.
    pub refused_requests: u64,
    /// Requests that failed otherwise.
    pub failed_requests: u64,
}

/// The result of a run.
#[derive(Debug, Clone, Serialize)]
pub struct NeighboursReport {
    /// The quiet tenant's decisions while nobody floods.
    pub quiet: Latency,
    /// The quiet tenant's decisions during the flood.
    pub flooded: Latency,
    /// `flooded.p50 / quiet.p50 - 1`.
    pub p50_increase: f64,
    /// `flooded.p99 / quiet.p99 - 1`.
    pub p99_increase: f64,
    /// The flood.
    pub flood: Flood,
}

const QUIET_CONFIG: &str = r#"
tenant: TENANT
exploration: {mode: greedy}
actions:
  - id: welcome
    channels: [web]
    direction: inbound
    value: 1
    payload: {title: "Welcome"}
  - id: offer
    channels: [web]
    direction: inbound
    value: 2
    payload: {title: "Offer"}
"#;

fn request<T>(token: Option<&str>, message: T) -> anyhow::Result<tonic::Request<T>> {
    let mut request = tonic::Request::new(message);
    if let Some(token) = token {
        request
            .metadata_mut()
            .insert(AUTHORIZATION_METADATA_KEY, bearer_value(token)?);
    }
    Ok(request)
}

/// Which side of the comparison decisions scheduled now count for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Warmup,
    Quiet,
    Flood,
}

#[derive(Debug)]
struct Side {
    latency: Histogram<u64>,
    errors: u64,
}

impl Side {
    fn new() -> Self {
        Self {
            latency: histogram(),
            errors: 0,
        }
    }

    fn summary(&self) -> Latency {
        let h = &self.latency;
        Latency {
            count: h.len(),
            errors: self.errors,
            p50_us: h.value_at_quantile(0.50),
            p90_us: h.value_at_quantile(0.90),
            p99_us: h.value_at_quantile(0.99),
            max_us: h.max(),
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Runs the comparison.
pub async fn run(args: &NeighboursArgs) -> anyhow::Result<NeighboursReport> {
    check_target(&args.target, args.allow_remote).map_err(anyhow::Error::msg)?;
    anyhow::ensure!(args.probe_rate > 0, "--probe-rate must be positive");
    anyhow::ensure!(args.rounds > 0, "--rounds must be positive");
    let probe_channel = channel(&args.target).await?;
    let quiet_token = args.quiet_token.as_deref();
    let put = DecisionServiceClient::new(probe_channel.clone())
        .put_config(request(
            quiet_token,
            PutConfigRequest {
                tenant_id: args.quiet_tenant.clone(),
                yaml: QUIET_CONFIG.replace("TENANT", &args.quiet_tenant),
                ..PutConfigRequest::default()
            },
        )?)
        .await
        .context("PutConfig for the quiet tenant")?
        .into_inner();
    anyhow::ensure!(
        put.errors.is_empty(),
        "the quiet tenant's configuration: {:?}",
        put.errors
    );

    let sides = Arc::new(Mutex::new([Side::new(), Side::new()]));
    let phase = Arc::new(Mutex::new(Phase::Warmup));
    let flooding = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicBool::new(false));
    let flood = Arc::new(FloodCounters::default());

    // The flood loops: idle while not flooding.
    let mut flood_tasks = Vec::new();
    let flood_channels = [channel(&args.target).await?, channel(&args.target).await?];
    for i in 0..args.flood_in_flight {
        let client = TouchpointServiceClient::new(flood_channels[i as usize % 2].clone());
        let (flooding, done, flood) = (flooding.clone(), done.clone(), flood.clone());
        let (tenant, token) = (args.flood_tenant.clone(), args.flood_token.clone());
        let (batch, customers) = (args.flood_batch, args.customers);
        flood_tasks.push(tokio::spawn(async move {
            let mut sequence = 0u64;
            while !done.load(Ordering::Relaxed) {
                if !flooding.load(Ordering::Relaxed) {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                    continue;
                }
                let events = (0..batch)
                    .map(|_| {
                        sequence += 1;
                        flood_event(&tenant, i, sequence, customers)
                    })
                    .collect();
                let Ok(message) = request(token.as_deref(), IngestRequest { events }) else {
                    return;
                };
                match client.clone().ingest(message).await {
                    Ok(response) => {
                        flood.ok.fetch_add(1, Ordering::Relaxed);
                        flood.accepted.fetch_add(
                            u64::from(response.into_inner().accepted),
                            Ordering::Relaxed,
                        );
                    }
                    Err(status) if status.code() == Code::ResourceExhausted => {
                        flood.refused.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(_) => {
                        flood.failed.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }));
    }

    // The probe: one decision every 1/rate seconds, each on its own task.
    let probe = {
        let (sides, phase, done) = (sides.clone(), phase.clone(), done.clone());
        let client = DecisionServiceClient::new(probe_channel);
        let (tenant, token) = (args.quiet_tenant.clone(), args.quiet_token.clone());
        let (rate, customers) = (args.probe_rate, args.customers);
        tokio::spawn(async move {
            let interval = Duration::from_secs_f64(1.0 / f64::from(rate));
            let start = tokio::time::Instant::now();
            let mut n: u64 = 0;
            while !done.load(Ordering::Relaxed) {
                let due = start + interval.mul_f64(n as f64);
                tokio::time::sleep_until(due).await;
                let side = *lock(&phase);
                let decide = DecideRequest {
                    customer: Some(CustomerRef {
                        tenant_id: tenant.clone(),
                        customer_id: format!("c-{}", n % u64::from(customers)),
                        anonymous_id: String::new(),
                    }),
                    channel: Channel::Web as i32,
                    touchpoint: "home".into(),
                    direction: Direction::Inbound as i32,
                    max_actions: 1,
                    ..DecideRequest::default()
                };
                let (client, sides) = (client.clone(), sides.clone());
                let message = request(token.as_deref(), decide);
                let scheduled = due.into_std();
                tokio::spawn(async move {
                    let result = match message {
                        Ok(message) => client.clone().decide(message).await.map(drop),
                        Err(_) => Err(tonic::Status::unauthenticated("bad token")),
                    };
                    let index = match side {
                        Phase::Warmup => return,
                        Phase::Quiet => 0,
                        Phase::Flood => 1,
                    };
                    let mut sides = lock(&sides);
                    match result {
                        Ok(()) => {
                            let us =
                                u64::try_from(scheduled.elapsed().as_micros()).unwrap_or(u64::MAX);
                            let _ = sides[index].latency.record(us.max(1));
                        }
                        Err(_) => sides[index].errors += 1,
                    }
                });
                n += 1;
            }
        })
    };

    tokio::time::sleep(Duration::from_secs(args.warmup_secs)).await;
    let phase_length = Duration::from_secs(args.phase_secs);
    let mut flood_time = Duration::ZERO;
    for round in 0..args.rounds {
        *lock(&phase) = Phase::Quiet;
        eprintln!("iee-loadtest: round {}: quiet", round + 1);
        tokio::time::sleep(phase_length).await;
        *lock(&phase) = Phase::Flood;
        flooding.store(true, Ordering::Relaxed);
        eprintln!("iee-loadtest: round {}: flood", round + 1);
        let started = Instant::now();
        tokio::time::sleep(phase_length).await;
        flooding.store(false, Ordering::Relaxed);
        flood_time += started.elapsed();
        // Decisions scheduled in the flood's wake still count for it until it has drained.
        *lock(&phase) = Phase::Warmup;
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    done.store(true, Ordering::Relaxed);
    let _ = probe.await;
    for task in flood_tasks {
        let _ = task.await;
    }
    // Let the last decisions land.
    tokio::time::sleep(Duration::from_secs(2)).await;

    let sides = lock(&sides);
    let quiet = sides[0].summary();
    let flooded = sides[1].summary();
    let increase = |a: u64, b: u64| b as f64 / a.max(1) as f64 - 1.0;
    Ok(NeighboursReport {
        p50_increase: increase(quiet.p50_us, flooded.p50_us),
        p99_increase: increase(quiet.p99_us, flooded.p99_us),
        quiet,
        flooded,
        flood: Flood {
            seconds: flood_time.as_secs_f64(),
            ok_requests: flood.ok.load(Ordering::Relaxed),
            accepted_events: flood.accepted.load(Ordering::Relaxed),
            refused_requests: flood.refused.load(Ordering::Relaxed),
            failed_requests: flood.failed.load(Ordering::Relaxed),
        },
    })
}

#[derive(Debug, Default)]
struct FloodCounters {
    ok: AtomicU64,
    accepted: AtomicU64,
    refused: AtomicU64,
    failed: AtomicU64,
}

fn flood_event(tenant: &str, task: u32, sequence: u64, customers: u32) -> Event {
    Event {
        event_id: format!("flood-{task}-{sequence}"),
        tenant_id: tenant.to_owned(),
        customer_id: format!("c-{}", sequence % u64::from(customers.max(1))),
        r#type: "page_view".into(),
        channel: Channel::Web as i32,
        touchpoint: "home".into(),
        occurred_at: Some(prost_types::Timestamp::from(SystemTime::now())),
        ..Event::default()
    }
}

/// The report as a table.
pub fn print(report: &NeighboursReport) {
    let row = |name: &str, l: &Latency| {
        println!(
            "{name:<22} {:>8} {:>7} {:>9.2} {:>9.2} {:>9.2} {:>9.2}",
            l.count,
            l.errors,
            l.p50_us as f64 / 1e3,
            l.p90_us as f64 / 1e3,
            l.p99_us as f64 / 1e3,
            l.max_us as f64 / 1e3
        );
    };
    println!(
        "{:<22} {:>8} {:>7} {:>9} {:>9} {:>9} {:>9}",
        "quiet tenant's Decide", "count", "errors", "p50 ms", "p90 ms", "p99 ms", "max ms"
    );
    row("without flood", &report.quiet);
    row("during flood", &report.flooded);
    println!(
        "increase: p50 {:+.1} %, p99 {:+.1} %",
        report.p50_increase * 100.0,
        report.p99_increase * 100.0
    );
    let f = &report.flood;
    let per_sec = |n: u64| n as f64 / f.seconds.max(1e-9);
    println!(
        "flood: {:.0} requests/s answered OK ({:.0} events/s accepted), {:.0} requests/s refused (RESOURCE_EXHAUSTED), {} failed otherwise",
        per_sec(f.ok_requests),
        per_sec(f.accepted_events),
        per_sec(f.refused_requests),
        f.failed_requests
    );
}
