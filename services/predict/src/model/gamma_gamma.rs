//! The Gamma-Gamma spend model (Fader, Hardie & Lee 2005, "RFM and CLV"; Fader & Hardie's note
//! "The Gamma-Gamma model of monetary value"): maximum-likelihood fit from repeat buyers' mean
//! spend, and the expected spend per purchase of a customer given their history.

use serde::{Deserialize, Serialize};

use super::{
    bgnbd::Rfm,
    optim::{FitError, maximize_penalised_log_params},
    special::{digamma, ln_gamma},
};

/// Gamma-Gamma parameters: each purchase's value zᵢ ~ Gamma(shape p, rate ν), and across
/// customers ν ~ Gamma(shape q, rate v). The mean spend per purchase is p·v / (q − 1).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct GammaGammaParams {
    /// Shape of the purchase values of one customer.
    pub p: f64,
    /// Shape of the rate distribution across customers.
    pub q: f64,
    /// Rate of the rate distribution across customers (in currency units).
    pub v: f64,
}

/// Fits the parameters by maximum likelihood from the customers with repeat purchases
/// (`frequency` > 0) and a positive `monetary` (their mean repeat-purchase value); others are
/// skipped. Minimises `−mean ln L(p, q, v | x, m̄) + penalizer·(p² + q² + v²)` over the
/// log-parameters with L-BFGS and the analytic gradient; `penalizer` is the reference
/// implementation's `penalizer_coef`.
pub fn fit(rows: &[Rfm], penalizer: f64) -> Result<GammaGammaParams, FitError> {
    if rows.is_empty() {
        return Err(FitError::Empty);
    }
    if !(penalizer.is_finite() && penalizer >= 0.0) {
        return Err(FitError::Invalid(format!(
            "penalizer is {penalizer}, must be >= 0"
        )));
    }
    let buyers: Vec<(f64, f64)> = rows
        .iter()
        .filter(|c| c.frequency > 0.0 && c.monetary > 0.0 && c.monetary.is_finite())
        .map(|c| (c.frequency, c.monetary))
        .collect();
    if buyers.len() < 2 {
        return Err(FitError::Degenerate(format!(
            "{} customers with repeat purchases and a positive spend; at least 2 are needed",
            buyers.len()
        )));
    }
    let best = maximize_penalised_log_params(
        |lp| mean_log_likelihood(lp, &buyers),
        penalizer,
        // Start where the reference implementation does (log-parameters 0.1).
        vec![0.1; 3],
    )?;
    let params = GammaGammaParams {
        p: best[0].exp(),
        q: best[1].exp(),
        v: best[2].exp(),
    };
    if [params.p, params.q, params.v]
        .iter()
        .any(|v| !(v.is_finite() && *v > 0.0))
    {
        return Err(FitError::Optimiser(format!(
            "fitted parameters out of range: {params:?}"
        )));
    }
    Ok(params)
}

/// Mean log-likelihood of `(x, m̄)` pairs at log-parameters ln(p, q, v), and its gradient with
/// respect to them.
pub(crate) fn mean_log_likelihood(lp: &[f64], buyers: &[(f64, f64)]) -> (f64, Vec<f64>) {
    let [p, q, v] = [lp[0].exp(), lp[1].exp(), lp[2].exp()];
    let (lg_q, dg_q) = (ln_gamma(q), digamma(q));
    let mut total = 0.0;
    let mut grad = [0.0; 3];
    for &(x, m) in buyers {
        let px = p * x;
        let xm_v = x * m + v;
        total +=
            ln_gamma(px + q) - ln_gamma(px) - lg_q + q * v.ln() + (px - 1.0) * m.ln() + px * x.ln()
                - (px + q) * xm_v.ln();
        let dg_pxq = digamma(px + q);
        grad[0] += x * (dg_pxq - digamma(px) + m.ln() + x.ln() - xm_v.ln());
        grad[1] += dg_pxq - dg_q + v.ln() - xm_v.ln();
        grad[2] += q / v - (px + q) / xm_v;
    }
    let n = buyers.len() as f64;
    (
        total / n,
        grad.iter().zip([p, q, v]).map(|(g, t)| g * t / n).collect(),
    )
}

impl GammaGammaParams {
    /// E[Z | x, m̄]: the expected value of a future purchase of a customer with `frequency`
    /// repeat purchases of mean value `monetary` — a credibility-weighted mix of the population
    /// mean p·v/(q − 1) and the customer's own mean. Customers without repeats get the
    /// population mean.
    pub fn conditional_expected_value(&self, frequency: f64, monetary: f64) -> f64 {
        let Self { p, q, v } = *self;
        let x = frequency.max(0.0);
        let m = if x > 0.0 { monetary } else { 0.0 };
        p * (v + x * m) / (p * x + q - 1.0)
    }

