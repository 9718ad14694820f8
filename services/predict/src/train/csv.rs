//! Any tabular export as training rows: numeric and text columns told apart by their values,
//! blanks as missing, labels in their usual spellings, and a stratified holdout split.

use std::{collections::HashSet, io::Read};

use iee_api::pb::predict::FeatureVector;
use rand::{SeedableRng, rngs::SmallRng, seq::SliceRandom};

use super::TrainError;

/// A CSV file read whole: trimmed cells under a header of unique names.
#[derive(Debug, Clone, PartialEq)]
pub struct Table {
    /// Column names, in file order.
    pub headers: Vec<String>,
    /// Data rows, one cell per column.
    pub records: Vec<Vec<String>>,
    /// The 1-based file line each data row starts on (for error messages).
    pub lines: Vec<u64>,
}

/// Feature columns turned into feature vectors.
#[derive(Debug, Clone, PartialEq)]
pub struct Features {
    /// Columns whose non-blank cells are all finite numbers, in file order.
    pub numeric: Vec<String>,
    /// Every other feature column, in file order.
    pub categorical: Vec<String>,
    /// One feature vector per data row; blank cells are left out (missing).
    pub rows: Vec<FeatureVector>,
}

/// Whether a cell counts as missing: blank, or a common "not available" marker (`NA`, `N/A`,
/// `NaN`, `null`, any case) that exports write for empty values.
pub fn is_missing(cell: &str) -> bool {
    let cell = cell.trim();
    cell.is_empty()
        || ["na", "n/a", "nan", "null"]
            .iter()
            .any(|m| cell.eq_ignore_ascii_case(m))
}

/// A binary label: `1`/`0`, `true`/`false`, `yes`/`no` (any case; also `1.0`/`0.0`, `y`/`n`,
/// `t`/`f`) → 1 or 0.
pub fn parse_label(cell: &str) -> Option<f64> {
    let cell = cell.trim().to_ascii_lowercase();
    match cell.as_str() {
        "1" | "true" | "yes" | "y" | "t" => Some(1.0),
        "0" | "false" | "no" | "n" | "f" => Some(0.0),
        _ => match cell.parse::<f64>() {
            Ok(1.0) => Some(1.0),
            Ok(0.0) => Some(0.0),
            _ => None,
        },
    }
}

impl Table {
    /// Reads a CSV with a header row. Rows must have as many cells as the header; header names
    /// must be unique and non-empty.
    pub fn read(reader: impl Read) -> Result<Table, TrainError> {
        let mut csv = ::csv::ReaderBuilder::new()
            .trim(::csv::Trim::All)
            .from_reader(reader);
        let headers: Vec<String> = csv
            .headers()
            .map_err(|e| TrainError::Csv(e.to_string()))?
            .iter()
            .map(|h| h.trim_start_matches('\u{feff}').to_owned())
            .collect();
        if headers.is_empty() {
            return Err(TrainError::Csv(
                "the file is empty (no header row)".to_owned(),
            ));
        }
        let mut seen = HashSet::new();
        for h in &headers {
            if h.is_empty() {
                return Err(TrainError::Csv(
                    "the header has an empty column name".to_owned(),
                ));
            }
            if !seen.insert(h.as_str()) {
                return Err(TrainError::Csv(format!(
                    "the header names column {h:?} twice"
                )));
            }
        }
        let mut records = Vec::new();
        let mut lines = Vec::new();
        for record in csv.records() {
            let record = record.map_err(|e| TrainError::Csv(e.to_string()))?;
            lines.push(record.position().map_or(0, |p| p.line()));
            records.push(record.iter().map(str::to_owned).collect());
        }
        Ok(Table {
            headers,
            records,
            lines,
        })
    }

    /// The index of a column, or an error naming it and listing the columns found.
    pub fn column(&self, name: &str) -> Result<usize, TrainError> {
        self.headers
            .iter()
            .position(|h| h == name)
            .ok_or_else(|| TrainError::MissingColumn {
                column: name.to_owned(),
                found: self.headers.clone(),
            })
    }

    /// The indices of the columns `names` pick: exact names, or prefixes ending in `*`
    /// (`experience.*`). An exact name that matches no column is an error listing the columns,
    /// so a misspelt exclusion does not pass silently; a prefix may match none (an export has
    /// no column for a feature family no row has).
    pub fn matching(&self, names: &[String]) -> Result<Vec<usize>, TrainError> {
        let mut out = Vec::new();
        for name in names {
            match name.strip_suffix('*') {
                Some(prefix) => out.extend(
                    (0..self.headers.len()).filter(|&c| self.headers[c].starts_with(prefix)),
                ),
                None => out.push(self.column(name)?),
            }
        }
        Ok(out)
    }

