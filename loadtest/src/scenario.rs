//! Scenario files: the declarative description of one load test, parsed from TOML and checked
//! up front so that a bad file fails before any traffic with the name of the offending field.

use std::{collections::BTreeMap, fmt, path::Path};

use serde::{Deserialize, Serialize};

use crate::generator::EventKind;

/// Largest batch accepted: the ingest service's default batch limit.
pub const MAX_BATCH_SIZE: u32 = 5000;
/// Longest run accepted; load tests here are bounded in time.
pub const MAX_DURATION_SECS: f64 = 3600.0;
/// Highest request rate accepted, far above what one machine can generate.
pub const MAX_RATE: f64 = 1_000_000.0;
/// Most concurrent streams accepted.
pub const MAX_STREAMS: u32 = 1024;

/// Which ingest RPC a scenario drives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Rpc {
    /// `Ingest`: one request per batch.
    Unary,
    /// `IngestStream`: batches on long-lived bidirectional streams, acknowledged in order.
    Stream,
}

impl fmt::Display for Rpc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Unary => "unary",
            Self::Stream => "stream",
        })
    }
}

/// One load test, as written in `loadtest/scenarios/*.toml`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// Short name, used in reports and file names: 1-64 characters of `[A-Za-z0-9_.-]`.
    pub name: String,
    /// What the scenario measures, for humans.
    pub description: String,
    /// Seed of the event generator: the same seed produces the same events.
    pub seed: u64,
    /// The RPC under test.
    pub rpc: Rpc,
    /// Events per request (unary) or per streamed batch.
    pub batch_size: u32,
    /// Requests (or batches) per second, summed over all streams; fixed arrival rate.
    pub rate: f64,
    /// Length of the schedule in seconds, warm-up included.
    pub duration_secs: f64,
    /// Hard cap on scheduled requests; the run stops at whichever of this and the duration
    /// comes first.
    pub max_requests: u64,
    /// Leading seconds whose requests are sent but left out of every statistic.
    #[serde(default)]
    pub warmup_secs: f64,
    /// Concurrent streams (rpc = "stream" only; default 1).
    #[serde(default)]
    pub streams: Option<u32>,
    /// Cap on outstanding requests (or unacknowledged batches, over all streams). A request
    /// whose time comes while the cap is reached is not sent and counts as dropped.
    pub max_in_flight: u32,
    /// Tenants the events are spread over, uniformly.
    pub tenants: Vec<String>,
    /// Size of the customer population per tenant; customer ids are `c-0` … `c-<n-1>`.
    pub customers: u64,
    /// Relative weights per event type; empty means the built-in mix.
    #[serde(default)]
    pub event_mix: BTreeMap<String, u32>,
    /// Pass/fail limits checked after the run.
    #[serde(default)]
    pub thresholds: Thresholds,
}

/// Pass/fail limits of a run; each is optional.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Thresholds {
    /// Highest acceptable 99th-percentile latency, ms.
    pub max_p99_ms: Option<f64>,
    /// Highest acceptable median latency, ms.
    pub max_p50_ms: Option<f64>,
    /// Highest acceptable share of scheduled requests that failed or were dropped (0-1).
    pub max_error_rate: Option<f64>,
    /// Lowest acceptable rate of accepted events over the measured window.
    pub min_accepted_events_per_sec: Option<f64>,
}

/// Why a scenario file cannot be used.
#[derive(Debug)]
pub enum ScenarioError {
    /// The file could not be read.
    Read {
        /// The file.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not valid TOML for a scenario (toml's message names the field).
    Parse(String),
    /// A field has a value the load generator cannot use.
    Invalid {
        /// Path of the field, e.g. `thresholds.max_p99_ms` or `tenants[1]`.
        field: String,
        /// What is wrong with it.
        reason: String,
    },
}

impl ScenarioError {
    fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::Invalid {
            field: field.into(),
            reason: reason.into(),
        }
    }

    /// The offending field, when the error is about one value.
    pub fn field(&self) -> Option<&str> {
        match self {
            Self::Invalid { field, .. } => Some(field),
            Self::Read { .. } | Self::Parse(_) => None,
        }
    }
}

