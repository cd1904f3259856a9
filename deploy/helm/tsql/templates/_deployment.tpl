{{/*
The Deployment of one role, (dict "root" $ "role" "server"|"worker"):
  server: <fullname>, the pods behind the Service and the ingress (tsql.toml;
          the coordinators when workers run);
  worker: <fullname>-workers, behind the headless Service (worker.toml;
          workers.replicas > 0).
Both run the same image, user, security context, probes and volumes; workers
listen on the worker and metrics ports only, and mount neither the ticket
key nor the pods' TLS certificate.
*/}}
{{- define "tsql.deployment" -}}
{{- $root := .root -}}
{{- $v := $root.Values -}}
{{- $worker := eq .role "worker" -}}
{{- $cluster := include "tsql.cluster" $root -}}
{{- $secrets := include "tsql.secretsDir" $root -}}
{{- $r := include "tsql.roleResources" . | fromJson -}}
{{- $resources := ternary $v.workers.resources $v.resources (and $worker (not (empty $v.workers.resources))) -}}
{{- $replicas := ternary $v.workers.replicas $v.replicas $worker -}}
{{- $spread := $v.topologySpread -}}
{{- if and $worker $v.workers.topologySpread -}}
{{- $spread = merge (deepCopy $v.workers.topologySpread) (deepCopy $v.topologySpread) -}}
{{- end -}}
{{- if and (ne $v.spill.medium "Memory") (index $resources.limits "ephemeral-storage") -}}
{{- $disk := include "tsql.bytes" (dict "key" "spill.sizeLimit" "quantity" $v.spill.sizeLimit) | int64 -}}
{{- $ephemeral := include "tsql.bytes" (dict "key" (printf "%s.limits.ephemeral-storage" $r.key) "quantity" (index $resources.limits "ephemeral-storage")) | int64 -}}
{{- if le $ephemeral $disk -}}
{{- fail (printf "%s.limits.ephemeral-storage (%s) must be above spill.sizeLimit (%s): the spill emptyDir counts against it. Raise it or lower spill.sizeLimit." $r.key (toString (index $resources.limits "ephemeral-storage")) (toString $v.spill.sizeLimit)) -}}
{{- end -}}
{{- end -}}
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ ternary (include "tsql.workersName" $root) (include "tsql.fullname" $root) $worker }}
  namespace: {{ $root.Release.Namespace }}
  labels:
    {{- include "tsql.labels" $root | nindent 4 }}
    app.kubernetes.io/component: {{ ternary "worker" "server" $worker }}
