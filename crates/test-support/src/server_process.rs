//! A workspace server binary run as a real process, with the address it printed.

use std::{
    io::{BufRead, BufReader},
    process::{Child, Command, ExitStatus, Stdio},
};

/// A spawned server (`iee`, `iee-ingest`): killed on drop unless waited for.
#[derive(Debug)]
pub struct ServerProcess {
    child: Child,
    /// `host:port` from its `listening on …` line.
    pub addr: String,
}

impl ServerProcess {
    /// Spawns the workspace binary `name` with `args` and `envs` (logs at `warn`), and waits for
    /// its first stdout line, `listening on <addr>`.
    ///
    /// # Panics
    /// If it does not start or prints something else first.
    pub fn spawn(name: &str, args: &[&str], envs: &[(&str, &str)]) -> Self {
        Self::try_spawn(name, args, envs).unwrap_or_else(|e| panic!("{e}"))
    }

    /// [`ServerProcess::spawn`], with the failure to start as an error (e.g. a port it was
    /// given was taken meanwhile), so the caller can retry with another one. The process is
    /// reaped on failure.
    ///
    /// # Panics
    /// If the binary cannot be run at all.
    pub fn try_spawn(name: &str, args: &[&str], envs: &[(&str, &str)]) -> Result<Self, String> {
        let mut child = Command::new(crate::bin_path(name))
            .args(args)
            .env_remove("RUST_LOG")
            .env("IEE_TELEMETRY__LOG_FILTER", "warn")
            .envs(envs.iter().copied())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("{name} starts: {e}"));
        let stdout = child.stdout.take().expect("stdout is piped");
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("the server prints its address");
        match line.trim().strip_prefix("listening on ") {
            Some(addr) => Ok(Self {
                child,
                addr: addr.to_owned(),
            }),
            None => {
                let _ = child.kill();
                let _ = child.wait();
                Err(format!(
                    "{name} printed {line:?} instead of `listening on <addr>`"
                ))
            }
        }
    }

    /// `http://<addr>`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends `signal` (`TERM`, `KILL`, …) and waits for the exit, on a blocking thread.
    pub async fn signal_and_wait(mut self, signal: &str) -> ExitStatus {
        crate::signal(self.child.id(), signal);
        tokio::task::spawn_blocking(move || self.child.wait().expect("the child can be waited for"))
            .await
            .expect("the waiting thread finishes")
    }

    /// Sends `signal` and waits for the exit, blocking the current thread.
    pub fn signal_and_wait_blocking(mut self, signal: &str) -> ExitStatus {
        crate::signal(self.child.id(), signal);
        self.child.wait().expect("the child can be waited for")
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
