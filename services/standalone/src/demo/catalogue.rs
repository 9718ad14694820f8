//! What the demo's world is made of: the offers of `examples/demo/demo.yaml`, the hidden
//! customer segments with their response probabilities, and the pages customers browse.

/// The tenant the demo runs as (the `tenant:` of the configuration).
pub const TENANT: &str = "demo";

/// The decision configuration the demo puts (see `examples/demo/demo.yaml`).
pub const CONFIG_YAML: &str = include_str!("../../../../examples/demo/demo.yaml");

/// Reporting currency of every order.
pub const CURRENCY: &str = "EUR";

/// The offers, in configuration order, with their business value (`value:` in the YAML) and
/// whether they may be shown in the app (the YAML's `channels`).
pub const ACTIONS: [Offer; 6] = [
    Offer::new("discount-10", 8.0, true),
    Offer::new("free-shipping", 6.0, true),
    Offer::new("loyalty-points", 7.0, true),
    Offer::new("product-recommendation", 5.0, true),
    Offer::new("support-callback", 6.0, true),
    Offer::new("app-download", 3.0, false),
];

/// Index of `discount-10`, whose accepted orders are 10 % cheaper.
pub const DISCOUNT: usize = 0;

/// One offer of the catalogue.
#[derive(Debug, Clone, Copy)]
pub struct Offer {
    /// The action id.
    pub id: &'static str,
    /// Its value to the business, a factor of its priority.
    pub value: f64,
    /// True if it is offered in the app as well as on the web.
    pub in_app: bool,
}

impl Offer {
    /// An offer (a `const` constructor for [`ACTIONS`]).
    const fn new(id: &'static str, value: f64, in_app: bool) -> Self {
        Self { id, value, in_app }
    }
}

/// The index of an action id in [`ACTIONS`].
pub fn action_index(id: &str) -> Option<usize> {
    ACTIONS.iter().position(|a| a.id == id)
}

/// Pages a visit can land on; each segment has a favourite (the touchpoint of the decision).
pub const PAGES: [&str; 5] = ["deals", "new-arrivals", "rewards", "help", "home"];

/// Probability that a visit lands on the segment's favourite page; otherwise any page.
pub const PAGE_AFFINITY: f64 = 0.7;

/// An offer is relevant to a segment when its click probability is at least this.
pub const RELEVANT_CLICK: f64 = 0.2;

/// Probability of accepting a clicked offer that is relevant to the customer.
pub const ACCEPT_RELEVANT: f64 = 0.65;

/// Probability of accepting a clicked offer that is not.
pub const ACCEPT_OTHER: f64 = 0.3;

/// Probability that an accepted offer turns into an order.
pub const CONVERT_ACCEPTED: f64 = 0.6;

/// A hidden customer segment: which offers it responds to and how it buys and leaves. The
/// engine never sees the segment; it sees the pages the customer visits and their reactions.
#[derive(Debug, Clone, Copy)]
pub struct Segment {
    /// Its name in the report.
    pub name: &'static str,
    /// Share of the population.
    pub share: f64,
    /// Index in [`PAGES`] of its favourite page.
    pub page: usize,
    /// Click probability of each offer of [`ACTIONS`] (hidden from the engine).
    pub click: [f64; 6],
    /// Multiplier of the baseline purchase probability.
    pub purchase_factor: f64,
    /// Multiplier of the churn hazard.
    pub churn_factor: f64,
    /// Mean order value, in euros.
    pub order_value: f64,
}

/// The segments. Each has one clearly best offer; the others barely work for it.
pub const SEGMENTS: [Segment; 4] = [
    Segment {
        name: "bargain hunters",
        share: 0.30,
        page: 0,
        click: [0.45, 0.22, 0.08, 0.06, 0.03, 0.05],
        purchase_factor: 1.0,
        churn_factor: 1.0,
        order_value: 45.0,
    },
    Segment {
        name: "trend seekers",
        share: 0.25,
        page: 1,
        click: [0.06, 0.10, 0.05, 0.45, 0.03, 0.12],
        purchase_factor: 1.0,
        churn_factor: 0.8,
        order_value: 70.0,
    },
    Segment {
        name: "loyal regulars",
        share: 0.25,
        page: 2,
        click: [0.08, 0.08, 0.45, 0.15, 0.04, 0.06],
        purchase_factor: 1.5,
        churn_factor: 0.6,
        order_value: 60.0,
    },
    Segment {
        name: "service seekers",
        share: 0.20,
        page: 3,
        click: [0.03, 0.05, 0.05, 0.03, 0.50, 0.04],
        purchase_factor: 0.6,
        churn_factor: 2.0,
        order_value: 50.0,
    },
];

impl Segment {
    /// True if the offer `action` is relevant to this segment.
    pub fn relevant(&self, action: usize) -> bool {
        self.click[action] >= RELEVANT_CLICK
    }

    /// The offer with the highest expected value (click probability × value) among those
    /// offered on the channel: what a perfect policy shows this segment.
    pub fn best_action(&self, in_app: bool) -> usize {
        (0..ACTIONS.len())
            .filter(|&a| !in_app || ACTIONS[a].in_app)
            .max_by(|&a, &b| {
                let (va, vb) = (
                    self.click[a] * ACTIONS[a].value,
                    self.click[b] * ACTIONS[b].value,
                );
                va.total_cmp(&vb)
            })
            .unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_demo_configuration_compiles_and_matches_the_catalogue() {
        let config = iee_decide::config::compile(TENANT, CONFIG_YAML).unwrap_or_else(|issues| {
            panic!(
                "examples/demo/demo.yaml does not compile: {}",
                issues
                    .iter()
                    .map(|i| i.to_string())
                    .collect::<Vec<_>>()
                    .join("; ")
            )
        });
        let ids: Vec<&str> = config.actions.iter().map(|a| a.id.as_str()).collect();
        let expected: Vec<&str> = ACTIONS.iter().map(|a| a.id).collect();
        assert_eq!(ids, expected);
        for (action, offer) in config.actions.iter().zip(ACTIONS) {
            assert_eq!(action.value, offer.value, "{}", offer.id);
            assert_eq!(action.channels.len() == 2, offer.in_app, "{}", offer.id);
        }
        assert!(config.holdouts.global_share > 0.0);
    }

    #[test]
    fn every_segment_has_one_clearly_best_offer_and_shares_add_up() {
        let total: f64 = SEGMENTS.iter().map(|s| s.share).sum();
        assert!((total - 1.0).abs() < 1e-9);
        for segment in SEGMENTS {
            for in_app in [false, true] {
                let best = segment.best_action(in_app);
                let top = segment.click[best] * ACTIONS[best].value;
                for a in (0..ACTIONS.len()).filter(|&a| a != best) {
                    assert!(
                        segment.click[a] * ACTIONS[a].value < top / 1.5,
                        "{}: {} is close to the best",
                        segment.name,
                        ACTIONS[a].id
                    );
                }
            }
            assert!(segment.page < PAGES.len());
        }
    }
}
