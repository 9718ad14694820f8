//! Our own rules over a rendered chart: labels, probes, resources, securityContext, shutdown
//! timing, per-scenario expectations, and metric names that exist.

use std::{collections::BTreeMap, fs};

use anyhow::{Context, Result, ensure};
use serde::Deserialize;
use serde_yaml_ng::Value;

/// The IEE workloads (app.kubernetes.io/component) that run our binaries.
const IEE_COMPONENTS: [&str; 6] = [
    "ingest",
    "profile",
    "predict",
    "decide",
    "kpi",
    "standalone",
];
const LABELS: [&str; 6] = [
    "app.kubernetes.io/name",
    "app.kubernetes.io/instance",
    "app.kubernetes.io/component",
    "app.kubernetes.io/part-of",
    "app.kubernetes.io/version",
    "app.kubernetes.io/managed-by",
];

/// One rendered Kubernetes object.
#[derive(Debug, Deserialize)]
pub(super) struct Object {
    kind: String,
    metadata: Value,
    #[serde(default)]
    spec: Value,
    #[serde(default)]
    data: Value,
    #[serde(default)]
    rules: Value,
    #[serde(default)]
    subjects: Value,
}

impl Object {
    fn name(&self) -> &str {
        self.metadata["name"].as_str().unwrap_or("?")
    }

    fn label(&self, key: &str) -> Option<&str> {
        self.metadata["labels"][key].as_str()
    }

    fn id(&self) -> String {
        format!("{}/{}", self.kind, self.name())
    }
}

pub(super) fn parse(text: &str) -> Result<Vec<Object>> {
    let mut objects = Vec::new();
    for document in serde_yaml_ng::Deserializer::from_str(text) {
        let value = Value::deserialize(document)?;
        if value.is_null() {
            continue;
        }
        objects.push(serde_yaml_ng::from_value(value)?);
    }
    Ok(objects)
}

/// What every rendering must satisfy: labels everywhere; on every workload container probes,
/// resources and a hardened securityContext; enough time to drain.
pub(super) fn check_common(objects: &[Object], tomls: &Configs) -> Result<()> {
    for object in objects {
        for key in LABELS {
            ensure!(
                object.label(key).is_some(),
                "{} lacks label {key}",
                object.id()
            );
        }
        let pod = match object.kind.as_str() {
            "Deployment" | "StatefulSet" => {
                let template = &object.spec["template"];
                for key in LABELS {
                    ensure!(
                        template["metadata"]["labels"][key].is_string(),
                        "{}: pod template lacks label {key}",
                        object.id()
                    );
                }
                &template["spec"]
            }
            "Pod" => &object.spec,
            _ => continue,
        };
        check_pod(object, pod, tomls)?;
    }
    Ok(())
}

fn check_pod(object: &Object, pod: &Value, tomls: &Configs) -> Result<()> {
    let id = object.id();
    let component = object.label("app.kubernetes.io/component").unwrap_or("");
    let iee = IEE_COMPONENTS.contains(&component);
    let security = &pod["securityContext"];
    ensure!(security["runAsNonRoot"] == true, "{id}: pod runAsNonRoot");
    ensure!(
        security["seccompProfile"]["type"] == "RuntimeDefault",
        "{id}: pod seccompProfile RuntimeDefault"
    );
    // Only profile pods that read their membership from the Kubernetes API get a token.
    let token = component == "profile" && kube_membership(tomls);
    ensure!(
        pod["automountServiceAccountToken"] == token,
        "{id}: automountServiceAccountToken must be {token}"
    );
    let containers = pod["containers"].as_sequence().context("containers")?;
    for container in containers {
        let name = container["name"].as_str().unwrap_or("?");
        let c = &container["securityContext"];
        ensure!(c["runAsNonRoot"] == true, "{id}/{name}: runAsNonRoot");
        ensure!(
            c["readOnlyRootFilesystem"] == true,
            "{id}/{name}: readOnlyRootFilesystem"
        );
        ensure!(
            c["allowPrivilegeEscalation"] == false,
            "{id}/{name}: allowPrivilegeEscalation"
        );
        ensure!(
            c["capabilities"]["drop"]
                .as_sequence()
                .is_some_and(|d| d.iter().any(|x| x == "ALL")),
            "{id}/{name}: capabilities drop ALL"
        );
        ensure!(
            c["seccompProfile"]["type"] == "RuntimeDefault",
            "{id}/{name}: seccomp"
        );
        let resources = &container["resources"];
        for key in ["cpu", "memory"] {
            ensure!(
                !resources["requests"][key].is_null(),
                "{id}/{name}: requests.{key}"
            );
        }
        ensure!(
            !resources["limits"]["memory"].is_null(),
            "{id}/{name}: limits.memory"
        );
        if object.kind == "Pod" {
            continue;
        }
        for probe in ["startupProbe", "livenessProbe", "readinessProbe"] {
            ensure!(container[probe].is_mapping(), "{id}/{name}: {probe}");
            if iee {
                ensure!(
                    container[probe]["grpc"]["port"].is_u64(),
                    "{id}/{name}: {probe} must be a native grpc probe"
                );
            }
        }
        if iee {
            // Readiness is the overall status ("") that includes the services' own probes.
            let service = &container["readinessProbe"]["grpc"]["service"];
            ensure!(
                service.is_null() || service == "",
                "{id}/{name}: readiness asks for the overall status"
            );
        }
    }
    if iee {
        check_iee_workload(object, pod, component, tomls)?;
    }
    Ok(())
}

