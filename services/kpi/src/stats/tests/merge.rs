//! Merging aggregates of parts (time buckets, replicas) gives the aggregate of the whole, in any
//! grouping.

use super::estimators::assert_close;
use crate::stats::{Mean, Nps, Proportion};

/// A deterministic, irregular series with a large offset (to stress the mean merge).
fn series() -> Vec<f64> {
    (0..97)
        .map(|i| 1e6 + f64::from(i * 37 % 23) * 1.5 - f64::from(i % 7))
        .collect()
}

#[test]
fn mean_merge_is_associative_and_matches_the_whole() {
    let values = series();
    let whole = Mean::from_values(&values);
    let (a, rest) = values.split_at(10);
    let (b, c) = rest.split_at(50);
    let (a, b, c) = (
        Mean::from_values(a),
        Mean::from_values(b),
        Mean::from_values(c),
    );
    let mut left = a;
    left.merge(&b);
    left.merge(&c);
    let mut bc = b;
    bc.merge(&c);
    let mut right = a;
    right.merge(&bc);
    for merged in [left, right] {
        assert_eq!(merged.n, whole.n);
        assert_close(merged.mean, whole.mean, 1e-9);
        assert_close(merged.m2, whole.m2, 1e-6 * whole.m2);
    }
}

#[test]
fn mean_merge_with_empty_is_identity() {
    let part = Mean::from_values(&[1.0, 2.0, 4.0]);
    let mut merged = Mean::default();
    merged.merge(&part);
    assert_eq!(merged, part);
    merged.merge(&Mean::default());
    assert_eq!(merged, part);
}

#[test]
fn proportion_merge_is_associative_and_matches_the_whole() {
    let outcomes: Vec<bool> = (0..101).map(|i| i * 7 % 5 == 0).collect();
    let aggregate = |slice: &[bool]| {
        let mut proportion = Proportion::default();
        slice.iter().for_each(|&o| proportion.add(o));
        proportion
    };
    let whole = aggregate(&outcomes);
    let (a, b, c) = (
        aggregate(&outcomes[..30]),
        aggregate(&outcomes[30..31]),
        aggregate(&outcomes[31..]),
    );
    let mut left = a;
    left.merge(&b);
    left.merge(&c);
    let mut bc = b;
    bc.merge(&c);
    let mut right = a;
    right.merge(&bc);
    assert_eq!(left, whole);
    assert_eq!(right, whole);
}

#[test]
fn nps_merge_is_associative_and_matches_the_whole() {
    let scores: Vec<u32> = (0..120).map(|i| i * 13 % 11).collect();
    let aggregate = |slice: &[u32]| {
        let mut nps = Nps::default();
        for &score in slice {
            nps.add_score(score).unwrap();
        }
        nps
    };
    let whole = aggregate(&scores);
    let (a, b, c) = (
        aggregate(&scores[..7]),
        aggregate(&scores[7..80]),
        aggregate(&scores[80..]),
    );
    let mut left = a;
    left.merge(&b);
    left.merge(&c);
    let mut bc = b;
    bc.merge(&c);
    let mut right = a;
    right.merge(&bc);
    assert_eq!(left, whole);
    assert_eq!(right, whole);
    assert_eq!(left.value(), whole.value());
}
