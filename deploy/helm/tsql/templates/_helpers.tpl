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

{{/* The server pods; the helm test pod has component "test" and is not selected. */}}
{{- define "tsql.selectorLabels" -}}
app.kubernetes.io/name: {{ include "tsql.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: server
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
The limits tsql gets, derived from the container's and checked against them:
a dict of memoryLimit, queryMemoryLimit, spillLimit, querySpillLimit (bytes,
0 when tsql's own default applies).
*/}}
{{- define "tsql.limits" -}}
{{- $v := .Values -}}
{{- $container := include "tsql.bytes" (dict "key" "resources.limits.memory" "quantity" $v.resources.limits.memory) | int64 -}}
{{- $memory := 0 -}}
{{- if $v.memory.limit -}}
{{- $memory = include "tsql.bytes" (dict "key" "memory.limit" "quantity" $v.memory.limit) | int64 -}}
{{- if gt $memory $container -}}
{{- fail (printf "memory.limit (%s) is above the container's memory limit resources.limits.memory (%s): the kernel would kill tsql before its own limit stops a query. Lower memory.limit or raise resources.limits.memory." (toString $v.memory.limit) (toString $v.resources.limits.memory)) -}}
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
{{- fail (printf "spill.medium is Memory, so spill files count against the container's memory: memory_limit (%s) plus spill.sizeLimit (%s) must fit in resources.limits.memory (%s). Lower them, or keep spill on disk (spill.medium: \"\")." (include "tsql.size" $memory) (toString $v.spill.sizeLimit) (toString $v.resources.limits.memory)) -}}
{{- end -}}
{{- if lt $memory 1048576 -}}
{{- fail "memory_limit would be below 1MiB: raise resources.limits.memory or memory.limitFraction" -}}
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

{{/* The Secret the chart makes for values given in clear (user hashes, the Cassandra password). */}}
{{- define "tsql.valuesSecret" -}}
{{- printf "%s-credentials" (include "tsql.fullname" .) -}}
{{- end -}}

{{/* Where each secret is mounted in the pod. */}}
{{- define "tsql.secretsDir" -}}/etc/tsql/secrets{{- end -}}
