//! Special functions the customer-base models need: log-gamma and digamma (from `statrs`) and
//! the Gauss hypergeometric function ₂F₁ on [0, 1), which `statrs` lacks.

pub(crate) use statrs::function::gamma::{digamma, ln_gamma};

/// ln ₂F₁(a, b; c; z) for 0 ≤ z < 1, or `None` if the series does not settle.
///
/// Sums whichever of the Gauss series and its Euler transform
/// ₂F₁(a, b; c; z) = (1 − z)^(c−a−b) ₂F₁(c − a, c − b; c; z) has the faster-decaying terms
/// (their tails shrink like n^(a+b−c−1)·zⁿ and n^(c−a−b−1)·zⁿ respectively), which keeps the
/// horizons of lifetime-value predictions, where z approaches 1, cheap and accurate. The same
/// fallback is what the reference implementation (`lifetimes`) does when the direct form
/// overflows.
pub(crate) fn ln_hyp2f1(a: f64, b: f64, c: f64, z: f64) -> Option<f64> {
    if !(0.0..1.0).contains(&z) {
        return None;
    }
    if a + b - c > c - a - b {
        let sum = series(c - a, c - b, c, z)?;
        (sum > 0.0).then(|| sum.ln() + (c - a - b) * (-z).ln_1p())
    } else {
        let sum = series(a, b, c, z)?;
        (sum > 0.0).then(|| sum.ln())
    }
}

/// Σₙ (a)ₙ(b)ₙ / ((c)ₙ n!) zⁿ.
fn series(a: f64, b: f64, c: f64, z: f64) -> Option<f64> {
    const MAX_TERMS: usize = 1_000_000;
    let mut term = 1.0;
    let mut sum = 1.0;
    for n in 0..MAX_TERMS {
        let n = n as f64;
        term *= (a + n) * (b + n) / ((c + n) * (n + 1.0)) * z;
        sum += term;
        if !sum.is_finite() {
            return None;
        }
        // Stop once terms are negligible and past the point where they could still grow
        // (a term grows while (a+n)(b+n)z > (c+n)(n+1)).
        if term.abs() <= 1e-16 * sum.abs() && n > (a.abs() + b.abs() + c.abs()) {
            return Some(sum);
        }
        if term == 0.0 {
            return Some(sum);
        }
    }
    None
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn matches_closed_forms() {
        // ₂F₁(1, 1; 2; z) = −ln(1 − z) / z.
        for z in [0.1_f64, 0.5, 0.9, 0.999] {
            let expected = -(-z).ln_1p() / z;
            let got = ln_hyp2f1(1.0, 1.0, 2.0, z).unwrap().exp();
            assert!(
                (got / expected - 1.0).abs() < 1e-10,
                "z={z}: {got} vs {expected}"
            );
        }
        // ₂F₁(a, b; b; z) = (1 − z)^(−a).
        for z in [0.2_f64, 0.95, 0.9999] {
            let got = ln_hyp2f1(2.5, 1.3, 1.3, z).unwrap();
            assert!((got - (-2.5) * (-z).ln_1p()).abs() < 1e-9, "z={z}");
        }
        assert_eq!(ln_hyp2f1(1.0, 1.0, 2.0, 0.0), Some(0.0));
        assert_eq!(ln_hyp2f1(1.0, 1.0, 2.0, 1.0), None);
    }

    #[test]
    fn matches_scipy_on_bgnbd_arguments() {
        // scipy.special.hyp2f1 at (r+x, b+x, a+b+x-1) of the CDNOW fit with x = 2 and x = 0.
        let got = ln_hyp2f1(2.242_592_928, 4.425_752_383, 5.218_638_349, 0.5)
            .unwrap()
            .exp();
        assert!((got / 3.613_925_557_387_054 - 1.0).abs() < 1e-10, "{got}");
        let got = ln_hyp2f1(0.242_592_928, 2.425_752_383, 2.218_638_349, 0.9)
            .unwrap()
            .exp();
        assert!((got / 1.945_651_737_040_941_6 - 1.0).abs() < 1e-10, "{got}");
    }
}
