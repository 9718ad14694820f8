//! The stored form of a model version: metadata plus the fitted parameters, as JSON. Everything a
//! replica needs to score is in the artifact (encoders included), so a version is immutable and
//! self-contained.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{
    bgnbd::BgNbdParams, encoder::Encoder, gamma_gamma::GammaGammaParams,
    propensity::PropensityModel,
};

/// What a model predicts (mirrors `iee.predict.v1.ModelKind`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// Churn probability.
    Churn,
    /// Per-action response propensity.
    Propensity,
    /// Expected purchases, lifetime value, probability alive.
    LifetimeValue,
    /// NPS class probabilities.
    Satisfaction,
}

impl Kind {
    /// Every kind.
    pub const ALL: [Kind; 4] = [
        Kind::Churn,
        Kind::Propensity,
        Kind::LifetimeValue,
        Kind::Satisfaction,
    ];

    /// The name used in keys, metrics and files.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Churn => "churn",
            Kind::Propensity => "propensity",
            Kind::LifetimeValue => "lifetime_value",
            Kind::Satisfaction => "satisfaction",
        }
    }
}

/// A regularised logistic regression over encoded features (churn).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogisticModel {
    /// How raw features become the model's inputs.
    pub encoder: Encoder,
    /// One weight per encoded input.
    pub weights: Vec<f64>,
    /// The intercept.
    pub intercept: f64,
    /// The horizon the label was defined over, in days (e.g. churn within 90 days).
    pub horizon_days: f64,
}

/// A multinomial (softmax) logistic regression (satisfaction: promoter, passive, detractor).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SoftmaxModel {
    /// How raw features become the model's inputs.
    pub encoder: Encoder,
    /// Class names, in order (e.g. `promoter`, `passive`, `detractor`).
    pub classes: Vec<String>,
    /// One weight vector per class (one weight per encoded input).
    pub weights: Vec<Vec<f64>>,
    /// One intercept per class.
    pub intercepts: Vec<f64>,
}

/// BG/NBD repeat purchases with Gamma-Gamma spend (lifetime value).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClvModel {
    /// The purchase process.
    pub bgnbd: BgNbdParams,
    /// The spend per purchase; without it only purchases and P(alive) are predicted.
    pub gamma_gamma: Option<GammaGammaParams>,
    /// Length of the model's time unit in days (the unit `recency` and `T` were fitted in).
    pub time_unit_days: f64,
    /// Currency of the monetary values it was fitted on (ISO 4217).
    pub currency: String,
}

/// The fitted parameters of one model version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ModelBody {
    /// Churn.
    Logistic(LogisticModel),
    /// Satisfaction.
    Softmax(SoftmaxModel),
    /// Lifetime value.
    Clv(ClvModel),
    /// Propensity per action, learning online.
    Propensity(PropensityModel),
    /// A bring-your-own ONNX model (feature `onnx`) serving the kind it declares.
    #[cfg(feature = "onnx")]
    Onnx(super::onnx::OnnxModel),
}

impl ModelBody {
    /// The kind this body can serve.
    pub fn kind(&self) -> Kind {
        match self {
            ModelBody::Logistic(_) => Kind::Churn,
            ModelBody::Softmax(_) => Kind::Satisfaction,
            ModelBody::Clv(_) => Kind::LifetimeValue,
            ModelBody::Propensity(_) => Kind::Propensity,
            #[cfg(feature = "onnx")]
            ModelBody::Onnx(m) => m.serves,
        }
    }
}

/// One immutable model version with its metadata.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelArtifact {
    /// Format version of this file; readers refuse newer formats.
    pub format: u32,
    /// The model (1-128 characters of `[a-z0-9_.-]`).
    pub model_id: String,
    /// The version (1-128 characters).
    pub version: String,
    /// What it predicts.
    pub kind: Kind,
    /// Free description (algorithm, training data).
    pub description: String,
    /// When it was created, Unix milliseconds.
    pub created_at_ms: i64,
    /// Names of the catalogue features it reads.
    pub feature_names: Vec<String>,
    /// Number of examples it learned from.
    pub training_examples: u64,
    /// Quality metrics by name (`roc_auc`, `pr_auc`, `log_loss`, `brier`, …).
    pub metrics: BTreeMap<String, f64>,
    /// Summary of the training data (rows, label balance, columns), free form.
    pub training_data: BTreeMap<String, String>,
    /// The fitted parameters.
    pub body: ModelBody,
}

/// The current artifact format.
pub const ARTIFACT_FORMAT: u32 = 1;

/// Why an artifact cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ArtifactError {
    /// Not valid JSON of the artifact schema.
    #[error("model artifact does not parse: {0}")]
    Malformed(String),
    /// A newer format than this build reads.
    #[error("model artifact format {found} is newer than the supported {supported}")]
    Format {
        /// The file's format.
        found: u32,
        /// What this build reads.
        supported: u32,
    },
    /// Inconsistent content (kind and body disagree, sizes do not match, a feature the catalogue
    /// lacks, non-finite parameters).
    #[error("model artifact is invalid: {field}: {reason}")]
    Invalid {
        /// Path of the offending part, e.g. `body.weights`.
        field: String,
        /// What is wrong.
        reason: String,
    },
}