spec:
  replicas: {{ $replicas }}
  revisionHistoryLimit: 5
  selector:
    matchLabels:
      {{- include "tsql.roleSelectorLabels" . | nindent 6 }}
  strategy:
    type: RollingUpdate
    rollingUpdate:
      maxUnavailable: 0
      maxSurge: 1
  template:
    metadata:
      labels:
        {{- include "tsql.roleSelectorLabels" . | nindent 8 }}
        {{- with $v.podLabels }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      annotations:
        # A change of the config or of credentials given as values rolls the pods.
        checksum/config: {{ include (print $root.Template.BasePath "/configmap.yaml") $root | sha256sum }}
        checksum/credentials: {{ toJson (list $v.users $v.cassandra.password) | sha256sum }}
        {{- if $v.metrics.podAnnotations }}
        prometheus.io/scrape: "true"
        prometheus.io/port: {{ $v.ports.metrics | quote }}
        prometheus.io/path: /metrics
        {{- end }}
        {{- with $v.podAnnotations }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
    spec:
      serviceAccountName: {{ include "tsql.serviceAccountName" $root }}
      automountServiceAccountToken: false
      enableServiceLinks: false
      {{- with $v.priorityClassName }}
      priorityClassName: {{ . }}
      {{- end }}
      {{- with $v.imagePullSecrets }}
      imagePullSecrets:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      # tsql stops taking queries on SIGTERM and lets running ones finish
      # within shutdown_grace_seconds; the kubelet waits a little longer.
      terminationGracePeriodSeconds: {{ add $v.server.shutdownGraceSeconds $v.server.terminationExtraSeconds }}
      securityContext:
        runAsNonRoot: true
        runAsUser: 65532
        runAsGroup: 65532
        fsGroup: 65532
        seccompProfile:
          type: RuntimeDefault
      {{- if gt (int $replicas) 1 }}
      topologySpreadConstraints:
        {{- range $spread.topologyKeys }}
        - maxSkew: {{ $spread.maxSkew }}
          topologyKey: {{ . }}
          whenUnsatisfiable: {{ $spread.whenUnsatisfiable }}
          labelSelector:
            matchLabels:
              {{- include "tsql.roleSelectorLabels" (dict "root" $root "role" (ternary "worker" "server" $worker)) | nindent 14 }}
          matchLabelKeys:
            - pod-template-hash
        {{- end }}
      {{- end }}
      containers:
        - name: tsql
          image: {{ include "tsql.image" $root }}
          imagePullPolicy: {{ $v.image.pullPolicy }}
          args: ["serve", "--config", {{ ternary "/etc/tsql/worker.toml" "/etc/tsql/tsql.toml" $worker | quote }}]
          ports:
            {{- if not $worker }}
            - name: flight
              containerPort: {{ $v.ports.flight }}
              protocol: TCP
            - name: trino
              containerPort: {{ $v.ports.trino }}
              protocol: TCP
            {{- end }}
            {{- if $cluster }}
            # Plan fragments from coordinators and shuffled data between workers
            # (gRPC; every request needs a pass sealed with the cluster secret).
            - name: worker
              containerPort: {{ $v.workers.port }}
              protocol: TCP
            {{- end }}
            - name: metrics
              containerPort: {{ $v.ports.metrics }}
              protocol: TCP
          # /healthz: the process lives; /readyz: Flight listens and the sources
          # (CPM, Cassandra) answer, and 503 from the moment shutdown begins.
          startupProbe:
            httpGet:
              path: /healthz
              port: metrics
            periodSeconds: {{ $v.probes.startup.periodSeconds }}
            failureThreshold: {{ $v.probes.startup.failureThreshold }}
          livenessProbe:
            httpGet:
              path: /healthz
              port: metrics
            periodSeconds: {{ $v.probes.liveness.periodSeconds }}
            timeoutSeconds: {{ $v.probes.liveness.timeoutSeconds }}
            failureThreshold: {{ $v.probes.liveness.failureThreshold }}
          readinessProbe:
            httpGet:
              path: /readyz
              port: metrics
            periodSeconds: {{ $v.probes.readiness.periodSeconds }}
            timeoutSeconds: {{ $v.probes.readiness.timeoutSeconds }}
            failureThreshold: {{ $v.probes.readiness.failureThreshold }}
          resources:
            {{- toYaml $resources | nindent 12 }}
          securityContext:
            runAsNonRoot: true
            runAsUser: 65532
            runAsGroup: 65532
            allowPrivilegeEscalation: false
            readOnlyRootFilesystem: true
            privileged: false
            capabilities:
              drop: ["ALL"]
            seccompProfile:
              type: RuntimeDefault
          volumeMounts:
            - name: config
              mountPath: {{ ternary "/etc/tsql/worker.toml" "/etc/tsql/tsql.toml" $worker }}
              subPath: {{ ternary "worker.toml" "tsql.toml" $worker }}
              readOnly: true
            - name: secrets
              mountPath: {{ $secrets }}
              readOnly: true
            - name: spill
              mountPath: /var/spill
            - name: tmp
              mountPath: /tmp
            {{- if and $v.tls.enabled (not $worker) }}
            - name: tls
              mountPath: /etc/tsql/tls
              readOnly: true
            {{- end }}
      volumes:
        - name: config
          configMap:
            name: {{ include "tsql.fullname" $root }}
        - name: secrets
          projected:
            defaultMode: 0440
            sources:
              {{- if not $worker }}
              - secret:
                  name: {{ include "tsql.ticketKeySecret" $root }}
                  items:
                    - key: {{ ternary $v.ticketKey.existingSecretKey "ticket-key" (not (empty $v.ticketKey.existingSecret)) }}
                      path: ticket-key
              {{- end }}
              {{- if $cluster }}
              - secret:
                  name: {{ include "tsql.clusterSecret" $root }}
                  items:
                    - key: {{ include "tsql.clusterSecretKey" $root }}
                      path: cluster-secret
              {{- end }}
              {{- range $i, $user := $v.users }}
              {{- $ref := $user.passwordHashSecret | default (dict "name" (include "tsql.valuesSecret" $root) "key" (printf "user-%d-password-hash" $i)) }}
              - secret:
                  name: {{ $ref.name }}
                  items:
                    - key: {{ $ref.key }}
                      path: {{ printf "users/%d/password-hash" $i }}
              {{- end }}
              {{- if and $v.cyoda.enabled (eq $v.cyoda.auth "client") }}
              {{- if not $v.cyoda.clientSecretSecret.name }}
              {{- fail "cyoda.auth is \"client\": set cyoda.clientId and cyoda.clientSecretSecret.name (a Secret with the client secret)" }}
              {{- end }}
              - secret:
                  name: {{ $v.cyoda.clientSecretSecret.name }}
                  items:
                    - key: {{ $v.cyoda.clientSecretSecret.key }}
                      path: cyoda-client-secret
              {{- end }}
              {{- if and $v.cassandra.enabled $v.cassandra.username }}
              - secret:
                  name: {{ $v.cassandra.passwordSecret.name | default (include "tsql.valuesSecret" $root) }}
                  items:
                    - key: {{ ternary $v.cassandra.passwordSecret.key "cassandra-password" (not (empty $v.cassandra.passwordSecret.name)) }}
                      path: cassandra-password
              {{- end }}
              {{- if and $v.cassandra.enabled $v.cassandra.tlsCASecret.name }}
              - secret:
                  name: {{ $v.cassandra.tlsCASecret.name }}
                  items:
                    - key: {{ $v.cassandra.tlsCASecret.key }}
                      path: cassandra-ca.pem
              {{- end }}
        - name: spill
          emptyDir:
            sizeLimit: {{ $v.spill.sizeLimit }}
            {{- with $v.spill.medium }}
            medium: {{ . }}
            {{- end }}
        - name: tmp
          emptyDir:
            sizeLimit: 64Mi
        {{- if and $v.tls.enabled (not $worker) }}
        - name: tls
          secret:
            secretName: {{ $v.tls.secretName }}
            defaultMode: 0440
        {{- end }}
      {{- with $v.nodeSelector }}
      nodeSelector:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $v.tolerations }}
      tolerations:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $v.affinity }}
      affinity:
        {{- toYaml . | nindent 8 }}
      {{- end }}
{{- end -}}