impl fmt::Display for ScenarioError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Read { path, source } => write!(f, "cannot read scenario {path}: {source}"),
            Self::Parse(message) => write!(f, "invalid scenario: {message}"),
            Self::Invalid { field, reason } => {
                write!(f, "invalid scenario field `{field}`: {reason}")
            }
        }
    }
}

impl std::error::Error for ScenarioError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Read { source, .. } => Some(source),
            Self::Parse(_) | Self::Invalid { .. } => None,
        }
    }
}

impl Scenario {
    /// Reads, parses and validates a scenario file.
    pub fn load(path: &Path) -> Result<Self, ScenarioError> {
        let text = std::fs::read_to_string(path).map_err(|source| ScenarioError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::from_toml(&text)
    }

    /// Parses and validates a scenario from TOML text.
    pub fn from_toml(text: &str) -> Result<Self, ScenarioError> {
        let scenario: Self =
            toml::from_str(text).map_err(|e| ScenarioError::Parse(e.message().to_owned()))?;
        scenario.validate()?;
        Ok(scenario)
    }

    /// Checks every field; the first bad one is reported.
    pub fn validate(&self) -> Result<(), ScenarioError> {
        check_name(&self.name)?;
        if self.description.trim().is_empty() {
            return Err(ScenarioError::invalid("description", "must not be empty"));
        }
        if self.batch_size == 0 || self.batch_size > MAX_BATCH_SIZE {
            return Err(ScenarioError::invalid(
                "batch_size",
                format!("must be 1-{MAX_BATCH_SIZE}, got {}", self.batch_size),
            ));
        }
        check_positive("rate", self.rate, MAX_RATE)?;
        check_positive("duration_secs", self.duration_secs, MAX_DURATION_SECS)?;
        if self.max_requests == 0 {
            return Err(ScenarioError::invalid("max_requests", "must be at least 1"));
        }
        if !self.warmup_secs.is_finite()
            || self.warmup_secs < 0.0
            || self.warmup_secs >= self.duration_secs
        {
            return Err(ScenarioError::invalid(
                "warmup_secs",
                format!(
                    "must be at least 0 and less than duration_secs ({}), got {}",
                    self.duration_secs, self.warmup_secs
                ),
            ));
        }
        match (self.rpc, self.streams) {
            (Rpc::Unary, Some(_)) => {
                return Err(ScenarioError::invalid(
                    "streams",
                    "only applies to rpc = \"stream\"",
                ));
            }
            (Rpc::Stream, Some(n)) if n == 0 || n > MAX_STREAMS => {
                return Err(ScenarioError::invalid(
                    "streams",
                    format!("must be 1-{MAX_STREAMS}, got {n}"),
                ));
            }
            _ => {}
        }
        if self.max_in_flight < self.stream_count() {
            return Err(ScenarioError::invalid(
                "max_in_flight",
                format!(
                    "must be at least 1 and at least the number of streams ({}), got {}",
                    self.stream_count(),
                    self.max_in_flight
                ),
            ));
        }
        if self.tenants.is_empty() {
            return Err(ScenarioError::invalid(
                "tenants",
                "must list at least one tenant",
            ));
        }
        for (i, tenant) in self.tenants.iter().enumerate() {
            check_tenant(&format!("tenants[{i}]"), tenant)?;
        }
        if self.customers == 0 {
            return Err(ScenarioError::invalid("customers", "must be at least 1"));
        }
        for name in self.event_mix.keys() {
            if EventKind::from_name(name).is_none() {
                return Err(ScenarioError::invalid(
                    format!("event_mix.{name}"),
                    format!(
                        "unsupported event type; use one of {} or custom.<name>",
                        EventKind::builtin_names().join(", ")
                    ),
                ));
            }
        }
        if !self.event_mix.is_empty() && self.event_mix.values().all(|w| *w == 0) {
            return Err(ScenarioError::invalid(
                "event_mix",
                "at least one weight must be positive",
            ));
        }
        let warmup_requests = (self.warmup_secs * self.rate).ceil() as u64;
        if self.scheduled_requests() <= warmup_requests {
            return Err(ScenarioError::invalid(
                "max_requests",
                format!(
                    "leaves no request after the warm-up ({warmup_requests} requests at {} per \
                     second); raise it or shorten warmup_secs",
                    self.rate
                ),
            ));
        }
        self.thresholds.validate()
    }

    /// Number of concurrent streams (1 for unary).
    pub fn stream_count(&self) -> u32 {
        self.streams.unwrap_or(1)
    }

    /// Number of requests the schedule holds: the duration at the rate, capped by
    /// `max_requests`.
    pub fn scheduled_requests(&self) -> u64 {
        // The float is at most MAX_RATE * MAX_DURATION_SECS, well inside u64.
        let by_duration = (self.duration_secs * self.rate).ceil() as u64;
        by_duration.min(self.max_requests)
    }
}

impl Thresholds {
    fn validate(&self) -> Result<(), ScenarioError> {
        let limits = [
            ("thresholds.max_p99_ms", self.max_p99_ms),
            ("thresholds.max_p50_ms", self.max_p50_ms),
            ("thresholds.max_error_rate", self.max_error_rate),
            (
                "thresholds.min_accepted_events_per_sec",
                self.min_accepted_events_per_sec,
            ),
        ];
        for (field, value) in limits {
            if let Some(v) = value
                && (!v.is_finite() || v < 0.0)
            {
                return Err(ScenarioError::invalid(
                    field,
                    format!("must be a finite number at least 0, got {v}"),
                ));
            }
        }
        if let Some(v) = self.max_error_rate
            && v > 1.0
        {
            return Err(ScenarioError::invalid(
                "thresholds.max_error_rate",
                format!("is a fraction and must be at most 1, got {v}"),
            ));
        }
        Ok(())
    }
}

fn check_name(name: &str) -> Result<(), ScenarioError> {
    let ok_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-');
    if name.is_empty() || name.len() > 64 || !name.chars().all(ok_char) {
        return Err(ScenarioError::invalid(
            "name",
            format!("must be 1-64 characters of [A-Za-z0-9_.-], got {name:?}"),
        ));
    }
    Ok(())
}

fn check_tenant(field: &str, tenant: &str) -> Result<(), ScenarioError> {
    let ok_char = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '_' | '-');
    if tenant.is_empty() || tenant.len() > 64 || !tenant.chars().all(ok_char) {
        return Err(ScenarioError::invalid(
            field,
            format!("must be 1-64 characters of [a-z0-9_-], got {tenant:?}"),
        ));
    }
    Ok(())
}

