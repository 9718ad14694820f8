//! `iee train satisfaction`: a multinomial logistic regression from profile features to the
//! NPS class (promoter 9-10, passive 7-8, detractor 0-6), evaluated on a stratified holdout.

use std::{collections::BTreeMap, io::Read, time::Instant};

use crate::model::{
    ARTIFACT_FORMAT, Kind, ModelArtifact, ModelBody, SoftmaxModel, encoder::Encoder, softmax,
};

use super::{
    TrainError, TrainReport,
    churn::check_fraction,
    csv::{Table, is_missing, stratified_split},
    dates::version_now,
};

/// The classes, in model order.
pub const CLASSES: [&str; 3] = ["promoter", "passive", "detractor"];

/// How to train a satisfaction model.
#[derive(Debug, Clone, PartialEq)]
pub struct SatisfactionOptions {
    /// The NPS answer column (0-10); rows with a blank answer are skipped.
    pub nps: String,
    /// A column identifying rows, excluded from the features.
    pub id: Option<String>,
    /// More columns to leave out of the features: names, or prefixes ending in `*`.
    pub exclude: Vec<String>,
    /// Share of each class held out for evaluation, in [0, 0.9].
    pub test_fraction: f64,
    /// Seed of the holdout split.
    pub seed: u64,
    /// Ridge penalty on the (standardised) weights; see [`softmax::fit`].
    pub l2: f64,
    /// The model's id.
    pub model_id: String,
    /// Where the data came from (a file name), recorded in the training summary.
    pub source: Option<String>,
}

impl SatisfactionOptions {
    /// Defaults: 20% holdout, seed 0, l2 = 1, model `satisfaction-softmax`.
    pub fn new(nps: impl Into<String>) -> Self {
        Self {
            nps: nps.into(),
            id: None,
            exclude: Vec::new(),
            test_fraction: 0.2,
            seed: 0,
            l2: 1.0,
            model_id: "satisfaction-softmax".to_owned(),
            source: None,
        }
    }
}

/// The class of an NPS answer: 0 promoter (9-10), 1 passive (7-8), 2 detractor (0-6).
pub fn nps_class(score: f64) -> Option<usize> {
    if score.fract() != 0.0 || !(0.0..=10.0).contains(&score) {
        return None;
    }
    Some(match score {
        s if s >= 9.0 => 0,
        s if s >= 7.0 => 1,
        _ => 2,
    })
}

