//! Deterministic event generation: batch `i` of a seed is always the same events (timestamps
//! aside), and every generated event is valid for the ingest service.

use std::time::SystemTime;

use iee_api::pb::common::{
    Channel, Event, Money, PropertyValue, SurveyAnswer, SurveyKind, property_value::Kind,
};
use prost_types::Timestamp;
use rand::{Rng, SeedableRng, rngs::SmallRng};

use crate::scenario::Scenario;

/// Currency of every generated amount.
const CURRENCY: &str = "EUR";
/// Distinct products referenced by commerce events.
const PRODUCTS: u32 = 5000;

/// A documented event type the generator knows how to fill in realistically.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Builtin {
    PageView,
    ProductView,
    Search,
    AddToCart,
    RemoveFromCart,
    Checkout,
    Purchase,
    Refund,
    AppOpen,
    AppClose,
    EmailOpen,
    EmailClick,
    SmsClick,
    PushOpen,
    Click,
    Impression,
    ChatMessage,
    Call,
    SupportTicket,
    SupportResolved,
    SurveyResponse,
    Review,
    Login,
    Signup,
    SubscriptionStart,
    SubscriptionCancel,
    ProductUsage,
    SocialMention,
    CommunityPost,
}

// `identify`, `decision_outcome` and `consent_change` are left out on purpose: they are
// produced by other RPCs or carry type-specific fields the generator has no model of.
const BUILTINS: [(&str, Builtin); 29] = [
    ("page_view", Builtin::PageView),
    ("product_view", Builtin::ProductView),
    ("search", Builtin::Search),
    ("add_to_cart", Builtin::AddToCart),
    ("remove_from_cart", Builtin::RemoveFromCart),
    ("checkout", Builtin::Checkout),
    ("purchase", Builtin::Purchase),
    ("refund", Builtin::Refund),
    ("app_open", Builtin::AppOpen),
    ("app_close", Builtin::AppClose),
    ("email_open", Builtin::EmailOpen),
    ("email_click", Builtin::EmailClick),
    ("sms_click", Builtin::SmsClick),
    ("push_open", Builtin::PushOpen),
    ("click", Builtin::Click),
    ("impression", Builtin::Impression),
    ("chat_message", Builtin::ChatMessage),
    ("call", Builtin::Call),
    ("support_ticket", Builtin::SupportTicket),
    ("support_resolved", Builtin::SupportResolved),
    ("survey_response", Builtin::SurveyResponse),
    ("review", Builtin::Review),
    ("login", Builtin::Login),
    ("signup", Builtin::Signup),
    ("subscription_start", Builtin::SubscriptionStart),
    ("subscription_cancel", Builtin::SubscriptionCancel),
    ("product_usage", Builtin::ProductUsage),
    ("social_mention", Builtin::SocialMention),
    ("community_post", Builtin::CommunityPost),
];

/// The mix used when a scenario gives none: mostly browsing, some commerce, a little of the
/// rest, roughly what a retail site with an app and a newsletter sees.
const DEFAULT_MIX: [(Builtin, u32); 20] = [
    (Builtin::PageView, 350),
    (Builtin::ProductView, 180),
    (Builtin::Search, 80),
    (Builtin::AddToCart, 80),
    (Builtin::RemoveFromCart, 15),
    (Builtin::Checkout, 30),
    (Builtin::Purchase, 25),
    (Builtin::Refund, 3),
    (Builtin::AppOpen, 50),
    (Builtin::AppClose, 30),
    (Builtin::EmailOpen, 40),
    (Builtin::EmailClick, 20),
    (Builtin::PushOpen, 10),
    (Builtin::Click, 40),
    (Builtin::Impression, 20),
    (Builtin::ChatMessage, 8),
    (Builtin::SupportTicket, 4),
    (Builtin::SurveyResponse, 7),
    (Builtin::Review, 3),
    (Builtin::Login, 5),
];

/// An event type a scenario can ask for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventKind {
    /// One of the documented types.
    Builtin(Builtin),
    /// A tenant-defined `custom.<name>` type (the full name).
    Custom(String),
}

impl EventKind {
    /// The kind for a type name, if the generator supports it.
    pub fn from_name(name: &str) -> Option<Self> {
        if let Some((_, b)) = BUILTINS.iter().find(|(n, _)| *n == name) {
            return Some(Self::Builtin(*b));
        }
        let custom = name.strip_prefix("custom.")?;
        let ok_char = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || "_.-".contains(c);
        (!custom.is_empty() && custom.len() <= 64 && custom.chars().all(ok_char))
            .then(|| Self::Custom(name.to_owned()))
    }

