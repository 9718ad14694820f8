//! The simulated customers: hidden traits drawn once from the seed (segment, preferred
//! channel, baseline purchase and churn propensities, satisfaction), and what changes as they
//! visit (mood, the offer they saw last, whether they left).

use rand::{Rng, SeedableRng, rngs::SmallRng};
use rand_distr::{Beta, Distribution, Normal};

use super::catalogue::{PAGE_AFFINITY, PAGES, SEGMENTS};

/// One customer's hidden traits. The engine sees none of them, only what the customer does.
#[derive(Debug, Clone)]
pub struct Customer {
    /// The customer id events and decisions carry.
    pub id: String,
    /// Index in [`SEGMENTS`].
    pub segment: usize,
    /// True if the customer shops in the app, else on the web site.
    pub in_app: bool,
    /// Probability of buying on a visit without any offer.
    pub purchase: f64,
    /// Probability of cancelling on a visit without any offer.
    pub churn: f64,
    /// Baseline satisfaction on the NPS scale (0-10).
    pub satisfaction: f64,
}

/// What changes about a customer during the demo.
#[derive(Debug, Clone, Default)]
pub struct CustomerState {
    /// Recent experience on the NPS scale: relevant offers lift it, irrelevant or repeated ones
    /// lower it; it fades by half at every visit.
    pub mood: f64,
    /// The offer shown at the previous visit, if any.
    pub last_offer: Option<usize>,
    /// How many visits in a row showed `last_offer`.
    pub streak: u32,
    /// True once the customer cancelled: they visit no more.
    pub churned: bool,
}

/// Share of customers who shop in the app rather than on the web site.
const APP_SHARE: f64 = 0.4;

/// Draws `n` customers from `seed`: the same seed gives the same population.
pub fn population(n: u32, seed: u64) -> Vec<Customer> {
    let mut rng = SmallRng::seed_from_u64(seed ^ 0x005e_ed0f_c057_0e25);
    let purchase = Beta::new(2.0, 40.0).expect("constant Beta parameters are positive");
    let churn = Beta::new(2.0, 80.0).expect("constant Beta parameters are positive");
    let satisfaction = Normal::<f64>::new(6.8, 1.3).expect("constant Normal parameters are valid");
    (0..n)
        .map(|i| {
            let segment = pick_segment(rng.random::<f64>());
            let s = &SEGMENTS[segment];
            Customer {
                id: format!("c-{i:05}"),
                segment,
                in_app: rng.random_bool(APP_SHARE),
                purchase: (purchase.sample(&mut rng) * s.purchase_factor).min(0.5),
                churn: (churn.sample(&mut rng) * s.churn_factor).min(0.5),
                satisfaction: satisfaction.sample(&mut rng).clamp(0.0, 10.0),
            }
        })
        .collect()
}

/// The segment a uniform draw in [0, 1) falls in, by the segments' shares.
fn pick_segment(u: f64) -> usize {
    let mut cumulative = 0.0;
    for (i, s) in SEGMENTS.iter().enumerate() {
        cumulative += s.share;
        if u < cumulative {
            return i;
        }
    }
    SEGMENTS.len() - 1
}

impl Customer {
    /// The page of a visit: mostly the segment's favourite, sometimes any page.
    pub fn page(&self, rng: &mut impl Rng) -> &'static str {
        if rng.random_bool(PAGE_AFFINITY) {
            PAGES[SEGMENTS[self.segment].page]
        } else {
            PAGES[rng.random_range(0..PAGES.len())]
        }
    }

    /// The random stream of one of this customer's visits: the same seed, customer and
    /// round always draw the same numbers, however visits are scheduled.
    pub fn rng(&self, seed: u64, index: usize, round: usize) -> SmallRng {
        let key = (seed.wrapping_mul(0x9e37_79b9_7f4a_7c15))
            ^ ((index as u64) << 20)
            ^ (round as u64).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        SmallRng::seed_from_u64(key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_draws_the_same_population_with_every_segment() {
        let a = population(400, 7);
        let b = population(400, 7);
        assert!(
            a.iter()
                .zip(&b)
                .all(|(x, y)| x.id == y.id && x.segment == y.segment && x.purchase == y.purchase)
        );
        for (segment, s) in SEGMENTS.iter().enumerate() {
            let n = a.iter().filter(|c| c.segment == segment).count();
            let expected = s.share * 400.0;
            assert!((n as f64 - expected).abs() < 40.0, "{segment}: {n}");
        }
        assert!(a.iter().all(|c| (0.0..=0.5).contains(&c.purchase)));
        let other = population(400, 8);
        assert!(a.iter().zip(&other).any(|(x, y)| x.segment != y.segment));
    }
}