/// Trains a satisfaction model from a CSV of features with an NPS answer column. The answer
/// column is never a feature, nor is its time beside it (`survey.nps.days_since` for
/// `survey.nps.score`): it describes the label, and is present exactly when the label is.
pub fn train_satisfaction(
    reader: impl Read,
    options: &SatisfactionOptions,
) -> Result<(ModelArtifact, TrainReport), TrainError> {
    let started = Instant::now();
    check_fraction(options.test_fraction)?;
    let table = Table::read(reader)?;
    let nps_col = table.column(&options.nps)?;
    let mut exclude = vec![nps_col];
    if let Some(id) = &options.id {
        exclude.push(table.column(id)?);
    }
    if let Some(survey) = options.nps.strip_suffix(".score")
        && let Ok(answered_at) = table.column(&format!("{survey}.days_since"))
    {
        exclude.push(answered_at);
    }
    exclude.extend(table.matching(&options.exclude)?);
    let mut answered = Vec::new();
    let mut classes = Vec::new();
    for r in 0..table.records.len() {
        let cell = &table.records[r][nps_col];
        if is_missing(cell) {
            continue;
        }
        let class = cell
            .parse::<f64>()
            .ok()
            .and_then(nps_class)
            .ok_or_else(|| {
                table.bad_value(r, nps_col, "is not an NPS answer (a whole number 0-10)")
            })?;
        answered.push(r);
        classes.push(class);
    }
    let skipped = table.records.len() - answered.len();
    let mut counts = [0usize; 3];
    for &c in &classes {
        counts[c] += 1;
    }
    if let Some(missing) = counts.iter().position(|&n| n < 2) {
        return Err(TrainError::Invalid(format!(
            "{} rows answered as {}s; at least 2 of each class are needed (counts: {} \
             promoters, {} passives, {} detractors)",
            counts[missing], CLASSES[missing], counts[0], counts[1], counts[2]
        )));
    }
    let features = table.features(&exclude, Some(&answered));
    let split = stratified_split(&classes, options.test_fraction, options.seed);
    let rows =
        |part: &[usize]| -> Vec<_> { part.iter().map(|&i| features.rows[i].clone()).collect() };
    let (train_rows, test_rows) = (rows(&split.train), rows(&split.test));
    let train_y: Vec<usize> = split.train.iter().map(|&i| classes[i]).collect();
    let test_y: Vec<usize> = split.test.iter().map(|&i| classes[i]).collect();

    let encoder = Encoder::fit(&train_rows, &features.numeric, &features.categorical);
    let x: Vec<Vec<f64>> = train_rows.iter().map(|r| encoder.encode(r)).collect();
    let (weights, intercepts) = softmax::fit(&x, &train_y, CLASSES.len(), options.l2)?;

    let mut quality = BTreeMap::new();
    if !test_rows.is_empty() {
        let (mut correct, mut loss) = (0usize, 0.0);
        for (row, &y) in test_rows.iter().zip(&test_y) {
            let p = softmax::probabilities(&weights, &intercepts, &encoder.encode(row));
            let best = p
                .iter()
                .enumerate()
                .max_by(|a, b| a.1.total_cmp(b.1))
                .map_or(0, |(i, _)| i);
            correct += usize::from(best == y);
            loss -= p[y].clamp(1e-15, 1.0).ln();
        }
        let n = test_rows.len() as f64;
        quality.insert("accuracy".to_owned(), correct as f64 / n);
        quality.insert("log_loss".to_owned(), loss / n);
        // The majority class and the class shares of the training part, for comparison.
        let majority = (0..3).max_by_key(|&k| counts[k]).unwrap_or(0);
        let majority_hits = test_y.iter().filter(|&&y| y == majority).count();
        quality.insert(
            "accuracy_majority_class".to_owned(),
            majority_hits as f64 / n,
        );
        let shares: Vec<f64> = (0..3)
            .map(|k| train_y.iter().filter(|&&y| y == k).count() as f64 / train_y.len() as f64)
            .collect();
        let base: f64 = test_y.iter().map(|&y| -shares[y].max(1e-15).ln()).sum();
        quality.insert("log_loss_class_shares".to_owned(), base / n);
    }

    let mut training_data = BTreeMap::from([
        ("rows".to_owned(), table.records.len().to_string()),
        ("answered".to_owned(), answered.len().to_string()),
        ("skipped_without_answer".to_owned(), skipped.to_string()),
        ("promoters".to_owned(), counts[0].to_string()),
        ("passives".to_owned(), counts[1].to_string()),
        ("detractors".to_owned(), counts[2].to_string()),
        ("training_rows".to_owned(), split.train.len().to_string()),
        ("holdout_rows".to_owned(), split.test.len().to_string()),
        ("nps_column".to_owned(), options.nps.clone()),
        ("seed".to_owned(), options.seed.to_string()),
    ]);
    if let Some(source) = &options.source {
        training_data.insert("source".to_owned(), source.clone());
    }
    if !options.exclude.is_empty() {
        training_data.insert("excluded".to_owned(), options.exclude.join(","));
    }
    let (version, created_at_ms) = version_now();
    let artifact = ModelArtifact {
        format: ARTIFACT_FORMAT,
        model_id: options.model_id.clone(),
        version: version.clone(),
        kind: Kind::Satisfaction,
        description: format!(
            "multinomial logistic regression (l2 = {}) from {} numeric and {} text columns to \
             the NPS class of {:?}",
            options.l2,
            features.numeric.len(),
            features.categorical.len(),
            options.nps
        ),
        created_at_ms,
        feature_names: encoder.feature_names(),
        training_examples: split.train.len() as u64,
        metrics: quality.clone(),
        training_data,
        body: ModelBody::Softmax(SoftmaxModel {
            encoder,
            classes: CLASSES.map(str::to_owned).to_vec(),
            weights,
            intercepts: intercepts.clone(),
        }),
    };
    artifact.check(|_| true)?;
    let report = TrainReport {
        model_id: artifact.model_id.clone(),
        version,
        kind: Kind::Satisfaction,
        elapsed: started.elapsed(),
        training_rows: split.train.len(),
        holdout_rows: split.test.len(),
        parameters: CLASSES
            .iter()
            .zip(&intercepts)
            .map(|(c, b)| (format!("b_{c}"), *b))
            .collect(),
        metrics: quality,
        sections: Vec::new(),
    };
    Ok((artifact, report))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::fmt::Write as _;

    use rand::{Rng, SeedableRng, rngs::SmallRng};

    use super::*;

    #[test]
    fn maps_nps_answers_to_classes() {
        assert_eq!(nps_class(10.0), Some(0));
        assert_eq!(nps_class(9.0), Some(0));
        assert_eq!(nps_class(8.0), Some(1));
        assert_eq!(nps_class(7.0), Some(1));
        assert_eq!(nps_class(6.0), Some(2));
        assert_eq!(nps_class(0.0), Some(2));
        assert_eq!(nps_class(11.0), None);
        assert_eq!(nps_class(7.5), None);
    }

    #[test]
    fn trains_on_answers_and_skips_rows_without_one() {
        let mut rng = SmallRng::seed_from_u64(9);
        let mut csv = String::from("id,sentiment,support_tickets,segment,nps\n");
        for i in 0..1500 {
            let sentiment: f64 = rng.random_range(-1.0..1.0);
            let tickets = rng.random_range(0..5);
            let segment = ["smb", "enterprise"][rng.random_range(0..2)];
            let latent =
                7.0 + 3.0 * sentiment - 0.6 * f64::from(tickets) + rng.random_range(-1.5..1.5);
            let nps = if i % 10 == 0 {
                String::new()
            } else {
                latent.round().clamp(0.0, 10.0).to_string()
            };
            let _ = writeln!(csv, "u{i},{sentiment:.3},{tickets},{segment},{nps}");
        }
        let mut options = SatisfactionOptions::new("nps");
        options.id = Some("id".to_owned());
        let (artifact, report) = train_satisfaction(csv.as_bytes(), &options).unwrap();
        assert_eq!(artifact.training_data["skipped_without_answer"], "150");
        assert_eq!(report.training_rows + report.holdout_rows, 1350);
        assert!(
            report.metrics["accuracy"] > report.metrics["accuracy_majority_class"] + 0.1,
            "{report}"
        );
        assert!(report.metrics["log_loss"] < report.metrics["log_loss_class_shares"]);
        ModelArtifact::from_json(&artifact.to_json(), |_| true).unwrap();
    }

    #[test]
    fn the_answer_and_its_time_and_excluded_columns_are_not_features() {
        let mut csv = String::from(
            "customer_id,survey.nps.score,survey.nps.days_since,experience.end,experience.peak,\
             sessions.count\n",
        );
        for i in 0..60 {
            let score = [10, 8, 3][i % 3];
            let _ = writeln!(csv, "c{i},{score},{},0.5,0.5,{}", i % 7, i % 5);
        }
        let mut options = SatisfactionOptions::new("survey.nps.score");
        options.id = Some("customer_id".to_owned());
        options.exclude = vec!["experience.*".to_owned()];
        let (artifact, _) = train_satisfaction(csv.as_bytes(), &options).unwrap();
        assert_eq!(artifact.feature_names, vec!["sessions.count"]);
        assert_eq!(artifact.training_data["excluded"], "experience.*");

        options.exclude = vec!["experience.ends".to_owned()];
        let err = train_satisfaction(csv.as_bytes(), &options).unwrap_err();
        assert!(
            err.to_string().contains("no column \"experience.ends\""),
            "{err}"
        );
        // A family no row has is no error.
        options.exclude = vec!["sentiment.*".to_owned()];
        let (artifact, _) = train_satisfaction(csv.as_bytes(), &options).unwrap();
        assert_eq!(artifact.feature_names.len(), 3);
    }

    #[test]
    fn an_invalid_answer_names_the_row() {
        let csv = "x,nps\n1,9\n2,7\n3,eleven\n";
        let err = train_satisfaction(csv.as_bytes(), &SatisfactionOptions::new("nps")).unwrap_err();
        assert!(
            err.to_string().contains("row 3") && err.to_string().contains("eleven"),
            "{err}"
        );
    }
}
