//! Profile features: the catalogue's profile entries evaluated at a given `now`. Counts are 0
//! when nothing was counted; a figure that is undefined without data (a recency without a
//! purchase, a rate without an ended session) is left out, and models impute it.

use std::time::{SystemTime, UNIX_EPOCH};

use iee_api::pb::{
    common::{Channel, JourneyStage, Money},
    predict::FeatureVector,
    profile::{
        Cart, ConsentStatus, DecayedCounter, ExperienceScore, Profile, Rfm, Sessions, SurveyRecord,
    },
};
use prost_types::Timestamp;

use super::catalogue::{
    ALL_TYPES, CHANNELS, CONSENT_PURPOSES, CUSTOM_TYPES, EVENT_TYPES, HALF_LIVES, activity_name,
    channel_name, consent_name,
};

const DAY_MS: f64 = 86_400_000.0;
const MINUTE_MS: f64 = 60_000.0;
/// Half-lives of the profile's decayed counters, in days, in the order of [`HALF_LIVES`].
const HALF_LIFE_DAYS: [f64; 3] = [1.0, 7.0, 30.0];

/// Builds the profile features of `profile` as of `now` (see the catalogue for each name).
pub fn from_profile(profile: &Profile, now: SystemTime) -> FeatureVector {
    let mut f = Features {
        out: FeatureVector::default(),
        now_ms: system_ms(now),
    };
    f.num(
        "identity.known",
        bool_num(
            profile
                .customer
                .as_ref()
                .is_some_and(|c| !c.customer_id.is_empty()),
        ),
    );
    f.days_since(
        "recency.days_since_last_seen",
        profile.last_seen_at.as_ref(),
    );
    f.days_since("tenure.days", profile.first_seen_at.as_ref());
    rfm(&mut f, profile);
    activity(&mut f, profile);
    sessions(&mut f, profile);
    cart(&mut f, profile);
    journey(&mut f, profile);
    experience(&mut f, profile);
    surveys(&mut f, profile);
    contacts(&mut f, profile);
    consent(&mut f, profile);
    f.out
}

/// The vector being built, and the time everything is evaluated at.
struct Features {
    out: FeatureVector,
    now_ms: i64,
}

impl Features {
    /// Sets a numeric feature; a non-finite value is left out.
    fn num(&mut self, name: impl Into<String>, value: f64) {
        if value.is_finite() {
            self.out.numeric.insert(name.into(), value);
        }
    }

    fn num_opt(&mut self, name: &str, value: Option<f64>) {
        if let Some(v) = value {
            self.num(name, v);
        }
    }

    fn cat(&mut self, name: &str, value: &str) {
        self.out
            .categorical
            .insert(name.to_owned(), value.to_owned());
    }

    /// Days from `at` to now, never negative (a clock ahead of ours reads as 0).
    fn days_since_ms(&self, at_ms: i64) -> f64 {
        (self.now_ms.saturating_sub(at_ms) as f64 / DAY_MS).max(0.0)
    }

    fn days_since(&mut self, name: &str, at: Option<&Timestamp>) {
        if let Some(at) = at {
            let days = self.days_since_ms(ts_ms(at));
            self.num(name, days);
        }
    }
}

