//! Runs the load generator end to end against an in-process fake TouchpointService, to check
//! the open-loop machinery (schedule, acks, drops, counts) without the real service.
#![allow(
    clippy::unwrap_used,
    reason = "test helpers: a panic is the failure report"
)]

use std::{
    collections::HashSet,
    path::PathBuf,
    sync::{Arc, Mutex},
    time::Duration,
};

use iee_api::pb::common::{Channel, Event};
use iee_api::pb::ingest::{
    IdentifyRequest, IdentifyResponse, IngestRequest, IngestResponse, IngestStreamRequest,
    IngestStreamResponse, ListRejectedRequest, ListRejectedResponse,
    touchpoint_service_server::{TouchpointService, TouchpointServiceServer},
};
use iee_api::tonic::{
    self, Code, Request, Response, Status, Streaming,
    transport::{Server, server::TcpIncoming},
};
use iee_loadtest::{
    report::Report,
    run::{Failure, RunArgs, run},
};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

/// Accepts valid events once, answers repeats DUPLICATE and invalid events REJECTED, after an
/// optional delay per request; or fails every call with `fail`.
#[derive(Clone, Default)]
struct Fake {
    seen: Arc<Mutex<HashSet<String>>>,
    delay: Duration,
    fail: Option<Code>,
}

impl Fake {
    fn apply(&self, events: &[Event]) -> (u32, u32, u32) {
        let mut seen = self.seen.lock().unwrap();
        let (mut accepted, mut duplicates, mut rejected) = (0, 0, 0);
        for e in events {
            let valid = !e.event_id.is_empty()
                && !e.tenant_id.is_empty()
                && !e.r#type.is_empty()
                && (!e.customer_id.is_empty() || !e.anonymous_id.is_empty())
                && e.channel != Channel::Unspecified as i32
                && e.occurred_at.is_some();
            if !valid {
                rejected += 1;
            } else if seen.insert(format!("{}/{}", e.tenant_id, e.event_id)) {
                accepted += 1;
            } else {
                duplicates += 1;
            }
        }
        (accepted, duplicates, rejected)
    }
}

#[tonic::async_trait]
impl TouchpointService for Fake {
    async fn ingest(
        &self,
        request: Request<IngestRequest>,
    ) -> Result<Response<IngestResponse>, Status> {
        if let Some(code) = self.fail {
            return Err(Status::new(code, "failing on purpose"));
        }
        if !self.delay.is_zero() {
            tokio::time::sleep(self.delay).await;
        }
        let (accepted, duplicates, rejected) = self.apply(&request.into_inner().events);
        Ok(Response::new(IngestResponse {
            results: Vec::new(),
            accepted,
            duplicates,
            rejected,
        }))
    }

    type IngestStreamStream = ReceiverStream<Result<IngestStreamResponse, Status>>;

    async fn ingest_stream(
        &self,
        request: Request<Streaming<IngestStreamRequest>>,
    ) -> Result<Response<Self::IngestStreamStream>, Status> {
        if let Some(code) = self.fail {
            return Err(Status::new(code, "failing on purpose"));
        }
        let mut inbound = request.into_inner();
        let (tx, rx) = mpsc::channel(16);
        let fake = self.clone();
        tokio::spawn(async move {
            while let Ok(Some(batch)) = inbound.message().await {
                if !fake.delay.is_zero() {
                    tokio::time::sleep(fake.delay).await;
                }
                let (accepted, duplicates, rejected) = fake.apply(&batch.events);
                let ack = IngestStreamResponse {
                    batch_id: batch.batch_id,
                    results: Vec::new(),
                    accepted,
                    duplicates,
                    rejected,
                    error: None,
                };
                if tx.send(Ok(ack)).await.is_err() {
                    break;
                }
            }
        });
        Ok(Response::new(ReceiverStream::new(rx)))
    }

    async fn identify(
        &self,
        _: Request<IdentifyRequest>,
    ) -> Result<Response<IdentifyResponse>, Status> {
        Err(Status::unimplemented("not faked"))
    }

    async fn list_rejected(
        &self,
        _: Request<ListRejectedRequest>,
    ) -> Result<Response<ListRejectedResponse>, Status> {
        Err(Status::unimplemented("not faked"))
    }
}

async fn serve(fake: Fake) -> String {
    // Like a real server: no Nagle delay on accepted connections.
    let incoming = TcpIncoming::bind("127.0.0.1:0".parse().unwrap())
        .unwrap()
        .with_nodelay(Some(true));
    let addr = incoming.local_addr().unwrap();
    tokio::spawn(
        Server::builder()
            .add_service(TouchpointServiceServer::new(fake))
            .serve_with_incoming(incoming),
    );
    format!("http://{addr}")
}

fn scenario_file(name: &str, body: &str) -> PathBuf {
    let path =
        std::env::temp_dir().join(format!("iee-loadtest-{}-{name}.toml", std::process::id()));
    let text = format!(
        "name = \"{name}\"\ndescription = \"fake service test\"\nseed = 9\n\
         tenants = [\"acme\", \"globex\"]\ncustomers = 50\n{body}"
    );
    std::fs::write(&path, text).unwrap();
    path
}

