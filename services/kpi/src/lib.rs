//! The KPI service (measurement layer), for now its statistics core: mergeable sufficient
//! statistics, confidence intervals, uplift of treatment over control and sample ratio mismatch
//! checks. See `docs/kpi-statistics.md`.

pub mod stats;
