{{/* Names, labels and the shared pieces of every IEE workload. */}}

{{- define "iee.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "iee.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* Selector labels of a component: (dict "root" $ "component" "ingest") */}}
{{- define "iee.selectorLabels" -}}
app.kubernetes.io/name: {{ include "iee.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "iee.labels" -}}
{{ include "iee.selectorLabels" . }}
app.kubernetes.io/part-of: iee
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .root.Chart.Name .root.Chart.Version | replace "+" "_" }}
{{- end -}}

{{- define "iee.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "iee.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* The enabled components of the mode: a list of names. */}}
{{- define "iee.components" -}}
{{- if eq .Values.mode "standalone" -}}
standalone
{{- else -}}
{{- range $name := list "ingest" "profile" "predict" "decide" "kpi" -}}
{{- if (index $.Values.components $name).enabled }}
{{ $name }}
{{- end -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* "true" when profile nodes find each other through the Kubernetes API (EndpointSlices of
the headless Service) rather than Redis heartbeats. */}}
{{- define "iee.profileKubeMembership" -}}
{{- and (ne .Values.mode "standalone") .Values.components.profile.enabled (eq .Values.components.profile.membership "kubernetes") -}}
{{- end -}}

{{- define "iee.componentValues" -}}
{{- if eq .component "standalone" -}}
{{- toYaml .root.Values.standalone -}}
{{- else -}}
{{- toYaml (index .root.Values.components .component) -}}
{{- end -}}
{{- end -}}

{{- define "iee.redisEnabled" -}}
{{- if or .Values.redis.bundled.enabled .Values.redis.external.url .Values.redis.external.existingSecret.name -}}true{{- end -}}
{{- end -}}

{{- define "iee.redisSecretName" -}}
{{- if .Values.redis.external.existingSecret.name -}}
{{- .Values.redis.external.existingSecret.name -}}
{{- else -}}
{{- printf "%s-redis-url" (include "iee.fullname" .) -}}
{{- end -}}
{{- end -}}

{{- define "iee.redisSecretKey" -}}
{{- if .Values.redis.external.existingSecret.name -}}
{{- .Values.redis.external.existingSecret.key -}}
{{- else -}}
url
{{- end -}}
{{- end -}}

{{- define "iee.image" -}}
{{- $repo := default .root.Values.image.repository .values.image.repository -}}
{{- $tag := default (default .root.Chart.AppVersion .root.Values.image.tag) .values.image.tag -}}
{{- printf "%s:%s" $repo $tag -}}
{{- end -}}

{{/* Seconds a pod may take to stop: grace + drain, rounded up, plus margin (+ hand-off). */}}
{{- define "iee.terminationGrace" -}}
{{- $s := .root.Values.server -}}
{{- $ms := add (int64 $s.shutdownGraceMs) (int64 $s.drainTimeoutMs) -}}
{{- $secs := add (div (add $ms 999) 1000) (int64 $s.terminationMarginSeconds) -}}
{{- if or (eq .component "profile") (eq .component "standalone") -}}
{{- $secs = add $secs (int64 (.root.Values.components.profile.handoffSeconds)) -}}
{{- end -}}
{{- $secs -}}
{{- end -}}

{{/* The profile StatefulSet's pod addresses (host:port), as a list in YAML. */}}
{{- define "iee.profileSeeds" -}}
{{- $full := include "iee.fullname" . -}}
{{- $seeds := list -}}
{{- range $i := until (int .Values.components.profile.replicas) -}}
{{- $seeds = append $seeds (printf "%s-profile-%d.%s-profile-headless.%s.svc:%d" $full $i $full $.Release.Namespace (int $.Values.grpcPort)) -}}
{{- end -}}
{{- toYaml $seeds -}}
{{- end -}}

{{/*
TOML from a map: scalars and arrays first, then sub-tables (recursively).
(dict "table" $map "prefix" "section")
*/}}
{{- define "iee.toml" -}}
{{- $table := .table -}}
{{- $prefix := .prefix -}}
{{- $scalars := list -}}
{{- $tables := list -}}
{{- range $k := keys $table | sortAlpha -}}
{{- if kindIs "map" (index $table $k) -}}
{{- $tables = append $tables $k -}}
{{- else -}}
{{- $scalars = append $scalars $k -}}
{{- end -}}
{{- end -}}
{{- if and $prefix (or $scalars (not $tables)) }}

[{{ $prefix }}]
{{- end -}}
{{- range $k := $scalars }}
{{ $k }} = {{ include "iee.tomlValue" (index $table $k) }}
{{- end -}}
{{- range $k := $tables -}}
{{- $sub := ternary $k (printf "%s.%s" $prefix $k) (eq $prefix "") -}}
{{- include "iee.toml" (dict "table" (index $table $k) "prefix" $sub) -}}
{{- end -}}
{{- end -}}

{{- define "iee.tomlValue" -}}
{{- if kindIs "string" . -}}
{{- toJson . -}}
{{- else if kindIs "bool" . -}}
{{- . -}}
{{- else if kindIs "slice" . -}}
[{{- range $i, $v := . -}}{{- if $i -}}, {{ end -}}{{- include "iee.tomlValue" $v -}}{{- end -}}]
{{- else if or (kindIs "float64" .) (kindIs "float32" .) -}}
{{- if eq (float64 .) (float64 (int64 .)) -}}{{- int64 . -}}{{- else -}}{{- . -}}{{- end -}}
{{- else if kindIs "invalid" . -}}
""
{{- else -}}
{{- . -}}
{{- end -}}
{{- end -}}

