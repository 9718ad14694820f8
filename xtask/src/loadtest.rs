//! `cargo xtask loadtest`: runs the ingest load-test scenarios against a fresh standalone `iee`
//! on a private redis-server, and compares each with redis' own XADD ceiling on this machine.

use std::{
    fs,
    io::{BufRead, BufReader, Write},
    net::{SocketAddr, TcpListener},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::mpsc,
    thread,
    time::{Duration, Instant},
};

use anyhow::{Context, Result, anyhow, bail};

/// The scenarios run when none are named.
const DEFAULT_SCENARIOS: [&str; 6] = [
    "ingest-unary-batch1",
    "ingest-unary-batch100",
    "ingest-unary-batch1000",
    "ingest-stream-batch1",
    "ingest-stream-batch100",
    "ingest-stream-batch1000",
];
/// How long redis-server may take to answer PING.
const REDIS_START_TIMEOUT: Duration = Duration::from_secs(10);
/// How long `iee` may take to print its listening address.
const IEE_START_TIMEOUT: Duration = Duration::from_secs(60);
/// How long `iee` may take to shut down after SIGTERM before it is killed.
const IEE_STOP_TIMEOUT: Duration = Duration::from_secs(20);
/// Exit code of `iee-loadtest` when a threshold was breached (0: passed, 2: usage error).
const LOADTEST_BREACHED: i32 = 1;

/// Runs ingest load-test scenarios against a fresh standalone `iee` on a private redis-server.
#[derive(Debug, Clone, clap::Args)]
pub struct LoadtestArgs {
    /// Scenario names (files in loadtest/scenarios, without `.toml`) or paths to scenario files.
    #[arg(default_values_t = DEFAULT_SCENARIOS.map(String::from))]
    pub scenarios: Vec<String>,
    /// Build and run the release profile (what published numbers must use).
    #[arg(long)]
    pub release: bool,
    /// Skip the redis-benchmark XADD ceiling measurement.
    #[arg(long)]
    pub skip_ceiling: bool,
    /// Where the per-scenario reports, server logs and summary.json go.
    #[arg(long, default_value = "target/loadtest")]
    pub report_dir: PathBuf,
}

/// Builds, starts redis, measures the ceiling, runs every scenario, prints the table.
pub fn run(args: LoadtestArgs) -> Result<()> {
    let root = workspace_root();
    let profile = if args.release { "release" } else { "debug" };
    let report_dir = root.join(&args.report_dir);
    fs::create_dir_all(&report_dir)
        .with_context(|| format!("cannot create {}", report_dir.display()))?;
    let scenarios = args
        .scenarios
        .iter()
        .map(|s| scenario_path(&root, s))
        .collect::<Result<Vec<_>>>()?;

    build(&root, args.release)?;
    let bin_dir = target_dir(&root).join(profile);
    let iee = bin_dir.join("iee");
    let loadtest = bin_dir.join("iee-loadtest");

    let redis = Redis::start(&report_dir)?;
    let ceiling = if args.skip_ceiling {
        None
    } else {
        let c = redis.xadd_ceiling()?;
        println!("redis XADD ceiling: {c:.0} requests/s (redis-benchmark -P 64)");
        Some(c)
    };

    let mut rows = Vec::new();
    for (name, path) in &scenarios {
        redis.flushall()?;
        let report_path = report_dir.join(format!("{name}.json"));
        // A stale report must not pass for this run's.
        let _ = fs::remove_file(&report_path);
        let server = Iee::start(
            &iee,
            Some(redis.port),
            &report_dir.join(format!("{name}.iee.log")),
        )?;
        println!("== {name}: iee listening on {}", server.addr);
        let status = Command::new(&loadtest)
            .current_dir(&root)
            .arg("run")
            .arg("--scenario")
            .arg(path)
            .arg("--target")
            .arg(format!("http://{}", server.addr))
            .arg("--report")
            .arg(&report_path)
            .status()
            .with_context(|| format!("cannot run {}", loadtest.display()))?;
        server.stop()?;
        let code = status.code();
        if code != Some(0) && code != Some(LOADTEST_BREACHED) {
            bail!("iee-loadtest failed on {name} ({status}); see the output above");
        }
        rows.push(Row::read(name, &report_path, code == Some(0), ceiling)?);
    }
    drop(redis);

    print_table(&rows, ceiling);
    let summary = serde_json::json!({
        "profile": profile,
        "xadd_ceiling_per_sec": ceiling,
        "scenarios": rows.iter().map(Row::to_json).collect::<Vec<_>>(),
    });
    let summary_path = report_dir.join("summary.json");
    fs::write(
        &summary_path,
        serde_json::to_string_pretty(&summary)? + "\n",
    )
    .with_context(|| format!("cannot write {}", summary_path.display()))?;
    println!("reports in {}", report_dir.display());

    let failed: Vec<&str> = rows
        .iter()
        .filter(|r| !r.passed)
        .map(|r| r.name.as_str())
        .collect();
    if !failed.is_empty() {
        bail!("thresholds breached in: {}", failed.join(", "));
    }
    Ok(())
}

