//! Turning a model and a feature vector into the scores of `Score`, with the features that
//! moved each score most.

use iee_api::pb::{
    common::Money,
    predict::{
        ChurnScore, FeatureContribution, FeatureVector, LifetimeValueScore, SatisfactionScore,
    },
};

use crate::{
    model::{
        ClvModel, LogisticModel, ModelBody, SoftmaxModel, encoder::Encoder,
        gamma_gamma::GammaGammaParams, logistic, softmax,
    },
    registry::LoadedModel,
};

/// The `k` largest contributions by magnitude, as the API reports them.
pub(crate) fn top_contributions(
    encoder: &Encoder,
    features: &FeatureVector,
    contributions: &[f64],
    k: usize,
) -> Vec<FeatureContribution> {
    if k == 0 {
        return Vec::new();
    }
    let mut all: Vec<FeatureContribution> = encoder
        .input_names()
        .into_iter()
        .zip(contributions)
        .filter(|(_, c)| **c != 0.0)
        .map(|((feature, category), contribution)| FeatureContribution {
            value: if category.is_none() {
                features.numeric.get(&feature).copied().unwrap_or(0.0)
            } else {
                0.0
            },
            category: category.unwrap_or_default(),
            feature,
            contribution: *contribution,
        })
        .collect();
    all.sort_by(|a, b| b.contribution.abs().total_cmp(&a.contribution.abs()));
    all.truncate(k);
    all
}

/// Churn probability from a logistic model.
pub(crate) fn churn(model: &LogisticModel, features: &FeatureVector, k: usize) -> ChurnScore {
    let x = model.encoder.encode(features);
    let probability = logistic::probability(&model.weights, model.intercept, &x);
    let contributions = logistic::contributions(&model.weights, &x);
    ChurnScore {
        probability,
        horizon: Some(days(model.horizon_days)),
        model: None,
        top_features: top_contributions(&model.encoder, features, &contributions, k),
    }
}

/// NPS class probabilities from a softmax model whose classes are named `promoter`, `passive`
/// and `detractor`.
pub(crate) fn satisfaction(
    model: &SoftmaxModel,
    features: &FeatureVector,
    k: usize,
) -> SatisfactionScore {
    let x = model.encoder.encode(features);
    let probabilities = softmax::probabilities(&model.weights, &model.intercepts, &x);
    let of = |name: &str| {
        model
            .classes
            .iter()
            .position(|c| c == name)
            .and_then(|i| probabilities.get(i).copied())
            .unwrap_or(0.0)
    };
    // Contributions to the most likely class against the mean of the classes (log-odds scale).
    let best = probabilities
        .iter()
        .enumerate()
        .max_by(|a, b| a.1.total_cmp(b.1))
        .map_or(0, |(i, _)| i);
    let classes = model.weights.len().max(1) as f64;
    let contributions: Vec<f64> = (0..x.len())
        .map(|i| {
            let mean_w = model.weights.iter().map(|w| w[i]).sum::<f64>() / classes;
            (model.weights[best][i] - mean_w) * x[i]
        })
        .collect();
    SatisfactionScore {
        promoter: of("promoter"),
        passive: of("passive"),
        detractor: of("detractor"),
        model: None,
        top_features: top_contributions(&model.encoder, features, &contributions, k),
    }
}

/// The churn score of whatever model serves churn (`None`: the body cannot score churn).
pub(crate) fn churn_of(
    model: &LoadedModel,
    features: &FeatureVector,
    k: usize,
) -> Result<Option<ChurnScore>, String> {
    match &model.artifact.body {
        ModelBody::Logistic(m) => Ok(Some(churn(m, features, k))),
        #[cfg(feature = "onnx")]
        ModelBody::Onnx(_) => {
            let Some(onnx) = &model.onnx else {
                return Ok(None);
            };
            let out = onnx.score(features)?;
            Ok(out.first().map(|p| ChurnScore {
                probability: f64::from(*p),
                horizon: None,
                model: None,
                top_features: Vec::new(),
            }))
        }
        _ => Ok(None),
    }
}

/// The satisfaction score of whatever model serves satisfaction.
pub(crate) fn satisfaction_of(
    model: &LoadedModel,
    features: &FeatureVector,
    k: usize,
) -> Result<Option<SatisfactionScore>, String> {
    match &model.artifact.body {
        ModelBody::Softmax(m) => Ok(Some(satisfaction(m, features, k))),
        #[cfg(feature = "onnx")]
        ModelBody::Onnx(m) => {
            let Some(onnx) = &model.onnx else {
                return Ok(None);
            };
            let out = onnx.score(features)?;
            let of = |name: &str| {
                m.output
                    .classes
                    .iter()
                    .position(|c| c == name)
                    .and_then(|i| out.get(i))
                    .map_or(0.0, |p| f64::from(*p))
            };
            Ok(Some(SatisfactionScore {
                promoter: of("promoter"),
                passive: of("passive"),
                detractor: of("detractor"),
                model: None,
                top_features: Vec::new(),
            }))
        }
        _ => Ok(None),
    }
}

