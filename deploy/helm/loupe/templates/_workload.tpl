{{/*
Shared renderers of a Loupe component's resources. Each takes (dict "root" $ "name" "<component>")
and reads the component's values (.Values.<component>) and spec (_components.tpl).
*/}}

{{/* A probe: the component's override, over the shared timings, over the spec's handler. */}}
{{- define "loupe.probe" -}}
{{- $c := index .root.Values .name -}}
{{- $override := index ($c.probes | default dict) .kind | default dict -}}
{{- $shared := index .root.Values.probes .kind | default dict -}}
{{- toYaml (merge (deepCopy $override) (deepCopy $shared) (deepCopy .handler)) -}}
{{- end }}

{{- define "loupe.deployment" -}}
{{- $root := .root -}}
{{- $name := .name -}}
{{- $c := index $root.Values $name -}}
{{- $spec := include "loupe.spec" . | fromJson -}}
{{- $resources := deepCopy ($c.resources | default dict) -}}
{{- with $spec.extraLimits }}
{{- $_ := set $resources "limits" (merge (deepCopy .) ($resources.limits | default dict)) -}}
{{- end }}
{{- $nodeSelector := merge (deepCopy ($spec.nodeSelector | default dict)) ($c.nodeSelector | default dict) -}}
{{- $tolerations := concat ($c.tolerations | default list) ($spec.tolerations | default list) -}}
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ include "loupe.componentName" . }}
  labels:
    {{- include "loupe.labels" . | nindent 4 }}
spec:
  {{- if not (include "loupe.autoscaled" .) }}
  replicas: {{ $c.replicaCount }}
  {{- end }}
  revisionHistoryLimit: 5
  {{- with $c.strategy }}
  strategy:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  selector:
    matchLabels:
      {{- include "loupe.selectorLabels" . | nindent 6 }}
  template:
    metadata:
      labels:
        {{- include "loupe.selectorLabels" . | nindent 8 }}
        app.kubernetes.io/part-of: loupe
        {{- with $c.podLabels }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      annotations:
        # Roll the pods when the configuration they read changes.
        checksum/config: {{ toJson $spec | sha256sum }}
        checksum/secrets: {{ include (print $root.Template.BasePath "/secrets.yaml") $root | sha256sum }}
        {{- with $c.podAnnotations }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
    spec:
      {{- include "loupe.podCommon" $root | nindent 6 }}
      terminationGracePeriodSeconds: {{ $c.terminationGracePeriodSeconds }}
      {{- with $spec.runtimeClassName }}
      runtimeClassName: {{ . }}
      {{- end }}
      containers:
        - name: {{ $name }}
          image: {{ include "loupe.image" . | quote }}
          imagePullPolicy: {{ $root.Values.image.pullPolicy }}
          {{- with $spec.command }}
          command:
            {{- toYaml . | nindent 12 }}
          {{- end }}
          {{- with $spec.args }}
          args:
            {{- toYaml . | nindent 12 }}
          {{- end }}
          ports:
            {{- range $spec.ports }}
            - name: {{ .name }}
              containerPort: {{ .port }}
              protocol: TCP
            {{- end }}
          env:
            - name: LOUPE_LOG_LEVEL
              value: {{ $root.Values.logLevel | quote }}
            {{- toYaml $spec.env | nindent 12 }}
            {{- with $c.extraEnv }}
            {{- toYaml . | nindent 12 }}
            {{- end }}
          startupProbe:
            {{- include "loupe.probe" (dict "root" $root "name" $name "kind" "startup" "handler" $spec.probe) | nindent 12 }}
          readinessProbe:
            {{- include "loupe.probe" (dict "root" $root "name" $name "kind" "readiness" "handler" $spec.probe) | nindent 12 }}
          livenessProbe:
            {{- include "loupe.probe" (dict "root" $root "name" $name "kind" "liveness" "handler" $spec.probe) | nindent 12 }}
          {{- with $resources }}
          resources:
            {{- toYaml . | nindent 12 }}
          {{- end }}
          {{- if $root.Values.preStopSleepSeconds }}
          lifecycle:
            preStop:
              exec:
                command: [sleep, {{ $root.Values.preStopSleepSeconds | quote }}]
          {{- end }}
          securityContext:
            {{- toYaml $root.Values.securityContext | nindent 12 }}
          volumeMounts:
            - name: tmp
              mountPath: /tmp
            {{- with $spec.volumeMounts }}
            {{- toYaml . | nindent 12 }}
            {{- end }}
            {{- if and $spec.internalPlane $root.Values.internalTLS.enabled }}
            - name: internal-tls
              mountPath: {{ include "loupe.internalTLS.path" $root }}
              readOnly: true
            {{- end }}
      volumes:
        {{- include "loupe.tmpVolume" $root | nindent 8 }}
        {{- with $spec.volumes }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
        {{- if and $spec.internalPlane $root.Values.internalTLS.enabled }}
        - name: internal-tls
          secret:
            secretName: {{ $root.Values.internalTLS.secretName }}
        {{- end }}
      {{- with $nodeSelector }}
      nodeSelector:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $tolerations }}
      tolerations:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $c.affinity }}
      affinity:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $c.topologySpreadConstraints }}
      topologySpreadConstraints:
        {{- range . }}
        {{- $tsc := deepCopy . }}
        {{- if not (hasKey $tsc "labelSelector") }}
        {{- $_ := set $tsc "labelSelector" (dict "matchLabels" (include "loupe.selectorLabels" (dict "root" $root "name" $name) | fromYaml)) }}
        {{- end }}
        - {{ toYaml $tsc | indent 10 | trim }}
        {{- end }}
      {{- end }}
{{- end }}