    /// Names of the documented types the generator supports.
    pub fn builtin_names() -> Vec<&'static str> {
        BUILTINS.iter().map(|(n, _)| *n).collect()
    }

    /// The event's `type` field.
    pub fn name(&self) -> &str {
        match self {
            Self::Builtin(b) => builtin_name(*b),
            Self::Custom(name) => name,
        }
    }
}

fn builtin_name(b: Builtin) -> &'static str {
    BUILTINS
        .iter()
        .find(|(_, k)| *k == b)
        .map(|(n, _)| *n)
        .expect("every Builtin variant has an entry in BUILTINS")
}

/// Makes the events of a scenario, batch by batch.
#[derive(Debug, Clone)]
pub struct Generator {
    seed: u64,
    batch_size: u64,
    tenants: Vec<String>,
    customers: u64,
    /// Cumulative weight (exclusive end) and kind, in a fixed order.
    table: Vec<(u64, EventKind)>,
    total_weight: u64,
}

impl Generator {
    /// A generator for a validated scenario.
    pub fn new(scenario: &Scenario) -> Self {
        let mix: Vec<(EventKind, u32)> = if scenario.event_mix.is_empty() {
            DEFAULT_MIX
                .iter()
                .map(|(b, w)| (EventKind::Builtin(*b), *w))
                .collect()
        } else {
            // BTreeMap order keeps the table, and so the events, independent of file order.
            scenario
                .event_mix
                .iter()
                .filter_map(|(name, w)| EventKind::from_name(name).map(|k| (k, *w)))
                .collect()
        };
        let mut table = Vec::with_capacity(mix.len());
        let mut total_weight = 0u64;
        for (kind, weight) in mix {
            if weight > 0 {
                total_weight += u64::from(weight);
                table.push((total_weight, kind));
            }
        }
        assert!(
            total_weight > 0,
            "scenario validation guarantees a positive event_mix weight"
        );
        Self {
            seed: scenario.seed,
            batch_size: u64::from(scenario.batch_size),
            tenants: scenario.tenants.clone(),
            customers: scenario.customers,
            table,
            total_weight,
        }
    }