/// The CLV inputs of the feature catalogue, in days.
pub(crate) struct ClvInputs {
    pub(crate) frequency: f64,
    pub(crate) recency_days: f64,
    pub(crate) age_days: f64,
    pub(crate) monetary: Option<f64>,
}

impl ClvInputs {
    /// Reads `clv.frequency`, `clv.recency_days`, `clv.t_days`, `clv.monetary`; a customer
    /// without purchases is a new customer (0, 0, 0).
    pub(crate) fn from_features(features: &FeatureVector) -> Self {
        let get = |name: &str| {
            features
                .numeric
                .get(name)
                .copied()
                .filter(|v| v.is_finite())
        };
        Self {
            frequency: get("clv.frequency").unwrap_or(0.0).max(0.0),
            recency_days: get("clv.recency_days").unwrap_or(0.0).max(0.0),
            age_days: get("clv.t_days").unwrap_or(0.0).max(0.0),
            monetary: get("clv.monetary"),
        }
    }
}

/// Expected purchases, value and P(alive) over `horizon_days` from BG/NBD + Gamma-Gamma.
pub(crate) fn lifetime_value(
    model: &ClvModel,
    features: &FeatureVector,
    horizon_days: f64,
    k: usize,
) -> LifetimeValueScore {
    let inputs = ClvInputs::from_features(features);
    let unit = model.time_unit_days;
    let (t, x, tx, age) = (
        horizon_days / unit,
        inputs.frequency,
        inputs.recency_days / unit,
        (inputs.age_days / unit).max(inputs.recency_days / unit),
    );
    let expected = |x: f64, tx: f64, age: f64| {
        if age <= 0.0 {
            model.bgnbd.expected_purchases_new(t)
        } else {
            model.bgnbd.expected_purchases(t, x, tx, age)
        }
    };
    let expected_purchases = expected(x, tx, age).max(0.0);
    let probability_alive = if age <= 0.0 {
        1.0
    } else {
        model.bgnbd.probability_alive(x, tx, age)
    };
    let spend = match (&model.gamma_gamma, inputs.monetary) {
        (Some(gg), Some(m)) if x > 0.0 => gg.conditional_expected_value(x, m),
        (Some(gg), _) => population_mean_spend(gg),
        (None, _) => 0.0,
    };
    let value = expected_purchases * spend;
    // One at a time: how far each input moves the expected purchases (log scale) against a
    // customer who has made no repeat purchase yet at the same age.
    let baseline = expected(0.0, 0.0, age).max(f64::MIN_POSITIVE);
    let log_ratio = |v: f64| (v.max(f64::MIN_POSITIVE) / baseline).ln();
    let mut top = vec![
        FeatureContribution {
            feature: "clv.frequency".into(),
            value: inputs.frequency,
            category: String::new(),
            contribution: log_ratio(expected(x, tx.max(f64::MIN_POSITIVE), age)),
        },
        FeatureContribution {
            feature: "clv.recency_days".into(),
            value: inputs.recency_days,
            category: String::new(),
            contribution: log_ratio(expected_purchases) - log_ratio(expected(x, age, age)),
        },
    ];
    top.retain(|c| c.contribution.is_finite() && c.contribution != 0.0);
    top.sort_by(|a, b| b.contribution.abs().total_cmp(&a.contribution.abs()));
    top.truncate(k);
    LifetimeValueScore {
        horizon: Some(days(horizon_days)),
        expected_purchases,
        expected_value: Some(Money {
            amount_minor: (value * 100.0).round() as i64,
            currency: model.currency.clone(),
        }),
        probability_alive,
        model: None,
        top_features: top,
    }
}

/// The Gamma-Gamma model's mean spend per purchase over the population, `p·v/(q−1)` (for a
/// customer with no repeat purchase yet); 0 when undefined (q ≤ 1).
fn population_mean_spend(g: &GammaGammaParams) -> f64 {
    if g.q > 1.0 {
        g.p * g.v / (g.q - 1.0)
    } else {
        0.0
    }
}

fn days(days: f64) -> prost_types::Duration {
    let seconds = (days * 86_400.0).round() as i64;
    prost_types::Duration { seconds, nanos: 0 }
}
