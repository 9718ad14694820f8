//! The numerics: the Laplace update (MAP by Newton's method), and the logistic helpers.

use std::{f64::consts::PI, sync::LazyLock};

use super::model::{DENSE_NEWTON_MAX, NEWTON_ITERATIONS, NEWTON_TOLERANCE, Posterior};

/// The logistic function, computed without overflow for large |z|.
pub(super) fn sigmoid(z: f64) -> f64 {
    if z >= 0.0 {
        1.0 / (1.0 + (-z).exp())
    } else {
        let e = z.exp();
        e / (1.0 + e)
    }
}

/// `ln(1 + e^z)` without overflow.
pub(super) fn softplus(z: f64) -> f64 {
    z.max(0.0) + (-z.abs()).exp().ln_1p()
}

/// Nodes and weights of the `n`-point Gauss–Hermite rule for a standard normal variable:
/// `E f(Z) ≈ Σ w_i f(x_i)`, exact for polynomials of degree < 2n (Golub–Welsch roots found by
/// Newton's method on the normalised Hermite recurrence, as in Numerical Recipes' `gauher`).
pub(super) fn gauss_hermite(n: usize) -> Vec<(f64, f64)> {
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
pub(super) fn probability_stddev(a: f64, s: f64) -> f64 {
    let (mut m1, mut m2) = (0.0, 0.0);
    for (x, w) in HERMITE.iter() {
        let p = sigmoid(a + s * x);
        m1 += w * p;
        m2 += w * p * p;
    }
    (m2 - m1 * m1).max(0.0).sqrt()
}

pub(super) fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
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
pub(super) fn single_map(prior: &Posterior, x: &[f64], y: bool) -> Vec<f64> {
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
pub(super) fn batch_map(prior: &Posterior, rows: &[(Vec<f64>, bool)], dense: bool) -> Vec<f64> {
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
pub(super) fn cholesky_solve(h: &mut [f64], d: usize, g: &[f64]) -> Option<Vec<f64>> {
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
