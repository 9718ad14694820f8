//! Open-loop load generator for the ingest service: declarative TOML scenarios, deterministic
//! events, latency measured from each request's scheduled time, and pass/fail thresholds.

pub mod generator;
pub mod neighbours;
pub mod report;
pub mod run;
pub mod scenario;
pub mod stats;
pub mod stream;
pub mod unary;
