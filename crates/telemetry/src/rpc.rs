//! RED metrics per RPC: requests by outcome code and latency, with bounded labels.

use std::time::Instant;

use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{counter::Counter, family::Family, histogram::Histogram},
};

use crate::MetricsRegistry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CodeLabels {
    rpc: &'static str,
    code: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RpcLabels {
    rpc: &'static str,
}

/// `iee_<service>_rpc_requests_total{rpc,code}` and `iee_<service>_rpc_duration_seconds{rpc}`.
#[derive(Clone, Debug)]
pub struct RpcMetrics {
    requests: Family<CodeLabels, Counter>,
    duration: Family<RpcLabels, Histogram>,
}

impl RpcMetrics {
    /// Registers the RPC metrics of `service` (e.g. `ingest`).
    pub fn register(registry: &MetricsRegistry, service: &str) -> Self {
        let requests = Family::<CodeLabels, Counter>::default();
        let duration = Family::<RpcLabels, Histogram>::new_with_constructor(|| {
            // 100 µs … ~3.3 s.
            Histogram::new(prometheus_client::metrics::histogram::exponential_buckets(
                0.000_1, 2.0, 16,
            ))
        });
        registry.register(
            &format!("iee_{service}_rpc_requests"),
            "RPCs handled, by RPC and gRPC status code",
            requests.clone(),
        );
        registry.register(
            &format!("iee_{service}_rpc_duration_seconds"),
            "RPC handling time in seconds",
            duration.clone(),
        );
        Self { requests, duration }
    }

    /// Starts timing one call of `rpc`.
    pub fn start(&self, rpc: &'static str) -> RpcTimer {
        RpcTimer {
            metrics: self.clone(),
            rpc,
            started: Instant::now(),
        }
    }
}

/// Records one RPC when finished.
#[derive(Debug)]
pub struct RpcTimer {
    metrics: RpcMetrics,
    rpc: &'static str,
    started: Instant,
}

impl RpcTimer {
    /// Records the call with its gRPC code name (e.g. `OK`, `UNAVAILABLE`).
    pub fn finish(self, code: &'static str) {
        self.metrics
            .duration
            .get_or_create(&RpcLabels { rpc: self.rpc })
            .observe(self.started.elapsed().as_secs_f64());
        self.metrics
            .requests
            .get_or_create(&CodeLabels {
                rpc: self.rpc,
                code,
            })
            .inc();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::serve_metrics;

    #[test]
    fn finished_calls_show_in_the_exposition() {
        let registry = MetricsRegistry::default();
        let rpc = RpcMetrics::register(&registry, "ingest");
        rpc.start("Ingest").finish("OK");
        rpc.start("Ingest").finish("UNAVAILABLE");
        rpc.start("Ingest").finish("OK");
        let text = registry.encode();
        assert!(
            text.contains(r#"iee_ingest_rpc_requests_total{rpc="Ingest",code="OK"} 2"#),
            "{text}"
        );
        assert!(
            text.contains(r#"iee_ingest_rpc_duration_seconds_count{rpc="Ingest"} 3"#),
            "{text}"
        );
    }

    #[tokio::test]
    async fn endpoint_serves_the_registry() {
        let registry = MetricsRegistry::default();
        RpcMetrics::register(&registry, "ingest")
            .start("Ingest")
            .finish("OK");
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let addr = serve_metrics("127.0.0.1:0", registry, async {
            let _ = rx.await;
        })
        .await
        .unwrap();
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        stream
            .write_all(b"GET /metrics HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut body = String::new();
        stream.read_to_string(&mut body).await.unwrap();
        assert!(body.starts_with("HTTP/1.1 200"), "{body}");
        assert!(body.contains("iee_ingest_rpc_requests_total"), "{body}");
        let _ = tx.send(());
    }
}
