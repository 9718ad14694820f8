//! `iee train churn|clv|satisfaction`: fits a model from a tabular export, prints its parameters,
//! holdout metrics and comparisons, and writes the model artifact (JSON) for registration.

use std::{
    fs::File,
    io::BufReader,
    path::{Path, PathBuf},
    process::ExitCode,
};

use anyhow::Context;
use iee_predict::{
    model::ModelArtifact,
    train::{
        self, ChurnOptions, ClvOptions, SatisfactionOptions, TrainReport, TransactionColumns,
        dates::parse_date,
    },
};

/// Training commands.
#[derive(Debug, clap::Subcommand)]
pub enum TrainCommand {
    /// Churn: L2-regularised logistic regression from a labelled CSV. Numeric columns are
    /// standardised, text columns one-hot encoded, blanks imputed; a stratified holdout reports
    /// ROC AUC, PR AUC, log loss and Brier score.
    Churn(ChurnArgs),
    /// Lifetime value: BG/NBD (+ Gamma-Gamma with amounts) from transactions or an RFM summary,
    /// fitted by maximum likelihood; with a holdout period, predicted vs actual repeat purchases.
    Clv(ClvArgs),
    /// Satisfaction: multinomial logistic regression from features to the NPS class (promoter
    /// 9-10, passive 7-8, detractor 0-6); rows without an answer are skipped.
    Satisfaction(SatisfactionArgs),
}

/// `iee train churn`.
#[derive(Debug, clap::Args)]
pub struct ChurnArgs {
    /// The CSV export, with a header row.
    #[arg(long, value_name = "FILE")]
    csv: PathBuf,
    /// The label column: 1/0, true/false or yes/no (any case).
    #[arg(long, value_name = "COLUMN")]
    label: String,
    /// A row identifier column, excluded from the features.
    #[arg(long, value_name = "COLUMN")]
    id: Option<String>,
    /// A column to leave out of the features (repeatable); `PREFIX*` leaves out every column
    /// starting with PREFIX, if any. A name matching no column is an error.
    #[arg(long, value_name = "COLUMN")]
    exclude: Vec<String>,
    /// Share of each class held out for evaluation (0 to 0.9).
    #[arg(long, default_value_t = 0.2)]
    test_fraction: f64,
    /// Seed of the holdout split.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Ridge penalty on the standardised weights.
    #[arg(long, default_value_t = 1.0)]
    l2: f64,
    /// The horizon the label was defined over, in days (recorded with the model).
    #[arg(long, default_value_t = 90.0)]
    horizon_days: f64,
    /// The model id.
    #[arg(long, default_value = "churn-logreg")]
    model_id: String,
    /// Where to write the artifact; default `<model_id>-<version>.json`.
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
}

/// `iee train clv`.
#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("input").required(true).args(["transactions", "summary"])))]
pub struct ClvArgs {
    /// A transaction CSV (one row per purchase); needs --customer and --date.
    #[arg(long, value_name = "CSV", requires_all = ["customer", "date"])]
    transactions: Option<PathBuf>,
    /// An RFM summary CSV with columns frequency, recency, T and optionally monetary_value.
    #[arg(long, value_name = "CSV")]
    summary: Option<PathBuf>,
    /// The customer id column of the transactions.
    #[arg(long, value_name = "COL")]
    customer: Option<String>,
    /// The date column of the transactions (YYYY-MM-DD, YYYY/MM/DD or YYYYMMDD).
    #[arg(long, value_name = "COL")]
    date: Option<String>,
    /// The amount column of the transactions; without it no spend model is fitted.
    #[arg(long, value_name = "COL")]
    amount: Option<String>,
    /// Last day of the calibration period (YYYY-MM-DD); later purchases form the holdout.
    #[arg(long, value_name = "DATE", value_parser = date_arg)]
    calibration_end: Option<i64>,
    /// Last day of the holdout period (YYYY-MM-DD); default the last date in the data.
    #[arg(long, value_name = "DATE", value_parser = date_arg, requires = "calibration_end")]
    holdout_end: Option<i64>,
    /// Days per time unit of the summary (7 if recency and T are in weeks).
    #[arg(long, default_value_t = 1.0, conflicts_with = "transactions")]
    time_unit_days: f64,
    /// ISO 4217 currency of the amounts.
    #[arg(long, default_value = "USD")]
    currency: String,
    /// L2 penalty on the parameters, as the reference implementation's penalizer_coef.
    #[arg(long, default_value_t = 0.0)]
    penalizer: f64,
    /// The model id.
    #[arg(long, default_value = "clv-bgnbd")]
    model_id: String,
    /// Where to write the artifact; default `<model_id>-<version>.json`.
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
}

