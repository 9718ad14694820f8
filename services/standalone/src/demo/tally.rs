//! The simulator's own counts, per round and per arm: what the learning curve and the short
//! demos' KPI plot are drawn from (the engine's KPI service measures the same loop on its own).

use serde::Serialize;

use super::catalogue::{ACTIONS, SEGMENTS};
use super::visit::Visit;

/// Counts of one arm (treatment or holdout) over some visits.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ArmTally {
    /// Visits (each with a decision).
    pub visits: u64,
    /// Visits that ended with a purchase.
    pub purchases: u64,
    /// Revenue of those purchases, in cents.
    pub revenue_minor: i64,
    /// NPS answers.
    pub nps_answers: u64,
    /// NPS answers of 9 or 10.
    pub promoters: u64,
    /// NPS answers of 0 to 6.
    pub detractors: u64,
    /// CSAT answers.
    pub csat_answers: u64,
    /// CSAT answers of 4 or 5.
    pub satisfied: u64,
    /// Visits that ended with a cancellation.
    pub churned: u64,
}

impl ArmTally {
    /// Counts one visit.
    fn add(&mut self, v: &Visit) {
        use super::behaviour::Answer;
        self.visits += 1;
        let r = &v.reaction;
        if r.purchased {
            self.purchases += 1;
            self.revenue_minor += r.order_minor;
        }
        match r.answer {
            Some(Answer::Nps(s)) => {
                self.nps_answers += 1;
                self.promoters += u64::from(s >= 9);
                self.detractors += u64::from(s <= 6);
            }
            Some(Answer::Csat(s)) => {
                self.csat_answers += 1;
                self.satisfied += u64::from(s >= 4);
            }
            None => {}
        }
        self.churned += u64::from(r.churned);
    }

    /// Sums two tallies.
    pub fn plus(&self, o: &ArmTally) -> ArmTally {
        ArmTally {
            visits: self.visits + o.visits,
            purchases: self.purchases + o.purchases,
            revenue_minor: self.revenue_minor + o.revenue_minor,
            nps_answers: self.nps_answers + o.nps_answers,
            promoters: self.promoters + o.promoters,
            detractors: self.detractors + o.detractors,
            csat_answers: self.csat_answers + o.csat_answers,
            satisfied: self.satisfied + o.satisfied,
            churned: self.churned + o.churned,
        }
    }

    /// Purchases per visit.
    pub fn conversion(&self) -> Option<f64> {
        ratio(self.purchases, self.visits)
    }

    /// % promoters minus % detractors.
    pub fn nps(&self) -> Option<f64> {
        ratio(self.promoters, self.nps_answers)
            .zip(ratio(self.detractors, self.nps_answers))
            .map(|(p, d)| 100.0 * (p - d))
    }

    /// Share of CSAT answers of 4 or 5.
    pub fn csat(&self) -> Option<f64> {
        ratio(self.satisfied, self.csat_answers)
    }

    /// Cancellations per visit.
    pub fn churn(&self) -> Option<f64> {
        ratio(self.churned, self.visits)
    }
}

/// `n / d`, `None` when `d` is 0.
fn ratio(n: u64, d: u64) -> Option<f64> {
    (d > 0).then(|| n as f64 / d as f64)
}

/// The counts of one round.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RoundStats {
    /// The round, 0-based.
    pub round: usize,
    /// Visits of customers who get offers.
    pub treatment: ArmTally,
    /// Visits of holdout customers.
    pub holdout: ArmTally,
    /// Treatment visits where an offer was shown.
    pub offers: u64,
    /// Offers clicked.
    pub clicks: u64,
    /// Offers that were the customer's best.
    pub best: u64,
    /// Decisions where the contact cap held an offer back.
    pub capped: u64,
    /// Decisions made without profile or models.
    pub degraded: u64,
}

