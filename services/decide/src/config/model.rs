//! A decision configuration as the pipeline uses it: validated, with every rule compiled and the
//! candidate actions indexed by channel and direction. Built only by [`super::compile`]; never
//! changed afterwards (a new version is a new value).

use std::{
    collections::HashMap,
    time::{Duration, SystemTime},
};

use iee_api::pb::common::PropertyValue;

use super::rules::Rule;

/// One version of a tenant's decision configuration.
#[derive(Debug)]
pub struct DecisionConfig {
    /// The tenant it belongs to.
    pub tenant_id: String,
    /// Its version: a digest of `yaml`.
    pub version: String,
    /// The text it was compiled from.
    pub yaml: String,
    /// Request defaults and retention.
    pub defaults: Defaults,
    /// How propensities are explored.
    pub exploration: Exploration,
    /// Every action, in configuration order.
    pub actions: Vec<Action>,
    /// Context weights, in configuration order.
    pub context_weights: Vec<ContextWeight>,
    /// Contact policies, in configuration order.
    pub contact_policies: Vec<ContactPolicy>,
    /// Control groups.
    pub holdouts: Holdouts,
    /// Proactive triggers, in configuration order.
    pub triggers: Vec<Trigger>,
    /// Which customer-level scores any rule reads (`scores.churn`, `scores.clv`), so a decision
    /// asks the prediction service only for those.
    pub needs: ScoreNeeds,
    /// Action index by id.
    pub(crate) by_id: HashMap<String, usize>,
    /// Candidate action indices (configuration order) by `(channel, direction)`, both as proto
    /// enum numbers.
    pub(crate) by_channel: HashMap<(i32, i32), Vec<usize>>,
}

impl DecisionConfig {
    /// The actions offered on `channel` in `direction`, in configuration order (indices into
    /// `actions`).
    pub fn candidates(&self, channel: i32, direction: i32) -> &[usize] {
        self.by_channel
            .get(&(channel, direction))
            .map_or(&[], Vec::as_slice)
    }

    /// The action with this id.
    pub fn action(&self, id: &str) -> Option<&Action> {
        self.by_id.get(id).map(|&i| &self.actions[i])
    }

    /// The contact policies that apply to `action` delivered on `channel`, in configuration
    /// order.
    pub fn policies_for<'a>(
        &'a self,
        action: &'a Action,
        channel: i32,
    ) -> impl Iterator<Item = &'a ContactPolicy> + 'a {
        self.contact_policies
            .iter()
            .filter(move |p| p.applies_to(action, channel))
    }

    /// The trigger with this name.
    pub fn trigger(&self, name: &str) -> Option<&Trigger> {
        self.triggers.iter().find(|t| t.name == name)
    }
}

/// Request defaults and retention (`defaults:`).
#[derive(Debug, Clone, PartialEq)]
pub struct Defaults {
    /// Actions returned when a request asks for 0 (default 1).
    pub max_actions: u32,
    /// How long a contact reservation holds before it lapses unless an outcome commits it
    /// (default 5 minutes).
    pub reservation_ttl: Duration,
    /// How long after a decision its outcomes are accepted (default 7 days).
    pub attribution_window: Duration,
    /// How long decisions are kept in the decision log (default 7 days; at least the
    /// attribution window).
    pub decision_retention: Duration,
}

/// How propensities are explored (`exploration:`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExplorationMode {
    /// Rank by a Thompson sample from each propensity's posterior (default).
    Thompson,
    /// Rank by the posterior mean; no exploration.
    Greedy,
}

/// Exploration settings.
#[derive(Debug, Clone, PartialEq)]
pub struct Exploration {
    /// The mode.
    pub mode: ExplorationMode,
    /// Monte Carlo draws used to estimate each returned action's selection probability
    /// (default 200, 10-10,000).
    pub samples: u32,
}

/// One action of the catalogue (`actions[i]`).
#[derive(Debug)]
pub struct Action {
    /// Unique id (1-128 characters).
    pub id: String,
    /// The group or issue it belongs to (e.g. `retention`); may be empty.
    pub group: String,
    /// Channels it can be delivered on (proto `Channel` numbers), at least one.
    pub channels: Vec<i32>,
    /// Proto `Direction` number (inbound or outbound).
    pub direction: i32,
    /// Touchpoints it is offered at; empty means every touchpoint.
    pub touchpoints: Vec<String>,
    /// Value to the business (default 1), >= 0.
    pub value: f64,
    /// Business lever (default 1), >= 0.
    pub business_weight: f64,
    /// Offered from this time on, if set.
    pub valid_from: Option<SystemTime>,
    /// Offered until this time (exclusive), if set.
    pub valid_until: Option<SystemTime>,
    /// What to show or send.
    pub payload: prost_types::Struct,
    /// May the customer get it at all?
    pub eligibility: Option<Rule>,
    /// Does it fit the request context?
    pub applicability: Option<Rule>,
    /// Is it right for the customer now (may read `scores`)?
    pub suitability: Option<Rule>,
    /// Share of customers (0 to 1) in the action's own control group (default 0).
    pub control_share: f64,
    /// Where it stands in the configuration, e.g. `actions[3]`.
    pub path: String,
}

