//! Builders of valid test events.

use std::time::SystemTime;

use iee_api::pb::common::{Channel, Event, Money};

/// A valid `page_view` event of `acme` for `customer_id`.
pub fn event(event_id: &str, customer_id: &str) -> Event {
    Event {
        event_id: event_id.to_owned(),
        tenant_id: "acme".to_owned(),
        customer_id: customer_id.to_owned(),
        r#type: "page_view".to_owned(),
        channel: Channel::Web as i32,
        touchpoint: "home".to_owned(),
        occurred_at: Some(prost_types::Timestamp::from(SystemTime::now())),
        ..Default::default()
    }
}

/// A valid `purchase` event with a value, the richest valid shape.
pub fn valid_event(event_id: &str) -> Event {
    Event {
        r#type: "purchase".to_owned(),
        value: Some(Money {
            amount_minor: 4_999,
            currency: "EUR".to_owned(),
        }),
        ..event(event_id, "c-1")
    }
}

/// `n` valid events with ids `<prefix>-<i>` spread over 10 customers.
pub fn events_for(prefix: &str, n: usize) -> Vec<Event> {
    (0..n)
        .map(|i| event(&format!("{prefix}-{i}"), &format!("c-{}", i % 10)))
        .collect()
}
