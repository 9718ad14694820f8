//! One simulated visit through the engine: the customer's page views go to ingest, the page
//! asks for the next best offer, the customer reacts by their hidden probabilities, and the
//! reaction comes back as outcomes (to learning) and events (purchase, survey, churn).

use std::{collections::HashMap, time::SystemTime};

use anyhow::{Context, bail};
use iee_api::{
    decide::{
        DecideApi, DecideClient, DecideRequest, Direction, FilterStage, OutcomeKind,
        ReportOutcomeRequest,
    },
    ingest::{IngestRequest, TouchpointApi, TouchpointClient},
    pb::common::{
        Channel, CustomerRef, Event, Money, PropertyValue, SurveyAnswer, SurveyKind,
        property_value::Kind,
    },
};
use rand::Rng;

use super::behaviour::{Answer, Reaction, react};
use super::catalogue::{CURRENCY, SEGMENTS, TENANT, action_index};
use super::population::{Customer, CustomerState};

/// The in-process clients a visit uses.
#[derive(Clone)]
pub struct Clients {
    /// Events.
    pub ingest: TouchpointClient,
    /// Decisions and outcomes.
    pub decide: DecideClient,
}

/// What happened at one visit, for the tallies.
#[derive(Debug, Clone)]
pub struct Visit {
    /// The round it belongs to (0-based).
    pub round: usize,
    /// The customer's hidden segment.
    pub segment: usize,
    /// True if the visit was in the app (where one offer fewer is available).
    pub in_app: bool,
    /// True if the customer is in the global holdout (no offer).
    pub holdout: bool,
    /// The offer shown (index in the catalogue), if any.
    pub offer: Option<usize>,
    /// The best offer for this customer on this channel.
    pub best: usize,
    /// True if a contact policy (the cap) held an offer back.
    pub capped: bool,
    /// True if the engine decided without its profile or models (`degraded`).
    pub degraded: bool,
    /// The customer's reaction.
    pub reaction: Reaction,
    /// Events the engine accepted for this visit (outcomes included).
    pub events: u64,
}

/// Simulates one visit of `customer` in `round`, updating `state`.
pub async fn visit(
    clients: &Clients,
    customer: &Customer,
    state: &mut CustomerState,
    rng: &mut impl Rng,
    round: usize,
) -> anyhow::Result<Visit> {
    let page = customer.page(rng);
    let channel = if customer.in_app {
        Channel::App
    } else {
        Channel::Web
    };
    let tag = format!("{}-r{round}", customer.id);
    let mut browsing = vec![event(customer, &tag, "page_view", channel, page)];
    if rng.random_bool(0.6) {
        browsing.push(event(customer, &tag, "product_view", channel, page));
    }
    let mut events = ingest(&clients.ingest, browsing).await?;

    let decision = clients
        .decide
        .decide(DecideRequest {
            customer: Some(customer_ref(customer)),
            channel: channel as i32,
            touchpoint: page.to_owned(),
            direction: Direction::Inbound as i32,
            context: HashMap::new(),
            max_actions: 1,
            request_id: tag.clone(),
        })
        .await
        .with_context(|| format!("deciding for {}", customer.id))?;
    let offer = match decision.actions.first() {
        Some(a) => Some(
            action_index(&a.action_id)
                .with_context(|| format!("the engine chose unknown action {}", a.action_id))?,
        ),
        None => None,
    };
    let reaction = react(customer, state, offer, rng);

    if let Some(a) = decision.actions.first() {
        let mut kinds = vec![OutcomeKind::Impression];
        if reaction.clicked {
            kinds.push(OutcomeKind::Click);
        }
        kinds.push(if reaction.accepted {
            OutcomeKind::Accept
        } else {
            OutcomeKind::Dismiss
        });
        if reaction.converted_by_offer {
            kinds.push(OutcomeKind::Convert);
        }
        for kind in kinds {
            let value = (kind == OutcomeKind::Convert).then(|| money(reaction.order_minor));
            let response = clients
                .decide
                .report_outcome(ReportOutcomeRequest {
                    tenant_id: TENANT.to_owned(),
                    decision_id: decision.decision_id.clone(),
                    action_id: a.action_id.clone(),
                    kind: kind as i32,
                    value,
                    ..ReportOutcomeRequest::default()
                })
                .await
                .with_context(|| format!("reporting {kind:?} of {}", a.action_id))?;
            events += u64::from(!response.duplicate);
        }
    }

    let mut after = Vec::new();
    if reaction.purchased {
        after.push(event(customer, &tag, "add_to_cart", channel, page));
        let mut purchase = event(customer, &tag, "purchase", channel, "checkout");
        purchase.value = Some(money(reaction.order_minor));
        after.push(purchase);
    }
    if let Some(answer) = reaction.answer {
        let mut survey = event(customer, &tag, "survey_response", channel, page);
        let (kind, score, id) = match answer {
            Answer::Nps(s) => (SurveyKind::Nps, s, "nps"),
            Answer::Csat(s) => (SurveyKind::Csat, s, "csat"),
        };
        survey.survey = Some(SurveyAnswer {
            kind: kind as i32,
            score,
            survey_id: id.to_owned(),
        });
        after.push(survey);
    }
    if reaction.churned {
        after.push(event(
            customer,
            &tag,
            "subscription_cancel",
            channel,
            "account",
        ));
    }
    if !after.is_empty() {
        events += ingest(&clients.ingest, after).await?;
    }

    Ok(Visit {
        round,
        segment: customer.segment,
        in_app: customer.in_app,
        holdout: decision.holdout,
        offer,
        best: SEGMENTS[customer.segment].best_action(customer.in_app),
        capped: decision
            .filtered
            .iter()
            .any(|f| f.stage == FilterStage::ContactPolicy as i32),
        degraded: !decision.degraded.is_empty(),
        reaction,
        events,
    })
}

/// Ingests `events`, returning how many were accepted; a rejected event is an error (the
/// demo builds only valid ones).
pub async fn ingest(client: &TouchpointClient, events: Vec<Event>) -> anyhow::Result<u64> {
    let response = client
        .ingest(IngestRequest { events })
        .await
        .context("ingesting events")?;
    if let Some(rejected) = response.results.iter().find(|r| r.rejection.is_some()) {
        bail!(
            "ingest rejected event {}: {:?}",
            rejected.event_id,
            rejected.rejection
        );
    }
    Ok(u64::from(response.accepted))
}

/// The reference to a demo customer.
fn customer_ref(customer: &Customer) -> CustomerRef {
    CustomerRef {
        tenant_id: TENANT.to_owned(),
        customer_id: customer.id.clone(),
        anonymous_id: String::new(),
    }
}

/// An amount in euro cents.
fn money(amount_minor: i64) -> Money {
    Money {
        amount_minor,
        currency: CURRENCY.to_owned(),
    }
}

/// An event of the customer happening now, with the page as a property.
pub fn event(
    customer: &Customer,
    tag: &str,
    kind: &str,
    channel: Channel,
    touchpoint: &str,
) -> Event {
    Event {
        event_id: format!("{tag}-{kind}"),
        tenant_id: TENANT.to_owned(),
        customer_id: customer.id.clone(),
        r#type: kind.to_owned(),
        channel: channel as i32,
        touchpoint: touchpoint.to_owned(),
        occurred_at: Some(SystemTime::now().into()),
        properties: HashMap::from([(
            "page".to_owned(),
            PropertyValue {
                kind: Some(Kind::StringValue(touchpoint.to_owned())),
            },
        )]),
        ..Event::default()
    }
}
