//! Tests of the online propensity model.

#![allow(clippy::unwrap_used)]

use rand::{SeedableRng, rngs::SmallRng};

use std::collections::BTreeMap;

use iee_api::pb::predict::FeatureVector;
use rand::Rng;

use super::{laplace::*, model::*};
use crate::model::encoder::{CategoricalInput, Encoder, NumericInput};

fn encoder(numeric: &[&str], categorical: &[(&str, &[&str])]) -> Encoder {
    Encoder {
        numeric: numeric
            .iter()
            .map(|n| NumericInput {
                name: (*n).to_owned(),
                mean: 0.0,
                scale: 1.0,
            })
            .collect(),
        categorical: categorical
            .iter()
            .map(|(n, cats)| CategoricalInput {
                name: (*n).to_owned(),
                categories: cats.iter().map(|c| (*c).to_owned()).collect(),
            })
            .collect(),
    }
}

fn features(numeric: &[(&str, f64)], categorical: &[(&str, &str)]) -> FeatureVector {
    FeatureVector {
        numeric: numeric.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect(),
        categorical: categorical
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
    }
}

fn never() -> Forgetting {
    Forgetting {
        half_life_hours: 0.0,
    }
}

/// Random encoded rows of width `d` (intercept first) with outcomes from `truth`.
fn rows(rng: &mut SmallRng, truth: &[f64], n: usize) -> Vec<(Vec<f64>, bool)> {
    (0..n)
        .map(|_| {
            let mut x = vec![1.0];
            x.extend((1..truth.len()).map(|_| rng.random_range(-1.5..1.5)));
            let y = rng.random_bool(sigmoid(dot(truth, &x)));
            (x, y)
        })
        .collect()
}

fn gradient_norm(prior: &Posterior, rows: &[(Vec<f64>, bool)], w: &[f64]) -> f64 {
    let mut g: Vec<f64> = (0..w.len())
        .map(|i| prior.precision[i] * (w[i] - prior.mean[i]))
        .collect();
    for (x, y) in rows {
        let r = sigmoid(dot(w, x)) - if *y { 1.0 } else { 0.0 };
        for (gi, xi) in g.iter_mut().zip(x) {
            *gi += r * xi;
        }
    }
    g.iter().fold(0.0, |m, v| m.max(v.abs()))
}

#[test]
fn gauss_hermite_integrates_normal_moments_exactly() {
    let nodes = gauss_hermite(16);
    let moment = |k: i32| nodes.iter().map(|(x, w)| w * x.powi(k)).sum::<f64>();
    assert!((moment(0) - 1.0).abs() < 1e-12);
    assert!(moment(1).abs() < 1e-12);
    assert!((moment(2) - 1.0).abs() < 1e-12);
    assert!((moment(4) - 3.0).abs() < 1e-10);
    assert!((moment(8) - 105.0).abs() < 1e-8);
    // A narrow posterior: the delta method is right there.
    let (a, s) = (-1.0, 0.01);
    let delta = sigmoid(a) * (1.0 - sigmoid(a)) * s;
    assert!((probability_stddev(a, s) - delta).abs() < 1e-6);
}

#[test]
fn a_positive_feature_moves_its_weight_up_and_a_negative_outcome_down() {
    let mut model = PropensityModel::new(encoder(&["x"], &[]), 0.5, 1.0, never());
    let x = features(&[("x", 2.0)], &[]);
    model.update("up", &vec![(x.clone(), true); 20]);
    model.update("down", &vec![(x.clone(), false); 20]);
    let up = model.posterior("up");
    let down = model.posterior("down");
    assert!(up.mean[1] > 0.5, "{up:?}");
    assert!(down.mean[1] < -0.5, "{down:?}");
    let none: Option<&mut SmallRng> = None;
    assert!(model.score("up", &x, none).mean > 0.9);
    let none: Option<&mut SmallRng> = None;
    assert!(model.score("down", &x, none).mean < 0.1);
}

