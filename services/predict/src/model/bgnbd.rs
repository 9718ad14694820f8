//! The BG/NBD repeat-purchase model (Fader, Hardie & Lee 2005, "Counting your customers the
//! easy way"): maximum-likelihood fit from RFM summaries and the predictions lifetime value needs.

use serde::{Deserialize, Serialize};

use super::{
    optim::{FitError, maximize_penalised_log_params},
    special::{digamma, ln_gamma, ln_hyp2f1},
};

/// One customer's purchase history, summarised. Times are in the model's time unit (days or
/// weeks, as long as it is the same for every customer and for predictions).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Rfm {
    /// Repeat purchases: purchase periods after the first (x).
    pub frequency: f64,
    /// Time from the first to the last purchase (tₓ); 0 without repeats.
    pub recency: f64,
    /// Time from the first purchase to the end of observation (T).
    pub age: f64,
    /// Mean value of the repeat purchases; 0 without repeats.
    pub monetary: f64,
}

/// BG/NBD parameters: purchase rates λ ~ Gamma(shape r, rate α) across customers; after each
/// repeat purchase a customer drops out with probability p ~ Beta(a, b).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct BgNbdParams {
    /// Shape of the purchase-rate distribution.
    pub r: f64,
    /// Rate (scale in time units) of the purchase-rate distribution.
    pub alpha: f64,
    /// First shape of the dropout-probability distribution.
    pub a: f64,
    /// Second shape of the dropout-probability distribution.
    pub b: f64,
}

/// Fits the parameters by maximum likelihood, minimising
/// `−mean ln L(r, α, a, b | x, tₓ, T) + penalizer·(r² + α² + a² + b²)`
/// over the log-parameters with L-BFGS and the analytic gradient. `penalizer` is the reference
/// implementation's `penalizer_coef` (0 for plain maximum likelihood); like it, times are first
/// rescaled so the oldest customer has age 1 (α scales back; without a penalty the maximum is
/// unchanged) and the search starts where it does (log-parameters 0.1).
pub fn fit(rows: &[Rfm], penalizer: f64) -> Result<BgNbdParams, FitError> {
    check_rows(rows)?;
    if !(penalizer.is_finite() && penalizer >= 0.0) {
        return Err(FitError::Invalid(format!(
            "penalizer is {penalizer}, must be >= 0"
        )));
    }
    if rows.iter().all(|c| c.frequency == 0.0) {
        return Err(FitError::Degenerate(
            "no customer has a repeat purchase, so dropout cannot be estimated".to_owned(),
        ));
    }
    let scale = 1.0 / rows.iter().map(|c| c.age).fold(0.0, f64::max);
    let scaled: Vec<Rfm> = rows
        .iter()
        .map(|c| Rfm {
            recency: c.recency * scale,
            age: c.age * scale,
            ..*c
        })
        .collect();
    let best = maximize_penalised_log_params(
        |p| mean_log_likelihood(p, &scaled),
        penalizer,
        vec![0.1; 4],
    )?;
    let params = BgNbdParams {
        r: best[0].exp(),
        alpha: best[1].exp() / scale,
        a: best[2].exp(),
        b: best[3].exp(),
    };
    if [params.r, params.alpha, params.a, params.b]
        .iter()
        .any(|v| !(v.is_finite() && *v > 0.0))
    {
        return Err(FitError::Optimiser(format!(
            "fitted parameters out of range: {params:?}"
        )));
    }
    Ok(params)
}

pub(crate) fn check_rows(rows: &[Rfm]) -> Result<(), FitError> {
    if rows.is_empty() {
        return Err(FitError::Empty);
    }
    for (i, c) in rows.iter().enumerate() {
        let ok = c.frequency >= 0.0
            && c.frequency.fract() == 0.0
            && c.age > 0.0
            && c.recency >= 0.0
            && c.recency <= c.age
            && c.age.is_finite();
        if !ok {
            return Err(FitError::Invalid(format!(
                "customer {i}: frequency {} must be a whole number >= 0 and 0 <= recency {} <= \
                 T {} with T > 0",
                c.frequency, c.recency, c.age
            )));
        }
    }
    Ok(())
}

