//! Arbitration: `priority = propensity × context weight × value × business weight`, with the
//! propensity a Thompson draw from its posterior when exploring, and the probability with which
//! the policy returns each action at its rank (for off-policy evaluation).
//!
//! The posterior of a propensity is taken as logit-normal: the prediction service's models are
//! logistic with a Gaussian (Laplace) posterior over their weights, so the linear predictor is
//! normal and the propensity its logistic transform. Its location and scale are matched to the
//! reported mean and standard deviation by the delta method. An action's own draw depends only
//! on the decision's seed and the action id, so a replay, or a what-if replay with other actions
//! around it, draws the same number for it.

use rand::{Rng, SeedableRng, rngs::SmallRng};
use rand_distr::StandardNormal;
use xxhash_rust::xxh3::xxh3_64;

use crate::config::ExplorationMode;

/// One action competing in arbitration.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Contender {
    /// Index of the action in the configuration.
    pub index: usize,
    /// The action's id.
    pub id: String,
    /// Posterior mean of the propensity.
    pub mean: f64,
    /// Posterior standard deviation.
    pub stddev: f64,
    /// The propensity used: the draw when exploring, else the mean.
    pub propensity: f64,
    /// `context weight × value × business weight`.
    pub weight: f64,
    /// The context weight alone.
    pub context_weight: f64,
}

impl Contender {
    /// The action's priority.
    pub fn priority(&self) -> f64 {
        self.propensity * self.weight
    }
}

/// Largest scale of the logit-normal (wider ones put nearly all mass at 0 and 1).
const MAX_LOGIT_SCALE: f64 = 4.0;

/// The logit-normal `(location, scale)` matched to `mean` and `stddev`.
fn logit_normal(mean: f64, stddev: f64) -> (f64, f64) {
    let m = mean.clamp(1e-6, 1.0 - 1e-6);
    let scale = if stddev.is_finite() && stddev > 0.0 {
        (stddev / (m * (1.0 - m))).min(MAX_LOGIT_SCALE)
    } else {
        0.0
    };
    ((m / (1.0 - m)).ln(), scale)
}

fn sigmoid(z: f64) -> f64 {
    1.0 / (1.0 + (-z).exp())
}

/// One draw from the logit-normal with `location` and `scale`.
fn draw(rng: &mut SmallRng, location: f64, scale: f64) -> f64 {
    if scale == 0.0 {
        return sigmoid(location);
    }
    let z: f64 = rng.sample(StandardNormal);
    sigmoid(location + scale * z)
}

/// The propensity arbitration uses for an action: its own Thompson draw (seeded by the
/// decision's seed and the action id) or, without exploration, the mean.
pub(crate) fn propensity(
    mode: ExplorationMode,
    seed: u64,
    action_id: &str,
    mean: f64,
    stddev: f64,
) -> f64 {
    match mode {
        ExplorationMode::Greedy => mean,
        ExplorationMode::Thompson => {
            let mut rng = SmallRng::seed_from_u64(seed ^ xxh3_64(action_id.as_bytes()));
            let (location, scale) = logit_normal(mean, stddev);
            draw(&mut rng, location, scale)
        }
    }
}

/// Sorts contenders by priority, highest first; ties by action id, so the order is total and
/// reproducible.
pub(crate) fn rank(contenders: &mut [Contender]) {
    contenders.sort_by(|a, b| {
        b.priority()
            .total_cmp(&a.priority())
            .then_with(|| a.id.cmp(&b.id))
    });
}