/// terminationGracePeriodSeconds must cover the shutdown grace and the drain, read back from
/// the rendered TOML, and pods must roll when the configuration changes.
fn check_iee_workload(
    object: &Object,
    pod: &Value,
    component: &str,
    tomls: &Configs,
) -> Result<()> {
    let id = object.id();
    if component == "profile" || component == "kpi" {
        ensure!(
            object.kind == "StatefulSet",
            "{id}: {component} must be a StatefulSet"
        );
    }
    let annotations = &object.spec["template"]["metadata"]["annotations"];
    ensure!(
        annotations["checksum/config"].is_string(),
        "{id}: checksum/config annotation"
    );
    let grace = pod["terminationGracePeriodSeconds"]
        .as_u64()
        .with_context(|| format!("{id}: terminationGracePeriodSeconds"))?;
    let (shutdown_ms, drain_ms) = server_timing(
        tomls
            .get(component)
            .with_context(|| format!("{id}: no TOML for {component}"))?,
    )?;
    ensure!(
        grace * 1000 > shutdown_ms + drain_ms,
        "{id}: terminationGracePeriodSeconds {grace} must exceed shutdown_grace_ms {shutdown_ms} + drain_timeout_ms {drain_ms}"
    );
    let env = pod["containers"][0]["env"].as_sequence().context("env")?;
    let has_env = |name: &str| env.iter().any(|e| e["name"] == name);
    if component == "profile" {
        ensure!(
            has_env("IEE_PROFILE__NODE_ID") && has_env("IEE_PROFILE__ADVERTISE_ADDRESS"),
            "{id}: profile node id and advertise address come from the pod name"
        );
    }
    if component == "kpi" {
        ensure!(
            has_env("IEE_KPI__ORDINAL"),
            "{id}: kpi ordinal from the pod index"
        );
    }
    check_security(&id, pod, component, &tomls[component])
}

/// Tokens and TLS: the TOML's files come from whole-Secret mounts (a subPath mount never sees a
/// renewal), a component that calls others presents the service token and trusts the CA, and
/// with TLS the probes use the plaintext health-only port, not the TLS one.
fn check_security(id: &str, pod: &Value, component: &str, toml: &str) -> Result<()> {
    let container = &pod["containers"][0];
    let mounted = |path: &str| {
        container["volumeMounts"]
            .as_sequence()
            .is_some_and(|mounts| {
                mounts.iter().any(|m| {
                    m["mountPath"] == path && m["subPath"].is_null() && m["readOnly"] == true
                })
            })
    };
    let calls_others = component != "standalone";
    if toml.contains("[server.auth]") {
        ensure!(
            toml.contains("tokens_file = \"/etc/iee/auth/tokens\""),
            "{id}: server.auth.tokens_file from the mounted Secret"
        );
        ensure!(
            mounted("/etc/iee/auth"),
            "{id}: the tokens Secret is mounted whole, read-only"
        );
        ensure!(
            !calls_others || toml.contains("token_file = \"/etc/iee/auth/service-token\""),
            "{id}: client.token_file presents the service token"
        );
    }
    let grpc_port = container["ports"]
        .as_sequence()
        .and_then(|ports| ports.iter().find(|p| p["name"] == "grpc"))
        .and_then(|p| p["containerPort"].as_u64())
        .context("the grpc container port")?;
    let probe_ports: Vec<u64> = ["startupProbe", "livenessProbe", "readinessProbe"]
        .iter()
        .filter_map(|probe| container[*probe]["grpc"]["port"].as_u64())
        .collect();
    if toml.contains("[server.tls]") {
        ensure!(
            mounted("/etc/iee/tls"),
            "{id}: the TLS Secret is mounted whole, read-only"
        );
        ensure!(
            !calls_others || toml.contains("ca_file = \"/etc/iee/tls/ca.crt\""),
            "{id}: client.tls trusts the CA of the Secret"
        );
        let health_port: u64 = toml
            .lines()
            .find_map(|l| l.strip_prefix("health_listen = \"0.0.0.0:"))
            .and_then(|rest| rest.trim_end_matches('"').parse().ok())
            .with_context(|| format!("{id}: server.health_listen with TLS"))?;
        ensure!(
            health_port != grpc_port && probe_ports.iter().all(|p| *p == health_port),
            "{id}: with TLS every probe uses the health-only port {health_port}, got {probe_ports:?}"
        );
    } else {
        ensure!(
            probe_ports.iter().all(|p| *p == grpc_port),
            "{id}: without TLS the probes use the gRPC port"
        );
    }
    Ok(())
}