#[test]
fn precision_grows_with_every_observation() {
    let mut model =
        PropensityModel::new(encoder(&["x"], &[("seg", &["a", "b"])]), 0.1, 1.0, never());
    let x = features(&[("x", 0.7)], &[("seg", "a")]);
    let mut last = model.posterior("o").precision.clone();
    for i in 0..30 {
        model.update("o", &[(x.clone(), i % 3 == 0)]);
        let now = model.posterior("o").precision.clone();
        // Intercept, x and seg=a grow; seg=b (input 0) never moves.
        for k in [0, 1, 2] {
            assert!(
                now[k] > last[k],
                "input {k} at step {i}: {now:?} vs {last:?}"
            );
        }
        assert_eq!(now[3], 1.0);
        last = now;
    }
    assert_eq!(model.posterior("o").observations, 30);
    assert_eq!(model.pooled.as_ref().unwrap().observations, 30);
}

#[test]
fn forgetting_decays_evidence_toward_the_prior() {
    let forgetting = Forgetting {
        half_life_hours: 1.0,
    };
    let mut model = PropensityModel::new(encoder(&["x"], &[]), 0.2, 0.5, forgetting);
    model.pooled_prior = false;
    let batch: Vec<_> = (0..200)
        .map(|i| (features(&[("x", 1.0)], &[]), i % 2 == 0))
        .collect();
    model.update("o", &batch);
    let learned = model.posterior("o").into_owned();
    let prior = model.prior();
    model.forget(3_600_000);
    let half = model.posterior("o").into_owned();
    for i in 0..2 {
        let expected = prior.precision[i] + 0.5 * (learned.precision[i] - prior.precision[i]);
        assert!((half.precision[i] - expected).abs() < 1e-9, "{half:?}");
        let eta = |p: &Posterior| p.mean[i] * p.precision[i];
        let expected_eta = eta(&prior) + 0.5 * (eta(&learned) - eta(&prior));
        assert!((eta(&half) - expected_eta).abs() < 1e-9);
    }
    model.forget(100 * 3_600_000);
    let gone = model.posterior("o");
    for i in 0..2 {
        assert!((gone.precision[i] - prior.precision[i]).abs() < 1e-9);
        assert!((gone.mean[i] - prior.mean[i]).abs() < 1e-6, "{gone:?}");
    }
    assert_eq!(
        gone.observations, 200,
        "observations are counted, not forgotten"
    );
    // A half-life of 0 never forgets.
    let mut keep = PropensityModel::new(encoder(&[], &[]), 0.2, 1.0, never());
    keep.update("o", &[(FeatureVector::default(), true)]);
    let before = keep.clone();
    keep.forget(u64::MAX);
    assert_eq!(keep, before);
}

#[test]
fn single_outcome_map_matches_the_newton_solution_and_zeroes_the_gradient() {
    let mut rng = SmallRng::seed_from_u64(7);
    let truth = [-1.0, 0.8, -0.3, 1.2];
    for _ in 0..50 {
        let prior = Posterior {
            mean: (0..4).map(|_| rng.random_range(-2.0..2.0)).collect(),
            precision: (0..4).map(|_| rng.random_range(0.2..20.0)).collect(),
            observations: 0,
        };
        let row = rows(&mut rng, &truth, 1);
        let closed = single_map(&prior, &row[0].0, row[0].1);
        for dense in [true, false] {
            let newton = batch_map(&prior, &row, dense);
            for (a, b) in closed.iter().zip(&newton) {
                assert!((a - b).abs() < 1e-7, "{closed:?} vs {newton:?}");
            }
        }
        assert!(gradient_norm(&prior, &row, &closed) < 1e-10);
    }
}

#[test]
fn batch_map_is_the_optimum_with_dense_and_diagonal_newton() {
    let mut rng = SmallRng::seed_from_u64(11);
    let truth = [-2.0, 1.0, -0.5, 0.0, 2.0, 0.3];
    let prior = Posterior {
        mean: vec![0.0; 6],
        precision: vec![1.0; 6],
        observations: 0,
    };
    let batch = rows(&mut rng, &truth, 300);
    let dense = batch_map(&prior, &batch, true);
    let diagonal = batch_map(&prior, &batch, false);
    assert!(gradient_norm(&prior, &batch, &dense) < 1e-8);
    assert!(gradient_norm(&prior, &batch, &diagonal) < 1e-6);
    for (a, b) in dense.iter().zip(&diagonal) {
        assert!((a - b).abs() < 1e-6);
    }
}

