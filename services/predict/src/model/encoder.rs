//! How raw features become a model's numeric inputs: numeric features standardised with the mean
//! imputed for missing values, categorical features one-hot encoded over the frequent categories.

use std::collections::HashMap;

use iee_api::pb::predict::FeatureVector;
use serde::{Deserialize, Serialize};

/// At most this many categories per categorical feature get an input (the most frequent ones);
/// rarer ones encode like unseen categories (all zeros), which keeps models small and stops
/// identifiers masquerading as categories from exploding the width.
pub const MAX_CATEGORIES: usize = 50;

/// The encoding of every input of a model, fitted on its training rows and stored with it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Encoder {
    /// Numeric features, one input each, in input order.
    pub numeric: Vec<NumericInput>,
    /// Categorical features, one input per known category, after the numeric inputs.
    pub categorical: Vec<CategoricalInput>,
}

/// A standardised numeric feature: input = (value − mean) / scale; missing or non-finite values
/// take the mean (input 0).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NumericInput {
    /// Feature name.
    pub name: String,
    /// Mean over the training rows that had a finite value.
    pub mean: f64,
    /// Standard deviation over those rows; 1 for constant or absent columns.
    pub scale: f64,
}

/// A one-hot categorical feature: one input per category; unseen, rare or missing values encode
/// as all zeros.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CategoricalInput {
    /// Feature name.
    pub name: String,
    /// The categories with an input, most frequent first.
    pub categories: Vec<String>,
}

impl Encoder {
    /// Fits the encoding of the named features on training rows.
    pub fn fit(rows: &[FeatureVector], numeric: &[String], categorical: &[String]) -> Encoder {
        let numeric = numeric
            .iter()
            .map(|name| {
                let values: Vec<f64> = rows
                    .iter()
                    .filter_map(|row| row.numeric.get(name).copied())
                    .filter(|v| v.is_finite())
                    .collect();
                let n = values.len() as f64;
                let mean = if values.is_empty() {
                    0.0
                } else {
                    values.iter().sum::<f64>() / n
                };
                let variance = if values.is_empty() {
                    0.0
                } else {
                    values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n
                };
                let sd = variance.sqrt();
                let scale = if sd > 1e-12 * mean.abs().max(1.0) {
                    sd
                } else {
                    1.0
                };
                NumericInput {
                    name: name.clone(),
                    mean,
                    scale,
                }
            })
            .collect();
        let categorical = categorical
            .iter()
            .map(|name| {
                let mut counts: HashMap<&str, usize> = HashMap::new();
                for value in rows.iter().filter_map(|row| row.categorical.get(name)) {
                    if !value.is_empty() {
                        *counts.entry(value.as_str()).or_default() += 1;
                    }
                }
                let mut ranked: Vec<(&str, usize)> = counts.into_iter().collect();
                // Most frequent first; ties by name so a fit is deterministic.
                ranked.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
                CategoricalInput {
                    name: name.clone(),
                    categories: ranked
                        .into_iter()
                        .take(MAX_CATEGORIES)
                        .map(|(c, _)| c.to_owned())
                        .collect(),
                }
            })
            .collect();
        Encoder {
            numeric,
            categorical,
        }
    }

    /// Number of encoded inputs.
    pub fn width(&self) -> usize {
        self.numeric.len()
            + self
                .categorical
                .iter()
                .map(|c| c.categories.len())
                .sum::<usize>()
    }

    /// Encodes one row into `width()` inputs.
    pub fn encode(&self, row: &FeatureVector) -> Vec<f64> {
        let mut out = Vec::with_capacity(self.width());
        for input in &self.numeric {
            out.push(match row.numeric.get(&input.name) {
                Some(v) if v.is_finite() => (v - input.mean) / input.scale,
                _ => 0.0,
            });
        }
        for input in &self.categorical {
            let value = row.categorical.get(&input.name);
            out.extend(
                input
                    .categories
                    .iter()
                    .map(|c| if value == Some(c) { 1.0 } else { 0.0 }),
            );
        }
        out
    }

