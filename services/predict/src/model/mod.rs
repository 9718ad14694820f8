//! Models: their stored form (artifacts), the feature encoder they share, and the statistics
//! behind each kind.

mod artifact;
pub mod bgnbd;
pub mod encoder;
pub mod gamma_gamma;
pub mod logistic;
pub mod metrics;
#[cfg(feature = "onnx")]
pub mod onnx;
mod optim;
pub mod propensity;
pub mod softmax;
mod special;

pub use artifact::{
    ARTIFACT_FORMAT, ArtifactError, ClvModel, Kind, LogisticModel, ModelArtifact, ModelBody,
    SoftmaxModel,
};
pub use bgnbd::{BgNbdParams, Rfm};
pub use gamma_gamma::GammaGammaParams;
pub use optim::FitError;
