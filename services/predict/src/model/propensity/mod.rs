//! The online propensity model: per action, a Bayesian logistic regression with a diagonal
//! Gaussian posterior, updated by the Laplace approximation and sampled for Thompson exploration.
//!
//! Chapelle & Li (2011), "An empirical evaluation of Thompson sampling", Algorithm 3: for each
//! batch, the new mean is the MAP weight vector under the current Gaussian (found by Newton's
//! method) and each precision grows by `Σ x_i² p (1 - p)` at that MAP. See `docs/propensity.md`.

mod laplace;
mod model;
#[cfg(test)]
mod tests;

pub use model::{
    Evidence, Forgetting, INPUT_CLIP, MAX_INPUTS, Posterior, PropensityEstimate, PropensityModel,
};