fn rfm(f: &mut Features, profile: &Profile) {
    let none = Rfm::default();
    let rfm = profile.rfm.as_ref().unwrap_or(&none);
    f.num("frequency.purchases", rfm.purchase_count as f64);
    f.num("frequency.refunds", rfm.refund_count as f64);
    f.days_since(
        "recency.days_since_last_purchase",
        rfm.last_purchase_at.as_ref(),
    );

    let currency = &profile.reporting_currency;
    let money_seen =
        rfm.net_revenue.is_some() || rfm.gross_revenue.is_some() || rfm.refunded.is_some();
    if money_seen {
        let major = |m: Option<&Money>| m.map_or(0.0, |m| major_units(m, currency));
        f.num("monetary.net_revenue", major(rfm.net_revenue.as_ref()));
        f.num("monetary.gross_revenue", major(rfm.gross_revenue.as_ref()));
        f.num("monetary.refunded", major(rfm.refunded.as_ref()));
    }
    let aov = (rfm.priced_purchase_count > 0)
        .then(|| {
            rfm.average_order_value
                .as_ref()
                .map(|m| major_units(m, currency))
        })
        .flatten();
    f.num_opt("monetary.aov", aov);

    // BG/NBD and Gamma-Gamma inputs, in days from the first purchase.
    if rfm.purchase_count > 0
        && let (Some(first), Some(last)) = (&rfm.first_purchase_at, &rfm.last_purchase_at)
    {
        let (first, last) = (ts_ms(first), ts_ms(last));
        let recency = (last.saturating_sub(first) as f64 / DAY_MS).max(0.0);
        f.num("clv.frequency", (rfm.purchase_count - 1) as f64);
        f.num("clv.recency_days", recency);
        f.num("clv.t_days", f.days_since_ms(first).max(recency));
        if rfm.priced_purchase_count > 0
            && let Some(gross) = &rfm.gross_revenue
        {
            f.num(
                "clv.monetary",
                major_units(gross, currency) / rfm.priced_purchase_count as f64,
            );
        }
    }
}

/// Decayed counters per type (documented types, the custom bucket, all) and per channel.
fn activity(f: &mut Features, profile: &Profile) {
    let mut by_bucket: Vec<(&str, [f64; 3])> = EVENT_TYPES
        .iter()
        .chain(&[CUSTOM_TYPES, ALL_TYPES])
        .map(|&bucket| (bucket, [0.0; 3]))
        .collect();
    let mut total: u64 = 0;
    // In name order, so the float sums (and a replayed decision) come out bit for bit the same.
    let mut counters: Vec<_> = profile.event_type_counters.iter().collect();
    counters.sort_unstable_by_key(|(event_type, _)| event_type.as_str());
    for (event_type, counter) in counters {
        let values = decayed(counter, f.now_ms);
        total = total.saturating_add(counter.total);
        let bucket = if EVENT_TYPES.contains(&event_type.as_str()) {
            event_type.as_str()
        } else {
            CUSTOM_TYPES
        };
        for (name, sums) in &mut by_bucket {
            if *name == bucket || *name == ALL_TYPES {
                for (sum, v) in sums.iter_mut().zip(values) {
                    *sum += v;
                }
            }
        }
    }
    f.num("activity.total", total as f64);
    for (bucket, sums) in by_bucket {
        for (half_life, value) in HALF_LIVES.iter().zip(sums) {
            f.num(activity_name(half_life, bucket), value);
        }
    }

    for channel in CHANNELS {
        let values = profile
            .channel_counters
            .iter()
            .filter(|c| c.channel == channel as i32)
            .filter_map(|c| c.counter.as_ref())
            .map(|c| decayed(c, f.now_ms))
            .fold([0.0; 3], |acc, v| {
                [acc[0] + v[0], acc[1] + v[1], acc[2] + v[2]]
            });
        for (half_life, value) in HALF_LIVES.iter().zip(values) {
            f.num(channel_name(half_life, channel), value);
        }
    }
}

/// A counter's decayed values read at `now_ms`: `v · 2^(−(now − as_of)/h)`. A counter ahead of
/// `now` (clock skew) is read as is rather than grown.
fn decayed(counter: &DecayedCounter, now_ms: i64) -> [f64; 3] {
    let elapsed_days = counter.as_of.as_ref().map_or(0.0, |t| {
        (now_ms.saturating_sub(ts_ms(t)) as f64 / DAY_MS).max(0.0)
    });
    let stored = [
        counter.half_life_1d,
        counter.half_life_7d,
        counter.half_life_30d,
    ];
    let mut out = [0.0; 3];
    for ((o, v), h) in out.iter_mut().zip(stored).zip(HALF_LIFE_DAYS) {
        *o = v * (-elapsed_days / h).exp2();
    }
    out
}

