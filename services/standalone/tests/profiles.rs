//! `iee profiles export|label-churn` as a user runs them: profiles stored in a private Redis out
//! to a feature CSV, two snapshots into churn labels, and the labels into a trained model.
#![allow(clippy::unwrap_used)]

use std::{
    collections::HashMap,
    fmt::Write as _,
    path::{Path, PathBuf},
    process::{Command, Output},
    time::{SystemTime, UNIX_EPOCH},
};

use iee_api::{
    pb::{
        common::{CustomerRef, JourneyStage, SurveyAnswer, SurveyKind},
        profile::{Profile, Rfm, SurveyRecord, Surveys},
    },
    shard::shard_of,
};
use iee_predict::{
    features::is_known,
    model::{Kind, ModelArtifact, ModelBody},
};
use iee_test_support::RedisServer;
use prost::Message;
use prost_types::Timestamp;

const SHARDS: u32 = 8;

/// A temporary directory removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("iee-profiles-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }

    fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn iee(args: &[&str]) -> Output {
    Command::new(iee_test_support::bin_path("iee"))
        .args(args)
        .output()
        .unwrap()
}

fn succeeded(output: &Output) -> String {
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

/// The header and the rows (column → cell) of a CSV.
fn read_csv(text: &[u8]) -> (Vec<String>, Vec<HashMap<String, String>>) {
    let mut reader = csv::Reader::from_reader(text);
    let header: Vec<String> = reader
        .headers()
        .unwrap()
        .iter()
        .map(str::to_owned)
        .collect();
    let rows = reader
        .records()
        .map(|r| {
            let r = r.unwrap();
            header
                .iter()
                .cloned()
                .zip(r.iter().map(str::to_owned))
                .collect()
        })
        .collect();
    (header, rows)
}

fn by_id(rows: &[HashMap<String, String>]) -> HashMap<String, HashMap<String, String>> {
    rows.iter()
        .map(|r| (r["customer_id"].clone(), r.clone()))
        .collect()
}

fn seconds_ago(seconds: u64) -> Timestamp {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    Timestamp {
        seconds: i64::try_from(now.as_secs() - seconds).unwrap(),
        nanos: 0,
    }
}

/// Stores `profile` where the profile service keeps it: `iee:{s<n>}:p:<tenant>:<key>`.
fn store(conn: &mut redis::Connection, key: &str, profile: &Profile) {
    let tenant = &profile.customer.as_ref().unwrap().tenant_id;
    let shard = shard_of(tenant, key, SHARDS);
    let _: () = redis::cmd("SET")
        .arg(iee_store::keys::profile(shard, tenant, key))
        .arg(profile.encode_to_vec())
        .query(conn)
        .unwrap();
}

fn customer(tenant: &str, customer_id: &str, anonymous_id: &str) -> Option<CustomerRef> {
    Some(CustomerRef {
        tenant_id: tenant.to_owned(),
        customer_id: customer_id.to_owned(),
        anonymous_id: anonymous_id.to_owned(),
    })
}

#[test]
fn export_writes_one_row_per_live_profile_with_catalogue_columns() {
    let redis = RedisServer::start();
    let mut conn = redis.connection();
    let last_seen = seconds_ago(3 * 86_400);
    let buyer = Profile {
        customer: customer("acme", "c-1", ""),
        first_seen_at: Some(seconds_ago(40 * 86_400)),
        last_seen_at: Some(last_seen),
        rfm: Some(Rfm {
            purchase_count: 3,
            ..Rfm::default()
        }),
        journey_stage: JourneyStage::Purchase as i32,
        surveys: Some(Surveys {
            nps: Some(SurveyRecord {
                answer: Some(SurveyAnswer {
                    kind: SurveyKind::Nps as i32,
                    score: 9,
                    survey_id: String::new(),
                }),
                answered_at: Some(seconds_ago(5 * 86_400)),
                ..SurveyRecord::default()
            }),
            ..Surveys::default()
        }),
        ..Profile::default()
    };
    store(&mut conn, "c-1", &buyer);
    let quiet = Profile {
        customer: customer("acme", "c-2", ""),
        ..Profile::default()
    };
    store(&mut conn, "c-2", &quiet);
    let visitor = Profile {
        customer: customer("acme", "", "v-1"),
        last_seen_at: Some(seconds_ago(60)),
        ..Profile::default()
    };
    store(&mut conn, "anon:v-1", &visitor);
    let merged = Profile {
        customer: customer("acme", "", "v-2"),
        merged_into_customer_id: "c-1".to_owned(),
        ..Profile::default()
    };
    store(&mut conn, "anon:v-2", &merged);
    let other_tenant = Profile {
        customer: customer("globex", "c-9", ""),
        ..Profile::default()
    };
    store(&mut conn, "c-9", &other_tenant);

    let dir = TempDir::new("export");
    let out = dir.path("export.csv");
    let before = seconds_ago(1).seconds;
    let url = redis.url();
    let shards = SHARDS.to_string();
    let stdout = succeeded(&iee(&[
        "profiles",
        "export",
        "--redis-url",
        &url,
        "--tenant",
        "acme",
        "--shard-count",
        &shards,
        "--out",
        out.to_str().unwrap(),
    ]));
    assert!(
        stdout.contains("exported 3 profiles of tenant acme"),
        "{stdout}"
    );
    assert!(stdout.contains("1 anonymous profiles merged"), "{stdout}");
    // Not a cluster: one pass over the keyspace rather than one per shard.
    assert!(stdout.contains("in one pass"), "{stdout}");
    assert!(!dir.path("export.csv.spool").exists());

    let (header, rows) = read_csv(&std::fs::read(&out).unwrap());
    assert_eq!(header[..3], ["customer_id", "snapshot_at", "last_seen_at"]);
    let features = &header[3..];
    assert!(features.is_sorted(), "{features:?}");
    assert!(features.iter().all(|f| is_known(f)), "{features:?}");
    for present in [
        "journey.stage",
        "survey.nps.score",
        "survey.nps.days_since",
        "frequency.purchases",
        "recency.days_since_last_seen",
        "activity.7d.page_view",
    ] {
        assert!(features.iter().any(|f| f == present), "{present}");
    }
    // Absent from every profile, so no column.
    for absent in [
        "monetary.aov",
        "cart.minutes_since_change",
        "survey.csat.score",
    ] {
        assert!(!features.iter().any(|f| f == absent), "{absent}");
    }

    let rows = by_id(&rows);
    let mut ids: Vec<&String> = rows.keys().collect();
    ids.sort();
    assert_eq!(ids, ["anon:v-1", "c-1", "c-2"]);
    let c1 = &rows["c-1"];
    let snapshot: Timestamp = c1["snapshot_at"].parse().unwrap();
    assert!(
        (before..=seconds_ago(0).seconds).contains(&snapshot.seconds),
        "{}",
        c1["snapshot_at"]
    );
    assert_eq!(c1["last_seen_at"], last_seen.to_string());
    assert_eq!(c1["journey.stage"], "JOURNEY_STAGE_PURCHASE");
    assert_eq!(c1["survey.nps.score"], "9");
    assert_eq!(c1["frequency.purchases"], "3");
    let recency: f64 = c1["recency.days_since_last_seen"].parse().unwrap();
    assert!((recency - 3.0).abs() < 0.01, "{recency}");
    let c2 = &rows["c-2"];
    assert_eq!(c2["snapshot_at"], c1["snapshot_at"]);
    assert_eq!(c2["last_seen_at"], "");
    assert_eq!(c2["survey.nps.score"], "");
    assert_eq!(c2["journey.stage"], "");
    assert_eq!(c2["identity.known"], "1");
    assert_eq!(rows["anon:v-1"]["identity.known"], "0");

    // Scanned shard by shard (as on Redis Cluster), the export finds the same profiles. Without
    // --out the CSV goes to standard output and the summary to standard error.
    let output = iee(&[
        "profiles",
        "export",
        "--redis-url",
        &url,
        "--tenant",
        "acme",
        "--shard-count",
        &shards,
        "--scan",
        "per-shard",
    ]);
    let (per_shard_header, per_shard_rows) = read_csv(succeeded(&output).as_bytes());
    assert_eq!(per_shard_header, header);
    let mut per_shard_ids: Vec<String> = per_shard_rows
        .iter()
        .map(|r| r["customer_id"].clone())
        .collect();
    per_shard_ids.sort();
    assert_eq!(per_shard_ids, ["anon:v-1", "c-1", "c-2"]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("exported 3 profiles") && stderr.contains("8 shards scanned one by one"),
        "{stderr}"
    );
}

#[test]
fn export_refuses_a_malformed_tenant() {
    let output = iee(&[
        "profiles",
        "export",
        "--redis-url",
        "redis://127.0.0.1:1",
        "--tenant",
        "acme*",
    ]);
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("not a tenant id"));
}

