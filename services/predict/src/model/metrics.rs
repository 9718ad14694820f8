//! Quality metrics of probabilistic binary classifiers on a holdout: ROC AUC, PR AUC (average
//! precision), log loss and Brier score. Labels are 0/1 (a label > 0.5 counts as positive).

/// Area under the ROC curve: the probability that a random positive scores above a random
/// negative, ties counting one half (the Mann-Whitney U statistic with mid-ranks). `None` when
/// the lengths differ or either class is absent.
pub fn roc_auc(scores: &[f64], labels: &[f64]) -> Option<f64> {
    let order = sorted(scores, labels)?;
    let positives = labels.iter().filter(|&&l| l > 0.5).count() as f64;
    let negatives = labels.len() as f64 - positives;
    if positives == 0.0 || negatives == 0.0 {
        return None;
    }
    // Sum of the positives' mid-ranks (1-based), tied scores sharing their average rank.
    let mut rank_sum = 0.0;
    let mut start = 0;
    while start < order.len() {
        let mut end = start;
        while end + 1 < order.len() && scores[order[end + 1]] == scores[order[start]] {
            end += 1;
        }
        let mid_rank = (start + end) as f64 / 2.0 + 1.0;
        let tied_positives = order[start..=end]
            .iter()
            .filter(|&&i| labels[i] > 0.5)
            .count();
        rank_sum += mid_rank * tied_positives as f64;
        start = end + 1;
    }
    Some((rank_sum - positives * (positives + 1.0) / 2.0) / (positives * negatives))
}

/// Average precision, the usual estimate of the area under the precision-recall curve:
/// Σₖ (Rₖ − Rₖ₋₁)·Pₖ over the distinct score thresholds, highest first, so tied scores enter
/// together (as scikit-learn's `average_precision_score`). `None` when the lengths differ or
/// there is no positive.
pub fn pr_auc(scores: &[f64], labels: &[f64]) -> Option<f64> {
    let mut order = sorted(scores, labels)?;
    order.reverse();
    let positives = labels.iter().filter(|&&l| l > 0.5).count() as f64;
    if positives == 0.0 {
        return None;
    }
    let (mut tp, mut fp, mut recall, mut ap) = (0.0, 0.0, 0.0, 0.0);
    let mut start = 0;
    while start < order.len() {
        let mut end = start;
        while end + 1 < order.len() && scores[order[end + 1]] == scores[order[start]] {
            end += 1;
        }
        for &i in &order[start..=end] {
            if labels[i] > 0.5 {
                tp += 1.0;
            } else {
                fp += 1.0;
            }
        }
        let new_recall = tp / positives;
        ap += (new_recall - recall) * tp / (tp + fp);
        recall = new_recall;
        start = end + 1;
    }
    Some(ap)
}

/// Mean negative log-likelihood, −mean[y·ln p + (1 − y)·ln(1 − p)], with p clipped to
/// [1e-15, 1 − 1e-15] so one confident mistake is large but finite. `None` when empty or the
/// lengths differ.
pub fn log_loss(probabilities: &[f64], labels: &[f64]) -> Option<f64> {
    mean(probabilities, labels, |p, y| {
        let p = p.clamp(1e-15, 1.0 - 1e-15);
        -(y * p.ln() + (1.0 - y) * (1.0 - p).ln())
    })
}

/// Brier score, mean (p − y)². `None` when empty or the lengths differ.
pub fn brier(probabilities: &[f64], labels: &[f64]) -> Option<f64> {
    mean(probabilities, labels, |p, y| (p - y).powi(2))
}

fn mean(p: &[f64], y: &[f64], f: impl Fn(f64, f64) -> f64) -> Option<f64> {
    (!p.is_empty() && p.len() == y.len())
        .then(|| p.iter().zip(y).map(|(&p, &y)| f(p, y)).sum::<f64>() / p.len() as f64)
}

/// Indices ordered by ascending score; `None` on mismatched lengths or no rows.
fn sorted(scores: &[f64], labels: &[f64]) -> Option<Vec<usize>> {
    if scores.is_empty() || scores.len() != labels.len() {
        return None;
    }
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]));
    Some(order)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn close(a: Option<f64>, b: f64) -> bool {
        a.is_some_and(|a| (a - b).abs() < 1e-12)
    }

    #[test]
    fn auc_and_average_precision_by_hand() {
        // Pairs (positive, negative): 0.35 beats 0.1 but not 0.4; 0.8 beats both → 3/4.
        let scores = [0.1, 0.4, 0.35, 0.8];
        let labels = [0.0, 0.0, 1.0, 1.0];
        assert!(close(roc_auc(&scores, &labels), 0.75));
        // Thresholds 0.8: R 1/2, P 1; 0.4: R 1/2; 0.35: R 1, P 2/3 → 1/2 + 1/2·2/3.
        assert!(close(pr_auc(&scores, &labels), 0.5 + 1.0 / 3.0));
    }

    #[test]
    fn ties_count_half_and_enter_together() {
        // 0.6 (pos) vs 0.2 → 1, vs 0.6 → 1/2; 0.9 beats both → 3.5 / 4.
        let scores = [0.2, 0.6, 0.6, 0.9];
        let labels = [0.0, 0.0, 1.0, 1.0];
        assert!(close(roc_auc(&scores, &labels), 0.875));
        // 0.9: R 1/2, P 1; 0.6 (both at once): R 1, P 2/3.
        assert!(close(pr_auc(&scores, &labels), 0.5 + 0.5 * 2.0 / 3.0));
        // All tied: no information.
        let flat = [0.5; 4];
        let labels = [0.0, 1.0, 0.0, 1.0];
        assert!(close(roc_auc(&flat, &labels), 0.5));
        assert!(close(pr_auc(&flat, &labels), 0.5));
    }

    #[test]
    fn log_loss_and_brier_by_hand() {
        let p = [0.9, 0.2, 0.5];
        let y = [1.0, 0.0, 1.0];
        let expected = -(0.9f64.ln() + 0.8f64.ln() + 0.5f64.ln()) / 3.0;
        assert!(close(log_loss(&p, &y), expected));
        assert!(close(brier(&p, &y), (0.01 + 0.04 + 0.25) / 3.0));
        assert!(log_loss(&[0.0], &[1.0]).unwrap().is_finite());
    }

    #[test]
    fn undefined_cases_are_none() {
        assert_eq!(roc_auc(&[0.3, 0.4], &[1.0, 1.0]), None);
        assert_eq!(pr_auc(&[0.3, 0.4], &[0.0, 0.0]), None);
        assert_eq!(roc_auc(&[0.3], &[1.0, 0.0]), None);
        assert_eq!(brier(&[], &[]), None);
    }
}
