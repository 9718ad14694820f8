//! The built-in baseline of every kind: what serves until a tenant activates a trained model, so
//! a score request never fails for want of a model. Each is deliberately uninformed (documented
//! in `docs/models.md`): churn 0.5, satisfaction uniform over the three classes, propensities
//! from the prior, and lifetime value from the published BG/NBD and Gamma-Gamma fit of the CDNOW
//! sample as a generic starting point.

use std::collections::BTreeMap;

use crate::model::{
    ARTIFACT_FORMAT, ClvModel, Kind, LogisticModel, ModelArtifact, ModelBody, SoftmaxModel,
    bgnbd::BgNbdParams, encoder::Encoder, gamma_gamma::GammaGammaParams,
    propensity::PropensityModel,
};

/// Version of every built-in model.
pub(crate) const BUILTIN_VERSION: &str = "builtin-1";

fn artifact(kind: Kind, description: &str, body: ModelBody) -> ModelArtifact {
    ModelArtifact {
        format: ARTIFACT_FORMAT,
        model_id: format!("builtin-{}", kind.as_str().replace('_', "-")),
        version: BUILTIN_VERSION.to_owned(),
        kind,
        description: description.to_owned(),
        created_at_ms: 0,
        feature_names: Vec::new(),
        training_examples: 0,
        metrics: BTreeMap::new(),
        training_data: BTreeMap::new(),
        body,
    }
}

fn empty_encoder() -> Encoder {
    Encoder {
        numeric: Vec::new(),
        categorical: Vec::new(),
    }
}

/// The built-in model of every kind.
pub(crate) fn all() -> Vec<ModelArtifact> {
    vec![
        artifact(
            Kind::Churn,
            "built-in baseline: no information, probability 0.5",
            ModelBody::Logistic(LogisticModel {
                encoder: empty_encoder(),
                weights: Vec::new(),
                intercept: 0.0,
                horizon_days: 90.0,
            }),
        ),
        artifact(
            Kind::Satisfaction,
            "built-in baseline: no information, each class 1/3",
            ModelBody::Softmax(SoftmaxModel {
                encoder: empty_encoder(),
                classes: vec!["promoter".into(), "passive".into(), "detractor".into()],
                weights: vec![Vec::new(), Vec::new(), Vec::new()],
                intercepts: vec![0.0, 0.0, 0.0],
            }),
        ),
        artifact(
            Kind::LifetimeValue,
            "built-in baseline: BG/NBD and Gamma-Gamma parameters published for the CDNOW \
             sample (weeks, USD), a generic starting point until a tenant trains its own",
            ModelBody::Clv(ClvModel {
                bgnbd: BgNbdParams {
                    r: 0.243,
                    alpha: 4.414,
                    a: 0.793,
                    b: 2.426,
                },
                gamma_gamma: Some(GammaGammaParams {
                    p: 6.25,
                    q: 3.74,
                    v: 15.45,
                }),
                time_unit_days: 7.0,
                currency: "USD".to_owned(),
            }),
        ),
        artifact(
            Kind::Propensity,
            "built-in online propensity model: Bayesian logistic regression per action from \
             the prior, learning from outcomes",
            ModelBody::Propensity(PropensityModel::default()),
        ),
    ]
}
