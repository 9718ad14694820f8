//! Seeded simulations: how often the 95 % intervals cover the truth, and how often the tests
//! reject a true null at 5 %. Run with `--nocapture` to see the measured rates.

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use rand_distr::{Binomial, Distribution, LogNormal, Normal};

use crate::stats::{Interval, Mean, Nps, Proportion, mean_uplift, nps_uplift, proportion_uplift};

const REPETITIONS: u32 = 2_000;
const LEVEL: f64 = 0.95;
/// Acceptable coverage of a 95 % interval over [`REPETITIONS`] runs (±4 Monte Carlo SE).
const COVERAGE: (f64, f64) = (0.93, 0.97);
/// Acceptable false positive rate of a 5 % test over [`REPETITIONS`] runs.
const FALSE_POSITIVES: (f64, f64) = (0.03, 0.07);

/// The share of `REPETITIONS` seeded runs for which `trial` returns true; a run that cannot
/// produce an interval counts as a miss.
fn rate(seed: u64, mut trial: impl FnMut(&mut SmallRng) -> Option<bool>) -> f64 {
    let mut rng = SmallRng::seed_from_u64(seed);
    let hits = (0..REPETITIONS)
        .filter(|_| trial(&mut rng).unwrap_or(false))
        .count();
    hits as f64 / f64::from(REPETITIONS)
}

fn assert_rate(name: &str, measured: f64, (low, high): (f64, f64)) {
    println!("{name}: {measured:.4} ({REPETITIONS} runs)");
    assert!(
        (low..=high).contains(&measured),
        "{name}: {measured} outside [{low}, {high}]"
    );
}

fn covers(interval: Option<Interval>, truth: f64) -> Option<bool> {
    Some(interval?.contains(truth))
}

fn proportion(rng: &mut SmallRng, p: f64, n: u64) -> Proportion {
    let successes = Binomial::new(n, p).map_or(0, |b| b.sample(rng));
    Proportion::new(successes, n)
}

fn mean(rng: &mut SmallRng, distribution: &impl Distribution<f64>, n: usize) -> Mean {
    let mut mean = Mean::default();
    for _ in 0..n {
        mean.add(distribution.sample(rng));
    }
    mean
}

/// `n` answers with promoter share `p` and detractor share `d`.
fn nps(rng: &mut SmallRng, p: f64, d: f64, n: usize) -> Nps {
    let mut nps = Nps::default();
    for _ in 0..n {
        let u: f64 = rng.random();
        if u < p {
            nps.promoters += 1;
        } else if u < p + d {
            nps.detractors += 1;
        } else {
            nps.passives += 1;
        }
    }
    nps
}

#[test]
fn wilson_interval_covers_a_rate_of_10_percent() {
    let measured = rate(1, |rng| {
        covers(proportion(rng, 0.1, 400).wilson(LEVEL), 0.1)
    });
    assert_rate("wilson p=0.1 n=400", measured, COVERAGE);
}

#[test]
fn t_interval_covers_the_mean_of_normal_and_mildly_skewed_data() {
    let normal = Normal::new(10.0, 3.0).unwrap();
    let measured = rate(2, |rng| {
        covers(mean(rng, &normal, 50).t_interval(LEVEL), 10.0)
    });
    assert_rate("t normal(10,3) n=50", measured, COVERAGE);
    let skewed = LogNormal::new(0.0, 0.5).unwrap();
    let truth = 0.125_f64.exp();
    let measured = rate(3, |rng| {
        covers(mean(rng, &skewed, 50).t_interval(LEVEL), truth)
    });
    assert_rate("t lognormal(0,0.5) n=50", measured, COVERAGE);
}

#[test]
fn t_interval_undercovers_heavily_skewed_data_as_expected() {
    // Not a defect of the estimator but of the normal approximation at n = 50: recorded so the
    // documentation states it, asserted only loosely.
    let skewed = LogNormal::new(0.0, 1.0).unwrap();
    let truth = 0.5_f64.exp();
    let measured = rate(4, |rng| {
        covers(mean(rng, &skewed, 50).t_interval(LEVEL), truth)
    });
    assert_rate("t lognormal(0,1) n=50", measured, (0.85, 0.95));
}

#[test]
fn nps_interval_covers_the_true_score() {
    let measured = rate(5, |rng| {
        covers(nps(rng, 0.4, 0.2, 300).interval(LEVEL), 20.0)
    });
    assert_rate("nps p=0.4 d=0.2 n=300", measured, COVERAGE);
}

