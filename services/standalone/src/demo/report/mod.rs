//! The demo's report: hand-written SVG plots, an HTML page that explains them, and a JSON
//! summary of the numbers.

mod data;
mod html;
mod plots;
mod svg;
mod write;

pub use data::ReportData;
pub use plots::KpiPlot;
pub use write::{FILES, write_report};
