//! The online propensity model: per action, a Bayesian logistic regression with a diagonal
//! Gaussian posterior, updated by the Laplace approximation and sampled for Thompson exploration.
//!
//! Chapelle & Li (2011), "An empirical evaluation of Thompson sampling", Algorithm 3: for each
//! batch, the new mean is the MAP weight vector under the current Gaussian (found by Newton's
//! method) and each precision grows by `Σ x_i² p (1 - p)` at that MAP. See `docs/propensity.md`.

use std::{borrow::Cow, collections::BTreeMap, f64::consts::PI, sync::LazyLock};

use iee_api::pb::predict::{FeatureContribution, FeatureVector};
use rand::Rng;
use rand_distr::StandardNormal;
use serde::{Deserialize, Serialize};

use super::encoder::Encoder;

/// Encoded inputs are clipped to ±this many standard deviations, so one outlier cannot swing a
/// posterior (a standardised value past 8 is almost always a data error).
pub const INPUT_CLIP: f64 = 8.0;

/// Most inputs (intercept included) a propensity model may have.
pub const MAX_INPUTS: usize = 4096;

/// Up to this many inputs a batch update solves the full Newton system; beyond, it uses the
/// diagonal of the Hessian (cheaper, more iterations, same fixed point).
const DENSE_NEWTON_MAX: usize = 128;
const NEWTON_ITERATIONS: usize = 50;
const NEWTON_TOLERANCE: f64 = 1e-9;

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

fn sigmoid(z: f64) -> f64 {
    if z >= 0.0 {
        1.0 / (1.0 + (-z).exp())
    } else {
        let e = z.exp();
        e / (1.0 + e)
    }
}

/// `ln(1 + e^z)` without overflow.
fn softplus(z: f64) -> f64 {
    z.max(0.0) + (-z.abs()).exp().ln_1p()
}

/// Nodes and weights of the `n`-point Gauss–Hermite rule for a standard normal variable:
/// `E f(Z) ≈ Σ w_i f(x_i)`, exact for polynomials of degree < 2n (Golub–Welsch roots found by
/// Newton's method on the normalised Hermite recurrence, as in Numerical Recipes' `gauher`).
fn gauss_hermite(n: usize) -> Vec<(f64, f64)> {
    let pi_m4 = PI.powf(-0.25);
    let nf = n as f64;
    let mut nodes = vec![(0.0, 0.0); n];
    let mut z = 0.0_f64;
    for i in 0..n.div_ceil(2) {
        z = match i {
            0 => (2.0 * nf + 1.0).sqrt() - 1.85575 * (2.0 * nf + 1.0).powf(-0.16667),
            1 => z - 1.14 * nf.powf(0.426) / z,
            2 => 1.86 * z - 0.86 * nodes[0].0,
            3 => 1.91 * z - 0.91 * nodes[1].0,
            _ => 2.0 * z - nodes[i - 2].0,
        };
        let mut derivative = 1.0;
        for _ in 0..100 {
            let (mut p1, mut p2) = (pi_m4, 0.0);
            for j in 1..=n {
                let jf = j as f64;
                let p3 = p2;
                p2 = p1;
                p1 = z * (2.0 / jf).sqrt() * p2 - ((jf - 1.0) / jf).sqrt() * p3;
            }
            derivative = (2.0 * nf).sqrt() * p2;
            let step = p1 / derivative;
            z -= step;
            if step.abs() <= 1e-15 * z.abs().max(1.0) {
                break;
            }
        }
        let weight = 2.0 / (derivative * derivative);
        nodes[i] = (z, weight);
        nodes[n - 1 - i] = (-z, weight);
    }
    // From the weight e^{-t²} to the standard normal: x = √2·t, w = v/√π.
    nodes
        .into_iter()
        .map(|(t, v)| (t * std::f64::consts::SQRT_2, v / PI.sqrt()))
        .collect()
}

static HERMITE: LazyLock<Vec<(f64, f64)>> = LazyLock::new(|| gauss_hermite(16));

