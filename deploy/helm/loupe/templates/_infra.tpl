{{/*
Shared parts of the bundled infrastructure (single-node StatefulSets of official images).
*/}}

{{/* Client Service plus the headless Service the StatefulSet's pods are named under. Args: root,
name, ports ([{name, port}]). */}}
{{- define "loupe.infra.services" -}}
apiVersion: v1
kind: Service
metadata:
  name: {{ include "loupe.componentName" . }}
  labels:
    {{- include "loupe.labels" . | nindent 4 }}
spec:
  selector:
    {{- include "loupe.selectorLabels" . | nindent 4 }}
  ports:
    {{- range .ports }}
    - name: {{ .name }}
      port: {{ .port }}
      targetPort: {{ .name }}
      protocol: TCP
    {{- end }}
---
apiVersion: v1
kind: Service
metadata:
  name: {{ include "loupe.headlessName" . }}
  labels:
    {{- include "loupe.labels" . | nindent 4 }}
spec:
  clusterIP: None
  # Kafka must resolve its own advertised name before it is ready.
  publishNotReadyAddresses: true
  selector:
    {{- include "loupe.selectorLabels" . | nindent 4 }}
  ports:
    {{- range .ports }}
    - name: {{ .name }}
      port: {{ .port }}
      targetPort: {{ .name }}
      protocol: TCP
    {{- end }}
{{- end }}

{{/* The data volume: a claim template when persistence is on. Args: values (persistence). */}}
{{- define "loupe.infra.claim" -}}
{{- if .enabled }}
volumeClaimTemplates:
  - metadata:
      name: data
    spec:
      accessModes: [ReadWriteOnce]
      {{- with .storageClass }}
      storageClassName: {{ . }}
      {{- end }}
      resources:
        requests:
          storage: {{ .size }}
{{- end }}
{{- end }}

{{/* Pod security context of an infrastructure pod running as the image's own user. */}}
{{- define "loupe.infra.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: {{ .uid }}
runAsGroup: {{ .gid }}
fsGroup: {{ .gid }}
fsGroupChangePolicy: OnRootMismatch
seccompProfile:
  type: RuntimeDefault
{{- end }}