    /// The events of batch `index`, stamped `now`. Event `j` of batch `i` is event number
    /// `i * batch_size + j` of the run, with id `lt-<seed>-<number>`.
    pub fn batch(&self, index: u64, now: SystemTime) -> Vec<Event> {
        let occurred_at = Timestamp::from(now);
        // One generator per batch makes a batch's content independent of which task or stream
        // produces it, and of the order batches are produced in.
        let mut rng =
            SmallRng::seed_from_u64(self.seed ^ index.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let first = index * self.batch_size;
        (first..first + self.batch_size)
            .map(|n| self.event(&mut rng, n, occurred_at))
            .collect()
    }

    fn event(&self, rng: &mut SmallRng, n: u64, occurred_at: Timestamp) -> Event {
        let tenant = &self.tenants[rng.random_range(0..self.tenants.len())];
        let pick = rng.random_range(0..self.total_weight);
        let kind = &self.table[self.table.partition_point(|(end, _)| *end <= pick)].1;
        let person = rng.random_range(0..self.customers);
        let mut event = Event {
            event_id: format!("lt-{}-{n}", self.seed),
            tenant_id: tenant.clone(),
            customer_id: format!("c-{person}"),
            r#type: kind.name().to_owned(),
            occurred_at: Some(occurred_at),
            ..Event::default()
        };
        match kind {
            EventKind::Builtin(b) => fill(&mut event, *b, rng, n),
            EventKind::Custom(_) => {
                set(&mut event, Channel::Web, "custom");
                prop(&mut event, "source", text("loadtest"));
            }
        }
        event
    }
}

fn fill(e: &mut Event, kind: Builtin, rng: &mut SmallRng, n: u64) {
    let product = format!("p-{}", rng.random_range(0..PRODUCTS));
    let price_minor = rng.random_range(199..=19_999i64);
    match kind {
        Builtin::PageView => {
            set(e, Channel::Web, "web-page");
            prop(e, "path", text(format!("/products/{product}")));
            let referrers = ["direct", "search", "email", "social"];
            prop(e, "referrer", text(*pick(rng, &referrers)));
            maybe_anonymous(e, rng);
        }
        Builtin::ProductView => {
            set(e, *pick(rng, &[Channel::Web, Channel::App]), "product-page");
            prop(e, "product_id", text(product));
            prop(e, "price", number(price_minor as f64 / 100.0));
            maybe_anonymous(e, rng);
        }
        Builtin::Search => {
            set(e, *pick(rng, &[Channel::Web, Channel::App]), "search-box");
            let queries = [
                "running shoes",
                "rain jacket",
                "gift card",
                "backpack",
                "socks",
            ];
            prop(e, "query", text(*pick(rng, &queries)));
            prop(e, "results", number(f64::from(rng.random_range(0..50u32))));
            maybe_anonymous(e, rng);
        }
        Builtin::AddToCart | Builtin::RemoveFromCart => {
            set(e, *pick(rng, &[Channel::Web, Channel::App]), "product-page");
            let quantity = rng.random_range(1..=3i64);
            prop(e, "product_id", text(product));
            prop(e, "quantity", number(quantity as f64));
            e.value = Some(eur(price_minor * quantity));
        }
        Builtin::Checkout => {
            set(
                e,
                *pick(rng, &[Channel::Web, Channel::App]),
                "checkout-page",
            );
            prop(e, "items", number(f64::from(rng.random_range(1..=6u32))));
            e.value = Some(eur(rng.random_range(500..=50_000)));
        }
        Builtin::Purchase => {
            let channel = *pick(rng, &[Channel::Web, Channel::App, Channel::Store]);
            let touchpoint = if channel == Channel::Store {
                "pos"
            } else {
                "checkout-page"
            };
            set(e, channel, touchpoint);
            prop(e, "order_id", text(format!("o-{n}")));
            prop(e, "items", number(f64::from(rng.random_range(1..=6u32))));
            e.value = Some(eur(rng.random_range(500..=50_000)));
        }
        Builtin::Refund => {
            set(
                e,
                *pick(rng, &[Channel::Store, Channel::Support, Channel::Web]),
                "returns",
            );
            prop(e, "order_id", text(format!("o-{}", n / 2)));
            e.value = Some(eur(-price_minor));
        }
        Builtin::AppOpen | Builtin::AppClose => {
            set(e, Channel::App, "app");
            prop(
                e,
                "app_version",
                text(*pick(rng, &["3.2.1", "3.3.0", "4.0.0"])),
            );
            prop(e, "os", text(*pick(rng, &["ios", "android"])));
        }
        Builtin::EmailOpen | Builtin::EmailClick | Builtin::SmsClick | Builtin::PushOpen => {
            let (channel, touchpoint) = match kind {
                Builtin::SmsClick => (Channel::Sms, "sms-offer"),
                Builtin::PushOpen => (Channel::Push, "push-offer"),
                _ => (Channel::Email, "newsletter"),
            };
            set(e, channel, touchpoint);
            prop(
                e,
                "campaign_id",
                text(format!("cmp-{}", rng.random_range(0..20u32))),
            );
        }
        Builtin::Click => {
            set(e, Channel::Web, "home-page");
            prop(
                e,
                "element",
                text(format!("banner-{}", rng.random_range(0..8u32))),
            );
        }
        Builtin::Impression => {
            set(e, Channel::Web, "home-page");
            prop(
                e,
                "placement",
                text(*pick(rng, &["hero", "sidebar", "footer"])),
            );
            prop(
                e,
                "offer_id",
                text(format!("offer-{}", rng.random_range(0..30u32))),
            );
            maybe_anonymous(e, rng);
        }
        Builtin::ChatMessage => {
            set(e, Channel::Chat, "web-chat");
            let lines = [
                "Where is my order?",
                "Do you have this in a larger size?",
                "Thanks, that solved it!",
                "The app keeps logging me out, this is frustrating.",
            ];
            e.text = Some((*pick(rng, &lines)).to_owned());
        }
        Builtin::Call => {
            set(e, Channel::Phone, "contact-centre");
            prop(
                e,
                "duration_secs",
                number(f64::from(rng.random_range(30..=900u32))),
            );
            prop(
                e,
                "reason",
                text(*pick(rng, &["delivery", "billing", "returns"])),
            );
        }
        Builtin::SupportTicket => {
            set(e, Channel::Support, "help-desk");
            prop(e, "ticket_id", text(format!("t-{n}")));
            prop(e, "priority", text(*pick(rng, &["low", "normal", "high"])));
            e.text = Some("My parcel arrived damaged, please help.".to_owned());
        }
        Builtin::SupportResolved => {
            set(e, Channel::Support, "help-desk");
            prop(e, "ticket_id", text(format!("t-{}", n / 2)));
            prop(
                e,
                "resolution_hours",
                number(f64::from(rng.random_range(1..=72u32))),
            );
        }
        Builtin::SurveyResponse => {
            set(
                e,
                *pick(rng, &[Channel::Email, Channel::Web, Channel::App]),
                "survey",
            );
            e.survey = Some(if rng.random_bool(0.8) {
                SurveyAnswer {
                    kind: SurveyKind::Nps as i32,
                    score: rng.random_range(0..=10),
                    survey_id: "nps-relationship".to_owned(),
                }
            } else {
                SurveyAnswer {
                    kind: SurveyKind::Csat as i32,
                    score: rng.random_range(1..=5),
                    survey_id: "csat-delivery".to_owned(),
                }
            });
        }
        Builtin::Review => {
            set(e, Channel::Web, "product-page");
            prop(e, "product_id", text(product));
            prop(e, "rating", number(f64::from(rng.random_range(1..=5u32))));
            let lines = [
                "Great quality, fast delivery.",
                "Runs small.",
                "Broke after a week.",
            ];
            e.text = Some((*pick(rng, &lines)).to_owned());
        }
        Builtin::Login | Builtin::Signup => {
            set(e, *pick(rng, &[Channel::Web, Channel::App]), "account");
            prop(
                e,
                "method",
                text(*pick(rng, &["password", "sso", "magic_link"])),
            );
        }
        Builtin::SubscriptionStart | Builtin::SubscriptionCancel => {
            set(e, Channel::Web, "account");
            prop(e, "plan", text(*pick(rng, &["basic", "plus"])));
            if kind == Builtin::SubscriptionStart {
                e.value = Some(eur(rng.random_range(499..=1999)));
            }
        }
        Builtin::ProductUsage => {
            set(e, Channel::Product, "app");
            prop(
                e,
                "feature",
                text(*pick(rng, &["wishlist", "size_guide", "tracking"])),
            );
            prop(
                e,
                "duration_secs",
                number(f64::from(rng.random_range(5..=600u32))),
            );
        }
        Builtin::SocialMention => {
            set(e, Channel::Social, "social");
            prop(e, "network", text(*pick(rng, &["mastodon", "instagram"])));
            e.text = Some("Loving my new jacket!".to_owned());
        }
        Builtin::CommunityPost => {
            set(e, Channel::Community, "forum");
            prop(e, "topic", text(*pick(rng, &["sizing", "care", "offers"])));
            e.text = Some("Any tips for washing the rain jacket?".to_owned());
        }
    }
}

fn set(e: &mut Event, channel: Channel, touchpoint: &str) {
    e.channel = channel as i32;
    e.touchpoint = touchpoint.to_owned();
}

/// One browsing event in five comes from a visitor who has not signed in.
fn maybe_anonymous(e: &mut Event, rng: &mut SmallRng) {
    if rng.random_bool(0.2) {
        e.anonymous_id = e.customer_id.replacen("c-", "anon-", 1);
        e.customer_id.clear();
    }
}

fn pick<'a, T>(rng: &mut SmallRng, items: &'a [T]) -> &'a T {
    &items[rng.random_range(0..items.len())]
}