/// Mean log-likelihood over `rows` at log-parameters `p` = ln(r, α, a, b), and its gradient
/// with respect to `p`.
pub(crate) fn mean_log_likelihood(p: &[f64], rows: &[Rfm]) -> (f64, Vec<f64>) {
    let [r, alpha, a, b] = [p[0].exp(), p[1].exp(), p[2].exp(), p[3].exp()];
    let (lg_r, lg_ab, lg_b) = (ln_gamma(r), ln_gamma(a + b), ln_gamma(b));
    let (dg_r, dg_ab, dg_b) = (digamma(r), digamma(a + b), digamma(b));
    let mut total = 0.0;
    let mut grad = [0.0; 4]; // with respect to r, α, a, b
    for c in rows {
        let (x, tx, t) = (c.frequency, c.recency, c.age);
        let ln_a1 = ln_gamma(r + x) - lg_r + r * alpha.ln();
        let ln_a2 = lg_ab + ln_gamma(b + x) - lg_b - ln_gamma(a + b + x);
        let ln_a3 = -(r + x) * (alpha + t).ln();
        let (dg_rx, dg_abx, dg_bx) = (digamma(r + x), digamma(a + b + x), digamma(b + x));
        // d/d(r, α, a, b) of ln A1 + ln A2.
        let mut g = [
            dg_rx - dg_r + alpha.ln(),
            r / alpha,
            dg_ab - dg_abx,
            dg_ab + dg_bx - dg_b - dg_abx,
        ];
        let d3 = [-(alpha + t).ln(), -(r + x) / (alpha + t), 0.0, 0.0];
        let ll = if x > 0.0 {
            let ln_a4 = a.ln() - (b + x - 1.0).ln() - (r + x) * (alpha + tx).ln();
            let d4 = [
                -(alpha + tx).ln(),
                -(r + x) / (alpha + tx),
                1.0 / a,
                -1.0 / (b + x - 1.0),
            ];
            let m = ln_a3.max(ln_a4);
            let (e3, e4) = ((ln_a3 - m).exp(), (ln_a4 - m).exp());
            let (w3, w4) = (e3 / (e3 + e4), e4 / (e3 + e4));
            for k in 0..4 {
                g[k] += w3 * d3[k] + w4 * d4[k];
            }
            ln_a1 + ln_a2 + m + (e3 + e4).ln()
        } else {
            for k in 0..4 {
                g[k] += d3[k];
            }
            ln_a1 + ln_a2 + ln_a3
        };
        total += ll;
        for k in 0..4 {
            grad[k] += g[k];
        }
    }
    let n = rows.len() as f64;
    let theta = [r, alpha, a, b];
    // Chain rule to the log-parameters: d/d ln θ = θ·d/dθ.
    (
        total / n,
        grad.iter().zip(theta).map(|(g, t)| g * t / n).collect(),
    )
}

impl BgNbdParams {
    /// ln L of one customer (x = `frequency`, tₓ = `recency`, T = `age`).
    pub fn log_likelihood(&self, frequency: f64, recency: f64, age: f64) -> f64 {
        let p = [self.r.ln(), self.alpha.ln(), self.a.ln(), self.b.ln()];
        let row = Rfm {
            frequency,
            recency,
            age,
            monetary: 0.0,
        };
        mean_log_likelihood(&p, &[row]).0
    }

    /// E[X(t) | x, tₓ, T]: expected repeat purchases in the next `t` time units of a customer
    /// with that history (eq. 10 of the paper).
    pub fn expected_purchases(&self, t: f64, frequency: f64, recency: f64, age: f64) -> f64 {
        let Self { r, alpha, a, b } = *self;
        let x = frequency;
        if t <= 0.0 {
            return 0.0;
        }
        let z = t / (alpha + age + t);
        let Some(ln_hyp) = ln_hyp2f1(r + x, b + x, a + b + x - 1.0, z) else {
            return f64::NAN;
        };
        let first = (a + b + x - 1.0) / (a - 1.0);
        let second = -(ln_hyp + (r + x) * ((alpha + age) / (alpha + age + t)).ln()).exp_m1();
        let denominator = if x > 0.0 {
            1.0 + a / (b + x - 1.0) * ((alpha + age) / (alpha + recency)).powf(r + x)
        } else {
            1.0
        };
        first * second / denominator
    }

    /// P(alive | x, tₓ, T): the probability the customer has not dropped out (eq. 11); 1 for
    /// customers without repeat purchases, who cannot have dropped out in this model.
    pub fn probability_alive(&self, frequency: f64, recency: f64, age: f64) -> f64 {
        let Self { r, alpha, a, b } = *self;
        let x = frequency;
        if x <= 0.0 {
            return 1.0;
        }
        let log_odds_dead =
            (r + x) * ((alpha + age) / (alpha + recency)).ln() + (a / (b + x - 1.0)).ln();
        1.0 / (1.0 + log_odds_dead.exp())
    }

