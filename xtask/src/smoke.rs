//! The smoke load test of CI: `loadtest/scenarios/smoke.toml` against a debug `iee standalone`
//! on the in-memory backend, reusing the build the tests made.

use std::{fs, path::Path, process::Command};

use anyhow::{Context, Result, bail};

use crate::loadtest::Iee;

pub fn run() -> Result<()> {
    let dir = Path::new("target/loadtest");
    fs::create_dir_all(dir)?;
    let iee = Iee::start(
        Path::new("target/debug/iee"),
        None,
        &dir.join("smoke.iee.log"),
    )?;
    let status = Command::new("target/debug/iee-loadtest")
        .args(["run", "--scenario", "loadtest/scenarios/smoke.toml"])
        .args(["--target", &format!("http://{}", iee.addr)])
        .args(["--report", "target/loadtest/smoke.json"])
        .status()
        .context("run target/debug/iee-loadtest")?;
    iee.stop()?;
    if !status.success() {
        bail!("smoke load test failed: {status}");
    }
    Ok(())
}
