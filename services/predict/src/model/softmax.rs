//! Multinomial (softmax) logistic regression (satisfaction classes): maximum likelihood with a
//! ridge penalty by L-BFGS with the analytic gradient.

use super::{
    logistic::{check, dot},
    optim::{FitError, minimize},
};

/// Fits one weight vector and one intercept per class to rows `x` with class labels `y` in
/// `0..n_classes` by minimising
///
/// `Σᵢ −ln softmax(zᵢ)[yᵢ] + (l2 / 2)·Σₖ‖wₖ‖²`, with `zᵢₖ = bₖ + wₖ·xᵢ`.
///
/// Every class keeps its own parameters (no reference class): the penalty makes the weights
/// identifiable, and the intercepts start at zero sum and stay there because the gradient never
/// changes their sum, so the fit is the symmetric (sum-to-zero) parameterisation.
pub fn fit(
    x: &[Vec<f64>],
    y: &[usize],
    n_classes: usize,
    l2: f64,
) -> Result<(Vec<Vec<f64>>, Vec<f64>), FitError> {
    let n = x.len();
    if n == 0 {
        return Err(FitError::Empty);
    }
    if n_classes < 2 {
        return Err(FitError::Invalid(format!(
            "{n_classes} classes; at least 2 are needed"
        )));
    }
    let d = x[0].len();
    check(x, &vec![0.0; y.len()], d, l2)?;
    if let Some(i) = y.iter().position(|&k| k >= n_classes) {
        return Err(FitError::Invalid(format!(
            "label {i} is class {}, but there are {n_classes} classes",
            y[i]
        )));
    }
    let mut counts = vec![0usize; n_classes];
    for &k in y {
        counts[k] += 1;
    }
    if let Some(k) = counts.iter().position(|&c| c == 0) {
        // Its unpenalised intercept would run to −∞.
        return Err(FitError::Degenerate(format!(
            "class {k} has no training rows"
        )));
    }
    // Start from the class frequencies (centred log shares), zero weights.
    let logs: Vec<f64> = counts.iter().map(|&c| (c as f64).ln()).collect();
    let centre = logs.iter().sum::<f64>() / n_classes as f64;
    let mut init = vec![0.0; n_classes * d];
    init.extend(logs.iter().map(|l| l - centre));

    let inv_n = 1.0 / n as f64;
    let width = n_classes * d;
    let objective = |p: &[f64]| {
        let (w, b) = p.split_at(width);
        let mut value = 0.0;
        let mut gradient = vec![0.0; p.len()];
        let mut probs = vec![0.0; n_classes];
        for (row, &label) in x.iter().zip(y) {
            for (k, pk) in probs.iter_mut().enumerate() {
                *pk = b[k] + dot(&w[k * d..(k + 1) * d], row);
            }
            let log_norm = log_softmax_in_place(&mut probs);
            value += log_norm - (b[label] + dot(&w[label * d..(label + 1) * d], row));
            for (k, pk) in probs.iter().enumerate() {
                let residual = pk - if k == label { 1.0 } else { 0.0 };
                for (g, xi) in gradient[k * d..(k + 1) * d].iter_mut().zip(row) {
                    *g += residual * xi;
                }
                gradient[width + k] += residual;
            }
        }
        value += 0.5 * l2 * dot(w, w);
        for (g, wi) in gradient.iter_mut().zip(w) {
            *g += l2 * wi;
        }
        for g in &mut gradient {
            *g *= inv_n;
        }
        (value * inv_n, gradient)
    };
    let best = minimize(objective, init)?;
    let (w, b) = best.split_at(width);
    Ok((
        (0..n_classes)
            .map(|k| w[k * d..(k + 1) * d].to_vec())
            .collect(),
        b.to_vec(),
    ))
}

/// The class probabilities softmax(bₖ + wₖ·x), summing to 1.
pub fn probabilities(weights: &[Vec<f64>], intercepts: &[f64], x: &[f64]) -> Vec<f64> {
    let mut z: Vec<f64> = weights
        .iter()
        .zip(intercepts)
        .map(|(w, b)| b + dot(w, x))
        .collect();
    log_softmax_in_place(&mut z);
    z
}

/// Turns scores into probabilities in place and returns ln Σ exp(z), without overflow.
fn log_softmax_in_place(z: &mut [f64]) -> f64 {
    let max = z.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let sum: f64 = z.iter().map(|v| (v - max).exp()).sum();
    for v in z.iter_mut() {
        *v = (*v - max).exp() / sum;
    }
    max + sum.ln()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use rand::{Rng, SeedableRng, rngs::SmallRng};
    use rand_distr::StandardNormal;

    use super::*;

    #[test]
    fn recovers_known_coefficients_from_synthetic_data() {
        // Sum-to-zero truth (per input and for the intercepts), the parameterisation the
        // ridge-penalised fit converges to.
        let weights = vec![
            vec![1.0, -1.0, 0.5],
            vec![0.0, 0.5, -1.0],
            vec![-1.0, 0.5, 0.5],
        ];
        let intercepts = [0.3, 0.0, -0.3];
        let mut rng = SmallRng::seed_from_u64(11);
        let n = 30_000;
        let mut x = Vec::with_capacity(n);
        let mut y = Vec::with_capacity(n);
        for _ in 0..n {
            let row: Vec<f64> = (0..3).map(|_| rng.sample(StandardNormal)).collect();
            let p = probabilities(&weights, &intercepts, &row);
            let u: f64 = rng.random();
            let mut acc = 0.0;
            let class = p
                .iter()
                .position(|pk| {
                    acc += pk;
                    u < acc
                })
                .unwrap_or(2);
            x.push(row);
            y.push(class);
        }
        let (w, b) = fit(&x, &y, 3, 1e-3).unwrap();
        // Standard errors are about 0.02-0.03 per coefficient at this size (three balanced
        // classes, unit-variance inputs); 0.1 is more than three of them.
        for (fitted, truth) in w.iter().flatten().zip(weights.iter().flatten()) {
            assert!((fitted - truth).abs() < 0.1, "weights {w:?} vs {weights:?}");
        }
        for (fitted, truth) in b.iter().zip(intercepts) {
            assert!((fitted - truth).abs() < 0.1, "intercepts {b:?}");
        }
        assert!(
            b.iter().sum::<f64>().abs() < 1e-9,
            "intercepts stay centred: {b:?}"
        );
    }

    #[test]
    fn probabilities_sum_to_one_even_for_huge_scores() {
        let p = probabilities(&[vec![1000.0], vec![-1000.0]], &[0.0, 0.0], &[1.0]);
        assert!(
            (p.iter().sum::<f64>() - 1.0).abs() < 1e-12 && p[0] > 0.999,
            "{p:?}"
        );
    }

    #[test]
    fn refuses_a_class_without_rows_and_out_of_range_labels() {
        let x = vec![vec![1.0], vec![2.0]];
        assert!(matches!(
            fit(&x, &[0, 1], 3, 1.0),
            Err(FitError::Degenerate(_))
        ));
        assert!(matches!(
            fit(&x, &[0, 3], 3, 1.0),
            Err(FitError::Invalid(_))
        ));
    }
}
