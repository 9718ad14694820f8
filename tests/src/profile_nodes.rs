//! `ProfileNodes`: several `iee-profile` processes over one Redis, the shard map as Redis holds
//! it, signals to the processes (crash, pause, graceful stop) and their Prometheus metrics.

use std::{process::ExitStatus, time::Duration};

use iee_api::profile::{ProfileClient, RouteOptions};
use iee_store::{RedisConfig, ShardOwner, StoreConfig, Stores};
use iee_test_support::{ServerProcess, free_port, signal};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::TEST_SHARDS;

/// One `iee-profile` process of a [`ProfileNodes`] group.
#[derive(Debug)]
pub struct ProfileProcess {
    /// Its node id, `p<index>`.
    pub node_id: String,
    /// Its gRPC address, `host:port` (also the address named in redirects).
    pub addr: String,
    /// Its metrics endpoint, `host:port`.
    pub metrics_addr: String,
    pid: u32,
    /// `None` once it was killed or terminated.
    process: Option<ServerProcess>,
    paused: bool,
}

impl ProfileProcess {
    /// The process id.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Running and not paused: it can own shards.
    pub fn is_serving(&self) -> bool {
        self.process.is_some() && !self.paused
    }
}

/// `iee-profile` processes over one Redis, with `TEST_SHARDS` shards. Processes are killed when
/// the group is dropped.
pub struct ProfileNodes {
    redis_url: String,
    stores: Stores,
    nodes: Vec<ProfileProcess>,
}

impl std::fmt::Debug for ProfileNodes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProfileNodes")
            .field("redis_url", &self.redis_url)
            .field("nodes", &self.nodes)
            .finish_non_exhaustive()
    }
}

/// How long a group waits for its shards to settle at start.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(30);

impl ProfileNodes {
    /// An empty group over `redis_url`; add processes with [`ProfileNodes::spawn`].
    pub fn new(redis_url: &str) -> Self {
        let config = StoreConfig {
            backend: iee_store::Backend::Redis,
            redis: RedisConfig {
                url: redis_url.to_owned(),
                response_timeout_ms: 5_000,
                ..RedisConfig::default()
            },
        };
        let stores = Stores::open(&config, TEST_SHARDS).expect("the test's Redis store opens");
        Self {
            redis_url: redis_url.to_owned(),
            stores,
            nodes: Vec::new(),
        }
    }

    /// `n` processes with the same extra `envs`, started and settled: every shard is owned and
    /// the assignment no longer changes.
    pub async fn start(redis_url: &str, n: usize, envs: &[(&str, &str)]) -> Self {
        let mut nodes = Self::new(redis_url);
        for _ in 0..n {
            nodes.spawn(envs);
        }
        nodes.wait_settled(SETTLE_TIMEOUT).await;
        nodes
    }

    /// Starts one more process, node id `p<index>`, with `TEST_SHARDS` shards and the extra
    /// `envs` (`IEE_PROFILE__…`; they may override the defaults set here). Returns its index.
    pub fn spawn(&mut self, envs: &[(&str, &str)]) -> usize {
        let index = self.nodes.len();
        let node_id = format!("p{index}");
        let shards = TEST_SHARDS.to_string();
        let mut all: Vec<(&str, &str)> = vec![
            ("IEE_CLUSTER__SHARD_COUNT", &shards),
            ("IEE_PROFILE__NODE_ID", &node_id),
        ];
        all.extend_from_slice(envs);
        // The metrics port is picked free, then bound by the child: another process may take
        // it in between, so a start that fails is retried on a new port.
        let mut attempts = 0;
        let (process, metrics_addr) = loop {
            attempts += 1;
            let metrics_addr = format!("127.0.0.1:{}", free_port());
            let started = ServerProcess::try_spawn(
                "iee-profile",
                &[
                    "--listen",
                    "127.0.0.1:0",
                    "--redis-url",
                    &self.redis_url,
                    "--metrics-listen",
                    &metrics_addr,
                ],
                &all,
            );
            match started {
                Ok(process) => break (process, metrics_addr),
                Err(err) if attempts >= 5 => panic!("{err} (after {attempts} attempts)"),
                Err(_) => {}
            }
        };
        self.nodes.push(ProfileProcess {
            node_id,
            addr: process.addr.clone(),
            metrics_addr,
            pid: process.pid(),
            process: Some(process),
            paused: false,
        });
        index
    }

    /// The stores over the group's Redis (shard map, signal history, timers, profiles).
    pub fn stores(&self) -> &Stores {
        &self.stores
    }

    /// Process `index`.
    pub fn node(&self, index: usize) -> &ProfileProcess {
        &self.nodes[index]
    }

    /// Number of processes ever started (dead ones included).
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Whether no process was started.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// Indexes of the processes that are running and not paused.
    pub fn serving(&self) -> Vec<usize> {
        (0..self.nodes.len())
            .filter(|i| self.nodes[*i].is_serving())
            .collect()
    }

