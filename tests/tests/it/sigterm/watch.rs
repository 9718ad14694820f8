//! The termination of one server process as Kubernetes drives it, watched from outside: its
//! health, calls during the grace period, its listener and its exit status.

use std::{
    future::Future,
    pin::Pin,
    process::ExitStatus,
    sync::Arc,
    time::{Duration, Instant},
};

use iee_test_support::{ServerProcess, signal, wait_until};
use tokio::task::JoinHandle;
use tonic::transport::Channel;
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};

/// `server.shutdown_grace_ms` of every process: long enough for the checks made within it on a
/// busy machine, short enough for a quick test.
pub(super) const GRACE: Duration = Duration::from_millis(3_000);
pub(super) const GRACE_MS: &str = "3000";
/// How long a process may take to exit after SIGTERM before the test fails: far more than
/// grace + drain, so only a hang fails it.
pub(super) const EXIT_DEADLINE: Duration = Duration::from_secs(30);
/// The service Kubernetes' liveness and startup probes ask for (charts/iee): it must answer
/// SERVING while the process runs, shutting down or not.
pub(super) const LIVENESS: &str = "grpc.health.v1.Health";

/// A cheap call a service answers, made on `channel`; `label` tells the calls of one test apart.
pub(super) type Call = Arc<
    dyn Fn(Channel, &'static str) -> Pin<Box<dyn Future<Output = Result<(), String>> + Send>>
        + Send
        + Sync,
>;

/// A server process under test.
pub(super) struct Target {
    pub(super) binary: &'static str,
    pub(super) addr: String,
    /// The full names of the gRPC services it runs (health reports each).
    pub(super) services: Vec<&'static str>,
    pub(super) call: Call,
}

impl Target {
    fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }
}

/// A process that was sent SIGTERM, and the task waiting for its exit.
pub(super) struct Exit {
    pub(super) pid: u32,
    pub(super) wait: JoinHandle<ExitStatus>,
}

pub(super) fn sigterm(process: ServerProcess) -> Exit {
    Exit {
        pid: process.pid(),
        wait: tokio::spawn(process.signal_and_wait("TERM")),
    }
}

/// What happened when, from the SIGTERM, for the record.
#[derive(Debug)]
pub(super) struct Timeline {
    pub(super) not_serving: Duration,
    pub(super) calls_served: Duration,
    pub(super) listener_closed: Duration,
    pub(super) running_when_closed: bool,
    pub(super) exited: Duration,
}

pub(super) async fn health(channel: &Channel, service: &str) -> Result<i32, tonic::Status> {
    let response = HealthClient::new(channel.clone())
        .check(HealthCheckRequest {
            service: service.to_owned(),
        })
        .await?;
    Ok(response.into_inner().status)
}

pub(super) fn status_name(status: &Result<i32, tonic::Status>) -> String {
    match status {
        Ok(s) => ServingStatus::try_from(*s).map_or_else(|_| s.to_string(), |s| format!("{s:?}")),
        Err(err) => format!("error {:?}: {}", err.code(), err.message()),
    }
}

pub(super) async fn connect(endpoint: String) -> Result<Channel, tonic::transport::Error> {
    Channel::from_shared(endpoint)
        .expect("a valid endpoint")
        .connect()
        .await
}

/// Opens a connection to `target` and waits until the overall status and every service's are
/// SERVING; the liveness service must be SERVING too.
pub(super) async fn ready(target: &Target) -> Channel {
    let channel = iee_tests::connect_retrying(|| connect(target.endpoint())).await;
    for service in std::iter::once("").chain(target.services.iter().copied()) {
        wait_until(
            Duration::from_secs(20),
            &format!("{}: health {service:?} SERVING", target.binary),
            || {
                let channel = channel.clone();
                async move {
                    (health(&channel, service).await.ok()? == ServingStatus::Serving as i32)
                        .then_some(())
                }
            },
        )
        .await;
    }
    let live = health(&channel, LIVENESS).await;
    assert_eq!(
        live.as_ref().ok().copied(),
        Some(ServingStatus::Serving as i32),
        "{}: liveness ({LIVENESS:?}) answers {}",
        target.binary,
        status_name(&live)
    );
    channel
}