impl RoundStats {
    /// Counts `visits` as round `round`.
    pub fn of<'a>(round: usize, visits: impl Iterator<Item = &'a Visit>) -> Self {
        let mut s = RoundStats {
            round,
            ..RoundStats::default()
        };
        for v in visits {
            if v.holdout {
                s.holdout.add(v);
                continue;
            }
            s.treatment.add(v);
            if let Some(offer) = v.offer {
                s.offers += 1;
                s.clicks += u64::from(v.reaction.clicked);
                s.best += u64::from(offer == v.best);
            }
            s.capped += u64::from(v.capped);
            s.degraded += u64::from(v.degraded);
        }
        s
    }

    /// Clicks per offer shown (0 without offers).
    pub fn click_through(&self) -> f64 {
        ratio(self.clicks, self.offers).unwrap_or(0.0)
    }

    /// Share of offers that were the customer's best (0 without offers).
    pub fn best_share(&self) -> f64 {
        ratio(self.best, self.offers).unwrap_or(0.0)
    }
}

/// Per-round counts of every round.
pub fn per_round(visits: &[Visit], rounds: usize) -> Vec<RoundStats> {
    (0..rounds)
        .map(|r| RoundStats::of(r, visits.iter().filter(|v| v.round == r)))
        .collect()
}

/// The learning curve in numbers: the first rounds against the last.
#[derive(Debug, Clone, Serialize)]
pub struct Learning {
    /// Rounds in each window (a tenth of the rounds, 2 to 5, at most half of them).
    pub window_rounds: usize,
    /// The first rounds.
    pub early: Window,
    /// The last rounds.
    pub late: Window,
    /// Per segment.
    pub segments: Vec<SegmentLearning>,
}

/// Rates over a window of rounds.
#[derive(Debug, Clone, Serialize)]
pub struct Window {
    /// First round (1-based, as printed).
    pub first_round: usize,
    /// Last round (1-based).
    pub last_round: usize,
    /// Purchases per treatment visit.
    pub treated_conversion: f64,
    /// Purchases per holdout visit.
    pub holdout_conversion: f64,
    /// Clicks per offer shown.
    pub click_through: f64,
    /// Share of offers that were the customer's best.
    pub best_action_share: f64,
}

/// How one hidden segment was served.
#[derive(Debug, Clone, Serialize)]
pub struct SegmentLearning {
    /// The segment.
    pub segment: &'static str,
    /// Its best offer.
    pub best_action: &'static str,
    /// Share of its offers that were the best, in the first rounds.
    pub share_early: f64,
    /// The same in the last rounds.
    pub share_late: f64,
    /// Offers shown to it over the whole demo.
    pub offers: u64,
}

/// The learning curve of `visits` over `rounds` rounds.
pub fn learning(visits: &[Visit], rounds: usize) -> Learning {
    // Short windows: the engine learns within seconds, so a wide early window would hide it.
    let k = (rounds / 10).clamp(2, 5).min((rounds / 2).max(1));
    let late_from = rounds.saturating_sub(k);
    let early = |v: &&Visit| v.round < k;
    let late = |v: &&Visit| v.round >= late_from;
    let window = |first: usize, last: usize, keep: &dyn Fn(&&Visit) -> bool| {
        let s = RoundStats::of(0, visits.iter().filter(|v| keep(v)));
        Window {
            first_round: first,
            last_round: last,
            treated_conversion: s.treatment.conversion().unwrap_or(0.0),
            holdout_conversion: s.holdout.conversion().unwrap_or(0.0),
            click_through: s.click_through(),
            best_action_share: s.best_share(),
        }
    };
    let segments = SEGMENTS
        .iter()
        .enumerate()
        .map(|(i, seg)| {
            let of = |keep: &dyn Fn(&&Visit) -> bool| {
                RoundStats::of(0, visits.iter().filter(|v| v.segment == i && keep(v)))
            };
            SegmentLearning {
                segment: seg.name,
                best_action: ACTIONS[seg.best_action(false)].id,
                share_early: of(&early).best_share(),
                share_late: of(&late).best_share(),
                offers: of(&|_| true).offers,
            }
        })
        .collect();
    Learning {
        window_rounds: k,
        early: window(1, k, &early),
        late: window(late_from + 1, rounds, &late),
        segments,
    }
}

/// Treatment and holdout counts accumulated from the first round up to each round.
pub fn cumulative(rounds: &[RoundStats]) -> Vec<(ArmTally, ArmTally)> {
    let mut sum = (ArmTally::default(), ArmTally::default());
    rounds
        .iter()
        .map(|r| {
            sum = (sum.0.plus(&r.treatment), sum.1.plus(&r.holdout));
            sum.clone()
        })
        .collect()
}
