//! The `iee profiles` arguments, the dispatch, and helpers both commands share.

use std::{
    ffi::OsString,
    path::{Path, PathBuf},
    process::ExitCode,
    str::FromStr,
};

use anyhow::anyhow;
use iee_api::shard::DEFAULT_SHARD_COUNT;
use prost_types::Timestamp;

use super::{export::export, label::label_churn};

/// The columns every export starts with, before the features.
pub(super) const ID: &str = "customer_id";
pub(super) const SNAPSHOT_AT: &str = "snapshot_at";
pub(super) const LAST_SEEN_AT: &str = "last_seen_at";
/// The label column `label-churn` adds.
pub(super) const CHURNED: &str = "churned";
/// Keys asked for per SCAN call (a hint to Redis; each call stays short).
pub(super) const SCAN_COUNT: usize = 1000;
pub(super) const NANOS_PER_DAY: f64 = 86_400e9;

/// Profile snapshot commands.
#[derive(Debug, clap::Subcommand)]
pub enum ProfilesCommand {
    /// Writes a CSV snapshot of a tenant's profiles (features as of now), read from Redis.
    ///
    /// Columns: `customer_id`, `snapshot_at`, `last_seen_at`, then the catalogue's profile
    /// features, one column per feature present in any row (sorted by name; blank where absent).
    /// Anonymous profiles merged into a customer are skipped; other anonymous ones have the id
    /// `anon:<id>`.
    Export(ExportArgs),
    /// Labels an old export with churn, for `iee train churn --label churned`.
    ///
    /// Keeps the old export's rows taken at least the horizon before the later export, adds
    /// `churned` (1 when the customer had no activity between the two snapshots or is missing
    /// from the later one, else 0) and drops `snapshot_at` and `last_seen_at`.
    LabelChurn(LabelChurnArgs),
}

/// `iee profiles export`.
#[derive(Debug, clap::Args)]
pub struct ExportArgs {
    /// The Redis holding the profiles: `redis://[user:password@]host:port[/db]`.
    #[arg(long, value_name = "URL")]
    pub(super) redis_url: String,
    /// The tenant whose profiles are exported.
    #[arg(long)]
    pub(super) tenant: String,
    /// The installation's number of shards (`cluster.shard_count`).
    #[arg(long, default_value_t = DEFAULT_SHARD_COUNT)]
    pub(super) shard_count: u32,
    /// How the profile keys are found.
    #[arg(long, value_enum, default_value_t = ScanMode::Auto)]
    pub(super) scan: ScanMode,
    /// Where to write the CSV; standard output if absent.
    #[arg(long, value_name = "FILE")]
    pub(super) out: Option<PathBuf>,
}

/// How `export` finds the profile keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ScanMode {
    /// One pass on a single instance, per shard on Redis Cluster (or when the server does not
    /// say which it is).
    Auto,
    /// A SCAN per shard, its pattern within the shard's hash tag: on Redis Cluster a pattern
    /// names one slot, but on a single instance each walks the whole keyspace.
    PerShard,
    /// One SCAN over the whole keyspace for every shard's profiles (not on Redis Cluster, where
    /// a SCAN sees only the node it is sent to).
    Keyspace,
}

/// `iee profiles label-churn`.
#[derive(Debug, clap::Args)]
pub struct LabelChurnArgs {
    /// The older export, whose rows are labelled (its features are as of its `snapshot_at`).
    #[arg(long, value_name = "OLD.csv")]
    pub(super) snapshot: PathBuf,
    /// The later export, which tells who was active after the older one.
    #[arg(long, value_name = "NEW.csv")]
    pub(super) current: PathBuf,
    /// The churn horizon: a customer with no activity for this many days after a snapshot has
    /// churned. Rows taken less than this before the later export are left out.
    #[arg(long, default_value_t = 90.0)]
    pub(super) horizon_days: f64,
    /// Also leave out rows whose customer had no activity in this many days before the
    /// snapshot (already gone by then; they would all count as churned).
    #[arg(long, value_name = "DAYS")]
    pub(super) active_within_days: Option<f64>,
    /// Where to write the labelled CSV.
    #[arg(long, value_name = "FILE")]
    pub(super) out: PathBuf,
}

/// Runs a profiles command: 0 on success, an error (exit 2) otherwise.
pub async fn run(command: ProfilesCommand) -> anyhow::Result<ExitCode> {
    match command {
        ProfilesCommand::Export(args) => export(args).await,
        ProfilesCommand::LabelChurn(args) => label_churn(&args),
    }
}

/// Files removed on drop: scratch files, and a partial output left behind by an error.
pub(super) struct Scratch(pub(super) Vec<PathBuf>);

impl Drop for Scratch {
    fn drop(&mut self) {
        for path in &self.0 {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// `path` with `suffix` appended to its file name, for scratch files beside the output.
pub(super) fn beside(path: &Path, suffix: &str) -> PathBuf {
    let mut name = OsString::from(path.as_os_str());
    name.push(suffix);
    PathBuf::from(name)
}

/// Whether `tenant` is a well-formed tenant id (1-64 characters of `[a-z0-9_-]`), which also
/// keeps glob characters out of the SCAN pattern.
pub(super) fn valid_tenant(tenant: &str) -> bool {
    (1..=64).contains(&tenant.len())
        && tenant
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

/// A feature value as a CSV cell: whole numbers without a fraction, others in Rust's shortest
/// round-trip form (which uses an exponent for tiny decayed counts rather than 300 digits).
pub(super) fn number(value: f64) -> String {
    if value.fract() == 0.0 && value.abs() < 1e15 {
        format!("{}", value as i64)
    } else {
        format!("{value:?}")
    }
}

/// Connects with timeouts long enough for a page of large profiles.
/// A time in an export, as Unix nanoseconds.
pub(super) fn parse_time(cell: &str) -> anyhow::Result<i128> {
    let t =
        Timestamp::from_str(cell).map_err(|e| anyhow!("{cell:?} is not an RFC 3339 time ({e})"))?;
    Ok(i128::from(t.seconds) * 1_000_000_000 + i128::from(t.nanos))
}

/// A time that may be blank (no activity yet).
pub(super) fn parse_optional_time(cell: &str) -> anyhow::Result<Option<i128>> {
    if cell.is_empty() {
        Ok(None)
    } else {
        parse_time(cell).map(Some)
    }
}

pub(super) fn days_ns(days: f64) -> i128 {
    (days * NANOS_PER_DAY) as i128
}

pub(super) fn ns_days(ns: i128) -> f64 {
    ns as f64 / NANOS_PER_DAY
}

pub(super) fn rfc3339(ns: i128) -> String {
    let seconds = i64::try_from(ns.div_euclid(1_000_000_000)).unwrap_or(i64::MAX);
    let nanos = i32::try_from(ns.rem_euclid(1_000_000_000)).unwrap_or(0);
    Timestamp { seconds, nanos }.to_string()
}
