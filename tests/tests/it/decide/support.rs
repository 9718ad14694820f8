//! Shared pieces of the decision tests: configurations, requests and events.

use std::{collections::HashMap, time::SystemTime};

use iee_api::{
    decide::{DecideRequest, Direction},
    pb::common::{Channel, CustomerRef, Event, Money, PropertyValue, property_value::Kind},
};

pub const TENANT: &str = "acme";

/// A small catalogue: `cart-saver` applies only with a non-empty cart and outranks `welcome`;
/// web contacts are capped at `cap` a day (uncapped with `None`); an outbound e-mail answers
/// abandoned carts.
pub fn basic(cap: Option<u32>) -> String {
    match cap {
        Some(cap) => BASIC.replace("CAP", &cap.to_string()),
        None => BASIC.replace(CAP_POLICY, ""),
    }
}

const CAP_POLICY: &str = "contact_policies:\n  - {name: web-daily, channels: [web], cap: {max: CAP, window: 1d, scope: channel}}\n";

const BASIC: &str = r#"
tenant: acme
exploration: {mode: greedy}
actions:
  - id: cart-saver
    group: retention
    channels: [web]
    direction: inbound
    value: 10
    payload: {title: "Complete your order"}
    applicability: 'has(profile.cart.value) && profile.cart.value > 0.0'
  - id: welcome
    channels: [web]
    direction: inbound
    value: 1
    payload: {title: "Welcome"}
  - id: vip-only
    channels: [web]
    direction: inbound
    value: 100
    eligibility: 'profile.frequency.purchases >= 5.0'
  - id: cart-email
    channels: [email]
    direction: outbound
    touchpoints: [cart-reminder]
    payload: {template: cart-reminder}
contact_policies:
  - {name: web-daily, channels: [web], cap: {max: CAP, window: 1d, scope: channel}}
triggers:
  - {name: cart-rescue, signal: cart_abandoned, channel: email, touchpoint: cart-reminder}
"#;

pub fn customer(id: &str) -> CustomerRef {
    CustomerRef {
        tenant_id: TENANT.into(),
        customer_id: id.into(),
        anonymous_id: String::new(),
    }
}

/// An inbound web decision for `customer_id` at the `cart` touchpoint.
pub fn web_request(customer_id: &str) -> DecideRequest {
    DecideRequest {
        customer: Some(customer(customer_id)),
        channel: Channel::Web as i32,
        touchpoint: "cart".into(),
        direction: Direction::Inbound as i32,
        context: HashMap::from([(
            "page".to_owned(),
            PropertyValue {
                kind: Some(Kind::StringValue("cart".into())),
            },
        )]),
        max_actions: 1,
        request_id: String::new(),
    }
}

/// An `add_to_cart` of one 25 EUR product.
pub fn add_to_cart(event_id: &str, customer_id: &str) -> Event {
    Event {
        event_id: event_id.into(),
        tenant_id: TENANT.into(),
        customer_id: customer_id.into(),
        r#type: "add_to_cart".into(),
        channel: Channel::Web as i32,
        touchpoint: "product".into(),
        occurred_at: Some(SystemTime::now().into()),
        value: Some(Money {
            amount_minor: 2_500,
            currency: "EUR".into(),
        }),
        properties: HashMap::from([(
            "product_id".to_owned(),
            PropertyValue {
                kind: Some(Kind::StringValue("sku-1".into())),
            },
        )]),
        ..Event::default()
    }
}

/// A `page_view`, so the customer has a profile.
pub fn page_view(event_id: &str, customer_id: &str) -> Event {
    Event {
        r#type: "page_view".into(),
        value: None,
        properties: HashMap::new(),
        ..add_to_cart(event_id, customer_id)
    }
}

/// `n` web actions of equal value explored by Thompson sampling, with a global holdout of
/// `holdout` and a per-action control group on `offer-0`, for tenant `tenant`.
pub fn exploring(tenant: &str, n: usize, holdout: f64) -> String {
    let mut yaml = format!(
        "tenant: {tenant}\nexploration: {{mode: thompson, samples: 100}}\n\
         holdouts: {{salt: test, global_share: {holdout}}}\nactions:\n"
    );
    for i in 0..n {
        let control = if i == 0 {
            "    control_share: 0.2\n"
        } else {
            ""
        };
        yaml.push_str(&format!(
            "  - id: offer-{i}\n    channels: [web]\n    direction: inbound\n{control}"
        ));
    }
    yaml
}