/// Watches `target` stop after its SIGTERM (sent just before): NOT_SERVING while calls on the
/// open connection and on a new one are still served, then the listener closed, then exit 0.
pub(super) async fn watch_termination(target: &Target, channel: Channel, exit: Exit) -> Timeline {
    let name = target.binary;
    let sent = Instant::now();
    wait_until(GRACE, &format!("{name}: health \"\" NOT_SERVING"), || {
        let channel = channel.clone();
        async move {
            (health(&channel, "").await.ok()? == ServingStatus::NotServing as i32).then_some(())
        }
    })
    .await;
    let not_serving = sent.elapsed();
    for service in &target.services {
        let status = health(&channel, service).await;
        assert_eq!(
            status.as_ref().ok().copied(),
            Some(ServingStatus::NotServing as i32),
            "{name}: health {service:?} during the grace period is {}",
            status_name(&status)
        );
    }
    // Kubernetes keeps the pod alive while it is not ready: liveness must not fail meanwhile.
    let live = health(&channel, LIVENESS).await;
    assert_eq!(
        live.as_ref().ok().copied(),
        Some(ServingStatus::Serving as i32),
        "{name}: liveness during the grace period answers {}",
        status_name(&live)
    );
    (target.call)(channel.clone(), "open")
        .await
        .unwrap_or_else(|e| {
            panic!(
                "{name}: a call on an open connection {:?} after SIGTERM failed: {e}",
                sent.elapsed()
            )
        });
    // Endpoints stop routing to a terminating pod only after a while: new connections made in
    // the meantime must still be served.
    let fresh = connect(target.endpoint()).await.unwrap_or_else(|e| {
        panic!(
            "{name}: a new connection {:?} after SIGTERM failed: {e}",
            sent.elapsed()
        )
    });
    (target.call)(fresh, "fresh").await.unwrap_or_else(|e| {
        panic!(
            "{name}: a call on a new connection {:?} after SIGTERM failed: {e}",
            sent.elapsed()
        )
    });
    let calls_served = sent.elapsed();

    let addr = target.addr.clone();
    wait_until(
        GRACE + Duration::from_secs(10),
        &format!("{name}: listener closed after the grace period"),
        || {
            let addr = addr.clone();
            async move {
                tokio::net::TcpStream::connect(&addr)
                    .await
                    .is_err()
                    .then_some(())
            }
        },
    )
    .await;
    let listener_closed = sent.elapsed();
    let running_when_closed = !exit.wait.is_finished();

    let status = match tokio::time::timeout(EXIT_DEADLINE, exit.wait).await {
        Ok(status) => status.expect("the waiting task finishes"),
        Err(_) => {
            signal(exit.pid, "KILL");
            panic!("{name} did not exit within {EXIT_DEADLINE:?} of SIGTERM");
        }
    };
    assert!(
        status.success(),
        "{name} exits 0 after SIGTERM, got {status}"
    );
    Timeline {
        not_serving,
        calls_served,
        listener_closed,
        running_when_closed,
        exited: sent.elapsed(),
    }
}

pub(super) fn record(name: &str, t: &Timeline) {
    eprintln!(
        "[record] {name}: SIGTERM → NOT_SERVING {} ms, calls served until {} ms, listener closed \
         {} ms (process still running: {}), exit 0 at {} ms (grace {} ms)",
        t.not_serving.as_millis(),
        t.calls_served.as_millis(),
        t.listener_closed.as_millis(),
        t.running_when_closed,
        t.exited.as_millis(),
        GRACE.as_millis()
    );
}

pub(super) fn boxed<F>(f: F) -> Pin<Box<dyn Future<Output = Result<(), String>> + Send>>
where
    F: Future<Output = Result<(), String>> + Send + 'static,
{
    Box::pin(f)
}