/// The component TOMLs of one rendering (component → text), from the `iee-config` ConfigMap.
pub(super) type Configs = BTreeMap<String, String>;

pub(super) fn configs(objects: &[Object]) -> Result<Configs> {
    let config = find(objects, "ConfigMap", "iee-config").context("the iee-config ConfigMap")?;
    Ok(config
        .data
        .as_mapping()
        .context("ConfigMap data")?
        .iter()
        .filter_map(|(k, v)| {
            Some((
                k.as_str()?.strip_suffix(".toml")?.to_owned(),
                v.as_str()?.to_owned(),
            ))
        })
        .collect())
}

/// `shutdown_grace_ms` and `drain_timeout_ms` of a component's TOML.
fn server_timing(toml: &str) -> Result<(u64, u64)> {
    let value = |key: &str| -> Result<u64> {
        toml.lines()
            .find_map(|l| l.strip_prefix(&format!("{key} = ")))
            .with_context(|| format!("{key} in the TOML"))?
            .trim()
            .parse()
            .with_context(|| format!("{key} is a number"))
    };
    Ok((value("shutdown_grace_ms")?, value("drain_timeout_ms")?))
}

/// Whether the profile TOML says `membership = "kubernetes"`.
fn kube_membership(tomls: &Configs) -> bool {
    tomls
        .get("profile")
        .is_some_and(|t| t.lines().any(|l| l == "membership = \"kubernetes\""))
}

fn find<'a>(objects: &'a [Object], kind: &str, name: &str) -> Option<&'a Object> {
    objects.iter().find(|o| o.kind == kind && o.name() == name)
}

fn kinds(objects: &[Object], kind: &str) -> usize {
    objects.iter().filter(|o| o.kind == kind).count()
}

