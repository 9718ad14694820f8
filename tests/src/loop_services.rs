//! `LoopServices`: the decision loop as separate processes over one private Redis: `iee-ingest`,
//! `iee-profile` nodes, `iee-predict`, `iee-decide` (which can be killed and restarted) and
//! `iee-kpi`.

use std::time::Duration;

use iee_api::{
    decide::{DecideApi, DecideClient, PutConfigRequest},
    ingest::{IngestRequest, TouchpointApi, TouchpointClient},
    kpi::KpiClient,
    pb::common::Event,
};
use iee_test_support::{RedisServer, ServerProcess, free_port};

use crate::{ProfileNodes, TEST_SHARDS};

/// The services of the loop, each a process; dropped processes are killed.
pub struct LoopServices {
    /// The private Redis every service uses.
    pub redis: RedisServer,
    /// The profile nodes.
    pub profiles: ProfileNodes,
    /// The ingest service.
    pub ingest: ServerProcess,
    /// The prediction service.
    pub predict: ServerProcess,
    /// The decision service, while running.
    pub decide: Option<ServerProcess>,
    /// The decision service's metrics endpoint (`host:port`, stable across restarts unless the
    /// port was taken by another process meanwhile).
    pub decide_metrics: String,
    /// The KPI service.
    pub kpi: ServerProcess,
    decide_envs: Vec<(String, String)>,
}

impl std::fmt::Debug for LoopServices {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoopServices").finish_non_exhaustive()
    }
}

/// `(key, value)` pairs as the process spawners take them.
fn borrowed(envs: &[(String, String)]) -> Vec<(&str, &str)> {
    envs.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()
}

fn json_list(items: &[String]) -> String {
    let quoted: Vec<String> = items.iter().map(|s| format!("{s:?}")).collect();
    format!("[{}]", quoted.join(","))
}

impl LoopServices {
    /// Starts everything: `profile_nodes` profile processes (settled), then ingest, predict
    /// (learning online, merging every 200 ms) and decide with the extra `decide_envs`
    /// (`IEE_DECIDE__…`).
    pub async fn start(
        profile_nodes: usize,
        profile_envs: &[(&str, &str)],
        decide_envs: &[(&str, &str)],
    ) -> Self {
        Self::start_with_envs(profile_nodes, profile_envs, decide_envs, &[]).await
    }

    /// [`LoopServices::start`], with `common_envs` set for every process (e.g. the `OTEL_*`
    /// variables of [`crate::OtlpCollector::otel_envs`]); the service-specific ones come after
    /// them, so they win.
    pub async fn start_with_envs(
        profile_nodes: usize,
        profile_envs: &[(&str, &str)],
        decide_envs: &[(&str, &str)],
        common_envs: &[(String, String)],
    ) -> Self {
        let common: Vec<(&str, &str)> = common_envs
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let with_common = |envs: &[(&str, &str)]| -> Vec<(String, String)> {
            common
                .iter()
                .chain(envs)
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect()
        };
        let redis = RedisServer::start();
        let url = redis.url();
        let profile_envs = with_common(profile_envs);
        let profiles = ProfileNodes::start(&url, profile_nodes, &borrowed(&profile_envs)).await;
        let shards = TEST_SHARDS.to_string();
        let ingest_envs = with_common(&[("IEE_CLUSTER__SHARD_COUNT", &shards)]);
        let ingest = ServerProcess::spawn(
            "iee-ingest",
            &[
                "--listen",
                "127.0.0.1:0",
                "--redis-url",
                &url,
                "--metrics-listen",
                "",
            ],
            &borrowed(&ingest_envs),
        );
        let seeds: Vec<String> = (0..profiles.len())
            .map(|i| profiles.node(i).addr.clone())
            .collect();
        let seeds = json_list(&seeds);
        let predict_envs = with_common(&[
            ("IEE_CLUSTER__SHARD_COUNT", &shards),
            ("IEE_PREDICT__PROFILE_SEEDS", &seeds),
            ("IEE_PREDICT__LEARN_SYNC_INTERVAL_MS", "200"),
            ("IEE_PREDICT__REFRESH_INTERVAL_MS", "200"),
        ]);
        let predict = ServerProcess::spawn(
            "iee-predict",
            &[
                "--listen",
                "127.0.0.1:0",
                "--redis-url",
                &url,
                "--metrics-listen",
                "",
            ],
            &borrowed(&predict_envs),
        );
        let kpi_envs = with_common(&[
            ("IEE_CLUSTER__SHARD_COUNT", &shards),
            ("IEE_KPI__PARTITIONS", "4"),
            ("IEE_KPI__POLL_BLOCK_MS", "50"),
            ("IEE_KPI__GAUGE_INTERVAL_SECS", "0"),
        ]);
        let kpi = ServerProcess::spawn(
            "iee-kpi",
            &[
                "--listen",
                "127.0.0.1:0",
                "--redis-url",
                &url,
                "--metrics-listen",
                "",
            ],
            &borrowed(&kpi_envs),
        );
        let mut envs = with_common(&[]);
        envs.extend([
            ("IEE_CLUSTER__SHARD_COUNT".into(), shards),
            ("IEE_DECIDE__PROFILE_SEEDS".into(), seeds),
            ("IEE_DECIDE__PREDICT_ENDPOINT".into(), predict.endpoint()),
            ("IEE_DECIDE__INGEST_ENDPOINT".into(), ingest.endpoint()),
            ("IEE_DECIDE__CONFIG_POLL_INTERVAL_MS".into(), "200".into()),
            // A busy test machine must not turn into degraded decisions.
            ("IEE_DECIDE__PROFILE_TIMEOUT_MS".into(), "5000".into()),
            ("IEE_DECIDE__PREDICT_TIMEOUT_MS".into(), "5000".into()),
            ("IEE_DECIDE__RESERVE_TIMEOUT_MS".into(), "5000".into()),
            // Tests send bursts on purpose; admission control has its own test.
            ("IEE_DECIDE__MAX_IN_FLIGHT".into(), "1024".into()),
        ]);
        envs.extend(
            decide_envs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
        );
        let mut services = Self {
            redis,
            profiles,
            ingest,
            predict,
            decide: None,
            decide_metrics: format!("127.0.0.1:{}", free_port()),
            kpi,
            decide_envs: envs,
        };
        services.spawn_decide();
        services
    }

