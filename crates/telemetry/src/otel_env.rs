//! The standard `OTEL_*` environment variables of the span pipeline, resolved together with the
//! `telemetry` configuration into the settings the pipeline is built from.
//!
//! Precedence, per setting:
//! - export endpoint: `telemetry.otlp_endpoint` when set, else `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`,
//!   else `OTEL_EXPORTER_OTLP_ENDPOINT`; none of them: spans are not exported (there is no
//!   `localhost:4317` default). `OTEL_TRACES_EXPORTER=none` turns the variables off, not the
//!   configured endpoint. Only OTLP over gRPC is built in.
//! - service name: `OTEL_SERVICE_NAME`, else `service.name` in `OTEL_RESOURCE_ATTRIBUTES`, else
//!   the binary's name (`iee-decide`, …).
//! - sampler: `OTEL_TRACES_SAMPLER` (+ `OTEL_TRACES_SAMPLER_ARG`) when set, else parent-based
//!   trace-id ratio of `telemetry.trace_sample_per_mille` (that key always has a value, so the
//!   variable is the only way to tell it was chosen).
//! - `OTEL_SDK_DISABLED=true` wins over everything: nothing is exported and no trace starts
//!   here, but incoming context still passes through to the calls and records made for it.
//!
//! The batch processor reads `OTEL_BSP_SCHEDULE_DELAY`, `OTEL_BSP_MAX_QUEUE_SIZE`,
//! `OTEL_BSP_MAX_EXPORT_BATCH_SIZE` and `OTEL_BSP_EXPORT_TIMEOUT` itself; the exporter reads
//! `OTEL_EXPORTER_OTLP_HEADERS`, `…_TIMEOUT` and `…_COMPRESSION`.

use std::collections::HashMap;

use crate::{TelemetryConfig, TelemetryError};

/// How new spans are sampled.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum SamplerSpec {
    /// Every span.
    AlwaysOn,
    /// No span.
    AlwaysOff,
    /// This share of traces, by trace id.
    TraceIdRatio(f64),
    /// A span with a parent follows the parent's decision, a root span with links follows the
    /// linked contexts (sampled if any of them is), any other root span the inner sampler.
    ParentBased(Box<SamplerSpec>),
}

/// What the span pipeline is built from.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct TraceSettings {
    /// OTLP/gRPC endpoint spans are exported to; `None`: not exported.
    pub(crate) endpoint: Option<String>,
    /// Where the endpoint came from (a configuration key or a variable), for error messages.
    pub(crate) endpoint_source: &'static str,
    /// The `service.name` resource attribute.
    pub(crate) service_name: String,
    /// The sampler.
    pub(crate) sampler: SamplerSpec,
}

const DISABLED: &str = "OTEL_SDK_DISABLED";
const ENDPOINT: &str = "OTEL_EXPORTER_OTLP_ENDPOINT";
const TRACES_ENDPOINT: &str = "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT";
const PROTOCOL: &str = "OTEL_EXPORTER_OTLP_PROTOCOL";
const TRACES_PROTOCOL: &str = "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL";
const EXPORTER: &str = "OTEL_TRACES_EXPORTER";
const SERVICE_NAME: &str = "OTEL_SERVICE_NAME";
const RESOURCE_ATTRIBUTES: &str = "OTEL_RESOURCE_ATTRIBUTES";
const SAMPLER: &str = "OTEL_TRACES_SAMPLER";
const SAMPLER_ARG: &str = "OTEL_TRACES_SAMPLER_ARG";
const CONFIG_ENDPOINT: &str = "telemetry.otlp_endpoint";

impl TraceSettings {
    /// The settings of `config` and the process's `OTEL_*` variables.
    pub(crate) fn from_env(
        config: &TelemetryConfig,
        default_service_name: &str,
    ) -> Result<Self, TelemetryError> {
        let vars: HashMap<String, String> = std::env::vars()
            .filter(|(key, _)| key.starts_with("OTEL_"))
            .collect();
        Self::resolve(config, default_service_name, &vars)
    }