const OLD: &str = "\
customer_id,snapshot_at,last_seen_at,recency.days_since_last_seen,journey.stage
active,2024-01-01T00:00:00Z,2023-12-30T00:00:00Z,2,JOURNEY_STAGE_PURCHASE
gone,2024-01-01T00:00:00Z,2023-12-20T00:00:00Z,12,
erased,2024-01-01T00:00:00Z,2023-12-31T00:00:00Z,1,JOURNEY_STAGE_LOYALTY
never,2024-01-01T00:00:00Z,,,
long-gone,2024-01-01T00:00:00Z,2023-01-01T00:00:00Z,365,
anon:visitor,2024-01-01T00:00:00Z,2023-12-31T00:00:00Z,1,
recent,2024-03-15T00:00:00Z,2024-03-14T00:00:00Z,1,
";

const NEW: &str = "\
customer_id,snapshot_at,last_seen_at,recency.days_since_last_seen,journey.stage
active,2024-04-01T00:00:00Z,2024-02-10T00:00:00Z,51,JOURNEY_STAGE_PURCHASE
gone,2024-04-01T00:00:00Z,2023-12-20T00:00:00Z,103,
never,2024-04-01T00:00:00Z,,,
long-gone,2024-04-01T00:00:00Z,2023-01-01T00:00:00Z,456,
recent,2024-04-01T00:00:00Z,2024-03-30T00:00:00Z,2,
";

