//! The demo from start to end: start the engine, simulate, wait for the KPI service to catch
//! up, print the KPI table and the learning curve, write the report, stop the engine.

use std::{process::ExitCode, time::Duration};

use super::args::DemoArgs;
use super::catalogue::{ACTIONS, SEGMENTS};
use super::engine::{DemoEngine, MODEL_FEATURE, MODEL_ID};
use super::kpi;
use super::population::population;
use super::report::{FILES, KpiPlot, ReportData, write_report};
use super::simulate::{ROUND, Simulation, VISIT_SHARE, simulate};
use super::table::{kpi_table, learning_table};
use super::tally::{cumulative, learning, per_round};
use super::visit::{Clients, Visit};

/// Demos at least this long plot the KPI service's per-minute series; shorter ones the
/// simulator's per-round counts.
const MINUTE_SERIES_FROM: Duration = Duration::from_secs(300);

/// Longest wait for the KPI service to measure everything the demo sent.
const CATCH_UP_TIMEOUT: Duration = Duration::from_secs(60);

/// Runs `iee demo`.
pub async fn run(args: DemoArgs) -> anyhow::Result<ExitCode> {
    println!(
        "iee demo: {} simulated customers of an online shop visit for {} s; each visit goes \
         through the whole engine (events -> profile -> decision -> outcomes -> learning -> \
         KPIs).",
        args.customers,
        args.duration.as_secs()
    );
    let engine = DemoEngine::start().await?;
    println!(
        "engine started in this process (gRPC on {}); decision configuration \
         examples/demo/demo.yaml is active for tenant `demo`, with propensity model \
         `{MODEL_ID}` learning from `{MODEL_FEATURE}` (the page).",
        engine.local
    );
    println!(
        "{} hidden segments, {} offers, a fifth of the customers in the global holdout; a \
         round every {} s, each customer visiting with probability {:.0} %.\n",
        SEGMENTS.len(),
        ACTIONS.len(),
        ROUND.as_secs(),
        100.0 * VISIT_SHARE
    );
    let result = demo(&engine, &args).await;
    let stopped = engine.stop().await;
    result?;
    stopped?;
    Ok(ExitCode::SUCCESS)
}

/// Simulates, measures, prints and writes the report against a started engine.
async fn demo(engine: &DemoEngine, args: &DemoArgs) -> anyhow::Result<()> {
    let clients = Clients {
        ingest: engine.ingest.clone(),
        decide: engine.decide.clone(),
    };
    let customers = population(args.customers, args.seed);
    let sim = simulate(&clients, customers, args.seed, args.duration).await?;
    println!(
        "\n{} rounds in {:.1} s: {} decisions, {} events accepted. Waiting for the KPI \
         service to measure them all...",
        sim.rounds,
        sim.elapsed.as_secs_f64(),
        sim.decisions(),
        sim.events
    );
    let catch_up = kpi::wait_for(
        &engine.kpi,
        sim.started,
        sim.decisions(),
        sim.events,
        CATCH_UP_TIMEOUT,
    )
    .await?;
    if catch_up.complete {
        println!("measured everything after {:.1} s.\n", catch_up.waited_secs);
    } else {
        eprintln!(
            "warning: after {:.0} s the KPI service had measured {} of {} decisions and {} of {} \
             events; the table below misses the rest",
            catch_up.waited_secs,
            catch_up.decisions,
            sim.decisions(),
            catch_up.events,
            sim.events
        );
    }
    let table = kpi::experiment(&engine.kpi).await?;
    let rounds = per_round(&sim.visits, sim.rounds);
    let learned = learning(&sim.visits, sim.rounds);
    print!("{}", kpi_table(&table));
    println!();
    print!("{}", learning_table(&learned));
    let capped: u64 = rounds.iter().map(|r| r.capped).sum();
    let degraded: u64 = rounds.iter().map(|r| r.degraded).sum();
    if capped + degraded > 0 {
        println!(
            "  ({capped} decisions where the contact cap held an offer back, {degraded} degraded)"
        );
    }

    let kpi_plot = if args.duration >= MINUTE_SERIES_FROM {
        KpiPlot::Minutes(kpi::minute_series(&engine.kpi, sim.started).await?)
    } else {
        KpiPlot::Rounds(cumulative(&rounds))
    };
    let data = ReportData {
        customers: args.customers,
        seed: args.seed,
        duration_secs: args.duration.as_secs_f64(),
        simulated_secs: sim.elapsed.as_secs_f64(),
        rounds: &rounds,
        decisions: sim.decisions(),
        failed_visits: sim.failed,
        events: sim.events,
        catch_up,
        table: &table,
        learning: &learned,
        kpi_plot,
        chance: chance(&sim),
        smooth: (sim.rounds / 8).max(3),
    };
    write_report(&args.report, &data)?;
    println!(
        "\nreport: {} ({})",
        args.report.join("index.html").display(),
        FILES.join(", ")
    );
    Ok(())
}

/// The share of offers a uniformly random choice would make the customer's best: one over the
/// offers available on the visit's channel, averaged over the visits that showed one.
fn chance(sim: &Simulation) -> f64 {
    let shown: Vec<&Visit> = sim.visits.iter().filter(|v| v.offer.is_some()).collect();
    if shown.is_empty() {
        return 0.0;
    }
    let options = |v: &Visit| {
        ACTIONS
            .iter()
            .filter(|a| !v.in_app || a.in_app)
            .count()
            .max(1) as f64
    };
    shown.iter().map(|v| 1.0 / options(v)).sum::<f64>() / shown.len() as f64
}
