{{/*
What is particular to each Loupe component, as data that the shared workload helpers
(_workload.tpl) render into a Deployment, Services, HPA, PDB, NetworkPolicy and ServiceMonitor.
Each "loupe.spec.<component>" takes the root context and returns YAML with:
  ports        [{name, port, servicePort?, nodePort?}] the container ports (the first one is
               the API; nodePort: the Service's node port for it when its type is NodePort)
  grpcPort     the port of the gRPC API (gRPC components only; gets a headless Service)
  metricsPort  name of the port serving Prometheus /metrics; metricsPath its path
  probe        the probe handler (grpc or httpGet) for startup, readiness and liveness
  callers      components allowed to reach the API ports ("*": anyone)
  env          the component's own environment (LOUPE_LOG_LEVEL and extraEnv are added)
  internalPlane  true: a client or server of the internal gRPC plane (gets the internal TLS
               Secret mounted when internalTLS.enabled)
  volumes / volumeMounts / nodeSelector / tolerations / extraLimits / runtimeClassName: extras
*/}}

{{- define "loupe.componentNames" -}}
{{- list "gateway" "metadata" "storage" "training" "prediction" "torchserve" | toJson -}}
{{- end }}

{{- define "loupe.spec.gateway" -}}
{{- $v := .Values.gateway -}}
command: [python, -m, loupe_gateway]
ports:
  - name: http
    port: {{ $v.port }}
    servicePort: {{ $v.service.port }}
    nodePort: {{ $v.service.nodePort | toJson }}
  {{- if $v.grpcPort }}
  # The public gRPC API (docs/grpc.md): callers authenticate with their API keys.
  - name: grpc-api
    port: {{ $v.grpcPort }}
    servicePort: {{ $v.service.grpcPort }}
    nodePort: {{ $v.service.grpcNodePort | toJson }}
  {{- end }}
metricsPort: http
metricsPath: /metrics
probe:
  httpGet:
    path: /healthz
    port: http
callers: ["*"]
internalPlane: true
env:
  - name: LOUPE_GATEWAY_HOST
    value: "0.0.0.0"
  - name: LOUPE_GATEWAY_PORT
    value: {{ $v.port | quote }}
  - name: LOUPE_GATEWAY_GRPC_PORT
    value: {{ $v.grpcPort | default 0 | quote }}
  - name: LOUPE_METADATA_TARGET
    value: {{ include "loupe.grpcTarget" (dict "root" . "name" "metadata") | quote }}
  - name: LOUPE_STORAGE_TARGET
    value: {{ include "loupe.grpcTarget" (dict "root" . "name" "storage") | quote }}
  - name: LOUPE_PREDICTION_TARGET
    value: {{ include "loupe.grpcTarget" (dict "root" . "name" "prediction") | quote }}
  - name: LOUPE_TRAINING_TARGET
    value: {{ include "loupe.grpcTarget" (dict "root" . "name" "training") | quote }}
  {{- include "loupe.env.kafka" (dict "root" .) | nindent 2 }}
  - name: LOUPE_URL_SIGNING_SECRET
    valueFrom:
      secretKeyRef:
        name: {{ include "loupe.auth.secretName" . }}
        key: url-signing-secret
  - name: LOUPE_RATE_LIMIT_PER_SECOND
    value: {{ $v.rateLimit.perSecond | quote }}
  - name: LOUPE_RATE_LIMIT_BURST
    value: {{ $v.rateLimit.burst | quote }}
  {{- if .Values.sweep.enabled }}
  # The orphan sweep runs as a CronJob (sweep-cronjob.yaml), not in every replica.
  - name: LOUPE_ORPHAN_SWEEP_INTERVAL_S
    value: "0"
  {{- end }}
  {{- include "loupe.env.internal" . | nindent 2 }}
{{- end }}

{{- define "loupe.spec.metadata" -}}
{{- $v := .Values.metadata -}}
command: [python, -m, loupe_metadata]
ports:
  - name: grpc
    port: {{ $v.port }}
  - name: metrics
    port: {{ $v.metricsPort }}
  {{- include "loupe.healthPort" . | nindent 2 }}
grpcPort: {{ $v.port }}
metricsPort: metrics
metricsPath: /metrics
probe:
  {{- include "loupe.grpcProbe" (dict "root" . "port" $v.port) | nindent 2 }}