/// For each of `chosen` (ids in rank order), the probability that the policy returns it at that
/// rank given these contenders. For one chosen action it is computed (numerical integration, see
/// [`first_place`]); for several, it is the share of `samples` fresh Thompson draws in which
/// each lands at its rank (at least one draw's worth, since the policy did choose it). Contenders that
/// cannot reach the top `chosen.len()` in any plausible draw (their priority at +4 scale stays
/// below the k-th best priority at −4 scale) are left out of the draws, which keeps the cost
/// independent of a long tail. Without exploration every chosen action has probability 1.
pub(crate) fn selection_probabilities(
    mode: ExplorationMode,
    samples: u32,
    seed: u64,
    contenders: &[Contender],
    chosen: &[&str],
) -> Vec<f64> {
    let k = chosen.len();
    if k == 0 {
        return Vec::new();
    }
    if mode == ExplorationMode::Greedy || samples == 0 {
        return vec![1.0; k];
    }
    // (id, location, scale, weight) of each contender.
    let params: Vec<(&str, f64, f64, f64)> = contenders
        .iter()
        .map(|c| {
            let (location, scale) = logit_normal(c.mean, c.stddev);
            (c.id.as_str(), location, scale, c.weight)
        })
        .collect();
    let bound = |p: &(&str, f64, f64, f64), sign: f64| sigmoid(p.1 + sign * 4.0 * p.2) * p.3;
    let mut lows: Vec<f64> = params.iter().map(|p| bound(p, -1.0)).collect();
    lows.sort_by(|a, b| b.total_cmp(a));
    let threshold = lows.get(k - 1).copied().unwrap_or(0.0);
    let mut field: Vec<&(&str, f64, f64, f64)> = params
        .iter()
        .filter(|p| bound(p, 1.0) >= threshold || chosen.contains(&p.0))
        .collect();
    field.sort_by(|a, b| a.0.cmp(b.0));
    if k == 1 {
        // The common case, computed rather than sampled.
        let chosen = field.iter().position(|p| p.0 == chosen[0]);
        return vec![chosen.map_or(0.0, |a| first_place(&field, a))];
    }
    let mut rng = SmallRng::seed_from_u64(seed.wrapping_add(0x9e37_79b9_7f4a_7c15));
    let mut hits = vec![0u32; k];
    let mut draws: Vec<(f64, &str)> = Vec::with_capacity(field.len());
    for _ in 0..samples {
        draws.clear();
        draws.extend(field.iter().map(|p| (draw(&mut rng, p.1, p.2) * p.3, p.0)));
        let top = k.min(draws.len());
        let order = |a: &(f64, &str), b: &(f64, &str)| b.0.total_cmp(&a.0).then(a.1.cmp(b.1));
        if top < draws.len() {
            draws.select_nth_unstable_by(top - 1, order);
        }
        let head = &mut draws[..top];
        head.sort_by(order);
        for (rank, (_, id)) in head.iter().enumerate() {
            if chosen.get(rank) == Some(id) {
                hits[rank] += 1;
            }
        }
    }
    hits.iter()
        .map(|&h| f64::from(h.max(1)) / f64::from(samples))
        .collect()
}

/// Intervals of the Simpson rule over the standard normal in [`first_place`].
const QUADRATURE_INTERVALS: usize = 32;
/// Half-width of the integration range, in standard deviations.
const QUADRATURE_RANGE: f64 = 6.0;

/// The probability that contender `a` draws the highest priority of `field` (entries `(id,
/// location, scale, weight)`): ∫ φ(z) Π_{b≠a} F_b(x_a(z)) dz, where x_a(z) is a's priority at
/// standard normal z and F_b the distribution function of b's priority, by Simpson's rule over
/// z ∈ [−6, 6].
fn first_place(field: &[&(&str, f64, f64, f64)], a: usize) -> f64 {
    let (_, location, scale, weight) = *field[a];
    let others = |x: f64| -> f64 {
        let mut product = 1.0;
        for (b, p) in field.iter().enumerate() {
            if b == a || x >= p.3 {
                continue;
            }
            let u = x / p.3;
            let below = if p.2 == 0.0 {
                if sigmoid(p.1) <= u { 1.0 } else { 0.0 }
            } else if u <= 0.0 {
                0.0
            } else {
                standard_normal_cdf(((u / (1.0 - u)).ln() - p.1) / p.2)
            };
            product *= below;
            if product == 0.0 {
                break;
            }
        }
        product
    };
    if scale == 0.0 {
        return others(sigmoid(location) * weight);
    }
    let h = 2.0 * QUADRATURE_RANGE / QUADRATURE_INTERVALS as f64;
    let mut sum = 0.0;
    for i in 0..=QUADRATURE_INTERVALS {
        let z = -QUADRATURE_RANGE + h * i as f64;
        let simpson = if i == 0 || i == QUADRATURE_INTERVALS {
            1.0
        } else if i % 2 == 1 {
            4.0
        } else {
            2.0
        };
        let density = (-0.5 * z * z).exp() / (2.0 * std::f64::consts::PI).sqrt();
        sum += simpson * density * others(sigmoid(location + scale * z) * weight);
    }
    (sum * h / 3.0).clamp(0.0, 1.0)
}