fn sessions(f: &mut Features, profile: &Profile) {
    let none = Sessions::default();
    let s = profile.sessions.as_ref().unwrap_or(&none);
    f.num("sessions.count", s.count as f64);
    f.num("sessions.ended", s.ended_count as f64);
    if s.ended_count > 0 {
        let ended = s.ended_count as f64;
        f.num("sessions.engaged_rate", s.engaged_count as f64 / ended);
        f.num("sessions.bounce_rate", s.bounce_count as f64 / ended);
        f.num("sessions.avg_events", s.average_events);
        let secs = s
            .average_duration
            .as_ref()
            .map_or(0.0, |d| d.seconds as f64 + f64::from(d.nanos) / 1e9);
        f.num("sessions.avg_duration_secs", secs);
    }
    let current = s.current.as_ref().map_or(0, |c| c.event_count);
    f.num("sessions.current_events", f64::from(current));
}

fn cart(f: &mut Features, profile: &Profile) {
    let none = Cart::default();
    let cart = profile.cart.as_ref().unwrap_or(&none);
    let units: u64 = cart.items.iter().map(|i| u64::from(i.quantity)).sum();
    f.num("cart.items", units as f64);
    f.num("cart.lines", cart.items.len() as f64);
    f.num("cart.abandoned", bool_num(cart.abandoned));
    match (&cart.value, cart.items.is_empty()) {
        (Some(value), _) => f.num(
            "cart.value",
            major_units(value, &profile.reporting_currency),
        ),
        (None, true) => f.num("cart.value", 0.0),
        (None, false) => {}
    }
    if !cart.items.is_empty()
        && let Some(changed) = &cart.last_changed_at
    {
        let minutes = (f.now_ms.saturating_sub(ts_ms(changed)) as f64 / MINUTE_MS).max(0.0);
        f.num("cart.minutes_since_change", minutes);
    }
}

fn journey(f: &mut Features, profile: &Profile) {
    let stage = JourneyStage::try_from(profile.journey_stage).unwrap_or_default();
    if stage != JourneyStage::Unspecified {
        f.cat("journey.stage", stage.as_str_name());
        f.days_since(
            "journey.days_in_stage",
            profile.journey_stage_since.as_ref(),
        );
    }
}

fn experience(f: &mut Features, profile: &Profile) {
    let sentiment = profile.sentiment.unwrap_or_default();
    f.num("sentiment.samples", sentiment.samples as f64);
    if sentiment.samples > 0 {
        f.num("sentiment.ewma", sentiment.ewma);
        f.num("sentiment.last", sentiment.last_score);
    }
    let none = ExperienceScore::default();
    let experience = profile.experience.as_ref().unwrap_or(&none);
    f.num("experience.samples", experience.samples as f64);
    if experience.samples > 0 {
        f.num("experience.peak_end", experience.score);
        f.num("experience.peak", experience.peak);
        f.num("experience.end", experience.end);
    }
}

fn surveys(f: &mut Features, profile: &Profile) {
    let Some(surveys) = &profile.surveys else {
        return;
    };
    let mut survey = |kind: &str, record: Option<&SurveyRecord>| {
        let Some(record) = record else { return };
        if let Some(answer) = &record.answer {
            f.num(format!("survey.{kind}.score"), f64::from(answer.score));
        }
        f.days_since(
            &format!("survey.{kind}.days_since"),
            record.answered_at.as_ref(),
        );
    };
    survey("nps", surveys.nps.as_ref());
    survey("csat", surveys.csat.as_ref());
    survey("ces", surveys.ces.as_ref());
}