#[test]
fn recovers_known_coefficients_from_many_outcomes() {
    let mut rng = SmallRng::seed_from_u64(3);
    let truth = [-1.5, 1.0, -0.7, 0.4];
    let mut model = PropensityModel::new(encoder(&["a", "b", "c"], &[]), 0.2, 4.0, never());
    for _ in 0..100 {
        let batch = rows(&mut rng, &truth, 200);
        model.update_encoded("o", &batch);
    }
    let posterior = model.posterior("o");
    for (i, (m, t)) in posterior.mean.iter().zip(truth).enumerate() {
        let sd = posterior.precision[i].powf(-0.5);
        assert!(
            (m - t).abs() < 4.0 * sd.max(0.02),
            "weight {i}: {m} vs {t} (sd {sd})"
        );
    }
}

#[test]
fn unknown_actions_score_from_the_prior_and_sampling_spreads_around_the_mean() {
    let mut model = PropensityModel::new(encoder(&["x"], &[]), 0.05, 1.0, never());
    let x = features(&[("x", 1.0)], &[]);
    let none: Option<&mut SmallRng> = None;
    let fresh = model.score("new", &x, none);
    assert_eq!(fresh.observations, 0);
    assert_eq!(fresh.sample, fresh.mean);
    // The prior mean is pulled toward 0.5 by the prior variance (MacKay), never below 5 %.
    assert!(fresh.mean > 0.05 && fresh.mean < 0.2, "{fresh:?}");
    let mut rng = SmallRng::seed_from_u64(1);
    let samples: Vec<f64> = (0..4000)
        .map(|_| model.score("new", &x, Some(&mut rng)).sample)
        .collect();
    let average = samples.iter().sum::<f64>() / samples.len() as f64;
    assert!(
        (average - fresh.mean).abs() < 0.01,
        "{average} vs {}",
        fresh.mean
    );
    let sd =
        (samples.iter().map(|s| (s - average).powi(2)).sum::<f64>() / samples.len() as f64).sqrt();
    assert!(
        (sd - fresh.stddev).abs() < 0.35 * sd,
        "{sd} vs {}",
        fresh.stddev
    );
    // Evidence narrows the posterior; pooling moves new actions' prior toward the data.
    let batch: Vec<_> = (0..500).map(|i| (x.clone(), i % 5 == 0)).collect();
    model.update("seen", &batch);
    let none: Option<&mut SmallRng> = None;
    let seen = model.score("seen", &x, none);
    assert!(seen.stddev < fresh.stddev / 3.0, "{seen:?}");
    assert!((seen.mean - 0.2).abs() < 0.03, "{seen:?}");
    let none: Option<&mut SmallRng> = None;
    let new_after = model.score("another", &x, none);
    assert!(new_after.mean > fresh.mean, "{new_after:?} vs {fresh:?}");
    assert_eq!(seen.contributions.len(), 1);
}

