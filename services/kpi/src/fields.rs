//! The names of the additive statistics the KPI service keeps, and the hash fields they are
//! stored under: `<stat>|<channel>|<touchpoint>|<journey stage>|<action>|<arm>`, where channel
//! and journey stage are the enum numbers, action is empty for "no action" and arm is empty on
//! the overall rows and `<experiment>/<arm>` on the per-experiment-arm rows.
//!
//! Every observation adds to the overall row of its dimensions (arm empty) and, in addition,
//! to one row per experiment arm the customer is in. A query reads the overall rows unless it
//! groups or filters by the experiment arm, so nothing is counted twice.

use iee_api::pb::kpi::Dimension;

/// The statistics, by the name used in fields. Rows named "decision rows" carry the dimensions
/// of the decision (its channel, touchpoint, journey stage, first returned action), the others
/// those of the customer's event (and, for action, the last decision within the attribution
/// window).
pub mod stat {
    /// Customer interactions (every event except decisions).
    pub const EVENTS: &str = "ev";
    /// NPS promoters (9-10).
    pub const NPS_PROMOTERS: &str = "nps.p";
    /// NPS passives (7-8).
    pub const NPS_PASSIVES: &str = "nps.s";
    /// NPS detractors (0-6).
    pub const NPS_DETRACTORS: &str = "nps.d";
    /// CSAT answers.
    pub const CSAT_N: &str = "csat.n";
    /// CSAT answers of 4 or 5.
    pub const CSAT_SATISFIED: &str = "csat.k";
    /// CES answers.
    pub const CES_N: &str = "ces.n";
    /// Sum of CES scores.
    pub const CES_SUM: &str = "ces.s";
    /// Sum of squared CES scores.
    pub const CES_SUMSQ: &str = "ces.q";
    /// Orders (conversion events carrying a value).
    pub const ORDERS: &str = "ord.n";
    /// Sum of order values, minor currency units.
    pub const REVENUE: &str = "rev.s";
    /// Sum of squared order values.
    pub const REVENUE_SUMSQ: &str = "rev.q";
    /// Active customer-days: a customer counts once per UTC day, in the bucket of their first
    /// interaction of the day.
    pub const ACTIVE_CUSTOMERS: &str = "cust.n";
    /// Sum over active customer-days of the day's revenue squared (in the bucket of the day's
    /// first interaction).
    pub const DAY_REVENUE_SUMSQ: &str = "rpc.q";
    /// Customer-days with a churn event (at most one per customer and day).
    pub const CHURNED: &str = "churn.k";
    /// Sessions (a gap longer than the session timeout starts a new one), in the bucket and
    /// dimensions of their first interaction.
    pub const SESSIONS: &str = "ses.n";
    /// Engaged sessions: at least two interactions spanning at least the engaged minimum, or a
    /// conversion.
    pub const ENGAGED_SESSIONS: &str = "ses.e";
    /// Bounced sessions: exactly one interaction and no conversion.
    pub const BOUNCED_SESSIONS: &str = "ses.b";
    /// Customer-days with an experience (survey answer or experience event).
    pub const PEAK_END_N: &str = "pe.n";
    /// Sum of the customer-days' peak-end scores.
    pub const PEAK_END_SUM: &str = "pe.s";
    /// Sum of the squared peak-end scores.
    pub const PEAK_END_SUMSQ: &str = "pe.q";
    /// Customers first seen (cohort size), in the bucket of the first interaction.
    pub const COHORT: &str = "coh.n";
    /// Prefix of the retention counts: `ret.<N>` counts the cohort's customers active in week N
    /// after their first interaction (N = 1..=[`super::MAX_RETENTION_WEEK`]), in the cohort's
    /// bucket.
    pub const RETAINED_PREFIX: &str = "ret.";
    /// Decisions (decision rows).
    pub const DECISIONS: &str = "dec.n";
    /// Decisions followed by a conversion of the customer within the attribution window
    /// (decision rows, in the decision's bucket).
    pub const CONVERTED: &str = "conv.k";
    /// Returned actions: one per action of a decision, with that action as the action
    /// dimension (decision rows).
    pub const ACTIONS: &str = "act.n";
    /// Returned actions clicked (at most once per decision and action).
    pub const CLICKED: &str = "click.k";
    /// Returned actions accepted (at most once per decision and action).
    pub const ACCEPTED: &str = "acc.k";
    /// Decisions that carried a predicted lifetime value.
    pub const CLV_N: &str = "clv.n";
    /// Sum of predicted lifetime values, minor currency units.
    pub const CLV_SUM: &str = "clv.s";
    /// Sum of squared predicted lifetime values.
    pub const CLV_SUMSQ: &str = "clv.q";
    /// Customers first assigned to an experiment arm (arm rows only; bucket and dimensions of
    /// the assigning decision).
    pub const ASSIGNED: &str = "xcust.n";
    /// Assigned customers who converted at least once after assignment (in the assignment's
    /// bucket).
    pub const ASSIGNED_CONVERTED: &str = "xconv.k";
    /// Assigned customers who churned after assignment (in the assignment's bucket).
    pub const ASSIGNED_CHURNED: &str = "xchurn.k";
    /// Sum over assigned customers of (revenue since assignment) squared, in the assignment's
    /// bucket. With `rev.s` of the arm rows it gives revenue per assigned customer.
    pub const ASSIGNED_REVENUE_SUMSQ: &str = "xrev.q";
}

