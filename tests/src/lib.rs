//! The harness of the cross-service tests: a [`TestCluster`] runs nodes on a real gRPC server
//! on loopback, over a real `redis-server` of its own or the in-memory backend.

mod cluster;
mod events;
mod loop_services;
mod otlp;
mod profile_nodes;

pub use cluster::{Backend, TEST_SHARDS, TestCluster};
pub use events::{event, events_for, valid_event};
pub use loop_services::{LoopServices, connect_retrying};
pub use otlp::{ExportedSpan, OtlpCollector, SpanKind, hex};
pub use profile_nodes::{ProfileNodes, ProfileProcess, metric_value, scrape_metrics};

use iee_test_support::ServerProcess;

/// `iee standalone` as a process on a free loopback port, metrics off, with extra `envs`
/// (in-memory backend unless they say otherwise).
pub fn spawn_standalone(envs: &[(&str, &str)]) -> ServerProcess {
    ServerProcess::spawn(
        "iee",
        &[
            "standalone",
            "--listen",
            "127.0.0.1:0",
            "--metrics-listen",
            "",
        ],
        envs,
    )
}
