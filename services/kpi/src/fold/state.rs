//! The measurement state of one customer, kept between batches (prost-encoded, no `.proto`:
//! only the KPI service reads it). All times are Unix seconds of the events' `occurred_at`.

use crate::fields::Dims;

/// The dimensions of a set of rows: one overall row and one row per experiment arm.
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct Row {
    /// `iee.common.v1.Channel` number.
    #[prost(int32, tag = "1")]
    pub channel: i32,
    /// Admitted touchpoint (empty when the event had none).
    #[prost(string, tag = "2")]
    pub touchpoint: String,
    /// `iee.common.v1.JourneyStage` number.
    #[prost(int32, tag = "3")]
    pub stage: i32,
    /// Admitted action id; empty for no action.
    #[prost(string, tag = "4")]
    pub action: String,
    /// The arm rows, as `<experiment>/<arm>`.
    #[prost(string, repeated, tag = "5")]
    pub arms: Vec<String>,
}

impl Row {
    /// The overall row's dimensions.
    pub fn dims(&self) -> Dims {
        Dims {
            channel: self.channel,
            touchpoint: self.touchpoint.clone(),
            stage: self.stage,
            action: self.action.clone(),
            arm: String::new(),
        }
    }

    /// The same rows with another action.
    pub fn with_action(&self, action: &str) -> Self {
        Self {
            action: action.to_owned(),
            ..self.clone()
        }
    }
}

/// The customer's current UTC day of activity.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ActiveDay {
    /// Days since the epoch.
    #[prost(int64, tag = "1")]
    pub day: i64,
    /// Time of the day's first interaction: the bucket of the day's statistics.
    #[prost(int64, tag = "2")]
    pub at: i64,
    /// Rows of the day's first interaction.
    #[prost(message, optional, tag = "3")]
    pub row: Option<Row>,
    /// The day's revenue so far, minor currency units.
    #[prost(double, tag = "4")]
    pub revenue: f64,
    /// True once the day's churn is counted.
    #[prost(bool, tag = "5")]
    pub churned: bool,
}

/// The customer's current session.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Session {
    /// Earliest interaction of the session.
    #[prost(int64, tag = "1")]
    pub start: i64,
    /// Latest interaction of the session.
    #[prost(int64, tag = "2")]
    pub last: i64,
    /// Interactions in the session.
    #[prost(uint32, tag = "3")]
    pub events: u32,
    /// True once counted as engaged.
    #[prost(bool, tag = "4")]
    pub engaged: bool,
    /// True while counted as a bounce.
    #[prost(bool, tag = "5")]
    pub bounced: bool,
    /// True once the session holds a conversion.
    #[prost(bool, tag = "6")]
    pub converted: bool,
    /// Rows of the session's first interaction.
    #[prost(message, optional, tag = "7")]
    pub row: Option<Row>,
    /// Time of the first interaction folded (the bucket of the session's statistics; `start`
    /// may move earlier when a late event joins).
    #[prost(int64, tag = "8")]
    pub at: i64,
}

/// The peak-end experience of the customer's current day.
#[derive(Clone, PartialEq, prost::Message)]
pub struct PeakEnd {
    /// Days since the epoch.
    #[prost(int64, tag = "1")]
    pub day: i64,
    /// The most intense experience of the day, -1..1.
    #[prost(double, tag = "2")]
    pub peak: f64,
    /// When the peak happened.
    #[prost(int64, tag = "3")]
    pub peak_at: i64,
    /// The latest experience of the day, -1..1.
    #[prost(double, tag = "4")]
    pub end: f64,
    /// When the end happened.
    #[prost(int64, tag = "5")]
    pub end_at: i64,
    /// The score already added to `pe.s` (and its square to `pe.q`).
    #[prost(double, tag = "6")]
    pub score: f64,
    /// Rows of the day's first experience.
    #[prost(message, optional, tag = "7")]
    pub row: Option<Row>,
    /// Time of the day's first experience: the bucket of the day's statistics.
    #[prost(int64, tag = "8")]
    pub at: i64,
}

