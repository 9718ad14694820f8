//! Writes the report directory: `index.html`, `learning.svg`, `kpis.svg`, `uplift.svg` and
//! `summary.json`.

use std::path::Path;

use anyhow::Context;

use super::data::ReportData;
use super::{html, plots};

/// The files of a report, in the order they are written.
pub const FILES: [&str; 5] = [
    "learning.svg",
    "kpis.svg",
    "uplift.svg",
    "summary.json",
    "index.html",
];

/// Writes every file of the report into `dir`, creating it if needed.
pub fn write_report(dir: &Path, data: &ReportData<'_>) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)
        .with_context(|| format!("creating the report directory {}", dir.display()))?;
    let summary = serde_json::to_string_pretty(&data.summary()).context("encoding summary.json")?;
    let contents = [
        plots::learning(data.rounds, data.chance, data.smooth),
        plots::kpis(&data.kpi_plot),
        plots::uplift(data.table),
        summary + "\n",
        html::index(data),
    ];
    for (name, content) in FILES.iter().zip(contents) {
        let path = dir.join(name);
        std::fs::write(&path, content).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}
