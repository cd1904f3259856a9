{{/*
tsql's config file for one role, rendered from the values:
(dict "root" $ "role" "server"|"worker").
  server: tsql.toml, of the pods behind the Service and the ingress (the
          coordinators when workers run: they also get `workers`);
  worker: worker.toml (workers.replicas > 0), of the worker pods: the same
          sources, users and limits (a worker reads sources as the caller of
          the query), the worker port and the cluster secret, and no front
          end (Flight on the pod's loopback only, no Trino, no TLS, no ticket key).
Secrets are never written here: each is named by a *_file key and mounted
from a Secret (templates/_deployment.tpl). Strings and lists are written with
toJson, whose output is valid TOML. Top-level keys come before the tables.
*/}}
{{- define "tsql.config" -}}
{{- $root := .root -}}
{{- $v := $root.Values -}}
{{- $worker := eq .role "worker" -}}
{{- $cluster := include "tsql.cluster" $root -}}
{{- $limits := include "tsql.limits" . | fromJson -}}
{{- $resources := include "tsql.roleResources" . | fromJson -}}
{{- $secrets := include "tsql.secretsDir" $root -}}
# Rendered by the tsql Helm chart (release {{ $root.Release.Name }}{{ if $worker }}, worker pods{{ else if $cluster }}, coordinator pods{{ end }}); change the values, not this file.
{{- if $worker }}
# A worker serves no clients: Flight on the pod's loopback only, no Trino.
listen = {{ printf "127.0.0.1:%d" (int $v.ports.flight) | toJson }}
trino_listen = ""
{{- else }}
listen = {{ printf "0.0.0.0:%d" (int $v.ports.flight) | toJson }}
trino_listen = {{ printf "0.0.0.0:%d" (int $v.ports.trino) | toJson }}
{{- end }}
metrics_listen = {{ printf "0.0.0.0:%d" (int $v.ports.metrics) | toJson }}
log_format = {{ $v.server.logFormat | toJson }}
shutdown_grace_seconds = {{ $v.server.shutdownGraceSeconds | toJson }}
{{- if not $worker }}
ticket_key_file = {{ printf "%s/ticket-key" $secrets | toJson }}
{{- if $v.tls.enabled }}
tls_cert = "/etc/tsql/tls/tls.crt"
tls_key = "/etc/tsql/tls/tls.key"
{{- end }}
{{- end }}
{{- if $cluster }}

# The cluster: {{ $v.workers.replicas }} worker pod{{ if gt (int $v.workers.replicas) 1 }}s{{ end }} behind the headless Service {{ include "tsql.workersName" $root }}.
{{- if not $worker }}
workers = {{ list (printf "%s.%s.svc:%d" (include "tsql.workersName" $root) $root.Release.Namespace (int $v.workers.port)) | toJson }}
{{- end }}
worker_listen = {{ printf "0.0.0.0:%d" (int $v.workers.port) | toJson }}
cluster_secret_file = {{ printf "%s/cluster-secret" $secrets | toJson }}
{{- if not $worker }}
{{- $distributed := $v.workers.distributed }}
{{- if kindIs "bool" $distributed }}
{{- $distributed = ternary "on" "off" $distributed }}
{{- end }}
distributed = {{ $distributed | toJson }}
{{- if not (kindIs "invalid" $v.workers.distributeMinSplits) }}
distribute_min_splits = {{ int $v.workers.distributeMinSplits }}
{{- end }}
{{- end }}
{{- end }}

# Memory: {{ $v.memory.limit | default (printf "%v of the container's %v" $v.memory.limitFraction $resources.resources.limits.memory) }}.
memory_limit = {{ include "tsql.size" $limits.memoryLimit | toJson }}
{{- if $limits.queryMemoryLimit }}
query_memory_limit = {{ include "tsql.size" $limits.queryMemoryLimit | toJson }}
{{- end }}
# Spill: the emptyDir "spill" of {{ $v.spill.sizeLimit }}.
spill_dir = "/var/spill"
spill_limit = {{ include "tsql.size" $limits.spillLimit | toJson }}
{{- if $limits.querySpillLimit }}
query_spill_limit = {{ include "tsql.size" $limits.querySpillLimit | toJson }}
{{- end }}
{{- range $key, $name := dict "maxRunningQueries" "max_running_queries" "maxQueuedQueries" "max_queued_queries" "maxQueriesPerUser" "max_queries_per_user" "queryTimeoutSeconds" "query_timeout_seconds" "loginCacheSeconds" "login_cache_seconds" "loginFailuresPerMinute" "login_failures_per_minute" }}
{{- $value := index $v.server $key }}
{{- if not (kindIs "invalid" $value) }}
{{ $name }} = {{ $value | toJson }}
{{- end }}
{{- end }}
{{- range $i, $user := $v.users }}

[[users]]
name = {{ $user.name | toJson }}
password_hash_file = {{ printf "%s/users/%d/password-hash" $secrets $i | toJson }}
{{- with $user.roles }}
roles = {{ toJson . }}
{{- end }}
{{- if not (kindIs "invalid" $user.queryTimeoutSeconds) }}
query_timeout_seconds = {{ $user.queryTimeoutSeconds | toJson }}
{{- end }}
{{- end }}
{{- with $v.cyoda }}
{{- if .enabled }}

# The client's CPM.
[[source]]
kind = "cyoda"
catalog = {{ .catalog | toJson }}
url = {{ .url | toJson }}
{{- if eq .auth "passthrough" }}
auth = "passthrough"
{{- else if eq .auth "client" }}
client_id = {{ .clientId | toJson }}
client_secret_file = {{ printf "%s/cyoda-client-secret" $secrets | toJson }}
{{- end }}
{{- range $key, $value := .options }}
{{ $key }} = {{ $value | toJson }}
{{- end }}
{{- end }}
{{- end }}
{{- with $v.cassandra }}
{{- if .enabled }}

# The client's Cassandra keyspaces.
[[source]]
kind = "cassandra"
catalog = {{ .catalog | toJson }}
contact_points = {{ .contactPoints | toJson }}
keyspaces = {{ .keyspaces | toJson }}
{{- if .username }}
username = {{ .username | toJson }}
password_file = {{ printf "%s/cassandra-password" $secrets | toJson }}
{{- end }}
{{- if .tlsCASecret.name }}
tls_ca = {{ printf "%s/cassandra-ca.pem" $secrets | toJson }}
{{- end }}
{{- range $key, $value := .options }}
{{ $key }} = {{ $value | toJson }}
{{- end }}
{{- if .tenants }}

[source.tenants]
{{- range $user, $keyspaces := .tenants }}
{{ $user | toJson }} = {{ $keyspaces | toJson }}
{{- end }}
{{- end }}
{{- range .entityTables }}

[[source.entity_table]]
{{- range $key, $value := . }}
{{ $key }} = {{ $value | toJson }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}
{{- end -}}
