//! The catalogue's hand-written entries: every feature with a fixed name, with its definition.
//! The generated families (decayed counters per type and channel, consent flags) are built in
//! `catalogue.rs`.

use super::catalogue::{
    FeatureKind::{self, ByValue, Categorical, Numeric},
    FeatureSpec,
    Source::{self, Context, Profile},
};

pub(super) const fn spec(
    name: &'static str,
    kind: FeatureKind,
    source: Source,
    description: &'static str,
) -> FeatureSpec {
    FeatureSpec {
        name,
        kind,
        source,
        description,
    }
}

/// The features with fixed names, in documentation order. The decayed per-type and per-channel
/// counters and the consent flags are generated from the lists above.
pub(super) const FIXED_PROFILE: &[FeatureSpec] = &[
    spec(
        "identity.known",
        Numeric,
        Profile,
        "1 for a known customer, 0 for an anonymous visitor.",
    ),
    spec(
        "recency.days_since_last_seen",
        Numeric,
        Profile,
        "Days from the latest event (`last_seen_at`) to now, >= 0. Absent before any event.",
    ),
    spec(
        "recency.days_since_last_purchase",
        Numeric,
        Profile,
        "Days from the latest purchase to now, >= 0. Absent before any purchase.",
    ),
    spec(
        "tenure.days",
        Numeric,
        Profile,
        "Days from the first event (`first_seen_at`) to now, >= 0. Absent before any event.",
    ),
    spec(
        "frequency.purchases",
        Numeric,
        Profile,
        "Number of purchases since the profile began.",
    ),
    spec(
        "frequency.refunds",
        Numeric,
        Profile,
        "Number of refunds since the profile began.",
    ),
    spec(
        "monetary.net_revenue",
        Numeric,
        Profile,
        "Purchases minus refunds, in major units of the profile's reporting currency. Absent \
         before any money was seen.",
    ),
    spec(
        "monetary.gross_revenue",
        Numeric,
        Profile,
        "Sum of priced purchases before refunds, in major units. Absent before any money was \
         seen.",
    ),
    spec(
        "monetary.refunded",
        Numeric,
        Profile,
        "Sum of refunds (positive), in major units. Absent before any money was seen.",
    ),
    spec(
        "monetary.aov",
        Numeric,
        Profile,
        "Average order value (gross revenue / priced purchases), in major units. Absent before \
         a priced purchase.",
    ),
    spec(
        "activity.total",
        Numeric,
        Profile,
        "Number of events since the profile began (lifetime, not decayed).",
    ),
    spec(
        "sessions.count",
        Numeric,
        Profile,
        "Number of sessions, including the current one.",
    ),
    spec(
        "sessions.ended",
        Numeric,
        Profile,
        "Number of ended sessions.",
    ),
    spec(
        "sessions.engaged_rate",
        Numeric,
        Profile,
        "Engaged ended sessions / ended sessions, 0 to 1. Absent before a session ended.",
    ),
    spec(
        "sessions.bounce_rate",
        Numeric,
        Profile,
        "Bounced ended sessions / ended sessions, 0 to 1. Absent before a session ended.",
    ),
    spec(
        "sessions.avg_duration_secs",
        Numeric,
        Profile,
        "Mean duration of ended sessions, in seconds. Absent before a session ended.",
    ),
    spec(
        "sessions.avg_events",
        Numeric,
        Profile,
        "Mean number of events per ended session. Absent before a session ended.",
    ),
    spec(
        "sessions.current_events",
        Numeric,
        Profile,
        "Events in the current (not timed-out) session; 0 without one.",
    ),
    spec(
        "cart.items",
        Numeric,
        Profile,
        "Units in the cart (sum of quantities); 0 when empty.",
    ),
    spec(
        "cart.lines",
        Numeric,
        Profile,
        "Distinct products in the cart; 0 when empty.",
    ),
    spec(
        "cart.value",
        Numeric,
        Profile,
        "Value of the cart, in major units; 0 when empty. Absent when the cart holds items but \
         no value is known.",
    ),
    spec(
        "cart.minutes_since_change",
        Numeric,
        Profile,
        "Minutes since a non-empty cart last changed, >= 0. Absent when the cart is empty.",
    ),
    spec(
        "cart.abandoned",
        Numeric,
        Profile,
        "1 once `cart_abandoned` fired for the cart's current contents, else 0.",
    ),
    spec(
        "journey.stage",
        Categorical,
        Profile,
        "The journey stage, e.g. `JOURNEY_STAGE_PURCHASE`. Absent while unknown.",
    ),
    spec(
        "journey.days_in_stage",
        Numeric,
        Profile,
        "Days since the customer entered the current stage, >= 0. Absent while the stage is \
         unknown.",
    ),
    spec(
        "sentiment.ewma",
        Numeric,
        Profile,
        "Moving average of text sentiment, -1 to 1. Absent before any scored text.",
    ),
    spec(
        "sentiment.last",
        Numeric,
        Profile,
        "Sentiment of the latest text, -1 to 1. Absent before any scored text.",
    ),
    spec(
        "sentiment.samples",
        Numeric,
        Profile,
        "Number of texts scored.",
    ),
    spec(
        "experience.peak_end",
        Numeric,
        Profile,
        "Peak-end experience score (peak + end) / 2, -1 to 1. Absent before any experience.",
    ),
    spec(
        "experience.peak",
        Numeric,
        Profile,
        "The most intense experience within the look-back, -1 to 1. Absent before any \
         experience.",
    ),
    spec(
        "experience.end",
        Numeric,
        Profile,
        "The latest experience, -1 to 1. Absent before any experience.",
    ),
    spec(
        "experience.samples",
        Numeric,
        Profile,
        "Number of experiences counted.",
    ),
    spec(
        "survey.nps.score",
        Numeric,
        Profile,
        "Latest NPS answer, 0-10. Absent if never answered.",
    ),
    spec(
        "survey.nps.days_since",
        Numeric,
        Profile,
        "Days since the latest NPS answer, >= 0. Absent if never answered.",
    ),
    spec(
        "survey.csat.score",
        Numeric,
        Profile,
        "Latest CSAT answer, 1-5. Absent if never answered.",
    ),
    spec(
        "survey.csat.days_since",
        Numeric,
        Profile,
        "Days since the latest CSAT answer, >= 0. Absent if never answered.",
    ),
    spec(
        "survey.ces.score",
        Numeric,
        Profile,
        "Latest CES answer, 1-7 (lower is less effort). Absent if never answered.",
    ),
    spec(
        "survey.ces.days_since",
        Numeric,
        Profile,
        "Days since the latest CES answer, >= 0. Absent if never answered.",
    ),
    spec(
        "contacts.7d",
        Numeric,
        Profile,
        "Committed contacts on every channel within the last 7 days (from the kept history: \
         the newest 50 per channel by default).",
    ),
    spec(
        "contacts.30d",
        Numeric,
        Profile,
        "Committed contacts on every channel within the last 30 days (from the kept history).",
    ),
    spec(
        "contacts.total",
        Numeric,
        Profile,
        "Committed contacts since the profile began, every channel.",
    ),
    spec(
        "contacts.days_since_last",
        Numeric,
        Profile,
        "Days since the latest contact on any channel, >= 0. Absent before any contact.",
    ),
    spec(
        "dismissals.total",
        Numeric,
        Profile,
        "Dismissals of actions since the profile began, every channel.",
    ),
    spec(
        "dismissals.7d",
        Numeric,
        Profile,
        "Dismissals within the last 7 days (the 16 most recent are kept per action).",
    ),
    spec(
        "dismissals.30d",
        Numeric,
        Profile,
        "Dismissals within the last 30 days (the 16 most recent are kept per action).",
    ),
    spec(
        "clv.frequency",
        Numeric,
        Profile,
        "BG/NBD frequency: repeat purchases (purchases - 1). Absent before any purchase.",
    ),
    spec(
        "clv.recency_days",
        Numeric,
        Profile,
        "BG/NBD recency: days from the first to the latest purchase. Absent before any \
         purchase.",
    ),
    spec(
        "clv.t_days",
        Numeric,
        Profile,
        "BG/NBD age T: days from the first purchase to now, >= clv.recency_days. Absent before \
         any purchase.",
    ),
    spec(
        "clv.monetary",
        Numeric,
        Profile,
        "Gamma-Gamma spend: mean value of the priced purchases, in major units. Absent before \
         a priced purchase.",
    ),
];

pub(super) const FIXED_CONTEXT: &[FeatureSpec] = &[
    spec(
        "ctx.channel",
        Categorical,
        Context,
        "The requesting touchpoint's channel, e.g. `CHANNEL_WEB`. Absent when unspecified.",
    ),
    spec(
        "ctx.touchpoint",
        Categorical,
        Context,
        "The requesting touchpoint (first 128 characters). Absent when empty.",
    ),
    spec(
        "ctx.{key}",
        ByValue,
        Context,
        "A request context property: numbers as given, booleans as 1/0 (numeric), strings \
         categorical (first 128 characters). The keys `channel` and `touchpoint` are taken by \
         the features above; non-finite numbers are absent.",
    ),
];
