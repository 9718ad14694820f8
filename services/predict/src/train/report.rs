//! What a training run tells its user: fitted parameters, holdout metrics and comparison tables,
//! printed by `iee train`.

use std::{collections::BTreeMap, fmt, time::Duration};

use crate::model::Kind;

/// The outcome of one training run, beside the artifact it produced.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainReport {
    /// The model trained.
    pub model_id: String,
    /// Its new version.
    pub version: String,
    /// What it predicts.
    pub kind: Kind,
    /// Wall-clock time of loading and fitting.
    pub elapsed: Duration,
    /// Rows (customers for lifetime value) the model was fitted on.
    pub training_rows: usize,
    /// Rows held out for evaluation (customers with a holdout period for lifetime value).
    pub holdout_rows: usize,
    /// Fitted parameters worth showing, in display order (r, α, a, b; p, q, v; …).
    pub parameters: Vec<(String, f64)>,
    /// Quality metrics, on the holdout unless the name says otherwise (as in the artifact).
    pub metrics: BTreeMap<String, f64>,
    /// Preformatted sections (largest weights, holdout comparisons), printed as they are.
    pub sections: Vec<String>,
}

impl fmt::Display for TrainReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "trained {} model {} version {} in {:.2} s",
            self.kind.as_str(),
            self.model_id,
            self.version,
            self.elapsed.as_secs_f64()
        )?;
        let noun = if self.kind == Kind::LifetimeValue {
            "customers"
        } else {
            "rows"
        };
        writeln!(
            f,
            "{noun}: {} training, {} holdout",
            self.training_rows, self.holdout_rows
        )?;
        if !self.parameters.is_empty() {
            writeln!(f, "parameters:")?;
            for (name, value) in &self.parameters {
                writeln!(f, "  {name:<12} {}", number(*value))?;
            }
        }
        if !self.metrics.is_empty() {
            writeln!(f, "metrics:")?;
            for (name, value) in &self.metrics {
                writeln!(f, "  {name:<36} {}", number(*value))?;
            }
        }
        for section in &self.sections {
            writeln!(f)?;
            write!(f, "{section}")?;
            if !section.ends_with('\n') {
                writeln!(f)?;
            }
        }
        Ok(())
    }
}

/// Six decimals for ordinary magnitudes, scientific notation for tiny or huge ones (so a
/// parameter at the edge of its range does not print as 0).
fn number(value: f64) -> String {
    let magnitude = value.abs();
    if value != 0.0 && !(1e-3..1e7).contains(&magnitude) {
        format!("{value:.6e}")
    } else {
        format!("{value:.6}")
    }
}
