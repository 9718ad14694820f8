//! The model, its posteriors and how it scores, learns and forgets.

use std::{borrow::Cow, collections::BTreeMap, f64::consts::PI};

use iee_api::pb::predict::{FeatureContribution, FeatureVector};
use rand::Rng;
use rand_distr::StandardNormal;
use serde::{Deserialize, Serialize};

use super::laplace::*;
use crate::model::encoder::Encoder;

/// Encoded inputs are clipped to ±this many standard deviations, so one outlier cannot swing a
/// posterior (a standardised value past 8 is almost always a data error).
pub const INPUT_CLIP: f64 = 8.0;

/// Most inputs (intercept included) a propensity model may have.
pub const MAX_INPUTS: usize = 4096;

/// Up to this many inputs a batch update solves the full Newton system; beyond, it uses the
/// diagonal of the Hessian (cheaper, more iterations, same fixed point).
pub(super) const DENSE_NEWTON_MAX: usize = 128;
pub(super) const NEWTON_ITERATIONS: usize = 50;
pub(super) const NEWTON_TOLERANCE: f64 = 1e-9;

/// A Bayesian logistic model of the response to each action, over profile and context features.
///
/// A Bayesian logistic model of the response to each action, over profile and context features.
///
/// Weight 0 of every posterior is the intercept (its input is always 1); weights `1..` belong
/// to the encoder's inputs in order, so `contributions[i]` of an estimate is the contribution of
/// `encoder.input_names()[i]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PropensityModel {
    /// How raw features become inputs (the intercept is added in front).
    pub encoder: Encoder,
    /// Prior mean of each weight, intercept first (`width()` values). The intercept's is the
    /// log-odds of the expected response rate of an action nothing is known about.
    pub prior_mean: Vec<f64>,
    /// Prior variance of every weight (inputs are standardised, so one scale fits all).
    pub prior_variance: f64,
    /// How fast old evidence fades, so preferences can drift.
    pub forgetting: Forgetting,
    /// If true, new actions start from the mean of the pooled (all actions) posterior instead
    /// of `prior_mean`, with the prior variance: a new offer is first expected to do as well as
    /// the average offer for this customer and context.
    pub pooled_prior: bool,
    /// The posterior of all actions taken together (kept when `pooled_prior` is set).
    #[serde(default)]
    pub pooled: Option<Posterior>,
    /// The posterior of each action that has learned something.
    #[serde(default)]
    pub actions: BTreeMap<String, Posterior>,
}

/// Exponential forgetting: evidence `t` old counts `2^(-t / half_life)`, so the posterior
/// precision decays toward the prior's and the mean toward the prior mean.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Forgetting {
    /// Hours after which evidence counts half; 0 never forgets.
    pub half_life_hours: f64,
}

impl Default for Forgetting {
    /// Two weeks: a week-old outcome still counts 71 %, a two-month-old one 5 %.
    fn default() -> Self {
        Self {
            half_life_hours: 14.0 * 24.0,
        }
    }
}

impl Forgetting {
    /// The half-life in milliseconds (0: never forget).
    pub fn half_life_ms(&self) -> u64 {
        // Saturating float-to-int conversion; a negative or NaN half-life fails `check` first.
        (self.half_life_hours * 3_600_000.0).round() as u64
    }

    /// The weight evidence `elapsed_ms` old keeps.
    pub fn factor(&self, elapsed_ms: u64) -> f64 {
        match self.half_life_ms() {
            0 => 1.0,
            h => (-(elapsed_ms as f64) / h as f64).exp2(),
        }
    }
}

/// A diagonal Gaussian over the weights of one action (or of all actions pooled).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Posterior {
    /// Mean of each weight.
    pub mean: Vec<f64>,
    /// Precision (inverse variance) of each weight, > 0.
    pub precision: Vec<f64>,
    /// Outcomes learned from.
    pub observations: u64,
}

/// A Gaussian in natural parameters (`λ`, `η = λ·μ`): the evidence a batch of outcomes added
/// to a posterior, or the difference of two posteriors. Evidence from different outcomes adds.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Evidence {
    /// Precision of each weight.
    pub precision: Vec<f64>,
    /// Precision-weighted mean of each weight.
    pub eta: Vec<f64>,
    /// Outcomes it holds.
    pub observations: u64,
}

