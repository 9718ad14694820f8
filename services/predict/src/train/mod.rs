//! Training from tabular exports: churn (logistic), lifetime value (BG/NBD + Gamma-Gamma) and
//! satisfaction (softmax) models as artifacts, with holdout metrics. Used by `iee train`.

mod churn;
mod clv;
pub mod csv;
pub mod dates;
mod error;
mod report;
mod satisfaction;

pub use churn::{ChurnOptions, train_churn};
pub use clv::{
    ClvOptions, CustomerSummary, TransactionColumns, TransactionSummary, holdout_comparison,
    load_summary, summarise_transactions, train_clv_summary, train_clv_transactions,
};
pub use error::TrainError;
pub use report::TrainReport;
pub use satisfaction::{CLASSES, SatisfactionOptions, nps_class, train_satisfaction};