/// The largest N of `retention_week_N`.
pub const MAX_RETENTION_WEEK: u32 = 12;

/// The value of the action dimension for observations without an action.
pub const NO_ACTION: &str = "none";

/// The value touchpoints and actions beyond the cardinality caps are folded into.
pub const OTHER: &str = "other";

/// The dimensions of one row.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Dims {
    /// `iee.common.v1.Channel` number.
    pub channel: i32,
    /// Touchpoint id (empty when the event had none).
    pub touchpoint: String,
    /// `iee.common.v1.JourneyStage` number.
    pub stage: i32,
    /// Action id; empty means [`NO_ACTION`].
    pub action: String,
    /// `<experiment>/<arm>`; empty on the overall rows.
    pub arm: String,
}

impl Dims {
    /// The same dimensions on the row of an experiment arm.
    pub fn with_arm(&self, experiment: &str, arm: &str) -> Self {
        Self {
            arm: format!("{experiment}/{arm}"),
            ..self.clone()
        }
    }

    /// The same dimensions with another action.
    pub fn with_action(&self, action: &str) -> Self {
        Self {
            action: action.to_owned(),
            ..self.clone()
        }
    }

    /// The value of one dimension, as queries name it (`CHANNEL_WEB`, `JOURNEY_STAGE_PURCHASE`,
    /// the touchpoint, the action or [`NO_ACTION`], `<experiment>/<arm>`).
    pub fn value(&self, dimension: Dimension) -> String {
        use iee_api::pb::common::{Channel, JourneyStage};
        match dimension {
            Dimension::Channel => Channel::try_from(self.channel)
                .map_or_else(|_| self.channel.to_string(), |c| c.as_str_name().to_owned()),
            Dimension::JourneyStage => JourneyStage::try_from(self.stage)
                .map_or_else(|_| self.stage.to_string(), |s| s.as_str_name().to_owned()),
            Dimension::Touchpoint => self.touchpoint.clone(),
            Dimension::Action if self.action.is_empty() => NO_ACTION.to_owned(),
            Dimension::Action => self.action.clone(),
            Dimension::ExperimentArm => self.arm.clone(),
            Dimension::Unspecified => String::new(),
        }
    }
}