impl ModelArtifact {
    /// Parses and checks an artifact. `known_feature` says whether the catalogue has a feature.
    pub fn from_json(
        bytes: &[u8],
        known_feature: impl Fn(&str) -> bool,
    ) -> Result<Self, ArtifactError> {
        let artifact: ModelArtifact = serde_json::from_slice(bytes).map_err(|e| {
            let e = e.to_string();
            // serde alone says "unknown variant `onnx`", which reads like a typo in the file.
            #[cfg(not(feature = "onnx"))]
            let e = if e.contains("unknown variant `onnx`") {
                format!(
                    "{e} (this build has no ONNX support: build iee-predict with --features onnx)"
                )
            } else {
                e
            };
            ArtifactError::Malformed(e)
        })?;
        artifact.check(known_feature)?;
        Ok(artifact)
    }

    /// Serialises the artifact.
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec_pretty(self).unwrap_or_default()
    }

    /// Checks the artifact is consistent and reads only known features.
    pub fn check(&self, known_feature: impl Fn(&str) -> bool) -> Result<(), ArtifactError> {
        let invalid = |field: &str, reason: String| ArtifactError::Invalid {
            field: field.to_owned(),
            reason,
        };
        if self.format > ARTIFACT_FORMAT {
            return Err(ArtifactError::Format {
                found: self.format,
                supported: ARTIFACT_FORMAT,
            });
        }
        if self.body.kind() != self.kind {
            return Err(invalid(
                "kind",
                format!(
                    "{} does not match the body, a {} model",
                    self.kind.as_str(),
                    self.body.kind().as_str()
                ),
            ));
        }
        let id_ok = (1..=128).contains(&self.model_id.len())
            && self.model_id.bytes().all(|b| {
                b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'_' | b'.' | b'-')
            });
        if !id_ok {
            return Err(invalid(
                "model_id",
                format!(
                    "{:?} must be 1-128 characters of [a-z0-9_.-]",
                    self.model_id
                ),
            ));
        }
        if !(1..=128).contains(&self.version.len()) {
            return Err(invalid("version", "must be 1-128 characters".to_owned()));
        }
        if let Some(missing) = self.feature_names.iter().find(|f| !known_feature(f)) {
            return Err(invalid(
                "feature_names",
                format!("the feature catalogue has no feature {missing:?}"),
            ));
        }
        self.body_check()
            .map_err(|(field, reason)| invalid(&field, reason))
    }

    fn body_check(&self) -> Result<(), (String, String)> {
        let finite = |field: &str, values: &[f64]| {
            values
                .iter()
                .all(|v| v.is_finite())
                .then_some(())
                .ok_or_else(|| (field.to_owned(), "contains a non-finite number".to_owned()))
        };
        match &self.body {
            ModelBody::Logistic(m) => {
                if m.weights.len() != m.encoder.width() {
                    return Err((
                        "body.weights".into(),
                        format!(
                            "{} weights for {} encoded inputs",
                            m.weights.len(),
                            m.encoder.width()
                        ),
                    ));
                }
                finite("body.weights", &m.weights)?;
                finite("body.intercept", &[m.intercept])
            }
            ModelBody::Softmax(m) => {
                if m.classes.len() < 2
                    || m.weights.len() != m.classes.len()
                    || m.intercepts.len() != m.classes.len()
                {
                    return Err((
                        "body.classes".into(),
                        "needs at least 2 classes, one weight vector and one intercept each".into(),
                    ));
                }
                for (i, w) in m.weights.iter().enumerate() {
                    if w.len() != m.encoder.width() {
                        return Err((
                            format!("body.weights[{i}]"),
                            format!(
                                "{} weights for {} encoded inputs",
                                w.len(),
                                m.encoder.width()
                            ),
                        ));
                    }
                    finite(&format!("body.weights[{i}]"), w)?;
                }
                finite("body.intercepts", &m.intercepts)
            }
            ModelBody::Clv(m) => {
                let b = &m.bgnbd;
                if ![b.r, b.alpha, b.a, b.b]
                    .iter()
                    .all(|v| v.is_finite() && *v > 0.0)
                {
                    return Err(("body.bgnbd".into(), "r, alpha, a, b must be > 0".into()));
                }
                if let Some(g) = &m.gamma_gamma
                    && ![g.p, g.q, g.v].iter().all(|v| v.is_finite() && *v > 0.0)
                {
                    return Err(("body.gamma_gamma".into(), "p, q, v must be > 0".into()));
                }
                if !(m.time_unit_days.is_finite() && m.time_unit_days > 0.0) {
                    return Err(("body.time_unit_days".into(), "must be > 0".into()));
                }
                Ok(())
            }
            ModelBody::Propensity(m) => m.check().map_err(|(f, r)| (format!("body.{f}"), r)),
            #[cfg(feature = "onnx")]
            ModelBody::Onnx(m) => m
                .check(&self.feature_names)
                .map_err(|(f, r)| (format!("body.{f}"), r)),
        }
    }
}