impl Action {
    /// Whether the action is offered at `touchpoint` at time `now`.
    pub fn offered_at(&self, touchpoint: &str, now: SystemTime) -> bool {
        (self.touchpoints.is_empty() || self.touchpoints.iter().any(|t| t == touchpoint))
            && self.valid_from.is_none_or(|from| now >= from)
            && self.valid_until.is_none_or(|until| now < until)
    }
}

/// A context weight (`context_weights[i]`): multiplies the priority of the actions it names
/// when its rule holds. Weights of several matching entries multiply.
#[derive(Debug)]
pub struct ContextWeight {
    /// Its name.
    pub name: String,
    /// When it applies.
    pub when: Rule,
    /// Actions it applies to (by id); with `groups`, an action matching either is affected;
    /// both empty means every action.
    pub actions: Vec<String>,
    /// Groups it applies to.
    pub groups: Vec<String>,
    /// The factor, >= 0.
    pub weight: f64,
}

impl ContextWeight {
    /// Whether the weight is about `action`.
    pub fn targets(&self, action: &Action) -> bool {
        targets(&self.actions, &self.groups, action)
    }
}

/// One contact policy (`contact_policies[i]`).
#[derive(Debug, Clone, PartialEq)]
pub struct ContactPolicy {
    /// Its name, echoed in denials.
    pub name: String,
    /// Channels it covers (proto numbers); empty means every channel.
    pub channels: Vec<i32>,
    /// Actions it covers (by id); with `groups`, an action matching either is covered; both
    /// empty means every action.
    pub actions: Vec<String>,
    /// Groups it covers.
    pub groups: Vec<String>,
    /// What it requires.
    pub kind: PolicyKind,
}

impl ContactPolicy {
    /// Whether the policy covers `action` delivered on `channel`.
    pub fn applies_to(&self, action: &Action, channel: i32) -> bool {
        (self.channels.is_empty() || self.channels.contains(&channel))
            && targets(&self.actions, &self.groups, action)
    }
}

/// What a contact policy requires.
#[derive(Debug, Clone, PartialEq)]
pub enum PolicyKind {
    /// At most `max` contacts within the sliding `window`.
    Cap {
        /// Largest number of contacts in the window (>= 1).
        max: u32,
        /// Window length.
        window: Duration,
        /// Proto `CapScope` number: what the cap counts.
        scope: i32,
    },
    /// No contact with an action the customer dismissed `after` times within `window`.
    Suppress {
        /// Dismissals that suppress (1-16).
        after: u32,
        /// Window length.
        window: Duration,
    },
    /// No contact between these local times (minutes after midnight; end exclusive; an end
    /// before the start spans midnight).
    QuietHours {
        /// Start, 0-1439.
        start_minute: u32,
        /// End, 0-1439.
        end_minute: u32,
    },
    /// No contact without consent for this purpose.
    Consent {
        /// The consent purpose (as in `consent` events).
        purpose: String,
    },
}

/// Control groups (`holdouts:`).
#[derive(Debug, Clone, PartialEq)]
pub struct Holdouts {
    /// Salt of the assignment hash; changing it reshuffles every group.
    pub salt: String,
    /// Share of customers (0 to 0.5) in the global control group, which gets no action.
    pub global_share: f64,
}

/// A proactive trigger (`triggers[i]`): a signal kind that starts an outbound decision.
#[derive(Debug)]
pub struct Trigger {
    /// Its name (unique).
    pub name: String,
    /// Proto `SignalKind` number it reacts to.
    pub signal: i32,
    /// Channel of the outbound decision (proto number).
    pub channel: i32,
    /// Touchpoint of the outbound decision.
    pub touchpoint: String,
    /// Actions to choose (1-10, default 1).
    pub max_actions: u32,
    /// Context passed to the decision's rules and models.
    pub context: HashMap<String, PropertyValue>,
    /// Further condition on the signal's customer; the decision is skipped when it is false.
    pub when: Option<Rule>,
}

/// Which customer-level scores the rules read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ScoreNeeds {
    /// Some rule reads `scores.churn`.
    pub churn: bool,
    /// Some rule reads `scores.clv`.
    pub clv: bool,
}

fn targets(actions: &[String], groups: &[String], action: &Action) -> bool {
    (actions.is_empty() && groups.is_empty())
        || actions.contains(&action.id)
        || (!action.group.is_empty() && groups.contains(&action.group))
}