#[test]
fn evidence_adds_up_to_the_sequentially_updated_model() {
    let mut rng = SmallRng::seed_from_u64(5);
    let base = PropensityModel::new(encoder(&["a", "b"], &[]), 0.1, 1.0, never());
    let mut model = base.clone();
    let mut evidence: BTreeMap<String, Evidence> = BTreeMap::new();
    let mut pooled = Evidence::default();
    for i in 0..20 {
        let action = ["x", "y"][i % 2];
        let batch = rows(&mut rng, &[-1.0, 0.5, 0.5], 1 + i % 4);
        evidence
            .entry(action.to_owned())
            .or_default()
            .add(&model.update_encoded(action, &batch));
        pooled.add(&model.update_pooled_encoded(&batch).unwrap());
    }
    let rebuilt = base.with_evidence(Some(&pooled), &evidence);
    let close = |a: &Posterior, b: &Posterior| {
        a.observations == b.observations
            && a.mean
                .iter()
                .zip(&b.mean)
                .all(|(x, y)| (x - y).abs() < 1e-9)
            && a.precision
                .iter()
                .zip(&b.precision)
                .all(|(x, y)| (x - y).abs() < 1e-9)
    };
    assert!(close(
        rebuilt.pooled.as_ref().unwrap(),
        model.pooled.as_ref().unwrap()
    ));
    // Actions created before the pooled mean moved keep their creation-time prior in the
    // sequential model; the rebuilt one re-bases them on the current pooled mean. Without
    // pooling both agree exactly.
    let mut plain = base.clone();
    plain.pooled_prior = false;
    let mut sequential = plain.clone();
    let mut evidence: BTreeMap<String, Evidence> = BTreeMap::new();
    for i in 0..20 {
        let action = ["x", "y"][i % 2];
        let batch = rows(&mut rng, &[-1.0, 0.5, 0.5], 1 + i % 4);
        evidence
            .entry(action.to_owned())
            .or_default()
            .add(&sequential.update_encoded(action, &batch));
    }
    let rebuilt = plain.with_evidence(None, &evidence);
    for action in ["x", "y"] {
        assert!(close(&rebuilt.actions[action], &sequential.actions[action]));
    }
}

#[test]
fn check_refuses_bad_sizes_and_numbers_and_serde_round_trips() {
    let mut model = PropensityModel::new(
        encoder(&["x"], &[("c", &["a"])]),
        0.1,
        1.0,
        Forgetting::default(),
    );
    model.update("o", &[(features(&[("x", 1.0)], &[("c", "a")]), true)]);
    assert_eq!(model.check(), Ok(()));
    let json = serde_json::to_string(&model).unwrap();
    let back: PropensityModel = serde_json::from_str(&json).unwrap();
    // serde_json's float parsing may differ from the source in the last bit.
    assert_eq!(back.encoder, model.encoder);
    for (a, b) in back.actions["o"].mean.iter().zip(&model.actions["o"].mean) {
        assert!((a - b).abs() < 1e-12);
    }
    assert_eq!(PropensityModel::default().check(), Ok(()));
    let broken = |edit: &dyn Fn(&mut PropensityModel)| {
        let mut m = model.clone();
        edit(&mut m);
        m.check().unwrap_err().0
    };
    assert_eq!(broken(&|m| m.prior_mean.push(0.0)), "prior_mean");
    assert_eq!(broken(&|m| m.prior_variance = 0.0), "prior_variance");
    assert_eq!(
        broken(&|m| m.forgetting.half_life_hours = f64::NAN),
        "forgetting.half_life_hours"
    );
    assert_eq!(
        broken(&|m| m.actions.get_mut("o").unwrap().precision[1] = -1.0),
        "actions[\"o\"].precision"
    );
    assert_eq!(
        broken(&|m| m
            .actions
            .get_mut("o")
            .unwrap()
            .mean
            .pop()
            .map(drop)
            .unwrap_or(())),
        "actions[\"o\"]"
    );
    assert_eq!(
        broken(&|m| m.pooled.as_mut().unwrap().mean[0] = f64::INFINITY),
        "pooled.mean"
    );
    assert_eq!(
        broken(&|m| m.encoder.numeric[0].scale = 0.0),
        "encoder.numeric[0]"
    );
}

/// One arm per action; `rate(action, context)` the true response probability.
struct Bandit {
    actions: Vec<String>,
    contexts: Vec<FeatureVector>,
    rate: fn(usize, usize) -> f64,
}

struct Run {
    regret: f64,
    /// Times each action was chosen in each context in the last quarter.
    late_choices: Vec<Vec<u64>>,
}