    /// The index of the node with `node_id`.
    pub fn index_of(&self, node_id: &str) -> Option<usize> {
        self.nodes.iter().position(|n| n.node_id == node_id)
    }

    /// A routed client seeded with the nodes `seeds`, retrying through hand-offs for up to 20 s
    /// per call, with a 5 s deadline per attempt (a paused node never answers).
    pub fn client_of(&self, seeds: &[usize]) -> ProfileClient {
        let seeds = seeds.iter().map(|i| self.nodes[*i].addr.clone()).collect();
        ProfileClient::connect(
            seeds,
            TEST_SHARDS,
            RouteOptions {
                retry_for: Duration::from_secs(20),
                request_timeout: Some(Duration::from_secs(5)),
                ..RouteOptions::default()
            },
        )
        .expect("valid seeds")
    }

    /// A routed client seeded with every serving node.
    pub fn client(&self) -> ProfileClient {
        self.client_of(&self.serving())
    }

    /// SIGKILL: a crash. Waits for the exit.
    pub async fn kill(&mut self, index: usize) {
        // SIGKILL ends a stopped process too, without letting it run first.
        let process = self.take(index, false);
        process.signal_and_wait("KILL").await;
    }

    /// SIGTERM: a graceful stop. Returns a task that waits for the exit (not awaited here, so
    /// the caller can watch the hand-off meanwhile).
    pub fn terminate(&mut self, index: usize) -> tokio::task::JoinHandle<ExitStatus> {
        let process = self.take(index, true);
        tokio::spawn(process.signal_and_wait("TERM"))
    }

    /// SIGSTOP: the process freezes (a long GC pause, a stalled VM) and keeps its sockets.
    pub fn pause(&mut self, index: usize) {
        let node = &mut self.nodes[index];
        assert!(node.process.is_some(), "{} is not running", node.node_id);
        signal(node.pid, "STOP");
        node.paused = true;
    }

    /// SIGCONT: the paused process runs on as if nothing happened.
    pub fn resume(&mut self, index: usize) {
        let node = &mut self.nodes[index];
        assert!(node.process.is_some(), "{} is not running", node.node_id);
        signal(node.pid, "CONT");
        node.paused = false;
    }

    fn take(&mut self, index: usize, resume: bool) -> ServerProcess {
        let node = &mut self.nodes[index];
        let process = node
            .process
            .take()
            .unwrap_or_else(|| panic!("{} is not running", node.node_id));
        if node.paused && resume {
            // A stopped process does not act on TERM until it runs again.
            signal(node.pid, "CONT");
        }
        node.paused = false;
        process
    }

    /// The live owner of every shard, by shard, as the leases in Redis say.
    pub async fn owners(&self) -> Vec<Option<ShardOwner>> {
        let shards: Vec<u32> = (0..TEST_SHARDS).collect();
        self.stores
            .leases
            .owners(&shards)
            .await
            .expect("the shard map is readable")
    }

    /// The shards whose live lease node `index` holds.
    pub async fn shards_of(&self, index: usize) -> Vec<u32> {
        let node_id = &self.nodes[index].node_id;
        self.owners()
            .await
            .into_iter()
            .flatten()
            .filter(|o| &o.node_id == node_id)
            .map(|o| o.shard)
            .collect()
    }

    /// The owner of `shard` as a node index, if it has a live owner.
    pub async fn owner_of(&self, shard: u32) -> Option<usize> {
        let owners = self.owners().await;
        let owner = owners.get(shard as usize)?.as_ref()?;
        self.index_of(&owner.node_id)
    }

