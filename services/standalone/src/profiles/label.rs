//! `iee profiles label-churn`: churn labels for an old snapshot from a later one.

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    process::ExitCode,
};

use anyhow::{Context, anyhow, bail, ensure};
use iee_api::shard::ANONYMOUS_KEY_PREFIX;

use super::command::*;

/// An export opened for reading, with the positions of its fixed columns.
pub(super) struct Export {
    pub(super) path: PathBuf,
    pub(super) reader: csv::Reader<std::fs::File>,
    pub(super) headers: csv::StringRecord,
    pub(super) id: usize,
    pub(super) snapshot_at: usize,
    pub(super) last_seen_at: usize,
}

impl Export {
    fn open(path: &Path) -> anyhow::Result<Self> {
        let mut reader = csv::ReaderBuilder::new()
            .trim(csv::Trim::All)
            .from_path(path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        let headers = reader
            .headers()
            .with_context(|| format!("cannot read {}", path.display()))?
            .clone();
        let column = |name: &str| {
            headers.iter().position(|h| h == name).ok_or_else(|| {
                anyhow!(
                    "{} has no column {name:?} (is it an `iee profiles export`?); its columns \
                     are: {}",
                    path.display(),
                    headers.iter().collect::<Vec<_>>().join(", ")
                )
            })
        };
        let (id, snapshot_at, last_seen_at) =
            (column(ID)?, column(SNAPSHOT_AT)?, column(LAST_SEEN_AT)?);
        Ok(Self {
            path: path.to_owned(),
            reader,
            headers,
            id,
            snapshot_at,
            last_seen_at,
        })
    }

    /// The rows with their line numbers; read errors name the file and line.
    fn rows(&mut self) -> impl Iterator<Item = anyhow::Result<(u64, csv::StringRecord)>> + '_ {
        let path = self.path.display().to_string();
        self.reader.records().map(move |record| {
            let record = record.with_context(|| format!("cannot read {path}"))?;
            Ok((record.position().map_or(0, |p| p.line()), record))
        })
    }
}

/// The later export: each customer's latest activity, and when it was taken.
pub(super) struct Current {
    /// The earliest `snapshot_at` of its rows: every row saw at least this far.
    pub(super) snapshot: i128,
    pub(super) last_seen: HashMap<String, Option<i128>>,
}

impl Current {
    fn read(path: &Path) -> anyhow::Result<Self> {
        let mut export = Export::open(path)?;
        let (id, snapshot_at, last_seen_at) = (export.id, export.snapshot_at, export.last_seen_at);
        let mut snapshot: Option<i128> = None;
        let mut last_seen = HashMap::new();
        for row in export.rows() {
            let (line, record) = row?;
            let at = |cell: &str| format!("{} line {line}: {cell}", path.display());
            let taken = parse_time(&record[snapshot_at]).with_context(|| at(SNAPSHOT_AT))?;
            snapshot = Some(snapshot.map_or(taken, |s| s.min(taken)));
            let seen =
                parse_optional_time(&record[last_seen_at]).with_context(|| at(LAST_SEEN_AT))?;
            if last_seen.insert(record[id].to_owned(), seen).is_some() {
                bail!("{}: customer {:?} appears twice", at(ID), &record[id]);
            }
        }
        let snapshot = snapshot.ok_or_else(|| {
            anyhow!(
                "{} has no rows, so its snapshot time is unknown",
                path.display()
            )
        })?;
        Ok(Self {
            snapshot,
            last_seen,
        })
    }
}

/// What labelling did with the rows of the old export.
#[derive(Debug, Default)]
pub(super) struct LabelTally {
    pub(super) rows: u64,
    pub(super) labelled: u64,
    pub(super) churned: u64,
    pub(super) missing: u64,
    pub(super) too_recent: u64,
    pub(super) inactive_before: u64,
    pub(super) anonymous_missing: u64,
    /// Shortest and longest time between a labelled snapshot and the later export.
    pub(super) gap: Option<(i128, i128)>,
}