impl Evidence {
    /// Adds `other` (of the same width, or this one is empty).
    pub fn add(&mut self, other: &Evidence) {
        if self.precision.is_empty() {
            self.precision = vec![0.0; other.precision.len()];
            self.eta = vec![0.0; other.eta.len()];
        }
        for (a, b) in self.precision.iter_mut().zip(&other.precision) {
            *a += b;
        }
        for (a, b) in self.eta.iter_mut().zip(&other.eta) {
            *a += b;
        }
        self.observations += other.observations;
    }
}

impl Posterior {
    fn natural(&self) -> (Vec<f64>, Vec<f64>) {
        let eta = self
            .mean
            .iter()
            .zip(&self.precision)
            .map(|(m, l)| m * l)
            .collect();
        (self.precision.clone(), eta)
    }

    /// `self` times the Gaussian factor `evidence`.
    fn times(&self, evidence: &Evidence, factor: f64) -> Posterior {
        let (precision, eta) = self.natural();
        let floor = self.precision.iter().copied().fold(f64::INFINITY, f64::min) * 1e-9;
        let precision: Vec<f64> = precision
            .iter()
            .zip(&evidence.precision)
            .map(|(l, e)| (l + factor * e).max(floor))
            .collect();
        let mean = eta
            .iter()
            .zip(&evidence.eta)
            .zip(&precision)
            .map(|((n, e), l)| (n + factor * e) / l)
            .collect();
        Posterior {
            mean,
            precision,
            observations: self.observations + evidence.observations,
        }
    }

    /// The evidence that turns `from` into `self`.
    fn minus(&self, from: &Posterior) -> Evidence {
        let ((l1, n1), (l0, n0)) = (self.natural(), from.natural());
        Evidence {
            precision: l1.iter().zip(&l0).map(|(a, b)| a - b).collect(),
            eta: n1.iter().zip(&n0).map(|(a, b)| a - b).collect(),
            observations: self.observations.saturating_sub(from.observations),
        }
    }
}

/// The response probability of one action for one feature vector.
#[derive(Debug, Clone, PartialEq)]
pub struct PropensityEstimate {
    /// Predictive probability: the posterior's logistic-Gaussian integral by MacKay's probit
    /// approximation `σ(μ·x / sqrt(1 + π/8 · Σ x_i²/λ_i))`.
    pub mean: f64,
    /// A Thompson sample `σ(w·x)` with `w ~ N(μ, diag(1/λ))`; `mean` when not sampling.
    pub sample: f64,
    /// Standard deviation of the probability `σ(w·x)` under the posterior (16-point
    /// Gauss–Hermite quadrature).
    pub stddev: f64,
    /// Outcomes the action's posterior learned from (0: the prior).
    pub observations: u64,
    /// `μ_i x_i` for each encoder input (log-odds; the intercept is not among them).
    pub contributions: Vec<f64>,
}

impl Default for PropensityModel {
    /// No features (an intercept per action), a 5 % expected response rate, the default
    /// forgetting, and new actions starting from the pooled posterior.
    fn default() -> Self {
        let encoder = Encoder {
            numeric: Vec::new(),
            categorical: Vec::new(),
        };
        Self::new(encoder, 0.05, 1.0, Forgetting::default())
    }
}

impl PropensityModel {
    /// A model with no evidence: the intercept's prior mean is the log-odds of `base_rate`,
    /// every other weight's 0, all with variance `prior_variance`; pooled priors on.
    pub fn new(
        encoder: Encoder,
        base_rate: f64,
        prior_variance: f64,
        forgetting: Forgetting,
    ) -> Self {
        let rate = base_rate.clamp(1e-6, 1.0 - 1e-6);
        let mut prior_mean = vec![0.0; encoder.width() + 1];
        prior_mean[0] = (rate / (1.0 - rate)).ln();
        Self {
            encoder,
            prior_mean,
            prior_variance,
            forgetting,
            pooled_prior: true,
            pooled: None,
            actions: BTreeMap::new(),
        }
    }

    /// Number of weights: the encoder's inputs plus the intercept.
    pub fn width(&self) -> usize {
        self.encoder.width() + 1
    }

    /// The raw features the model reads.
    pub fn feature_names(&self) -> Vec<String> {
        self.encoder.feature_names()
    }