internalPlane: true
# sweep: the orphan sweep's CronJob (sweep-cronjob.yaml).
callers: [gateway, training, prediction{{ if .Values.sweep.enabled }}, sweep{{ end }}]
env:
  - name: LOUPE_METADATA_ADDR
    value: "0.0.0.0:{{ $v.port }}"
  - name: LOUPE_METRICS_PORT
    value: {{ $v.metricsPort | quote }}
  - name: LOUPE_POSTGRES_POOL_MIN
    value: {{ $v.pool.min | quote }}
  - name: LOUPE_POSTGRES_POOL_MAX
    value: {{ $v.pool.max | quote }}
  - name: LOUPE_QUOTA_PROJECTS_PER_ACCOUNT
    value: {{ $v.quotas.projectsPerAccount | quote }}
  - name: LOUPE_QUOTA_TAGS_PER_PROJECT
    value: {{ $v.quotas.tagsPerProject | quote }}
  - name: LOUPE_QUOTA_IMAGES_PER_PROJECT
    value: {{ $v.quotas.imagesPerProject | quote }}
  - name: LOUPE_QUOTA_STORED_PREDICTIONS_PER_ACCOUNT
    value: {{ $v.quotas.storedPredictionsPerAccount | int64 | quote }}
  {{- include "loupe.env.postgres" . | nindent 2 }}
  {{- include "loupe.env.internal" . | nindent 2 }}
  {{- include "loupe.env.healthPort" . | nindent 2 }}
{{- end }}

{{- define "loupe.spec.storage" -}}
{{- $v := .Values.storage -}}
command: [python, -m, loupe_storage]
ports:
  - name: grpc
    port: {{ $v.port }}
  - name: metrics
    port: {{ $v.metricsPort }}
  {{- include "loupe.healthPort" . | nindent 2 }}
grpcPort: {{ $v.port }}
metricsPort: metrics
metricsPath: /metrics
probe:
  {{- include "loupe.grpcProbe" (dict "root" . "port" $v.port) | nindent 2 }}
internalPlane: true
callers: [gateway, training, prediction{{ if .Values.sweep.enabled }}, sweep{{ end }}]
env:
  - name: LOUPE_STORAGE_ADDR
    value: "0.0.0.0:{{ $v.port }}"
  - name: LOUPE_METRICS_PORT
    value: {{ $v.metricsPort | quote }}
  {{- include "loupe.env.s3" . | nindent 2 }}
  {{- include "loupe.env.internal" . | nindent 2 }}
  {{- include "loupe.env.healthPort" . | nindent 2 }}
{{- end }}

{{- define "loupe.spec.training" -}}
{{- $v := .Values.training -}}
command: [python, -m, loupe_training]
ports:
  - name: grpc
    port: {{ $v.port }}
  - name: metrics
    port: {{ $v.metricsPort }}
  {{- include "loupe.healthPort" . | nindent 2 }}
grpcPort: {{ $v.port }}
metricsPort: metrics
metricsPath: /metrics
probe:
  {{- include "loupe.grpcProbe" (dict "root" . "port" $v.port) | nindent 2 }}
internalPlane: true
callers: [gateway]
env:
  - name: LOUPE_TRAINING_ADDR
    value: "0.0.0.0:{{ $v.port }}"
  - name: LOUPE_METRICS_PORT
    value: {{ $v.metricsPort | quote }}
  {{- include "loupe.env.kafka" (dict "root" .) | nindent 2 }}
  - name: LOUPE_METADATA_TARGET
    value: {{ include "loupe.grpcTarget" (dict "root" . "name" "metadata") | quote }}
  - name: LOUPE_STORAGE_TARGET
    value: {{ include "loupe.grpcTarget" (dict "root" . "name" "storage") | quote }}
  - name: LOUPE_MODEL_CACHE
    value: {{ $v.modelCache.path | quote }}
  - name: LOUPE_TRAINING_THREADS
    value: {{ $v.threads | quote }}
  {{- include "loupe.env.internal" . | nindent 2 }}
  {{- include "loupe.env.healthPort" . | nindent 2 }}
volumes:
  - name: model-cache
    emptyDir:
      sizeLimit: {{ $v.modelCache.sizeLimit }}