    /// An error about the cell of data row `row` (0-based) in column `col`.
    pub fn bad_value(&self, row: usize, col: usize, expected: &str) -> TrainError {
        TrainError::BadValue {
            row: row + 1,
            line: self.lines.get(row).copied().unwrap_or(0),
            column: self.headers[col].clone(),
            value: self.records[row][col].clone(),
            expected: expected.to_owned(),
        }
    }

    /// Every column except `exclude` as features of the rows in `keep` (all rows if `None`).
    /// A column is numeric when all its non-missing cells parse as finite numbers.
    pub fn features(&self, exclude: &[usize], keep: Option<&[usize]>) -> Features {
        let all: Vec<usize> = (0..self.records.len()).collect();
        let keep = keep.unwrap_or(&all);
        let columns: Vec<usize> = (0..self.headers.len())
            .filter(|c| !exclude.contains(c))
            .collect();
        let is_numeric: Vec<bool> = columns
            .iter()
            .map(|&c| {
                keep.iter().all(|&r| {
                    let cell = &self.records[r][c];
                    is_missing(cell) || cell.parse::<f64>().is_ok_and(f64::is_finite)
                })
            })
            .collect();
        let rows = keep
            .iter()
            .map(|&r| {
                let mut row = FeatureVector::default();
                for (&c, &numeric) in columns.iter().zip(&is_numeric) {
                    let cell = &self.records[r][c];
                    if is_missing(cell) {
                        continue;
                    }
                    let name = self.headers[c].clone();
                    if numeric {
                        if let Ok(v) = cell.parse::<f64>() {
                            row.numeric.insert(name, v);
                        }
                    } else {
                        row.categorical.insert(name, cell.clone());
                    }
                }
                row
            })
            .collect();
        let names = |want: bool| {
            columns
                .iter()
                .zip(&is_numeric)
                .filter(|(_, n)| **n == want)
                .map(|(&c, _)| self.headers[c].clone())
                .collect()
        };
        Features {
            numeric: names(true),
            categorical: names(false),
            rows,
        }
    }
}

/// A labelled export: features, binary labels, and the feature columns used.
#[derive(Debug, Clone, PartialEq)]
pub struct Labelled {
    /// The features of every row.
    pub features: Features,
    /// One label per row, 0 or 1.
    pub labels: Vec<f64>,
}

/// Reads a CSV with a binary `label` column; every other column except `id` is a feature.
pub fn load_labelled(
    reader: impl Read,
    label: &str,
    id: Option<&str>,
) -> Result<Labelled, TrainError> {
    load_labelled_excluding(reader, label, id, &[])
}

/// As [`load_labelled`], also leaving out of the features the columns `excluded` names (see
/// [`Table::matching`]).
pub fn load_labelled_excluding(
    reader: impl Read,
    label: &str,
    id: Option<&str>,
    excluded: &[String],
) -> Result<Labelled, TrainError> {
    let table = Table::read(reader)?;
    let label_col = table.column(label)?;
    let mut exclude = vec![label_col];
    if let Some(id) = id {
        exclude.push(table.column(id)?);
    }
    exclude.extend(table.matching(excluded)?);
    let labels = (0..table.records.len())
        .map(|r| {
            parse_label(&table.records[r][label_col]).ok_or_else(|| {
                table.bad_value(
                    r,
                    label_col,
                    "is not a label: use 1/0, true/false or yes/no",
                )
            })
        })
        .collect::<Result<Vec<f64>, TrainError>>()?;
    if labels.is_empty() {
        return Err(TrainError::Invalid("the CSV has no data rows".to_owned()));
    }
    Ok(Labelled {
        features: table.features(&exclude, None),
        labels,
    })
}

/// Row indices of a training part and a holdout part.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Split {
    /// Rows to fit on, ascending.
    pub train: Vec<usize>,
    /// Rows to evaluate on, ascending.
    pub test: Vec<usize>,
}