pub(super) fn label_churn(args: &LabelChurnArgs) -> anyhow::Result<ExitCode> {
    ensure!(
        args.horizon_days.is_finite() && args.horizon_days > 0.0,
        "--horizon-days must be a positive number of days, got {}",
        args.horizon_days
    );
    if let Some(days) = args.active_within_days {
        ensure!(
            days.is_finite() && days > 0.0,
            "--active-within-days must be a positive number of days, got {days}"
        );
    }
    let horizon = days_ns(args.horizon_days);
    let current = Current::read(&args.current)?;
    let mut old = Export::open(&args.snapshot)?;
    ensure!(
        !old.headers.iter().any(|h| h == CHURNED),
        "{} already has a {CHURNED:?} column",
        args.snapshot.display()
    );
    let (id, snapshot_at, last_seen_at) = (old.id, old.snapshot_at, old.last_seen_at);
    // The snapshot and activity times are labelling inputs, not features.
    let keep: Vec<usize> = (0..old.headers.len())
        .filter(|&c| c != snapshot_at && c != last_seen_at)
        .collect();

    let partial = beside(&args.out, ".partial");
    let _scratch = Scratch(vec![partial.clone()]);
    let mut writer = csv::Writer::from_path(&partial)
        .with_context(|| format!("cannot write {}", partial.display()))?;
    let mut header: Vec<&str> = keep.iter().map(|&c| &old.headers[c]).collect();
    header.push(CHURNED);
    writer.write_record(&header)?;
    let mut tally = LabelTally::default();
    let snapshot_path = args.snapshot.display().to_string();
    for row in old.rows() {
        let (line, record) = row?;
        let at = |cell: &str| format!("{snapshot_path} line {line}: {cell}");
        tally.rows += 1;
        let taken = parse_time(&record[snapshot_at]).with_context(|| at(SNAPSHOT_AT))?;
        if taken + horizon > current.snapshot {
            tally.too_recent += 1;
            continue;
        }
        if let Some(days) = args.active_within_days {
            let seen =
                parse_optional_time(&record[last_seen_at]).with_context(|| at(LAST_SEEN_AT))?;
            if seen.is_none_or(|seen| seen <= taken - days_ns(days)) {
                tally.inactive_before += 1;
                continue;
            }
        }
        let customer = &record[id];
        let churned = match current.last_seen.get(customer) {
            Some(Some(seen)) => *seen <= taken,
            Some(None) => true,
            // A visitor's profile goes when it is merged into the customer they signed up as:
            // that is activity, not churn, and the export cannot tell it from an erasure.
            None if customer.starts_with(ANONYMOUS_KEY_PREFIX) => {
                tally.anonymous_missing += 1;
                continue;
            }
            None => {
                tally.missing += 1;
                true
            }
        };
        tally.labelled += 1;
        tally.churned += u64::from(churned);
        let gap = current.snapshot - taken;
        tally.gap = Some(
            tally
                .gap
                .map_or((gap, gap), |(lo, hi)| (lo.min(gap), hi.max(gap))),
        );
        let label = if churned { "1" } else { "0" };
        writer.write_record(keep.iter().map(|&c| &record[c]).chain([label]))?;
    }
    writer
        .flush()
        .with_context(|| format!("cannot write {}", partial.display()))?;
    drop(writer);

    let old_enough = tally.rows - tally.too_recent;
    if old_enough == 0 {
        bail!(
            "no row of {} is old enough to label: {} of {} rows were taken less than {} days \
             before {}'s snapshot ({}), so the horizon after them has not passed; export again \
             later or label an older snapshot",
            args.snapshot.display(),
            tally.too_recent,
            tally.rows,
            args.horizon_days,
            args.current.display(),
            rfc3339(current.snapshot)
        );
    }
    if tally.labelled == 0 {
        bail!(
            "no row of {} is left to label: of {old_enough} rows old enough, {} were inactive \
             before their snapshot and {} anonymous visitors are missing from {}",
            args.snapshot.display(),
            tally.inactive_before,
            tally.anonymous_missing,
            args.current.display()
        );
    }
    std::fs::rename(&partial, &args.out)
        .with_context(|| format!("cannot write {}", args.out.display()))?;
    report(args, &tally);
    Ok(ExitCode::SUCCESS)
}

pub(super) fn report(args: &LabelChurnArgs, tally: &LabelTally) {
    println!(
        "labelled {} rows to {}: {} churned, {} active",
        tally.labelled,
        args.out.display(),
        tally.churned,
        tally.labelled - tally.churned
    );
    println!(
        "  {} of the churned are missing from {} (erased, or not exported) and count as churned",
        tally.missing,
        args.current.display()
    );
    println!(
        "  left out: {} taken less than {} days before the current snapshot, {} anonymous \
         visitors missing from it (merged into a customer, or erased), {} inactive before \
         their snapshot",
        tally.too_recent, args.horizon_days, tally.anonymous_missing, tally.inactive_before
    );
    if let Some((lo, hi)) = tally.gap {
        println!(
            "  labels cover {:.1} to {:.1} days after each snapshot (horizon {} days)",
            ns_days(lo),
            ns_days(hi),
            args.horizon_days
        );
        if ns_days(hi) > 1.1 * args.horizon_days {
            println!(
                "  note: activity anywhere in that longer window counts; export again exactly \
                 the horizon after the snapshot to label over the horizon itself"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use iee_store::keys;

    use super::super::export::profile_key;
    use super::*;

    #[test]
    fn numbers_are_compact_and_round_trip() {
        assert_eq!(number(3.0), "3");
        assert_eq!(number(-0.0), "0");
        assert_eq!(number(0.25), "0.25");
        for v in [1e-300, 0.1 + 0.2, 123_456.789, 1e20] {
            assert_eq!(number(v).parse::<f64>().ok(), Some(v), "{}", number(v));
        }
        assert!(number(1e-300).len() < 10);
    }

    #[test]
    fn profile_keys_are_recognised_in_full() {
        let key = keys::profile(7, "acme", "anon:v:1");
        assert_eq!(profile_key(&key, "acme"), Some("anon:v:1"));
        assert_eq!(profile_key(&key, "acm"), None);
        assert_eq!(profile_key(&keys::profile(7, "acme-eu", "c"), "acme"), None);
        assert_eq!(profile_key(&keys::profile(7, "acme", ""), "acme"), None);
        assert_eq!(profile_key("iee:{s7}:dedup:x}:p:acme:c", "acme"), None);
        assert_eq!(profile_key(&keys::dedup(7, "acme", "e"), "acme"), None);
    }

    #[test]
    fn tenant_ids_are_checked_before_they_reach_a_pattern() {
        assert!(valid_tenant("acme-eu_1"));
        for bad in ["", "Acme", "a*", "a[b]", "a:b", &"x".repeat(65)] {
            assert!(!valid_tenant(bad), "{bad}");
        }
    }

    #[test]
    fn times_round_trip_through_rfc3339() {
        let t = parse_time("2024-01-01T00:00:00.5Z").ok();
        assert_eq!(t, Some(1_704_067_200_500_000_000));
        assert_eq!(
            rfc3339(1_704_067_200_500_000_000),
            "2024-01-01T00:00:00.500Z"
        );
        assert!(parse_optional_time("").is_ok_and(|t| t.is_none()));
        assert!(parse_time("yesterday").is_err());
    }
}
