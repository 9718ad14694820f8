//! `iee train churn`: a regularised logistic regression from any labelled tabular export,
//! evaluated on a stratified holdout.

use std::{collections::BTreeMap, fmt::Write as _, io::Read, time::Instant};

use crate::model::{
    ARTIFACT_FORMAT, Kind, LogisticModel, ModelArtifact, ModelBody, encoder::Encoder, logistic,
    metrics,
};

use super::{
    TrainError, TrainReport,
    csv::{Labelled, load_labelled_excluding, stratified_split},
    dates::version_now,
};

/// How to train a churn model.
#[derive(Debug, Clone, PartialEq)]
pub struct ChurnOptions {
    /// The label column (1/0, true/false, yes/no).
    pub label: String,
    /// A column identifying rows, excluded from the features.
    pub id: Option<String>,
    /// More columns to leave out of the features: names, or prefixes ending in `*`.
    pub exclude: Vec<String>,
    /// Share of each class held out for evaluation, in [0, 0.9].
    pub test_fraction: f64,
    /// Seed of the holdout split.
    pub seed: u64,
    /// Ridge penalty on the (standardised) weights; see [`logistic::fit`].
    pub l2: f64,
    /// The model's id.
    pub model_id: String,
    /// The horizon the label was defined over, in days (recorded with the model).
    pub horizon_days: f64,
    /// Where the data came from (a file name), recorded in the training summary.
    pub source: Option<String>,
}

impl ChurnOptions {
    /// Defaults: 20% holdout, seed 0, l2 = 1, model `churn-logreg`, 90-day horizon.
    pub fn new(label: impl Into<String>) -> Self {
        Self {
            label: label.into(),
            id: None,
            exclude: Vec::new(),
            test_fraction: 0.2,
            seed: 0,
            l2: 1.0,
            model_id: "churn-logreg".to_owned(),
            horizon_days: 90.0,
            source: None,
        }
    }
}

/// Trains a churn model from a CSV: numeric columns standardised, text columns one-hot encoded,
/// blanks imputed (see [`Encoder`]), fitted on the training part and evaluated on the holdout
/// (ROC AUC, PR AUC, log loss, Brier score).
///
/// The features are named after the CSV's columns. A model is served on profiles only if those
/// names are catalogue features (checked when it is registered), so export profiles with their
/// catalogue names; a model trained on other columns can still score explicit feature vectors
/// that use the same names, once registration accepts them.
pub fn train_churn(
    reader: impl Read,
    options: &ChurnOptions,
) -> Result<(ModelArtifact, TrainReport), TrainError> {
    let started = Instant::now();
    check_fraction(options.test_fraction)?;
    let Labelled { features, labels } = load_labelled_excluding(
        reader,
        &options.label,
        options.id.as_deref(),
        &options.exclude,
    )?;
    let classes: Vec<usize> = labels.iter().map(|&y| usize::from(y > 0.5)).collect();
    let split = stratified_split(&classes, options.test_fraction, options.seed);
    let pick = |rows: &[usize]| -> (Vec<_>, Vec<f64>) {
        (
            rows.iter().map(|&i| features.rows[i].clone()).collect(),
            rows.iter().map(|&i| labels[i]).collect(),
        )
    };
    let (train_rows, train_y) = pick(&split.train);
    let (test_rows, test_y) = pick(&split.test);

    let encoder = Encoder::fit(&train_rows, &features.numeric, &features.categorical);
    let x: Vec<Vec<f64>> = train_rows.iter().map(|r| encoder.encode(r)).collect();
    let (weights, intercept) = logistic::fit(&x, &train_y, options.l2)?;

    let scores: Vec<f64> = test_rows
        .iter()
        .map(|r| logistic::probability(&weights, intercept, &encoder.encode(r)))
        .collect();
    let mut quality = BTreeMap::new();
    for (name, value) in [
        ("roc_auc", metrics::roc_auc(&scores, &test_y)),
        ("pr_auc", metrics::pr_auc(&scores, &test_y)),
        ("log_loss", metrics::log_loss(&scores, &test_y)),
        ("brier", metrics::brier(&scores, &test_y)),
    ] {
        if let Some(value) = value {
            quality.insert(name.to_owned(), value);
        }
    }
    if let Some(base) = metrics::log_loss(&vec![mean(&train_y); test_y.len()], &test_y) {
        // What a model without features (the training base rate) scores, for comparison.
        quality.insert("log_loss_base_rate".to_owned(), base);
    }

    let positives = labels.iter().filter(|&&y| y > 0.5).count();
    let mut training_data = BTreeMap::from([
        ("rows".to_owned(), labels.len().to_string()),
        ("positives".to_owned(), positives.to_string()),
        ("training_rows".to_owned(), split.train.len().to_string()),
        ("holdout_rows".to_owned(), split.test.len().to_string()),
        ("label".to_owned(), options.label.clone()),
        ("numeric_columns".to_owned(), features.numeric.join(",")),
        ("text_columns".to_owned(), features.categorical.join(",")),
        ("seed".to_owned(), options.seed.to_string()),
    ]);
    if let Some(source) = &options.source {
        training_data.insert("source".to_owned(), source.clone());
    }
    if !options.exclude.is_empty() {
        training_data.insert("excluded".to_owned(), options.exclude.join(","));
    }
    let (version, created_at_ms) = version_now();
    let section = largest_weights(&encoder, &weights, 10);
    let artifact = ModelArtifact {
        format: ARTIFACT_FORMAT,
        model_id: options.model_id.clone(),
        version: version.clone(),
        kind: Kind::Churn,
        description: format!(
            "L2-regularised logistic regression (l2 = {}) on {} numeric and {} text columns, \
             {} encoded inputs; label {:?} over {} days",
            options.l2,
            features.numeric.len(),
            features.categorical.len(),
            encoder.width(),
            options.label,
            options.horizon_days
        ),
        created_at_ms,
        feature_names: encoder.feature_names(),
        training_examples: split.train.len() as u64,
        metrics: quality.clone(),
        training_data,
        body: ModelBody::Logistic(LogisticModel {
            encoder,
            weights,
            intercept,
            horizon_days: options.horizon_days,
        }),
    };
    artifact.check(|_| true)?;
    let report = TrainReport {
        model_id: artifact.model_id.clone(),
        version,
        kind: Kind::Churn,
        elapsed: started.elapsed(),
        training_rows: split.train.len(),
        holdout_rows: split.test.len(),
        parameters: vec![("intercept".to_owned(), intercept)],
        metrics: quality,
        sections: vec![section],
    };
    Ok((artifact, report))
}

