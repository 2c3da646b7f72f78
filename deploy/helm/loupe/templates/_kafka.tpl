{{/*
Kafka client authentication: what every Loupe pod that talks to Kafka, the topic Job and KEDA
are given (loupe_common.kafka.KafkaSecurity reads the LOUPE_KAFKA_* variables). Bundled:
SASL_PLAINTEXT with SCRAM-SHA-512 as kafka.auth.username; external: kafka.auth.*.
*/}}

{{/* LOUPE_KAFKA_SECURITY_PROTOCOL. */}}
{{- define "loupe.kafka.protocol" -}}
{{- if .Values.kafka.bundled }}SASL_PLAINTEXT{{ else }}{{ .Values.kafka.auth.protocol }}{{ end -}}
{{- end }}

{{/* "true" when the clients log in with SASL. */}}
{{- define "loupe.kafka.sasl" -}}
{{- if hasPrefix "SASL_" (include "loupe.kafka.protocol" .) }}true{{ end -}}
{{- end }}

{{/* LOUPE_KAFKA_SASL_MECHANISM. */}}
{{- define "loupe.kafka.mechanism" -}}
{{- if .Values.kafka.bundled }}SCRAM-SHA-512{{ else }}{{ .Values.kafka.auth.mechanism }}{{ end -}}
{{- end }}

{{/* The chart's own Kafka auth Secret (user name, KEDA's settings, the password unless
existingSecret holds it). */}}
{{- define "loupe.kafka.secretName" -}}
{{- include "loupe.componentName" (dict "root" . "name" "kafka-auth") -}}
{{- end }}

{{/* The Secret and key holding the SASL password. */}}
{{- define "loupe.kafka.passwordSecretName" -}}
{{- .Values.kafka.auth.existingSecret | default (include "loupe.kafka.secretName" .) -}}
{{- end }}
{{- define "loupe.kafka.passwordKey" -}}
{{- if .Values.kafka.auth.existingSecret }}{{ .Values.kafka.auth.existingSecretKey }}{{ else }}password{{ end -}}
{{- end }}

{{/* The SASL password the chart stores: given, else (bundled) generated once and kept. */}}
{{- define "loupe.kafka.password" -}}
{{- if and (not .Values.kafka.bundled) (not .Values.kafka.auth.password) -}}
{{- fail "kafka.auth.existingSecret or kafka.auth.password is required when kafka.auth.protocol is SASL_PLAINTEXT or SASL_SSL" -}}
{{- end -}}
{{- if and .Values.kafka.bundled (regexMatch "[],=[\\\\]" .Values.kafka.auth.password) -}}
{{- fail "kafka.auth.password: the bundled broker's credential syntax allows no , = [ ] or backslash" -}}
{{- end -}}
{{- include "loupe.secretValue" (dict "root" . "secret" (include "loupe.kafka.secretName" .) "key" "password" "value" .Values.kafka.auth.password "length" 32) -}}
{{- end }}

{{/*
Env entries of a Kafka client: bootstrap servers and security. Args: root, passwordSecret
(optional: a hook Secret holding the password under key "password", for hook Jobs that run
before the chart's Secrets exist).
*/}}
{{- define "loupe.env.kafka" -}}
{{- $root := .root -}}
- name: LOUPE_KAFKA_BOOTSTRAP
  value: {{ include "loupe.kafka.bootstrap" $root | quote }}
- name: LOUPE_KAFKA_SECURITY_PROTOCOL
  value: {{ include "loupe.kafka.protocol" $root | quote }}
{{- if include "loupe.kafka.sasl" $root }}
- name: LOUPE_KAFKA_SASL_MECHANISM
  value: {{ include "loupe.kafka.mechanism" $root | quote }}
- name: LOUPE_KAFKA_USERNAME
  value: {{ $root.Values.kafka.auth.username | quote }}
- name: LOUPE_KAFKA_PASSWORD
  valueFrom:
    secretKeyRef:
      {{- if and .passwordSecret (not $root.Values.kafka.auth.existingSecret) }}
      name: {{ .passwordSecret }}
      key: password
      {{- else }}
      name: {{ include "loupe.kafka.passwordSecretName" $root }}
      key: {{ include "loupe.kafka.passwordKey" $root }}
      {{- end }}
{{- end }}
{{- end }}

{{/* KEDA's Kafka scaler settings for TriggerAuthentication: sasl mode and tls. */}}
{{- define "loupe.kafka.kedaSasl" -}}
{{- if include "loupe.kafka.sasl" . -}}
{{- $m := include "loupe.kafka.mechanism" . -}}
{{- if eq $m "PLAIN" }}plaintext{{ else }}{{ $m | lower | replace "scram-sha-" "scram_sha" }}{{ end -}}
{{- else }}none{{ end -}}
{{- end }}
{{- define "loupe.kafka.kedaTls" -}}
{{- if hasSuffix "SSL" (include "loupe.kafka.protocol" .) }}enable{{ else }}disable{{ end -}}
{{- end }}
