//! The journey state machine: awareness → consideration → purchase → onboarding → retention →
//! advocacy, with churn risk entered on warning signs and left on re-engagement. An event's
//! explicit `journey_stage` sets the stage; otherwise the stage is inferred and only moves
//! forward along the funnel (or into and out of churn risk). See `docs/profile-state.md`.

use iee_api::pb::common::JourneyStage;

use super::experience::NpsClass;

/// Event types that show the customer is considering a purchase.
const CONSIDERATION_EVENTS: &[&str] = &[
    "product_view",
    "search",
    "add_to_cart",
    "remove_from_cart",
    "signup",
];

/// Event types whose positive sentiment counts as advocacy.
const ADVOCACY_EVENTS: &[&str] = &["review", "social_mention", "community_post"];

/// Sentiment at or above which a review or post counts as advocacy.
pub(crate) const ADVOCACY_SENTIMENT: f64 = 0.5;

/// What moved the journey.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Trigger<'a> {
    /// An applied event.
    Event {
        event_type: &'a str,
        explicit: JourneyStage,
        nps: Option<NpsClass>,
        sentiment: Option<f64>,
        /// Purchases recorded, including this event's.
        purchases: u64,
    },
    /// The inactivity timer fired.
    Inactive { purchases: u64 },
    /// The experience or sentiment fell below its threshold.
    NegativeExperience { purchases: u64 },
}

/// Position along the funnel; churn risk sits outside it.
fn rank(stage: JourneyStage) -> u8 {
    match stage {
        JourneyStage::Unspecified => 0,
        JourneyStage::Awareness => 1,
        JourneyStage::Consideration => 2,
        JourneyStage::Purchase => 3,
        JourneyStage::Onboarding => 4,
        JourneyStage::Retention | JourneyStage::ChurnRisk => 5,
        JourneyStage::Advocacy => 6,
    }
}

/// Moves forward along the funnel only (never out of churn risk).
fn forward(stage: JourneyStage, to: JourneyStage) -> JourneyStage {
    if stage != JourneyStage::ChurnRisk && rank(to) > rank(stage) {
        to
    } else {
        stage
    }
}

/// The stage after `trigger`, given the current `stage`.
pub(crate) fn next(stage: JourneyStage, trigger: Trigger<'_>) -> JourneyStage {
    use JourneyStage as S;
    match trigger {
        Trigger::Inactive { purchases } | Trigger::NegativeExperience { purchases } => {
            if purchases > 0 { S::ChurnRisk } else { stage }
        }
        Trigger::Event { explicit, .. } if explicit != S::Unspecified => explicit,
        Trigger::Event {
            event_type,
            nps,
            sentiment,
            purchases,
            ..
        } => {
            let customer = purchases > 0;
            if customer && (event_type == "subscription_cancel" || nps == Some(NpsClass::Detractor))
            {
                return S::ChurnRisk;
            }
            let advocacy = nps == Some(NpsClass::Promoter)
                || (ADVOCACY_EVENTS.contains(&event_type)
                    && sentiment.is_some_and(|s| s >= ADVOCACY_SENTIMENT));
            if customer && advocacy {
                return S::Advocacy;
            }
            match event_type {
                "purchase" | "subscription_start" => {
                    if stage == S::ChurnRisk || (event_type == "purchase" && purchases >= 2) {
                        if stage == S::Advocacy {
                            stage
                        } else {
                            S::Retention
                        }
                    } else {
                        forward(stage, S::Onboarding)
                    }
                }
                "checkout" => forward(stage, S::Purchase),
                t if CONSIDERATION_EVENTS.contains(&t) => forward(stage, S::Consideration),
                _ => forward(stage, S::Awareness),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use JourneyStage as S;

    fn ev(event_type: &str, purchases: u64) -> Trigger<'_> {
        Trigger::Event {
            event_type,
            explicit: S::Unspecified,
            nps: None,
            sentiment: None,
            purchases,
        }
    }

    #[test]
    fn funnel_moves_forward_with_inferred_events() {
        let mut stage = S::Unspecified;
        let mut seen = vec![];
        for (t, purchases) in [
            ("page_view", 0),
            ("product_view", 0),
            ("page_view", 0),
            ("checkout", 0),
            ("purchase", 1),
            ("page_view", 1),
            ("purchase", 2),
        ] {
            stage = next(stage, ev(t, purchases));
            seen.push(stage);
        }
        assert_eq!(
            seen,
            vec![
                S::Awareness,
                S::Consideration,
                S::Consideration,
                S::Purchase,
                S::Onboarding,
                S::Onboarding,
                S::Retention
            ]
        );
    }

    #[test]
    fn explicit_stage_wins_in_any_direction() {
        let trigger = Trigger::Event {
            event_type: "purchase",
            explicit: S::Awareness,
            nps: None,
            sentiment: None,
            purchases: 3,
        };
        assert_eq!(next(S::Retention, trigger), S::Awareness);
    }

    #[test]
    fn churn_risk_is_entered_by_warning_signs_and_left_by_re_engagement() {
        assert_eq!(
            next(S::Retention, ev("subscription_cancel", 2)),
            S::ChurnRisk
        );
        assert_eq!(
            next(S::Consideration, ev("subscription_cancel", 0)),
            S::Consideration
        );
        assert_eq!(
            next(S::Onboarding, Trigger::Inactive { purchases: 1 }),
            S::ChurnRisk
        );
        assert_eq!(
            next(S::Awareness, Trigger::Inactive { purchases: 0 }),
            S::Awareness
        );
        assert_eq!(next(S::ChurnRisk, ev("page_view", 2)), S::ChurnRisk);
        assert_eq!(next(S::ChurnRisk, ev("purchase", 3)), S::Retention);
        assert_eq!(
            next(S::ChurnRisk, ev("subscription_start", 3)),
            S::Retention
        );
        let detractor = Trigger::Event {
            event_type: "survey_response",
            explicit: S::Unspecified,
            nps: Some(NpsClass::Detractor),
            sentiment: None,
            purchases: 1,
        };
        assert_eq!(next(S::Advocacy, detractor), S::ChurnRisk);
    }

    #[test]
    fn advocacy_needs_a_purchase_and_a_promoter_or_a_glowing_review() {
        let review = |purchases| Trigger::Event {
            event_type: "review",
            explicit: S::Unspecified,
            nps: None,
            sentiment: Some(0.8),
            purchases,
        };
        assert_eq!(next(S::Retention, review(1)), S::Advocacy);
        assert_eq!(next(S::Awareness, review(0)), S::Awareness);
        assert_eq!(next(S::Advocacy, ev("purchase", 5)), S::Advocacy);
    }
}
