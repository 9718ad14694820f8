//! The read side of the KPI service: metric series (`QueryMetrics`), experiment comparisons
//! (`GetExperiment`) and the metric catalogue (`ListMetrics`), computed from the stored sums.

mod estimate;
mod experiment;
mod list;
mod marks;
mod metrics;
mod plan;
mod reader;
mod request;
mod time;

#[cfg(test)]
mod tests;

pub use experiment::{CONTROL_ARM, get_experiment};
pub use list::list_metrics;
pub use metrics::query_metrics;
pub use reader::{DEFAULT_MAX_STORE_BUCKETS, Reader};