pub(crate) fn check_fraction(test_fraction: f64) -> Result<(), TrainError> {
    if (0.0..=0.9).contains(&test_fraction) {
        Ok(())
    } else {
        Err(TrainError::Invalid(format!(
            "test fraction {test_fraction} must be between 0 and 0.9"
        )))
    }
}

fn mean(values: &[f64]) -> f64 {
    values.iter().sum::<f64>() / values.len().max(1) as f64
}

/// The `k` inputs with the largest absolute weights, as a table.
pub(crate) fn largest_weights(encoder: &Encoder, weights: &[f64], k: usize) -> String {
    let mut inputs: Vec<((String, Option<String>), f64)> = encoder
        .input_names()
        .into_iter()
        .zip(weights.iter().copied())
        .collect();
    inputs.sort_by(|a, b| b.1.abs().total_cmp(&a.1.abs()));
    let mut out = String::from("largest weights (log-odds per standard deviation or category):\n");
    for ((feature, category), w) in inputs.into_iter().take(k) {
        let name = match category {
            Some(c) => format!("{feature}={c}"),
            None => feature,
        };
        let _ = writeln!(out, "  {w:>+9.4}  {name}");
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::fmt::Write as _;

    use rand::{Rng, SeedableRng, rngs::SmallRng};

    use super::*;

    /// 2,000 customers: churn rises with inactivity and the basic plan; sessions has blanks.
    fn export(seed: u64) -> String {
        let mut rng = SmallRng::seed_from_u64(seed);
        let mut csv = String::from("customer_id,days_inactive,sessions,plan,churned\n");
        for i in 0..2000 {
            let inactive: f64 = rng.random_range(0.0..60.0);
            let plan = ["basic", "pro", "team"][rng.random_range(0..3)];
            let z = -2.0 + 0.06 * inactive + if plan == "basic" { 1.0 } else { 0.0 };
            let churned = rng.random::<f64>() < 1.0 / (1.0 + (-z).exp());
            let sessions = if i % 7 == 0 {
                String::new()
            } else {
                rng.random_range(0..30).to_string()
            };
            let label = ["no", "yes"][usize::from(churned)];
            let _ = writeln!(csv, "c{i},{inactive:.1},{sessions},{plan},{label}");
        }
        csv
    }

    #[test]
    fn trains_and_evaluates_on_a_mixed_export() {
        let mut options = ChurnOptions::new("churned");
        options.id = Some("customer_id".to_owned());
        options.seed = 5;
        let (artifact, report) = train_churn(export(1).as_bytes(), &options).unwrap();
        assert_eq!(report.training_rows, 1600);
        assert_eq!(report.holdout_rows, 400);
        assert!(report.metrics["roc_auc"] > 0.75, "{report}");
        assert!(report.metrics["log_loss"] < report.metrics["log_loss_base_rate"]);
        assert_eq!(
            artifact.feature_names,
            vec!["days_inactive", "sessions", "plan"]
        );
        let ModelBody::Logistic(model) = &artifact.body else {
            panic!("not a logistic model")
        };
        assert!(
            model.weights[0] > 0.5,
            "inactivity raises churn: {:?}",
            model.weights
        );
        let parsed = ModelArtifact::from_json(&artifact.to_json(), |_| true).unwrap();
        assert_eq!(parsed.feature_names, artifact.feature_names);
        assert_eq!(parsed.metrics.len(), artifact.metrics.len());
        assert!(report.to_string().contains("roc_auc"));
    }

    #[test]
    fn refuses_a_bad_test_fraction() {
        let mut options = ChurnOptions::new("churned");
        options.test_fraction = 1.0;
        assert!(matches!(
            train_churn(export(1).as_bytes(), &options),
            Err(TrainError::Invalid(_))
        ));
    }
}
