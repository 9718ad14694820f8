//! Why training from an export failed, with the row, column and value at fault so the export
//! can be fixed.

use crate::model::{ArtifactError, FitError};

/// A training failure.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// The file is not readable CSV (ragged rows, bad UTF-8, I/O).
    #[error("cannot read the CSV: {0}")]
    Csv(String),
    /// A required column is absent.
    #[error("the CSV has no column {column:?}; its columns are: {}", found.join(", "))]
    MissingColumn {
        /// The column asked for.
        column: String,
        /// The columns the header has.
        found: Vec<String>,
    },
    /// A cell that must be of a given form is not.
    #[error("row {row} (line {line}): {column} {value:?} {expected}")]
    BadValue {
        /// Data row, 1-based (the header is not counted).
        row: usize,
        /// Line in the file, 1-based.
        line: u64,
        /// The column.
        column: String,
        /// The offending text.
        value: String,
        /// What it should have been, as a phrase ("is not a label: use 1/0, …").
        expected: String,
    },
    /// The options or the data as a whole cannot be used.
    #[error("{0}")]
    Invalid(String),
    /// The model could not be fitted.
    #[error(transparent)]
    Fit(#[from] FitError),
    /// The fitted model failed its own artifact checks (a bug if it happens).
    #[error(transparent)]
    Artifact(#[from] ArtifactError),
}