pub(crate) fn workspace_root() -> PathBuf {
    let xtask = Path::new(env!("CARGO_MANIFEST_DIR"));
    xtask.parent().unwrap_or(xtask).to_path_buf()
}

pub(crate) fn target_dir(root: &Path) -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .map_or_else(|| root.join("target"), |d| root.join(d))
}

/// Resolves a scenario argument to (report name, file).
fn scenario_path(root: &Path, arg: &str) -> Result<(String, PathBuf)> {
    let path = if arg.ends_with(".toml") || arg.contains('/') {
        root.join(arg)
    } else {
        root.join("loadtest/scenarios").join(format!("{arg}.toml"))
    };
    if !path.is_file() {
        bail!("scenario {arg}: no file {}", path.display());
    }
    let name = path
        .file_stem()
        .and_then(|s| s.to_str())
        .ok_or_else(|| anyhow!("scenario {arg}: file name is not UTF-8"))?
        .to_owned();
    Ok((name, path))
}

pub(crate) fn build(root: &Path, release: bool) -> Result<()> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(root)
        .args(["build", "-p", "iee", "-p", "iee-loadtest"]);
    if release {
        cmd.arg("--release");
    }
    let status = cmd.status().context("cannot run cargo build")?;
    if !status.success() {
        bail!("cargo build failed ({status})");
    }
    Ok(())
}