/// Replaces the separator in a free-form value (touchpoints and action ids never contain it
/// once validated, but stored fields must stay parseable whatever comes in).
fn clean(value: &str) -> std::borrow::Cow<'_, str> {
    if value.contains('|') {
        std::borrow::Cow::Owned(value.replace('|', "_"))
    } else {
        std::borrow::Cow::Borrowed(value)
    }
}

/// The hash field of `stat` on the row `dims`.
pub fn field(stat: &str, dims: &Dims) -> String {
    format!(
        "{stat}|{}|{}|{}|{}|{}",
        dims.channel,
        clean(&dims.touchpoint),
        dims.stage,
        clean(&dims.action),
        clean(&dims.arm)
    )
}

/// The statistic and dimensions of a stored field; `None` for a field of another form.
pub fn parse_field(field: &str) -> Option<(&str, Dims)> {
    let mut parts = field.split('|');
    let stat = parts.next()?;
    let channel = parts.next()?.parse().ok()?;
    let touchpoint = parts.next()?.to_owned();
    let stage = parts.next()?.parse().ok()?;
    let action = parts.next()?.to_owned();
    let arm = parts.next()?.to_owned();
    if parts.next().is_some() {
        return None;
    }
    Some((
        stat,
        Dims {
            channel,
            touchpoint,
            stage,
            action,
            arm,
        },
    ))
}

/// The bookkeeping marks of experiments (see `iee_store::KpiMark`): written by the fold when a
/// customer is first assigned, read by `GetExperiment`.
pub mod mark {
    /// The field of an experiment's first assignment time (Unix ms, the minimum is kept).
    pub fn first_assigned(experiment: &str) -> String {
        format!("exp|{experiment}|first")
    }

    /// The field of an experiment's latest assignment time (Unix ms, the maximum is kept).
    pub fn last_assigned(experiment: &str) -> String {
        format!("exp|{experiment}|last")
    }

    /// The field of an arm's planned allocation; `arm` is `<experiment>/<arm>`.
    pub fn allocation(arm: &str) -> String {
        format!("arm|{arm}|alloc")
    }

    /// The `<experiment>/<arm>` of an allocation field, `None` for other fields.
    pub fn allocation_arm(field: &str) -> Option<&str> {
        field.strip_prefix("arm|")?.strip_suffix("|alloc")
    }
}

/// The `ret.<N>` statistic of retention week `week`.
pub fn retained(week: u32) -> String {
    format!("{}{week}", stat::RETAINED_PREFIX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_round_trip_and_stay_parseable() {
        let dims = Dims {
            channel: 1,
            touchpoint: "check|out".into(),
            stage: 3,
            action: "offer-1".into(),
            arm: "global/control".into(),
        };
        let f = field(stat::CSAT_N, &dims);
        assert_eq!(f, "csat.n|1|check_out|3|offer-1|global/control");
        let (s, parsed) = parse_field(&f).unwrap_or_else(|| panic!("{f}"));
        assert_eq!(s, stat::CSAT_N);
        assert_eq!(parsed.touchpoint, "check_out");
        assert_eq!(parsed.arm, "global/control");
        assert!(parse_field("csat.n|x|a|3|b|").is_none());
        assert!(parse_field("csat.n|1|a|3|b").is_none());
    }

    #[test]
    fn dimension_values_use_enum_names() {
        let dims = Dims {
            channel: 1,
            stage: 3,
            ..Dims::default()
        };
        assert_eq!(dims.value(Dimension::Channel), "CHANNEL_WEB");
        assert_eq!(
            dims.value(Dimension::JourneyStage),
            "JOURNEY_STAGE_PURCHASE"
        );
        assert_eq!(dims.value(Dimension::Action), NO_ACTION);
        assert_eq!(retained(4), "ret.4");
        let field = mark::allocation("action:offer/control");
        assert_eq!(mark::allocation_arm(&field), Some("action:offer/control"));
        assert_eq!(mark::allocation_arm(&mark::first_assigned("global")), None);
    }
}
