{{/*
Names, labels and shared values. Helpers that take a component are called with
(dict "root" $ "name" "<component>"); the rest take the root context.
*/}}

{{/* Chart name, overridable. */}}
{{- define "loupe.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Resource name prefix: <release>-<chart>, or the release name when it contains the chart name. */}}
{{- define "loupe.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/* chart-version for the helm.sh/chart label. */}}
{{- define "loupe.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Name of a component's resources: <fullname>-<component>. */}}
{{- define "loupe.componentName" -}}
{{- printf "%s-%s" (include "loupe.fullname" .root) .name | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Name of a component's headless Service (kept under 63 characters). */}}
{{- define "loupe.headlessName" -}}
{{- printf "%s-headless" (include "loupe.componentName" . | trunc 54 | trimSuffix "-") }}
{{- end }}

{{/* Selector labels; a component adds app.kubernetes.io/component. */}}
{{- define "loupe.selectorLabels" -}}
app.kubernetes.io/name: {{ include "loupe.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
{{- if .name }}
app.kubernetes.io/component: {{ .name }}
{{- end }}
{{- end }}

{{/* Labels of every resource. */}}
{{- define "loupe.labels" -}}
helm.sh/chart: {{ include "loupe.chart" .root }}
{{ include "loupe.selectorLabels" . }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
app.kubernetes.io/part-of: loupe
{{- with .root.Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* ServiceAccount of the Loupe pods. */}}
{{- define "loupe.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "loupe.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* Image of a Loupe component: <registry>/<image.repository>:<tag> unless the component
overrides repository or tag. */}}
{{- define "loupe.image" -}}
{{- $img := .root.Values.image -}}
{{- $c := index .root.Values .name | default dict -}}
{{- $own := $c.image | default dict -}}
{{- $repo := $own.repository | default $img.repository -}}
{{- if $img.registry }}{{ $repo = printf "%s/%s" (trimSuffix "/" $img.registry) $repo }}{{ end -}}
{{- printf "%s:%s" $repo ($own.tag | default $img.tag | default .root.Chart.AppVersion) -}}
{{- end }}

{{/* "true" when something other than the Deployment owns the replica count (HPA or KEDA). */}}
{{- define "loupe.autoscaled" -}}
{{- $c := index .root.Values .name -}}
{{- if and (hasKey $c "autoscaling") $c.autoscaling.enabled }}true{{ end -}}
{{- if and (eq .name "training") .root.Values.training.keda.enabled }}true{{ end -}}
{{- end }}

{{/* gRPC target of a component: dns:/// on the headless Service for client-side balancing. */}}
{{- define "loupe.grpcTarget" -}}
{{- $c := index .root.Values .name -}}
{{- if .root.Values.grpc.clientLoadBalancing -}}
{{- printf "dns:///%s.%s.svc.%s:%v" (include "loupe.headlessName" .) .root.Release.Namespace .root.Values.clusterDomain $c.port -}}
{{- else -}}
{{- printf "%s:%v" (include "loupe.componentName" .) $c.port -}}
{{- end -}}
{{- end }}

{{/* Kafka bootstrap servers (LOUPE_KAFKA_BOOTSTRAP). */}}
{{- define "loupe.kafka.bootstrap" -}}
{{- if .Values.kafka.bundled -}}
{{- printf "%s:9092" (include "loupe.componentName" (dict "root" . "name" "kafka")) -}}
{{- else -}}
{{- required "kafka.bootstrap is required when kafka.bundled is false" .Values.kafka.bootstrap -}}
{{- end -}}
{{- end }}

{{/* S3 endpoint host:port (LOUPE_S3_ENDPOINT). */}}
{{- define "loupe.s3.endpoint" -}}
{{- if .Values.minio.bundled -}}
{{- printf "%s:9000" (include "loupe.componentName" (dict "root" . "name" "minio")) -}}
{{- else -}}
{{- required "s3.endpoint is required when minio.bundled is false" .Values.s3.endpoint -}}
{{- end -}}
{{- end }}

{{/* Secret holding the PostgreSQL DSN, and its key. */}}
{{- define "loupe.postgresql.secretName" -}}
{{- .Values.postgresql.existingSecret | default (include "loupe.componentName" (dict "root" . "name" "postgresql")) -}}
{{- end }}
{{- define "loupe.postgresql.secretKey" -}}
{{- if .Values.postgresql.existingSecret }}{{ .Values.postgresql.existingSecretKey }}{{ else }}dsn{{ end -}}
{{- end }}

{{/* Secret holding the S3 keys, and the two key names. */}}
{{- define "loupe.s3.secretName" -}}
{{- .Values.s3.existingSecret | default (include "loupe.componentName" (dict "root" . "name" "s3")) -}}
{{- end }}
{{- define "loupe.s3.accessKeyKey" -}}
{{- if .Values.s3.existingSecret }}{{ .Values.s3.accessKeyKey }}{{ else }}accessKey{{ end -}}
{{- end }}
{{- define "loupe.s3.secretKeyKey" -}}
{{- if .Values.s3.existingSecret }}{{ .Values.s3.secretKeyKey }}{{ else }}secretKey{{ end -}}
{{- end }}

{{/*
A secret value: the given one, else the one already in the cluster's Secret (so a generated
password survives upgrades), else generated once per render (memoised, so every template that
asks gets the same value). Args: root, secret (Secret name), key, value, length.
*/}}
{{- define "loupe.secretValue" -}}
{{- if .value -}}
{{- .value -}}
{{- else -}}
{{- if not (hasKey .root.Values "__loupeGenerated") }}{{ $_ := set .root.Values "__loupeGenerated" dict }}{{ end -}}
{{- $memo := index .root.Values "__loupeGenerated" -}}
{{- $id := printf "%s/%s" .secret .key -}}
{{- if not (hasKey $memo $id) -}}
{{- $val := randAlphaNum (.length | default 32) -}}
{{- $existing := lookup "v1" "Secret" .root.Release.Namespace .secret -}}
{{- if and $existing $existing.data (hasKey $existing.data .key) -}}
{{- $val = index $existing.data .key | b64dec -}}
{{- end -}}
{{- $_ := set $memo $id $val -}}
{{- end -}}
{{- index $memo $id -}}
{{- end -}}
{{- end }}

{{/* Bundled PostgreSQL password. */}}
{{- define "loupe.postgresql.password" -}}
{{- include "loupe.secretValue" (dict "root" . "secret" (include "loupe.componentName" (dict "root" . "name" "postgresql")) "key" "password" "value" .Values.postgresql.password) -}}
{{- end }}

{{/* The DSN the chart stores (bundled: built from the generated password; external: s.dsn). */}}
{{- define "loupe.postgresql.dsn" -}}
{{- if .Values.postgresql.bundled -}}
{{- printf "postgresql://%s:%s@%s:5432/%s" (.Values.postgresql.username | urlquery) (include "loupe.postgresql.password" . | urlquery) (include "loupe.componentName" (dict "root" . "name" "postgresql")) .Values.postgresql.database -}}
{{- else -}}
{{- required "postgresql.existingSecret or postgresql.dsn is required when postgresql.bundled is false" .Values.postgresql.dsn -}}
{{- end -}}
{{- end }}

{{/* S3 access / secret key stored by the chart. */}}
{{- define "loupe.s3.accessKey" -}}
{{- if and (not .Values.minio.bundled) (not .Values.s3.accessKey) }}{{ fail "s3.existingSecret or s3.accessKey/s3.secretKey are required when minio.bundled is false" }}{{ end -}}
{{- include "loupe.secretValue" (dict "root" . "secret" (include "loupe.s3.secretName" .) "key" "accessKey" "value" .Values.s3.accessKey "length" 20) -}}
{{- end }}
{{- define "loupe.s3.secretKey" -}}
{{- if and (not .Values.minio.bundled) (not .Values.s3.secretKey) }}{{ fail "s3.existingSecret or s3.accessKey/s3.secretKey are required when minio.bundled is false" }}{{ end -}}
{{- include "loupe.secretValue" (dict "root" . "secret" (include "loupe.s3.secretName" .) "key" "secretKey" "value" .Values.s3.secretKey "length" 40) -}}
{{- end }}

{{/* Env entries: the PostgreSQL DSN from its Secret. */}}
{{- define "loupe.env.postgres" -}}
- name: LOUPE_POSTGRES_DSN
  valueFrom:
    secretKeyRef:
      name: {{ include "loupe.postgresql.secretName" . }}
      key: {{ include "loupe.postgresql.secretKey" . }}
{{- end }}

{{/* Env entries: the S3 endpoint, bucket and keys. */}}
{{- define "loupe.env.s3" -}}
- name: LOUPE_S3_ENDPOINT
  value: {{ include "loupe.s3.endpoint" . | quote }}
- name: LOUPE_S3_BUCKET
  value: {{ .Values.s3.bucket | quote }}
- name: LOUPE_S3_SECURE
  value: {{ and (not .Values.minio.bundled) .Values.s3.secure | toString | quote }}
- name: LOUPE_S3_ACCESS_KEY
  valueFrom:
    secretKeyRef:
      name: {{ include "loupe.s3.secretName" . }}
      key: {{ include "loupe.s3.accessKeyKey" . }}
- name: LOUPE_S3_SECRET_KEY
  valueFrom:
    secretKeyRef:
      name: {{ include "loupe.s3.secretName" . }}
      key: {{ include "loupe.s3.secretKeyKey" . }}
{{- end }}

{{/*
Helm hook phases of the migration and topic Jobs: pre-install needs the infrastructure to exist
before the release, which is true only for external infrastructure; bundled infrastructure is
created by the install itself, so the first run is post-install.
*/}}
{{- define "loupe.hookPhases" -}}
{{- if . }}post-install,pre-upgrade{{ else }}pre-install,pre-upgrade{{ end -}}
{{- end }}

{{/* Pod-level settings shared by every Loupe pod (service account, pull secrets, security). */}}
{{- define "loupe.podCommon" -}}
serviceAccountName: {{ include "loupe.serviceAccountName" . }}
automountServiceAccountToken: false
# Service links would put variables such as LOUPE_GATEWAY_PORT=tcp://... (from a Service named
# loupe-gateway) into every pod, next to the LOUPE_* configuration.
enableServiceLinks: false
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
securityContext:
  {{- toYaml .Values.podSecurityContext | nindent 2 }}
{{- end }}

{{/* The Secret holding the internal secret (LOUPE_INTERNAL_SECRET), and its key. */}}
{{- define "loupe.internal.secretName" -}}
{{- .Values.internalAuth.existingSecret | default (include "loupe.componentName" (dict "root" . "name" "internal")) -}}
{{- end }}
{{- define "loupe.internal.secretKey" -}}
{{- if .Values.internalAuth.existingSecret }}{{ .Values.internalAuth.existingSecretKey }}{{ else }}internal-secret{{ end -}}
{{- end }}

{{/* Env entry of every Loupe service: the internal secret its credentials derive from. */}}
{{- define "loupe.env.internal" -}}
- name: LOUPE_INTERNAL_SECRET
  valueFrom:
    secretKeyRef:
      name: {{ include "loupe.internal.secretName" . }}
      key: {{ include "loupe.internal.secretKey" . }}
{{- if .Values.internalTLS.enabled }}
{{- if not .Values.internalTLS.secretName }}{{ fail "internalTLS.enabled needs internalTLS.secretName: a kubernetes.io/tls Secret with tls.crt, tls.key and ca.crt" }}{{ end }}
- name: LOUPE_INTERNAL_TLS_DIR
  value: {{ include "loupe.internalTLS.path" . }}
{{- with .Values.internalTLS.serverName }}
- name: LOUPE_INTERNAL_TLS_SERVER_NAME
  value: {{ . | quote }}
{{- end }}
{{- end }}
{{- end }}

{{/* Where the internal TLS Secret is mounted (internalTLS.enabled). */}}
{{- define "loupe.internalTLS.path" -}}
/etc/loupe/internal-tls
{{- end }}

{{/* An internal gRPC server's probe handler: its own port, or with mutual TLS on, the plaintext
health-only port (kubelet probes present no certificate). Args: root, port. */}}
{{- define "loupe.grpcProbe" -}}
grpc:
  port: {{ if .root.Values.internalTLS.enabled }}{{ .root.Values.internalTLS.healthPort }}{{ else }}{{ .port }}{{ end }}
{{- end }}

{{/* The health-only port of an internal gRPC server, as a spec port (internalTLS.enabled). */}}
{{- define "loupe.healthPort" -}}
{{- if .Values.internalTLS.enabled }}
- name: grpc-health
  port: {{ .Values.internalTLS.healthPort }}
{{- end }}
{{- end }}

{{/* The health-only port's environment of an internal gRPC server (internalTLS.enabled). */}}
{{- define "loupe.env.healthPort" -}}
{{- if .Values.internalTLS.enabled }}
- name: LOUPE_HEALTH_PORT
  value: {{ .Values.internalTLS.healthPort | quote }}
{{- end }}
{{- end }}

{{/* Loupe's own Secret (URL signing secret, the first account's id and keys). */}}
{{- define "loupe.auth.secretName" -}}
{{- .Values.auth.existingSecret | default (include "loupe.componentName" (dict "root" . "name" "auth")) -}}
{{- end }}

{{/* A generated secret value kept across upgrades (looked up in the cluster), made with
`generator`: "hex32" (an API key in Custom Vision's shape), "uuid" or "alnum64". Args: root,
key, generator. */}}
{{- define "loupe.auth.value" -}}
{{- $secret := include "loupe.componentName" (dict "root" .root "name" "auth") -}}
{{- if not (hasKey .root.Values "__loupeGenerated") }}{{ $_ := set .root.Values "__loupeGenerated" dict }}{{ end -}}
{{- $memo := index .root.Values "__loupeGenerated" -}}
{{- $id := printf "%s/%s" $secret .key -}}
{{- if not (hasKey $memo $id) -}}
{{- $val := "" -}}
{{- if eq .generator "hex32" }}{{ $val = randAlphaNum 64 | sha256sum | trunc 32 }}
{{- else if eq .generator "uuid" }}{{ $val = uuidv4 }}
{{- else }}{{ $val = randAlphaNum 64 }}{{ end -}}
{{- $existing := lookup "v1" "Secret" .root.Release.Namespace $secret -}}
{{- if and $existing $existing.data (hasKey $existing.data .key) -}}
{{- $val = index $existing.data .key | b64dec -}}
{{- end -}}
{{- $_ := set $memo $id $val -}}
{{- end -}}
{{- index $memo $id -}}
{{- end }}

{{/* The /tmp volume every container gets (the root filesystem is read-only). */}}
{{- define "loupe.tmpVolume" -}}
- name: tmp
  emptyDir:
    sizeLimit: {{ .Values.tmpSizeLimit }}
{{- end }}