async fn run_against(fake: Fake, name: &str, body: &str) -> Report {
    let target = serve(fake).await;
    let scenario = scenario_file(name, body);
    let report_path =
        std::env::temp_dir().join(format!("iee-loadtest-{}-{name}.json", std::process::id()));
    let args = RunArgs {
        scenario: scenario.clone(),
        target,
        report: Some(report_path.clone()),
        allow_remote: false,
    };
    let report = run(&args).await.unwrap();
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report_path).unwrap()).unwrap();
    assert_eq!(json["scenario"], name);
    assert!(json["latency_ms"]["p99"].is_number());
    let _ = std::fs::remove_file(scenario);
    let _ = std::fs::remove_file(report_path);
    report
}

fn assert_all_accepted(r: &Report) {
    assert!(r.requests.scheduled > 0);
    assert_eq!(r.requests.ok, r.requests.scheduled, "{}", r.summary());
    assert_eq!(r.requests.sent, r.requests.scheduled);
    assert_eq!(
        (r.requests.errors, r.requests.dropped),
        (0, 0),
        "{}",
        r.summary()
    );
    assert_eq!(r.events.accepted, r.events.sent);
    assert_eq!((r.events.duplicate, r.events.rejected), (0, 0));
    assert_eq!(r.latency_ms.count, r.requests.ok);
    assert!(r.passed, "{}", r.summary());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unary_run_accepts_every_scheduled_request() {
    let r = run_against(
        Fake::default(),
        "fake-unary",
        "rpc = \"unary\"\nbatch_size = 5\nrate = 200.0\nduration_secs = 1.0\nwarmup_secs = 0.2\n\
         max_requests = 1000\nmax_in_flight = 32\n\
         [thresholds]\nmax_error_rate = 0.0\nmax_p99_ms = 1000.0\n",
    )
    .await;
    assert_all_accepted(&r);
    assert_eq!(r.requests.scheduled + r.requests.warmup, 200);
    assert_eq!(r.requests.warmup, 40);
    assert_eq!(r.events.sent, 160 * 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_run_matches_every_ack() {
    let r = run_against(
        Fake::default(),
        "fake-stream",
        "rpc = \"stream\"\nstreams = 3\nbatch_size = 20\nrate = 150.0\nduration_secs = 1.0\n\
         max_requests = 100\nmax_in_flight = 32\n",
    )
    .await;
    assert_all_accepted(&r);
    // max_requests ends this schedule before the duration does.
    assert_eq!(r.requests.scheduled, 100);
    assert_eq!(r.unmatched_acks, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_service_sheds_load_as_drops_and_fails_thresholds() {
    let fake = Fake {
        delay: Duration::from_millis(300),
        ..Fake::default()
    };
    let r = run_against(
        fake,
        "fake-slow",
        "rpc = \"unary\"\nbatch_size = 1\nrate = 100.0\nduration_secs = 1.0\n\
         max_requests = 100\nmax_in_flight = 4\n\
         [thresholds]\nmax_error_rate = 0.1\nmax_p50_ms = 100.0\n",
    )
    .await;
    // Four at a time for 300 ms each: most requests find the cap reached and are dropped,
    // never delayed.
    assert_eq!(r.requests.scheduled, 100);
    assert!(r.requests.dropped > 50, "{}", r.summary());
    assert_eq!(r.requests.ok + r.requests.dropped, 100, "{}", r.summary());
    assert!(r.latency_ms.p50 >= 300.0, "{}", r.summary());
    assert!(!r.passed);
    assert!(r.thresholds.iter().all(|t| !t.passed), "{:?}", r.thresholds);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_are_counted_by_code() {
    for rpc in ["unary", "stream"] {
        let fake = Fake {
            fail: Some(Code::ResourceExhausted),
            ..Fake::default()
        };
        let r = run_against(
            fake,
            &format!("fake-fail-{rpc}"),
            &format!(
                "rpc = \"{rpc}\"\nbatch_size = 2\nrate = 100.0\nduration_secs = 0.5\n\
                 max_requests = 50\nmax_in_flight = 8\n[thresholds]\nmax_error_rate = 0.5\n"
            ),
        )
        .await;
        assert_eq!(r.requests.scheduled, 50, "{rpc}");
        assert_eq!(r.requests.ok, 0, "{rpc}");
        assert_eq!(
            r.errors_by_code.get("RESOURCE_EXHAUSTED"),
            Some(&50),
            "{rpc}: {}",
            r.summary()
        );
        assert_eq!(r.latency_ms.count, 0);
        assert!(!r.passed, "{rpc}");
    }
}

#[tokio::test]
async fn remote_target_is_refused_before_anything_is_sent() {
    let args = RunArgs {
        scenario: PathBuf::from("does-not-matter.toml"),
        target: "http://192.0.2.1:50051".to_owned(),
        report: None,
        allow_remote: false,
    };
    match run(&args).await {
        Err(Failure::Usage(message)) => assert!(message.contains("loopback"), "{message}"),
        other => panic!("expected a usage error, got {other:?}"),
    }
}