/// `iee train satisfaction`.
#[derive(Debug, clap::Args)]
pub struct SatisfactionArgs {
    /// The CSV export, with a header row.
    #[arg(long, value_name = "FILE")]
    csv: PathBuf,
    /// The NPS answer column (0-10); rows with a blank answer are skipped. It is never a
    /// feature, nor is `<survey>.days_since` beside a `<survey>.score` column.
    #[arg(long, value_name = "COLUMN")]
    nps: String,
    /// A row identifier column, excluded from the features.
    #[arg(long, value_name = "COLUMN")]
    id: Option<String>,
    /// A column to leave out of the features (repeatable); `PREFIX*` leaves out every column
    /// starting with PREFIX, if any. A name matching no column is an error.
    #[arg(long, value_name = "COLUMN")]
    exclude: Vec<String>,
    /// Share of each class held out for evaluation (0 to 0.9).
    #[arg(long, default_value_t = 0.2)]
    test_fraction: f64,
    /// Seed of the holdout split.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Ridge penalty on the standardised weights.
    #[arg(long, default_value_t = 1.0)]
    l2: f64,
    /// The model id.
    #[arg(long, default_value = "satisfaction-softmax")]
    model_id: String,
    /// Where to write the artifact; default `<model_id>-<version>.json`.
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
}

fn date_arg(text: &str) -> Result<i64, String> {
    parse_date(text).ok_or_else(|| format!("{text:?} is not a date (YYYY-MM-DD)"))
}

fn open(path: &Path) -> anyhow::Result<BufReader<File>> {
    let file = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    Ok(BufReader::new(file))
}

fn source(path: &Path) -> Option<String> {
    path.file_name().map(|n| n.to_string_lossy().into_owned())
}

/// Runs a training command: 0 on success, an error (exit 2) otherwise.
pub fn run(command: TrainCommand) -> anyhow::Result<ExitCode> {
    let (artifact, report, out) = match command {
        TrainCommand::Churn(args) => {
            let options = ChurnOptions {
                id: args.id,
                exclude: args.exclude,
                test_fraction: args.test_fraction,
                seed: args.seed,
                l2: args.l2,
                model_id: args.model_id,
                horizon_days: args.horizon_days,
                source: source(&args.csv),
                ..ChurnOptions::new(args.label)
            };
            let (artifact, report) = train::train_churn(open(&args.csv)?, &options)
                .with_context(|| format!("training on {}", args.csv.display()))?;
            (artifact, report, args.out)
        }
        TrainCommand::Clv(args) => {
            let mut options = ClvOptions {
                model_id: args.model_id,
                penalizer: args.penalizer,
                currency: args.currency,
                time_unit_days: args.time_unit_days,
                source: None,
            };
            let (artifact, report) = match (args.transactions, args.summary) {
                (Some(path), _) => {
                    let columns = TransactionColumns {
                        customer: args.customer.unwrap_or_default(),
                        date: args.date.unwrap_or_default(),
                        amount: args.amount,
                        calibration_end: args.calibration_end,
                        holdout_end: args.holdout_end,
                    };
                    options.source = source(&path);
                    train::train_clv_transactions(open(&path)?, &columns, &options)
                        .with_context(|| format!("training on {}", path.display()))?
                }
                (None, Some(path)) => {
                    options.source = source(&path);
                    train::train_clv_summary(open(&path)?, &options)
                        .with_context(|| format!("training on {}", path.display()))?
                }
                (None, None) => anyhow::bail!("give --transactions or --summary"),
            };
            (artifact, report, args.out)
        }
        TrainCommand::Satisfaction(args) => {
            let options = SatisfactionOptions {
                id: args.id,
                exclude: args.exclude,
                test_fraction: args.test_fraction,
                seed: args.seed,
                l2: args.l2,
                model_id: args.model_id,
                source: source(&args.csv),
                ..SatisfactionOptions::new(args.nps)
            };
            let (artifact, report) = train::train_satisfaction(open(&args.csv)?, &options)
                .with_context(|| format!("training on {}", args.csv.display()))?;
            (artifact, report, args.out)
        }
    };
    write(&artifact, &report, out)?;
    Ok(ExitCode::SUCCESS)
}

fn write(
    artifact: &ModelArtifact,
    report: &TrainReport,
    out: Option<PathBuf>,
) -> anyhow::Result<()> {
    let path = out.unwrap_or_else(|| {
        PathBuf::from(format!("{}-{}.json", artifact.model_id, artifact.version))
    });
    std::fs::write(&path, artifact.to_json())
        .with_context(|| format!("cannot write {}", path.display()))?;
    print!("{report}");
    println!();
    println!("artifact: {}", path.display());
    Ok(())
}