/// Holds out `test_fraction` of the rows of each class (rounded; at least one of each class
/// with two or more rows when the fraction is positive, never all of a class), chosen by a
/// seeded shuffle, so both parts keep the class balance and a seed reproduces the split.
pub fn stratified_split(classes: &[usize], test_fraction: f64, seed: u64) -> Split {
    let mut rng = SmallRng::seed_from_u64(seed);
    let n_classes = classes.iter().copied().max().map_or(0, |m| m + 1);
    let mut train = Vec::new();
    let mut test = Vec::new();
    for class in 0..n_classes {
        let mut rows: Vec<usize> = (0..classes.len())
            .filter(|&i| classes[i] == class)
            .collect();
        rows.shuffle(&mut rng);
        let n = rows.len();
        let mut n_test = (n as f64 * test_fraction).round() as usize;
        if test_fraction > 0.0 && n >= 2 {
            n_test = n_test.max(1);
        }
        n_test = n_test.min(n.saturating_sub(1));
        test.extend_from_slice(&rows[..n_test]);
        train.extend_from_slice(&rows[n_test..]);
    }
    train.sort_unstable();
    test.sort_unstable();
    Split { train, test }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const MIXED: &str = "\
customer,age,plan,spend,churned
c1,34,pro,12.5,yes
c2,,basic,,No
c3,51,,7,TRUE
c4,28,basic,NA,false
c5,40,pro,3,1
c6,45,enterprise,0.5,0
";

    #[test]
    fn detects_numeric_and_text_columns_and_leaves_blanks_missing() {
        let data = load_labelled(MIXED.as_bytes(), "churned", Some("customer")).unwrap();
        assert_eq!(data.features.numeric, vec!["age", "spend"]);
        assert_eq!(data.features.categorical, vec!["plan"]);
        let rows = &data.features.rows;
        assert_eq!(rows[0].numeric["age"], 34.0);
        assert_eq!(rows[0].categorical["plan"], "pro");
        assert!(!rows[1].numeric.contains_key("age"), "blank is missing");
        assert!(
            !rows[2].categorical.contains_key("plan"),
            "blank text is missing"
        );
        assert!(!rows[3].numeric.contains_key("spend"), "NA is missing");
        assert!(
            !rows[0].categorical.contains_key("customer"),
            "the id is not a feature"
        );
    }

    #[test]
    fn reads_each_label_spelling() {
        let data = load_labelled(MIXED.as_bytes(), "churned", None).unwrap();
        assert_eq!(data.labels, vec![1.0, 0.0, 1.0, 0.0, 1.0, 0.0]);
        // Without --id the id column is just another (text) feature.
        assert_eq!(data.features.categorical, vec!["customer", "plan"]);
        for (cell, want) in [
            ("1", 1.0),
            ("0", 0.0),
            ("true", 1.0),
            ("False", 0.0),
            ("YES", 1.0),
            ("no", 0.0),
            ("1.0", 1.0),
        ] {
            assert_eq!(parse_label(cell), Some(want), "{cell}");
        }
        for cell in ["2", "maybe", "", "-1"] {
            assert_eq!(parse_label(cell), None, "{cell}");
        }
    }

    #[test]
    fn an_unparseable_label_names_the_row_and_value() {
        let csv = "x,churned\n1,yes\n2,maybe\n";
        let err = load_labelled(csv.as_bytes(), "churned", None).unwrap_err();
        let message = err.to_string();
        assert!(
            message.contains("row 2")
                && message.contains("\"maybe\"")
                && message.contains("line 3"),
            "{message}"
        );
    }

    #[test]
    fn a_csv_without_the_label_column_is_refused_naming_the_columns() {
        let err = load_labelled(MIXED.as_bytes(), "left", None).unwrap_err();
        assert!(matches!(err, TrainError::MissingColumn { .. }));
        assert_eq!(
            err.to_string(),
            "the CSV has no column \"left\"; its columns are: customer, age, plan, spend, churned"
        );
        let err = load_labelled(MIXED.as_bytes(), "churned", Some("id")).unwrap_err();
        assert!(err.to_string().contains("no column \"id\""), "{err}");
    }

    #[test]
    fn refuses_ragged_rows_and_duplicate_headers() {
        let err = Table::read("a,b\n1,2\n3\n".as_bytes()).unwrap_err();
        assert!(matches!(err, TrainError::Csv(_)), "{err}");
        let err = Table::read("a,a\n1,2\n".as_bytes()).unwrap_err();
        assert!(err.to_string().contains("twice"), "{err}");
    }

    #[test]
    fn stratified_split_keeps_the_class_balance_and_is_reproducible() {
        let classes: Vec<usize> = (0..1000).map(|i| usize::from(i % 10 == 0)).collect();
        let split = stratified_split(&classes, 0.2, 42);
        assert_eq!(split.test.len(), 200);
        assert_eq!(split.test.iter().filter(|&&i| classes[i] == 1).count(), 20);
        assert_eq!(split.train.len() + split.test.len(), 1000);
        assert_eq!(split, stratified_split(&classes, 0.2, 42));
        assert_ne!(split, stratified_split(&classes, 0.2, 43));
        // A rare class still reaches both parts.
        let rare = [0, 0, 0, 0, 1, 1];
        let split = stratified_split(&rare, 0.2, 1);
        assert_eq!(split.test.iter().filter(|&&i| rare[i] == 1).count(), 1);
        assert_eq!(stratified_split(&rare, 0.0, 1).test, Vec::<usize>::new());
    }
}
