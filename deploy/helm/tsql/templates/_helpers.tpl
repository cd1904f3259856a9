{{/* Names and labels. */}}
{{- define "tsql.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "tsql.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else if contains (include "tsql.name" .) .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name (include "tsql.name" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "tsql.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: {{ include "tsql.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{/*
The server pods (coordinators when workers run); the worker pods have
component "worker", the helm test pod "test": neither is selected.
*/}}
{{- define "tsql.selectorLabels" -}}
app.kubernetes.io/name: {{ include "tsql.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: server
{{- end -}}

{{/* The worker pods (workers.replicas > 0). */}}
{{- define "tsql.workerSelectorLabels" -}}
app.kubernetes.io/name: {{ include "tsql.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: worker
{{- end -}}

{{/* The selector labels of a role's pods: (dict "root" $ "role" "server"|"worker"). */}}
{{- define "tsql.roleSelectorLabels" -}}
{{- if eq .role "worker" -}}
{{- include "tsql.workerSelectorLabels" .root -}}
{{- else -}}
{{- include "tsql.selectorLabels" .root -}}
{{- end -}}
{{- end -}}

{{/* "true" when the release runs workers (workers.replicas > 0), else "". */}}
{{- define "tsql.cluster" -}}
{{- if gt (int .Values.workers.replicas) 0 }}true{{ end -}}
{{- end -}}

{{/* The headless Service of the workers, and the name coordinators resolve. */}}
{{- define "tsql.workersName" -}}
{{- printf "%s-workers" (include "tsql.fullname" . | trunc 55 | trimSuffix "-") -}}
{{- end -}}

{{- define "tsql.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "tsql.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "tsql.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{/*
Bytes of a Kubernetes quantity ("4Gi", "512Mi", "10G", "1500000000"), as an
integer text. Milli-units and exponents are refused: sizes here are whole bytes.
*/}}
{{- define "tsql.bytes" -}}
{{- $q := toString .quantity -}}
{{- $number := regexFind "^[0-9]+(\\.[0-9]+)?" $q -}}
{{- $factors := dict "" 1 "Ki" 1024 "Mi" 1048576 "Gi" 1073741824 "Ti" 1099511627776 "k" 1000 "M" 1000000 "G" 1000000000 "T" 1000000000000 -}}
{{- $unit := trimPrefix $number $q -}}
{{- if or (not $number) (not (hasKey $factors $unit)) -}}
{{- fail (printf "%s: %q is not a size like 4Gi, 512Mi or 10G" .key $q) -}}
{{- end -}}
{{- mulf (float64 $number) (get $factors $unit) | floor | int64 -}}
{{- end -}}

{{/* A byte count as tsql reads it: whole MiB, rounded down. */}}
{{- define "tsql.size" -}}
{{- printf "%dMiB" (div (int64 .) 1048576) -}}
{{- end -}}

{{/*
A role's container resources: (dict "root" $ "role" "server"|"worker") gives
{"key": where they are in the values, "resources": them} as JSON. Workers
have workers.resources, or the top-level resources when that is null.
*/}}
{{- define "tsql.roleResources" -}}
{{- $v := .root.Values -}}
{{- if and (eq .role "worker") $v.workers.resources -}}
{{- toJson (dict "key" "workers.resources" "resources" $v.workers.resources) -}}
{{- else -}}
{{- toJson (dict "key" "resources" "resources" $v.resources) -}}
{{- end -}}
{{- end -}}

{{/*
The limits tsql gets in a role's pods, (dict "root" $ "role" "server"|"worker"),
derived from the container's and checked against them: a dict of memoryLimit,
queryMemoryLimit, spillLimit, querySpillLimit (bytes, 0 when tsql's own
default applies).
*/}}
{{- define "tsql.limits" -}}
{{- $v := .root.Values -}}
{{- $r := include "tsql.roleResources" . | fromJson -}}
{{- $key := $r.key -}}
{{- $containerMemory := $r.resources.limits.memory -}}
{{- $container := include "tsql.bytes" (dict "key" (printf "%s.limits.memory" $key) "quantity" $containerMemory) | int64 -}}
{{- $memory := 0 -}}
{{- if $v.memory.limit -}}
{{- $memory = include "tsql.bytes" (dict "key" "memory.limit" "quantity" $v.memory.limit) | int64 -}}
{{- if gt $memory $container -}}
{{- fail (printf "memory.limit (%s) is above the container's memory limit %s.limits.memory (%s): the kernel would kill tsql before its own limit stops a query. Lower memory.limit or raise %s.limits.memory." (toString $v.memory.limit) $key (toString $containerMemory) $key) -}}
{{- end -}}
{{- else -}}
{{- if or (le (float64 $v.memory.limitFraction) 0.0) (gt (float64 $v.memory.limitFraction) 1.0) -}}
{{- fail (printf "memory.limitFraction must be above 0 and at most 1, got %v" $v.memory.limitFraction) -}}
{{- end -}}
{{- $memory = mulf $container $v.memory.limitFraction | floor | int64 -}}
{{- end -}}
{{- $queryMemory := 0 -}}
{{- if $v.memory.queryLimit -}}
{{- $queryMemory = include "tsql.bytes" (dict "key" "memory.queryLimit" "quantity" $v.memory.queryLimit) | int64 -}}
{{- if gt $queryMemory $memory -}}
{{- fail (printf "memory.queryLimit (%s) is above memory_limit (%s): one query cannot hold more than all of them. Lower memory.queryLimit." (toString $v.memory.queryLimit) (include "tsql.size" $memory)) -}}
{{- end -}}
{{- end -}}
{{- $disk := include "tsql.bytes" (dict "key" "spill.sizeLimit" "quantity" $v.spill.sizeLimit) | int64 -}}
{{- $spill := 0 -}}
{{- if $v.spill.limit -}}
{{- $spill = include "tsql.bytes" (dict "key" "spill.limit" "quantity" $v.spill.limit) | int64 -}}
{{- if ge $spill $disk -}}
{{- fail (printf "spill.limit (%s) must be below spill.sizeLimit (%s), the emptyDir's size: past it the kubelet evicts the pod. Lower spill.limit or raise spill.sizeLimit." (toString $v.spill.limit) (toString $v.spill.sizeLimit)) -}}
{{- end -}}
{{- else -}}
{{- if or (le (float64 $v.spill.limitFraction) 0.0) (ge (float64 $v.spill.limitFraction) 1.0) -}}
{{- fail (printf "spill.limitFraction must be above 0 and below 1, got %v" $v.spill.limitFraction) -}}
{{- end -}}
{{- $spill = mulf $disk $v.spill.limitFraction | floor | int64 -}}
{{- end -}}
{{- $querySpill := 0 -}}
{{- if $v.spill.queryLimit -}}
{{- $querySpill = include "tsql.bytes" (dict "key" "spill.queryLimit" "quantity" $v.spill.queryLimit) | int64 -}}
{{- if gt $querySpill $spill -}}
{{- fail (printf "spill.queryLimit (%s) is above spill_limit (%s). Lower spill.queryLimit." (toString $v.spill.queryLimit) (include "tsql.size" $spill)) -}}
{{- end -}}
{{- end -}}
{{- if and (eq $v.spill.medium "Memory") (gt (add $memory $disk) $container) -}}
{{- fail (printf "spill.medium is Memory, so spill files count against the container's memory: memory_limit (%s) plus spill.sizeLimit (%s) must fit in %s.limits.memory (%s). Lower them, or keep spill on disk (spill.medium: \"\")." (include "tsql.size" $memory) (toString $v.spill.sizeLimit) $key (toString $containerMemory)) -}}
{{- end -}}
{{- if lt $memory 1048576 -}}
{{- fail (printf "memory_limit would be below 1MiB: raise %s.limits.memory or memory.limitFraction" $key) -}}
{{- end -}}
{{- toJson (dict "memoryLimit" $memory "queryMemoryLimit" $queryMemory "spillLimit" $spill "querySpillLimit" $querySpill) -}}
{{- end -}}

{{/* "GRPCS"/"HTTPS" when the pods speak TLS themselves, else "GRPC"/"HTTP". */}}
{{- define "tsql.flightProtocol" -}}
{{- if .Values.tls.enabled }}GRPCS{{ else }}GRPC{{ end -}}
{{- end -}}
{{- define "tsql.trinoProtocol" -}}
{{- if .Values.tls.enabled }}HTTPS{{ else }}HTTP{{ end -}}
{{- end -}}

{{/* The Secret and key holding the ticket key. */}}
{{- define "tsql.ticketKeySecret" -}}
{{- default (printf "%s-ticket-key" (include "tsql.fullname" .)) .Values.ticketKey.existingSecret -}}
{{- end -}}

{{/* The Secret holding the cluster secret (workers.replicas > 0), and its key there. */}}
{{- define "tsql.clusterSecret" -}}
{{- default (printf "%s-cluster-secret" (include "tsql.fullname" .)) .Values.workers.clusterSecret.existingSecret -}}
{{- end -}}
{{- define "tsql.clusterSecretKey" -}}
{{- ternary .Values.workers.clusterSecret.existingSecretKey "cluster-secret" (not (empty .Values.workers.clusterSecret.existingSecret)) -}}
{{- end -}}

{{/* The Secret the chart makes for values given in clear (user hashes, the Cassandra password). */}}
{{- define "tsql.valuesSecret" -}}
{{- printf "%s-credentials" (include "tsql.fullname" .) -}}
{{- end -}}

{{/* Where each secret is mounted in the pod. */}}
{{- define "tsql.secretsDir" -}}/etc/tsql/secrets{{- end -}}

{{/*
NetworkPolicy ingress rule: /metrics (and the probes' port) from the
monitoring namespace, and with "test" from this release's `helm test` pod:
(dict "root" $ "test" true|false).
*/}}
{{- define "tsql.networkPolicyMetrics" -}}
{{- $np := .root.Values.networkPolicy -}}
- from:
    - namespaceSelector:
        {{- toYaml $np.monitoring.namespaceSelector | nindent 8 }}
      podSelector:
        {{- toYaml $np.monitoring.podSelector | nindent 8 }}
    {{- if .test }}
    - podSelector:
        matchLabels:
          app.kubernetes.io/name: {{ include "tsql.name" .root }}
          app.kubernetes.io/instance: {{ .root.Release.Name }}
          app.kubernetes.io/component: test
    {{- end }}
  ports:
    - port: metrics
      protocol: TCP
{{- end -}}

{{/*
NetworkPolicy egress rules of coordinators and workers alike: cluster DNS,
the CPM pods, the Cassandra nodes, networkPolicy.extraEgress and, with
workers, the worker port of this release's coordinators and workers.
*/}}
{{- define "tsql.networkPolicyEgress" -}}
{{- $v := .Values -}}
{{- $np := $v.networkPolicy -}}
- to:
    - namespaceSelector:
        {{- toYaml $np.dns.namespaceSelector | nindent 8 }}
      podSelector:
        {{- toYaml $np.dns.podSelector | nindent 8 }}
  ports:
    - port: 53
      protocol: UDP
    - port: 53
      protocol: TCP
{{- if $v.cyoda.enabled }}
{{- $url := urlParse $v.cyoda.url }}
{{- $port := regexFind "[0-9]+$" (regexFind ":[0-9]+$" $url.host) | default (ternary "443" "80" (eq $url.scheme "https")) }}
- to:
    - podSelector:
        {{- toYaml $v.cyoda.podSelector | nindent 8 }}
  ports:
    - port: {{ int $port }}
      protocol: TCP
{{- end }}
{{- if $v.cassandra.enabled }}
{{- $cidrs := $v.cassandra.egressCIDRs }}
{{- $ports := dict }}
{{- range $v.cassandra.contactPoints }}
{{- $port := regexFind "[0-9]+$" (regexFind ":[0-9]+$" .) | default "9042" }}
{{- $_ := set $ports $port true }}
{{- end }}
{{- if not $cidrs }}
{{- range $v.cassandra.contactPoints }}
{{- $host := regexReplaceAll ":[0-9]+$" . "" }}
{{- if not (regexMatch "^[0-9]+\\.[0-9]+\\.[0-9]+\\.[0-9]+$" $host) }}
{{- fail (printf "cassandra contact point %q is not an IPv4 address, so the NetworkPolicy cannot allow it: set cassandra.egressCIDRs to the ring's addresses (e.g. [\"10.20.0.0/24\"]) or networkPolicy.enabled=false" .) }}
{{- end }}
{{- $cidrs = append $cidrs (printf "%s/32" $host) }}
{{- end }}
{{- end }}
- to:
    {{- range $cidrs }}
    - ipBlock:
        cidr: {{ . }}
    {{- end }}
  ports:
    {{- range $port, $_ := $ports }}
    - port: {{ int $port }}
      protocol: TCP
    {{- end }}
{{- end }}
{{- if include "tsql.cluster" . }}
# The worker port: fragments, shuffled data, stages' output.
- to:
    - podSelector:
        matchLabels:
          app.kubernetes.io/name: {{ include "tsql.name" . }}
          app.kubernetes.io/instance: {{ .Release.Name }}
        matchExpressions:
          - key: app.kubernetes.io/component
            operator: In
            values: [server, worker]
  ports:
    - port: {{ $v.workers.port }}
      protocol: TCP
{{- end }}
{{- with $np.extraEgress }}
{{- toYaml . | nindent 0 }}
{{- end }}
{{- end -}}
