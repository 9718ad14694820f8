use std::{
    collections::HashMap,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use iee_api::pb::{
    common::{Channel, CustomerRef, PropertyValue, property_value},
    decide::Direction,
    predict::FeatureVector,
    profile::{Identity, Profile, SignalKind},
};
use prost_types::value::Kind;

use super::*;

mod cel;
mod validation;

const RETAIL: &str = include_str!("../../../../examples/decide/retail.yaml");

const BASE: &str = "\
actions:
  - id: a
    channels: [web]
    direction: inbound
";

fn issues(yaml: &str) -> Vec<ConfigIssue> {
    match compile("acme", yaml) {
        Ok(_) => panic!("expected issues for:\n{yaml}"),
        Err(issues) => issues,
    }
}

/// The issue at `path` whose message contains `fragment`.
fn issue_at(yaml: &str, path: &str, fragment: &str) -> ConfigIssue {
    let all = issues(yaml);
    all.iter()
        .find(|i| i.path == path && i.message.contains(fragment))
        .cloned()
        .unwrap_or_else(|| panic!("no issue at {path} with '{fragment}' in {all:#?}"))
}

/// BASE plus more top-level YAML.
fn with(more: &str) -> String {
    format!("{BASE}{more}")
}

/// BASE with extra keys on its action.
fn action_with(keys: &str) -> String {
    format!("{BASE}{}", indent(keys, 4))
}

fn indent(text: &str, by: usize) -> String {
    text.lines()
        .map(|l| format!("{}{l}\n", " ".repeat(by)))
        .collect()
}

/// BASE plus an outbound e-mail action, which triggers need.
fn outbound_email() -> String {
    with("  - id: e\n    channels: [email]\n    direction: outbound\n")
}

fn ch(c: Channel) -> i32 {
    c as i32
}

// --- the example and the compiled shape ---------------------------------------------------------

#[test]
fn retail_example_compiles_with_expected_counts() {
    let config = compile("acme", RETAIL).unwrap_or_else(|e| panic!("{e:#?}"));
    assert_eq!(config.tenant_id, "acme");
    assert_eq!(config.actions.len(), 8);
    assert_eq!(config.context_weights.len(), 3);
    assert_eq!(config.contact_policies.len(), 8);
    assert_eq!(config.triggers.len(), 4);
    assert_eq!(config.version, version_of(RETAIL));
    assert_eq!(config.yaml, RETAIL);
    assert_eq!(
        config.needs,
        ScoreNeeds {
            churn: true,
            clv: true
        }
    );
    assert_eq!(config.exploration.mode, ExplorationMode::Thompson);
    assert_eq!(
        config.defaults.decision_retention,
        Duration::from_secs(14 * 86_400)
    );
    assert_eq!(config.holdouts.global_share, 0.05);
    let cart = config.trigger("cart-rescue").expect("trigger");
    assert_eq!(cart.signal, SignalKind::CartAbandoned as i32);
    assert_eq!(cart.channel, ch(Channel::Email));
    assert!(cart.when.is_some());
}

#[test]
fn retail_example_has_every_signal_named_in_the_brief() {
    let config = compile("acme", RETAIL).expect("compiles");
    for signal in [
        SignalKind::CartAbandoned,
        SignalKind::Inactive,
        SignalKind::Detractor,
        SignalKind::NegativeExperience,
    ] {
        assert!(
            config.triggers.iter().any(|t| t.signal == signal as i32),
            "{signal:?}"
        );
    }
}

#[test]
fn candidates_are_indexed_by_channel_and_direction_in_order() {
    let config = compile("acme", RETAIL).expect("compiles");
    let ids = |channel: Channel, direction: Direction| -> Vec<&str> {
        config
            .candidates(ch(channel), direction as i32)
            .iter()
            .map(|&i| config.actions[i].id.as_str())
            .collect()
    };
    assert_eq!(
        ids(Channel::Web, Direction::Inbound),
        [
            "cart-discount-10",
            "free-shipping",
            "loyalty-signup",
            "new-collection",
            "service-recovery-voucher"
        ]
    );
    assert_eq!(
        ids(Channel::Email, Direction::Inbound),
        ["service-recovery-voucher"]
    );
    assert_eq!(
        ids(Channel::Email, Direction::Outbound),
        ["cart-reminder-email", "detractor-callback-email"]
    );
    assert!(ids(Channel::Sms, Direction::Inbound).is_empty());
    assert!(ids(Channel::Store, Direction::Outbound).is_empty());
    let winback = config.action("winback-sms").expect("action");
    assert_eq!(winback.path, "actions[6]");
    assert!(config.action("nope").is_none());
}

#[test]
fn policies_for_follow_channels_and_groups() {
    let config = compile("acme", RETAIL).expect("compiles");
    let names = |id: &str, channel: Channel| -> Vec<String> {
        let action = config.action(id).expect("action");
        config
            .policies_for(action, ch(channel))
            .map(|p| p.name.clone())
            .collect()
    };
    assert_eq!(
        names("cart-reminder-email", Channel::Email),
        [
            "email-weekly",
            "one-offer-a-day",
            "dismissed-twice",
            "marketing-email"
        ]
    );
    // The service group is not marketing: no consent policy.
    assert_eq!(
        names("detractor-callback-email", Channel::Email),
        ["email-weekly", "one-offer-a-day", "dismissed-twice"]
    );
    assert_eq!(
        names("winback-sms", Channel::Sms),
        [
            "sms-monthly",
            "one-offer-a-day",
            "dismissed-twice",
            "night",
            "marketing-sms"
        ]
    );
    let night = config
        .contact_policies
        .iter()
        .find(|p| p.name == "night")
        .expect("night");
    assert_eq!(
        night.kind,
        PolicyKind::QuietHours {
            start_minute: 21 * 60,
            end_minute: 8 * 60
        }
    );
}

#[test]
fn defaults_apply_when_sections_are_absent() {
    let config = compile("acme", BASE).expect("compiles");
    assert_eq!(
        config.defaults,
        Defaults {
            max_actions: 1,
            reservation_ttl: Duration::from_secs(300),
            attribution_window: Duration::from_secs(7 * 86_400),
            decision_retention: Duration::from_secs(7 * 86_400),
        }
    );
    assert_eq!(
        config.exploration,
        Exploration {
            mode: ExplorationMode::Thompson,
            samples: 200
        }
    );
    assert_eq!(
        config.holdouts,
        Holdouts {
            salt: String::new(),
            global_share: 0.0
        }
    );
    let a = &config.actions[0];
    assert_eq!(
        (a.value, a.business_weight, a.control_share),
        (1.0, 1.0, 0.0)
    );
    assert_eq!(config.needs, ScoreNeeds::default());
}

#[test]
fn action_fields_are_compiled() {
    let yaml = action_with(
        "touchpoints: [checkout]\nvalue: 3\nvalid_from: 2026-01-01T00:00:00Z\n\
         valid_until: 2026-01-02T01:00:00+01:00\npayload: {title: Hi, n: 2, tags: [x], deep: {ok: true}}",
    );
    let config = compile("acme", &yaml).unwrap_or_else(|e| panic!("{e:#?}"));
    let a = &config.actions[0];
    let from = UNIX_EPOCH + Duration::from_secs(1_767_225_600);
    assert_eq!(a.valid_from, Some(from));
    assert_eq!(a.valid_until, Some(from + Duration::from_secs(86_400)));
    assert_eq!(a.value, 3.0);
    assert!(a.offered_at("checkout", from));
    assert!(!a.offered_at("checkout", from - Duration::from_secs(1)));
    assert!(!a.offered_at("home", from));
    let payload = &a.payload.fields;
    assert_eq!(payload["n"].kind, Some(Kind::NumberValue(2.0)));
    assert!(matches!(&payload["tags"].kind, Some(Kind::ListValue(l)) if l.values.len() == 1));
    assert!(
        matches!(&payload["deep"].kind, Some(Kind::StructValue(s)) if s.fields.contains_key("ok"))
    );
}

// --- versions and tenants -------------------------------------------------------------------

#[test]
fn version_is_stable_and_follows_the_text() {
    let v = version_of(RETAIL);
    assert_eq!(v, version_of(RETAIL));
    assert_eq!(v.len(), 16);
    assert!(
        v.chars()
            .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
    );
    assert_ne!(v, version_of(&format!("{RETAIL}\n")));
    assert_eq!(version_of(""), "2d06800538d394c2");
}

#[test]
fn declared_tenant_reads_only_the_tenant_key() {
    assert_eq!(declared_tenant(RETAIL).as_deref(), Some("acme"));
    assert_eq!(declared_tenant(BASE), None);
    assert_eq!(declared_tenant("tenant: [x]"), None);
    assert_eq!(declared_tenant(": : :"), None);
}

#[test]
fn a_different_tenant_is_refused() {
    let issue = issue_at(&format!("tenant: other\n{BASE}"), "tenant", "'other'");
    assert_eq!((issue.line, issue.column), (1, 1));
    assert!(compile("acme", &format!("tenant: acme\n{BASE}")).is_ok());
}
