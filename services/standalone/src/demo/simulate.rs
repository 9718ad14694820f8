//! The simulation loop: once per round (a second), a share of the customers who have not left
//! visit the shop, concurrently, through the engine; it runs for the demo's duration.

use std::{
    sync::Arc,
    time::{Duration, Instant, SystemTime},
};

use anyhow::bail;
use iee_api::pb::common::Channel;
use rand::{Rng, SeedableRng, rngs::SmallRng};

use super::population::{Customer, CustomerState};
use super::tally::RoundStats;
use super::visit::{Clients, Visit, event, ingest, visit};

/// Length of a round.
pub const ROUND: Duration = Duration::from_secs(1);

/// Probability that a customer who has not left visits in a round.
pub const VISIT_SHARE: f64 = 0.25;

/// Visits simulated at once.
const CONCURRENCY: usize = 16;

/// Share of failed visits above which the demo stops.
const MAX_FAILED_SHARE: f64 = 0.02;

/// Everything the simulation produced.
#[derive(Debug)]
pub struct Simulation {
    /// Every visit, in round order.
    pub visits: Vec<Visit>,
    /// Rounds run.
    pub rounds: usize,
    /// When the first event happened.
    pub started: SystemTime,
    /// How long the rounds took.
    pub elapsed: Duration,
    /// Events the engine accepted (outcomes included).
    pub events: u64,
    /// Visits that failed (an engine call returned an error).
    pub failed: usize,
}

impl Simulation {
    /// Decisions the engine made.
    pub fn decisions(&self) -> u64 {
        self.visits.len() as u64
    }
}

/// Runs rounds for `duration`, printing progress about ten times.
pub async fn simulate(
    clients: &Clients,
    customers: Vec<Customer>,
    seed: u64,
    duration: Duration,
) -> anyhow::Result<Simulation> {
    let customers = Arc::new(customers);
    let started = SystemTime::now();
    let mut events = subscribe(clients, &customers).await?;
    let mut states = vec![CustomerState::default(); customers.len()];
    let mut visits = Vec::new();
    let mut failed = 0;
    let mut first_error = None;
    let planned = (duration.as_secs_f64() / ROUND.as_secs_f64())
        .ceil()
        .max(1.0) as usize;
    let every = (planned / 10).max(1);
    let mut picker = SmallRng::seed_from_u64(seed.wrapping_add(0xd1ce));
    let start = Instant::now();
    let mut round = 0;
    while start.elapsed() < duration {
        tokio::time::sleep_until((start + ROUND * round as u32).into()).await;
        if start.elapsed() >= duration {
            break;
        }
        // One draw per customer whether or not they left, so who visits when does not depend
        // on the engine's choices for others.
        let visitors: Vec<usize> = (0..customers.len())
            .filter(|&i| picker.random_bool(VISIT_SHARE) && !states[i].churned)
            .collect();
        let results = run_round(clients, &customers, &states, &visitors, seed, round).await;
        let mut this_round = Vec::with_capacity(results.len());
        for (i, result) in results {
            match result {
                Ok((state, v)) => {
                    states[i] = state;
                    events += v.events;
                    this_round.push(v);
                }
                Err(err) => {
                    failed += 1;
                    first_error.get_or_insert(err);
                }
            }
        }
        if round % every == 0 || start.elapsed() + ROUND >= duration {
            println!("{}", progress(round, planned, &this_round));
        }
        visits.extend(this_round);
        round += 1;
        if failed as f64 > MAX_FAILED_SHARE * visits.len().max(100) as f64 {
            if let Some(err) = first_error {
                return Err(err.context(format!("{failed} visits failed; the first error")));
            }
            bail!("{failed} visits failed");
        }
    }
    if let Some(err) = first_error {
        eprintln!("warning: {failed} visits failed; the first: {err:#}");
    }
    Ok(Simulation {
        visits,
        rounds: round,
        started,
        elapsed: start.elapsed(),
        events,
        failed,
    })
}

/// A visit's customer index and its new state and record, or why it failed.
type VisitResult = (usize, anyhow::Result<(CustomerState, Visit)>);

/// The visits of one round, `CONCURRENCY` at a time; each returns the customer's new state.
async fn run_round(
    clients: &Clients,
    customers: &Arc<Vec<Customer>>,
    states: &[CustomerState],
    visitors: &[usize],
    seed: u64,
    round: usize,
) -> Vec<VisitResult> {
    let chunk = visitors.len().div_ceil(CONCURRENCY).max(1);
    let mut tasks = Vec::new();
    for group in visitors.chunks(chunk) {
        let work: Vec<(usize, CustomerState)> =
            group.iter().map(|&i| (i, states[i].clone())).collect();
        let clients = clients.clone();
        let customers = customers.clone();
        tasks.push(tokio::spawn(async move {
            let mut out = Vec::with_capacity(work.len());
            for (i, mut state) in work {
                let customer = &customers[i];
                let mut rng = customer.rng(seed, i, round);
                let result = visit(&clients, customer, &mut state, &mut rng, round)
                    .await
                    .map(|v| (state, v));
                out.push((i, result));
            }
            out
        }));
    }
    let mut results = Vec::with_capacity(visitors.len());
    for task in tasks {
        match task.await {
            Ok(out) => results.extend(out),
            Err(err) => results.push((
                usize::MAX,
                Err(anyhow::anyhow!("a visit task failed: {err}")),
            )),
        }
    }
    results
}

/// Every customer starts a subscription before the first round (a batch per 1,000).
async fn subscribe(clients: &Clients, customers: &[Customer]) -> anyhow::Result<u64> {
    let mut accepted = 0;
    for batch in customers.chunks(1_000) {
        let events = batch
            .iter()
            .map(|c| {
                let channel = if c.in_app { Channel::App } else { Channel::Web };
                event(
                    c,
                    &format!("{}-start", c.id),
                    "subscription_start",
                    channel,
                    "signup",
                )
            })
            .collect();
        accepted += ingest(&clients.ingest, events).await?;
    }
    Ok(accepted)
}

/// A progress line: the round's visits, offers, click-through, best-offer share and the
/// decisions the contact cap held an offer back in.
fn progress(round: usize, planned: usize, visits: &[Visit]) -> String {
    let stats = RoundStats::of(round, visits.iter());
    format!(
        "round {:>3}/{planned}: {:>4} visits, {:>4} offers shown, click-through {:>5.1} %, \
         best offer chosen {:>5.1} %{}",
        round + 1,
        visits.len(),
        stats.offers,
        100.0 * stats.click_through(),
        100.0 * stats.best_share(),
        if stats.capped > 0 {
            format!(", {} held back by the contact cap", stats.capped)
        } else {
            String::new()
        }
    )
}