fn prop(e: &mut Event, key: &str, value: PropertyValue) {
    e.properties.insert(key.to_owned(), value);
}

fn text(s: impl Into<String>) -> PropertyValue {
    PropertyValue {
        kind: Some(Kind::StringValue(s.into())),
    }
}

fn number(v: f64) -> PropertyValue {
    PropertyValue {
        kind: Some(Kind::NumberValue(v)),
    }
}

fn eur(amount_minor: i64) -> Money {
    Money {
        amount_minor,
        currency: CURRENCY.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;
    use std::time::Duration;

    fn scenario(mix: &str) -> Scenario {
        Scenario::from_toml(&format!(
            r#"
            name = "gen"
            description = "generator test"
            seed = 42
            rpc = "unary"
            batch_size = 50
            rate = 10.0
            duration_secs = 1
            max_requests = 10
            max_in_flight = 1
            tenants = ["acme", "globex"]
            customers = 1000
            {mix}
            "#
        ))
        .unwrap()
    }

    /// The checks the ingest service applies that a generator can get wrong.
    fn assert_valid(e: &Event) {
        let id = &e.event_id;
        assert!(!id.is_empty() && id.len() <= 128 && id.is_ascii(), "{id}");
        assert!(!e.tenant_id.is_empty(), "{id}: tenant");
        assert!(
            !e.customer_id.is_empty() || !e.anonymous_id.is_empty(),
            "{id}: customer or anonymous id"
        );
        assert!(
            EventKind::from_name(&e.r#type).is_some(),
            "{id}: type {}",
            e.r#type
        );
        let channel = Channel::try_from(e.channel).unwrap();
        assert_ne!(channel, Channel::Unspecified, "{id}: channel");
        assert!(e.touchpoint.len() <= 128, "{id}: touchpoint");
        assert!(e.occurred_at.is_some(), "{id}: occurred_at");
        assert!(e.properties.len() <= 64, "{id}: properties");
        for (key, value) in &e.properties {
            assert!(!key.is_empty() && key.len() <= 64, "{id}: key {key}");
            match value.kind.as_ref().unwrap() {
                Kind::NumberValue(v) => assert!(v.is_finite(), "{id}: {key}"),
                Kind::StringValue(_) | Kind::BoolValue(_) => {}
            }
        }
        if let Some(money) = &e.value {
            let c = &money.currency;
            assert!(
                c.len() == 3 && c.chars().all(|ch| ch.is_ascii_uppercase()),
                "{id}: {c}"
            );
        }
        if let Some(text) = &e.text {
            assert!(!text.is_empty(), "{id}: text");
        }
        if let Some(s) = &e.survey {
            let range = match SurveyKind::try_from(s.kind).unwrap() {
                SurveyKind::Nps => 0..=10,
                SurveyKind::Csat => 1..=5,
                SurveyKind::Ces => 1..=7,
                SurveyKind::Unspecified => panic!("{id}: survey kind unspecified"),
            };
            assert!(range.contains(&s.score), "{id}: score {}", s.score);
        }
        if e.r#type == "survey_response" {
            assert!(e.survey.is_some(), "{id}: survey_response without survey");
        }
        if e.r#type == "purchase" {
            assert!(e.value.as_ref().is_some_and(|m| m.amount_minor > 0));
        }
    }

    #[test]
    fn same_seed_gives_same_events() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let a = Generator::new(&scenario(""));
        let b = Generator::new(&scenario(""));
        for i in [0, 1, 7, 1000] {
            assert_eq!(a.batch(i, now), b.batch(i, now));
        }
        // Order of production does not matter.
        let forward: Vec<_> = (0..5).map(|i| a.batch(i, now)).collect();
        let backward: Vec<_> = (0..5).rev().map(|i| b.batch(i, now)).collect();
        assert!(forward.iter().eq(backward.iter().rev()));
    }

    #[test]
    fn different_seeds_give_different_events() {
        let now = SystemTime::now();
        let a = Generator::new(&scenario(""));
        let mut other = scenario("");
        other.seed = 43;
        let b = Generator::new(&other);
        let strip = |mut e: Event| {
            e.event_id.clear();
            e
        };
        let ea: Vec<_> = a.batch(0, now).into_iter().map(strip).collect();
        let eb: Vec<_> = b.batch(0, now).into_iter().map(strip).collect();
        assert_ne!(ea, eb);
    }

    #[test]
    fn event_ids_are_unique_and_numbered() {
        let g = Generator::new(&scenario(""));
        let now = SystemTime::now();
        let mut ids = HashSet::new();
        for i in 0..40 {
            for e in g.batch(i, now) {
                assert!(ids.insert(e.event_id.clone()), "repeated {}", e.event_id);
            }
        }
        assert_eq!(ids.len(), 40 * 50);
        assert_eq!(g.batch(2, now)[3].event_id, "lt-42-103");
    }

    #[test]
    fn default_mix_events_are_valid() {
        let g = Generator::new(&scenario(""));
        let now = SystemTime::now();
        let mut types = HashSet::new();
        for i in 0..100 {
            for e in g.batch(i, now) {
                assert_valid(&e);
                assert!(["acme", "globex"].contains(&e.tenant_id.as_str()));
                types.insert(e.r#type.clone());
            }
        }
        assert!(types.len() >= 15, "the default mix is varied: {types:?}");
    }

    #[test]
    fn every_supported_type_generates_valid_events() {
        let mut mix = String::from("[event_mix]\n");
        for name in EventKind::builtin_names() {
            mix.push_str(&format!("{name} = 1\n"));
        }
        mix.push_str("\"custom.quiz_done\" = 1\n");
        let g = Generator::new(&scenario(&mix));
        let now = SystemTime::now();
        let mut types = HashSet::new();
        for i in 0..100 {
            for e in g.batch(i, now) {
                assert_valid(&e);
                types.insert(e.r#type.clone());
            }
        }
        assert_eq!(types.len(), EventKind::builtin_names().len() + 1);
    }

    #[test]
    fn mix_weights_are_respected() {
        let g = Generator::new(&scenario("[event_mix]\npurchase = 1\npage_view = 0\n"));
        let events = g.batch(0, SystemTime::now());
        assert!(events.iter().all(|e| e.r#type == "purchase"));
        assert!(
            events
                .iter()
                .all(|e| e.value.as_ref().unwrap().currency == "EUR")
        );
    }
}
