//! `iee demo`: runs the whole engine in this process, drives it with a simulated population of
//! customers, and shows what it learned and what it changed (a KPI table and a report).

mod args;
mod behaviour;
mod catalogue;
mod engine;
mod kpi;
mod population;
mod report;
mod run;
mod simulate;
mod table;
mod tally;
mod visit;

pub use args::DemoArgs;
pub use run::run;
