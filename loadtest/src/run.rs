//! One `iee-loadtest run`: check the target and the scenario, connect, drive the RPC the
//! scenario names, then print and save the report.

use std::{
    fmt,
    net::IpAddr,
    path::PathBuf,
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::Context as _;
use iee_api::pb::ingest::touchpoint_service_client::TouchpointServiceClient;
use iee_api::tonic::transport::{Channel, Uri};

use crate::{
    generator::Generator,
    report::Report,
    scenario::{Rpc, Scenario},
    stats::{Recorder, Schedule},
    stream, unary,
};

/// How long outstanding requests may take to be answered once the schedule is over; the rest
/// count as `DRAIN_TIMEOUT` errors.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);
/// How long to wait for a connection to the target.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Largest message either way; large batches are the point of some scenarios.
const MAX_MESSAGE_BYTES: usize = 64 << 20;

/// Arguments of `iee-loadtest run`.
#[derive(Debug, Clone, clap::Args)]
pub struct RunArgs {
    /// The scenario file (TOML).
    #[arg(long)]
    pub scenario: PathBuf,
    /// The ingest endpoint, e.g. `http://127.0.0.1:50051`.
    #[arg(long)]
    pub target: String,
    /// Where to write the JSON report.
    #[arg(long)]
    pub report: Option<PathBuf>,
    /// Allow a target that is not a loopback address.
    #[arg(long)]
    pub allow_remote: bool,
}

/// Why a run did not produce a report.
#[derive(Debug)]
pub enum Failure {
    /// Bad arguments or scenario: nothing was sent.
    Usage(String),
    /// The run could not be carried out (no connection, report not writable).
    Run(anyhow::Error),
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Usage(message) => f.write_str(message),
            Self::Run(error) => write!(f, "{error:#}"),
        }
    }
}

/// Runs the scenario of `args` against its target.
pub async fn run(args: &RunArgs) -> Result<Report, Failure> {
    check_target(&args.target, args.allow_remote).map_err(Failure::Usage)?;
    let scenario = Scenario::load(&args.scenario).map_err(|e| Failure::Usage(e.to_string()))?;
    if let Some(dir) = args
        .report
        .as_ref()
        .and_then(|p| p.parent())
        .filter(|d| !d.as_os_str().is_empty())
    {
        std::fs::create_dir_all(dir).map_err(|e| {
            Failure::Usage(format!(
                "cannot create report directory {}: {e}",
                dir.display()
            ))
        })?;
    }

    let connections = match scenario.rpc {
        Rpc::Unary => 1,
        // One connection per stream, like independent touchpoints.
        Rpc::Stream => scenario.stream_count(),
    };
    let mut clients = Vec::with_capacity(connections as usize);
    for _ in 0..connections {
        clients.push(connect(&args.target).await.map_err(Failure::Run)?);
    }

    let schedule_len = scenario.scheduled_requests();
    eprintln!(
        "iee-loadtest: {} — {} rpc, batch {}, {} req/s, {} requests over at most {} s \
         (warm-up {} s) against {}",
        scenario.name,
        scenario.rpc,
        scenario.batch_size,
        scenario.rate,
        schedule_len,
        scenario.duration_secs,
        scenario.warmup_secs,
        args.target
    );
    let generator = Arc::new(Generator::new(&scenario));
    let recorder = Recorder::new();
    let schedule = Schedule::new(&scenario, Instant::now());
    match scenario.rpc {
        Rpc::Unary => {
            let client = clients
                .pop()
                .expect("one connection is opened for a unary scenario");
            unary::run(
                client,
                &generator,
                schedule,
                scenario.max_in_flight,
                DRAIN_TIMEOUT,
                &recorder,
            )
            .await;
        }
        Rpc::Stream => {
            stream::run(
                clients,
                generator,
                schedule,
                scenario.max_in_flight,
                DRAIN_TIMEOUT,
                &recorder,
            )
            .await;
        }
    }
    let finished = Instant::now();

    let report = Report::build(
        &scenario,
        &args.target,
        &schedule,
        &recorder.snapshot(),
        finished,
    );
    println!("{}", report.summary());
    if let Some(path) = &args.report {
        report
            .write_json(path)
            .with_context(|| format!("cannot write report {}", path.display()))
            .map_err(Failure::Run)?;
        eprintln!("iee-loadtest: report written to {}", path.display());
    }
    Ok(report)
}