    /// The population mean value per purchase, p·v/(q − 1) (infinite when q ≤ 1).
    pub fn population_mean(&self) -> f64 {
        if self.q > 1.0 {
            self.p * self.v / (self.q - 1.0)
        } else {
            f64::INFINITY
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use rand::{Rng, SeedableRng, rngs::SmallRng};
    use rand_distr::{Distribution, Gamma};

    use super::*;
    use crate::model::bgnbd::tests::invert;

    fn simulate(truth: GammaGammaParams, customers: usize, seed: u64) -> Vec<Rfm> {
        let mut rng = SmallRng::seed_from_u64(seed);
        let rates = Gamma::new(truth.q, 1.0 / truth.v).unwrap();
        (0..customers)
            .map(|_| {
                let nu: f64 = rates.sample(&mut rng);
                let spend = Gamma::new(truth.p, 1.0 / nu).unwrap();
                let frequency = f64::from(rng.random_range(1..=8u8));
                let total: f64 = (0..frequency as usize)
                    .map(|_| spend.sample(&mut rng))
                    .sum();
                Rfm {
                    frequency,
                    recency: 1.0,
                    age: 2.0,
                    monetary: total / frequency,
                }
            })
            .collect()
    }

    #[test]
    fn recovers_known_parameters_from_simulated_spend() {
        let truth = GammaGammaParams {
            p: 6.0,
            q: 4.0,
            v: 15.0,
        };
        let rows = simulate(truth, 10_000, 99);
        let fitted = fit(&rows, 0.0).unwrap();
        // Standard errors from the observed information, as for BG/NBD: each parameter within
        // four of them on the log scale.
        let buyers: Vec<(f64, f64)> = rows.iter().map(|c| (c.frequency, c.monetary)).collect();
        let lp = [fitted.p.ln(), fitted.q.ln(), fitted.v.ln()];
        let n = buyers.len() as f64;
        let h = 1e-5;
        let mut hessian = vec![vec![0.0; 3]; 3];
        for j in 0..3 {
            let (mut up, mut down) = (lp, lp);
            up[j] += h;
            down[j] -= h;
            let gu = mean_log_likelihood(&up, &buyers).1;
            let gd = mean_log_likelihood(&down, &buyers).1;
            for i in 0..3 {
                hessian[i][j] = -(gu[i] - gd[i]) / (2.0 * h) * n;
            }
        }
        let covariance = invert(hessian);
        let pairs = [
            ("p", fitted.p, truth.p),
            ("q", fitted.q, truth.q),
            ("v", fitted.v, truth.v),
        ];
        for (i, (name, got, want)) in pairs.into_iter().enumerate() {
            let se = covariance[i][i].sqrt();
            let z = (got.ln() - want.ln()) / se;
            assert!(
                z.abs() < 4.0,
                "{name}: fitted {got} vs true {want}, z = {z:.2}"
            );
            assert!(se < 0.2, "{name}: standard error {se} on the log scale");
        }
    }

    #[test]
    fn gradient_matches_finite_differences() {
        let buyers = [(1.0, 12.5), (4.0, 30.0), (2.0, 7.25)];
        let lp = [1.2, 0.8, 2.1];
        let g = mean_log_likelihood(&lp, &buyers).1;
        for k in 0..3 {
            let h = 1e-6;
            let (mut up, mut down) = (lp, lp);
            up[k] += h;
            down[k] -= h;
            let numeric = (mean_log_likelihood(&up, &buyers).0
                - mean_log_likelihood(&down, &buyers).0)
                / (2.0 * h);
            assert!(
                (numeric - g[k]).abs() < 1e-6,
                "d/dlp{k}: {numeric} vs {}",
                g[k]
            );
        }
    }

    #[test]
    fn conditional_value_matches_the_reference_implementation() {
        // lifetimes 0.11.3 GammaGammaFitter on the CDNOW summary, and its
        // conditional_expected_average_profit(2, 22.35).
        let cdnow = GammaGammaParams {
            p: 6.248_802_496_075_072,
            q: 3.744_588_460_923_138,
            v: 15.447_748_064_929_88,
        };
        let got = cdnow.conditional_expected_value(2.0, 22.35);
        assert!((got / 24.658_616_189_236_568 - 1.0).abs() < 1e-10, "{got}");
        assert!(
            (cdnow.conditional_expected_value(0.0, 0.0) - cdnow.population_mean()).abs() < 1e-12
        );
    }

    #[test]
    fn needs_repeat_buyers() {
        let one_time = Rfm {
            frequency: 0.0,
            recency: 0.0,
            age: 1.0,
            monetary: 0.0,
        };
        assert!(matches!(
            fit(&[one_time; 5], 0.0),
            Err(FitError::Degenerate(_))
        ));
    }
}