    /// One `(feature, category)` per encoded input, in input order; the category is set for
    /// one-hot inputs. Explanations name contributions with these.
    pub fn input_names(&self) -> Vec<(String, Option<String>)> {
        let numeric = self.numeric.iter().map(|n| (n.name.clone(), None));
        let categorical = self.categorical.iter().flat_map(|c| {
            c.categories
                .iter()
                .map(|cat| (c.name.clone(), Some(cat.clone())))
        });
        numeric.chain(categorical).collect()
    }

    /// The raw features the encoder reads, numeric first.
    pub fn feature_names(&self) -> Vec<String> {
        self.numeric
            .iter()
            .map(|n| n.name.clone())
            .chain(self.categorical.iter().map(|c| c.name.clone()))
            .collect()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn row(numeric: &[(&str, f64)], categorical: &[(&str, &str)]) -> FeatureVector {
        FeatureVector {
            numeric: numeric.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect(),
            categorical: categorical
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        }
    }

    fn names(names: &[&str]) -> Vec<String> {
        names.iter().map(|n| (*n).to_owned()).collect()
    }

    #[test]
    fn standardises_numeric_and_imputes_missing_with_the_mean() {
        let rows = [
            row(&[("x", 1.0), ("c", 5.0)], &[]),
            row(&[("x", 3.0), ("c", 5.0)], &[]),
            row(&[("c", 5.0)], &[]),
            row(&[("x", f64::NAN)], &[]),
        ];
        let encoder = Encoder::fit(&rows, &names(&["x", "c", "absent"]), &[]);
        assert_eq!(encoder.numeric[0].mean, 2.0);
        assert_eq!(encoder.numeric[0].scale, 1.0); // population sd of {1, 3}
        assert_eq!(
            encoder.numeric[1].scale, 1.0,
            "constant column keeps scale 1"
        );
        assert_eq!(encoder.numeric[2].mean, 0.0);
        assert_eq!(encoder.encode(&rows[0]), vec![-1.0, 0.0, 0.0]);
        assert_eq!(encoder.encode(&rows[3]), vec![0.0, 0.0, 0.0]);
        assert_eq!(
            encoder.encode(&row(&[("x", 6.0)], &[])),
            vec![4.0, 0.0, 0.0]
        );
    }

    #[test]
    fn one_hot_encodes_frequent_categories_and_zeroes_unseen_ones() {
        let rows = [
            row(&[], &[("plan", "pro")]),
            row(&[], &[("plan", "basic")]),
            row(&[], &[("plan", "basic")]),
            row(&[], &[("plan", "")]),
            row(&[], &[]),
        ];
        let encoder = Encoder::fit(&rows, &[], &names(&["plan"]));
        assert_eq!(encoder.categorical[0].categories, vec!["basic", "pro"]);
        assert_eq!(encoder.width(), 2);
        assert_eq!(encoder.encode(&rows[0]), vec![0.0, 1.0]);
        assert_eq!(
            encoder.encode(&row(&[], &[("plan", "enterprise")])),
            vec![0.0, 0.0]
        );
        assert_eq!(encoder.encode(&rows[4]), vec![0.0, 0.0]);
        assert_eq!(
            encoder.input_names(),
            vec![
                ("plan".to_owned(), Some("basic".to_owned())),
                ("plan".to_owned(), Some("pro".to_owned()))
            ]
        );
    }

    #[test]
    fn caps_categories_at_the_most_frequent() {
        let rows: Vec<FeatureVector> = (0..200)
            .map(|i| {
                let id = format!("c{}", i % 80);
                let id = if i < 10 { "common".to_owned() } else { id };
                row(&[], &[("id", id.as_str())])
            })
            .collect();
        let encoder = Encoder::fit(&rows, &[], &names(&["id"]));
        assert_eq!(encoder.categorical[0].categories.len(), MAX_CATEGORIES);
        assert_eq!(encoder.categorical[0].categories[0], "common");
        let json = serde_json::to_string(&encoder).unwrap();
        assert_eq!(serde_json::from_str::<Encoder>(&json).unwrap(), encoder);
    }
}
