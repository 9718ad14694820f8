//! `iee profiles export`: a point-in-time feature snapshot of a tenant's stored profiles.

use std::{
    collections::HashSet,
    io::Write,
    process::ExitCode,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use anyhow::{Context, ensure};
use iee_api::pb::profile::Profile;
use iee_predict::features::{Source, catalogue, from_profile};
use iee_store::keys;
use prost::Message;
use prost_types::Timestamp;
use xxhash_rust::xxh3::xxh3_128;

use super::command::*;

pub(super) async fn connect(url: &str) -> anyhow::Result<redis::aio::MultiplexedConnection> {
    let client = redis::Client::open(url).context("--redis-url is not a Redis URL")?;
    let config = redis::AsyncConnectionConfig::new()
        .set_connection_timeout(Some(Duration::from_secs(5)))
        .set_response_timeout(Some(Duration::from_secs(60)));
    client
        .get_multiplexed_async_connection_with_config(&config)
        .await
        .context("cannot connect to Redis")
}

/// The SCAN patterns of `mode`, and how to describe them. `Auto` asks the server whether it is
/// a cluster: per-shard SCANs cost a walk of the keyspace each on a single instance (minutes per
/// 100,000 keys at 1,024 shards), which one pass avoids.
pub(super) async fn scan_patterns(
    conn: &mut redis::aio::MultiplexedConnection,
    mode: ScanMode,
    tenant: &str,
    shard_count: u32,
) -> (Vec<String>, String) {
    let per_shard = match mode {
        ScanMode::PerShard => true,
        ScanMode::Keyspace => false,
        ScanMode::Auto => {
            let info: Option<String> = redis::cmd("INFO")
                .arg("cluster")
                .query_async(conn)
                .await
                .ok();
            info.is_none_or(|info| info.lines().any(|l| l.trim() == "cluster_enabled:1"))
        }
    };
    if per_shard {
        let patterns = (0..shard_count)
            .map(|shard| format!("{}*", keys::profile(shard, tenant, "")))
            .collect();
        (patterns, format!("{shard_count} shards scanned one by one"))
    } else {
        let pattern = format!("{}:{{s*}}:p:{tenant}:*", keys::PREFIX);
        (vec![pattern], "every shard scanned in one pass".to_owned())
    }
}

/// The customer key of `key` if it is a profile key of `tenant`, `iee:{s<n>}:p:<tenant>:<key>`
/// (as [`keys::profile`] names them). Checked in full: a glob `*` in a pattern can also match
/// other keys that happen to contain the right pieces.
pub(super) fn profile_key<'k>(key: &'k str, tenant: &str) -> Option<&'k str> {
    let rest = key.strip_prefix(keys::PREFIX)?.strip_prefix(":{s")?;
    let (shard, rest) = rest.split_once('}')?;
    let shard_ok = !shard.is_empty() && shard.bytes().all(|b| b.is_ascii_digit());
    let id = rest
        .strip_prefix(":p:")?
        .strip_prefix(tenant)?
        .strip_prefix(':')?;
    (shard_ok && !id.is_empty()).then_some(id)
}

/// What an export found.
#[derive(Debug, Default)]
pub(super) struct ExportTally {
    pub(super) exported: u64,
    pub(super) merged: u64,
}