fn free_port() -> Result<u16> {
    // The port is free when the listener closes; another process could take it before redis
    // binds, in which case redis fails to start and says so.
    let listener = TcpListener::bind("127.0.0.1:0").context("cannot bind 127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}

/// A child process killed when dropped, so nothing outlives an error.
struct Guard {
    name: &'static str,
    child: Option<Child>,
}

impl Guard {
    fn new(name: &'static str, child: Child) -> Self {
        Self {
            name,
            child: Some(child),
        }
    }

    fn child(&mut self) -> Result<&mut Child> {
        self.child
            .as_mut()
            .ok_or_else(|| anyhow!("{} was already stopped", self.name))
    }

    /// SIGTERM, then SIGKILL if it has not exited within `timeout`.
    fn terminate(&mut self, timeout: Duration) -> Result<()> {
        let Some(mut child) = self.child.take() else {
            return Ok(());
        };
        if child.try_wait()?.is_some() {
            return Ok(());
        }
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if child.try_wait()?.is_some() {
                return Ok(());
            }
            thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
        bail!(
            "{} did not stop within {timeout:?} of SIGTERM and was killed",
            self.name
        )
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take()
            && matches!(child.try_wait(), Ok(None))
        {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A private redis-server: its own port, no persistence.
pub(crate) struct Redis {
    pub(crate) port: u16,
    process: Guard,
}

impl Redis {
    pub(crate) fn start(log_dir: &Path) -> Result<Self> {
        let port = free_port()?;
        let log = fs::File::create(log_dir.join("redis.log"))?;
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string()])
            .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("cannot start redis-server (install it: apt-get install redis-server)")?;
        let mut redis = Self {
            port,
            process: Guard::new("redis-server", child),
        };
        let deadline = Instant::now() + REDIS_START_TIMEOUT;
        loop {
            if redis.cli(&["ping"]).is_ok_and(|out| out.trim() == "PONG") {
                return Ok(redis);
            }
            if let Some(status) = redis.process.child()?.try_wait()? {
                bail!(
                    "redis-server exited at start ({status}); see {}/redis.log",
                    log_dir.display()
                );
            }
            if Instant::now() > deadline {
                bail!(
                    "redis-server did not answer PING on port {port} within {REDIS_START_TIMEOUT:?}"
                );
            }
            thread::sleep(Duration::from_millis(50));
        }
    }

    fn cli(&self, args: &[&str]) -> Result<String> {
        let out = Command::new("redis-cli")
            .args(["-p", &self.port.to_string()])
            .args(args)
            .output()
            .context("cannot run redis-cli")?;
        if !out.status.success() {
            bail!(
                "redis-cli {} failed: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    fn flushall(&self) -> Result<()> {
        let out = self.cli(&["flushall"])?;
        if out.trim() != "OK" {
            bail!("redis FLUSHALL answered {out:?}");
        }
        Ok(())
    }

    /// XADD requests per second redis-benchmark reaches on this machine, pipelined.
    fn xadd_ceiling(&self) -> Result<f64> {
        let out = Command::new("redis-benchmark")
            .args(["-p", &self.port.to_string()])
            .args(["-q", "-n", "200000", "-P", "64", "XADD", "s", "*", "f", "v"])
            .output()
            .context("cannot run redis-benchmark")?;
        if !out.status.success() {
            bail!(
                "redis-benchmark failed ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let text = String::from_utf8_lossy(&out.stdout);
        self.flushall()?;
        parse_requests_per_sec(&text)
            .ok_or_else(|| anyhow!("no requests per second in redis-benchmark output: {text:?}"))
    }
}

/// The rate in redis-benchmark's quiet output, e.g.
/// `XADD s * f v: 412371.12 requests per second, p50=0.703 msec` (after `\r` progress lines).
fn parse_requests_per_sec(output: &str) -> Option<f64> {
    output
        .split(['\r', '\n'])
        .filter_map(|line| line.split_once(" requests per second"))
        .filter_map(|(before, _)| before.split_whitespace().next_back()?.parse().ok())
        .next_back()
}

/// A standalone `iee` on an ephemeral port, stopped with SIGTERM.
pub(crate) struct Iee {
    pub(crate) addr: SocketAddr,
    process: Guard,
}

impl Iee {
    /// Starts `bin standalone` on Redis at `redis_port`, or on the in-memory backend if `None`.
    pub(crate) fn start(bin: &Path, redis_port: Option<u16>, log_path: &Path) -> Result<Self> {
        Self::start_with(bin, redis_port, log_path, &[])
    }

    /// [`Iee::start`] with extra environment variables (configuration overrides).
    pub(crate) fn start_with(
        bin: &Path,
        redis_port: Option<u16>,
        log_path: &Path,
        envs: &[(String, String)],
    ) -> Result<Self> {
        let mut command = Command::new(bin);
        command.envs(envs.iter().map(|(k, v)| (k, v)));
        command
            .args(["standalone", "--listen", "127.0.0.1:0"])
            // The default metrics port is fixed; another iee on this machine may hold it.
            .args(["--metrics-listen", "127.0.0.1:0"]);
        if let Some(port) = redis_port {
            command.args(["--redis-url", &format!("redis://127.0.0.1:{port}")]);
        }
        let child = command
            .stdout(Stdio::piped())
            .stderr(fs::File::create(log_path)?)
            .spawn()
            .with_context(|| format!("cannot start {}", bin.display()))?;
        let mut process = Guard::new("iee", child);
        let stdout = process
            .child()?
            .stdout
            .take()
            .ok_or_else(|| anyhow!("iee stdout was not captured"))?;
        // The reader keeps draining stdout for the server's whole life so it never blocks on a
        // full pipe; lines go to the log and, until the address is found, to this thread.
        let (tx, rx) = mpsc::channel();
        let mut log = fs::OpenOptions::new().append(true).open(log_path)?;
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = writeln!(log, "{line}");
                let _ = tx.send(line);
            }
        });
        let deadline = Instant::now() + IEE_START_TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) => {
                    if let Some(addr) = line
                        .trim()
                        .strip_prefix("listening on ")
                        .and_then(|a| a.trim().parse().ok())
                    {
                        return Ok(Self { addr, process });
                    }
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    bail!(
                        "iee printed no `listening on` line within {IEE_START_TIMEOUT:?}; see {}",
                        log_path.display()
                    );
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    let status = process.child()?.wait()?;
                    bail!("iee exited at start ({status}); see {}", log_path.display());
                }
            }
        }
    }

    pub(crate) fn stop(mut self) -> Result<()> {
        self.process.terminate(IEE_STOP_TIMEOUT)
    }
}

/// One line of the result table, read back from a scenario's JSON report.
struct Row {
    name: String,
    accepted_per_sec: f64,
    p50_ms: f64,
    p99_ms: f64,
    ceiling_pct: Option<f64>,
    passed: bool,
}

impl Row {
    fn read(name: &str, report: &Path, passed: bool, ceiling: Option<f64>) -> Result<Self> {
        let text = fs::read_to_string(report)
            .with_context(|| format!("cannot read report {}", report.display()))?;
        let json: serde_json::Value = serde_json::from_str(&text)
            .with_context(|| format!("report {} is not JSON", report.display()))?;
        let number = |pointer: &str| {
            json.pointer(pointer)
                .and_then(serde_json::Value::as_f64)
                .ok_or_else(|| anyhow!("report {} has no number at {pointer}", report.display()))
        };
        let accepted_per_sec = number("/accepted_events_per_sec")?;
        Ok(Self {
            name: name.to_owned(),
            accepted_per_sec,
            p50_ms: number("/latency_ms/p50")?,
            p99_ms: number("/latency_ms/p99")?,
            ceiling_pct: ceiling
                .filter(|c| *c > 0.0)
                .map(|c| 100.0 * accepted_per_sec / c),
            passed,
        })
    }

    fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "scenario": self.name,
            "accepted_events_per_sec": self.accepted_per_sec,
            "p50_ms": self.p50_ms,
            "p99_ms": self.p99_ms,
            "pct_of_xadd_ceiling": self.ceiling_pct,
            "passed": self.passed,
        })
    }
}