fn standard_normal_cdf(x: f64) -> f64 {
    0.5 * statrs::function::erf::erfc(-x / std::f64::consts::SQRT_2)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn contender(id: &str, mean: f64, stddev: f64, weight: f64) -> Contender {
        Contender {
            index: 0,
            id: id.to_owned(),
            mean,
            stddev,
            propensity: mean,
            weight,
            context_weight: 1.0,
        }
    }

    #[test]
    fn draws_are_reproducible_per_action_and_vary_across_seeds() {
        let a = propensity(ExplorationMode::Thompson, 7, "offer-a", 0.3, 0.1);
        assert_eq!(
            a,
            propensity(ExplorationMode::Thompson, 7, "offer-a", 0.3, 0.1)
        );
        let others: Vec<f64> = (8..20)
            .map(|s| propensity(ExplorationMode::Thompson, s, "offer-a", 0.3, 0.1))
            .collect();
        assert!(others.iter().any(|&b| b != a));
        assert!(others.iter().all(|&b| (0.0..=1.0).contains(&b)));
        assert_eq!(
            propensity(ExplorationMode::Greedy, 7, "offer-a", 0.3, 0.1),
            0.3
        );
    }

    #[test]
    fn ranking_is_by_priority_then_id() {
        let mut cs = vec![
            contender("b", 0.2, 0.0, 1.0),
            contender("a", 0.2, 0.0, 1.0),
            contender("c", 0.1, 0.0, 3.0),
        ];
        rank(&mut cs);
        let ids: Vec<&str> = cs.iter().map(|c| c.id.as_str()).collect();
        assert_eq!(ids, ["c", "a", "b"]);
    }

    #[test]
    fn a_dominant_action_is_chosen_almost_surely_and_a_coin_flip_about_half_the_time() {
        let cs = vec![
            contender("a", 0.9, 0.01, 1.0),
            contender("b", 0.1, 0.01, 1.0),
        ];
        let p = selection_probabilities(ExplorationMode::Thompson, 500, 1, &cs, &["a"]);
        assert!(p[0] > 0.99, "{p:?}");
        let even = vec![contender("a", 0.5, 0.2, 1.0), contender("b", 0.5, 0.2, 1.0)];
        let p = selection_probabilities(ExplorationMode::Thompson, 2000, 1, &even, &["a"]);
        assert!((0.44..0.56).contains(&p[0]), "{p:?}");
        let p = selection_probabilities(ExplorationMode::Greedy, 2000, 1, &even, &["a"]);
        assert_eq!(p, [1.0]);
    }

    #[test]
    fn first_place_probabilities_sum_to_one_and_match_simulation() {
        let cs = vec![
            contender("a", 0.08, 0.07, 1.0),
            contender("b", 0.10, 0.02, 1.5),
            contender("c", 0.30, 0.15, 0.4),
            contender("d", 0.05, 0.0, 2.0),
            contender("e", 0.12, 0.10, 1.0),
        ];
        let computed: Vec<f64> = cs
            .iter()
            .map(|c| selection_probabilities(ExplorationMode::Thompson, 200, 9, &cs, &[&c.id])[0])
            .collect();
        let total: f64 = computed.iter().sum();
        assert!((total - 1.0).abs() < 0.01, "{computed:?} sums to {total}");
        let mut rng = SmallRng::seed_from_u64(5);
        let mut wins = [0u32; 5];
        let n = 200_000;
        for _ in 0..n {
            let best = cs
                .iter()
                .enumerate()
                .map(|(i, c)| {
                    let (location, scale) = logit_normal(c.mean, c.stddev);
                    (draw(&mut rng, location, scale) * c.weight, i)
                })
                .max_by(|x, y| x.0.total_cmp(&y.0))
                .map_or(0, |(_, i)| i);
            wins[best] += 1;
        }
        for (i, p) in computed.iter().enumerate() {
            let simulated = f64::from(wins[i]) / f64::from(n);
            assert!(
                (p - simulated).abs() < 0.01,
                "{i}: computed {p}, simulated {simulated}"
            );
        }
    }

    #[test]
    fn the_long_tail_is_pruned_without_changing_the_estimate() {
        let mut cs = vec![
            contender("a", 0.6, 0.1, 1.0),
            contender("b", 0.55, 0.1, 1.0),
        ];
        let head = selection_probabilities(ExplorationMode::Thompson, 1000, 3, &cs, &["a"]);
        for i in 0..500 {
            cs.push(contender(&format!("tail-{i}"), 0.001, 0.0001, 1.0));
        }
        let with_tail = selection_probabilities(ExplorationMode::Thompson, 1000, 3, &cs, &["a"]);
        assert_eq!(head, with_tail);
    }
}
