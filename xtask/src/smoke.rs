//! The smoke load test of CI: `loadtest/scenarios/smoke.toml` against a debug `iee standalone`
//! on the in-memory backend, reusing the build the tests made.

use std::{
    io::{BufRead, BufReader},
    process::{Command, Stdio},
};

use anyhow::{Context, Result, bail};

pub fn run() -> Result<()> {
    let mut iee = Command::new("target/debug/iee")
        .args([
            "standalone",
            "--listen",
            "127.0.0.1:0",
            "--metrics-listen",
            "",
        ])
        .env("IEE_TELEMETRY__LOG_FILTER", "warn")
        .stdout(Stdio::piped())
        .spawn()
        .context("start target/debug/iee (build it first)")?;
    let result = (|| {
        let stdout = iee.stdout.take().context("iee stdout")?;
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line)?;
        let addr = line
            .trim()
            .strip_prefix("listening on ")
            .with_context(|| format!("unexpected first line from iee: {line:?}"))?
            .to_owned();
        std::fs::create_dir_all("target/loadtest")?;
        let status = Command::new("target/debug/iee-loadtest")
            .args(["run", "--scenario", "loadtest/scenarios/smoke.toml"])
            .args(["--target", &format!("http://{addr}")])
            .args(["--report", "target/loadtest/smoke.json"])
            .status()
            .context("run target/debug/iee-loadtest")?;
        if !status.success() {
            bail!("smoke load test failed: {status}");
        }
        Ok(())
    })();
    let _ = Command::new("kill")
        .args(["-TERM", &iee.id().to_string()])
        .status();
    let exit = iee.wait()?;
    result?;
    if !exit.success() {
        bail!("iee standalone did not exit cleanly after SIGTERM: {exit}");
    }
    Ok(())
}