{{/* The ClusterIP (or gateway's configured type) Service, and a headless one for gRPC clients. */}}
{{- define "loupe.service" -}}
{{- $root := .root -}}
{{- $c := index $root.Values .name -}}
{{- $spec := include "loupe.spec" . | fromJson -}}
{{- $svc := $c.service | default dict -}}
apiVersion: v1
kind: Service
metadata:
  name: {{ include "loupe.componentName" . }}
  labels:
    {{- include "loupe.labels" . | nindent 4 }}
  {{- with $svc.annotations }}
  annotations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
spec:
  type: {{ $svc.type | default "ClusterIP" }}
  selector:
    {{- include "loupe.selectorLabels" . | nindent 4 }}
  ports:
    {{- range $spec.ports }}
    - name: {{ .name }}
      port: {{ .servicePort | default .port }}
      targetPort: {{ .name }}
      protocol: TCP
      {{- if and (eq ($svc.type | default "ClusterIP") "NodePort") .nodePort }}
      nodePort: {{ .nodePort }}
      {{- end }}
      {{- if hasPrefix "grpc" .name }}
      appProtocol: grpc
      {{- end }}
    {{- end }}
{{- if $spec.grpcPort }}
---
# Headless: clients resolve every ready pod (dns:/// targets) and balance calls themselves.
apiVersion: v1
kind: Service
metadata:
  name: {{ include "loupe.headlessName" . }}
  labels:
    {{- include "loupe.labels" . | nindent 4 }}
spec:
  clusterIP: None
  selector:
    {{- include "loupe.selectorLabels" . | nindent 4 }}
  ports:
    - name: grpc
      port: {{ $spec.grpcPort }}
      targetPort: grpc
      protocol: TCP
      appProtocol: grpc
{{- end }}
{{- end }}

{{- define "loupe.hpa" -}}
{{- $c := index .root.Values .name -}}
{{- $a := $c.autoscaling -}}
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata:
  name: {{ include "loupe.componentName" . }}
  labels:
    {{- include "loupe.labels" . | nindent 4 }}
