//! Online propensity updates per second on one core, for docs/propensity.md:
//!
//! ```text
//! cargo bench -p iee-predict --bench propensity
//! ```
#![allow(clippy::unwrap_used, clippy::print_stdout)]

use iee_api::pb::predict::FeatureVector;
use iee_predict::model::{
    encoder::{CategoricalInput, Encoder, NumericInput},
    propensity::{Forgetting, PropensityModel},
};
use rand::{Rng, SeedableRng, rngs::SmallRng};

fn main() {
    let numeric: Vec<String> = (0..25).map(|i| format!("f{i}")).collect();
    let channels = ["web", "app", "email", "sms", "push"];
    let encoder = Encoder {
        numeric: numeric
            .iter()
            .map(|n| NumericInput {
                name: n.clone(),
                mean: 0.0,
                scale: 1.0,
            })
            .collect(),
        categorical: vec![CategoricalInput {
            name: "channel".into(),
            categories: channels.iter().map(|c| (*c).to_owned()).collect(),
        }],
    };
    // No forgetting: the measurement is of the update itself.
    let model = PropensityModel::new(
        encoder,
        0.05,
        1.0,
        Forgetting {
            half_life_hours: 0.0,
        },
    );
    assert_eq!(model.encoder.width(), 30);
    let mut rng = SmallRng::seed_from_u64(9);
    let n = 100_000;
    let outcomes: Vec<(FeatureVector, bool)> = (0..n)
        .map(|i| {
            let mut x = FeatureVector::default();
            for name in &numeric {
                x.numeric.insert(name.clone(), rng.random_range(-2.0..2.0));
            }
            x.categorical
                .insert("channel".into(), channels[i % channels.len()].into());
            (x, rng.random_bool(0.05))
        })
        .collect();
    let start = std::time::Instant::now();
    let encoded: Vec<(Vec<f64>, bool)> = outcomes
        .iter()
        .map(|(x, y)| (model.encode(x), *y))
        .collect();
    let encoding = start.elapsed().as_secs_f64();
    println!(
        "encoding alone: {n} feature vectors in {encoding:.3} s = {:.0}/s",
        n as f64 / encoding
    );
    for batch in [1, 10, 100, 1000] {
        let mut m = model.clone();
        let start = std::time::Instant::now();
        for (i, chunk) in encoded.chunks(batch).enumerate() {
            m.update_encoded(&format!("offer-{}", i % 10), chunk);
        }
        let elapsed = start.elapsed().as_secs_f64();
        println!(
            "batch {batch:>4}: {n} encoded outcomes x 31 weights in {elapsed:.3} s = {:.0} \
             updates/s (one posterior)",
            n as f64 / elapsed
        );
    }
    for batch in [1, 10, 100, 1000] {
        let mut m = model.clone();
        let start = std::time::Instant::now();
        for (i, chunk) in outcomes.chunks(batch).enumerate() {
            m.update(&format!("offer-{}", i % 10), chunk);
        }
        let elapsed = start.elapsed().as_secs_f64();
        println!(
            "batch {batch:>4}: {n} outcomes x 30 features in {elapsed:.3} s = {:.0} updates/s \
             (action and pooled posteriors, encoding included)",
            n as f64 / elapsed
        );
    }
}