/// Plays `rounds` rounds; feedback arrives in batches of `delay` rounds, as between syncs.
fn play(bandit: &Bandit, model: Option<PropensityModel>, rounds: usize, seed: u64) -> Run {
    let mut rng = SmallRng::seed_from_u64(seed);
    let mut model = model;
    let k = bandit.actions.len();
    let mut late_choices = vec![vec![0; k]; bandit.contexts.len()];
    let mut regret = 0.0;
    let mut feedback: BTreeMap<usize, Vec<(FeatureVector, bool)>> = BTreeMap::new();
    let delay = 20;
    for round in 0..rounds {
        let c = rng.random_range(0..bandit.contexts.len());
        let x = &bandit.contexts[c];
        let chosen = match &model {
            None => rng.random_range(0..k),
            Some(m) => {
                let inputs = m.encode(x);
                (0..k)
                    .map(|a| {
                        (
                            a,
                            m.score_encoded(&bandit.actions[a], &inputs, Some(&mut rng))
                                .sample,
                        )
                    })
                    .max_by(|a, b| a.1.total_cmp(&b.1))
                    .map(|(a, _)| a)
                    .unwrap()
            }
        };
        let best = (0..k).map(|a| (bandit.rate)(a, c)).fold(0.0, f64::max);
        regret += best - (bandit.rate)(chosen, c);
        if round >= rounds * 3 / 4 {
            late_choices[c][chosen] += 1;
        }
        let reward = rng.random_bool((bandit.rate)(chosen, c));
        feedback
            .entry(chosen)
            .or_default()
            .push((x.clone(), reward));
        if (round + 1) % delay == 0
            && let Some(m) = &mut model
        {
            for (a, batch) in std::mem::take(&mut feedback) {
                m.update(&bandit.actions[a], &batch);
            }
        }
    }
    Run {
        regret,
        late_choices,
    }
}

#[test]
fn thompson_sampling_finds_the_best_arm_with_far_less_regret_than_uniform_choice() {
    let bandit = Bandit {
        actions: (0..5).map(|a| format!("offer-{a}")).collect(),
        contexts: vec![FeatureVector::default()],
        rate: |a, _| 0.02 * (a + 1) as f64,
    };
    let model = PropensityModel::new(encoder(&[], &[]), 0.05, 1.0, never());
    let rounds = 20_000;
    let thompson = play(&bandit, Some(model), rounds, 42);
    let uniform = play(&bandit, None, rounds, 42);
    eprintln!(
        "bernoulli bandit, {rounds} rounds: regret thompson {:.1}, uniform {:.1} ({:.1} %), \
         last-quarter choices {:?}",
        thompson.regret,
        uniform.regret,
        100.0 * thompson.regret / uniform.regret,
        thompson.late_choices[0]
    );
    assert!(thompson.regret < 0.25 * uniform.regret);
    let late = &thompson.late_choices[0];
    let best = late.iter().enumerate().max_by_key(|(_, n)| **n).unwrap().0;
    assert_eq!(best, 4, "{late:?}");
    assert!(late[4] * 2 > late.iter().sum::<u64>(), "{late:?}");
}

#[test]
fn contextual_thompson_sampling_learns_that_the_best_action_depends_on_the_segment() {
    let seg = |s: &str| features(&[], &[("segment", s)]);
    let bandit = Bandit {
        actions: (0..4).map(|a| format!("offer-{a}")).collect(),
        contexts: vec![seg("young"), seg("senior")],
        // Offer 0 suits the young, offer 3 the seniors; 1 and 2 are middling for both.
        rate: |a, c| match (a, c) {
            (0, 0) | (3, 1) => 0.12,
            (0, _) | (3, _) => 0.02,
            _ => 0.06,
        },
    };
    let model = PropensityModel::new(
        encoder(&[], &[("segment", &["young", "senior"])]),
        0.05,
        1.0,
        never(),
    );
    let rounds = 20_000;
    let thompson = play(&bandit, Some(model), rounds, 7);
    let uniform = play(&bandit, None, rounds, 7);
    eprintln!(
        "contextual bandit, {rounds} rounds: regret thompson {:.1}, uniform {:.1} ({:.1} %), \
         last-quarter choices {:?}",
        thompson.regret,
        uniform.regret,
        100.0 * thompson.regret / uniform.regret,
        thompson.late_choices
    );
    assert!(thompson.regret < 0.25 * uniform.regret);
    for (context, best) in [(0, 0), (1, 3)] {
        let late = &thompson.late_choices[context];
        let top = late.iter().enumerate().max_by_key(|(_, n)| **n).unwrap().0;
        assert_eq!(top, best, "context {context}: {late:?}");
    }
}
