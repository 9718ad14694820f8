//! `cargo xtask <task>`: what CI runs, runnable by anyone. `cargo xtask ci` is exactly CI.

mod chart;
mod loadtest;
mod neighbours;
mod smoke;

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "xtask")]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Debug, Subcommand)]
enum Task {
    /// Everything CI checks: format, lints, the Helm chart, build, all tests, the smoke load test.
    Ci,
    /// `buf lint` of the contracts, `cargo fmt --check` and clippy with warnings denied.
    Lint,
    /// Builds the binaries (process tests spawn them) and runs every test.
    Test,
    /// A short load test against a debug `iee standalone` (in-memory backend).
    Smoke,
    /// The ingest load-test scenarios against `iee standalone` on a private Redis, with the
    /// `redis-benchmark` XADD ceiling measured in the same run.
    Loadtest(loadtest::LoadtestArgs),
    /// The noisy-neighbour measurement: one tenant floods ingest while another's Decide
    /// latency is measured, with and without a per-tenant rate limit.
    Neighbours(neighbours::NeighboursArgs),
    /// Regenerates the example configuration files from the binaries' defaults.
    GenConfig,
    /// Lints and renders the Helm chart (charts/iee) in every scenario, validates the objects
    /// against the Kubernetes schemas, checks rejected values and that k8s/ is up to date.
    Chart(chart::ChartArgs),
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    std::env::set_current_dir(workspace_root())?;
    match cli.task {
        Task::Ci => {
            lint()?;
            chart::run(&chart::ChartArgs::default())?;
            test()?;
            smoke::run()
        }
        Task::Lint => lint(),
        Task::Test => test(),
        Task::Smoke => {
            cargo(&["build", "--workspace", "--bins"])?;
            smoke::run()
        }
        Task::Loadtest(args) => loadtest::run(args),
        Task::GenConfig => gen_config(),
        Task::Neighbours(args) => neighbours::run(&args),
        Task::Chart(args) => chart::run(&args),
    }
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives one level below the workspace root")
        .to_path_buf()
}

/// Runs `cargo <args>`, failing on a non-zero exit.
pub(crate) fn cargo(args: &[&str]) -> Result<()> {
    cargo_with(args, &[])
}

/// [`cargo`] with extra environment variables.
fn cargo_with(args: &[&str], envs: &[(&str, &str)]) -> Result<()> {
    eprintln!("$ cargo {}", args.join(" "));
    let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args(args)
        .envs(envs.iter().copied())
        .status()
        .with_context(|| format!("run cargo {}", args.join(" ")))?;
    if !status.success() {
        bail!("cargo {} failed: {status}", args.join(" "));
    }
    Ok(())
}

fn lint() -> Result<()> {
    proto_lint()?;
    cargo(&["fmt", "--all", "--check"])?;
    cargo(&[
        "clippy",
        "--workspace",
        "--all-targets",
        "--locked",
        "--",
        "-D",
        "warnings",
    ])?;
    // The optional ONNX runtime (docs/onnx.md) is off in the workspace build.
    cargo(&[
        "clippy",
        "-p",
        "iee-predict",
        "--features",
        "onnx",
        "--all-targets",
        "--locked",
        "--",
        "-D",
        "warnings",
    ])?;
    // The optional Kubernetes membership (docs/deploy.md) is off in the workspace build.
    cargo(&[
        "clippy",
        "-p",
        "iee-profile",
        "--features",
        "kube",
        "--all-targets",
        "--locked",
        "--",
        "-D",
        "warnings",
    ])
}

/// `buf lint` on the contracts: naming rules and a comment on every element.
fn proto_lint() -> Result<()> {
    eprintln!("$ buf lint (in proto/)");
    let status = Command::new("buf")
        .arg("lint")
        .current_dir("proto")
        .status()
        .context("run buf (npm install --global @bufbuild/buf; .ci/run does it)")?;
    if !status.success() {
        bail!("buf lint found problems in proto/");
    }
    Ok(())
}

/// The seed of the property tests in `cargo xtask test` (and so in CI).
const FUZZ_SEED: &str = "20261122";

fn test() -> Result<()> {
    // Process tests spawn the service binaries (`iee`, `iee-ingest`, …) from target/debug.
    cargo(&["build", "--workspace", "--bins", "--locked"])?;
    // The property tests (fuzzing of validation, configurations and queries) run with a fixed
    // seed here, so that whether a change lands never depends on which cases a random seed
    // drew; run them with PROPTEST_RNG_SEED unset (plain `cargo test`) or set to any number,
    // and PROPTEST_CASES raised, to explore.
    let seed = std::env::var("PROPTEST_RNG_SEED").unwrap_or_else(|_| FUZZ_SEED.to_owned());
    let fuzz_seed = [("PROPTEST_RNG_SEED", seed.as_str())];
    cargo_with(&["test", "--workspace", "--locked"], &fuzz_seed)?;
    // The optional ONNX runtime (docs/onnx.md) is off in the workspace build.
    cargo(&[
        "test",
        "-p",
        "iee-predict",
        "--features",
        "onnx",
        "--locked",
    ])?;
    // The optional Kubernetes membership (docs/deploy.md) is off in the workspace build.
    cargo(&[
        "test",
        "-p",
        "iee-profile",
        "--features",
        "kube",
        "--locked",
    ])
}

fn gen_config() -> Result<()> {
    cargo(&[
        "build",
        "-p",
        "iee",
        "-p",
        "iee-ingest",
        "-p",
        "iee-profile",
        "-p",
        "iee-predict",
        "-p",
        "iee-decide",
        "-p",
        "iee-kpi",
    ])?;
    for (binary, args, example) in [
        (
            "iee",
            &["standalone", "--print-config"][..],
            "services/standalone/iee.example.toml",
        ),
        (
            "iee-ingest",
            &["--print-config"][..],
            "services/ingest/iee-ingest.example.toml",
        ),
        (
            "iee-profile",
            &["--print-config"][..],
            "services/profile/iee-profile.example.toml",
        ),
        (
            "iee-predict",
            &["--print-config"][..],
            "services/predict/iee-predict.example.toml",
        ),
        (
            "iee-decide",
            &["--print-config"][..],
            "services/decide/iee-decide.example.toml",
        ),
        (
            "iee-kpi",
            &["--print-config"][..],
            "services/kpi/iee-kpi.example.toml",
        ),
    ] {
        let mut command = Command::new(Path::new("target/debug").join(binary));
        command.args(args);
        for (key, _) in std::env::vars() {
            if key.starts_with("IEE_") {
                command.env_remove(key);
            }
        }
        let output = command.output().with_context(|| format!("run {binary}"))?;
        if !output.status.success() {
            bail!("{binary} --print-config failed");
        }
        std::fs::write(example, output.stdout)?;
        eprintln!("wrote {example}");
    }
    Ok(())
}
