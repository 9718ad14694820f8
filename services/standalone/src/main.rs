//! `iee`: every IEE service in one process (`iee standalone`) and the command-line verbs.

mod decide;
mod demo;
mod events;
mod profiles;
mod standalone;
mod train;

use clap::{Parser, Subcommand};

// The ingest path allocates per event (decode, validate, encode); mimalloc cuts that cost
// measurably over the system allocator (see ARCHITECTURE.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The Intelligent Experience Engine.
#[derive(Debug, Parser)]
#[command(name = "iee", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Bearer token presented to a remote engine that authenticates callers (`iee events`,
    /// `iee decide` against a server with `[server.auth]`).
    #[arg(long, global = true, env = "IEE_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// CA certificate (PEM) of a remote engine that serves TLS: connect over TLS and trust it
    /// (`iee events`, `iee decide`; docs/tls.md).
    #[arg(long, global = true, env = "IEE_CA_FILE")]
    ca_file: Option<std::path::PathBuf>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Runs every implemented service in one process on one port (in-memory backend unless
    /// `--redis-url` is given).
    Standalone(iee_config::ServeFlags),
    /// Sets decision configurations, asks for decisions and explains them.
    Decide {
        #[command(subcommand)]
        command: decide::DecideCommand,
    },
    /// Runs the whole engine in this process against simulated customers for a while, then
    /// prints what it learned and what it changed (KPIs against a holdout) and writes a report.
    Demo(demo::DemoArgs),
    /// Works with events.
    Events {
        #[command(subcommand)]
        command: events::EventsCommand,
    },
    /// Exports profile feature snapshots and labels them for training.
    Profiles {
        #[command(subcommand)]
        command: profiles::ProfilesCommand,
    },
    /// Trains a model from a tabular export and writes its artifact.
    Train {
        #[command(subcommand)]
        command: train::TrainCommand,
    },
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    if let Some(token) = &cli.token
        && let Err(err) = iee_api::credentials::install_token(token)
    {
        eprintln!("error: --token: {err}");
        return std::process::ExitCode::from(2);
    }
    if let Some(ca_file) = &cli.ca_file {
        let tls = iee_api::transport::ClientTlsConfig {
            ca_file: ca_file.display().to_string(),
            ..iee_api::transport::ClientTlsConfig::default()
        };
        if let Err(err) = iee_api::transport::install_client_tls(&tls) {
            eprintln!("error: --ca-file: {err}");
            return std::process::ExitCode::from(2);
        }
    }
    let result = match cli.command {
        Command::Standalone(flags) => standalone::run(flags).await,
        Command::Decide { command } => decide::run(command).await,
        Command::Demo(args) => demo::run(args).await,
        Command::Events { command } => events::run(command).await,
        Command::Profiles { command } => profiles::run(command).await,
        Command::Train { command } => train::run(command),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            std::process::ExitCode::from(2)
        }
    }
}