    /// The model's inputs for a feature vector: 1 (the intercept), then the encoder's inputs
    /// clipped to ±[`INPUT_CLIP`].
    pub fn encode(&self, x: &FeatureVector) -> Vec<f64> {
        let mut out = Vec::with_capacity(self.width());
        out.push(1.0);
        out.extend(self.encoder.encode(x).into_iter().map(|v| {
            if v.is_finite() {
                v.clamp(-INPUT_CLIP, INPUT_CLIP)
            } else {
                0.0
            }
        }));
        out
    }

    /// The configured prior, before any pooling.
    pub fn base_prior(&self) -> Posterior {
        let precision = 1.0 / self.prior_variance;
        Posterior {
            mean: self.prior_mean.clone(),
            precision: vec![precision; self.prior_mean.len()],
            observations: 0,
        }
    }

    /// The prior of an action: the pooled posterior's mean when pooling, else the configured
    /// mean; the configured variance either way (the pooled precision is not reused, which
    /// would count the pooled outcomes twice).
    pub fn prior(&self) -> Posterior {
        let mut prior = self.base_prior();
        if self.pooled_prior
            && let Some(pooled) = &self.pooled
        {
            prior.mean.clone_from(&pooled.mean);
        }
        prior
    }

    /// The posterior of `action`, or the prior for an action nothing is known about.
    pub fn posterior(&self, action: &str) -> Cow<'_, Posterior> {
        self.actions
            .get(action)
            .map_or_else(|| Cow::Owned(self.prior()), Cow::Borrowed)
    }

    /// Scores `action` for a feature vector; with `rng`, also draws a Thompson sample.
    pub fn score<R: Rng + ?Sized>(
        &self,
        action: &str,
        x: &FeatureVector,
        rng: Option<&mut R>,
    ) -> PropensityEstimate {
        self.score_encoded(action, &self.encode(x), rng)
    }

    /// Scores `action` for inputs from [`Self::encode`] (encode once, score many actions).
    pub fn score_encoded<R: Rng + ?Sized>(
        &self,
        action: &str,
        inputs: &[f64],
        rng: Option<&mut R>,
    ) -> PropensityEstimate {
        let posterior = self.posterior(action);
        let a = dot(&posterior.mean, inputs);
        // Variance of w·x: exact for a diagonal Gaussian.
        let s2: f64 = inputs
            .iter()
            .zip(&posterior.precision)
            .map(|(x, l)| x * x / l)
            .sum();
        let mean = sigmoid(a / (1.0 + PI * s2 / 8.0).sqrt());
        let stddev = probability_stddev(a, s2.sqrt());
        // w·x ~ N(a, s2), so one normal draw samples σ(w·x) exactly as drawing all of w would.
        let sample = rng.map_or(mean, |rng| {
            let z: f64 = rng.sample(StandardNormal);
            sigmoid(a + s2.sqrt() * z)
        });
        PropensityEstimate {
            mean,
            sample,
            stddev,
            observations: posterior.observations,
            contributions: posterior.mean[1..]
                .iter()
                .zip(&inputs[1..])
                .map(|(m, x)| m * x)
                .collect(),
        }
    }

    /// The `k` contributions of an estimate largest in magnitude, named as the API reports them.
    pub fn top_contributions(
        &self,
        x: &FeatureVector,
        contributions: &[f64],
        k: usize,
    ) -> Vec<FeatureContribution> {
        crate::scoring::top_contributions(&self.encoder, x, contributions, k)
    }

    /// Learns from a batch of outcomes of `action` (true: a positive response), and from the
    /// same batch for the pooled posterior when pooling.
    pub fn update(&mut self, action: &str, batch: &[(FeatureVector, bool)]) {
        let rows: Vec<(Vec<f64>, bool)> = batch.iter().map(|(x, y)| (self.encode(x), *y)).collect();
        self.update_encoded(action, &rows);
        self.update_pooled_encoded(&rows);
    }

    /// Learns from encoded outcomes of `action` (only its own posterior) and returns the
    /// evidence added: the change in natural parameters.
    pub fn update_encoded(&mut self, action: &str, rows: &[(Vec<f64>, bool)]) -> Evidence {
        let before = self.posterior(action).into_owned();
        let after = laplace_update(&before, rows);
        let delta = after.minus(&before);
        self.actions.insert(action.to_owned(), after);
        delta
    }

    /// Learns from encoded outcomes of any action for the pooled posterior; `None` when the
    /// model does not pool.
    pub fn update_pooled_encoded(&mut self, rows: &[(Vec<f64>, bool)]) -> Option<Evidence> {
        if !self.pooled_prior {
            return None;
        }
        let before = self.pooled.take().unwrap_or_else(|| self.base_prior());
        let after = laplace_update(&before, rows);
        let delta = after.minus(&before);
        self.pooled = Some(after);
        Some(delta)
    }

    /// Forgets: the evidence of every posterior is weighted by the forgetting factor of
    /// `elapsed_ms`, in natural parameters (`λ ← λ₀ + f·(λ − λ₀)`, likewise `η`).
    pub fn forget(&mut self, elapsed_ms: u64) {
        let factor = self.forgetting.factor(elapsed_ms);
        if factor >= 1.0 {
            return;
        }
        let base = self.base_prior();
        if let Some(pooled) = &mut self.pooled {
            *pooled = base.times(&pooled.minus(&base), factor);
        }
        let prior = self.prior();
        for posterior in self.actions.values_mut() {
            let evidence = posterior.minus(&prior);
            *posterior = prior.times(&evidence, factor);
        }
    }

    /// This model's posteriors times the given evidence: the pooled one first (when pooling),
    /// then each action's, where an action without a posterior starts from the prior, which
    /// follows the new pooled mean. Forgetting is not applied (age the evidence first).
    pub fn with_evidence(
        &self,
        pooled: Option<&Evidence>,
        actions: &BTreeMap<String, Evidence>,
    ) -> PropensityModel {
        let width = self.width();
        let fits = |e: &Evidence| e.precision.len() == width && e.eta.len() == width;
        let mut out = self.clone();
        if self.pooled_prior
            && let Some(evidence) = pooled.filter(|e| fits(e))
        {
            let base = self.pooled.clone().unwrap_or_else(|| self.base_prior());
            out.pooled = Some(base.times(evidence, 1.0));
        }
        let prior = out.prior();
        for (action, evidence) in actions.iter().filter(|(_, e)| fits(e)) {
            let base = self.actions.get(action).unwrap_or(&prior);
            let posterior = base.times(evidence, 1.0);
            out.actions.insert(action.clone(), posterior);
        }
        out
    }

    /// Checks sizes and numbers: a `(field path, reason)` for the first problem found.
    pub fn check(&self) -> Result<(), (String, String)> {
        let width = self.width();
        if width > MAX_INPUTS {
            return Err((
                "encoder".into(),
                format!("{width} inputs; a propensity model takes at most {MAX_INPUTS}"),
            ));
        }
        for (i, n) in self.encoder.numeric.iter().enumerate() {
            if !(n.mean.is_finite() && n.scale.is_finite() && n.scale > 0.0) {
                return Err((
                    format!("encoder.numeric[{i}]"),
                    "mean must be finite and scale finite and > 0".into(),
                ));
            }
        }
        if self.prior_mean.len() != width {
            return Err((
                "prior_mean".into(),
                format!("{} values for {width} weights", self.prior_mean.len()),
            ));
        }
        if !self.prior_mean.iter().all(|v| v.is_finite()) {
            return Err(("prior_mean".into(), "contains a non-finite number".into()));
        }
        if !(self.prior_variance.is_finite() && self.prior_variance > 0.0) {
            return Err(("prior_variance".into(), "must be finite and > 0".into()));
        }
        let h = self.forgetting.half_life_hours;
        if !(h.is_finite() && h >= 0.0) {
            return Err((
                "forgetting.half_life_hours".into(),
                "must be finite and >= 0 (0: never forget)".into(),
            ));
        }
        let posteriors = self.pooled.iter().map(|p| ("pooled".to_owned(), p)).chain(
            self.actions
                .iter()
                .map(|(a, p)| (format!("actions[{a:?}]"), p)),
        );
        for (field, p) in posteriors {
            if p.mean.len() != width || p.precision.len() != width {
                return Err((
                    field,
                    format!(
                        "{} means and {} precisions for {width} weights",
                        p.mean.len(),
                        p.precision.len()
                    ),
                ));
            }
            if !p.mean.iter().all(|v| v.is_finite()) {
                return Err((
                    format!("{field}.mean"),
                    "contains a non-finite number".into(),
                ));
            }
            if !p.precision.iter().all(|v| v.is_finite() && *v > 0.0) {
                return Err((
                    format!("{field}.precision"),
                    "every precision must be finite and > 0".into(),
                ));
            }
        }
        Ok(())
    }
}