volumeMounts:
  - name: model-cache
    mountPath: {{ $v.modelCache.path }}
{{- if $v.gpu.enabled }}
extraLimits:
  {{ $v.gpu.resourceName }}: {{ $v.gpu.count }}
{{- with $v.gpu.runtimeClassName }}
runtimeClassName: {{ . }}
{{- end }}
{{- with $v.gpu.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $v.gpu.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}
{{- end }}

{{- define "loupe.spec.prediction" -}}
{{- $v := .Values.prediction -}}
{{- $ts := include "loupe.componentName" (dict "root" . "name" "torchserve") -}}
command: [python, -m, loupe_prediction]
ports:
  - name: grpc
    port: {{ $v.port }}
  - name: metrics
    port: {{ $v.metricsPort }}
  {{- include "loupe.healthPort" . | nindent 2 }}
grpcPort: {{ $v.port }}
metricsPort: metrics
metricsPath: /metrics
probe:
  {{- include "loupe.grpcProbe" (dict "root" . "port" $v.port) | nindent 2 }}
internalPlane: true
callers: [gateway]
env:
  - name: LOUPE_PREDICTION_ADDR
    value: "0.0.0.0:{{ $v.port }}"
  - name: LOUPE_METRICS_PORT
    value: {{ $v.metricsPort | quote }}
  - name: LOUPE_PREDICTION_RETENTION_DAYS
    value: {{ $v.retentionDays | quote }}
  - name: LOUPE_TORCHSERVE_INFERENCE_URL
    value: "http://{{ $ts }}:{{ .Values.torchserve.port }}"
  - name: LOUPE_TORCHSERVE_MANAGEMENT_URL
    value: "http://{{ $ts }}:{{ .Values.torchserve.managementPort }}"
  - name: LOUPE_BACKBONE
    value: {{ .Values.torchserve.backbone | quote }}
  - name: LOUPE_TORCHSERVE_BATCH_SIZE
    value: {{ .Values.torchserve.batchSize | quote }}
  - name: LOUPE_TORCHSERVE_MAX_BATCH_DELAY_MS
    value: {{ .Values.torchserve.maxBatchDelayMs | quote }}
  {{- include "loupe.env.kafka" (dict "root" .) | nindent 2 }}
  - name: LOUPE_METADATA_TARGET
    value: {{ include "loupe.grpcTarget" (dict "root" . "name" "metadata") | quote }}
  - name: LOUPE_STORAGE_TARGET
    value: {{ include "loupe.grpcTarget" (dict "root" . "name" "storage") | quote }}
  {{- include "loupe.env.internal" . | nindent 2 }}
  {{- include "loupe.env.healthPort" . | nindent 2 }}
{{- end }}

{{- define "loupe.spec.torchserve" -}}
{{- $v := .Values.torchserve -}}
command: [loupe-torchserve]
ports:
  - name: inference
    port: {{ $v.port }}
  - name: management
    port: {{ $v.managementPort }}
  - name: metrics
    port: {{ $v.metricsPort }}
metricsPort: metrics
metricsPath: /metrics
probe:
  httpGet:
    path: /ping
    port: inference
callers: [prediction]
env:
  - name: TS_CONFIG_FILE
    value: /etc/torchserve/config.properties
  - name: LOUPE_MODEL_STORE
    value: /home/model-server/model-store
  - name: LOG_LOCATION
    value: /home/model-server/logs
  - name: METRICS_LOCATION
    value: /home/model-server/logs
volumes:
  - name: config
    configMap:
      name: {{ include "loupe.componentName" (dict "root" . "name" "torchserve") }}
  - name: model-store
    emptyDir:
      sizeLimit: {{ $v.modelStoreSizeLimit }}
  - name: logs
    emptyDir:
      sizeLimit: 1Gi
volumeMounts:
  - name: config
    mountPath: /etc/torchserve
    readOnly: true
  - name: model-store
    mountPath: /home/model-server/model-store
  - name: logs
    mountPath: /home/model-server/logs
{{- end }}

{{/* The parsed spec of a component; fails loudly when its YAML does not parse. */}}
{{- define "loupe.spec" -}}
{{- $spec := include (printf "loupe.spec.%s" .name) .root | fromYaml -}}
{{- if hasKey $spec "Error" }}{{ fail (printf "loupe.spec.%s: %s" .name $spec.Error) }}{{ end -}}
{{- toJson $spec -}}
{{- end }}
