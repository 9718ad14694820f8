//! `iee-loadtest`: drives the ingest service with a scenario and reports whether it met the
//! scenario's thresholds. Exit code 0: all passed; 1: a threshold was breached or the run
//! failed; 2: bad usage or scenario.

use std::{path::PathBuf, process::ExitCode};

use clap::{Parser, Subcommand};
use iee_loadtest::{
    neighbours::{self, NeighboursArgs},
    run::{Failure, RunArgs, run},
    scenario::Scenario,
};

#[derive(Parser)]
#[command(
    name = "iee-loadtest",
    version,
    about = "Open-loop load generator for IEE ingest"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Runs a scenario against a target and reports the result.
    Run(RunArgs),
    /// Measures whether one tenant's ingest flood slows another tenant's decisions.
    Neighbours(NeighboursArgs),
    /// Validates scenario files without sending anything.
    Check {
        /// The scenario files.
        #[arg(required = true)]
        scenarios: Vec<PathBuf>,
    },
}

const EXIT_BREACHED: u8 = 1;
const EXIT_USAGE: u8 = 2;

#[tokio::main]
async fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Run(args) => match run(&args).await {
            Ok(report) if report.passed => ExitCode::SUCCESS,
            Ok(_) => ExitCode::from(EXIT_BREACHED),
            Err(Failure::Usage(message)) => {
                eprintln!("error: {message}");
                ExitCode::from(EXIT_USAGE)
            }
            Err(Failure::Run(error)) => {
                eprintln!("error: {error:#}");
                ExitCode::from(EXIT_BREACHED)
            }
        },
        Command::Neighbours(args) => match neighbours::run(&args).await {
            Ok(report) => {
                neighbours::print(&report);
                if let Some(path) = &args.report
                    && let Err(err) =
                        std::fs::write(path, serde_json::to_vec_pretty(&report).unwrap_or_default())
                {
                    eprintln!("error: cannot write {}: {err}", path.display());
                    return ExitCode::from(EXIT_BREACHED);
                }
                match args.max_p99_increase {
                    Some(limit) if report.p99_increase > limit => {
                        eprintln!(
                            "the flood raised the quiet tenant's p99 by {:.1} % (limit {:.1} %)",
                            report.p99_increase * 100.0,
                            limit * 100.0
                        );
                        ExitCode::from(EXIT_BREACHED)
                    }
                    _ => ExitCode::SUCCESS,
                }
            }
            Err(error) => {
                eprintln!("error: {error:#}");
                ExitCode::from(EXIT_BREACHED)
            }
        },
        Command::Check { scenarios } => {
            let mut ok = true;
            for path in scenarios {
                match Scenario::load(&path) {
                    Ok(s) => println!("{}: ok ({})", path.display(), s.name),
                    Err(e) => {
                        eprintln!("{}: {e}", path.display());
                        ok = false;
                    }
                }
            }
            if ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(EXIT_USAGE)
            }
        }
    }
}