    /// E[X(t)]: expected repeat purchases in `t` time units of a new customer (eq. 9).
    pub fn expected_purchases_new(&self, t: f64) -> f64 {
        let Self { r, alpha, a, b } = *self;
        if t <= 0.0 {
            return 0.0;
        }
        let Some(ln_hyp) = ln_hyp2f1(r, b, a + b - 1.0, t / (alpha + t)) else {
            return f64::NAN;
        };
        (a + b - 1.0) / (a - 1.0) * -(ln_hyp + r * (alpha / (alpha + t)).ln()).exp_m1()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
pub(crate) mod tests {
    use rand::{Rng, SeedableRng, rngs::SmallRng};
    use rand_distr::{Beta, Distribution, Exp, Gamma};

    use super::*;

    /// Customers simulated by the model's generative process, observed for `age` each.
    pub(crate) fn simulate(truth: BgNbdParams, ages: &[f64], seed: u64) -> Vec<Rfm> {
        let mut rng = SmallRng::seed_from_u64(seed);
        let rates = Gamma::new(truth.r, 1.0 / truth.alpha).unwrap();
        let dropout = Beta::new(truth.a, truth.b).unwrap();
        ages.iter()
            .map(|&age| {
                let lambda: f64 = rates.sample(&mut rng);
                let p: f64 = dropout.sample(&mut rng);
                let gap = Exp::new(lambda).unwrap();
                let (mut now, mut frequency, mut recency) = (0.0, 0.0, 0.0);
                loop {
                    now += gap.sample(&mut rng);
                    if now > age {
                        break;
                    }
                    frequency += 1.0;
                    recency = now;
                    // Dropout happens right after a repeat purchase.
                    if rng.random::<f64>() < p {
                        break;
                    }
                }
                Rfm {
                    frequency,
                    recency,
                    age,
                    monetary: 0.0,
                }
            })
            .collect()
    }

    /// Standard errors of the log-parameters from the observed information (the Hessian of
    /// the total log-likelihood, by central differences of the analytic gradient).
    fn log_standard_errors(fitted: BgNbdParams, rows: &[Rfm]) -> Vec<f64> {
        let p = [
            fitted.r.ln(),
            fitted.alpha.ln(),
            fitted.a.ln(),
            fitted.b.ln(),
        ];
        let n = rows.len() as f64;
        let h = 1e-5;
        let mut hessian = vec![vec![0.0; 4]; 4];
        for j in 0..4 {
            let mut up = p;
            let mut down = p;
            up[j] += h;
            down[j] -= h;
            let (gu, gd) = (
                mean_log_likelihood(&up, rows).1,
                mean_log_likelihood(&down, rows).1,
            );
            for i in 0..4 {
                hessian[i][j] = -(gu[i] - gd[i]) / (2.0 * h) * n;
            }
        }
        let covariance = invert(hessian);
        (0..4).map(|i| covariance[i][i].sqrt()).collect()
    }

    /// Gauss-Jordan inversion of a small well-conditioned matrix.
    pub(crate) fn invert(mut m: Vec<Vec<f64>>) -> Vec<Vec<f64>> {
        let n = m.len();
        let mut inv: Vec<Vec<f64>> = (0..n)
            .map(|i| (0..n).map(|j| if i == j { 1.0 } else { 0.0 }).collect())
            .collect();
        for col in 0..n {
            let pivot = (col..n)
                .max_by(|&a, &b| m[a][col].abs().total_cmp(&m[b][col].abs()))
                .unwrap();
            m.swap(col, pivot);
            inv.swap(col, pivot);
            let d = m[col][col];
            for j in 0..n {
                m[col][j] /= d;
                inv[col][j] /= d;
            }
            for row in 0..n {
                if row != col {
                    let f = m[row][col];
                    for j in 0..n {
                        m[row][j] -= f * m[col][j];
                        inv[row][j] -= f * inv[col][j];
                    }
                }
            }
        }
        inv
    }

    #[test]
    fn recovers_known_parameters_from_simulated_customers() {
        let truth = BgNbdParams {
            r: 0.25,
            alpha: 4.0,
            a: 0.8,
            b: 2.5,
        };
        // 20,000 customers who made their first purchase over a year, observed up to week 78.
        let ages: Vec<f64> = (0..20_000)
            .map(|i| 26.0 + 52.0 * (i as f64 / 20_000.0))
            .collect();
        let rows = simulate(truth, &ages, 2024);
        let fitted = fit(&rows, 0.0).unwrap();
        let se = log_standard_errors(fitted, &rows);
        // Each fitted parameter within four standard errors of the truth (on the log scale the
        // optimiser works in; |z| > 4 happens by chance with probability 6e-5 per parameter):
        // the tolerance follows the information in the simulated data rather than a guess.
        let pairs = [
            ("r", fitted.r, truth.r),
            ("alpha", fitted.alpha, truth.alpha),
            ("a", fitted.a, truth.a),
            ("b", fitted.b, truth.b),
        ];
        for ((name, got, want), se) in pairs.into_iter().zip(&se) {
            let z = (got.ln() - want.ln()) / se;
            assert!(
                z.abs() < 4.0,
                "{name}: fitted {got} vs true {want}, z = {z:.2}, se {se}"
            );
            // And the data are informative enough for that to mean something.
            assert!(*se < 0.15, "{name}: standard error {se} on the log scale");
        }
    }

    #[test]
    fn gradient_matches_finite_differences() {
        let rows = [
            Rfm {
                frequency: 0.0,
                recency: 0.0,
                age: 5.0,
                monetary: 0.0,
            },
            Rfm {
                frequency: 3.0,
                recency: 4.0,
                age: 9.0,
                monetary: 0.0,
            },
            Rfm {
                frequency: 1.0,
                recency: 0.5,
                age: 2.0,
                monetary: 0.0,
            },
        ];
        let p = [-0.7, 0.3, 0.1, 0.9];
        let (_, g) = mean_log_likelihood(&p, &rows);
        for k in 0..4 {
            let h = 1e-6;
            let (mut up, mut down) = (p, p);
            up[k] += h;
            down[k] -= h;
            let numeric = (mean_log_likelihood(&up, &rows).0 - mean_log_likelihood(&down, &rows).0)
                / (2.0 * h);
            assert!(
                (numeric - g[k]).abs() < 1e-6,
                "d/dp{k}: {numeric} vs {}",
                g[k]
            );
        }
    }

    /// The parameters `lifetimes` 0.11.3 (`BetaGeoFitter(penalizer_coef=0)`) fits on its CDNOW
    /// summary; predictions from them checked against the same package.
    const CDNOW: BgNbdParams = BgNbdParams {
        r: 0.242_592_928_279_822,
        alpha: 4.413_532_265_271_825,
        a: 0.792_885_966_440_675_8,
        b: 2.425_752_382_625_813_4,
    };

    #[test]
    fn predictions_match_the_reference_implementation() {
        // lifetimes: conditional_expected_number_of_purchases_up_to_time(39, 2, 30.43, 38.86),
        // conditional_probability_alive(2, 30.43, 38.86), expected_number_of_purchases_up_to_time(39).
        let close = |got: f64, want: f64| (got / want - 1.0).abs() < 1e-8;
        let e = CDNOW.expected_purchases(39.0, 2.0, 30.43, 38.86);
        assert!(close(e, 1.225_910_424_174_408_5), "{e}");
        let alive = CDNOW.probability_alive(2.0, 30.43, 38.86);
        assert!(close(alive, 0.726_609_14), "{alive}");
        assert_eq!(CDNOW.probability_alive(0.0, 0.0, 38.86), 1.0);
        let new = CDNOW.expected_purchases_new(39.0);
        assert!(close(new, 1.195_016_228_446_201), "{new}");
    }

    #[test]
    fn refuses_impossible_histories() {
        let bad = Rfm {
            frequency: 1.0,
            recency: 5.0,
            age: 3.0,
            monetary: 0.0,
        };
        assert!(matches!(fit(&[bad], 0.0), Err(FitError::Invalid(_))));
        let no_repeats = Rfm {
            frequency: 0.0,
            recency: 0.0,
            age: 3.0,
            monetary: 0.0,
        };
        assert!(matches!(
            fit(&[no_repeats], 0.0),
            Err(FitError::Degenerate(_))
        ));
        assert!(matches!(fit(&[], 0.0), Err(FitError::Empty)));
    }
}