/// Scenario-specific expectations, and the ConfigMap's TOML cross-checks.
pub(super) fn check_scenario(name: &str, objects: &[Object], tomls: &Configs) -> Result<()> {
    // One shard count for every component.
    let shard_counts: Vec<&str> = tomls
        .values()
        .filter_map(|t| t.lines().find(|l| l.starts_with("shard_count = ")))
        .collect();
    ensure!(
        shard_counts.len() == tomls.len(),
        "every TOML sets cluster.shard_count"
    );
    ensure!(
        shard_counts.windows(2).all(|w| w[0] == w[1]),
        "cluster.shard_count differs between components: {shard_counts:?}"
    );
    let kpi_on = tomls.contains_key("kpi") || tomls.contains_key("standalone");
    if let Some(profile) = tomls.get("profile").or_else(|| tomls.get("standalone")) {
        ensure!(
            profile.contains("\"kpi\"") == kpi_on,
            "profile.log_consumers lists kpi exactly when kpi runs"
        );
    }
    // RBAC exists only for the Kubernetes membership, and only what it needs.
    let kube = kube_membership(tomls);
    ensure!(
        kinds(objects, "Role") == usize::from(kube)
            && kinds(objects, "RoleBinding") == usize::from(kube),
        "a Role and RoleBinding exactly when profile.membership is kubernetes"
    );
    ensure!(
        kinds(objects, "ClusterRole") == 0 && kinds(objects, "ClusterRoleBinding") == 0,
        "no cluster-wide RBAC"
    );
    let workloads = |kind| kinds(objects, kind);
    match name {
        "defaults" => {
            ensure!(
                workloads("Deployment") == 3,
                "ingest, predict, decide Deployments"
            );
            ensure!(
                workloads("StatefulSet") == 3,
                "profile, kpi and redis StatefulSets"
            );
            ensure!(
                workloads("NetworkPolicy") == 6,
                "a NetworkPolicy per component and Redis"
            );
            ensure!(
                workloads("PodDisruptionBudget") == 4,
                "PDBs for ingest, profile, predict, decide"
            );
            ensure!(
                find(objects, "Service", "iee-profile-headless").is_some(),
                "headless profile Service"
            );
            ensure!(workloads("Pod") == 5, "a helm test Pod per service");
        }
        "standalone" | "standalone-memory" => {
            ensure!(workloads("Deployment") == 1, "one Deployment");
            let d = find(objects, "Deployment", "iee-standalone").context("iee-standalone")?;
            ensure!(
                d.spec["template"]["spec"]["containers"][0]["args"][0] == "standalone",
                "runs `iee standalone`"
            );
            let backend = if name == "standalone" {
                "redis"
            } else {
                "memory"
            };
            ensure!(
                tomls["standalone"].contains(&format!("backend = \"{backend}\"")),
                "store.backend {backend}"
            );
        }
        "external-redis-url" | "external-redis-secret" => {
            ensure!(
                find(objects, "StatefulSet", "iee-redis").is_none(),
                "no bundled Redis"
            );
            let secret = if name == "external-redis-url" {
                "iee-redis-url"
            } else {
                "prod-redis"
            };
            let ingest = find(objects, "Deployment", "iee-ingest").context("iee-ingest")?;
            let env = &ingest.spec["template"]["spec"]["containers"][0]["env"];
            ensure!(
                env.as_sequence().is_some_and(|e| e
                    .iter()
                    .any(|v| v["valueFrom"]["secretKeyRef"]["name"] == secret)),
                "the Redis URL comes from Secret {secret}"
            );
        }
        "components-disabled" => {
            ensure!(
                find(objects, "Deployment", "iee-predict").is_none(),
                "predict disabled"
            );
            ensure!(
                find(objects, "StatefulSet", "iee-kpi").is_none(),
                "kpi disabled"
            );
            ensure!(
                !tomls["decide"].contains("predict_endpoint"),
                "decide without predict"
            );
        }
        "hpa" => {
            ensure!(
                workloads("HorizontalPodAutoscaler") == 2,
                "HPAs for ingest and decide"
            );
            let decide = find(objects, "Deployment", "iee-decide").context("iee-decide")?;
            ensure!(
                decide.spec["replicas"].is_null(),
                "an autoscaled Deployment leaves replicas to the HPA"
            );
        }
        "monitoring" => {
            ensure!(workloads("ServiceMonitor") == 1, "a ServiceMonitor");
            ensure!(workloads("PrometheusRule") == 1, "a PrometheusRule");
            let dashboards = objects
                .iter()
                .filter(|o| o.kind == "ConfigMap" && o.label("grafana_dashboard") == Some("1"))
                .count();
            ensure!(
                dashboards == fs::read_dir("dashboards")?.count(),
                "a ConfigMap per dashboard"
            );
        }
        "security" | "security-standalone" => {
            let mutual = name == "security";
            for (component, toml) in tomls {
                ensure!(
                    toml.contains("[server.auth]") && toml.contains("[server.tls]"),
                    "{component}: tokens and TLS are on"
                );
                ensure!(
                    toml.contains("client_ca_file = \"/etc/iee/tls/ca.crt\"") == mutual,
                    "{component}: client certificates are required exactly with security.tls.mutual"
                );
                ensure!(
                    toml.contains("[client]") == (component != "standalone"),
                    "{component}: a [client] section exactly where the process calls others"
                );
                if mutual {
                    ensure!(
                        toml.contains("tenant_rate_per_sec = 2000")
                            && toml.contains("max_request_bytes = 1048576"),
                        "{component}: server.limits from security.limits"
                    );
                }
            }
            for object in objects.iter().filter(|o| o.kind == "Service") {
                let has_health = object.spec["ports"]
                    .as_sequence()
                    .is_some_and(|ports| ports.iter().any(|p| p["name"] == "health"));
                ensure!(
                    has_health != object.name().ends_with("-headless")
                        || object.name() == "iee-redis",
                    "{}: the health port on the component Services only",
                    object.id()
                );
            }
        }
        "kube-membership" => {
            let role = find(objects, "Role", "iee-profile-membership").context("the Role")?;
            let binding = find(objects, "RoleBinding", "iee-profile-membership")
                .context("the RoleBinding")?;
            ensure!(
                binding.subjects[0]["kind"] == "ServiceAccount"
                    && binding.subjects[0]["name"] == "iee",
                "the RoleBinding names the profile pods' ServiceAccount"
            );
            ensure!(
                role.rules
                    == serde_yaml_ng::from_str::<Value>(
                        "[{apiGroups: [discovery.k8s.io], resources: [endpointslices], \
                         verbs: [get, list, watch]}]"
                    )?,
                "the Role reads EndpointSlices only: {:?}",
                role.rules
            );
            let headless = find(objects, "Service", "iee-profile-headless")
                .context("headless profile Service")?;
            ensure!(
                headless.spec["publishNotReadyAddresses"] == true,
                "the headless Service lists starting (not ready) pods: they are members"
            );
            ensure!(
                tomls["profile"].contains("service = \"iee-profile-headless\"")
                    && tomls["profile"].contains("port_name = \"grpc\""),
                "profile.kubernetes names the headless Service and its grpc port"
            );
            let policy =
                find(objects, "NetworkPolicy", "iee-profile").context("profile NetworkPolicy")?;
            ensure!(
                policy.spec["egress"]
                    .as_sequence()
                    .is_some_and(|rules| rules.iter().any(|r| r["ports"]
                        .as_sequence()
                        .is_some_and(|p| p.iter().any(|p| p["port"] == 443)))),
                "profile may reach the Kubernetes API"
            );
            for other in ["iee-ingest", "iee-decide", "iee-predict"] {
                let d = find(objects, "Deployment", other).context(other)?;
                ensure!(
                    d.spec["template"]["spec"]["automountServiceAccountToken"] == false,
                    "{other} mounts no token"
                );
            }
        }
        "production" => {
            let kpi = find(objects, "StatefulSet", "iee-kpi").context("iee-kpi")?;
            ensure!(kpi.spec["replicas"] == 4, "kpi replicas");
            ensure!(
                tomls["kpi"].contains("replicas = 4"),
                "kpi.replicas in the TOML"
            );
            ensure!(
                tomls["decide"].contains("config_path = \"/etc/iee/decisions\""),
                "decisions mounted"
            );
            ensure!(
                tomls["profile"].contains("USD = 0.92"),
                "nested overrides reach the TOML"
            );
            ensure!(workloads("NetworkPolicy") == 0, "NetworkPolicies off");
        }
        _ => {}
    }
    Ok(())
}

