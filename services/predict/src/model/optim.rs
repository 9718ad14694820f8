//! Maximum-likelihood fitting through `argmin`'s L-BFGS: the error every fit returns and one
//! helper that minimises a smooth objective given as value-and-gradient.

use std::sync::Mutex;

use argmin::{
    core::{CostFunction, Error as ArgminError, Executor, Gradient, State},
    solver::{linesearch::MoreThuenteLineSearch, quasinewton::LBFGS},
};

/// Why a model could not be fitted.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum FitError {
    /// Nothing to learn from.
    #[error("no training rows")]
    Empty,
    /// Inputs of inconsistent shape or out of range (ragged rows, a label outside its classes).
    #[error("invalid training data: {0}")]
    Invalid(String),
    /// The data cannot identify the model (a single class, no repeat buyers, …).
    #[error("the data cannot identify the model: {0}")]
    Degenerate(String),
    /// The optimiser failed or diverged.
    #[error("the optimiser failed: {0}")]
    Optimiser(String),
}

/// How long the optimiser may run.
pub(crate) const MAX_ITERS: u64 = 1000;

/// Maximises a mean log-likelihood over positive parameters, searched on their logarithms,
/// with a ridge penalty `penalizer · Σ θ²` on the parameters themselves (the reference
/// implementation's `penalizer_coef`). `log_likelihood(log θ)` returns the value and its gradient
/// with respect to `log θ`. Returns the best `log θ`.
pub(crate) fn maximize_penalised_log_params<F>(
    log_likelihood: F,
    penalizer: f64,
    init: Vec<f64>,
) -> Result<Vec<f64>, FitError>
where
    F: Fn(&[f64]) -> (f64, Vec<f64>),
{
    minimize(
        |log_theta| {
            let (ll, g) = log_likelihood(log_theta);
            let theta: Vec<f64> = log_theta.iter().map(|v| v.exp()).collect();
            let value = -ll + penalizer * theta.iter().map(|t| t * t).sum::<f64>();
            let gradient = g
                .iter()
                .zip(&theta)
                .map(|(gi, t)| -gi + penalizer * 2.0 * t * t)
                .collect();
            (value, gradient)
        },
        init,
    )
}

/// Minimises `objective`, which returns the value and the gradient at a point, from `init` with
/// L-BFGS (history 10, Moré-Thuente line search). Returns the best point found.
pub(crate) fn minimize<F>(objective: F, init: Vec<f64>) -> Result<Vec<f64>, FitError>
where
    F: Fn(&[f64]) -> (f64, Vec<f64>),
{
    let problem = Smooth {
        objective,
        last: Mutex::new(None),
    };
    let optimiser = |e: ArgminError| FitError::Optimiser(e.to_string());
    let solver = LBFGS::new(MoreThuenteLineSearch::new(), 10)
        .with_tolerance_grad(1e-9)
        .map_err(optimiser)?
        .with_tolerance_cost(1e-14)
        .map_err(optimiser)?;
    let result = Executor::new(problem, solver)
        .configure(|state| state.param(init).max_iters(MAX_ITERS))
        .run()
        .map_err(optimiser)?;
    let state = result.state();
    let best = state
        .get_best_param()
        .cloned()
        .ok_or_else(|| FitError::Optimiser("no parameters after optimisation".to_owned()))?;
    if !state.get_best_cost().is_finite() || best.iter().any(|v| !v.is_finite()) {
        return Err(FitError::Optimiser(
            "diverged to a non-finite objective or parameters".to_owned(),
        ));
    }
    Ok(best)
}

/// An objective evaluated once per point: argmin asks for the cost and the gradient separately,
/// while the likelihoods compute both in one pass over the data.
struct Smooth<F> {
    objective: F,
    last: Mutex<Option<Evaluation>>,
}

/// A point with the objective's value and gradient there.
type Evaluation = (Vec<f64>, f64, Vec<f64>);

impl<F: Fn(&[f64]) -> (f64, Vec<f64>)> Smooth<F> {
    fn eval(&self, p: &[f64]) -> (f64, Vec<f64>) {
        let mut last = self
            .last
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some((at, value, gradient)) = last.as_ref()
            && at.as_slice() == p
        {
            return (*value, gradient.clone());
        }
        let (value, gradient) = (self.objective)(p);
        *last = Some((p.to_vec(), value, gradient.clone()));
        (value, gradient)
    }
}

impl<F: Fn(&[f64]) -> (f64, Vec<f64>)> CostFunction for Smooth<F> {
    type Param = Vec<f64>;
    type Output = f64;

    fn cost(&self, p: &Self::Param) -> Result<f64, ArgminError> {
        Ok(self.eval(p).0)
    }
}

impl<F: Fn(&[f64]) -> (f64, Vec<f64>)> Gradient for Smooth<F> {
    type Param = Vec<f64>;
    type Gradient = Vec<f64>;

    fn gradient(&self, p: &Self::Param) -> Result<Vec<f64>, ArgminError> {
        Ok(self.eval(p).1)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn minimises_a_shifted_quadratic() {
        let best = minimize(
            |p| {
                let value = (p[0] - 3.0).powi(2) + 10.0 * (p[1] + 1.0).powi(2);
                (value, vec![2.0 * (p[0] - 3.0), 20.0 * (p[1] + 1.0)])
            },
            vec![0.0, 0.0],
        )
        .unwrap();
        assert!(
            (best[0] - 3.0).abs() < 1e-6 && (best[1] + 1.0).abs() < 1e-6,
            "{best:?}"
        );
    }
}
