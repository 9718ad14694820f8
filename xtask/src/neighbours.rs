//! `cargo xtask neighbours`: the noisy-neighbour measurement. A standalone `iee` on a private
//! Redis authenticates two tenants; `iee-loadtest neighbours` floods the ingest path as one
//! while measuring the other's Decide latency, first with a per-tenant rate limit, then
//! without one for comparison.

use std::{fs, path::PathBuf, process::Command};

use anyhow::{Context, Result, bail};

use crate::loadtest::{Iee, Redis, build, target_dir, workspace_root};

const QUIET_TOKEN: &str = "neighbours-quiet-token";
const FLOOD_TOKEN: &str = "neighbours-flood-token";

/// Arguments of `cargo xtask neighbours`.
#[derive(Debug, Clone, clap::Args)]
pub struct NeighboursArgs {
    /// Build and run the release profile (what published numbers must use).
    #[arg(long)]
    pub release: bool,
    /// The per-tenant rate limit of the limited run, in events per second.
    #[arg(long, default_value_t = 2_000)]
    pub tenant_rate: u32,
    /// Quiet/flood round pairs.
    #[arg(long, default_value_t = 3)]
    pub rounds: u32,
    /// Seconds per phase.
    #[arg(long, default_value_t = 10)]
    pub phase_secs: u64,
    /// Decisions per second of the quiet tenant.
    #[arg(long, default_value_t = 100)]
    pub probe_rate: u32,
    /// Events per flood batch.
    #[arg(long, default_value_t = 100)]
    pub flood_batch: u32,
    /// Flood requests outstanding at once.
    #[arg(long, default_value_t = 8)]
    pub flood_in_flight: u32,
    /// Skip the run without a limit.
    #[arg(long)]
    pub limited_only: bool,
    /// Where reports and server logs go.
    #[arg(long, default_value = "target/neighbours")]
    pub report_dir: PathBuf,
}

/// The digest of `token` as `[server.auth]` takes it (64 lowercase hex digits).
fn sha256_hex(token: &str) -> String {
    use sha2::Digest as _;
    sha2::Sha256::digest(token.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Runs the limited and (unless `--limited-only`) the unlimited measurement.
pub fn run(args: &NeighboursArgs) -> Result<()> {
    let root = workspace_root();
    let report_dir = root.join(&args.report_dir);
    fs::create_dir_all(&report_dir)
        .with_context(|| format!("cannot create {}", report_dir.display()))?;
    build(&root, args.release)?;
    let bin_dir = target_dir(&root).join(if args.release { "release" } else { "debug" });
    let tokens = report_dir.join("tokens");
    fs::write(
        &tokens,
        format!(
            "quiet {}\nnoisy {}\n",
            sha256_hex(QUIET_TOKEN),
            sha256_hex(FLOOD_TOKEN)
        ),
    )?;
    let redis = Redis::start(&report_dir)?;
    let mut runs = vec![("limited", args.tenant_rate)];
    if !args.limited_only {
        runs.push(("unlimited", 0));
    }
    for (name, rate) in runs {
        let mut envs = vec![
            ("IEE_SERVER__AUTH__ENABLED".to_owned(), "true".to_owned()),
            (
                "IEE_SERVER__AUTH__TOKENS_FILE".to_owned(),
                tokens.display().to_string(),
            ),
            ("IEE_TELEMETRY__LOG_FILTER".to_owned(), "warn".to_owned()),
        ];
        if rate > 0 {
            envs.push((
                "IEE_SERVER__LIMITS__TENANT_RATE_PER_SEC".to_owned(),
                rate.to_string(),
            ));
        }
        let server = Iee::start_with(
            &bin_dir.join("iee"),
            Some(redis.port),
            &report_dir.join(format!("{name}.iee.log")),
            &envs,
        )?;
        let limit = if rate > 0 {
            format!("{rate} events/s per tenant")
        } else {
            "no rate limit".to_owned()
        };
        println!("== {name} ({limit}): iee listening on {}", server.addr);
        let status = Command::new(bin_dir.join("iee-loadtest"))
            .arg("neighbours")
            .args(["--target", &format!("http://{}", server.addr)])
            .args(["--quiet-tenant", "quiet", "--flood-tenant", "noisy"])
            .env("IEE_QUIET_TOKEN", QUIET_TOKEN)
            .env("IEE_FLOOD_TOKEN", FLOOD_TOKEN)
            .args(["--rounds", &args.rounds.to_string()])
            .args(["--phase-secs", &args.phase_secs.to_string()])
            .args(["--probe-rate", &args.probe_rate.to_string()])
            .args(["--flood-in-flight", &args.flood_in_flight.to_string()])
            .args(["--flood-batch", &args.flood_batch.to_string()])
            .arg("--report")
            .arg(report_dir.join(format!("{name}.json")))
            .status()
            .context("run iee-loadtest")?;
        server.stop()?;
        if !status.success() {
            bail!("iee-loadtest neighbours failed in the {name} run ({status})");
        }
    }
    drop(redis);
    println!("reports in {}", report_dir.display());
    Ok(())
}