    /// Starts the decision service (again).
    pub fn spawn_decide(&mut self) {
        assert!(self.decide.is_none(), "iee-decide is already running");
        let url = self.redis.url();
        let envs = borrowed(&self.decide_envs);
        // The metrics port was picked free earlier; if another process took it meanwhile, the
        // start is retried on a new one.
        for attempt in 1.. {
            let started = ServerProcess::try_spawn(
                "iee-decide",
                &[
                    "--listen",
                    "127.0.0.1:0",
                    "--redis-url",
                    &url,
                    "--metrics-listen",
                    &self.decide_metrics,
                ],
                &envs,
            );
            match started {
                Ok(process) => {
                    self.decide = Some(process);
                    return;
                }
                Err(err) if attempt >= 5 => panic!("{err} (after {attempt} attempts)"),
                Err(_) => self.decide_metrics = format!("127.0.0.1:{}", free_port()),
            }
        }
    }

    /// SIGKILL of the decision service; waits for the exit.
    pub async fn kill_decide(&mut self) {
        let process = self.decide.take().expect("iee-decide is running");
        process.signal_and_wait("KILL").await;
    }

    /// A client of the running decision service.
    pub async fn decide_client(&self) -> DecideClient {
        let endpoint = self
            .decide
            .as_ref()
            .expect("iee-decide is running")
            .endpoint();
        crate::connect_retrying(|| DecideClient::connect(endpoint.clone())).await
    }

    /// A client of the KPI service.
    pub async fn kpi_client(&self) -> KpiClient {
        let endpoint = self.kpi.endpoint();
        crate::connect_retrying(|| KpiClient::connect(endpoint.clone())).await
    }

    /// A client of the ingest service.
    pub async fn ingest_client(&self) -> TouchpointClient {
        let endpoint = self.ingest.endpoint();
        crate::connect_retrying(|| TouchpointClient::connect(endpoint.clone())).await
    }

    /// Ingests `events`, asserting every one is accepted or a duplicate.
    pub async fn send(&self, events: Vec<Event>) {
        let ingest = self.ingest_client().await;
        for chunk in events.chunks(1_000) {
            let response = ingest
                .ingest(IngestRequest {
                    events: chunk.to_vec(),
                })
                .await
                .expect("ingest answers");
            assert_eq!(
                response.rejected, 0,
                "events rejected: {:?}",
                response.results
            );
        }
    }

    /// Activates `yaml` as `tenant`'s decision configuration, asserting it is valid.
    pub async fn configure(&self, tenant: &str, yaml: &str) -> String {
        let decide = self.decide_client().await;
        let current = decide
            .get_config(iee_api::decide::GetConfigRequest {
                tenant_id: tenant.to_owned(),
                version: String::new(),
            })
            .await
            .map(|c| c.version)
            .unwrap_or_default();
        let put = decide
            .put_config(PutConfigRequest {
                tenant_id: tenant.to_owned(),
                yaml: yaml.to_owned(),
                expected_version: current,
                validate_only: false,
            })
            .await
            .expect("PutConfig answers");
        assert!(
            put.errors.is_empty(),
            "configuration refused: {:?}",
            put.errors
        );
        put.version
    }
}

/// Connects with `connect`, retrying for up to 10 s while the server comes up.
pub async fn connect_retrying<T, E, F, Fut>(mut connect: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
    E: std::fmt::Debug,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        match connect().await {
            Ok(client) => return client,
            Err(err) if tokio::time::Instant::now() >= deadline => {
                panic!("cannot connect: {err:?}")
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
}