{{/* The effective TOML configuration of a component (chart settings, then `config` overrides). */}}
{{- define "iee.config" -}}
{{- $root := .root -}}
{{- $c := .component -}}
{{- $v := fromYaml (include "iee.componentValues" .) -}}
{{- $full := include "iee.fullname" $root -}}
{{- $ns := $root.Release.Namespace -}}
{{- $port := int $root.Values.grpcPort -}}
{{- $cfg := dict
  "server" (dict "listen" (printf "0.0.0.0:%d" $port) "shutdown_grace_ms" $root.Values.server.shutdownGraceMs "drain_timeout_ms" $root.Values.server.drainTimeoutMs "readiness_interval_ms" $root.Values.server.readinessIntervalMs)
  "telemetry" (dict "log_filter" $root.Values.telemetry.logFilter "log_format" $root.Values.telemetry.logFormat "metrics_listen" (printf "0.0.0.0:%d" (int $root.Values.metricsPort)))
  "cluster" (dict "shard_count" $root.Values.cluster.shardCount)
  "store" (dict "backend" (ternary "redis" "memory" (eq (include "iee.redisEnabled" $root) "true")))
-}}
{{- /* Tokens, limits and TLS (docs/security.md, docs/tls.md); files come from mounted Secrets. */ -}}
{{- $sec := $root.Values.security -}}
{{- $server := $cfg.server -}}
{{- $client := dict -}}
{{- if $sec.auth.enabled -}}
{{- $_ := set $server "auth" (dict "enabled" true "tokens_file" "/etc/iee/auth/tokens") -}}
{{- $_ := set $client "token_file" "/etc/iee/auth/service-token" -}}
{{- end -}}
{{- with $sec.limits -}}
{{- if or .tenantRatePerSec .tenantBurst .maxRequestBytes -}}
{{- $_ := set $server "limits" (dict "tenant_rate_per_sec" .tenantRatePerSec "tenant_burst" .tenantBurst "max_request_bytes" .maxRequestBytes) -}}
{{- end -}}
{{- end -}}
{{- if $sec.tls.enabled -}}
{{- $tls := dict "cert_file" "/etc/iee/tls/tls.crt" "key_file" "/etc/iee/tls/tls.key" "reload_interval_ms" $sec.tls.reloadIntervalMs -}}
{{- $clientTls := dict "ca_file" "/etc/iee/tls/ca.crt" "reload_interval_ms" $sec.tls.reloadIntervalMs -}}
{{- if $sec.tls.mutual -}}
{{- $_ := set $tls "client_ca_file" "/etc/iee/tls/ca.crt" -}}
{{- $_ := set $clientTls "cert_file" "/etc/iee/tls/tls.crt" -}}
{{- $_ := set $clientTls "key_file" "/etc/iee/tls/tls.key" -}}
{{- end -}}
{{- $_ := set $server "tls" $tls -}}
{{- $_ := set $server "health_listen" (printf "0.0.0.0:%d" (int $root.Values.healthPort)) -}}
{{- $_ := set $client "tls" $clientTls -}}
{{- end -}}
{{- /* iee standalone calls no other process: it has no [client] section. */ -}}
{{- if and $client (ne $c "standalone") -}}
{{- $_ := set $cfg "client" $client -}}
{{- end -}}
{{- $kpiOn := and (ne $root.Values.mode "standalone") $root.Values.components.kpi.enabled -}}
{{- if eq $root.Values.mode "standalone" -}}
{{- $kpiOn = true -}}
{{- end -}}
{{- $consumers := ternary (list "profile" "kpi") (list "profile") $kpiOn -}}
{{- $decideDir := "" -}}
{{- if $root.Values.decisions -}}{{- $decideDir = "/etc/iee/decisions" -}}{{- end -}}
{{- $kpi := dict "partitions" $root.Values.components.kpi.partitions "replicas" $root.Values.components.kpi.replicas -}}
{{- if eq $c "profile" -}}
{{- $profile := dict "log_consumers" $consumers -}}
{{- if eq (include "iee.profileKubeMembership" $root) "true" -}}
{{- $_ := set $profile "membership" "kubernetes" -}}
{{- $_ := set $profile "kubernetes" (dict "namespace" $ns "service" (printf "%s-profile-headless" $full) "port_name" "grpc") -}}
{{- end -}}
{{- $_ := set $cfg "profile" $profile -}}
{{- else if eq $c "predict" -}}
{{- $_ := set $cfg "predict" (dict "profile_seeds" (fromYamlArray (include "iee.profileSeeds" $root))) -}}
{{- else if eq $c "decide" -}}
{{- $d := dict "profile_seeds" (fromYamlArray (include "iee.profileSeeds" $root)) "config_path" $decideDir -}}
{{- if $root.Values.components.predict.enabled -}}{{- $_ := set $d "predict_endpoint" (printf "http://%s-predict.%s.svc:%d" $full $ns $port) -}}{{- end -}}
{{- if $root.Values.components.ingest.enabled -}}{{- $_ := set $d "ingest_endpoint" (printf "http://%s-ingest.%s.svc:%d" $full $ns $port) -}}{{- end -}}
{{- $_ := set $cfg "decide" $d -}}
{{- else if eq $c "kpi" -}}
{{- $_ := set $cfg "kpi" $kpi -}}
{{- else if eq $c "standalone" -}}
{{- $_ := set $cfg "profile" (dict "log_consumers" $consumers) -}}
{{- $_ := set $cfg "decide" (dict "config_path" $decideDir) -}}
{{- end -}}
{{- $merged := mergeOverwrite $cfg (deepCopy (default dict $v.config)) -}}
{{- include "iee.toml" (dict "table" $merged "prefix" "") | trim -}}
{{- end -}}
