//! `cargo xtask chart`: lints and renders the Helm chart in every scenario, validates what it
//! renders against the Kubernetes schemas, asserts our own rules and keeps `k8s/` in sync.

use std::{
    fs,
    path::{Path, PathBuf},
    process::Command,
    time::Instant,
};

use anyhow::{Context, Result, ensure};

use self::{
    checks::{check_common, check_metric_names, check_scenario, configs, parse},
    helm::{Helm, template_args},
};

mod checks;
mod helm;

/// The Kubernetes versions rendered objects are validated against (`kubernetes-validate -k`):
/// the oldest the chart supports (native gRPC probes, and the pod-index label kpi takes its
/// ordinal from, are on by default since 1.28), a middle one, and the newest with schemas.
pub(crate) const KUBERNETES_VERSIONS: [&str; 3] = ["1.28.0", "1.33.0", "1.37.0"];
const CHART: &str = "charts/iee";
const RELEASE: &str = "iee";
const NAMESPACE: &str = "iee";

#[derive(Debug, Default, clap::Args)]
pub(crate) struct ChartArgs {
    /// Rewrite `k8s/distributed` and `k8s/standalone` from the chart instead of checking them.
    #[arg(long)]
    bless: bool,
}

pub(crate) fn run(args: &ChartArgs) -> Result<()> {
    let started = Instant::now();
    let helm = Helm::locate()?;
    check_dashboards()?;
    let out = tempdir("render")?;
    let result = check(&helm, &out, args.bless);
    let _ = fs::remove_dir_all(&out);
    result?;
    eprintln!(
        "chart: ok in {:.1}s (kubernetes-validate --strict against {})",
        started.elapsed().as_secs_f64(),
        KUBERNETES_VERSIONS.join(", ")
    );
    Ok(())
}

/// Every scenario, every rejected values file, `k8s/`, then the schema validation of it all.
fn check(helm: &Helm, out: &Path, bless: bool) -> Result<()> {
    let mut rendered_files = Vec::new();
    for (name, values) in scenarios()? {
        let mut lint = vec!["lint", "--strict", CHART];
        if let Some(values) = values.as_deref() {
            lint.extend(["--values", values.to_str().expect("values paths are UTF-8")]);
        }
        helm.run(&lint)
            .with_context(|| format!("helm lint --strict ({name})"))?;
        let text = helm.template(values.as_deref())?;
        let docs = parse(&text).with_context(|| format!("parse the {name} rendering"))?;
        let tomls = configs(&docs).with_context(|| format!("scenario {name}"))?;
        check_common(&docs, &tomls).with_context(|| format!("scenario {name}"))?;
        check_scenario(&name, &docs, &tomls).with_context(|| format!("scenario {name}"))?;
        check_metric_names(&text).with_context(|| format!("scenario {name}"))?;
        let path = out.join(format!("{name}.yaml"));
        fs::write(&path, &text)?;
        rendered_files.push(path);
        eprintln!("chart: scenario {name}: {} objects ok", docs.len());
    }
    for (file, expected) in bad_values()? {
        let output = helm.output(&template_args(Some(&file)))?;
        let stderr = String::from_utf8_lossy(&output.stderr);
        ensure!(
            !output.status.success(),
            "{} was accepted; the chart must reject it",
            file.display()
        );
        ensure!(
            stderr.contains(&expected),
            "{} was rejected, but without `{expected}`:\n{stderr}",
            file.display()
        );
        eprintln!("chart: rejected {}: {expected}", file.display());
    }
    sync_manifests(helm, bless)?;
    rendered_files.extend(yaml_files(Path::new("k8s"))?);
    validate(&rendered_files)
}

/// The default rendering plus one per `charts/iee/ci/*-values.yaml`.
fn scenarios() -> Result<Vec<(String, Option<PathBuf>)>> {
    let mut list = vec![("defaults".to_owned(), None)];
    for path in yaml_files(Path::new(CHART).join("ci").as_path())? {
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_suffix("-values.yaml"))
            .with_context(|| format!("{} is not named <scenario>-values.yaml", path.display()))?
            .to_owned();
        list.push((name, Some(path)));
    }
    Ok(list)
}