fn check_positive(field: &str, value: f64, max: f64) -> Result<(), ScenarioError> {
    if !value.is_finite() || value <= 0.0 || value > max {
        return Err(ScenarioError::invalid(
            field,
            format!("must be a number above 0 and at most {max}, got {value}"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const VALID: &str = r#"
        name = "t"
        description = "a test"
        seed = 7
        rpc = "unary"
        batch_size = 10
        rate = 50.0
        duration_secs = 2
        max_requests = 1000
        warmup_secs = 0.5
        max_in_flight = 8
        tenants = ["acme"]
        customers = 100
    "#;

    /// The valid scenario with `key` set to `value`: replaced in place when present (TOML
    /// rejects a repeated key), appended otherwise.
    fn with(key: &str, value: &str) -> String {
        let mut out = String::new();
        let mut replaced = false;
        for line in VALID.lines() {
            if line.trim_start().starts_with(&format!("{key} =")) {
                out.push_str(&format!("{key} = {value}\n"));
                replaced = true;
            } else {
                out.push_str(line);
                out.push('\n');
            }
        }
        if !replaced {
            // Top-level keys must come before any table; VALID has no tables.
            out.push_str(&format!("{key} = {value}\n"));
        }
        out
    }

    fn invalid_field(text: &str) -> String {
        match Scenario::from_toml(text) {
            Err(ScenarioError::Invalid { field, .. }) => field,
            other => panic!("expected a field error, got {other:?}"),
        }
    }

    #[test]
    fn valid_scenario_parses_with_defaults() {
        let s = Scenario::from_toml(VALID).unwrap();
        assert_eq!(s.rpc, Rpc::Unary);
        assert_eq!(s.stream_count(), 1);
        assert!(s.event_mix.is_empty());
        assert_eq!(s.thresholds, Thresholds::default());
        assert_eq!(s.scheduled_requests(), 100);
    }

    #[test]
    fn max_requests_caps_the_schedule() {
        let s = Scenario::from_toml(&with("max_requests", "30")).unwrap();
        assert_eq!(s.scheduled_requests(), 30);
    }

    #[test]
    fn unknown_field_is_rejected_by_name() {
        let err = Scenario::from_toml(&with("concurrency", "4")).unwrap_err();
        assert!(matches!(err, ScenarioError::Parse(_)));
        assert!(err.to_string().contains("concurrency"), "{err}");
    }

    #[test]
    fn unknown_threshold_is_rejected_by_name() {
        let text = format!("{VALID}\n[thresholds]\nmax_p95_ms = 3\n");
        let err = Scenario::from_toml(&text).unwrap_err();
        assert!(err.to_string().contains("max_p95_ms"), "{err}");
    }

    #[test]
    fn missing_field_is_reported_by_name() {
        let text: String = VALID
            .lines()
            .filter(|l| !l.trim_start().starts_with("max_requests"))
            .collect::<Vec<_>>()
            .join("\n");
        let err = Scenario::from_toml(&text).unwrap_err();
        assert!(err.to_string().contains("max_requests"), "{err}");
    }

    #[test]
    fn bad_rpc_is_rejected() {
        let err = Scenario::from_toml(&with("rpc", "\"batch\"")).unwrap_err();
        assert!(err.to_string().contains("unary"), "{err}");
    }

    #[test]
    fn bad_values_name_their_field() {
        let cases = [
            ("name", "\"has space\""),
            ("description", "\" \""),
            ("batch_size", "0"),
            ("batch_size", "5001"),
            ("rate", "0.0"),
            ("rate", "-3.0"),
            ("rate", "nan"),
            ("duration_secs", "0"),
            ("duration_secs", "7200"),
            ("max_requests", "0"),
            ("warmup_secs", "2"),
            ("warmup_secs", "-1"),
            ("max_in_flight", "0"),
            ("tenants", "[]"),
            ("customers", "0"),
            // 25 warm-up requests at 50/s for 0.5 s: a cap of 20 leaves nothing to measure.
            ("max_requests", "20"),
        ];
        for (key, value) in cases {
            assert_eq!(invalid_field(&with(key, value)), key, "{key} = {value}");
        }
    }

    #[test]
    fn bad_tenant_names_its_index() {
        let text = with("tenants", r#"["acme", "Big Corp"]"#);
        assert_eq!(invalid_field(&text), "tenants[1]");
    }

    #[test]
    fn streams_only_apply_to_stream_rpc() {
        assert_eq!(invalid_field(&with("streams", "2")), "streams");
        let stream = with("rpc", "\"stream\"");
        let ok = Scenario::from_toml(&format!("{stream}streams = 4\n")).unwrap();
        assert_eq!(ok.stream_count(), 4);
        assert_eq!(invalid_field(&format!("{stream}streams = 0\n")), "streams");
        // Each stream needs room for at least one outstanding batch.
        assert_eq!(
            invalid_field(&format!("{stream}streams = 16\n")),
            "max_in_flight"
        );
    }

    #[test]
    fn bad_event_mix_names_the_type() {
        let text = format!("{VALID}\n[event_mix]\npage_view = 3\nteleport = 1\n");
        assert_eq!(invalid_field(&text), "event_mix.teleport");
        let zero = format!("{VALID}\n[event_mix]\npage_view = 0\n");
        assert_eq!(invalid_field(&zero), "event_mix");
        let custom = format!("{VALID}\n[event_mix]\n\"custom.demo_click\" = 1\n");
        assert!(Scenario::from_toml(&custom).is_ok());
    }

    #[test]
    fn bad_thresholds_name_their_field() {
        let p99 = format!("{VALID}\n[thresholds]\nmax_p99_ms = -1\n");
        assert_eq!(invalid_field(&p99), "thresholds.max_p99_ms");
        let rate = format!("{VALID}\n[thresholds]\nmax_error_rate = 1.5\n");
        assert_eq!(invalid_field(&rate), "thresholds.max_error_rate");
    }

    #[test]
    fn shipped_scenarios_are_valid() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios");
        let mut count = 0;
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "toml") {
                let s = Scenario::load(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                let stem = path.file_stem().unwrap().to_str().unwrap();
                assert_eq!(s.name, stem, "scenario name matches its file name");
                count += 1;
            }
        }
        assert!(count >= 7, "expected the shipped scenarios, found {count}");
    }
}