fn label(dir: &TempDir, old: &str, new: &str, extra: &[&str]) -> (Output, PathBuf) {
    let (old_path, new_path, out) = (dir.path("old.csv"), dir.path("new.csv"), dir.path("l.csv"));
    std::fs::write(&old_path, old).unwrap();
    std::fs::write(&new_path, new).unwrap();
    let mut args = vec![
        "profiles",
        "label-churn",
        "--snapshot",
        old_path.to_str().unwrap(),
        "--current",
        new_path.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    (iee(&args), out)
}

#[test]
fn label_churn_marks_customers_without_activity_after_the_snapshot() {
    let dir = TempDir::new("label");
    let (output, out) = label(&dir, OLD, NEW, &["--horizon-days", "90"]);
    let stdout = succeeded(&output);
    assert!(
        stdout.contains("labelled 5 rows") && stdout.contains("4 churned, 1 active"),
        "{stdout}"
    );
    assert!(stdout.contains("1 of the churned are missing"), "{stdout}");
    assert!(
        stdout.contains("1 taken less than 90 days") && stdout.contains("1 anonymous visitors"),
        "{stdout}"
    );

    let (header, rows) = read_csv(&std::fs::read(&out).unwrap());
    assert_eq!(
        header,
        [
            "customer_id",
            "recency.days_since_last_seen",
            "journey.stage",
            "churned"
        ]
    );
    let rows = by_id(&rows);
    let churned: HashMap<&str, &str> = rows
        .iter()
        .map(|(id, r)| (id.as_str(), r["churned"].as_str()))
        .collect();
    assert_eq!(
        churned,
        HashMap::from([
            ("active", "0"),
            ("gone", "1"),
            ("erased", "1"),
            ("never", "1"),
            ("long-gone", "1"),
        ])
    );
    // Features are the old snapshot's, not the new one's.
    assert_eq!(rows["active"]["recency.days_since_last_seen"], "2");

    // Customers already inactive before their snapshot can be left out.
    let (output, out) = label(
        &dir,
        OLD,
        NEW,
        &["--horizon-days", "90", "--active-within-days", "90"],
    );
    let stdout = succeeded(&output);
    assert!(stdout.contains("2 inactive before"), "{stdout}");
    let (_, rows) = read_csv(&std::fs::read(&out).unwrap());
    let mut ids: Vec<String> = rows.iter().map(|r| r["customer_id"].clone()).collect();
    ids.sort();
    assert_eq!(ids, ["active", "erased", "gone"]);
}

#[test]
fn label_churn_refuses_when_no_snapshot_is_old_enough() {
    let dir = TempDir::new("too-recent");
    let (output, out) = label(&dir, OLD, NEW, &["--horizon-days", "120"]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("no row of") && stderr.contains("old enough"),
        "{stderr}"
    );
    assert!(!out.exists());
    assert!(!dir.path("l.csv.partial").exists());

    let not_an_export = "id,x\n1,2\n";
    let (output, _) = label(&dir, not_an_export, NEW, &[]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("no column \"customer_id\""), "{stderr}");
}

/// A deterministic stream in [0, 1).
fn stream(mut state: u64) -> impl FnMut() -> f64 {
    move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// An old and a new export of 400 customers in which inactivity and few purchases raise churn.
fn snapshots(old: &Path, new: &Path) {
    let mut next = stream(0x2545_f491_4f6c_dd1d);
    let header = "customer_id,snapshot_at,last_seen_at,recency.days_since_last_seen,\
                  frequency.purchases,journey.stage,sessions.count\n";
    let (mut old_csv, mut new_csv) = (header.to_owned(), header.to_owned());
    for i in 0..400 {
        let recency = (next() * 60.0).floor();
        let purchases = (next() * 8.0).floor();
        let stage = ["JOURNEY_STAGE_PURCHASE", "JOURNEY_STAGE_LOYALTY"][usize::from(next() < 0.5)];
        let sessions = (next() * 30.0).floor();
        let z = -1.0 + 0.06 * recency - 0.4 * purchases;
        let churned = next() < 1.0 / (1.0 + (-z).exp());
        let seen = format!("2023-12-{:02}T12:00:00Z", 31 - (recency as u32).min(30));
        writeln!(
            old_csv,
            "c{i},2024-01-01T00:00:00Z,{seen},{recency},{purchases},{stage},{sessions}"
        )
        .unwrap();
        let later = if churned {
            seen
        } else {
            format!("2024-03-{:02}T08:00:00Z", 1 + i % 28)
        };
        writeln!(new_csv, "c{i},2024-04-01T00:00:00Z,{later},0,0,{stage},0").unwrap();
    }
    std::fs::write(old, old_csv).unwrap();
    std::fs::write(new, new_csv).unwrap();
}

#[test]
fn a_labelled_export_trains_a_churn_model_on_catalogue_features() {
    let dir = TempDir::new("train");
    let (old, new, labelled, model) = (
        dir.path("old.csv"),
        dir.path("new.csv"),
        dir.path("labelled.csv"),
        dir.path("churn.json"),
    );
    snapshots(&old, &new);
    succeeded(&iee(&[
        "profiles",
        "label-churn",
        "--snapshot",
        old.to_str().unwrap(),
        "--current",
        new.to_str().unwrap(),
        "--horizon-days",
        "90",
        "--out",
        labelled.to_str().unwrap(),
    ]));
    let stdout = succeeded(&iee(&[
        "train",
        "churn",
        "--csv",
        labelled.to_str().unwrap(),
        "--label",
        "churned",
        "--id",
        "customer_id",
        "--out",
        model.to_str().unwrap(),
    ]));
    assert!(stdout.contains("roc_auc"), "{stdout}");
    // Every input is a catalogue feature, so the model can score live profiles.
    let artifact = ModelArtifact::from_json(&std::fs::read(&model).unwrap(), is_known).unwrap();
    assert_eq!(artifact.kind, Kind::Churn);
    assert_eq!(
        artifact.feature_names,
        [
            "recency.days_since_last_seen",
            "frequency.purchases",
            "sessions.count",
            "journey.stage"
        ]
    );
    assert_eq!(artifact.training_data["rows"], "400");
    assert!(artifact.metrics["roc_auc"] > 0.7, "{stdout}");
    let ModelBody::Logistic(model) = &artifact.body else {
        panic!("a churn artifact holds a logistic model")
    };
    assert!(
        model.weights[0] > 0.3 && model.weights[1] < -0.3,
        "{:?}",
        model.weights
    );
}

#[test]
fn satisfaction_from_an_export_leaves_out_the_answer_time_and_excluded_columns() {
    let dir = TempDir::new("satisfaction");
    let csv = dir.path("export.csv");
    let model = dir.path("satisfaction.json");
    let mut next = stream(0x9e37_79b9_7f4a_7c15);
    let mut text = String::from(
        "customer_id,snapshot_at,last_seen_at,survey.nps.score,survey.nps.days_since,\
         experience.end,sentiment.ewma\n",
    );
    for i in 0..300 {
        let sentiment = next() * 2.0 - 1.0;
        let score = (7.0 + 3.0 * sentiment + next() * 2.0 - 1.0)
            .round()
            .clamp(0.0, 10.0);
        let days = (next() * 30.0).floor();
        let end = (score - 5.0) / 5.0;
        writeln!(
            text,
            "c{i},2024-04-01T00:00:00Z,2024-03-30T00:00:00Z,{score},{days},{end},{sentiment:.3}"
        )
        .unwrap();
    }
    std::fs::write(&csv, text).unwrap();
    succeeded(&iee(&[
        "train",
        "satisfaction",
        "--csv",
        csv.to_str().unwrap(),
        "--nps",
        "survey.nps.score",
        "--id",
        "customer_id",
        "--exclude",
        "snapshot_at",
        "--exclude",
        "last_seen_at",
        "--exclude",
        "experience.*",
        "--out",
        model.to_str().unwrap(),
    ]));
    let artifact = ModelArtifact::from_json(&std::fs::read(&model).unwrap(), is_known).unwrap();
    assert_eq!(artifact.kind, Kind::Satisfaction);
    assert_eq!(artifact.feature_names, ["sentiment.ewma"]);
}
