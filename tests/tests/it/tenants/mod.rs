//! Tenant isolation over the network: `iee standalone` with bearer-token authentication. A
//! tenant's token reaches its own tenant through every RPC of the five services and no other
//! tenant through any; data written by one tenant cannot be read or changed with another's
//! token; requests without a valid token are refused; per-tenant rate and size limits answer
//! RESOURCE_EXHAUSTED with retry information, for the flooding tenant only; and the services
//! of a distributed loop present their service token to each other.

mod data;
mod limits;
mod matrix;
mod mesh;

use std::time::{Duration, SystemTime};

use iee_api::{
    credentials::{AUTHORIZATION_METADATA_KEY, bearer_value},
    metadata::RETRY_AFTER_METADATA_KEY,
    pb::{
        common::{Channel, CustomerRef, Event, Money},
        decide::{
            DecideRequest, Direction, ExplainDecisionRequest, GetConfigRequest, OutcomeKind,
            PutConfigRequest, ReplayDecisionRequest, ReportOutcomeRequest, WatchOutboundRequest,
            decision_service_client::DecisionServiceClient,
        },
        ingest::{
            IdentifyRequest, IngestRequest, IngestStreamRequest, ListRejectedRequest,
            touchpoint_service_client::TouchpointServiceClient,
        },
        kpi::{
            GetExperimentRequest, ListMetricsRequest, QueryMetricsRequest,
            kpi_service_client::KpiServiceClient,
        },
        predict::{
            ActivateModelRequest, ListModelsRequest, RegisterModelRequest, ScoreRequest,
            prediction_service_client::PredictionServiceClient,
        },
        profile::{
            CommitContactRequest, EraseCustomerRequest, GetProfileRequest, ReleaseContactRequest,
            ReserveContactRequest, WatchSignalsRequest,
            profile_service_client::ProfileServiceClient,
        },
    },
};
use iee_runtime::token_sha256;
use iee_test_support::{ServerProcess, wait_until};
use iee_tests::spawn_standalone;
use tonic::{Code, Status, transport::Channel as GrpcChannel};
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};

const ALPHA: &str = "alpha";
const BETA: &str = "beta";
const ALPHA_TOKEN: &str = "alpha-token-3f9c";
const BETA_TOKEN: &str = "beta-token-81d2";
const SERVICE_TOKEN: &str = "service-token-77ab";

const CONFIG: &str = r#"
tenant: TENANT
exploration: {mode: greedy}
actions:
  - id: welcome
    channels: [web]
    direction: inbound
    value: 1
    payload: {title: "Welcome"}
"#;

/// Writes the tokens file (alpha's, beta's and the service token, by digest) into `dir`.
fn write_tokens(dir: &std::path::Path) -> std::path::PathBuf {
    let tokens = dir.join("tokens");
    std::fs::write(
        &tokens,
        format!(
            "# tenant tokens\n{ALPHA} {}\n{BETA} {}\n* {}\n",
            token_sha256(ALPHA_TOKEN),
            token_sha256(BETA_TOKEN),
            token_sha256(SERVICE_TOKEN)
        ),
    )
    .unwrap();
    tokens
}

/// A standalone engine that authenticates callers with the three tokens above, plus `envs`.
struct Engine {
    process: ServerProcess,
    dir: std::path::PathBuf,
}

impl Engine {
    async fn start(name: &str, envs: &[(&str, &str)]) -> Self {
        let dir = std::env::temp_dir().join(format!("iee-tenants-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let tokens = write_tokens(&dir);
        let tokens_file = tokens.display().to_string();
        let mut all = vec![
            ("IEE_SERVER__AUTH__ENABLED", "true"),
            ("IEE_SERVER__AUTH__TOKENS_FILE", tokens_file.as_str()),
        ];
        all.extend_from_slice(envs);
        let process = spawn_standalone(&all);
        let engine = Self { process, dir };
        // Health checks need no token (probes do not carry one).
        let health = HealthClient::new(engine.channel().await);
        wait_until(Duration::from_secs(20), "the engine SERVING", || {
            let mut health = health.clone();
            async move {
                let status = health
                    .check(HealthCheckRequest::default())
                    .await
                    .ok()?
                    .into_inner()
                    .status;
                (status == ServingStatus::Serving as i32).then_some(())
            }
        })
        .await;
        engine
    }

    async fn channel(&self) -> GrpcChannel {
        let endpoint = self.process.endpoint();
        iee_tests::connect_retrying(|| {
            let endpoint = tonic::transport::Endpoint::from_shared(endpoint.clone()).unwrap();
            async move { endpoint.connect().await }
        })
        .await
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// `message` with `token` as its bearer token (none, or a raw header value with `Raw`).
fn req<T>(token: Token, message: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    match token {
        Token::None => {}
        Token::Bearer(token) => {
            request
                .metadata_mut()
                .insert(AUTHORIZATION_METADATA_KEY, bearer_value(token).unwrap());
        }
        Token::Raw(value) => {
            request
                .metadata_mut()
                .insert(AUTHORIZATION_METADATA_KEY, value.parse().unwrap());
        }
    }
    request
}

#[derive(Debug, Clone, Copy)]
enum Token {
    None,
    Bearer(&'static str),
    Raw(&'static str),
}

fn customer(tenant: &str, id: &str) -> Option<CustomerRef> {
    Some(CustomerRef {
        tenant_id: tenant.into(),
        customer_id: id.into(),
        anonymous_id: String::new(),
    })
}

fn event(tenant: &str, id: &str, customer_id: &str, kind: &str) -> Event {
    Event {
        event_id: id.into(),
        tenant_id: tenant.into(),
        customer_id: customer_id.into(),
        r#type: kind.into(),
        channel: Channel::Web as i32,
        touchpoint: "home".into(),
        occurred_at: Some(prost_types::Timestamp::from(SystemTime::now())),
        value: (kind == "purchase").then(|| Money {
            amount_minor: 2_500,
            currency: "EUR".into(),
        }),
        ..Event::default()
    }
}

fn web_decision(tenant: &str, customer_id: &str) -> DecideRequest {
    DecideRequest {
        customer: customer(tenant, customer_id),
        channel: Channel::Web as i32,
        touchpoint: "home".into(),
        direction: Direction::Inbound as i32,
        max_actions: 1,
        ..DecideRequest::default()
    }
}
