//! `iee train` as a user runs it: a generated CSV export in, printed metrics and a model
//! artifact that parses out.
#![allow(clippy::unwrap_used)]

use std::{
    fmt::Write as _,
    path::{Path, PathBuf},
    process::{Command, Output},
};

use iee_predict::model::{Kind, ModelArtifact, ModelBody};

/// A temporary directory removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("iee-train-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A churn export of 3,000 customers with numeric, text and blank cells and yes/no labels:
/// churn rises with inactivity and support tickets and on the monthly plan.
fn churn_export(path: &Path) {
    // A fixed xorshift stream keeps the file identical from run to run.
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 11) as f64 / (1u64 << 53) as f64
    };
    let mut csv =
        String::from("customer_id,days_since_last_order,tickets_90d,plan,region,churned\n");
    for i in 0..3000 {
        let inactive = (next() * 120.0).floor();
        let tickets = (next() * 6.0).floor();
        let plan = if next() < 0.5 { "monthly" } else { "annual" };
        let region = ["north", "south", "east", "west"][(next() * 4.0) as usize % 4];
        let z = -3.0 + 0.03 * inactive + 0.4 * tickets + if plan == "monthly" { 1.0 } else { 0.0 };
        let churned = next() < 1.0 / (1.0 + (-z).exp());
        let tickets = if i % 9 == 0 {
            String::new()
        } else {
            tickets.to_string()
        };
        let label = if churned { "Yes" } else { "no" };
        writeln!(csv, "c{i},{inactive},{tickets},{plan},{region},{label}").unwrap();
    }
    std::fs::write(path, csv).unwrap();
}

fn iee(args: &[&str]) -> Output {
    Command::new(iee_test_support::bin_path("iee"))
        .args(args)
        .output()
        .unwrap()
}

/// The value printed on the metrics line `name`.
fn printed_metric(stdout: &str, name: &str) -> f64 {
    stdout
        .lines()
        .find_map(|line| {
            let mut parts = line.split_whitespace();
            (parts.next() == Some(name)).then(|| parts.next().unwrap().parse().unwrap())
        })
        .unwrap_or_else(|| panic!("no {name} line in:\n{stdout}"))
}

#[test]
fn train_churn_prints_holdout_metrics_and_writes_a_valid_artifact() {
    let dir = TempDir::new("churn");
    let csv = dir.0.join("customers.csv");
    let out = dir.0.join("churn.json");
    churn_export(&csv);
    let output = iee(&[
        "train",
        "churn",
        "--csv",
        csv.to_str().unwrap(),
        "--label",
        "churned",
        "--id",
        "customer_id",
        "--test-fraction",
        "0.25",
        "--seed",
        "7",
        "--out",
        out.to_str().unwrap(),
    ]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout.contains("rows: 2250 training, 750 holdout"),
        "{stdout}"
    );
    let auc = printed_metric(&stdout, "roc_auc");
    assert!((0.7..=1.0).contains(&auc), "{stdout}");
    let pr_auc = printed_metric(&stdout, "pr_auc");
    assert!((0.0..=1.0).contains(&pr_auc), "{stdout}");
    let log_loss = printed_metric(&stdout, "log_loss");
    assert!(
        log_loss < printed_metric(&stdout, "log_loss_base_rate"),
        "{stdout}"
    );
    let brier = printed_metric(&stdout, "brier");
    assert!((0.0..0.25).contains(&brier), "{stdout}");

    let artifact = ModelArtifact::from_json(&std::fs::read(&out).unwrap(), |_| true).unwrap();
    assert_eq!(artifact.kind, Kind::Churn);
    assert_eq!(artifact.model_id, "churn-logreg");
    assert_eq!(
        artifact.feature_names,
        vec!["days_since_last_order", "tickets_90d", "plan", "region"]
    );
    assert!((artifact.metrics["roc_auc"] - auc).abs() < 1e-6);
    assert_eq!(artifact.training_data["rows"], "3000");
    let ModelBody::Logistic(model) = &artifact.body else {
        panic!("a churn artifact holds a logistic model")
    };
    // days_since_last_order, tickets_90d, then plan and region categories.
    assert_eq!(model.weights.len(), 2 + 2 + 4);
    assert!(
        model.weights[0] > 0.3 && model.weights[1] > 0.2,
        "{:?}",
        model.weights
    );
}

#[test]
fn train_churn_without_the_label_column_fails_naming_the_columns() {
    let dir = TempDir::new("missing-label");
    let csv = dir.0.join("customers.csv");
    churn_export(&csv);
    let output = iee(&[
        "train",
        "churn",
        "--csv",
        csv.to_str().unwrap(),
        "--label",
        "cancelled",
        "--out",
        dir.0.join("never.json").to_str().unwrap(),
    ]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("no column \"cancelled\"")
            && stderr
                .contains("customer_id, days_since_last_order, tickets_90d, plan, region, churned"),
        "{stderr}"
    );
    assert!(!dir.0.join("never.json").exists());
}

#[test]
fn train_clv_from_a_summary_prints_the_fitted_parameters() {
    let dir = TempDir::new("clv");
    let csv = dir.0.join("rfm.csv");
    let out = dir.0.join("clv.json");
    let mut summary = String::from("id,frequency,recency,T,monetary_value\n");
    // Repeat patterns with both steady buyers and ones who went quiet, so the fit is interior.
    for (i, (x, tx, t, m)) in [
        (0, 0.0, 38.0, 0.0),
        (1, 10.0, 38.0, 12.5),
        (2, 30.0, 38.0, 20.0),
        (0, 0.0, 30.0, 0.0),
        (4, 35.0, 36.0, 18.0),
        (1, 2.0, 33.0, 40.0),
        (0, 0.0, 35.0, 0.0),
        (3, 20.0, 37.0, 25.0),
        (6, 8.0, 38.0, 15.0),
        (2, 3.0, 36.0, 30.0),
        (0, 0.0, 38.0, 0.0),
        (5, 37.0, 38.0, 22.0),
        (1, 1.0, 37.0, 9.0),
        (0, 0.0, 32.0, 0.0),
        (2, 5.0, 38.0, 14.0),
        (8, 36.0, 38.0, 27.0),
    ]
    .iter()
    .cycle()
    .take(400)
    .enumerate()
    {
        writeln!(summary, "{i},{x},{tx},{t},{m}").unwrap();
    }
    std::fs::write(&csv, summary).unwrap();
    let output = iee(&[
        "train",
        "clv",
        "--summary",
        csv.to_str().unwrap(),
        "--time-unit-days",
        "7",
        "--out",
        out.to_str().unwrap(),
    ]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    for parameter in ["r", "alpha", "a", "b", "p", "q", "v"] {
        assert!(
            printed_metric(&stdout, parameter) > 0.0,
            "{parameter}: {stdout}"
        );
    }
    let artifact = ModelArtifact::from_json(&std::fs::read(&out).unwrap(), |_| true).unwrap();
    assert_eq!(artifact.kind, Kind::LifetimeValue);
}
