//! `iee profiles export|label-churn`: point-in-time feature snapshots of a tenant's stored
//! profiles as CSV, and churn labels for an old snapshot from what a later snapshot shows.

mod command;
mod export;
mod label;

pub use command::{ProfilesCommand, run};