    /// Waits until every shard is owned by a serving node, every serving node owns at least one
    /// shard, and the map (owners and epochs) stays the same for a few rebalance rounds.
    /// Returns the settled map.
    ///
    /// # Panics
    /// After `timeout`, with the last map seen.
    pub async fn wait_settled(&self, timeout: Duration) -> Vec<ShardOwner> {
        let deadline = tokio::time::Instant::now() + timeout;
        let serving: Vec<&str> = self
            .serving()
            .into_iter()
            .map(|i| self.nodes[i].node_id.as_str())
            .collect();
        let mut stable_rounds = 0;
        let mut previous: Option<Vec<(String, u64)>> = None;
        loop {
            let owners = self.owners().await;
            let complete: Option<Vec<ShardOwner>> = owners
                .iter()
                .map(|o| {
                    o.as_ref()
                        .filter(|o| serving.contains(&o.node_id.as_str()))
                        .cloned()
                })
                .collect();
            let settled = complete.filter(|map| {
                serving
                    .iter()
                    .all(|id| map.iter().any(|o| o.node_id == *id))
            });
            match settled {
                Some(map) => {
                    let now: Vec<(String, u64)> =
                        map.iter().map(|o| (o.node_id.clone(), o.epoch)).collect();
                    if previous.as_ref() == Some(&now) {
                        stable_rounds += 1;
                    } else {
                        stable_rounds = 0;
                    }
                    previous = Some(now);
                    // Three unchanged reads 250 ms apart span several rebalance intervals.
                    if stable_rounds >= 3 {
                        return map;
                    }
                }
                None => {
                    stable_rounds = 0;
                    previous = None;
                }
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "shards did not settle on {serving:?} within {timeout:?}: {owners:?}"
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// Waits until every shard has a live owner among the serving nodes (no stability check),
    /// returning how long that took.
    pub async fn wait_all_owned(&self, timeout: Duration) -> Duration {
        let started = tokio::time::Instant::now();
        let serving: Vec<String> = self
            .serving()
            .into_iter()
            .map(|i| self.nodes[i].node_id.clone())
            .collect();
        loop {
            let owners = self.owners().await;
            if owners
                .iter()
                .all(|o| o.as_ref().is_some_and(|o| serving.contains(&o.node_id)))
            {
                return started.elapsed();
            }
            assert!(
                started.elapsed() < timeout,
                "not every shard was owned by {serving:?} within {timeout:?}: {owners:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The Prometheus text of node `index`, or `None` if it does not answer within 5 s.
    pub async fn scrape(&self, index: usize) -> Option<String> {
        scrape_metrics(&self.nodes[index].metrics_addr).await
    }

    /// The value of `series` on node `index`: a full series (`name{label="v"}`), or a metric
    /// name, whose series are summed. 0 when absent (a counter family with no samples yet).
    ///
    /// # Panics
    /// If the node's metrics cannot be read.
    pub async fn metric(&self, index: usize, series: &str) -> f64 {
        let text = self.scrape(index).await.unwrap_or_else(|| {
            panic!(
                "metrics of {} at {} are not readable",
                self.nodes[index].node_id, self.nodes[index].metrics_addr
            )
        });
        metric_value(&text, series)
    }
}

/// The sum of the samples of `series` in a Prometheus text exposition (see
/// [`ProfileNodes::metric`]).
pub fn metric_value(text: &str, series: &str) -> f64 {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| {
            let (name, value) = line.rsplit_once(' ')?;
            let matches = if series.contains('{') {
                name == series
            } else {
                name.split('{').next() == Some(series)
            };
            matches.then(|| value.parse::<f64>().ok()).flatten()
        })
        // Not `sum()`: an empty float sum is -0.
        .fold(0.0, |total, value| total + value)
}

/// A minimal HTTP/1.1 GET (the test crate has no HTTP client; the endpoint is ours).
/// The Prometheus text a metrics endpoint serves (`addr` is `host:port`), or `None` when it
/// does not answer within 5 s.
pub async fn scrape_metrics(addr: &str) -> Option<String> {
    tokio::time::timeout(Duration::from_secs(5), http_get(addr, "/metrics"))
        .await
        .ok()?
        .ok()
}

async fn http_get(addr: &str, path: &str) -> std::io::Result<String> {
    let mut stream = tokio::net::TcpStream::connect(addr).await?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await?;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let bad = |what: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_owned());
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| bad("no header end"))?;
    if !head.starts_with("HTTP/1.1 200") {
        return Err(bad(head.lines().next().unwrap_or("empty response")));
    }
    if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        return dechunk(body).ok_or_else(|| bad("bad chunked body"));
    }
    Ok(body.to_owned())
}

fn dechunk(mut body: &str) -> Option<String> {
    let mut out = String::new();
    loop {
        let (size, rest) = body.split_once("\r\n")?;
        let size = usize::from_str_radix(size.split(';').next()?.trim(), 16).ok()?;
        if size == 0 {
            return Some(out);
        }
        out.push_str(rest.get(..size)?);
        body = rest.get(size + 2..)?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metric_value_sums_series_or_picks_one() {
        let text = "# TYPE x counter\n\
                    iee_profile_signals_total{kind=\"cart_abandoned\"} 2\n\
                    iee_profile_signals_total{kind=\"inactive\"} 3\n\
                    iee_profile_shards_owned 5\n\
                    iee_profile_shards_owned_other 7\n# EOF\n";
        assert_eq!(metric_value(text, "iee_profile_signals_total"), 5.0);
        assert_eq!(
            metric_value(text, "iee_profile_signals_total{kind=\"inactive\"}"),
            3.0
        );
        assert_eq!(metric_value(text, "iee_profile_shards_owned"), 5.0);
        assert_eq!(metric_value(text, "iee_profile_missing_total"), 0.0);
    }

    #[test]
    fn dechunk_joins_chunks() {
        assert_eq!(
            dechunk("5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n").as_deref(),
            Some("hello world")
        );
    }
}