/// The customer's assignment to one experiment.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Assignment {
    /// The experiment.
    #[prost(string, tag = "1")]
    pub experiment: String,
    /// The arm of the first decision that assigned the customer.
    #[prost(string, tag = "2")]
    pub arm: String,
    /// The assigning decision's time: the bucket of the customer-level statistics.
    #[prost(int64, tag = "3")]
    pub assigned_at: i64,
    /// The assigning decision's dimensions; `arms` holds only this arm's row.
    #[prost(message, optional, tag = "4")]
    pub row: Option<Row>,
    /// True once a conversion after assignment is counted.
    #[prost(bool, tag = "5")]
    pub converted: bool,
    /// True once a churn after assignment is counted.
    #[prost(bool, tag = "6")]
    pub churned: bool,
    /// Revenue since assignment, minor currency units.
    #[prost(double, tag = "7")]
    pub revenue: f64,
}

impl Assignment {
    /// The arm row's label, `<experiment>/<arm>`.
    pub fn label(&self) -> String {
        format!("{}/{}", self.experiment, self.arm)
    }
}

/// A decision remembered for attribution.
#[derive(Clone, PartialEq, prost::Message)]
pub struct RecentDecision {
    /// The decision's id.
    #[prost(string, tag = "1")]
    pub decision_id: String,
    /// The decision's time: the bucket of its statistics.
    #[prost(int64, tag = "2")]
    pub at: i64,
    /// The decision rows (action = first returned action; arms of the exposure).
    #[prost(message, optional, tag = "3")]
    pub row: Option<Row>,
    /// The returned action ids, in rank order, as the decision sent them.
    #[prost(string, repeated, tag = "4")]
    pub action_ids: Vec<String>,
    /// True once a conversion is attributed to it.
    #[prost(bool, tag = "5")]
    pub converted: bool,
    /// Action ids whose click is counted.
    #[prost(string, repeated, tag = "6")]
    pub clicked: Vec<String>,
    /// Action ids whose acceptance is counted.
    #[prost(string, repeated, tag = "7")]
    pub accepted: Vec<String>,
}

/// Everything the fold remembers of one customer.
#[derive(Clone, PartialEq, prost::Message)]
pub struct CustomerState {
    /// Time of the first interaction (the cohort's bucket); unset before any interaction.
    #[prost(int64, optional, tag = "1")]
    pub first_seen: Option<i64>,
    /// The cohort rows (dimensions of the first interaction, no action; arms the customer was
    /// in then).
    #[prost(message, optional, tag = "2")]
    pub cohort: Option<Row>,
    /// Bit N set once retention week N is counted.
    #[prost(uint32, tag = "3")]
    pub retention_weeks: u32,
    /// The latest `occurred_at` of any folded record (decisions are pruned relative to it).
    #[prost(int64, tag = "4")]
    pub last_seen: i64,
    /// The latest active UTC day.
    #[prost(message, optional, tag = "5")]
    pub day: Option<ActiveDay>,
    /// The current session.
    #[prost(message, optional, tag = "6")]
    pub session: Option<Session>,
    /// The peak-end experience of the latest day with an experience.
    #[prost(message, optional, tag = "7")]
    pub peak_end: Option<PeakEnd>,
    /// Experiment assignments, at most `max_experiments_per_customer`.
    #[prost(message, repeated, tag = "8")]
    pub assignments: Vec<Assignment>,
    /// Recent decisions in time order, at most `max_recent_decisions`, none older than the
    /// attribution window before `last_seen`.
    #[prost(message, repeated, tag = "9")]
    pub decisions: Vec<RecentDecision>,
}

impl CustomerState {
    /// The arm labels of the experiments the customer was assigned to at `at` or before.
    pub fn arms_at(&self, at: i64) -> Vec<String> {
        self.assignments
            .iter()
            .filter(|a| a.assigned_at <= at)
            .map(Assignment::label)
            .collect()
    }
}
