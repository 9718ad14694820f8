//! How a simulated customer reacts to a visit: the hidden probabilities of clicking,
//! accepting and buying, the survey answers they give and whether they leave. Pure and seeded:
//! the same draws give the same reaction.

use rand::Rng;
use rand_distr::{Distribution, LogNormal, Normal};

use super::catalogue::{
    ACCEPT_OTHER, ACCEPT_RELEVANT, CONVERT_ACCEPTED, DISCOUNT, SEGMENTS, Segment,
};
use super::population::{Customer, CustomerState};

/// Probability that a visit ends with a survey answer.
pub const SURVEY_RATE: f64 = 0.25;

/// Share of survey answers that are NPS (the rest are CSAT).
const NPS_SHARE: f64 = 0.6;

/// Mood change of a relevant offer, on the NPS scale.
const RELEVANT_LIFT: f64 = 1.2;

/// Mood change of an irrelevant offer.
const IRRELEVANT_DROP: f64 = -0.6;

/// Mood change of accepting an offer.
const ACCEPT_LIFT: f64 = 0.4;

/// Mood change per repeat of the same offer on consecutive visits.
const REPEAT_DROP: f64 = -0.3;

/// The largest total of [`REPEAT_DROP`].
const REPEAT_DROP_MAX: f64 = -0.6;

/// Churn hazard multiplier after a relevant offer.
const CHURN_RELEVANT: f64 = 0.3;

/// Churn hazard multiplier after an irrelevant offer.
const CHURN_IRRELEVANT: f64 = 1.2;

/// Churn hazard multiplier after an irrelevant offer shown at the previous visit too.
const CHURN_REPEATED_IRRELEVANT: f64 = 1.5;

/// A survey answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// Net promoter score question, 0-10.
    Nps(i32),
    /// Customer satisfaction, 1-5.
    Csat(i32),
}

/// What the customer did at one visit.
#[derive(Debug, Clone, Default)]
pub struct Reaction {
    /// Clicked the offer shown.
    pub clicked: bool,
    /// Accepted it.
    pub accepted: bool,
    /// Bought because of it.
    pub converted_by_offer: bool,
    /// Bought at all (through the offer or at their baseline rate).
    pub purchased: bool,
    /// The order's value in cents, when they bought.
    pub order_minor: i64,
    /// Their survey answer, if they answered one.
    pub answer: Option<Answer>,
    /// Cancelled their subscription at this visit.
    pub churned: bool,
}

/// The customer's reaction to a visit that showed `offer` (`None`: nothing shown, as for the
/// holdout), updating their state.
pub fn react(
    customer: &Customer,
    state: &mut CustomerState,
    offer: Option<usize>,
    rng: &mut impl Rng,
) -> Reaction {
    let segment: &Segment = &SEGMENTS[customer.segment];
    let mut reaction = Reaction::default();
    let mut effect = 0.0;
    let mut churn_factor = 1.0;
    match offer {
        Some(a) => {
            let relevant = segment.relevant(a);
            state.streak = if state.last_offer == Some(a) {
                state.streak + 1
            } else {
                1
            };
            reaction.clicked = rng.random_bool(segment.click[a]);
            let accept = if relevant {
                ACCEPT_RELEVANT
            } else {
                ACCEPT_OTHER
            };
            reaction.accepted = reaction.clicked && rng.random_bool(accept);
            reaction.converted_by_offer = reaction.accepted && rng.random_bool(CONVERT_ACCEPTED);
            let repeats = f64::from(state.streak.saturating_sub(1));
            effect = if relevant {
                RELEVANT_LIFT
            } else {
                IRRELEVANT_DROP
            } + if reaction.accepted { ACCEPT_LIFT } else { 0.0 }
                + (REPEAT_DROP * repeats).max(REPEAT_DROP_MAX);
            churn_factor = if relevant {
                CHURN_RELEVANT
            } else if state.streak > 1 {
                CHURN_REPEATED_IRRELEVANT
            } else {
                CHURN_IRRELEVANT
            };
            state.last_offer = Some(a);
        }
        None => {
            state.last_offer = None;
            state.streak = 0;
        }
    }
    state.mood = 0.5 * state.mood + effect;

    let baseline = rng.random_bool(customer.purchase);
    reaction.purchased = reaction.converted_by_offer || baseline;
    if reaction.purchased {
        let value = LogNormal::new(segment.order_value.ln() - 0.06, 0.35)
            .expect("a finite mean and positive sigma are valid")
            .sample(rng);
        let discount = if reaction.accepted && offer == Some(DISCOUNT) {
            0.9
        } else {
            1.0
        };
        reaction.order_minor = (value * discount * 100.0).round().max(100.0) as i64;
    }
    if rng.random_bool(SURVEY_RATE) {
        let noise: f64 = Normal::new(0.0, 1.2)
            .expect("constant Normal parameters are valid")
            .sample(rng);
        let x = customer.satisfaction + state.mood + noise;
        reaction.answer = Some(if rng.random_bool(NPS_SHARE) {
            Answer::Nps(x.round().clamp(0.0, 10.0) as i32)
        } else {
            Answer::Csat(((x + 2.0) / 2.4).round().clamp(1.0, 5.0) as i32)
        });
    }
    reaction.churned = rng.random_bool((customer.churn * churn_factor).min(1.0));
    state.churned |= reaction.churned;
    reaction
}

#[cfg(test)]
mod tests {
    use rand::{SeedableRng, rngs::SmallRng};

    use super::*;
    use crate::demo::population::population;

    /// Mean of `f` over many visits of every customer, each visit from a fresh state.
    fn rate(offer: impl Fn(&Customer) -> Option<usize>, f: impl Fn(&Reaction) -> f64) -> f64 {
        let customers = population(2_000, 1);
        let mut rng = SmallRng::seed_from_u64(3);
        let mut total = 0.0;
        for c in &customers {
            for _ in 0..5 {
                let mut state = CustomerState::default();
                total += f(&react(c, &mut state, offer(c), &mut rng));
            }
        }
        total / (customers.len() * 5) as f64
    }

    #[test]
    fn the_best_offer_converts_far_more_than_none_and_a_random_one_in_between() {
        let purchased = |r: &Reaction| f64::from(u8::from(r.purchased));
        let none = rate(|_| None, purchased);
        let best = rate(
            |c| Some(SEGMENTS[c.segment].best_action(c.in_app)),
            purchased,
        );
        let worst = rate(|_| Some(5), purchased);
        assert!(best > none + 0.08, "best {best:.3} vs none {none:.3}");
        assert!(worst < none + 0.03, "a poor offer barely helps: {worst:.3}");
    }

    #[test]
    fn relevant_offers_lift_the_mood_and_repeated_irrelevant_ones_lower_it() {
        let customer = &population(1, 2)[0];
        let mut rng = SmallRng::seed_from_u64(1);
        let best = SEGMENTS[customer.segment].best_action(customer.in_app);
        let worst = (0..6)
            .find(|&a| !SEGMENTS[customer.segment].relevant(a))
            .unwrap();
        let mut good = CustomerState::default();
        let mut bad = CustomerState::default();
        for _ in 0..4 {
            react(customer, &mut good, Some(best), &mut rng);
            react(customer, &mut bad, Some(worst), &mut rng);
        }
        assert!(good.mood > 0.5, "{}", good.mood);
        assert!(bad.mood < -1.0, "{}", bad.mood);
        assert_eq!(bad.streak, 4);
    }
}