spec:
  scaleTargetRef:
    apiVersion: apps/v1
    kind: Deployment
    name: {{ include "loupe.componentName" . }}
  minReplicas: {{ $a.minReplicas }}
  maxReplicas: {{ $a.maxReplicas }}
  metrics:
    {{- with $a.targetCPUUtilizationPercentage }}
    - type: Resource
      resource:
        name: cpu
        target:
          type: Utilization
          averageUtilization: {{ . }}
    {{- end }}
    {{- with $a.targetMemoryUtilizationPercentage }}
    - type: Resource
      resource:
        name: memory
        target:
          type: Utilization
          averageUtilization: {{ . }}
    {{- end }}
{{- end }}

{{- define "loupe.pdb" -}}
{{- $p := (index .root.Values .name).pdb -}}
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  name: {{ include "loupe.componentName" . }}
  labels:
    {{- include "loupe.labels" . | nindent 4 }}
spec:
  {{- if not (kindIs "invalid" $p.minAvailable) }}
  minAvailable: {{ $p.minAvailable }}
  {{- else }}
  maxUnavailable: {{ $p.maxUnavailable | default 1 }}
  {{- end }}
  selector:
    matchLabels:
      {{- include "loupe.selectorLabels" . | nindent 6 }}
{{- end }}

{{/*
NetworkPolicy of a pod: its serving ports only from its callers, its metrics port from
networkPolicy.metricsFrom. Args: root, name (component whose pods are selected), ports (serving
port names or numbers), callers (component names, "*" for anyone), extraFrom (more peers),
metricsPort (optional).
*/}}
{{- define "loupe.networkPolicy" -}}
{{- $root := .root -}}
{{- $np := $root.Values.networkPolicy -}}
{{- $open := has "*" .callers -}}
{{- $peers := list -}}
{{- range .callers }}
{{- if ne . "*" }}
{{- $peers = append $peers (dict "podSelector" (dict "matchLabels" (include "loupe.selectorLabels" (dict "root" $root "name" .) | fromYaml))) -}}
{{- end }}
{{- end }}
{{- if and $open $np.gatewayFrom }}
{{- $open = false -}}
{{- $peers = concat $peers $np.gatewayFrom -}}
{{- /* helm test must still reach the gateway */ -}}
{{- $peers = append $peers (dict "podSelector" (dict "matchLabels" (include "loupe.selectorLabels" (dict "root" $root "name" "test") | fromYaml))) -}}
{{- end }}
{{- $peers = concat $peers (.extraFrom | default list) -}}
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: {{ include "loupe.componentName" . }}
  labels:
    {{- include "loupe.labels" . | nindent 4 }}
spec:
  podSelector:
    matchLabels:
      {{- include "loupe.selectorLabels" . | nindent 6 }}
  policyTypes: [Ingress]
  ingress:
    - ports:
        {{- range .ports }}
        - port: {{ . }}
          protocol: TCP
        {{- end }}
      {{- if not $open }}
      from:
        {{- toYaml $peers | nindent 8 }}
      {{- end }}
    {{- if and .metricsPort (not (and $open (has .metricsPort .ports))) }}
    - ports:
        - port: {{ .metricsPort }}
          protocol: TCP
      {{- with $np.metricsFrom }}
      from:
        {{- toYaml . | nindent 8 }}
      {{- end }}
    {{- end }}
{{- end }}

{{- define "loupe.serviceMonitor" -}}
{{- $root := .root -}}
{{- $sm := $root.Values.metrics.serviceMonitor -}}
{{- $spec := include "loupe.spec" . | fromJson -}}
apiVersion: monitoring.coreos.com/v1
kind: ServiceMonitor
metadata:
  name: {{ include "loupe.componentName" . }}
  labels:
    {{- include "loupe.labels" . | nindent 4 }}
    {{- with $sm.labels }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
spec:
  selector:
    matchLabels:
      {{- include "loupe.selectorLabels" . | nindent 6 }}
  namespaceSelector:
    matchNames: [{{ $root.Release.Namespace }}]
  endpoints:
    - port: {{ $spec.metricsPort }}
      path: {{ $spec.metricsPath }}
      interval: {{ $sm.interval }}
      scrapeTimeout: {{ $sm.scrapeTimeout }}
{{- end }}