pub(super) async fn export(args: ExportArgs) -> anyhow::Result<ExitCode> {
    ensure!(
        valid_tenant(&args.tenant),
        "--tenant {:?} is not a tenant id (1-64 characters of [a-z0-9_-])",
        args.tenant
    );
    ensure!(
        (1..=65_536).contains(&args.shard_count),
        "--shard-count must be within 1..=65536, got {}",
        args.shard_count
    );
    // Whole seconds, and every feature is computed as of exactly the time the file states.
    let now_secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .context("the system clock is before 1970")?
        .as_secs();
    let now = UNIX_EPOCH + Duration::from_secs(now_secs);
    let snapshot_at = Timestamp::from(now).to_string();
    let mut features: Vec<&'static str> = catalogue()
        .iter()
        .filter(|spec| spec.source == Source::Profile)
        .map(|spec| spec.name)
        .collect();
    features.sort_unstable();

    // Which columns are used is known only at the end, so rows go to a spool file first (a
    // tenant's profiles need not fit in memory), then are copied with the used columns only.
    let spool = match &args.out {
        Some(out) => beside(out, ".spool"),
        None => std::env::temp_dir().join(format!("iee-export-{}.spool", std::process::id())),
    };
    let mut scratch = Scratch(vec![spool.clone()]);
    let mut writer = csv::Writer::from_path(&spool)
        .with_context(|| format!("cannot write {}", spool.display()))?;
    writer.write_record([ID, SNAPSHOT_AT, LAST_SEEN_AT].iter().chain(&features))?;
    let mut used = vec![false; features.len()];
    let mut tally = ExportTally::default();
    let mut conn = connect(&args.redis_url).await?;
    let (patterns, how) = scan_patterns(&mut conn, args.scan, &args.tenant, args.shard_count).await;
    // SCAN may return a key twice; each key is remembered by a 128-bit hash, not kept whole.
    let mut seen = HashSet::new();
    for pattern in &patterns {
        let mut cursor = 0u64;
        loop {
            let (next, found): (u64, Vec<String>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(pattern)
                .arg("COUNT")
                .arg(SCAN_COUNT)
                .query_async(&mut conn)
                .await
                .with_context(|| format!("scanning {pattern}"))?;
            let found: Vec<(String, String)> = found
                .into_iter()
                .filter_map(|key| {
                    let id = profile_key(&key, &args.tenant)?.to_owned();
                    seen.insert(xxh3_128(key.as_bytes())).then_some((key, id))
                })
                .collect();
            if !found.is_empty() {
                // Per shard, the keys share a slot; in one pass, the server is not a cluster.
                let values: Vec<Option<Vec<u8>>> = redis::cmd("MGET")
                    .arg(found.iter().map(|(key, _)| key).collect::<Vec<_>>())
                    .query_async(&mut conn)
                    .await
                    .with_context(|| format!("reading the profiles of {pattern}"))?;
                for ((key, id), value) in found.into_iter().zip(values) {
                    // None: deleted (erased) since the scan.
                    let Some(bytes) = value else { continue };
                    let profile = Profile::decode(bytes.as_slice())
                        .with_context(|| format!("{key} does not hold a profile"))?;
                    if !profile.merged_into_customer_id.is_empty() {
                        tally.merged += 1;
                        continue;
                    }
                    let vector = from_profile(&profile, now);
                    let last_seen = profile
                        .last_seen_at
                        .map(|t| t.to_string())
                        .unwrap_or_default();
                    let mut row = vec![id, snapshot_at.clone(), last_seen];
                    for (name, used) in features.iter().zip(&mut used) {
                        let cell = vector
                            .numeric
                            .get(*name)
                            .map(|v| number(*v))
                            .or_else(|| vector.categorical.get(*name).cloned());
                        *used |= cell.is_some();
                        row.push(cell.unwrap_or_default());
                    }
                    writer.write_record(&row)?;
                    tally.exported += 1;
                }
            }
            if next == 0 {
                break;
            }
            cursor = next;
        }
    }
    writer
        .flush()
        .with_context(|| format!("cannot write {}", spool.display()))?;
    drop(writer);

    let keep: Vec<usize> = (0..3)
        .chain((0..features.len()).filter(|&i| used[i]).map(|i| i + 3))
        .collect();
    let mut reader = csv::Reader::from_path(&spool)
        .with_context(|| format!("cannot read back {}", spool.display()))?;
    let mut copy = |out: &mut dyn Write| -> anyhow::Result<()> {
        let mut writer = csv::Writer::from_writer(out);
        let header = reader.headers()?.clone();
        writer.write_record(keep.iter().map(|&c| &header[c]))?;
        for record in reader.records() {
            let record = record?;
            writer.write_record(keep.iter().map(|&c| &record[c]))?;
        }
        writer.flush()?;
        Ok(())
    };
    let summary = format!(
        "exported {} profiles of tenant {} as of {snapshot_at} ({how}; {} anonymous profiles \
         merged into a customer skipped)",
        tally.exported, args.tenant, tally.merged
    );
    match &args.out {
        Some(out) => {
            let partial = beside(out, ".partial");
            scratch.0.push(partial.clone());
            let mut file = std::fs::File::create(&partial)
                .with_context(|| format!("cannot write {}", partial.display()))?;
            copy(&mut file).with_context(|| format!("cannot write {}", partial.display()))?;
            file.sync_all()?;
            std::fs::rename(&partial, out)
                .with_context(|| format!("cannot write {}", out.display()))?;
            println!("{summary} to {}", out.display());
        }
        None => {
            copy(&mut std::io::stdout().lock()).context("cannot write to standard output")?;
            // Standard output holds the CSV; the summary goes beside it.
            eprintln!("{summary}");
        }
    }
    Ok(ExitCode::SUCCESS)
}