/// A connected channel to `target` (TCP_NODELAY, connect timeout).
pub(crate) async fn channel(target: &str) -> anyhow::Result<Channel> {
    let endpoint = iee_api::transport::endpoint(target)
        .map_err(anyhow::Error::msg)
        .with_context(|| format!("invalid target {target}"))?
        .connect_timeout(CONNECT_TIMEOUT)
        .tcp_nodelay(true);
    iee_api::transport::connect(endpoint)
        .await
        .with_context(|| format!("cannot connect to {target}"))
}

async fn connect(target: &str) -> anyhow::Result<TouchpointServiceClient<Channel>> {
    let channel = channel(target).await?;
    Ok(TouchpointServiceClient::new(channel)
        .max_decoding_message_size(MAX_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_MESSAGE_BYTES))
}

/// Accepts `http://host:port` targets whose host is a loopback address (127.0.0.0/8, ::1,
/// `localhost`); any other host only with `allow_remote`.
pub fn check_target(target: &str, allow_remote: bool) -> Result<(), String> {
    let uri: Uri = target
        .parse()
        .map_err(|e| format!("--target {target:?} is not a URL: {e}"))?;
    match uri.scheme_str() {
        Some("http") => {}
        Some(other) => {
            return Err(format!(
                "--target {target:?}: scheme must be http (TLS is not supported), got {other}"
            ));
        }
        None => {
            return Err(format!(
                "--target {target:?} must be a URL like http://127.0.0.1:50051"
            ));
        }
    }
    let host = uri
        .host()
        .ok_or_else(|| format!("--target {target:?} has no host"))?;
    if uri.port_u16().is_none() {
        return Err(format!("--target {target:?} must include a port"));
    }
    if allow_remote {
        if !is_loopback(host) {
            eprintln!("iee-loadtest: warning: sending load to non-loopback host {host}");
        }
        return Ok(());
    }
    if is_loopback(host) {
        Ok(())
    } else {
        Err(format!(
            "--target host {host} is not a loopback address (127.0.0.0/8, ::1, localhost); \
             refusing to send load elsewhere without --allow-remote"
        ))
    }
}

fn is_loopback(host: &str) -> bool {
    let bare = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    bare.eq_ignore_ascii_case("localhost")
        || bare
            .parse::<IpAddr>()
            .is_ok_and(|ip| ip.to_canonical().is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_targets_are_accepted() {
        for target in [
            "http://127.0.0.1:50051",
            "http://127.9.8.7:1",
            "http://localhost:8080",
            "http://LOCALHOST:8080",
            "http://[::1]:50051",
            "http://[::ffff:127.0.0.1]:50051",
        ] {
            assert_eq!(check_target(target, false), Ok(()), "{target}");
        }
    }

    #[test]
    fn remote_targets_are_refused_without_the_flag() {
        for target in [
            "http://10.0.0.1:50051",
            "http://192.168.1.5:50051",
            "http://example.com:50051",
            "http://[2001:db8::1]:50051",
            "http://0.0.0.0:50051",
            "http://localhost.example.com:80",
        ] {
            let err = check_target(target, false).unwrap_err();
            assert!(err.contains("--allow-remote"), "{target}: {err}");
            assert_eq!(check_target(target, true), Ok(()), "{target}");
        }
    }

    #[test]
    fn malformed_targets_are_refused() {
        for target in [
            "127.0.0.1:50051",
            "https://127.0.0.1:50051",
            "http://127.0.0.1",
            "not a url",
        ] {
            assert!(check_target(target, true).is_err(), "{target}");
        }
    }
}
