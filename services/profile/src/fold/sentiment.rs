//! Sentiment of the customer's own words: a per-event score (given by the client, or VADER's
//! compound score of the event's text) folded into an exponentially weighted moving average.

use iee_api::pb::common::Event;
use iee_api::pb::profile::Sentiment;
use vader_parity::SentimentIntensityAnalyzer;

use super::props;
use super::time::{max_ts, opt_ms};

/// The property a client may use to give an event's sentiment itself (a number in -1..1).
pub(crate) const SENTIMENT_PROPERTY: &str = "sentiment";

/// Lexicon- and rule-based (VADER) scorer of short texts. Loading the lexicon takes a few
/// milliseconds, so one is built per [`crate::fold::Folder`].
pub(crate) struct Analyser(SentimentIntensityAnalyzer);

impl std::fmt::Debug for Analyser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Analyser(vader)")
    }
}

impl Analyser {
    pub(crate) fn new() -> Self {
        Self(SentimentIntensityAnalyzer::new())
    }

    /// VADER's compound score of `text`, -1 to 1.
    pub(crate) fn score(&self, text: &str) -> f64 {
        self.0.polarity_scores(text).compound.clamp(-1.0, 1.0)
    }

    /// The sentiment an event carries: its `sentiment` property (clamped to -1..1) if set, else
    /// the score of its non-blank `text`, else none.
    pub(crate) fn event_score(&self, event: &Event) -> Option<f64> {
        if let Some(s) = props::number(event, SENTIMENT_PROPERTY) {
            return Some(s.clamp(-1.0, 1.0));
        }
        let text = event.text.as_deref()?.trim();
        (!text.is_empty()).then(|| self.score(text))
    }
}

/// Folds one score into the EWMA (starting from 0, so a single text moves it by `alpha`).
pub(crate) fn update(s: &mut Sentiment, score: f64, at_ms: i64, alpha: f64) {
    s.ewma = alpha * score + (1.0 - alpha) * s.ewma;
    s.last_score = score;
    s.samples += 1;
    max_ts(&mut s.updated_at, at_ms);
}

/// Merges an anonymous profile's sentiment: an EWMA cannot be re-run without the scores, so the
/// one updated last is kept; samples add up.
pub(crate) fn merge(ours: &mut Sentiment, theirs: &Sentiment) {
    if theirs.samples == 0 {
        return;
    }
    let theirs_later =
        ours.samples == 0 || opt_ms(theirs.updated_at.as_ref()) > opt_ms(ours.updated_at.as_ref());
    if theirs_later {
        ours.ewma = theirs.ewma;
        ours.last_score = theirs.last_score;
        ours.updated_at = theirs.updated_at;
    }
    ours.samples += theirs.samples;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fold::props::build::n;

    #[test]
    fn vader_scores_polarity_of_text() {
        let a = Analyser::new();
        assert!(a.score("This is terrible, the worst service ever!") < -0.5);
        assert!(a.score("Great product, I love it") > 0.5);
        assert!(a.score("order 12345").abs() < 1e-9);
    }

    #[test]
    fn explicit_property_wins_over_text_and_is_clamped() {
        let a = Analyser::new();
        let mut e = Event {
            text: Some("I love it".into()),
            ..Event::default()
        };
        e.properties.insert(SENTIMENT_PROPERTY.into(), n(-3.0));
        assert_eq!(a.event_score(&e), Some(-1.0));
        e.properties.clear();
        assert!(a.event_score(&e).is_some_and(|s| s > 0.0));
        e.text = Some("   ".into());
        assert_eq!(a.event_score(&e), None);
    }

    #[test]
    fn ewma_follows_the_documented_formula() {
        let mut s = Sentiment::default();
        update(&mut s, -1.0, 5, 0.3);
        assert!((s.ewma + 0.3).abs() < 1e-12);
        update(&mut s, -1.0, 3, 0.3);
        assert!((s.ewma + 0.51).abs() < 1e-12);
        assert_eq!(s.samples, 2);
        assert_eq!(opt_ms(s.updated_at.as_ref()), Some(5));
    }
}
