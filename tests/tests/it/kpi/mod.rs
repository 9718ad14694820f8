//! The KPI service over real processes: exactly-once aggregation across kills, and the metrics
//! of the whole loop.

mod exactly_once;
mod experiment;