    /// The settings of `config` and the variables `vars`, by the precedence in the module docs.
    /// Empty variables count as unset; a value that cannot be honoured is an error naming it.
    pub(crate) fn resolve(
        config: &TelemetryConfig,
        default_service_name: &str,
        vars: &HashMap<String, String>,
    ) -> Result<Self, TelemetryError> {
        let var = |key: &str| vars.get(key).map(|v| v.trim()).filter(|v| !v.is_empty());
        let service_name = var(SERVICE_NAME)
            .map(str::to_owned)
            .or_else(|| var(RESOURCE_ATTRIBUTES).and_then(resource_service_name))
            .unwrap_or_else(|| default_service_name.to_owned());
        if var(DISABLED).is_some_and(|v| v.eq_ignore_ascii_case("true")) {
            return Ok(Self {
                endpoint: None,
                endpoint_source: DISABLED,
                service_name,
                sampler: SamplerSpec::ParentBased(Box::new(SamplerSpec::AlwaysOff)),
            });
        }
        for key in [PROTOCOL, TRACES_PROTOCOL] {
            if let Some(protocol) = var(key)
                && protocol != "grpc"
            {
                return Err(invalid(key, "only `grpc` (OTLP over gRPC) is built in"));
            }
        }
        let export_by_env = match var(EXPORTER) {
            None | Some("otlp") => true,
            Some("none") => false,
            Some(_) => return Err(invalid(EXPORTER, "must be `otlp` or `none`")),
        };
        let (endpoint, endpoint_source) = if !config.otlp_endpoint.trim().is_empty() {
            (
                Some(config.otlp_endpoint.trim().to_owned()),
                CONFIG_ENDPOINT,
            )
        } else if !export_by_env {
            (None, EXPORTER)
        } else if let Some(endpoint) = var(TRACES_ENDPOINT) {
            (Some(endpoint.to_owned()), TRACES_ENDPOINT)
        } else if let Some(endpoint) = var(ENDPOINT) {
            (Some(endpoint.to_owned()), ENDPOINT)
        } else {
            (None, CONFIG_ENDPOINT)
        };
        let sampler = match var(SAMPLER) {
            Some(name) => sampler(name, var(SAMPLER_ARG))?,
            None => SamplerSpec::ParentBased(Box::new(SamplerSpec::TraceIdRatio(
                f64::from(config.trace_sample_per_mille.min(1000)) / 1000.0,
            ))),
        };
        Ok(Self {
            endpoint,
            endpoint_source,
            service_name,
            sampler,
        })
    }
}

/// The sampler named by `OTEL_TRACES_SAMPLER`, with its argument.
fn sampler(name: &str, arg: Option<&str>) -> Result<SamplerSpec, TelemetryError> {
    let ratio = || match arg {
        None => Ok(1.0),
        Some(arg) => arg
            .parse::<f64>()
            .ok()
            .filter(|r| (0.0..=1.0).contains(r))
            .ok_or_else(|| invalid(SAMPLER_ARG, "must be a number within 0..=1")),
    };
    let parent_based = |inner| SamplerSpec::ParentBased(Box::new(inner));
    Ok(match name {
        "always_on" => SamplerSpec::AlwaysOn,
        "always_off" => SamplerSpec::AlwaysOff,
        "traceidratio" => SamplerSpec::TraceIdRatio(ratio()?),
        "parentbased_always_on" => parent_based(SamplerSpec::AlwaysOn),
        "parentbased_always_off" => parent_based(SamplerSpec::AlwaysOff),
        "parentbased_traceidratio" => parent_based(SamplerSpec::TraceIdRatio(ratio()?)),
        _ => {
            return Err(invalid(
                SAMPLER,
                "must be always_on, always_off, traceidratio, parentbased_always_on, \
                 parentbased_always_off or parentbased_traceidratio",
            ));
        }
    })
}

