{{- /* Names, labels and the pod parts the web, worker and migration pods share. */ -}}

{{- /* The release's base name; room is left for the longest suffix ("-migrate") within 63. */ -}}
{{- define "binderadmin.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 55 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 55 | trimSuffix "-" -}}
{{- end -}}
{{- end }}

{{- define "binderadmin.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name | quote }}
{{- end }}

{{- define "binderadmin.labels" -}}
{{ include "binderadmin.selectorLabels" . }}
app.kubernetes.io/part-of: binderadmin
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | quote }}
{{- end }}

{{- /* Call with (dict "root" $ "component" "web"). */ -}}
{{- define "binderadmin.componentLabels" -}}
{{ include "binderadmin.labels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "binderadmin.componentSelector" -}}
{{ include "binderadmin.selectorLabels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "binderadmin.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "binderadmin.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end }}

{{- define "binderadmin.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end }}

{{- /* What every pod of the chart shares: no Kubernetes API token (the console reaches clusters only
through the kubeconfigs registered in it), its pull secrets and its placement. */ -}}
{{- define "binderadmin.podSpec" -}}
automountServiceAccountToken: false
enableServiceLinks: false
securityContext:
  runAsNonRoot: true
  runAsUser: 10001
  runAsGroup: 10001
  seccompProfile:
    type: RuntimeDefault
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
volumes:
  # The only writable place: temporary kubeconfigs, helm's cache (HOME), gunicorn's heartbeat files.
  - name: tmp
    emptyDir:
      sizeLimit: 1Gi
{{- end }}

{{- /* What every container of the chart shares: the image, its read-only root, its settings. */ -}}
{{- define "binderadmin.container" -}}
image: {{ include "binderadmin.image" . | quote }}
imagePullPolicy: {{ .Values.image.pullPolicy }}
securityContext:
  readOnlyRootFilesystem: true
  allowPrivilegeEscalation: false
  capabilities:
    drop: [ALL]
volumeMounts:
  - name: tmp
    mountPath: /tmp
env:
  {{- include "binderadmin.env" . | nindent 2 }}
{{- end }}

{{- /* The secret settings: variable name -> the values key under `secrets`. */ -}}
{{- define "binderadmin.secretSettings" -}}
DJANGO_SECRET_KEY: djangoSecretKey
DATABASE_URL: databaseUrl
OIDC_RP_CLIENT_SECRET: oidcClientSecret
KEYCLOAK_ADMIN_CLIENT_SECRET: keycloakAdminClientSecret
FIELD_ENCRYPTION_KEYS: fieldEncryptionKeys
{{- if .Values.redis.enabled }}
REDIS_URL: redisUrl
{{- end }}
{{- end }}

{{- define "binderadmin.env" -}}
{{- $config := .Values.config -}}
- name: BINDERADMIN_PRODUCTION
  value: "true"
- name: HOME
  value: /tmp
- name: DJANGO_ALLOWED_HOSTS
  value: {{ join "," $config.hosts | quote }}
- name: DJANGO_CSRF_TRUSTED_ORIGINS
  value: {{ join "," $config.csrfTrustedOrigins | quote }}
- name: DJANGO_BEHIND_TLS_PROXY
  value: {{ $config.behindTlsProxy | quote }}
- name: KEYCLOAK_URL
  value: {{ $config.keycloakUrl | quote }}
{{- with $config.keycloakBackchannelUrl }}
- name: KEYCLOAK_BACKCHANNEL_URL
  value: {{ . | quote }}
{{- end }}
- name: KEYCLOAK_REALM
  value: {{ $config.keycloakRealm | quote }}
- name: KEYCLOAK_ADMIN_CLIENT_ID
  value: {{ $config.keycloakAdminClientId | quote }}
- name: OIDC_RP_CLIENT_ID
  value: {{ $config.oidcClientId | quote }}
- name: BINDERADMIN_ADMIN_GROUP
  value: {{ $config.adminGroup | quote }}
- name: APP_CHART_REPO_URL
  value: {{ $config.appChartRepoUrl | quote }}
- name: APP_CHART_NAME
  value: {{ $config.appChartName | quote }}
- name: Q_WORKERS
  value: {{ .Values.worker.processes | quote }}
{{- range $name, $value := $config.env }}
- name: {{ $name }}
  value: {{ $value | quote }}
{{- end }}
{{- range $name, $field := include "binderadmin.secretSettings" . | fromYaml }}
{{- $ref := index $.Values.secrets $field }}
- name: {{ $name }}
  valueFrom:
    secretKeyRef:
      name: {{ default $.Values.secrets.name $ref.secret | quote }}
      key: {{ $ref.key | quote }}
{{- end }}
{{- end }}