fn contacts(f: &mut Features, profile: &Profile) {
    let window = |days: f64| f.now_ms - (days * DAY_MS) as i64;
    let (week, month) = (window(7.0), window(30.0));
    let mut in_window = [0u64; 2];
    let (mut total, mut dismissals) = (0u64, 0u64);
    let mut last: Option<i64> = None;
    for channel in &profile.contacts {
        total = total.saturating_add(channel.total);
        dismissals = dismissals.saturating_add(channel.dismissals);
        if let Some(at) = &channel.last_contact_at {
            last = last.max(Some(ts_ms(at)));
        }
        for contact in &channel.recent {
            let at = contact.contacted_at.as_ref().map_or(i64::MIN, ts_ms);
            in_window[0] += u64::from(at > week);
            in_window[1] += u64::from(at > month);
        }
    }
    f.num("contacts.7d", in_window[0] as f64);
    f.num("contacts.30d", in_window[1] as f64);
    f.num("contacts.total", total as f64);
    if let Some(last) = last {
        let days = f.days_since_ms(last);
        f.num("contacts.days_since_last", days);
    }

    let mut dismissed = [0u64; 2];
    let mut action_total = 0u64;
    for action in profile.action_dismissals.values() {
        action_total = action_total.saturating_add(action.count);
        for at in action.recent.iter().map(ts_ms) {
            dismissed[0] += u64::from(at > week);
            dismissed[1] += u64::from(at > month);
        }
    }
    // Channel tallies and per-action tallies count the same dismissals; take the larger in
    // case one side was capped or merged differently.
    f.num("dismissals.total", dismissals.max(action_total) as f64);
    f.num("dismissals.7d", dismissed[0] as f64);
    f.num("dismissals.30d", dismissed[1] as f64);
}

fn consent(f: &mut Features, profile: &Profile) {
    for purpose in CONSENT_PURPOSES {
        let status = profile
            .consent
            .get(purpose)
            .map(|c| ConsentStatus::try_from(c.status).unwrap_or_default());
        match status {
            Some(ConsentStatus::Granted) => f.num(consent_name(purpose), 1.0),
            Some(ConsentStatus::Denied) => f.num(consent_name(purpose), 0.0),
            Some(ConsentStatus::Unspecified) | None => {}
        }
    }
}

fn bool_num(b: bool) -> f64 {
    if b { 1.0 } else { 0.0 }
}

/// Unix milliseconds of a protobuf timestamp.
pub(crate) fn ts_ms(t: &Timestamp) -> i64 {
    t.seconds
        .saturating_mul(1000)
        .saturating_add(i64::from(t.nanos) / 1_000_000)
}

/// Unix milliseconds of a system time (negative before 1970).
pub(crate) fn system_ms(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_millis()).unwrap_or(i64::MAX),
        Err(e) => i64::try_from(e.duration().as_millis()).map_or(i64::MIN, |ms| -ms),
    }
}

/// An amount in major units (euros, not cents), by the ISO 4217 minor-unit exponent of its
/// currency, or of `fallback` when the money names none.
pub fn major_units(money: &Money, fallback: &str) -> f64 {
    let currency = if money.currency.is_empty() {
        fallback
    } else {
        &money.currency
    };
    money.amount_minor as f64 / 10f64.powi(minor_unit_exponent(currency))
}

/// Digits after the decimal point of a currency (ISO 4217); 2 unless listed.
fn minor_unit_exponent(currency: &str) -> i32 {
    match currency {
        "BIF" | "CLP" | "DJF" | "GNF" | "ISK" | "JPY" | "KMF" | "KRW" | "PYG" | "RWF" | "UGX"
        | "UYI" | "VND" | "VUV" | "XAF" | "XOF" | "XPF" => 0,
        "BHD" | "IQD" | "JOD" | "KWD" | "LYD" | "OMR" | "TND" => 3,
        "CLF" | "UYW" => 4,
        _ => 2,
    }
}

// The channel list is the proto's, minus unspecified; a new channel must be added there.
const _: () = assert!(CHANNELS.len() == Channel::Product as usize);