/// `service.name` of an `OTEL_RESOURCE_ATTRIBUTES` list (`key=value,key=value`).
fn resource_service_name(attributes: &str) -> Option<String> {
    attributes.split(',').find_map(|pair| {
        let (key, value) = pair.split_once('=')?;
        (key.trim() == "service.name" && !value.trim().is_empty()).then(|| value.trim().to_owned())
    })
}

fn invalid(var: &'static str, reason: &str) -> TelemetryError {
    TelemetryError::Env {
        var,
        reason: reason.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolve(config: &TelemetryConfig, vars: &[(&str, &str)]) -> TraceSettings {
        try_resolve(config, vars).unwrap()
    }

    fn try_resolve(
        config: &TelemetryConfig,
        vars: &[(&str, &str)],
    ) -> Result<TraceSettings, TelemetryError> {
        let vars = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        TraceSettings::resolve(config, "iee-decide", &vars)
    }

    fn configured(endpoint: &str) -> TelemetryConfig {
        TelemetryConfig {
            otlp_endpoint: endpoint.to_owned(),
            ..TelemetryConfig::default()
        }
    }

    fn error_var(result: Result<TraceSettings, TelemetryError>) -> &'static str {
        match result {
            Err(TelemetryError::Env { var, .. }) => var,
            other => panic!("expected an error naming a variable, got {other:?}"),
        }
    }

    #[test]
    fn without_configuration_nothing_is_exported_and_every_trace_is_sampled() {
        let settings = resolve(&TelemetryConfig::default(), &[]);
        assert_eq!(settings.endpoint, None);
        assert_eq!(settings.service_name, "iee-decide");
        assert_eq!(
            settings.sampler,
            SamplerSpec::ParentBased(Box::new(SamplerSpec::TraceIdRatio(1.0)))
        );
    }

    #[test]
    fn the_configured_endpoint_wins_over_the_variables() {
        let vars = [
            (ENDPOINT, "http://generic:4317"),
            (TRACES_ENDPOINT, "http://traces:4317"),
        ];
        let settings = resolve(&configured("http://configured:4317"), &vars);
        assert_eq!(settings.endpoint.as_deref(), Some("http://configured:4317"));
        assert_eq!(settings.endpoint_source, "telemetry.otlp_endpoint");
    }

    #[test]
    fn the_traces_endpoint_wins_over_the_generic_one() {
        let both = [
            (ENDPOINT, "http://generic:4317"),
            (TRACES_ENDPOINT, "http://traces:4317"),
        ];
        let settings = resolve(&TelemetryConfig::default(), &both);
        assert_eq!(settings.endpoint.as_deref(), Some("http://traces:4317"));
        assert_eq!(settings.endpoint_source, TRACES_ENDPOINT);
        let generic = resolve(
            &TelemetryConfig::default(),
            &[(ENDPOINT, "http://generic:4317"), (TRACES_ENDPOINT, "")],
        );
        assert_eq!(generic.endpoint.as_deref(), Some("http://generic:4317"));
    }

    #[test]
    fn exporter_none_turns_off_the_variables_but_not_the_configuration() {
        let vars = [(ENDPOINT, "http://generic:4317"), (EXPORTER, "none")];
        assert_eq!(resolve(&TelemetryConfig::default(), &vars).endpoint, None);
        assert_eq!(
            resolve(&configured("http://configured:4317"), &vars)
                .endpoint
                .as_deref(),
            Some("http://configured:4317")
        );
        assert_eq!(
            error_var(try_resolve(
                &TelemetryConfig::default(),
                &[(EXPORTER, "zipkin")]
            )),
            EXPORTER
        );
    }

    #[test]
    fn only_grpc_is_accepted_as_protocol() {
        let grpc = [(PROTOCOL, "grpc"), (ENDPOINT, "http://c:4317")];
        assert!(try_resolve(&TelemetryConfig::default(), &grpc).is_ok());
        for key in [PROTOCOL, TRACES_PROTOCOL] {
            let http = [(key, "http/protobuf")];
            assert_eq!(
                error_var(try_resolve(&TelemetryConfig::default(), &http)),
                key
            );
        }
    }

    #[test]
    fn the_service_name_comes_from_the_variables_first() {
        let named = [
            (SERVICE_NAME, "decide-eu"),
            (RESOURCE_ATTRIBUTES, "service.name=other"),
        ];
        assert_eq!(
            resolve(&TelemetryConfig::default(), &named).service_name,
            "decide-eu"
        );
        let attributes = [(
            RESOURCE_ATTRIBUTES,
            "deployment.environment=prod, service.name=eu",
        )];
        assert_eq!(
            resolve(&TelemetryConfig::default(), &attributes).service_name,
            "eu"
        );
    }

    #[test]
    fn every_standard_sampler_parses() {
        let on = Box::new(SamplerSpec::AlwaysOn);
        let off = Box::new(SamplerSpec::AlwaysOff);
        let cases = [
            ("always_on", None, SamplerSpec::AlwaysOn),
            ("always_off", None, SamplerSpec::AlwaysOff),
            (
                "traceidratio",
                Some("0.25"),
                SamplerSpec::TraceIdRatio(0.25),
            ),
            ("traceidratio", None, SamplerSpec::TraceIdRatio(1.0)),
            ("parentbased_always_on", None, SamplerSpec::ParentBased(on)),
            (
                "parentbased_always_off",
                None,
                SamplerSpec::ParentBased(off),
            ),
            (
                "parentbased_traceidratio",
                Some("0.1"),
                SamplerSpec::ParentBased(Box::new(SamplerSpec::TraceIdRatio(0.1))),
            ),
        ];
        for (name, arg, want) in cases {
            let mut vars = vec![(SAMPLER, name)];
            vars.extend(arg.map(|a| (SAMPLER_ARG, a)));
            assert_eq!(
                resolve(&TelemetryConfig::default(), &vars).sampler,
                want,
                "{name}"
            );
        }
    }

    #[test]
    fn the_sampler_variable_replaces_the_configured_ratio() {
        let config = TelemetryConfig {
            trace_sample_per_mille: 10,
            ..TelemetryConfig::default()
        };
        assert_eq!(
            resolve(&config, &[]).sampler,
            SamplerSpec::ParentBased(Box::new(SamplerSpec::TraceIdRatio(0.01)))
        );
        assert_eq!(
            resolve(&config, &[(SAMPLER, "always_on")]).sampler,
            SamplerSpec::AlwaysOn
        );
    }

    #[test]
    fn unknown_samplers_and_bad_ratios_are_refused() {
        let config = TelemetryConfig::default();
        assert_eq!(
            error_var(try_resolve(&config, &[(SAMPLER, "jaeger_remote")])),
            SAMPLER
        );
        for arg in ["1.5", "-0.1", "half"] {
            let vars = [(SAMPLER, "traceidratio"), (SAMPLER_ARG, arg)];
            assert_eq!(error_var(try_resolve(&config, &vars)), SAMPLER_ARG, "{arg}");
        }
        // The argument of a sampler that takes none is ignored, as the specification says.
        let vars = [(SAMPLER, "always_on"), (SAMPLER_ARG, "half")];
        assert_eq!(resolve(&config, &vars).sampler, SamplerSpec::AlwaysOn);
    }

    #[test]
    fn a_disabled_sdk_exports_nothing_and_starts_no_trace() {
        let vars = [
            (DISABLED, "TRUE"),
            (ENDPOINT, "http://generic:4317"),
            (SAMPLER, "always_on"),
        ];
        let settings = resolve(&configured("http://configured:4317"), &vars);
        assert_eq!(settings.endpoint, None);
        assert_eq!(
            settings.sampler,
            SamplerSpec::ParentBased(Box::new(SamplerSpec::AlwaysOff))
        );
        // Only `true` disables; anything else is false, as the specification says.
        let on = resolve(&configured("http://c:4317"), &[(DISABLED, "1")]);
        assert_eq!(on.endpoint.as_deref(), Some("http://c:4317"));
    }
}