#[test]
fn proportion_uplift_intervals_cover_the_true_uplift() {
    let mut relative = 0;
    let measured = rate(6, |rng| {
        let t = proportion(rng, 0.12, 1000);
        let c = proportion(rng, 0.10, 1000);
        let uplift = proportion_uplift(&t, &c, LEVEL)?;
        relative += u32::from(covers(uplift.relative_interval, 0.2).unwrap_or(false));
        covers(uplift.absolute_interval, 0.02)
    });
    assert_rate("newcombe 0.12 vs 0.10 n=1000", measured, COVERAGE);
    let relative = f64::from(relative) / f64::from(REPETITIONS);
    assert_rate("relative (log ratio) 0.12 vs 0.10", relative, COVERAGE);
}

#[test]
fn mean_uplift_intervals_cover_the_true_uplift() {
    let (t_dist, c_dist) = (
        Normal::new(10.5, 3.0).unwrap(),
        Normal::new(10.0, 2.0).unwrap(),
    );
    let mut relative = 0;
    let measured = rate(7, |rng| {
        let t = mean(rng, &t_dist, 40);
        let c = mean(rng, &c_dist, 60);
        let uplift = mean_uplift(&t, &c, LEVEL)?;
        relative += u32::from(covers(uplift.relative_interval, 0.05).unwrap_or(false));
        covers(uplift.absolute_interval, 0.5)
    });
    assert_rate("welch N(10.5,3) n=40 vs N(10,2) n=60", measured, COVERAGE);
    let relative = f64::from(relative) / f64::from(REPETITIONS);
    assert_rate("relative (log ratio) welch", relative, COVERAGE);
}

#[test]
fn nps_uplift_intervals_cover_the_true_uplift() {
    let mut relative = 0;
    let measured = rate(8, |rng| {
        let t = nps(rng, 0.45, 0.20, 300);
        let c = nps(rng, 0.40, 0.20, 300);
        let uplift = nps_uplift(&t, &c, LEVEL)?;
        relative += u32::from(covers(uplift.relative_interval, 0.25).unwrap_or(false));
        covers(uplift.absolute_interval, 5.0)
    });
    assert_rate("nps delta 25 vs 20 n=300", measured, COVERAGE);
    // Control NPS 20 with a standard error near 4.4 points: the ratio is far from normal, so
    // the relative interval is recorded and asserted loosely.
    let relative = f64::from(relative) / f64::from(REPETITIONS);
    assert_rate("relative nps 25 vs 20", relative, (0.90, 0.99));
}

#[test]
fn tests_reject_a_true_null_about_5_percent_of_the_time() {
    let significant = |p: Option<f64>| Some(p? < 1.0 - LEVEL);
    let measured = rate(9, |rng| {
        let (t, c) = (proportion(rng, 0.1, 1000), proportion(rng, 0.1, 1000));
        significant(proportion_uplift(&t, &c, LEVEL)?.p_value)
    });
    assert_rate(
        "false positives two-proportion z",
        measured,
        FALSE_POSITIVES,
    );
    let (t_dist, c_dist) = (
        Normal::new(10.0, 3.0).unwrap(),
        Normal::new(10.0, 1.0).unwrap(),
    );
    let measured = rate(10, |rng| {
        let (t, c) = (mean(rng, &t_dist, 20), mean(rng, &c_dist, 40));
        significant(mean_uplift(&t, &c, LEVEL)?.p_value)
    });
    assert_rate(
        "false positives welch n=20 vs 40",
        measured,
        FALSE_POSITIVES,
    );
    let measured = rate(11, |rng| {
        let (t, c) = (nps(rng, 0.4, 0.2, 300), nps(rng, 0.4, 0.2, 300));
        significant(nps_uplift(&t, &c, LEVEL)?.p_value)
    });
    assert_rate("false positives nps z", measured, FALSE_POSITIVES);
}

#[test]
fn srm_rarely_flags_a_correct_split() {
    let measured = rate(12, |rng| {
        let first = Binomial::new(10_000, 0.5).ok()?.sample(rng);
        let srm = crate::stats::sample_ratio_mismatch(&[first, 10_000 - first], &[0.5, 0.5])?;
        Some(srm.mismatch)
    });
    assert_rate("srm false alarms 50/50 n=10000", measured, (0.0, 0.005));
}
