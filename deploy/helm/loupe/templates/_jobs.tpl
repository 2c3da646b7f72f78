{{/*
A Helm hook Job running a one-off command from a Loupe image. Args: root, name (the job's
component label), image (the component whose image it runs), command, env (YAML list string),
phases, job (its values: backoffLimit, activeDeadlineSeconds, resources).
Hook pods use the namespace's default ServiceAccount: at pre-install the chart's own one does not
exist yet, and these jobs need no Kubernetes API nor cloud identity.
*/}}
{{- define "loupe.hookJob" -}}
{{- $root := .root -}}
apiVersion: batch/v1
kind: Job
metadata:
  name: {{ include "loupe.componentName" . }}
  labels:
    {{- include "loupe.labels" . | nindent 4 }}
  annotations:
    helm.sh/hook: {{ .phases }}
    helm.sh/hook-weight: "0"
    # A failed job is kept for `kubectl logs` until the next attempt replaces it.
    helm.sh/hook-delete-policy: before-hook-creation,hook-succeeded
spec:
  backoffLimit: {{ .job.backoffLimit }}
  activeDeadlineSeconds: {{ .job.activeDeadlineSeconds }}
  template:
    metadata:
      labels:
        {{- include "loupe.selectorLabels" . | nindent 8 }}
        app.kubernetes.io/part-of: loupe
    spec:
      restartPolicy: Never
      automountServiceAccountToken: false
      enableServiceLinks: false
      {{- with $root.Values.imagePullSecrets }}
      imagePullSecrets:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      securityContext:
        {{- toYaml $root.Values.podSecurityContext | nindent 8 }}
      containers:
        - name: {{ .name }}
          image: {{ include "loupe.image" (dict "root" $root "name" .image) | quote }}
          imagePullPolicy: {{ $root.Values.image.pullPolicy }}
          command:
            {{- toYaml .command | nindent 12 }}
          env:
            - name: LOUPE_LOG_LEVEL
              value: {{ $root.Values.logLevel | quote }}
            {{- .env | nindent 12 }}
          {{- with .job.resources }}
          resources:
            {{- toYaml . | nindent 12 }}
          {{- end }}
          securityContext:
            {{- toYaml $root.Values.securityContext | nindent 12 }}
          volumeMounts:
            - name: tmp
              mountPath: /tmp
      volumes:
        {{- include "loupe.tmpVolume" $root | nindent 8 }}
{{- end }}