/// `charts/iee/ci/bad/*.yaml` with the message each must be rejected with (`# expect: …`).
fn bad_values() -> Result<Vec<(PathBuf, String)>> {
    let mut list = Vec::new();
    for path in yaml_files(Path::new(CHART).join("ci/bad").as_path())? {
        let text = fs::read_to_string(&path)?;
        let expected = text
            .lines()
            .next()
            .and_then(|l| l.strip_prefix("# expect: "))
            .with_context(|| format!("{} lacks a first line `# expect: …`", path.display()))?;
        list.push((path, expected.to_owned()));
    }
    ensure!(!list.is_empty(), "no bad values files found");
    Ok(list)
}

fn yaml_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for entry in fs::read_dir(dir).with_context(|| format!("read {}", dir.display()))? {
        let path = entry?.path();
        if path.is_dir() {
            files.extend(
                yaml_files(&path)?
                    .into_iter()
                    .filter(|_| dir.starts_with("k8s")),
            );
        } else if path.extension().is_some_and(|e| e == "yaml") {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

fn tempdir(what: &str) -> Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("iee-chart-{what}-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir)?;
    Ok(dir)
}

/// The chart's dashboards are copies of `dashboards/*.json` (Helm cannot read outside the chart).
fn check_dashboards() -> Result<()> {
    let chart_dir = Path::new(CHART).join("dashboards");
    let mut names = Vec::new();
    for entry in fs::read_dir("dashboards")? {
        let path = entry?.path();
        let name = path.file_name().context("file name")?.to_owned();
        let copy = chart_dir.join(&name);
        serde_json::from_slice::<serde_json::Value>(&fs::read(&path)?)
            .with_context(|| format!("{} is not JSON", path.display()))?;
        ensure!(
            fs::read(&copy).ok() == Some(fs::read(&path)?),
            "{} differs from {}: cp dashboards/*.json {}/",
            copy.display(),
            path.display(),
            chart_dir.display()
        );
        names.push(name);
    }
    ensure!(
        fs::read_dir(&chart_dir)?.count() == names.len(),
        "{} holds a dashboard that is not in dashboards/",
        chart_dir.display()
    );
    Ok(())
}

/// `k8s/distributed` and `k8s/standalone` are the chart rendered with defaults (no test hooks).
fn sync_manifests(helm: &Helm, bless: bool) -> Result<()> {
    for (mode, file) in [
        ("distributed", "k8s/distributed/iee.yaml"),
        ("standalone", "k8s/standalone/iee.yaml"),
    ] {
        let mut args = template_args(None);
        let mode_arg = format!("mode={mode}");
        args.extend(["--set", &mode_arg, "--set", "tests.enabled=false"]);
        let text = format!(
            "# Rendered from charts/iee (mode: {mode}, release {RELEASE}, namespace {NAMESPACE}) by\n# `cargo xtask chart --bless`; do not edit.\n{}",
            helm.run(&args)?
        );
        let path = Path::new(file);
        if bless {
            fs::create_dir_all(path.parent().expect("a directory"))?;
            fs::write(path, &text)?;
            eprintln!("chart: wrote {file}");
        } else {
            ensure!(
                fs::read_to_string(path).ok().as_deref() == Some(text.as_str()),
                "{file} is out of date with the chart: run `cargo xtask chart --bless`"
            );
        }
    }
    Ok(())
}

/// Every rendered object against the Kubernetes OpenAPI schemas of every version in
/// [`KUBERNETES_VERSIONS`], unknown fields rejected.
fn validate(files: &[PathBuf]) -> Result<()> {
    for version in KUBERNETES_VERSIONS {
        let output = Command::new("kubernetes-validate")
            .args(["--strict", "--quiet", "-k", version])
            .args(files)
            .output()
            .context(
                "run kubernetes-validate (pip install kubernetes-validate; .ci/run does it)",
            )?;
        let stdout = String::from_utf8_lossy(&output.stdout);
        let stderr = String::from_utf8_lossy(&output.stderr);
        // Prometheus Operator kinds have no schema in kubernetes-validate; everything else must
        // pass.
        let problems: Vec<&str> = stdout
            .lines()
            .chain(stderr.lines())
            .filter(|l| !l.trim().is_empty())
            .filter(|l| {
                !(l.starts_with("WARN")
                    && l.contains("Couldn't find schema")
                    && l.contains("monitoring.coreos.com/"))
            })
            .collect();
        ensure!(
            problems.is_empty() && output.status.success(),
            "kubernetes-validate {version} found problems:\n{}",
            problems.join("\n")
        );
        eprintln!(
            "chart: {} files valid for Kubernetes {version}",
            files.len()
        );
    }
    Ok(())
}