/// Every `iee_*` metric an alert or a dashboard uses is one the services register: the names
/// in `services/*/src/metrics.rs`, plus the RED metrics crates/telemetry adds per service.
pub(super) fn check_metric_names(rendered: &str) -> Result<()> {
    let mut known = std::collections::BTreeSet::new();
    for entry in fs::read_dir("services")? {
        let dir = entry?.path();
        let service = dir
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("")
            .to_owned();
        known.insert(format!("iee_{service}_rpc_requests"));
        known.insert(format!("iee_{service}_rpc_duration_seconds"));
        if let Ok(text) = fs::read_to_string(dir.join("src/metrics.rs")) {
            known.extend(metric_names(&text).map(|(name, _)| name));
        }
    }
    for (name, full) in metric_names(rendered) {
        // Counters are exposed with `_total`, histograms with `_bucket`, `_count`, `_sum`.
        let base = ["_total", "_bucket", "_count", "_sum"]
            .iter()
            .find_map(|suffix| name.strip_suffix(suffix).filter(|b| known.contains(*b)))
            .unwrap_or(&name);
        ensure!(
            known.contains(base),
            "`{full}` is not a metric any service registers"
        );
    }
    Ok(())
}

/// The `iee_…` identifiers in `text` (name, and the text it was found in for messages).
fn metric_names(text: &str) -> impl Iterator<Item = (String, String)> + '_ {
    text.match_indices("iee_").filter_map(|(at, _)| {
        let before = text[..at].chars().next_back();
        if before.is_some_and(|c| {
            c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '/' || c == '.'
        }) {
            return None;
        }
        let name: String = text[at..]
            .chars()
            .take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_')
            .collect();
        let metric = name.split('_').count() >= 3 && !name.ends_with('_');
        metric.then(|| (name.clone(), name))
    })
}