/// Standard deviation of `σ(z)` for `z ~ N(a, s²)`. The delta method (`σ'(a)·s`) is far off
/// for the wide posteriors of new actions (σ is skewed there), so both moments are integrated.
fn probability_stddev(a: f64, s: f64) -> f64 {
    let (mut m1, mut m2) = (0.0, 0.0);
    for (x, w) in HERMITE.iter() {
        let p = sigmoid(a + s * x);
        m1 += w * p;
        m2 += w * p * p;
    }
    (m2 - m1 * m1).max(0.0).sqrt()
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
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

/// One batch of Chapelle & Li's Algorithm 3: the MAP weights under the Gaussian `prior` given
/// the outcomes, and the prior precision plus `Σ x_i² p (1 - p)` at that MAP.
pub(crate) fn laplace_update(prior: &Posterior, rows: &[(Vec<f64>, bool)]) -> Posterior {
    if rows.is_empty() {
        return prior.clone();
    }
    let w = if rows.len() == 1 {
        single_map(prior, &rows[0].0, rows[0].1)
    } else {
        batch_map(prior, rows, prior.mean.len() <= DENSE_NEWTON_MAX)
    };
    let mut precision = prior.precision.clone();
    for (x, _) in rows {
        let p = sigmoid(dot(&w, x));
        let curvature = p * (1.0 - p);
        for (l, xi) in precision.iter_mut().zip(x) {
            *l += xi * xi * curvature;
        }
    }
    Posterior {
        mean: w,
        precision,
        observations: prior.observations + rows.len() as u64,
    }
}

/// The MAP for one outcome, in closed form up to a scalar: the gradient condition
/// `λ∘(w − μ) + (σ(w·x) − y)·x = 0` gives `w = μ − c·x/λ` with `c = σ(a − c·s²) − y`,
/// `a = μ·x`, `s² = Σ x_i²/λ_i`. `c` lies in (−1, 1) and the equation is monotone, so a
/// bracketed Newton iteration finds it in a handful of O(1) steps.
fn single_map(prior: &Posterior, x: &[f64], y: bool) -> Vec<f64> {
    let a = dot(&prior.mean, x);
    let s2: f64 = x.iter().zip(&prior.precision).map(|(x, l)| x * x / l).sum();
    let target = if y { 1.0 } else { 0.0 };
    let (mut lo, mut hi) = if y { (-1.0, 0.0) } else { (0.0, 1.0) };
    let mut c = 0.5 * (lo + hi);
    for _ in 0..NEWTON_ITERATIONS {
        let p = sigmoid(a - c * s2);
        let g = c - p + target;
        if g.abs() < 1e-14 {
            break;
        }
        if g > 0.0 {
            hi = c;
        } else {
            lo = c;
        }
        let next = c - g / (1.0 + p * (1.0 - p) * s2);
        c = if next > lo && next < hi {
            next
        } else {
            0.5 * (lo + hi)
        };
    }
    prior
        .mean
        .iter()
        .zip(&prior.precision)
        .zip(x)
        .map(|((m, l), xi)| m - c * xi / l)
        .collect()
}

/// The MAP for a batch by damped Newton steps on the (strictly convex) negative log posterior.
fn batch_map(prior: &Posterior, rows: &[(Vec<f64>, bool)], dense: bool) -> Vec<f64> {
    let d = prior.mean.len();
    // Sparse rows: one-hot inputs are mostly zero.
    let sparse: Vec<(Vec<(usize, f64)>, f64)> = rows
        .iter()
        .map(|(x, y)| {
            let nz = x
                .iter()
                .copied()
                .enumerate()
                .filter(|(_, v)| *v != 0.0)
                .collect();
            (nz, if *y { 1.0 } else { 0.0 })
        })
        .collect();
    let objective = |w: &[f64]| -> f64 {
        let prior_term: f64 = w
            .iter()
            .zip(&prior.mean)
            .zip(&prior.precision)
            .map(|((w, m), l)| 0.5 * l * (w - m) * (w - m))
            .sum();
        let data: f64 = sparse
            .iter()
            .map(|(nz, y)| {
                let z: f64 = nz.iter().map(|(i, v)| w[*i] * v).sum();
                softplus(z) - y * z
            })
            .sum();
        prior_term + data
    };
    let mut w = prior.mean.clone();
    let mut f = objective(&w);
    let mut hessian = vec![0.0; if dense { d * d } else { d }];
    for _ in 0..NEWTON_ITERATIONS {
        let mut gradient: Vec<f64> = w
            .iter()
            .zip(&prior.mean)
            .zip(&prior.precision)
            .map(|((w, m), l)| l * (w - m))
            .collect();
        hessian.fill(0.0);
        for (i, l) in prior.precision.iter().enumerate() {
            hessian[if dense { i * d + i } else { i }] = *l;
        }
        for (nz, y) in &sparse {
            let z: f64 = nz.iter().map(|(i, v)| w[*i] * v).sum();
            let p = sigmoid(z);
            let curvature = p * (1.0 - p);
            for &(i, xi) in nz {
                gradient[i] += (p - y) * xi;
                if dense {
                    for &(j, xj) in nz {
                        hessian[i * d + j] += curvature * xi * xj;
                    }
                } else {
                    hessian[i] += curvature * xi * xi;
                }
            }
        }
        let step = if dense {
            match cholesky_solve(&mut hessian, d, &gradient) {
                Some(step) => step,
                None => gradient
                    .iter()
                    .zip(&prior.precision)
                    .map(|(g, l)| g / l)
                    .collect(),
            }
        } else {
            gradient.iter().zip(&hessian).map(|(g, h)| g / h).collect()
        };
        let decrement = dot(&gradient, &step);
        if decrement.is_nan() || decrement <= 1e-20 {
            break;
        }
        // Backtracking (Armijo) line search: a full Newton step is taken near the optimum.
        let mut t = 1.0;
        let mut accepted = false;
        for _ in 0..40 {
            let candidate: Vec<f64> = w.iter().zip(&step).map(|(w, s)| w - t * s).collect();
            let fc = objective(&candidate);
            if fc <= f - 1e-4 * t * decrement {
                w = candidate;
                f = fc;
                accepted = true;
                break;
            }
            t *= 0.5;
        }
        let moved = t * step.iter().fold(0.0_f64, |m, s| m.max(s.abs()));
        if !accepted || moved < NEWTON_TOLERANCE {
            break;
        }
    }
    w
}

/// Solves `H s = g` for a symmetric positive definite `H` (row-major, `d × d`, overwritten by
/// its Cholesky factor). `None` if `H` is not numerically positive definite.
fn cholesky_solve(h: &mut [f64], d: usize, g: &[f64]) -> Option<Vec<f64>> {
    for j in 0..d {
        let mut diag = h[j * d + j];
        for k in 0..j {
            diag -= h[j * d + k] * h[j * d + k];
        }
        if diag.is_nan() || diag <= 0.0 {
            return None;
        }
        let diag = diag.sqrt();
        h[j * d + j] = diag;
        for i in j + 1..d {
            let mut v = h[i * d + j];
            for k in 0..j {
                v -= h[i * d + k] * h[j * d + k];
            }
            h[i * d + j] = v / diag;
        }
    }
    // Forward (L y = g), then backward (Lᵀ s = y) substitution.
    let mut s = g.to_vec();
    for i in 0..d {
        for k in 0..i {
            s[i] -= h[i * d + k] * s[k];
        }
        s[i] /= h[i * d + i];
    }
    for i in (0..d).rev() {
        for k in i + 1..d {
            s[i] -= h[k * d + i] * s[k];
        }
        s[i] /= h[i * d + i];
    }
    Some(s)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use rand::{SeedableRng, rngs::SmallRng};

    use super::*;
    use crate::model::encoder::{CategoricalInput, NumericInput};

    fn encoder(numeric: &[&str], categorical: &[(&str, &[&str])]) -> Encoder {
        Encoder {
            numeric: numeric
                .iter()
                .map(|n| NumericInput {
                    name: (*n).to_owned(),
                    mean: 0.0,
                    scale: 1.0,
                })
                .collect(),
            categorical: categorical
                .iter()
                .map(|(n, cats)| CategoricalInput {
                    name: (*n).to_owned(),
                    categories: cats.iter().map(|c| (*c).to_owned()).collect(),
                })
                .collect(),
        }
    }

    fn features(numeric: &[(&str, f64)], categorical: &[(&str, &str)]) -> FeatureVector {
        FeatureVector {
            numeric: numeric.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect(),
            categorical: categorical
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        }
    }

    fn never() -> Forgetting {
        Forgetting {
            half_life_hours: 0.0,
        }
    }

    /// Random encoded rows of width `d` (intercept first) with outcomes from `truth`.
    fn rows(rng: &mut SmallRng, truth: &[f64], n: usize) -> Vec<(Vec<f64>, bool)> {
        (0..n)
            .map(|_| {
                let mut x = vec![1.0];
                x.extend((1..truth.len()).map(|_| rng.random_range(-1.5..1.5)));
                let y = rng.random_bool(sigmoid(dot(truth, &x)));
                (x, y)
            })
            .collect()
    }

    fn gradient_norm(prior: &Posterior, rows: &[(Vec<f64>, bool)], w: &[f64]) -> f64 {
        let mut g: Vec<f64> = (0..w.len())
            .map(|i| prior.precision[i] * (w[i] - prior.mean[i]))
            .collect();
        for (x, y) in rows {
            let r = sigmoid(dot(w, x)) - if *y { 1.0 } else { 0.0 };
            for (gi, xi) in g.iter_mut().zip(x) {
                *gi += r * xi;
            }
        }
        g.iter().fold(0.0, |m, v| m.max(v.abs()))
    }

    #[test]
    fn gauss_hermite_integrates_normal_moments_exactly() {
        let nodes = gauss_hermite(16);
        let moment = |k: i32| nodes.iter().map(|(x, w)| w * x.powi(k)).sum::<f64>();
        assert!((moment(0) - 1.0).abs() < 1e-12);
        assert!(moment(1).abs() < 1e-12);
        assert!((moment(2) - 1.0).abs() < 1e-12);
        assert!((moment(4) - 3.0).abs() < 1e-10);
        assert!((moment(8) - 105.0).abs() < 1e-8);
        // A narrow posterior: the delta method is right there.
        let (a, s) = (-1.0, 0.01);
        let delta = sigmoid(a) * (1.0 - sigmoid(a)) * s;
        assert!((probability_stddev(a, s) - delta).abs() < 1e-6);
    }

    #[test]
    fn a_positive_feature_moves_its_weight_up_and_a_negative_outcome_down() {
        let mut model = PropensityModel::new(encoder(&["x"], &[]), 0.5, 1.0, never());
        let x = features(&[("x", 2.0)], &[]);
        model.update("up", &vec![(x.clone(), true); 20]);
        model.update("down", &vec![(x.clone(), false); 20]);
        let up = model.posterior("up");
        let down = model.posterior("down");
        assert!(up.mean[1] > 0.5, "{up:?}");
        assert!(down.mean[1] < -0.5, "{down:?}");
        let none: Option<&mut SmallRng> = None;
        assert!(model.score("up", &x, none).mean > 0.9);
        let none: Option<&mut SmallRng> = None;
        assert!(model.score("down", &x, none).mean < 0.1);
    }

    #[test]
    fn precision_grows_with_every_observation() {
        let mut model =
            PropensityModel::new(encoder(&["x"], &[("seg", &["a", "b"])]), 0.1, 1.0, never());
        let x = features(&[("x", 0.7)], &[("seg", "a")]);
        let mut last = model.posterior("o").precision.clone();
        for i in 0..30 {
            model.update("o", &[(x.clone(), i % 3 == 0)]);
            let now = model.posterior("o").precision.clone();
            // Intercept, x and seg=a grow; seg=b (input 0) never moves.
            for k in [0, 1, 2] {
                assert!(
                    now[k] > last[k],
                    "input {k} at step {i}: {now:?} vs {last:?}"
                );
            }
            assert_eq!(now[3], 1.0);
            last = now;
        }
        assert_eq!(model.posterior("o").observations, 30);
        assert_eq!(model.pooled.as_ref().unwrap().observations, 30);
    }

    #[test]
    fn forgetting_decays_evidence_toward_the_prior() {
        let forgetting = Forgetting {
            half_life_hours: 1.0,
        };
        let mut model = PropensityModel::new(encoder(&["x"], &[]), 0.2, 0.5, forgetting);
        model.pooled_prior = false;
        let batch: Vec<_> = (0..200)
            .map(|i| (features(&[("x", 1.0)], &[]), i % 2 == 0))
            .collect();
        model.update("o", &batch);
        let learned = model.posterior("o").into_owned();
        let prior = model.prior();
        model.forget(3_600_000);
        let half = model.posterior("o").into_owned();
        for i in 0..2 {
            let expected = prior.precision[i] + 0.5 * (learned.precision[i] - prior.precision[i]);
            assert!((half.precision[i] - expected).abs() < 1e-9, "{half:?}");
            let eta = |p: &Posterior| p.mean[i] * p.precision[i];
            let expected_eta = eta(&prior) + 0.5 * (eta(&learned) - eta(&prior));
            assert!((eta(&half) - expected_eta).abs() < 1e-9);
        }
        model.forget(100 * 3_600_000);
        let gone = model.posterior("o");
        for i in 0..2 {
            assert!((gone.precision[i] - prior.precision[i]).abs() < 1e-9);
            assert!((gone.mean[i] - prior.mean[i]).abs() < 1e-6, "{gone:?}");
        }
        assert_eq!(
            gone.observations, 200,
            "observations are counted, not forgotten"
        );
        // A half-life of 0 never forgets.
        let mut keep = PropensityModel::new(encoder(&[], &[]), 0.2, 1.0, never());
        keep.update("o", &[(FeatureVector::default(), true)]);
        let before = keep.clone();
        keep.forget(u64::MAX);
        assert_eq!(keep, before);
    }

    #[test]
    fn single_outcome_map_matches_the_newton_solution_and_zeroes_the_gradient() {
        let mut rng = SmallRng::seed_from_u64(7);
        let truth = [-1.0, 0.8, -0.3, 1.2];
        for _ in 0..50 {
            let prior = Posterior {
                mean: (0..4).map(|_| rng.random_range(-2.0..2.0)).collect(),
                precision: (0..4).map(|_| rng.random_range(0.2..20.0)).collect(),
                observations: 0,
            };
            let row = rows(&mut rng, &truth, 1);
            let closed = single_map(&prior, &row[0].0, row[0].1);
            for dense in [true, false] {
                let newton = batch_map(&prior, &row, dense);
                for (a, b) in closed.iter().zip(&newton) {
                    assert!((a - b).abs() < 1e-7, "{closed:?} vs {newton:?}");
                }
            }
            assert!(gradient_norm(&prior, &row, &closed) < 1e-10);
        }
    }

    #[test]
    fn batch_map_is_the_optimum_with_dense_and_diagonal_newton() {
        let mut rng = SmallRng::seed_from_u64(11);
        let truth = [-2.0, 1.0, -0.5, 0.0, 2.0, 0.3];
        let prior = Posterior {
            mean: vec![0.0; 6],
            precision: vec![1.0; 6],
            observations: 0,
        };
        let batch = rows(&mut rng, &truth, 300);
        let dense = batch_map(&prior, &batch, true);
        let diagonal = batch_map(&prior, &batch, false);
        assert!(gradient_norm(&prior, &batch, &dense) < 1e-8);
        assert!(gradient_norm(&prior, &batch, &diagonal) < 1e-6);
        for (a, b) in dense.iter().zip(&diagonal) {
            assert!((a - b).abs() < 1e-6);
        }
    }

    #[test]
    fn recovers_known_coefficients_from_many_outcomes() {
        let mut rng = SmallRng::seed_from_u64(3);
        let truth = [-1.5, 1.0, -0.7, 0.4];
        let mut model = PropensityModel::new(encoder(&["a", "b", "c"], &[]), 0.2, 4.0, never());
        for _ in 0..100 {
            let batch = rows(&mut rng, &truth, 200);
            model.update_encoded("o", &batch);
        }
        let posterior = model.posterior("o");
        for (i, (m, t)) in posterior.mean.iter().zip(truth).enumerate() {
            let sd = posterior.precision[i].powf(-0.5);
            assert!(
                (m - t).abs() < 4.0 * sd.max(0.02),
                "weight {i}: {m} vs {t} (sd {sd})"
            );
        }
    }

    #[test]
    fn unknown_actions_score_from_the_prior_and_sampling_spreads_around_the_mean() {
        let mut model = PropensityModel::new(encoder(&["x"], &[]), 0.05, 1.0, never());
        let x = features(&[("x", 1.0)], &[]);
        let none: Option<&mut SmallRng> = None;
        let fresh = model.score("new", &x, none);
        assert_eq!(fresh.observations, 0);
        assert_eq!(fresh.sample, fresh.mean);
        // The prior mean is pulled toward 0.5 by the prior variance (MacKay), never below 5 %.
        assert!(fresh.mean > 0.05 && fresh.mean < 0.2, "{fresh:?}");
        let mut rng = SmallRng::seed_from_u64(1);
        let samples: Vec<f64> = (0..4000)
            .map(|_| model.score("new", &x, Some(&mut rng)).sample)
            .collect();
        let average = samples.iter().sum::<f64>() / samples.len() as f64;
        assert!(
            (average - fresh.mean).abs() < 0.01,
            "{average} vs {}",
            fresh.mean
        );
        let sd = (samples.iter().map(|s| (s - average).powi(2)).sum::<f64>()
            / samples.len() as f64)
            .sqrt();
        assert!(
            (sd - fresh.stddev).abs() < 0.35 * sd,
            "{sd} vs {}",
            fresh.stddev
        );
        // Evidence narrows the posterior; pooling moves new actions' prior toward the data.
        let batch: Vec<_> = (0..500).map(|i| (x.clone(), i % 5 == 0)).collect();
        model.update("seen", &batch);
        let none: Option<&mut SmallRng> = None;
        let seen = model.score("seen", &x, none);
        assert!(seen.stddev < fresh.stddev / 3.0, "{seen:?}");
        assert!((seen.mean - 0.2).abs() < 0.03, "{seen:?}");
        let none: Option<&mut SmallRng> = None;
        let new_after = model.score("another", &x, none);
        assert!(new_after.mean > fresh.mean, "{new_after:?} vs {fresh:?}");
        assert_eq!(seen.contributions.len(), 1);
    }

    #[test]
    fn evidence_adds_up_to_the_sequentially_updated_model() {
        let mut rng = SmallRng::seed_from_u64(5);
        let base = PropensityModel::new(encoder(&["a", "b"], &[]), 0.1, 1.0, never());
        let mut model = base.clone();
        let mut evidence: BTreeMap<String, Evidence> = BTreeMap::new();
        let mut pooled = Evidence::default();
        for i in 0..20 {
            let action = ["x", "y"][i % 2];
            let batch = rows(&mut rng, &[-1.0, 0.5, 0.5], 1 + i % 4);
            evidence
                .entry(action.to_owned())
                .or_default()
                .add(&model.update_encoded(action, &batch));
            pooled.add(&model.update_pooled_encoded(&batch).unwrap());
        }
        let rebuilt = base.with_evidence(Some(&pooled), &evidence);
        let close = |a: &Posterior, b: &Posterior| {
            a.observations == b.observations
                && a.mean
                    .iter()
                    .zip(&b.mean)
                    .all(|(x, y)| (x - y).abs() < 1e-9)
                && a.precision
                    .iter()
                    .zip(&b.precision)
                    .all(|(x, y)| (x - y).abs() < 1e-9)
        };
        assert!(close(
            rebuilt.pooled.as_ref().unwrap(),
            model.pooled.as_ref().unwrap()
        ));
        // Actions created before the pooled mean moved keep their creation-time prior in the
        // sequential model; the rebuilt one re-bases them on the current pooled mean. Without
        // pooling both agree exactly.
        let mut plain = base.clone();
        plain.pooled_prior = false;
        let mut sequential = plain.clone();
        let mut evidence: BTreeMap<String, Evidence> = BTreeMap::new();
        for i in 0..20 {
            let action = ["x", "y"][i % 2];
            let batch = rows(&mut rng, &[-1.0, 0.5, 0.5], 1 + i % 4);
            evidence
                .entry(action.to_owned())
                .or_default()
                .add(&sequential.update_encoded(action, &batch));
        }
        let rebuilt = plain.with_evidence(None, &evidence);
        for action in ["x", "y"] {
            assert!(close(&rebuilt.actions[action], &sequential.actions[action]));
        }
    }

    #[test]
    fn check_refuses_bad_sizes_and_numbers_and_serde_round_trips() {
        let mut model = PropensityModel::new(
            encoder(&["x"], &[("c", &["a"])]),
            0.1,
            1.0,
            Forgetting::default(),
        );
        model.update("o", &[(features(&[("x", 1.0)], &[("c", "a")]), true)]);
        assert_eq!(model.check(), Ok(()));
        let json = serde_json::to_string(&model).unwrap();
        let back: PropensityModel = serde_json::from_str(&json).unwrap();
        // serde_json's float parsing may differ from the source in the last bit.
        assert_eq!(back.encoder, model.encoder);
        for (a, b) in back.actions["o"].mean.iter().zip(&model.actions["o"].mean) {
            assert!((a - b).abs() < 1e-12);
        }
        assert_eq!(PropensityModel::default().check(), Ok(()));
        let broken = |edit: &dyn Fn(&mut PropensityModel)| {
            let mut m = model.clone();
            edit(&mut m);
            m.check().unwrap_err().0
        };
        assert_eq!(broken(&|m| m.prior_mean.push(0.0)), "prior_mean");
        assert_eq!(broken(&|m| m.prior_variance = 0.0), "prior_variance");
        assert_eq!(
            broken(&|m| m.forgetting.half_life_hours = f64::NAN),
            "forgetting.half_life_hours"
        );
        assert_eq!(
            broken(&|m| m.actions.get_mut("o").unwrap().precision[1] = -1.0),
            "actions[\"o\"].precision"
        );
        assert_eq!(
            broken(&|m| m
                .actions
                .get_mut("o")
                .unwrap()
                .mean
                .pop()
                .map(drop)
                .unwrap_or(())),
            "actions[\"o\"]"
        );
        assert_eq!(
            broken(&|m| m.pooled.as_mut().unwrap().mean[0] = f64::INFINITY),
            "pooled.mean"
        );
        assert_eq!(
            broken(&|m| m.encoder.numeric[0].scale = 0.0),
            "encoder.numeric[0]"
        );
    }

    /// One arm per action; `rate(action, context)` the true response probability.
    struct Bandit {
        actions: Vec<String>,
        contexts: Vec<FeatureVector>,
        rate: fn(usize, usize) -> f64,
    }

    struct Run {
        regret: f64,
        /// Times each action was chosen in each context in the last quarter.
        late_choices: Vec<Vec<u64>>,
    }

    /// Plays `rounds` rounds; feedback arrives in batches of `delay` rounds, as between syncs.
    fn play(bandit: &Bandit, model: Option<PropensityModel>, rounds: usize, seed: u64) -> Run {
        let mut rng = SmallRng::seed_from_u64(seed);
        let mut model = model;
        let k = bandit.actions.len();
        let mut late_choices = vec![vec![0; k]; bandit.contexts.len()];
        let mut regret = 0.0;
        let mut feedback: BTreeMap<usize, Vec<(FeatureVector, bool)>> = BTreeMap::new();
        let delay = 20;
        for round in 0..rounds {
            let c = rng.random_range(0..bandit.contexts.len());
            let x = &bandit.contexts[c];
            let chosen = match &model {
                None => rng.random_range(0..k),
                Some(m) => {
                    let inputs = m.encode(x);
                    (0..k)
                        .map(|a| {
                            (
                                a,
                                m.score_encoded(&bandit.actions[a], &inputs, Some(&mut rng))
                                    .sample,
                            )
                        })
                        .max_by(|a, b| a.1.total_cmp(&b.1))
                        .map(|(a, _)| a)
                        .unwrap()
                }
            };
            let best = (0..k).map(|a| (bandit.rate)(a, c)).fold(0.0, f64::max);
            regret += best - (bandit.rate)(chosen, c);
            if round >= rounds * 3 / 4 {
                late_choices[c][chosen] += 1;
            }
            let reward = rng.random_bool((bandit.rate)(chosen, c));
            feedback
                .entry(chosen)
                .or_default()
                .push((x.clone(), reward));
            if (round + 1) % delay == 0
                && let Some(m) = &mut model
            {
                for (a, batch) in std::mem::take(&mut feedback) {
                    m.update(&bandit.actions[a], &batch);
                }
            }
        }
        Run {
            regret,
            late_choices,
        }
    }

    #[test]
    fn thompson_sampling_finds_the_best_arm_with_far_less_regret_than_uniform_choice() {
        let bandit = Bandit {
            actions: (0..5).map(|a| format!("offer-{a}")).collect(),
            contexts: vec![FeatureVector::default()],
            rate: |a, _| 0.02 * (a + 1) as f64,
        };
        let model = PropensityModel::new(encoder(&[], &[]), 0.05, 1.0, never());
        let rounds = 20_000;
        let thompson = play(&bandit, Some(model), rounds, 42);
        let uniform = play(&bandit, None, rounds, 42);
        eprintln!(
            "bernoulli bandit, {rounds} rounds: regret thompson {:.1}, uniform {:.1} ({:.1} %), \
             last-quarter choices {:?}",
            thompson.regret,
            uniform.regret,
            100.0 * thompson.regret / uniform.regret,
            thompson.late_choices[0]
        );
        assert!(thompson.regret < 0.25 * uniform.regret);
        let late = &thompson.late_choices[0];
        let best = late.iter().enumerate().max_by_key(|(_, n)| **n).unwrap().0;
        assert_eq!(best, 4, "{late:?}");
        assert!(late[4] * 2 > late.iter().sum::<u64>(), "{late:?}");
    }

    #[test]
    fn contextual_thompson_sampling_learns_that_the_best_action_depends_on_the_segment() {
        let seg = |s: &str| features(&[], &[("segment", s)]);
        let bandit = Bandit {
            actions: (0..4).map(|a| format!("offer-{a}")).collect(),
            contexts: vec![seg("young"), seg("senior")],
            // Offer 0 suits the young, offer 3 the seniors; 1 and 2 are middling for both.
            rate: |a, c| match (a, c) {
                (0, 0) | (3, 1) => 0.12,
                (0, _) | (3, _) => 0.02,
                _ => 0.06,
            },
        };
        let model = PropensityModel::new(
            encoder(&[], &[("segment", &["young", "senior"])]),
            0.05,
            1.0,
            never(),
        );
        let rounds = 20_000;
        let thompson = play(&bandit, Some(model), rounds, 7);
        let uniform = play(&bandit, None, rounds, 7);
        eprintln!(
            "contextual bandit, {rounds} rounds: regret thompson {:.1}, uniform {:.1} ({:.1} %), \
             last-quarter choices {:?}",
            thompson.regret,
            uniform.regret,
            100.0 * thompson.regret / uniform.regret,
            thompson.late_choices
        );
        assert!(thompson.regret < 0.25 * uniform.regret);
        for (context, best) in [(0, 0), (1, 3)] {
            let late = &thompson.late_choices[context];
            let top = late.iter().enumerate().max_by_key(|(_, n)| **n).unwrap().0;
            assert_eq!(top, best, "context {context}: {late:?}");
        }
    }
}