fn print_table(rows: &[Row], ceiling: Option<f64>) {
    println!();
    println!(
        "{:<26} {:>14} {:>10} {:>10} {:>11} {:>6}",
        "scenario", "accepted ev/s", "p50 ms", "p99 ms", "% ceiling", "result"
    );
    for r in rows {
        let pct = r
            .ceiling_pct
            .map_or_else(|| "-".to_owned(), |p| format!("{p:.1}%"));
        println!(
            "{:<26} {:>14.0} {:>10.2} {:>10.2} {:>11} {:>6}",
            r.name,
            r.accepted_per_sec,
            r.p50_ms,
            r.p99_ms,
            pct,
            if r.passed { "pass" } else { "FAIL" }
        );
    }
    if let Some(c) = ceiling {
        println!("(ceiling: redis XADD {c:.0}/s, pipelined, same machine)");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn benchmark_rate_is_parsed_from_quiet_output() {
        let out = "XADD s * f v: rps=0.0 (overall: nan) avg_msec=nan (overall: nan)\r\
                   XADD s * f v: rps=398000.0 (overall: 398000.0) avg_msec=1.2\r\
                   XADD s * f v: 412371.12 requests per second, p50=0.703 msec                    \n\n";
        assert_eq!(parse_requests_per_sec(out), Some(412_371.12));
        assert_eq!(
            parse_requests_per_sec("XADD s * f v: 1000.00 requests per second\n"),
            Some(1000.0)
        );
        assert_eq!(parse_requests_per_sec("error\n"), None);
    }

    #[test]
    fn scenario_names_resolve_to_shipped_files() {
        let root = workspace_root();
        let (name, path) = scenario_path(&root, "smoke").unwrap();
        assert_eq!(name, "smoke");
        assert!(path.ends_with("loadtest/scenarios/smoke.toml"));
        assert!(scenario_path(&root, "no-such-scenario").is_err());
    }
}
